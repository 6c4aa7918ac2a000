"""Cross-process nudges on PostgreSQL: the library NOTIFYs ``<application>_events`` in
every transaction that appends events, so each process LISTENs and wakes its projection
runners at once instead of waiting for the next poll (the poll stays as a fallback)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence

from eventstore.database import StoreError, redact
from eventstore.outage import Incident

log = logging.getLogger("keyledger.notify")


class Listener:
    """One connection doing LISTEN on each channel, calling its callbacks per NOTIFY."""

    def __init__(self, url: str, channels: Mapping[str, Sequence[Callable[[], None]]]) -> None:
        self.url, self.channels = url, channels
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pg-listen", daemon=True)
        self._outage = Incident(
            log,
            f"LISTEN on {redact(url)} failed",
            "retrying each second; projections poll meanwhile",
            f"LISTEN on {redact(url)} works again",
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        import psycopg
        from psycopg import sql

        while not self._stopped.is_set():
            try:
                with psycopg.connect(self.url, autocommit=True, connect_timeout=10) as conn:
                    for channel in self.channels:
                        conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
                    self._outage.recovered()
                    self._nudge_all()  # anything appended while we were not listening
                    while not self._stopped.is_set():
                        for note in conn.notifies(timeout=0.5):
                            for callback in self.channels.get(note.channel, ()):
                                callback()
            except psycopg.Error as error:
                self._outage.failed(error)  # one line per outage, not one per retry
                self._stopped.wait(1.0)
            except StoreError:
                self._stopped.wait(1.0)

    def _nudge_all(self) -> None:
        for callbacks in self.channels.values():
            for callback in callbacks:
                callback()
