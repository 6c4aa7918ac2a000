"""Aggregates for reads, kept in memory while the store says nothing changed.

The library's aggregate cache fast-forwards every hit with one query under a lock per
aggregate, so every read of a hot key queues behind one SQLite query at a time. Here a
read first asks the store whether anything was committed since the last look (SQLite:
``PRAGMA data_version`` on a connection of its own, a read of shared memory that sees
commits of every other connection and process, https://sqlite.org/pragma.html#pragma_data_version;
other stores: the notification log's head). Nothing changed: the kept aggregates are
current. Something changed: the notifications since the last look name exactly the
aggregates to drop. Several processes on one store therefore stay correct: a change
answered by any of them is seen by the next request that starts after that answer.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any
from uuid import UUID

from eventsourcing.persistence import ApplicationRecorder

Mark = Callable[[], int]
_INLINE: ContextVar[bool] = ContextVar("keyledger_inline_read", default=False)


def inline() -> bool:
    """True while a read runs on the event loop, where it may not touch the store."""
    return _INLINE.get()


@contextmanager
def on_event_loop() -> Iterator[None]:
    token = _INLINE.set(True)
    try:
        yield
    finally:
        _INLINE.reset(token)


class NeedsStore(LookupError):
    """A read on the event loop found no current aggregate: redo it on a reader thread."""


def sqlite_mark(path: str) -> Mark:
    """Changes whenever another connection (any thread or process) commits to ``path``.
    One connection for every thread: data_version values of different connections
    cannot be compared with each other."""
    db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    lock = threading.Lock()

    def data_version() -> int:
        with lock:
            return int(db.execute("PRAGMA data_version").fetchone()[0])

    return data_version


class ReadCache:
    """Read copies of aggregates by id, valid up to the last ``refresh``.

    ``refresh`` costs one cheap mark on the common path; ``sync`` (a store query, so on a
    reader thread) runs only when the mark moved. A loader that raced with a sync does
    not keep what it loaded (the epoch moved), so nothing stale is ever kept.
    """

    def __init__(self, recorder: ApplicationRecorder, mark: Mark, maxsize: int = 10_000) -> None:
        self._recorder = recorder
        self._mark = mark
        self._maxsize = maxsize
        self._lock = threading.Lock()
        self._kept: dict[UUID, Any] = {}
        self._seen_mark = mark()
        self._position = recorder.max_notification_id() or 0
        self._epoch = 0
        self._tick: bool | None = None  # current() as asked in this turn of the loop

    def current(self) -> bool:
        """True if nothing was committed since the last sync (cheap; any thread)."""
        return self._mark() == self._seen_mark

    def current_this_tick(self) -> bool:
        """``current()`` for reads on the event loop, asked of the store once per turn of
        the loop however many requests that turn handles. Still exact: a request handled
        in this turn was received before the turn began, so after the answer of any
        change it must see, and the mark is read after that. The remembered answer is
        forgotten by a callback that runs before anything received later."""
        if self._tick is None:
            self._tick = self.current()
            asyncio.get_running_loop().call_soon(self._forget_tick)
        return self._tick

    def _forget_tick(self) -> None:
        self._tick = None

    def sync(self) -> None:
        """Drop every aggregate changed since the last sync (a store query)."""
        mark = self._mark()
        if mark == self._seen_mark:
            return
        changed: set[UUID] = set()
        position = self._position
        while True:
            batch = self._recorder.select_notifications(start=position + 1, limit=1000)
            if not batch:
                break
            changed.update(n.originator_id for n in batch)
            position = batch[-1].id
        with self._lock:
            self._epoch += 1
            for aggregate_id in changed:
                self._kept.pop(aggregate_id, None)
            self._position = max(self._position, position)
            self._seen_mark = mark

    def get(self, aggregate_id: UUID) -> Any:
        """The kept aggregate, or raise KeyError."""
        return self._kept[aggregate_id]

    def epoch(self) -> int:
        return self._epoch

    def keep(self, aggregate_id: UUID, aggregate: Any, epoch: int) -> None:
        """Keep what a reader loaded, unless a sync ran since it began loading."""
        with self._lock:
            if epoch != self._epoch:
                return
            if len(self._kept) >= self._maxsize:
                self._kept.clear()
            self._kept[aggregate_id] = aggregate
