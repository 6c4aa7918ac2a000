"""A polling projection runner: SQLite has no subscriptions, so poll, and be nudged."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import Any

from eventsourcing.application import Application
from eventsourcing.persistence import IntegrityError, Tracking

from projections.keys_view import KeysView

log = logging.getLogger("keyledger.projections")


class PollingRunner:
    """Follows an application's notification log into a view on a thread of its own.

    Local writes call ``nudge`` so the view follows within milliseconds; writes by
    other processes on the same store are picked up within one poll interval.
    """

    thread_name = "projection-keys"

    def __init__(
        self, app: Application, view: KeysView, interval: float = 0.25, batch: int = 500
    ) -> None:
        self.app, self.view = app, view
        self.interval, self.batch = interval, batch
        self.position = view.position(app.name)
        self._wake = threading.Event()
        self._catching_up = threading.Lock()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=self.thread_name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()

    def nudge(self, *_: Any) -> None:
        self._wake.set()

    def catch_up(self) -> int:
        """Process everything recorded so far; returns the number of events projected."""
        with self._catching_up:
            return self._catch_up()

    def _catch_up(self) -> int:
        processed = 0
        while True:
            notifications = self.app.recorder.select_notifications(
                start=self.position, limit=self.batch, inclusive_of_start=False
            )
            if not notifications:
                return processed
            events = [self.app.mapper.to_domain_event(n) for n in notifications]
            try:
                self.view.process(events, Tracking(self.app.name, notifications[-1].id))
            except IntegrityError:
                # Another runner on the same view got there first: resume from its position.
                self.position = self.view.position(self.app.name)
                continue
            self.position = notifications[-1].id
            processed += len(events)

    async def caught_up(self, target: int, timeout: float = 2.0) -> bool:
        """Wait (without blocking the loop) until the view has processed ``target``."""
        deadline = time.monotonic() + timeout
        while self.position < target:
            if time.monotonic() > deadline:
                return False
            self.nudge()
            await asyncio.sleep(0.002)
        return True

    def _run(self) -> None:
        while not self._stopped.is_set():
            self._wake.clear()
            try:
                self.catch_up()
            except Exception:
                log.exception("projection failed; retrying after the poll interval")
            self._wake.wait(self.interval)
