"""Forensics by replay: a key's history and its state at a past moment, from the event
store itself (the source of truth), never from a view.

``state_at`` rebuilds the key with the write side's own aggregate replay
(``repository.get(id, version=n)``), n being the last version recorded at or before the
requested time, so it answers what DescribeKey and GetKeyPolicy answered then.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application

from domain.errors import NotFoundError
from projections.audit_record import event_kind, event_time, key_events_record, request_of

_ALIAS_TOPIC_PREFIX = "keyledger:Alias."


def _events(app: Application, aggregate_id: UUID) -> list[Any]:
    return list(app.events.get(aggregate_id))


def key_uuid(key_id: str) -> UUID:
    """A key id or key ARN (history needs no alias resolution: aliases move)."""
    try:
        return UUID(key_id.rsplit("/", 1)[-1])
    except ValueError:
        raise NotFoundError(f"Invalid keyId '{key_id}'") from None


def key_events(app: Application, key_id: str) -> list[Any]:
    events = _events(app, key_uuid(key_id))
    if not events or event_kind(events[0]) != "Cmk.Created":
        raise NotFoundError(f"Key '{key_id}' does not exist")
    return events


def history(app: Application, key_id: str) -> list[dict[str, Any]]:
    """Every event of the key, oldest first: what, who, when, from where, request id."""
    events = key_events(app, key_id)
    created = events[0]
    arn = f"arn:aws:kms:{created.region}:{created.account}:key/{created.originator_id}"
    arns = {str(created.originator_id): arn}
    entries = []
    for event in events:
        request = request_of(event)
        record = key_events_record([event], 0, arns)
        entries.append(
            {
                "version": event.originator_version,
                "time": event_time(event.timestamp),
                "timestamp": event.timestamp.timestamp(),
                "event": event_kind(event),
                "eventName": record["eventName"],
                "eventType": record["eventType"],
                "principal": request.get("principal"),
                "sourceIPAddress": record["sourceIPAddress"],
                "userAgent": record["userAgent"],
                "requestId": request.get("request_id"),
                "grantId": request.get("grant_id"),
                "details": record["requestParameters"] or {},
            }
        )
    return entries


def state_at(app: Application, key_id: str, at: datetime) -> dict[str, Any]:
    """The key as it was at ``at``: metadata, policy, tags, aliases, grants, rotation."""
    uuid = key_uuid(key_id)
    events = key_events(app, key_id)
    upto = [e for e in events if e.timestamp <= at]
    if not upto:
        raise NotFoundError(f"Key '{key_id}' did not exist at {event_time(at)}")
    cmk = app.repository.get(uuid, version=upto[-1].originator_version)
    grants = getattr(cmk, "grants", None)
    return {
        "at": event_time(at),
        "version": cmk.version,
        "KeyMetadata": cmk.metadata(),
        "Policy": cmk.policy,
        "Tags": [{"TagKey": k, "TagValue": v} for k, v in sorted(cmk.tags.items())],
        "Aliases": aliases_at(app, str(uuid), at),
        "Grants": _plain(grants) if grants is not None else None,
        "Rotation": {
            **cmk.rotation_status(),
            "Rotations": [
                {"KeyMaterialId": r["material_id"], "RotationDate": r["date"], "Type": r["type"]}
                for r in cmk.rotations
            ],
        },
    }


def aliases_at(app: Application, key_id: str, at: datetime) -> list[str]:
    """Alias names that pointed at the key at ``at``, each alias replayed to that moment."""
    names = []
    for alias_id in _alias_ids(app):
        upto = [e for e in _events(app, alias_id) if e.timestamp <= at]
        if not upto:
            continue
        try:
            alias = app.repository.get(alias_id, version=upto[-1].originator_version)
        except AggregateNotFoundError:
            continue
        if not alias.deleted and alias.target_key_id == key_id:
            names.append(alias.name)
    return sorted(names)


def _alias_ids(app: Application, batch: int = 1000) -> Iterator[UUID]:
    """Every alias ever created, from the notification log's topics (no decoding)."""
    start, seen = 0, set()
    while True:
        notifications = app.recorder.select_notifications(
            start=start, limit=batch, inclusive_of_start=False
        )
        if not notifications:
            return
        for n in notifications:
            if n.topic.startswith(_ALIAS_TOPIC_PREFIX) and n.originator_id not in seen:
                seen.add(n.originator_id)
                yield n.originator_id
        start = notifications[-1].id


def _plain(value: Any) -> Any:
    """Grants (or anything else on the aggregate) as plain JSON values, whatever their type."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _plain(dataclasses.asdict(value))
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain(v) for v in value]
    if isinstance(value, str | int | float | bool | datetime) or value is None:
        return value
    if hasattr(value, "__dict__"):
        return _plain(vars(value))
    return str(value)
