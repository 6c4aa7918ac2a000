"""The audit trail view: CloudTrail records from both ledgers, hash-chained, with digests.

Chain order. Each ledger's notification log is already a total, durable commit order,
and a rebuild reads it again the same way; the order in which a live runner happens to
interleave the two ledgers is not reproducible. So there are two chains, one per ledger
(KeyLedger, UsageLedger), each over its records in notification order:
``hash[n] = SHA-256(hash[n-1] || record bytes)`` with ``hash[0] = 64 zeros``, records as
canonical JSON (sorted keys). A digest signs both chain heads at once, and chains to the
digest before it (CloudTrail log file integrity validation, security.md section 7.1).

With a PostgreSQL store the view is one schema in that database, written by every process
(``projections/view_store.py``): each write transaction holds the view's advisory lock, and
reads both the runner's expected position and the chain head under it, so each record is
appended once and each chain (and the digest chain) stays one line whoever writes.
"""

from __future__ import annotations

import hashlib
import sqlite3
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from eventsourcing.persistence import IntegrityError, OperationalError, Tracking
from eventsourcing.sqlite import (
    SQLiteConnection,
    SQLiteConnectionPool,
    SQLiteCursor,
    SQLiteDatastore,
    SQLiteTrackingRecorder,
)

from domain.usage import RequestRecorded
from projections.audit_record import (
    KEY_LEDGER,
    USAGE_LEDGER,
    group_by_request,
    key_events_record,
    new_arns,
    usage_record,
    username,
)
from projections.versioned_view import create_tracking_table, write_lock_first
from projections.view_store import is_postgres_location, is_shared, open_view_datastore

GENESIS = "0" * 64
LEDGERS = (KEY_LEDGER, USAGE_LEDGER)
_TABLES = [
    "CREATE TABLE IF NOT EXISTS audit_records (ledger TEXT NOT NULL, "
    "chain_pos INTEGER NOT NULL, position INTEGER NOT NULL, event_id TEXT NOT NULL, "
    "event_time REAL NOT NULL, event_name TEXT NOT NULL, event_source TEXT NOT NULL, "
    "read_only INTEGER NOT NULL, username TEXT, access_key_id TEXT, principal TEXT, "
    "account TEXT, key_arn TEXT, error_code TEXT, request_id TEXT, record BLOB NOT NULL, "
    "hash TEXT NOT NULL, PRIMARY KEY (ledger, chain_pos))",
    "CREATE INDEX IF NOT EXISTS audit_by_time ON audit_records (event_time)",
    "CREATE INDEX IF NOT EXISTS audit_by_event_id ON audit_records (event_id)",
    "CREATE INDEX IF NOT EXISTS audit_by_name ON audit_records (event_name, event_time)",
    "CREATE INDEX IF NOT EXISTS audit_by_user ON audit_records (username, event_time)",
    "CREATE INDEX IF NOT EXISTS audit_by_access_key ON audit_records (access_key_id, event_time)",
    "CREATE INDEX IF NOT EXISTS audit_by_key ON audit_records (key_arn, event_time)",
    "CREATE TABLE IF NOT EXISTS audit_resources (ledger TEXT NOT NULL, "
    "chain_pos INTEGER NOT NULL, type TEXT NOT NULL, name TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS audit_resources_by_name ON audit_resources (name)",
    "CREATE TABLE IF NOT EXISTS audit_arns (aggregate_id TEXT PRIMARY KEY, arn TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS audit_digests (seq INTEGER PRIMARY KEY, "
    "digest BLOB NOT NULL, signature TEXT NOT NULL)",
]
_COLUMNS = (
    "ledger, chain_pos, position, event_id, event_time, event_name, event_source, read_only, "
    "username, access_key_id, principal, account, key_arn, error_code, request_id, record, hash"
)


def canonical(record: Mapping[str, Any]) -> bytes:
    return orjson.dumps(record, option=orjson.OPT_SORT_KEYS)


def link(previous: str, record_bytes: bytes) -> str:
    return hashlib.sha256(bytes.fromhex(previous) + record_bytes).hexdigest()


@dataclass(frozen=True)
class StoredRecord:
    ledger: str
    chain_pos: int
    position: int
    event_time: float
    record: bytes
    hash: str

    def as_dict(self) -> dict[str, Any]:
        return dict(orjson.loads(self.record))


