"""PostgreSQL persistence for the ledgers that fails fast while the server is unreachable.

The library retries each read and write up to ten times, and each try waits up to
POSTGRES_CONNECT_TIMEOUT for a pooled connection: with PostgreSQL stopped, one request
would wait some twenty seconds per store call. Here, once a connection could not be had,
further tries fail at once (with an error the library does not retry) until a second has
passed; then one caller tries for real again. So a request is refused within the stated
bound, and the writers' probes, which come once a second, find the server back.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from eventsourcing.persistence import InterfaceError, OperationalError, PersistenceError
from eventsourcing.postgres import PostgresDatastore, PostgresFactory

# After a failed connection, how long further calls fail without trying.
RETRY_SECONDS = 1.0


class StoreUnreachable(PersistenceError):
    """PostgreSQL could not be reached a moment ago; not an OperationalError, so the
    library's retry loop passes it straight up."""


class FailFastPostgresDatastore(PostgresDatastore):
    _down_at: float | None = None
    _up_at = 0.0  # when a connection was last had
    _guard = threading.Lock()

    @contextmanager
    def get_connection(self) -> Iterator[Any]:
        self._refuse_while_down()
        began = time.monotonic()
        acquiring = super().get_connection()
        try:
            connection = acquiring.__enter__()
        except (OperationalError, InterfaceError):
            with self._guard:
                if self._up_at < began:  # not a stale try that began before a success
                    self._down_at = time.monotonic()
            raise
        self._up_at, self._down_at = time.monotonic(), None
        try:
            yield connection
        except BaseException:
            if not acquiring.__exit__(*sys.exc_info()):
                raise
        else:
            acquiring.__exit__(None, None, None)

    def _refuse_while_down(self) -> None:
        if self._down_at is None:  # the common case takes no lock
            return
        with self._guard:
            down_at = self._down_at
            if down_at is None:
                return
            if time.monotonic() - down_at >= RETRY_SECONDS:
                self._down_at = time.monotonic()  # this caller tries; the others wait on
                return
        raise StoreUnreachable(
            f"PostgreSQL was unreachable {time.monotonic() - down_at:.1f} s ago; not retried yet"
        )


class FailFastPostgresFactory(PostgresFactory):
    """Selected with PERSISTENCE_MODULE=eventstore.postgres:FailFastPostgresFactory."""

    def __init__(self, env: Any) -> None:
        super().__init__(env)
        # The library builds its datastore from two dozen settings; only get_connection
        # differs, so the instance takes the subclass rather than a second copy of that.
        self.datastore.__class__ = FailFastPostgresDatastore
