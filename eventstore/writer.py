"""One writer thread per ledger with group commit: many requests, one transaction."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any, Generic, TypeVar

from domain.errors import DependencyTimeoutError
from eventstore.outage import Incident, store_unavailable

log = logging.getLogger("keyledger.writer")
J = TypeVar("J")
R = TypeVar("R")
_STOP = object()
# How often a writer whose store cannot commit tries again on its own, so that it (and
# GET /ready) recovers without waiting for a request.
PROBE_SECONDS = 1.0


class _LoopWaiter:
    """An asyncio future of some event loop, answered from the writer thread."""

    __slots__ = ("loop", "waiter")

    def __init__(self, loop: asyncio.AbstractEventLoop, waiter: asyncio.Future[Any]) -> None:
        self.loop, self.waiter = loop, waiter


def _answer(answers: list[tuple[asyncio.Future[Any], object]]) -> None:
    """On the waiting loop: one callback settles every waiter of a batch."""
    for waiter, outcome in answers:
        if waiter.done():  # the request was cancelled (client gone, shutdown timeout)
            continue
        if isinstance(outcome, BaseException):
            waiter.set_exception(outcome)
        else:
            waiter.set_result(outcome)


class BatchWriter(Generic[J, R]):
    """Feeds queued jobs, in batches, to ``commit`` on a dedicated thread.

    ``commit(jobs)`` returns one outcome per job (a value, or the exception that job
    raised) only after the batch is durable, so each waiting request is answered after
    its own write is on disk; meanwhile the next batch queues up (group commit).

    When the store cannot commit, every job of the batch fails with
    DependencyTimeoutError, the log gets one line for the incident (not one traceback per
    request), ``unavailable`` is set for GET /ready, and ``probe`` (a tiny write) is tried
    every PROBE_SECONDS until the store commits again.
    """

    def __init__(
        self,
        name: str,
        commit: Callable[[Sequence[J]], Sequence[R | BaseException]],
        max_batch: int = 256,
        on_batch: Callable[[int, float], None] | None = None,
        probe: Callable[[], None] | None = None,
    ) -> None:
        self.name = name
        self._commit = commit
        self._on_batch = on_batch  # (jobs, seconds to commit): metrics
        self._probe = probe
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self.batches = 0
        self.jobs = 0
        self.incident = Incident(
            log,
            f"{name} store cannot commit",
            "requests are refused with DependencyTimeoutException until it can",
            f"{name} store commits again",
        )
        self._thread = threading.Thread(target=self._run, name=f"writer-{name}", daemon=True)
        self._thread.start()

    def submit(self, job: J) -> Future[R]:
        future: Future[R] = Future()
        self._queue.put((job, future))
        return future

    async def __call__(self, job: J) -> R:
        """Queue ``job`` and wait for its outcome without a thread-safe future per job:
        the writer answers a whole batch with one callback into each waiting loop."""
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[R] = loop.create_future()
        self._queue.put((job, _LoopWaiter(loop, waiter)))
        return await waiter

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    @property
    def unavailable(self) -> bool:
        return self.incident.ongoing

    def close(self) -> None:
        self._queue.put(_STOP)
        self._thread.join()

    def _run(self) -> None:
        while True:
            batch, stop = self._take_batch()
            if batch:
                self._process(batch)
            if stop:
                return

    def _first(self) -> object:
        while self.unavailable and self._probe is not None:
            try:
                return self._queue.get(timeout=PROBE_SECONDS)
            except queue.Empty:
                self._try_probe()
        return self._queue.get()

    def _take_batch(self) -> tuple[list[tuple[J, Future[R] | _LoopWaiter]], bool]:
        item = self._first()
        batch: list[tuple[J, Future[R] | _LoopWaiter]] = []
        while item is not _STOP:
            batch.append(item)  # type: ignore[arg-type]
            if len(batch) >= self._max_batch:
                return batch, False
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return batch, False
        return batch, True

    def _process(self, batch: list[tuple[J, Future[R] | _LoopWaiter]]) -> None:
        self.batches += 1
        self.jobs += len(batch)
        began = time.perf_counter()
        try:
            outcomes: Sequence[R | BaseException] = self._commit([job for job, _ in batch])
        except BaseException as error:
            if not store_unavailable(error):
                log.exception("batch of %d failed", len(batch))
            outcomes = [error] * len(batch)
        if self._on_batch is not None:
            self._on_batch(len(batch), time.perf_counter() - began)
        failed = [o for o in outcomes if isinstance(o, BaseException) and store_unavailable(o)]
        if failed:
            self.incident.failed(failed[0], len(failed))
        elif any(not isinstance(o, BaseException) for o in outcomes):
            self.incident.recovered()
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[R], object]]] = {}
        for (_, future), raw in zip(batch, outcomes, strict=True):
            outcome: object = raw
            if isinstance(raw, BaseException) and store_unavailable(raw):
                outcome = DependencyTimeoutError()
            if isinstance(future, _LoopWaiter):
                by_loop.setdefault(future.loop, []).append((future.waiter, outcome))
            elif isinstance(outcome, BaseException):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)  # type: ignore[arg-type]
        for loop, answers in by_loop.items():
            with contextlib.suppress(RuntimeError):  # that loop is closed: nobody waits
                loop.call_soon_threadsafe(_answer, answers)

    def _try_probe(self) -> None:
        if self._probe is None:
            return
        try:
            self._probe()
        except Exception as error:  # noqa: BLE001 - still failing; the incident is logged
            if not store_unavailable(error):
                log.warning("%s store probe failed: %s", self.name, error)
            return
        self.incident.recovered()
