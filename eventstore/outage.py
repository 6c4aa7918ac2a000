"""A store that cannot be reached or cannot commit: how it is told from a bug, and how it
is logged (one line when an incident begins, one when it ends; never a traceback per
request or per poll, which would bury the one line an operator needs)."""

from __future__ import annotations

import logging
import sqlite3
import threading
import time

from eventsourcing.persistence import IntegrityError, PersistenceError, ProgrammingError


def store_unavailable(error: BaseException) -> bool:
    """The store failed, not the request: locked past the lock timeout, disk full, an I/O
    error, a connection gone or refused (eventsourcing wraps every driver's errors the
    same way; psycopg's own errors reach us from the plain-SQL stores)."""
    if isinstance(error, IntegrityError | ProgrammingError):
        return False  # a conflict or a bug, not an outage
    if isinstance(error, PersistenceError | sqlite3.Error | OSError):
        return True
    return _psycopg_unavailable(error)


def _psycopg_unavailable(error: BaseException) -> bool:
    try:
        import psycopg
        import psycopg_pool
    except ImportError:  # pragma: no cover - the postgres extra is always installed
        return False
    if isinstance(error, psycopg_pool.PoolTimeout):
        return True
    return isinstance(error, psycopg.OperationalError | psycopg.InterfaceError)


class Incident:
    """One ERROR line when something starts failing (``began``, the error, ``consequence``),
    one WARNING line when it works again (``ended``, how long it lasted, how many failures
    it saw); thread-safe."""

    def __init__(self, log: logging.Logger, began: str, consequence: str, ended: str) -> None:
        self._log, self._began, self._consequence, self._ended = log, began, consequence, ended
        self._lock = threading.Lock()
        self.since: float | None = None
        self.failures = 0

    @property
    def ongoing(self) -> bool:
        return self.since is not None

    def failed(self, error: BaseException, count: int = 1) -> None:
        with self._lock:
            self.failures += count
            if self.since is not None:
                return
            self.since = time.monotonic()
        self._log.error(
            "%s (%s: %s); %s",
            self._began,
            type(error).__name__,
            str(error).strip().splitlines()[0] if str(error).strip() else "",
            self._consequence,
        )

    def recovered(self) -> None:
        if self.since is None:  # the common case: no lock on the request path
            return
        with self._lock:
            if self.since is None:
                return
            lasted, failures = time.monotonic() - self.since, self.failures
            self.since, self.failures = None, 0
        self._log.warning("%s after %.1f s; %d failures meanwhile", self._ended, lasted, failures)
