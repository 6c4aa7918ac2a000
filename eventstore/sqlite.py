"""SQLite persistence for the ledgers with synchronous=FULL on every connection."""

from __future__ import annotations

from eventsourcing.sqlite import SQLiteConnection, SQLiteConnectionPool, SQLiteFactory
from eventsourcing.utils import Environment, EnvType


class DurableSQLiteConnectionPool(SQLiteConnectionPool):
    """WAL with synchronous=FULL: a commit is fsynced before it returns, so nothing
    acknowledged is lost on power failure (https://sqlite.org/pragma.html#pragma_synchronous)."""

    def _create_connection(self) -> SQLiteConnection:
        connection = super()._create_connection()
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
