"""The scheduler inside `keyledger serve`: due rotations, due deletions, expiry of imported
key material and of import tokens, shredding repair."""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import signal
from collections.abc import Callable
from typing import Any
from uuid import UUID

from api.services import Services
from eventstore.outage import Incident, store_unavailable

log = logging.getLogger("keyledger.scheduler")
KILL_BEFORE_SHRED = "kill-before-shred"


class Scheduler:
    """Issues due work as ordinary KeyLedger commands, recorded as service events.

    Restart-safe: due work is found from the view, so what fell due while the server
    was down runs at the next pass. Run-once: each command re-checks "is it due?"
    against the aggregate it saves, and optimistic concurrency makes a second process
    racing for the same work reload and find nothing left to do.
    """

    def __init__(self, services: Services, interval: float = 30.0, fault: str | None = None):
        self.services = services
        self.interval = interval
        self.fault = fault  # dev-clock fault injection for crash tests
        self._pass = asyncio.Lock()

    async def run_forever(self) -> None:
        metrics = self.services.metrics
        outage = Incident(
            log,
            "scheduler cannot reach the store",
            "due work waits for the next pass",
            "scheduler reaches the store again",
        )
        while True:
            try:
                done = await self.run_due()
            except Exception as error:
                metrics.scheduler_runs.labels("failed").inc()
                if store_unavailable(error):  # an outage: one line, not one per pass
                    outage.failed(error)
                else:
                    log.exception("scheduler pass failed; retrying at the next interval")
            else:
                outage.recovered()
                metrics.scheduler_runs.labels("ok").inc()
                metrics.scheduler_actions.inc(done)
            await asyncio.sleep(self.interval)

    async def run_due(self) -> int:
        """One pass; returns how many keys it rotated, deleted or shredded."""
        async with self._pass:
            services = self.services
            await services.read(services.runner.catch_up)
            done = await services.read(self.repair_shredding)
            done += await self.repair_removed_materials()
            now = services.clock()
            for key_id in await services.read(services.view.due_rotations, now):
                done += await self._command(services.ledger.rotate_if_due, UUID(key_id))
            for key_id in await services.read(services.view.due_deletions, now):
                done += await self._delete(UUID(key_id))
            for key_id in await services.read(services.view.due_expiries, now):
                done += await self._expire(UUID(key_id))
            keystore = services.ledger.keystore
            await services.read(keystore.destroy_expired_import_keys, now.timestamp())
            return done

    async def _command(self, method: Callable[..., bool], key_id: UUID, **kwargs: Any) -> int:
        outcome = await self.services.commands(functools.partial(method, key_id=key_id, **kwargs))
        return int(bool(outcome.value))

    async def _delete(self, key_id: UUID) -> int:
        """The Deleted event is durable first; only then are the wrapping keys destroyed.
        A crash in between leaves work for repair_shredding at the next pass."""
        aliases = await self.services.read(self.services.view.aliases_of, str(key_id))
        alias_ids = [UUID(alias_id) for alias_id in aliases]
        if not await self._command(self.services.ledger.delete_if_due, key_id, alias_ids=alias_ids):
            return 0
        if self.fault == KILL_BEFORE_SHRED:
            log.warning("dev fault: killing the server between Deleted and shredding")
            os.kill(os.getpid(), signal.SIGKILL)
        await self.services.read(self.services.ledger.keystore.destroy, key_id)
        log.info("key deleted and its wrapping keys destroyed", extra={"key_id": str(key_id)})
        return 1

    async def _expire(self, key_id: UUID) -> int:
        """Imported material past its ValidTo: MaterialExpired is durable first, then the
        material's wrapping keys are destroyed (importing-keys.html: "AWS KMS deletes the
        key material"). A crash in between leaves the wrapping key to a later
        DeleteImportedKeyMaterial or key deletion; the key is PendingImport either way."""
        outcome = await self.services.commands(
            functools.partial(self.services.ledger.expire_if_due, key_id=key_id)
        )
        expired: list[str] = outcome.value
        if not expired:
            return 0
        await self.services.read(self.services.ledger.keystore.destroy_materials, expired)
        log.info("imported key material expired and destroyed", extra={"key_id": str(key_id)})
        return 1

    def repair_shredding(self) -> int:
        """Destroy what a crash left: wrapping keys of keys already Deleted, and of
        imported material already deleted or expired."""
        keystore, view = self.services.ledger.keystore, self.services.view
        leftover = set(view.deleted_keys()) & keystore.key_ids()
        for key_id in leftover:
            keystore.destroy(UUID(key_id))
            log.warning("completed an interrupted key deletion", extra={"key_id": key_id})
        return len(leftover)

    async def repair_removed_materials(self) -> int:
        """Wrapping keys of imported material the view says was deleted or expired but
        the keystore still holds. Re-checked on the writer thread against the write
        model, so material imported again meanwhile is left alone."""
        services = self.services
        keystore = services.ledger.keystore
        candidates = await services.read(
            lambda: sorted(set(services.view.removed_materials()) & keystore.material_ids())
        )
        if not candidates:
            return 0
        outcome = await services.commands(
            functools.partial(services.ledger.shred_removed_materials, material_ids=candidates)
        )
        log.warning("completed an interrupted deletion of imported key material")
        return int(outcome.value)
