"""Cross-process nudges on PostgreSQL: the library NOTIFYs ``<application>_events`` in
every transaction that appends events, so each process LISTENs and wakes its projection
runners at once instead of waiting for the next poll (the poll stays as a fallback)."""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Callable, Mapping, Sequence

from eventstore.database import StoreError, redact
from eventstore.outage import Incident

log = logging.getLogger("keyledger.notify")


# libpq keepalives: a listening connection whose server vanished without a word is found
# dead within seconds, so the read cache stops trusting it (ChangeMark) that soon.
KEEPALIVES = {
    "keepalives": 1,
    "keepalives_idle": 5,
    "keepalives_interval": 2,
    "keepalives_count": 2,
}


class ChangeMark:
    """The read cache's change mark on PostgreSQL (see eventstore/read_cache.py): a
    counter the listener thread moves on every NOTIFY of the key ledger, so asking it
    costs no round trip. PostgreSQL sends the NOTIFY when the appending transaction
    commits, to every listening session; another process's change is therefore seen
    here as soon as this process's listener has read it (milliseconds; bench/postgres.py
    measures it). While the listener is not connected nothing NOTIFYs, so every look is
    a change: the cache asks the store each time until LISTEN is back."""

    def __init__(self) -> None:
        self._counter = itertools.count(1)  # next() is atomic: no lock for the bump
        self._value = next(self._counter)
        self.listening = False

    def bump(self, *_: object) -> None:
        """A NOTIFY arrived, or this process saved (called before the command is
        answered, so this process reads its own writes without waiting for the NOTIFY)."""
        self._value = next(self._counter)

    def listening_changed(self, listening: bool) -> None:
        self.listening = listening
        self.bump()

    def __call__(self) -> int:
        if not self.listening:
            return next(self._counter)
        return self._value


class Listener:
    """One connection doing LISTEN on each channel, calling its callbacks per NOTIFY."""

    def __init__(
        self,
        url: str,
        channels: Mapping[str, Sequence[Callable[[], None]]],
        on_listening: Callable[[bool], None] | None = None,
    ) -> None:
        self.url, self.channels = url, channels
        self.on_listening = on_listening or (lambda _: None)
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
                with psycopg.connect(
                    self.url, autocommit=True, connect_timeout=10, **KEEPALIVES
                ) as conn:
                    for channel in self.channels:
                        conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
                    self.on_listening(True)
                    self._outage.recovered()
                    self._nudge_all()  # anything appended while we were not listening
                    while not self._stopped.is_set():
                        for note in conn.notifies(timeout=0.5):
                            for callback in self.channels.get(note.channel, ()):
                                callback()
            except psycopg.Error as error:
                self.on_listening(False)
                self._outage.failed(error)  # one line per outage, not one per retry
                self._stopped.wait(1.0)
            except StoreError:
                self.on_listening(False)
                self._stopped.wait(1.0)
        self.on_listening(False)

    def _nudge_all(self) -> None:
        for callbacks in self.channels.values():
            for callback in callbacks:
                callback()