@dataclass(frozen=True)
class Filters:
    """What an auditor may ask for; every field is optional."""

    account: str | None = None
    event_id: str | None = None
    event_name: str | None = None
    read_only: bool | None = None
    username: str | None = None
    access_key_id: str | None = None
    event_source: str | None = None
    resource_type: str | None = None
    resource_name: str | None = None
    key_arn: str | None = None
    key_id: str | None = None
    principal: str | None = None
    outcome: str | None = None  # "success" | "failure" | an error code
    start: float | None = None
    end: float | None = None


class _RebuildableConnectionPool(SQLiteConnectionPool):
    """synchronous=NORMAL: in WAL mode a power loss may drop the view's last commits, never
    corrupt it; records come back from the ledgers (their tracking rolls back with them),
    and a lost digest is replaced by the next one (https://sqlite.org/pragma.html#pragma_synchronous).
    The ledgers themselves stay synchronous=FULL."""

    def _create_connection(self) -> SQLiteConnection:
        connection = super()._create_connection()
        connection.cursor().execute("PRAGMA synchronous=NORMAL")
        return connection


def open_datastore(path: str) -> SQLiteDatastore:
    if is_postgres_location(path):
        return open_view_datastore(path)
    datastore = SQLiteDatastore(path, lock_timeout=15)
    pool = datastore.pool
    datastore.pool = _RebuildableConnectionPool(db_name=pool.db_name, lock_timeout=15)
    pool.close()
    return datastore


