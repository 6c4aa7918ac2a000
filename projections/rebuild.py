"""Rebuild a view from position 0 beside the live one, then switch in one transaction.

The fresh copy is an ordinary view of the same class in a file of its own
(``<view>.db.rebuild``), so the view's own projection code builds it and its tracking row
makes the build resumable: after a crash or ``kill -9`` the next run continues from the
fresh copy's position. The switch takes the live view's write lock (the live runners wait),
brings the fresh copy to the live view's position, compares the two, and replaces the live
rows and tracking with the fresh ones in that one transaction, so a reader (WAL) sees either
the old view or the new one, never a mix. Readers keep being served from the old copy.
"""

from __future__ import annotations

import contextlib
import fcntl
import gc
import os
import sqlite3
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import IO, Any

from eventsourcing.application import Application
from eventsourcing.persistence import Tracking
from eventsourcing.sqlite import SQLiteCursor

from projections.fast_path import RowProjection
from projections.grants_rows import GRANTS_ROWS
from projections.grants_view import GrantsView
from projections.keys_rows import KEYS_ROWS
from projections.keys_view import KeysView
from projections.stored_log import Row, read_rows, readable
from projections.usage_rows import USAGE_ROWS
from projections.usage_view import UsageView
from projections.versioned_view import VersionedView
from projections.view_store import (
    is_postgres_location,
    open_view_datastore,
    split_location,
    stored_in_postgres,
)

# Rows per page (and transaction) of the fresh copy.
BATCH = 20000
# (the position a page ends at, what writes its rows into the fresh copy)
Pages = Iterator[tuple[int, Callable[[SQLiteCursor], None]]]
ROW_PROJECTIONS: dict[type[VersionedView], RowProjection] = {
    KeysView: KEYS_ROWS,
    GrantsView: GRANTS_ROWS,
    UsageView: USAGE_ROWS,
}


class RebuildRunning(Exception):
    """Another rebuild of the same view holds its lock."""


@dataclass
class Switched:
    position: int  # the log position both copies were compared at
    head: int  # the live view's position after the switch
    differences: int  # rows that differed between the live and the rebuilt view
    seconds: float  # how long the live view's write lock was held


@contextlib.contextmanager
def rebuild_lock(live_path: str) -> Iterator[object]:
    """One rebuild per view: an advisory lock the kernel (or PostgreSQL, for a view
    there) releases when the holder dies, so a killed rebuild never leaves a stale lock."""
    if is_postgres_location(live_path):
        with postgres_rebuild_lock(live_path) as held:
            yield held
        return
    with _file_lock(live_path) as handle:
        yield handle


@contextlib.contextmanager
def postgres_rebuild_lock(live_path: str) -> Iterator[object]:
    import psycopg

    url, schema = split_location(live_path)
    with psycopg.connect(url, autocommit=True, connect_timeout=10) as conn:
        key = f"{schema}.rebuild"
        row = conn.execute("SELECT pg_try_advisory_lock(hashtext(%s))", (key,)).fetchone()
        if not row or not row[0]:
            raise RebuildRunning(f"another rebuild of the {schema} view is running")
        yield conn  # the session ends with the block: PostgreSQL releases the lock


@contextlib.contextmanager
def _file_lock(live_path: str) -> Iterator[IO[str]]:
    handle = open(f"{live_path}.rebuild.lock", "w")  # noqa: SIM115 (held for the block)
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RebuildRunning(f"another rebuild of {live_path} is running") from None
        handle.write(str(os.getpid()))
        handle.flush()
        yield handle
    finally:
        handle.close()


