"""A ledger's stored events as plain rows, for the rebuild's fast path.

Rebuilding a view spends most of its time turning stored events back into domain event
objects (the library's JSON transcoder walks every decoded dict in Python, then the mapper
builds the event). A view needs a few fields of each event, so the fast path reads the
rows as stored, filtered by topic in the query, and decodes their state with orjson.

The stored state is the library's JSON (``JSONTranscoder``): a plain JSON object of the
event's fields except ``originator_id`` and ``originator_version``, where a value of a
registered type is written as ``{"_type_": <name>, "_data_": <text>}`` (datetimes as
``datetime_iso``: ``datetime.isoformat()``). A mapper with a cipher or compressor, or an
event class with upcasters, leaves that format, so those ledgers keep the mapper's path.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from datetime import datetime
from functools import lru_cache
from typing import Any
from uuid import UUID

from eventsourcing.application import Application
from eventsourcing.persistence import JSONTranscoder
from eventsourcing.sqlite import SQLiteApplicationRecorder

# (notification id, the originator's id as stored (see ``id_text``), topic, stored state)
Row = tuple[int, str | UUID, str, bytes]


def readable(app: Application) -> bool:
    """Whether the stored state of ``app``'s events is the plain JSON decoded here."""
    mapper = app.mapper
    return (
        mapper.cipher is None
        and mapper.compressor is None
        and type(mapper.transcoder) is JSONTranscoder
    )


def read_rows(
    app: Application, after: int, stop: int, limit: int, topics: Sequence[str]
) -> list[Row]:
    """Up to ``limit`` rows with one of ``topics``, after position ``after`` up to ``stop``."""
    recorder = app.recorder
    if isinstance(recorder, SQLiteApplicationRecorder):
        # The recorder's own query would also build a UUID per row; the text is enough.
        marks = ",".join("?" * len(topics))
        sql = (
            f"SELECT rowid, originator_id, topic, state FROM {recorder.events_table_name} "  # noqa: S608 (the library's table name)
            f"WHERE rowid > ? AND rowid <= ? AND topic IN ({marks}) ORDER BY rowid LIMIT ?"
        )
        with recorder.datastore.transaction(commit=False) as cursor:
            plain = cursor.sqlite_cursor
            plain.row_factory = None  # tuples: a third cheaper to fetch than sqlite3.Row
            plain.execute(sql, (after, stop, *topics, limit))
            return plain.fetchall()
    postgres = sys.modules.get("eventsourcing.postgres")  # loaded if the store is PostgreSQL
    if postgres is not None and isinstance(recorder, postgres.PostgresApplicationRecorder):
        return _postgres_rows(recorder, after, stop, limit, topics)
    notifications = recorder.select_notifications(
        start=after, limit=limit, stop=stop, topics=list(topics), inclusive_of_start=False
    )
    return [(n.id, n.originator_id, n.topic, n.state) for n in notifications]


def _postgres_rows(
    recorder: Any, after: int, stop: int, limit: int, topics: Sequence[str]
) -> list[Row]:
    """The recorder's own query makes a dict and a Notification per row; tuples of the
    four columns cost less. Binary results: the state comes as its bytes, not as hex text
    to decode; the id as text hashes faster than a UUID (``id_text``'s cache)."""
    # imported here: only a PostgreSQL store needs psycopg
    from psycopg.rows import tuple_row
    from psycopg.sql import SQL, Identifier

    statement = SQL(
        "SELECT notification_id, originator_id::text, topic, state FROM {schema}.{table} "
        "WHERE notification_id > %s AND notification_id <= %s AND topic = ANY(%s) "
        "ORDER BY notification_id LIMIT %s"
    ).format(
        schema=Identifier(recorder.datastore.schema), table=Identifier(recorder.events_table_name)
    )
    with recorder.datastore.get_connection() as conn, conn.cursor(row_factory=tuple_row) as cur:
        cur.execute(statement, (after, stop, list(topics), limit), binary=True)
        return cur.fetchall()


@lru_cache(maxsize=1 << 16)
def id_text(stored: str | UUID) -> str:
    """A row's originator id as the views key rows, str(UUID): SQLite stores 32 hex
    digits, PostgreSQL a UUID. Cached: a log has many events per key."""
    return str(stored if isinstance(stored, UUID) else UUID(stored))


def epoch(value: dict[str, Any] | None) -> float | None:
    """A stored datetime field (``datetime_iso``) as epoch seconds, as the views keep it."""
    if value is None:
        return None
    return datetime.fromisoformat(value["_data_"]).timestamp()


def day(value: dict[str, Any]) -> str:
    """A stored datetime's date (in its own time zone, UTC for events), ISO formatted."""
    return datetime.fromisoformat(value["_data_"]).date().isoformat()
