"""Copy a SQLite data directory's ledgers and keystore into PostgreSQL, in log order.

Events are copied as stored (topic, state bytes, originator id and version), so nothing is
decoded or re-encoded; the target assigns its own positions in the same order. A second
run continues after the events already copied, and so is a no-op on a finished copy; a
target whose log does not begin with the source's is refused.
"""

from __future__ import annotations

from collections.abc import Callable

from eventsourcing.application import Application
from eventsourcing.persistence import StoredEvent

from eventstore.database import Database, StoreError

BATCH = 2000
KEYSTORE_TABLES = ("wrapping_keys", "import_keys", "audit_signing_keys")


def copy_log(
    source: Application, target: Application, advance: Callable[[int], None] = lambda n: None
) -> int:
    """Append to ``target`` every event of ``source`` it does not have yet; returns how many."""
    done = _count(target)
    if done:
        _check_prefix(source, target, done)
    copied, position, skipped = 0, 0, 0
    while True:
        notifications = source.recorder.select_notifications(
            start=position, limit=BATCH, inclusive_of_start=False
        )
        if not notifications:
            return copied
        position = notifications[-1].id
        if skipped + len(notifications) <= done:
            skipped += len(notifications)
            continue
        fresh = notifications[done - skipped :] if skipped < done else notifications
        skipped = done
        target.recorder.insert_events(
            [StoredEvent(n.originator_id, n.originator_version, n.topic, n.state) for n in fresh]
        )
        copied += len(fresh)
        advance(len(fresh))


def _count(app: Application) -> int:
    count, position = 0, 0
    while notifications := app.recorder.select_notifications(
        start=position, limit=10_000, inclusive_of_start=False
    ):
        count += len(notifications)
        position = notifications[-1].id
    return count


def _check_prefix(source: Application, target: Application, done: int) -> None:
    first = source.recorder.select_notifications(start=None, limit=1)
    theirs = target.recorder.select_notifications(start=None, limit=1)
    same = (
        first
        and theirs
        and (first[0].originator_id, first[0].originator_version)
        == (
            theirs[0].originator_id,
            theirs[0].originator_version,
        )
    )
    if not same or done > _count(source):
        raise StoreError(f"the target's {target.name} log is not a copy of this data directory's")


def copy_keystore(source_path: str, target_url: str) -> int:
    """Copy the wrapping keys and audit-signing keys (still wrapped by the same root key)."""
    source, target = Database(source_path), Database(target_url)
    copied = 0
    try:
        for table in KEYSTORE_TABLES:
            rows = source.execute(f"SELECT * FROM {table}").fetchall()  # noqa: S608
            for row in rows:
                marks = ", ".join("?" for _ in row)
                cursor = target.execute(
                    f"INSERT INTO {table} VALUES ({marks}) ON CONFLICT DO NOTHING",  # noqa: S608
                    tuple(row),
                )
                copied += cursor.rowcount
    finally:
        source.close()
        target.close()
    return copied
