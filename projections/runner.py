"""A polling projection runner: SQLite has no subscriptions, so poll, and be nudged."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from eventsourcing.application import Application
from eventsourcing.persistence import IntegrityError, Tracking

from eventstore.outage import Incident, store_unavailable
from projections.versioned_view import VersionedView
from projections.view_store import is_shared

log = logging.getLogger("keyledger.projections")


class Rate:
    """Events per second over the last minute or so, from (time, position) samples."""

    WINDOW = 60.0

    def __init__(self, position: int) -> None:
        self._samples: deque[tuple[float, int]] = deque([(time.monotonic(), position)])

    def sample(self, position: int) -> None:
        now = time.monotonic()
        if now - self._samples[-1][0] >= 1.0:
            self._samples.append((now, position))
        else:
            self._samples[-1] = (self._samples[-1][0], position)
        while len(self._samples) > 2 and now - self._samples[1][0] > self.WINDOW:
            self._samples.popleft()

    def per_second(self) -> float:
        (t0, p0), (_, p1) = self._samples[0], self._samples[-1]
        now = time.monotonic()
        if now - t0 > self.WINDOW * 2:  # idle for long: no recent rate to speak of
            return 0.0
        return round((p1 - p0) / max(now - t0, 1e-3), 1)


class PollingRunner:
    """Follows an application's notification log into a view on a thread of its own.

    Local writes call ``nudge`` so the view follows within milliseconds; writes by
    other processes on the same store are picked up within one poll interval.

    With a ``delay``, an event is applied only once it is that many seconds old (by
    ``clock``, the domain clock its timestamp came from): the view then lags the write
    model on purpose, which is how the grants view models AWS's propagation delay.
    """

    def __init__(
        self,
        app: Application,
        view: VersionedView,
        *,
        name: str = "keys",
        interval: float = 0.25,
        batch: int = 500,
        delay: float = 0.0,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.app, self.view, self.name = app, view, name
        self.interval, self.batch = interval, batch
        self.delay = timedelta(seconds=delay)
        self.clock = clock or (lambda: datetime.now(UTC))
        self.position = view.position(app.name)
        # Seconds from an event's timestamp to its view commit, worst since start: the
        # view's own lag under load (the propagation delay included).
        self.apply_lag_max = 0.0
        self.rate = Rate(self.position)
        self._wait = interval
        self._wake = threading.Event()
        self._catching_up = threading.Lock()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._run, name=f"projection-{self.name}", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def nudge(self, *_: Any) -> None:
        self._wake.set()

    def catch_up(self) -> int:
        """Process everything recorded so far (that is old enough); returns the number
        of events projected."""
        with self._catching_up:
            return self._catch_up()

    def _catch_up(self) -> int:
        processed = 0
        self._wait = self.interval
        while True:
            notifications = self.app.recorder.select_notifications(
                start=self.position, limit=self.batch, inclusive_of_start=False
            )
            events = [self.app.mapper.to_domain_event(n) for n in notifications]
            ready = self._ready(events)
            if not ready:
                return processed
            try:
                self.view.process(
                    events[:ready],
                    Tracking(self.app.name, notifications[ready - 1].id),
                    after=self.position,
                )
            except IntegrityError:
                # Another runner on the same view got there first, or a rebuild switched
                # the view: resume from its position, with its rows.
                self._adopt()
                continue
            self.position = notifications[ready - 1].id
            self.rate.sample(self.position)
            processed += ready
            oldest = (self.clock() - events[0].timestamp).total_seconds()
            self.apply_lag_max = max(self.apply_lag_max, oldest)
            if ready < len(events):
                return processed

    def _adopt(self) -> None:
        """Take the view's position. A view shared by several processes (PostgreSQL) is
        moved by the others' runners all the time: refresh in-memory state from the rows
        of just the events they applied. A file view moves under a runner only when a
        rebuild switched it: reload everything."""
        position = self.view.position(self.app.name)
        if not is_shared(self.view.datastore) or position < self.position:
            self.position = position
            self.view.reload()
            return
        if type(self.view).processed is VersionedView.processed:  # no in-memory state
            self.position = position
            return
        while self.position < position:
            notifications = self.app.recorder.select_notifications(
                start=self.position, limit=self.batch, stop=position, inclusive_of_start=False
            )
            if not notifications:
                break
            self.view.processed([self.app.mapper.to_domain_event(n) for n in notifications])
            self.position = notifications[-1].id
        self.position = position

    def _ready(self, events: list[Any]) -> int:
        """How many of ``events`` (in log order) are old enough to apply; sets how long
        to wait for the next one."""
        if not self.delay:
            return len(events)
        horizon = self.clock() - self.delay
        for index, event in enumerate(events):
            if event.timestamp > horizon:
                due_in = (event.timestamp - horizon).total_seconds()
                self._wait = min(self.interval, max(due_in, 0.005))
                return index
        return len(events)

    def status(self) -> dict[str, Any]:
        """Position, head and lag, for operators (GET /projections)."""
        head = self.app.recorder.max_notification_id() or 0
        lag_seconds = 0.0
        if head > self.position:
            pending = self.app.recorder.select_notifications(
                start=self.position, limit=1, inclusive_of_start=False
            )
            if pending:
                event = self.app.mapper.to_domain_event(pending[0])
                lag_seconds = max((self.clock() - event.timestamp).total_seconds(), 0.0)
        return {
            "name": self.name,
            "position": self.position,
            "head": head,
            "lag_events": head - self.position,
            "lag_seconds": round(lag_seconds, 3),
            "apply_lag_max_seconds": round(self.apply_lag_max, 4),
            "propagation_seconds": self.delay.total_seconds(),
            "rate_events_per_second": self.rate.per_second(),
            "schema_version": self.view.SCHEMA_VERSION,
        }

    async def caught_up(self, target: int, timeout: float = 2.0) -> bool:
        """Wait (without blocking the loop) until the view has processed ``target``."""
        deadline = time.monotonic() + timeout
        while self.position < target:
            if time.monotonic() > deadline:
                return False
            self.nudge()
            await asyncio.sleep(0.002)
        return True

    # Seconds to wait after each catch-up before heeding the next nudge, so that under load
    # one transaction carries many events (the audit view sets it; 0: follow at once).
    coalesce = 0.0

    def _run(self) -> None:
        outage = Incident(
            log,
            f"projection {self.name} cannot read or write its stores",
            "it retries after the poll interval",
            f"projection {self.name} follows its stores again",
        )
        while not self._stopped.is_set():
            self._wake.clear()
            try:
                self.catch_up()
                outage.recovered()
            except Exception as error:
                if store_unavailable(error):  # an outage: one line, not one per poll
                    outage.failed(error)
                else:
                    log.exception(
                        "projection %s failed; retrying after the poll interval", self.name
                    )
            if self.coalesce:
                self._stopped.wait(self.coalesce)
            self._wake.wait(self._wait)