class AuditView(SQLiteTrackingRecorder):
    """Records and tracking commit together (exactly once); chain heads live in the rows."""

    def construct_create_table_statements(self) -> list[str]:
        return super().construct_create_table_statements() + _TABLES

    def create_table(self) -> None:
        create_tracking_table(super().create_table)
        self._arns = self._load_arns()

    def _load_arns(self) -> dict[str, str]:
        with self.datastore.transaction(commit=False) as cursor:
            cursor.execute("SELECT aggregate_id, arn FROM audit_arns")
            return {row[0]: row[1] for row in cursor.fetchall()}

    def position(self, application_name: str) -> int:
        return self.max_tracking_id(application_name) or 0

    # -- projecting ------------------------------------------------------------------

    def process_key_events(
        self, events: Sequence[tuple[int, Any]], tracking: Tracking, *, after: int | None = None
    ) -> None:
        """KeyLedger notifications (id, event): one record per request. With ``after`` (the
        position the caller believes the view is at), raise ``IntegrityError`` unless it is."""
        by_event = {id(event): notification_id for notification_id, event in events}
        with self.datastore.transaction(commit=True) as cursor:
            write_lock_first(cursor)
            self._expect(cursor, tracking, after)
            if self.shared:
                self._known_arns(cursor, [event for _, event in events])
            rows = _Rows(KEY_LEDGER, *self._head(cursor, KEY_LEDGER))
            for group in group_by_request([event for _, event in events]):
                arns = new_arns(group)
                if arns:
                    cursor.executemany(
                        "INSERT OR IGNORE INTO audit_arns VALUES (?, ?)", list(arns.items())
                    )
                    self._arns.update(arns)
                first = by_event[id(group[0])]
                rows.add(first, key_events_record(group, first, self._arns), group[0].timestamp)
            rows.write(cursor)
            self._insert_tracking(cursor, tracking)

    def process_usage(
        self,
        records: Sequence[tuple[int, RequestRecorded]],
        tracking: Tracking,
        *,
        after: int | None = None,
    ) -> None:
        with self.datastore.transaction(commit=True) as cursor:
            write_lock_first(cursor)
            self._expect(cursor, tracking, after)
            rows = _Rows(USAGE_LEDGER, *self._head(cursor, USAGE_LEDGER))
            for notification_id, recorded in records:
                rows.add(
                    notification_id, usage_record(recorded, notification_id), recorded.timestamp
                )
            rows.write(cursor)
            self._insert_tracking(cursor, tracking)

    @property
    def shared(self) -> bool:
        """Written by other processes too (PostgreSQL): positions and ARNs may move
        without this process's runner."""
        return is_shared(self.datastore)

    def _expect(self, cursor: SQLiteCursor, tracking: Tracking, after: int | None) -> None:
        # Read in the write transaction, so under the view's lock on PostgreSQL: a runner
        # whose batch another process has applied writes nothing and adopts the position.
        if after is None:
            return
        current = self._max_tracking_id(tracking.application_name, cursor) or 0
        if current != after:
            raise IntegrityError(f"audit view at {current}, not {after}")

    def _known_arns(self, cursor: SQLiteCursor, events: Sequence[Any]) -> None:
        """ARNs another process's runner recorded (it applied those keys' creation), for
        the aggregates of this batch that this process has not seen; just these, not the
        whole table, as a runner loses a race on most requests when two processes run."""
        wanted = {str(e.originator_id) for e in events}
        wanted |= {str(e.target_key_id) for e in events if getattr(e, "target_key_id", None)}
        missing = sorted(wanted - self._arns.keys())
        if not missing:
            return
        marks = ", ".join("?" * len(missing))
        cursor.execute(
            f"SELECT aggregate_id, arn FROM audit_arns WHERE aggregate_id IN ({marks})",  # noqa: S608
            missing,
        )
        self._arns.update({row[0]: row[1] for row in cursor.fetchall()})

    def _head(self, cursor: SQLiteCursor, ledger: str) -> tuple[int, str]:
        cursor.execute(
            "SELECT chain_pos, hash FROM audit_records WHERE ledger = ? "
            "ORDER BY chain_pos DESC LIMIT 1",
            (ledger,),
        )
        row = cursor.fetchone()
        return (row[0], row[1]) if row else (0, GENESIS)

    # -- queries ---------------------------------------------------------------------

    def heads(self) -> dict[str, tuple[int, str]]:
        with self.datastore.transaction(commit=False) as cursor:
            return {ledger: self._head(cursor, ledger) for ledger in LEDGERS}

    def count(self) -> int:
        with self.datastore.transaction(commit=False) as cursor:
            cursor.execute("SELECT COUNT(*) FROM audit_records")
            return int(cursor.fetchone()[0])

    def lookup(
        self, filters: Filters, limit: int, before: tuple[float, str, int] | None = None
    ) -> list[StoredRecord]:
        """Newest first: (event_time, ledger, chain_pos) descending, which a rebuild keeps."""
        clauses, args = _where(filters)
        if before is not None:
            clauses.append("(event_time, ledger, chain_pos) < (?, ?, ?)")
            args.extend(before)
        where = " AND ".join(clauses) or "1 = 1"  # PostgreSQL's WHERE takes no bare 1
        with self.datastore.transaction(commit=False) as cursor:
            sql = (
                "SELECT ledger, chain_pos, position, event_time, record, hash "  # noqa: S608
                f"FROM audit_records WHERE {where} "  # clauses are constants; values bound
                "ORDER BY event_time DESC, ledger DESC, chain_pos DESC LIMIT ?"
            )
            cursor.execute(sql, (*args, limit))
            return [StoredRecord(*row) for row in cursor.fetchall()]

    def chain(self, ledger: str, batch: int = 5000) -> Iterator[StoredRecord]:
        """Every record of one ledger's chain in chain order, streamed."""
        after = 0
        while True:
            with self.datastore.transaction(commit=False) as cursor:
                cursor.execute(
                    "SELECT ledger, chain_pos, position, event_time, record, hash "
                    "FROM audit_records WHERE ledger = ? AND chain_pos > ? "
                    "ORDER BY chain_pos LIMIT ?",
                    (ledger, after, batch),
                )
                rows = cursor.fetchall()
            if not rows:
                return
            for row in rows:
                yield StoredRecord(*row)
            after = rows[-1][1]

    def last_success(self, key_arn: str, operations: frozenset[str]) -> StoredRecord | None:
        """The newest successful record naming this key among ``operations``."""
        marks = ", ".join("?" * len(operations))
        with self.datastore.transaction(commit=False) as cursor:
            sql = (
                "SELECT ledger, chain_pos, position, event_time, record, hash "  # noqa: S608
                "FROM audit_records WHERE key_arn = ? AND error_code IS NULL "
                f"AND event_name IN ({marks}) ORDER BY event_time DESC, chain_pos DESC LIMIT 1"
            )
            cursor.execute(sql, (key_arn, *sorted(operations)))
            row = cursor.fetchone()
        return StoredRecord(*row) if row else None

    # -- digests ---------------------------------------------------------------------

    def digests(self) -> list[tuple[int, bytes, str]]:
        with self.datastore.transaction(commit=False) as cursor:
            cursor.execute("SELECT seq, digest, signature FROM audit_digests ORDER BY seq")
            return [(row[0], bytes(row[1]), row[2]) for row in cursor.fetchall()]

    def append_digest(self, make: Any, attempts: int = 20) -> tuple[int, bytes, str]:
        """``make(previous, heads) -> (digest bytes, signature)`` inside one write
        transaction, so two signers (the server, ``keyledger audit digest``) cannot both
        extend the same previous digest; the one that loses the race signs again."""
        for _ in range(attempts - 1):
            try:
                return self._append_digest(make)
            except (IntegrityError, OperationalError, sqlite3.OperationalError):
                time.sleep(0.05)
        return self._append_digest(make)

    def _append_digest(self, make: Any) -> tuple[int, bytes, str]:
        with self.datastore.transaction(commit=True) as cursor:
            write_lock_first(cursor)
            cursor.execute(
                "SELECT seq, digest, signature FROM audit_digests ORDER BY seq DESC LIMIT 1"
            )
            row = cursor.fetchone()
            previous = (row[0], bytes(row[1]), row[2]) if row else None
            heads = {ledger: self._head(cursor, ledger) for ledger in LEDGERS}
            data, signature = make(previous, heads)
            seq = (previous[0] if previous else 0) + 1
            cursor.execute("INSERT INTO audit_digests VALUES (?, ?, ?)", (seq, data, signature))
            return seq, data, signature


