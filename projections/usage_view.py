"""The usage view: what the bill is made of — each key's billable life and rotations, and
successful requests per day, key and operation. It follows both ledgers (one polling
runner each; the tracking table keeps one position per ledger)."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import singledispatch
from typing import Any

from eventsourcing.application import Application
from eventsourcing.sqlite import SQLiteCursor

from domain.alias import Alias
from domain.cmk import Cmk
from domain.pricing import KeyLife, Requests, month_bounds
from domain.usage import RequestRecorded
from projections.runner import PollingRunner
from projections.versioned_view import VersionedView

_TABLES = [
    "CREATE TABLE IF NOT EXISTS billing_keys (key_id TEXT PRIMARY KEY, account TEXT NOT NULL, "
    "region TEXT NOT NULL, manager TEXT NOT NULL, key_spec TEXT NOT NULL, created REAL NOT NULL, "
    "scheduled REAL, deleted REAL)",
    "CREATE TABLE IF NOT EXISTS billing_rotations (key_id TEXT NOT NULL, at REAL NOT NULL)",
    "CREATE INDEX IF NOT EXISTS billing_rotations_by_key ON billing_rotations (key_id, at)",
    "CREATE TABLE IF NOT EXISTS billing_requests (account TEXT NOT NULL, region TEXT NOT NULL, "
    "day TEXT NOT NULL, key_id TEXT NOT NULL, operation TEXT NOT NULL, requests INTEGER NOT NULL, "
    "PRIMARY KEY (account, region, day, key_id, operation))",
    # A command's request may record several events; it is one request.
    "CREATE TABLE IF NOT EXISTS billing_commands (request_id TEXT PRIMARY KEY)",
]


class UsageView(VersionedView):
    SCHEMA_VERSION = 1
    TABLES = _TABLES
    VIEW_TABLES = ("billing_keys", "billing_rotations", "billing_requests", "billing_commands")

    def project(self, event: Any, cursor: SQLiteCursor) -> None:
        project(event, cursor)
        if isinstance(event, Cmk.Event | Alias.Event):
            _count_command(event, cursor)

    def key_lives(self, month: str, account: str | None) -> list[KeyLife]:
        start, stop = month_bounds(month)
        with self.datastore.transaction(commit=False) as cursor:
            cursor.execute(
                "SELECT * FROM billing_keys WHERE created < ? "
                "AND (COALESCE(scheduled, deleted) IS NULL OR COALESCE(scheduled, deleted) >= ?) "
                "AND (CAST(? AS TEXT) IS NULL OR account = ?)",
                (stop.timestamp(), start.timestamp(), account, account),
            )
            rows = [dict(row) for row in cursor.fetchall()]
            # every rotation of those keys in one query, not one query per key
            cursor.execute("SELECT key_id, at FROM billing_rotations ORDER BY at")
            rotations: dict[str, list[datetime]] = {}
            for key_id, at in cursor.fetchall():
                rotations.setdefault(key_id, []).append(_moment(at))
            lives = []
            for row in rows:
                until = row["scheduled"] if row["scheduled"] is not None else row["deleted"]
                lives.append(
                    KeyLife(
                        key_id=row["key_id"],
                        account=row["account"],
                        key_spec=row["key_spec"],
                        customer=row["manager"] == "CUSTOMER",
                        created=_moment(row["created"]),
                        billed_until=None if until is None else _moment(until),
                        rotations=tuple(rotations.get(row["key_id"], ())),
                    )
                )
            return lives

    def requests(self, month: str, account: str | None) -> list[Requests]:
        with self.datastore.transaction(commit=False) as cursor:
            cursor.execute(
                "SELECT day, key_id, operation, SUM(requests) FROM billing_requests "
                "WHERE day LIKE ? AND (CAST(? AS TEXT) IS NULL OR account = ?) "
                "GROUP BY day, key_id, operation ORDER BY day",
                (f"{month}-%", account, account),
            )
            return [
                Requests(row[0], row[1] or None, row[2], int(row[3])) for row in cursor.fetchall()
            ]


def _moment(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def _add_request(
    cursor: SQLiteCursor, request: dict[str, Any], when: datetime, key_id: str, operation: str
) -> None:
    cursor.execute(
        "INSERT INTO billing_requests VALUES (?, ?, ?, ?, ?, 1) "
        "ON CONFLICT (account, region, day, key_id, operation) "
        "DO UPDATE SET requests = billing_requests.requests + 1",
        (request["account"], request["region"], when.date().isoformat(), key_id, operation),
    )


def _count_command(event: Cmk.Event | Alias.Event, cursor: SQLiteCursor) -> None:
    """A request that changed a key or alias: billed once, unless it is keyledger's own
    (scheduler) work."""
    request = event.request
    if not request or request.get("event_type") != "AwsApiCall" or not request.get("operation"):
        return
    cursor.execute("SELECT 1 FROM billing_commands WHERE request_id = ?", (request["request_id"],))
    if cursor.fetchone() is None:
        cursor.execute("INSERT INTO billing_commands VALUES (?)", (request["request_id"],))
        key_id = str(event.originator_id) if isinstance(event, Cmk.Event) else ""
        _add_request(cursor, request, event.timestamp, key_id, request["operation"])


@singledispatch
def project(event: object, cursor: SQLiteCursor) -> None:
    """Other events only count as requests (above)."""


@project.register
def _(event: RequestRecorded, cursor: SQLiteCursor) -> None:
    request = event.request
    if event.error_code is not None or ":" in event.operation or not request.get("account"):
        return  # failures are not billed; STS, CloudTrail and keyledger's own APIs are not KMS
    key_id = event.key_arn.rsplit("/", 1)[-1] if event.key_arn else ""
    _add_request(cursor, request, event.timestamp, key_id, event.operation)


@project.register
def _(event: Cmk.Created, cursor: SQLiteCursor) -> None:
    cursor.execute(
        "INSERT OR REPLACE INTO billing_keys VALUES (?, ?, ?, ?, ?, ?, NULL, NULL)",
        (
            str(event.originator_id),
            event.account,
            event.region,
            event.key_manager,
            event.key_spec,
            event.timestamp.timestamp(),
        ),
    )


@project.register
def _(event: Cmk.Rotated, cursor: SQLiteCursor) -> None:
    cursor.execute(
        "INSERT INTO billing_rotations VALUES (?, ?)",
        (str(event.originator_id), event.timestamp.timestamp()),
    )


@project.register
def _(event: Cmk.DeletionScheduled, cursor: SQLiteCursor) -> None:
    cursor.execute(
        "UPDATE billing_keys SET scheduled = ? WHERE key_id = ?",
        (event.timestamp.timestamp(), str(event.originator_id)),
    )


@project.register
def _(event: Cmk.DeletionCancelled, cursor: SQLiteCursor) -> None:
    # "charged as if it had never been scheduled for deletion"
    cursor.execute(
        "UPDATE billing_keys SET scheduled = NULL WHERE key_id = ?", (str(event.originator_id),)
    )


@project.register
def _(event: Cmk.Deleted, cursor: SQLiteCursor) -> None:
    cursor.execute(
        "UPDATE billing_keys SET deleted = ? WHERE key_id = ?",
        (event.timestamp.timestamp(), str(event.originator_id)),
    )


def usage_runners(
    keys: Application, usage: Application, view: UsageView, interval: float = 1.0
) -> tuple[PollingRunner, PollingRunner]:
    """One polling runner per ledger. Not nudged by writes: the bill needs no
    millisecond freshness, so the view costs requests nothing but a poll a second."""
    return (
        PollingRunner(keys, view, name="usage-keys", interval=interval),
        PollingRunner(usage, view, name="usage-requests", interval=interval),
    )
