"""Resource quotas on the write side: a slot is taken or freed in the same unit of work as
the key or alias it is for (see domain/quotas.py for why that makes them exact)."""

from __future__ import annotations

from collections.abc import Callable

from domain.quotas import Limits, ResourceCount
from eventstore.unit_of_work import UnitOfWork


class ResourceSlots:
    """Mixed into KeyLedger."""

    limits: Limits
    # The view's count of a resource, used once: when a counter is first needed in a store
    # that already holds keys or aliases (a store from before the counters existed).
    count_of: Callable[[str, str, str], int]

    def take_slot(self, uow: UnitOfWork, account: str, region: str, resource: str) -> None:
        self._counter(uow, account, region, resource).take(getattr(self.limits, resource), uow.now)

    def free_slot(self, uow: UnitOfWork, account: str, region: str, resource: str) -> None:
        self._counter(uow, account, region, resource).release(uow.now)

    def _counter(self, uow: UnitOfWork, account: str, region: str, resource: str) -> ResourceCount:
        counter = uow.get(ResourceCount.id_for(account, region, resource))
        if isinstance(counter, ResourceCount):
            return counter
        started: ResourceCount = ResourceCount.start(
            account, region, resource, self.count_of(account, region, resource), uow.now
        )
        uow.add(started)
        return started
