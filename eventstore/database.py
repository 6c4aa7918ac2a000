"""Where the stores live: SQLite files (the embedded default) or one PostgreSQL database.

The keystore and the audit signing keys are small tables that keyledger writes with plain
SQL; ``Database`` runs the same statements on either (``?`` placeholders are PostgreSQL's
``%s``, ``BLOB`` is ``BYTEA``). The ledgers use the eventsourcing library's own SQLite or
PostgreSQL persistence, configured by ``ledger_env``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit, urlunsplit

POSTGRES_SCHEMES = ("postgresql", "postgres")
STORE_ENV = "KEYLEDGER_STORE"
T = TypeVar("T")


class StoreError(Exception):
    """The store cannot be opened: one line for the operator, never a password."""


def is_postgres(target: str | None) -> bool:
    return target is not None and urlsplit(target).scheme in POSTGRES_SCHEMES


def redact(url: str) -> str:
    """The URL with any password replaced, for logs and error messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)
    user = netloc[0].split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc[1]}"))


def postgres_env(url: str) -> dict[str, str]:
    """The library's POSTGRES_* settings for a ``postgresql://user:password@host:port/db``."""
    parts = urlsplit(url)
    if parts.scheme not in POSTGRES_SCHEMES or not parts.path.strip("/"):
        raise StoreError(f"not a PostgreSQL URL with a database name: {redact(url)}")
    env = {
        "PERSISTENCE_MODULE": "eventstore.postgres:FailFastPostgresFactory",
        "POSTGRES_DBNAME": unquote(parts.path.strip("/")),
        "POSTGRES_HOST": parts.hostname or "127.0.0.1",
        "POSTGRES_PORT": str(parts.port or 5432),
        "POSTGRES_USER": unquote(parts.username or "keyledger"),
        "POSTGRES_PASSWORD": unquote(parts.password or ""),
        # Seconds a request waits for a pooled connection. PostgreSQL gone, none comes: a
        # longer wait is an outage, refused with DependencyTimeoutException within the
        # bound GET /ready and the README state (as SQLite's STORE_LOCK_TIMEOUT).
        "POSTGRES_CONNECT_TIMEOUT": "2",
        # A stuck writer must not block every writer forever (the library's advice).
        "POSTGRES_LOCK_TIMEOUT": "5",
        "POSTGRES_PRE_PING": "y",
        "POSTGRES_POOL_SIZE": "8",
        "POSTGRES_MAX_OVERFLOW": "8",
    }
    return env


STORE_VERSION = 1  # bump when keyledger's tables in PostgreSQL change shape


def check_store_version(url: str) -> None:
    """Refuse a database written by another keyledger store version, before any write."""
    db = Database(url)
    try:
        db.execute("CREATE TABLE IF NOT EXISTS keyledger_store (version INTEGER NOT NULL)")
        row = db.execute("SELECT version FROM keyledger_store").fetchone()
        if row is None:
            db.execute("INSERT INTO keyledger_store VALUES (?)", (STORE_VERSION,))
        elif row[0] != STORE_VERSION:
            raise StoreError(
                f"{redact(url)} holds a keyledger store of version {row[0]}; this keyledger "
                f"reads version {STORE_VERSION}"
            )
    finally:
        db.close()


class Database:
    """One connection, shared by a store's methods under the store's lock: statements
    autocommit, ``executemany`` commits its rows together."""

    def __init__(self, target: str, sqlite_pragmas: tuple[str, ...] = ()) -> None:
        self.postgres = is_postgres(target)
        if self.postgres:
            import psycopg

            self._target = target
            try:
                self._db: Any = self._connect(connect_timeout=10)
            except psycopg.Error as error:
                raise StoreError(_first_line(error, target)) from None
        else:
            self._db = sqlite3.connect(target, check_same_thread=False, isolation_level=None)
            for pragma in sqlite_pragmas:
                self._db.execute(f"PRAGMA {pragma}")

    def execute(self, sql: str, params: tuple[Any, ...] = ()) -> Any:
        if self.postgres:
            sql = sql.replace("?", "%s").replace(" BLOB", " BYTEA")
            return self._on_postgres(lambda: self._db.execute(sql, params))
        return self._db.execute(sql, params)

    def executemany(self, sql: str, rows: list[tuple[Any, ...]]) -> None:
        """Run ``sql`` for every row in one transaction: one commit (one fsync) for all."""
        if self.postgres:

            def run() -> None:
                with self._db.transaction(), self._db.cursor() as cursor:
                    cursor.executemany(sql.replace("?", "%s"), rows)

            self._on_postgres(run)
            return
        self._db.execute("BEGIN IMMEDIATE")
        try:
            self._db.executemany(sql, rows)
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def _on_postgres(self, run: Callable[[], T]) -> T:
        """``run`` on a live connection. A connection lost to an outage stays closed: the
        call that met the outage failed (DependencyTimeoutException), the next connects
        anew (refused at once while the server is away). A session the server ended
        while it restarted (AdminShutdown, SQLSTATE 57P01) ran nothing of ``run``, so
        ``run`` goes once more, on a new connection, rather than failing after recovery."""
        import psycopg

        if self._db.closed or self._db.broken:
            self._db = self._connect()
        try:
            return run()
        except psycopg.errors.AdminShutdown:
            self._db.close()
            self._db = self._connect()
            return run()

    def _connect(self, connect_timeout: int = 2) -> Any:
        import psycopg

        return psycopg.connect(self._target, autocommit=True, connect_timeout=connect_timeout)

    def close(self) -> None:
        self._db.close()


def _first_line(error: BaseException, url: str) -> str:
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    password = urlsplit(url).password
    if password:
        text = text.replace(password, "***")
    return f"cannot open the PostgreSQL store {redact(url)}: {text}"
