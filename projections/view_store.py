"""Where a view's rows live: a SQLite file (the embedded default) or a schema of its own in
the PostgreSQL store that every keyledger process shares.

A view is written once for both: its SQL is SQLite's, and ``PostgresViewDatastore`` offers
the same ``transaction(commit=...)`` the library's ``SQLiteDatastore`` does, rewriting each
statement for PostgreSQL on the way (placeholders, ``INSERT OR REPLACE``, column types).
Each view gets its own schema (``search_path``), so two views' ``tracking`` tables and the
views' plain table names never meet.

Exactly once across processes: every write transaction on a PostgreSQL view first takes a
transaction-level advisory lock named after the view's schema, as SQLite's one writer lock
does for a file. A runner's ``VersionedView.process(..., after=position)`` therefore reads
the tracking position under that lock; a runner in another process that got there first
leaves it a different position, so the late one gets ``IntegrityError``, adopts the view's
position and rows (``reload``), and applies nothing twice.
"""

from __future__ import annotations

import contextlib
import functools
import re
from collections.abc import Iterator, Sequence
from typing import Any
from urllib.parse import urlsplit

from eventsourcing.persistence import (
    DatabaseError,
    IntegrityError,
    OperationalError,
    PersistenceError,
)
from eventsourcing.sqlite import SQLiteDatastore

_SCHEMES = ("postgresql", "postgres")
SCHEMA_PREFIX = "keyledger_view_"


def is_postgres_location(location: str) -> bool:
    return urlsplit(location).scheme in _SCHEMES


def postgres_location(url: str, view: str) -> str:
    """A view's place in a PostgreSQL store: the URL, with the view's schema as fragment."""
    return f"{url}#{SCHEMA_PREFIX}{view}"


def split_location(location: str) -> tuple[str, str]:
    url, _, schema = location.rpartition("#")
    return url, schema


def is_shared(datastore: object) -> bool:
    """Written by other processes' runners too (a PostgreSQL view): positions and rows
    may move without this process's runner."""
    return bool(getattr(datastore, "shared", False))


def open_view_datastore(location: str, lock_timeout: int = 15) -> SQLiteDatastore:
    if is_postgres_location(location):
        return PostgresViewDatastore(*split_location(location))
    return SQLiteDatastore(location, lock_timeout=lock_timeout)


class Row(tuple):  # type: ignore[type-arg]
    """A result row read by position or by column name, as sqlite3.Row is."""

    names: tuple[str, ...] = ()

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            return super().__getitem__(self.names.index(key))
        return super().__getitem__(key)

    def keys(self) -> tuple[str, ...]:
        return self.names


@functools.lru_cache(maxsize=256)
def _row_class(names: tuple[str, ...]) -> type[Row]:
    return type("Row", (Row,), {"names": names})


def _row_factory(cursor: Any) -> Any:
    return _row_class(tuple(column.name for column in cursor.description or ()))


@functools.lru_cache(maxsize=512)
def _ddl(sql: str) -> str:
    # REAL is 4 bytes in PostgreSQL (epoch seconds would lose minutes), INTEGER 4 bytes
    # (notification ids are bigint); SQLite's storage hints have no PostgreSQL meaning.
    sql = re.sub(r"\bREAL\b", "DOUBLE PRECISION", sql)
    sql = re.sub(r"\bINTEGER\b", "BIGINT", sql)
    sql = re.sub(r"\bBLOB\b", "BYTEA", sql)
    return sql.replace("WITHOUT ROWID", "")


_REPLACE = re.compile(r"^\s*INSERT OR (REPLACE|IGNORE) INTO (\w+)\s*(\(([^)]*)\))?", re.I)


class _Cursor:
    """The cursor a view's code sees: SQLite's SQL in, PostgreSQL's out."""

    def __init__(self, cursor: Any, keys: dict[str, tuple[list[str], list[str]]]) -> None:
        self._cursor = cursor
        self._keys = keys  # table -> (primary key columns, all columns), per datastore

    def execute(self, sql: str, params: Sequence[Any] | dict[str, Any] | None = None) -> None:
        if sql.lstrip().upper().startswith(("CREATE", "DROP", "ALTER")):
            sql = _ddl(sql)
        elif sql.strip().upper() == "BEGIN":
            return  # psycopg opens the transaction itself
        match = _REPLACE.match(sql)
        if match:
            sql = self._upsert(sql, match)
        if params:
            sql = sql.replace("%", "%%")
            if isinstance(params, dict):
                sql = re.sub(r"(?<!:):(\w+)", r"%(\1)s", sql)
            else:
                sql = sql.replace("?", "%s")
            self._cursor.execute(sql, params)
        else:
            self._cursor.execute(sql)

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        for row in rows:
            self.execute(sql, row)

    def fetchone(self) -> Any:
        return self._cursor.fetchone()

    def fetchall(self) -> Any:
        return self._cursor.fetchall()

    def _upsert(self, sql: str, match: re.Match[str]) -> str:
        """SQLite's INSERT OR REPLACE / OR IGNORE as PostgreSQL's ON CONFLICT on the
        table's primary key (the only unique key a view table relies on)."""
        table = match.group(2)
        primary, columns = self._table(table)
        named = [c.strip() for c in match.group(4).split(",")] if match.group(4) else columns
        head = f"INSERT INTO {table} " + (f"({match.group(4)}) " if match.group(4) else "")
        sql = head + sql[match.end() :]
        update = [c for c in named if c not in primary]
        if match.group(1).upper() == "IGNORE" or not update:
            return f"{sql} ON CONFLICT DO NOTHING"
        assignments = ", ".join(f"{c} = EXCLUDED.{c}" for c in update)
        return f"{sql} ON CONFLICT ({', '.join(primary)}) DO UPDATE SET {assignments}"

    def _table(self, table: str) -> tuple[list[str], list[str]]:
        if table not in self._keys:
            self._cursor.execute(
                "SELECT a.attname, COALESCE(a.attnum = ANY(i.indkey), false) "
                "FROM pg_attribute a LEFT JOIN pg_index i "
                "ON i.indrelid = a.attrelid AND i.indisprimary "
                "WHERE a.attrelid = to_regclass(%s) AND a.attnum > 0 AND NOT a.attisdropped "
                "ORDER BY a.attnum",
                (table,),
            )
            rows = self._cursor.fetchall()
            self._keys[table] = ([r[0] for r in rows if r[1]], [r[0] for r in rows])
        return self._keys[table]


