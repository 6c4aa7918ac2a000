"""A unit of work: the aggregates one batch of commands loads, changes and saves together."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol
from uuid import UUID

from eventsourcing.domain import Aggregate

Job = Callable[["UnitOfWork"], Any]


class _Keystore(Protocol):
    def forget(self, material_ids: list[str]) -> None: ...


class Ledger(Protocol):
    """What a unit of work needs of the ledger (KeyLedger); a protocol, so this module
    imports nothing of the ledger's and the two form no import loop."""

    keystore: _Keystore

    def clock(self) -> datetime: ...

    def load(self, aggregate_id: UUID) -> Aggregate | None: ...


@dataclass(frozen=True)
class Done:
    """A command's outcome: its value and whether it recorded events (its audit record)."""

    value: Any
    recorded: bool


class UnitOfWork:
    """Aggregates loaded by the commands of one batch, saved together in one transaction.

    Commands of one batch that touch the same aggregate share one instance, so they
    append consecutive versions instead of conflicting with each other.
    """

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.now = ledger.clock()
        self._loaded: dict[UUID, Aggregate | None] = {}
        self.new_materials: list[str] = []  # keystore rows to drop if nothing is saved

    def forget_materials_since(self, mark: int) -> None:
        """Material made by a command that failed, or by a batch that was not saved,
        is never referred to by an event: drop its wrapping key now."""
        self.ledger.keystore.forget(self.new_materials[mark:])
        del self.new_materials[mark:]

    def get(self, aggregate_id: UUID) -> Aggregate | None:
        if aggregate_id not in self._loaded:
            self._loaded[aggregate_id] = self.ledger.load(aggregate_id)
        return self._loaded[aggregate_id]

    def add(self, aggregate: Aggregate) -> None:
        self._loaded[aggregate.id] = aggregate

    def pending_count(self) -> int:
        return sum(len(a.pending_events) for a in self._loaded.values() if a is not None)

    def loaded(self) -> list[Aggregate]:
        return [a for a in self._loaded.values() if a is not None]

    def aggregates(self) -> list[Aggregate]:
        return [a for a in self._loaded.values() if a is not None and a.pending_events]
