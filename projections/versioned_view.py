"""A SQLite view whose rows and tracking position commit together, with a schema version."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, ClassVar

from eventsourcing.persistence import IntegrityError, Tracking
from eventsourcing.sqlite import SQLiteCursor, SQLiteTrackingRecorder


def create_tracking_table(create: Callable[[], None]) -> None:
    """The library's create_table records its first migration in the tracking table; a
    second process creating the same table at the same moment then fails on that row.
    The other process's row stands, so looking again (which now finds it) is enough."""
    try:
        create()
    except IntegrityError:
        create()


def write_lock_first(cursor: SQLiteCursor) -> None:
    """Make a view transaction's first statement a write. In SQLite's WAL mode a
    transaction that reads first and writes later fails at once with "database is locked"
    (SQLITE_BUSY_SNAPSHOT) when another process wrote in between — the busy timeout does
    not apply to it (https://sqlite.org/rescode.html#busy_snapshot). A write first takes
    the write lock up front, waiting out the busy timeout instead. It changes no row; on
    PostgreSQL the view's advisory lock already orders the writers."""
    cursor.execute("DELETE FROM tracking WHERE 1 = 0")


class VersionedView(SQLiteTrackingRecorder):
    """View rows and the tracking position commit in one transaction, so each event takes
    effect exactly once, and a restart resumes from the recorded position. A view stored
    under another ``SCHEMA_VERSION`` is dropped with its tracking and rebuilt from 0."""

    SCHEMA_VERSION: ClassVar[int]
    TABLES: ClassVar[Sequence[str]]  # CREATE statements
    VIEW_TABLES: ClassVar[Sequence[str]]  # the tables to drop on a version change

    def construct_create_table_statements(self) -> list[str]:
        return super().construct_create_table_statements() + list(self.TABLES)

    def create_table(self) -> None:
        with self.datastore.transaction(commit=True) as cursor:
            cursor.execute("CREATE TABLE IF NOT EXISTS view_schema (version INTEGER)")
            cursor.execute("SELECT version FROM view_schema")
            row = cursor.fetchone()
            if row is None or row[0] != self.SCHEMA_VERSION:
                for table in self.VIEW_TABLES:
                    cursor.execute(f"DROP TABLE IF EXISTS {table}")
                cursor.execute("DROP TABLE IF EXISTS tracking")
                cursor.execute("DELETE FROM view_schema")
                cursor.execute("INSERT INTO view_schema VALUES (?)", (self.SCHEMA_VERSION,))
        create_tracking_table(super().create_table)

    def process(
        self, events: Sequence[Any], tracking: Tracking, *, after: int | None = None
    ) -> None:
        """Apply ``events`` and move the tracking position to ``tracking``. With ``after``
        (the position the caller believes the view is at), raise ``IntegrityError`` unless
        the view is there: a rebuild may have switched the view to a later position, and
        applying an event twice would corrupt counts."""

        def write(cursor: SQLiteCursor) -> None:
            for event in events:
                self.project(event, cursor)

        self.commit(write, tracking, after=after)
        self.processed(events)

    def commit(
        self, write: Callable[[SQLiteCursor], None], tracking: Tracking, *, after: int | None
    ) -> None:
        """Run ``write`` and move the tracking position, in one transaction (``after`` as in
        ``process``). The rebuild's fast path writes rows this way without events."""
        with self.datastore.transaction(commit=True) as cursor:
            write_lock_first(cursor)
            if after is not None:
                current = self._max_tracking_id(tracking.application_name, cursor) or 0
                if current != after:
                    raise IntegrityError(f"view at {current}, not {after}")
            write(cursor)
            self._insert_tracking(cursor, tracking)

    def project(self, event: Any, cursor: SQLiteCursor) -> None:
        raise NotImplementedError

    def processed(self, events: Sequence[Any]) -> None:
        """After the transaction committed: refresh any in-memory state."""

    def reload(self) -> None:
        """The rows changed under this process (a rebuild switched them): reload any
        in-memory state from them."""

    def position(self, application_name: str) -> int:
        return self.max_tracking_id(application_name) or 0

    def _column(self, sql: str, params: tuple[Any, ...]) -> list[str]:
        with self.datastore.transaction(commit=False) as cursor:
            cursor.execute(sql, params)
            return [row[0] for row in cursor.fetchall()]