class _Rows:
    """One batch of one ledger's records, chained in order, written with executemany."""

    def __init__(self, ledger: str, pos: int, head: str) -> None:
        self.ledger, self.pos, self.head = ledger, pos, head
        self.records: list[tuple[Any, ...]] = []
        self.resources: list[tuple[str, int, str, str]] = []

    def add(self, position: int, record: dict[str, Any], when: datetime) -> None:
        data = canonical(record)
        self.pos += 1
        self.head = link(self.head, data)
        identity = record.get("userIdentity") or {}
        resources = record.get("resources") or []
        key_arns = [r["ARN"] for r in resources if ":key/" in r["ARN"]]
        self.records.append(
            (
                self.ledger,
                self.pos,
                position,
                record["eventID"],
                when.timestamp(),
                record["eventName"],
                record["eventSource"],
                int(record["readOnly"]),
                username(record),
                identity.get("accessKeyId"),
                identity.get("arn"),
                record.get("recipientAccountId"),
                key_arns[0] if key_arns else None,
                record.get("errorCode"),
                record.get("requestID"),
                data,
                self.head,
            )
        )
        self.resources += [(self.ledger, self.pos, r["type"], r["ARN"]) for r in resources]

    def write(self, cursor: SQLiteCursor) -> None:
        cursor.executemany(
            f"INSERT INTO audit_records ({_COLUMNS}) VALUES "  # noqa: S608 - constant columns
            "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            self.records,
        )
        cursor.executemany("INSERT INTO audit_resources VALUES (?, ?, ?, ?)", self.resources)


_RESOURCE_CLAUSE = (
    "EXISTS (SELECT 1 FROM audit_resources r WHERE r.ledger = audit_records.ledger "
    "AND r.chain_pos = audit_records.chain_pos AND r.{column} = ?)"
)


def _where(f: Filters) -> tuple[list[str], list[Any]]:
    clauses: list[str] = []
    args: list[Any] = []
    simple = {
        "account = ?": f.account,
        "event_id = ?": f.event_id,
        "event_name = ?": f.event_name,
        "username = ?": f.username,
        "access_key_id = ?": f.access_key_id,
        "event_source = ?": f.event_source,
        "key_arn = ?": f.key_arn,
        "principal = ?": f.principal,
        "event_time >= ?": f.start,
        "event_time <= ?": f.end,
        _RESOURCE_CLAUSE.format(column="type"): f.resource_type,
        _RESOURCE_CLAUSE.format(column="name"): f.resource_name,
    }
    for clause, value in simple.items():
        if value is not None:
            clauses.append(clause)
            args.append(value)
    if f.key_id is not None:
        clauses.append("key_arn LIKE ?")
        args.append(f"arn:%:key/{f.key_id}")
    if f.read_only is not None:
        clauses.append("read_only = ?")
        args.append(int(f.read_only))
    if f.outcome == "success":
        clauses.append("error_code IS NULL")
    elif f.outcome == "failure":
        clauses.append("error_code IS NOT NULL")
    elif f.outcome:
        clauses.append("error_code = ?")
        args.append(f.outcome)
    return clauses, args