class PostgresViewDatastore(SQLiteDatastore):
    """A view's tables in their own PostgreSQL schema, behind SQLiteDatastore's interface
    (the library's SQLite recorders, which the views extend, accept nothing else)."""

    def __init__(self, url: str, schema: str, pool_size: int = 4) -> None:
        # SQLiteDatastore.__init__ would open a SQLite pool: this store has its own.
        from psycopg_pool import ConnectionPool

        if not re.fullmatch(r"[a-z_][a-z0-9_]*", schema):
            raise ValueError(f"not a schema name: {schema!r}")
        self.url, self.schema = url, schema
        self.shared = True  # every process's runners write it (PollingRunner._adopt)
        self.single_row_tracking = True
        self.originator_id_type = "uuid"
        self._keys: dict[str, tuple[list[str], list[str]]] = {}
        self._create_schema()
        self.pool = ConnectionPool(
            url,
            min_size=1,
            max_size=pool_size,
            kwargs={"options": f"-c search_path={schema}", "connect_timeout": 10},
            open=True,
            # After PostgreSQL restarts, a pooled connection is dead: checked when taken, it
            # is replaced rather than failing a runner's poll or a request. A connection is
            # waited for at most 2 s (as the ledgers): longer is an outage, refused at once.
            check=ConnectionPool.check_connection,
            timeout=2,
        )

    def _create_schema(self) -> None:
        import psycopg
        from psycopg import sql

        # Two processes creating the schema at once: the loser's unique violation means
        # the schema is there, which is all it wanted.
        with (
            psycopg.connect(self.url, autocommit=True, connect_timeout=10) as conn,
            contextlib.suppress(psycopg.errors.UniqueViolation),
        ):
            conn.execute(
                sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(self.schema))
            )

    @contextlib.contextmanager
    def transaction(self, *, commit: bool) -> Iterator[Any]:
        import psycopg

        try:
            with self.pool.connection() as conn:
                try:
                    with conn.cursor(row_factory=_row_factory) as cursor:
                        if commit:
                            cursor.execute(
                                "SELECT pg_advisory_xact_lock(hashtext(%s))", (self.schema,)
                            )
                        yield _Cursor(cursor, self._keys)
                    if commit:
                        conn.commit()
                    else:
                        conn.rollback()
                except BaseException:
                    conn.rollback()
                    raise
        except (psycopg.errors.UndefinedTable, psycopg.OperationalError) as error:
            raise OperationalError(error) from error
        except psycopg.IntegrityError as error:
            raise IntegrityError(error) from error
        except psycopg.DatabaseError as error:
            raise DatabaseError(error) from error
        except psycopg.Error as error:
            raise PersistenceError(error) from error

    def close(self) -> None:
        pool = getattr(self, "pool", None)
        if pool is not None:
            pool.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()


def stored_in_postgres(location: str) -> tuple[int | None, dict[str, int]]:
    """A PostgreSQL view's schema version and tracking positions, read only."""
    import psycopg
    from psycopg import sql

    url, schema = split_location(location)
    with psycopg.connect(url, connect_timeout=10) as conn:
        conn.read_only = True
        version = None
        positions: dict[str, int] = {}
        found = conn.execute("SELECT to_regclass(%s)", (f"{schema}.view_schema",)).fetchone()
        if found and found[0]:
            query = sql.SQL("SELECT version FROM {}.view_schema").format(sql.Identifier(schema))
            row = conn.execute(query).fetchone()
            version = int(row[0]) if row else None
        found = conn.execute("SELECT to_regclass(%s)", (f"{schema}.tracking",)).fetchone()
        if found and found[0]:
            query = sql.SQL("SELECT application_name, notification_id FROM {}.tracking").format(
                sql.Identifier(schema)
            )
            rows = conn.execute(query).fetchall()
            positions = {name: int(pos) for name, pos in rows if not name.startswith("__")}
        return version, positions