class Rebuild:
    """Builds ``view_class`` from the logs of ``apps`` into ``<live_path>.rebuild``."""

    def __init__(
        self,
        apps: Sequence[Application],
        view_class: type[VersionedView],
        live_path: str,
        *,
        batch: int = BATCH,
    ) -> None:
        self.apps, self.view_class, self.live_path = apps, view_class, live_path
        self.postgres = is_postgres_location(live_path)
        # PostgreSQL: a schema of its own beside the live one (same database, so the
        # switch copies rows in one transaction); SQLite: a file beside the live one.
        self.fresh_path = f"{live_path}_rebuild" if self.postgres else f"{live_path}.rebuild"
        self.batch = batch
        # The view's projection over stored rows, if it has one (the fast path). Its
        # statements are written for SQLite: a view kept in PostgreSQL is rebuilt through
        # the view's own projection of events.
        self.rows = None if self.postgres else ROW_PROJECTIONS.get(view_class)
        self.fresh = view_class(open_view_datastore(self.fresh_path))
        self.fresh.create_table()
        # > 0: a resumed rebuild
        self.positions = {app.name: self.fresh.position(app.name) for app in apps}

    @property
    def position(self) -> int:
        return sum(self.positions.values())

    def head(self) -> int:
        return sum(app.recorder.max_notification_id() or 0 for app in self.apps)

    def build(
        self, advance: Callable[[int], None] = lambda n: None, stop: Mapping[str, int] | None = None
    ) -> int:
        """Project the logs into the fresh copy up to ``stop`` (default: their heads, as
        they are when the build starts). Returns the log positions covered; ``advance`` is
        called with the positions each committed page covered."""
        with _no_cycle_collection():
            return self._build(advance, stop)

    def _build(self, advance: Callable[[int], None], stop: Mapping[str, int] | None) -> int:
        built = 0
        for app in self.apps:
            until = (app.recorder.max_notification_id() or 0) if stop is None else stop[app.name]
            after = self.positions[app.name]
            if after >= until:
                continue
            rows = self.rows if self.rows and self.rows.usable() and readable(app) else None
            pages = self._event_pages if rows is None else partial(self._row_pages, rows)
            for last, write in pages(app, after, until):
                before = self.positions[app.name]
                self.fresh.commit(write, Tracking(app.name, last), after=before)
                self.positions[app.name] = last
                built += last - before
                advance(last - before)
        return built

    def _row_pages(self, rows: RowProjection, app: Application, after: int, until: int) -> Pages:
        """The fast path: the view's topics as stored rows, straight into its tables. The
        next page is read in a thread while this one is written (SQLite lets go of the
        GIL while it steps). A short page means no row of those topics up to ``until``."""
        read = partial(read_rows, app, stop=until, limit=self.batch, topics=rows.topics)
        with ThreadPoolExecutor(1, thread_name_prefix="rebuild-read") as reader:
            pending: Future[list[Row]] | None = reader.submit(read, after)
            while pending is not None:
                page = pending.result()
                last = page[-1][0] if len(page) == self.batch else until
                pending = reader.submit(read, last) if last < until else None
                yield last, rows.statements(page).run

    def _event_pages(self, app: Application, after: int, until: int) -> Pages:
        """Events through the library's mapper and the view's own ``project``."""
        while after < until:
            notifications = app.recorder.select_notifications(
                start=after, limit=self.batch, stop=until, inclusive_of_start=False
            )
            events = [app.mapper.to_domain_event(n) for n in notifications]
            after = notifications[-1].id if notifications else until
            yield after, partial(self._project, events)

    def _project(self, events: Sequence[Any], cursor: SQLiteCursor) -> None:
        for event in events:
            self.fresh.project(event, cursor)

    def switch(self, wait: float = 3.0) -> Switched:
        """Replace the live view with the fresh copy, atomically, then remove the copy.

        First give the live view up to ``wait`` seconds to reach the fresh copy's position
        (a running server's runners follow the log; a view that polls once a second may
        be behind), so that both can be compared at one position."""
        if self.postgres:
            return self._switch_postgres(wait)
        live = sqlite3.connect(self.live_path, timeout=30, isolation_level=None)
        try:
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline and any(
                _live_position(live, name) < position for name, position in self.positions.items()
            ):
                time.sleep(0.05)
            live.execute("ATTACH DATABASE ? AS fresh", (self.fresh_path,))
            started = time.monotonic()
            # Take the live file's write lock only (BEGIN IMMEDIATE would also lock the
            # attached fresh file, which the catch-up below still writes through its own
            # connection): a write statement locks just the database it writes.
            live.execute("BEGIN")
            live.execute("UPDATE main.tracking SET notification_id = notification_id WHERE 0")
            try:
                at = {app.name: _live_position(live, app.name) for app in self.apps}
                # Both copies at the live position: compare, then switch there, so the live
                # runners simply continue. (This transaction's read snapshot of the fresh
                # file starts at the comparison, so nothing later could be copied anyway.)
                self.build(stop=at)
                same_place = all(self.positions[name] == at[name] for name in at)
                differences = self._differences(live) if same_place else -1
                for table in self.view_class.VIEW_TABLES:
                    live.execute(f"DELETE FROM main.{table}")  # noqa: S608 (our own names)
                    live.execute(f"INSERT INTO main.{table} SELECT * FROM fresh.{table}")  # noqa: S608
                live.execute("DELETE FROM main.tracking")
                live.execute("INSERT INTO main.tracking SELECT * FROM fresh.tracking")
                live.execute("COMMIT")
            except BaseException:
                live.execute("ROLLBACK")
                raise
            held = time.monotonic() - started
            live.execute("DETACH DATABASE fresh")
        finally:
            live.close()
        self.fresh.datastore.close()
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                Path(self.fresh_path + suffix).unlink()
        return Switched(sum(at.values()), self.position, differences, round(held, 4))

    def _switch_postgres(self, wait: float) -> Switched:
        """As ``switch``, in PostgreSQL: the live view's write lock is its advisory lock
        (every runner's write takes it), held by this one transaction; readers go on
        reading the old rows (MVCC) until it commits, then see only the new ones."""
        import psycopg
        from psycopg import sql

        url, live = split_location(self.live_path)
        fresh = split_location(self.fresh_path)[1]
        with psycopg.connect(url, connect_timeout=10) as conn:
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline and any(
                _pg_position(conn, live, name) < position
                for name, position in self.positions.items()
            ):
                conn.rollback()
                time.sleep(0.05)
            conn.rollback()
            started = time.monotonic()
            conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (live,))
            at = {app.name: _pg_position(conn, live, app.name) for app in self.apps}
            self.build(stop=at)
            same_place = all(self.positions[name] == at[name] for name in at)
            differences = 0 if same_place else -1
            for table in (*self.view_class.VIEW_TABLES, "tracking"):
                names = {"live": sql.Identifier(live, table), "fresh": sql.Identifier(fresh, table)}
                if same_place and table != "tracking":
                    for a, b in (("live", "fresh"), ("fresh", "live")):
                        query = sql.SQL(
                            "SELECT COUNT(*) FROM (SELECT * FROM {} EXCEPT SELECT * FROM {}) AS d"
                        ).format(names[a], names[b])
                        differences += int(conn.execute(query).fetchone()[0])  # type: ignore[index]
                conn.execute(sql.SQL("DELETE FROM {}").format(names["live"]))
                conn.execute(
                    sql.SQL("INSERT INTO {} SELECT * FROM {}").format(names["live"], names["fresh"])
                )
            conn.commit()
            held = time.monotonic() - started
            self.fresh.datastore.close()
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(fresh)))
            conn.commit()
        return Switched(sum(at.values()), self.position, differences, round(held, 4))

    def _differences(self, live: sqlite3.Connection) -> int:
        total = 0
        for table in self.view_class.VIEW_TABLES:
            for a, b in (("main", "fresh"), ("fresh", "main")):
                (count,) = live.execute(
                    f"SELECT COUNT(*) FROM (SELECT * FROM {a}.{table} "  # noqa: S608
                    f"EXCEPT SELECT * FROM {b}.{table})"
                ).fetchone()
                total += count
        return total


