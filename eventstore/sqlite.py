"""SQLite persistence for the ledgers with synchronous=FULL on every connection."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable

from eventsourcing.application import Application
from eventsourcing.sqlite import SQLiteConnection, SQLiteConnectionPool, SQLiteFactory
from eventsourcing.utils import Environment, EnvType

OPEN_RETRY_SECONDS = 15.0


class DurableSQLiteConnectionPool(SQLiteConnectionPool):
    """WAL with synchronous=FULL: a commit is fsynced before it returns, so nothing
    acknowledged is lost on power failure (https://sqlite.org/pragma.html#pragma_synchronous)."""

    def _create_connection(self) -> SQLiteConnection:
        # Opening sets journal_mode=WAL, which needs the database lock for a moment: two
        # processes opening one fresh store at once (``--workers``) may meet it held. That
        # is contention at start, not an outage, so wait it out (bounded) here.
        deadline = time.monotonic() + OPEN_RETRY_SECONDS
        while True:
            try:
                connection = super()._create_connection()
                break
            except sqlite3.OperationalError as error:
                if "locked" not in str(error) or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        cursor = connection.cursor()
        cursor.execute("PRAGMA synchronous=FULL")
        return connection


class DurableSQLiteFactory(SQLiteFactory):
    """Selected with PERSISTENCE_MODULE=eventstore.sqlite:DurableSQLiteFactory."""

    def __init__(self, env: Environment | EnvType | None) -> None:
        super().__init__(env)
        pool = self.datastore.pool
        self.datastore.pool = DurableSQLiteConnectionPool(
            db_name=pool.db_name, lock_timeout=pool.lock_timeout
        )
        pool.close()


def commit_probe(app: Application) -> Callable[[], None]:
    """A tiny real write to an application's store (its own table, never the events), so a
    writer whose store could not commit finds out by itself when it can again."""
    datastore = getattr(app.recorder, "datastore", None)

    def probe() -> None:
        if datastore is None:  # the in-memory store always commits
            return
        with datastore.transaction(commit=True) as cursor:
            cursor.execute("CREATE TABLE IF NOT EXISTS keyledger_probe (n INTEGER)")
            cursor.execute("DELETE FROM keyledger_probe")
            cursor.execute("INSERT INTO keyledger_probe VALUES (1)")

    return probe
