"""Follows both ledgers into the audit view on a thread of its own, and signs digests.

Nothing here runs on a request's path: requests only nudge the thread.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from eventsourcing.application import Application
from eventsourcing.persistence import IntegrityError, Tracking

from projections.audit_integrity import Signer, make_digest
from projections.audit_record import request_of
from projections.audit_view import AuditView
from projections.runner import PollingRunner, Rate


class AuditRunner(PollingRunner):
    """One tracking position per ledger, both kept in the view's own database."""

    def __init__(
        self,
        keys: Application,
        usage: Application,
        view: AuditView,
        *,
        interval: float = 0.25,
        batch: int = 500,
        signer: Signer | None = None,
        digest_interval: float | None = None,
        clock: Callable[[], datetime] | None = None,
        coalesce: float = 0.1,
    ) -> None:
        self.keys, self.usage, self.audit = keys, usage, view
        self.name = "audit"
        self.interval, self.batch = interval, batch
        # Under load one transaction carries ~100 ms of records, not one per nudge.
        self.coalesce = coalesce
        self._wait = interval
        self.signer, self.digest_interval, self.clock = signer, digest_interval, clock
        self.positions = {app.name: view.position(app.name) for app in (keys, usage)}
        self.external: Callable[[], bool] | None = None  # liveness of a follower process
        self.position = 0  # the base class's single position is unused here
        self.rate = Rate(sum(self.positions.values()))
        self._last_digest = time.monotonic()
        self._wake = threading.Event()
        self._catching_up = threading.Lock()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    def _catch_up(self) -> int:
        processed = 0
        while True:
            step = self._follow(self.keys, grouped=True) + self._follow(self.usage, grouped=False)
            if not step:
                break
            processed += step
        if self.digest_interval is not None and (
            time.monotonic() - self._last_digest >= self.digest_interval
        ):
            self._sign()
        return processed

    def _follow(self, app: Application, *, grouped: bool) -> int:
        start = self.positions[app.name]
        notifications = app.recorder.select_notifications(
            start=start, limit=self.batch, inclusive_of_start=False
        )
        if not notifications:
            return 0
        items = [(n.id, app.mapper.to_domain_event(n)) for n in notifications]
        if grouped and len(items) == self.batch:
            items = _whole_requests(items)
        # A view shared by several processes is checked at this position under its lock.
        after = start if self.audit.shared else None
        process = self.audit.process_key_events if grouped else self.audit.process_usage
        try:
            process(items, Tracking(app.name, items[-1][0]), after=after)
        except IntegrityError:
            # Another runner on the same view got there first: resume from its position.
            self.positions[app.name] = self.audit.position(app.name)
            return 1
        self.positions[app.name] = items[-1][0]
        self.rate.sample(sum(self.positions.values()))
        return len(items)

    def follow(self) -> None:
        """Run in the calling thread until ``stop_soon`` (the follower process)."""
        self._run()

    def stop_soon(self) -> None:
        self._stopped.set()
        self._wake.set()

    @property
    def alive(self) -> bool:
        """The thread, or the follower process that does its work instead."""
        if self.external is not None:
            return self.external()
        return self._thread is not None and self._thread.is_alive()

    def sign_now(self) -> int:
        """An on-demand digest (after catching up); returns its sequence number."""
        with self._catching_up:
            self._catch_up_all()
            return self._sign()

    def _catch_up_all(self) -> None:
        while self._follow(self.keys, grouped=True) + self._follow(self.usage, grouped=False):
            pass

    def _sign(self) -> int:
        if self.signer is None or self.clock is None:
            raise RuntimeError("no audit-signing key configured")
        seq, _, _ = self.audit.append_digest(make_digest(self.signer, self.clock()))
        self._last_digest = time.monotonic()
        return seq

    def status(self) -> dict[str, Any]:
        """Position, head and lag over both ledgers, in the shape of the other views'."""
        ledgers, lag_seconds = {}, 0.0
        for app in (self.keys, self.usage):
            position = self.positions[app.name]
            head = app.recorder.max_notification_id() or 0
            ledgers[app.name] = {"position": position, "head": head}
            if head > position:
                pending = app.recorder.select_notifications(
                    start=position, limit=1, inclusive_of_start=False
                )
                if pending and self.clock is not None:
                    age = self.clock() - app.mapper.to_domain_event(pending[0]).timestamp
                    lag_seconds = max(lag_seconds, age.total_seconds())
        return {
            "name": self.name,
            "position": sum(v["position"] for v in ledgers.values()),
            "head": sum(v["head"] for v in ledgers.values()),
            "lag_events": sum(v["head"] - v["position"] for v in ledgers.values()),
            "lag_seconds": round(lag_seconds, 3),
            "apply_lag_max_seconds": 0.0,
            "propagation_seconds": 0.0,
            "rate_events_per_second": self.rate.per_second(),
            "schema_version": 1,
            "ledgers": ledgers,
        }

    async def caught_up(self, target: int, timeout: float = 2.0) -> bool:
        raise NotImplementedError("use catch_up(): the audit view follows two ledgers")


def _whole_requests(items: list[tuple[int, Any]]) -> list[tuple[int, Any]]:
    """A full batch may end inside one request's events: leave that request for the next
    batch, so every request becomes one record however the log is read (rebuilds too)."""
    last = request_of(items[-1][1]).get("request_id")
    kept = list(items)
    while kept and last is not None and request_of(kept[-1][1]).get("request_id") == last:
        kept.pop()
    return kept or items
