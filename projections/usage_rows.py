"""The usage (billing) view projected from stored rows (the rebuild's fast path); the same
rows as ``projections.usage_view.UsageView.project`` makes from events."""

from __future__ import annotations

from typing import Any

from domain.alias import Alias
from domain.cmk import Cmk
from domain.usage import RequestRecorded
from projections.fast_path import Project, RowProjection, Statements
from projections.stored_log import day, epoch

State = dict[str, Any]

_ADD_REQUEST = (
    "INSERT INTO billing_requests VALUES (?, ?, ?, ?, ?, 1) "
    "ON CONFLICT (account, region, day, key_id, operation) DO UPDATE SET requests = requests + 1"
)
# The view checks billing_commands, then inserts; as two statements that need no answer
# in between (so they batch): count the request unless its id is there, then record the id.
_ADD_COMMAND = (
    "INSERT INTO billing_requests SELECT ?, ?, ?, ?, ?, 1 "
    "WHERE NOT EXISTS (SELECT 1 FROM billing_commands WHERE request_id = ?) "
    "ON CONFLICT (account, region, day, key_id, operation) DO UPDATE SET requests = requests + 1"
)
_RECORD_COMMAND = "INSERT OR IGNORE INTO billing_commands VALUES (?)"


def _request(_: str, s: State, out: Statements) -> None:
    request = s["request"]
    operation = s["operation"]
    if s["error_code"] is not None or ":" in operation or not request.get("account"):
        return  # failures are not billed; STS, CloudTrail and keyledger's own APIs are not KMS
    key_id = s["key_arn"].rsplit("/", 1)[-1] if s["key_arn"] else ""
    out.add(
        _ADD_REQUEST,
        (request["account"], request["region"], day(s["timestamp"]), key_id, operation),
    )


def _command(key_of: bool, then: Project | None = None) -> Project:
    """A Cmk (``key_of``) or Alias event: its own rows (``then``), then the request that
    made it, billed once unless it is keyledger's own work (see UsageView.project)."""

    def project(originator_id: str, s: State, out: Statements) -> None:
        if then is not None:
            then(originator_id, s, out)
        request = s["request"]
        if not request or request.get("event_type") != "AwsApiCall":
            return
        operation = request.get("operation")
        if not operation:
            return
        request_id = request["request_id"]
        key_id = originator_id if key_of else ""
        when = day(s["timestamp"])
        out.add(
            _ADD_COMMAND,
            (request["account"], request["region"], when, key_id, operation, request_id),
        )
        out.add(_RECORD_COMMAND, (request_id,))

    return project


def _created(key_id: str, s: State, out: Statements) -> None:
    out.add(
        "INSERT OR REPLACE INTO billing_keys VALUES (?, ?, ?, ?, ?, ?, NULL, NULL)",
        (
            key_id,
            s["account"],
            s["region"],
            s.get("key_manager", Cmk.Created.key_manager),
            s["key_spec"],
            epoch(s["timestamp"]),
        ),
    )


def _rotated(key_id: str, s: State, out: Statements) -> None:
    out.add("INSERT INTO billing_rotations VALUES (?, ?)", (key_id, epoch(s["timestamp"])))


def _deletion_scheduled(key_id: str, s: State, out: Statements) -> None:
    out.add(
        "UPDATE billing_keys SET scheduled = ? WHERE key_id = ?", (epoch(s["timestamp"]), key_id)
    )


def _deletion_cancelled(key_id: str, s: State, out: Statements) -> None:
    out.add("UPDATE billing_keys SET scheduled = NULL WHERE key_id = ?", (key_id,))


def _deleted(key_id: str, s: State, out: Statements) -> None:
    out.add("UPDATE billing_keys SET deleted = ? WHERE key_id = ?", (epoch(s["timestamp"]), key_id))


_OWN_ROWS: dict[type, Project] = {
    Cmk.Created: _created,
    Cmk.Rotated: _rotated,
    Cmk.DeletionScheduled: _deletion_scheduled,
    Cmk.DeletionCancelled: _deletion_cancelled,
    Cmk.Deleted: _deleted,
}


def _events_of(aggregate: type) -> list[type]:
    """Every stored event class of an aggregate (every one counts as a request)."""
    base = aggregate.Event  # type: ignore[attr-defined]
    return [
        v
        for v in vars(aggregate).values()
        if isinstance(v, type) and issubclass(v, base) and v is not base
    ]


USAGE_ROWS = RowProjection(
    {RequestRecorded.TOPIC: _request}
    | {cls.TOPIC: _command(True, _OWN_ROWS.get(cls)) for cls in _events_of(Cmk)}
    | {cls.TOPIC: _command(False) for cls in _events_of(Alias)}
)