@contextlib.contextmanager
def _no_cycle_collection() -> Iterator[None]:
    """A page makes tens of thousands of short-lived dicts and tuples, none in a cycle;
    the cyclic collector's passes over them were a third of the build's time."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _live_position(live: sqlite3.Connection, application_name: str) -> int:
    row = live.execute(
        "SELECT notification_id FROM main.tracking WHERE application_name = ?",
        (application_name,),
    ).fetchone()
    return int(row[0]) if row else 0


def _pg_position(conn: Any, schema: str, application_name: str) -> int:
    from psycopg import sql

    query = sql.SQL("SELECT notification_id FROM {} WHERE application_name = %s").format(
        sql.Identifier(schema, "tracking")
    )
    row = conn.execute(query, (application_name,)).fetchone()
    return int(row[0]) if row else 0


def stored(path: str) -> tuple[int | None, dict[str, int]]:
    """A view file's schema version and tracking positions, read without writing (status
    must not create, migrate or lock anything)."""
    if is_postgres_location(path):
        return stored_in_postgres(path)
    if not Path(path).exists():
        return None, {}
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=15)
    try:
        version = None
        with contextlib.suppress(sqlite3.OperationalError):
            row = db.execute("SELECT version FROM view_schema").fetchone()
            version = int(row[0]) if row else None
        positions: dict[str, int] = {}
        with contextlib.suppress(sqlite3.OperationalError):
            rows = db.execute("SELECT application_name, notification_id FROM tracking")
            positions = {name: int(pos) for name, pos in rows if not name.startswith("__")}
        return version, positions
    finally:
        db.close()
