"""The forensics answers over HTTP (JSON 1.1, SigV4 like every call on this port):
``X-Amz-Target: KeyledgerAudit.<Operation>``, authorized by an ``audit:<Operation>``
permission in the caller's IAM policies (an account root holds it for its account).

- GetKeyHistory  {KeyId}                       every event of the key, by replay
- GetKeyStateAt  {KeyId, At}                   the key as it was at At (epoch seconds)
- QueryAuditEvents {KeyId?, Principal?, Operation?, Outcome?, StartTime?, EndTime?,
                    MaxResults?}                CloudTrail records from the audit view
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from api.own_operations import own_operation
from api.services import Call
from domain.authorization import authorize_action
from domain.errors import NotFoundError, ValidationError
from projections import forensics
from projections.audit_view import Filters

AUDIT_TARGET_PREFIX = "KeyledgerAudit."
MAX_RESULTS = 1000


async def run(call: Call, operation: str, body: object) -> dict[str, Any]:
    handler, params = own_operation(call, "audit", operation, body, _OPERATIONS)
    return await handler(call, params)


def _string(body: dict[str, Any], name: str, *, required: bool = False) -> str | None:
    value = body.get(name)
    if value is None and required:
        raise ValidationError(
            f"1 validation error detected: Value null at '{name}' failed "
            "to satisfy constraint: Member must not be null"
        )
    if value is not None and (not isinstance(value, str) or not 1 <= len(value) <= 2048):
        raise ValidationError(f"{name} must be a string of 1 to 2048 characters.")
    return value


def _time(body: dict[str, Any], name: str) -> float | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValidationError(f"{name} must be a timestamp in epoch seconds.")
    return float(value)


async def _owned_key(call: Call, key_id: str, operation: str) -> list[Any]:
    """The key's events, if the caller's account owns it (else NotFound, as KMS answers
    for keys of other accounts it may not see), after the IAM check."""
    ctx = call.context
    events = await call.read(forensics.key_events, call.services.ledger, key_id)
    created = events[0]
    arn = f"arn:aws:kms:{created.region}:{created.account}:key/{created.originator_id}"
    authorize_action(ctx, f"audit:{operation}", arn, call.services.clock())
    if created.account != ctx.account:
        raise NotFoundError(f"Key '{arn}' does not exist")
    call.key_arn = arn
    return events


async def get_key_history(call: Call, body: dict[str, Any]) -> dict[str, Any]:
    key_id = _string(body, "KeyId", required=True) or ""
    await _owned_key(call, key_id, "GetKeyHistory")
    entries = await call.read(forensics.history, call.services.ledger, key_id)
    return {"KeyId": call.key_arn, "Events": entries}


async def get_key_state_at(call: Call, body: dict[str, Any]) -> dict[str, Any]:
    key_id = _string(body, "KeyId", required=True) or ""
    at = _time(body, "At")
    if at is None:
        raise ValidationError("At (epoch seconds) is required.")
    await _owned_key(call, key_id, "GetKeyStateAt")
    moment = datetime.fromtimestamp(at, UTC)
    return await call.read(forensics.state_at, call.services.ledger, key_id, moment)


async def query_audit_events(call: Call, body: dict[str, Any]) -> dict[str, Any]:
    ctx = call.context
    authorize_action(ctx, "audit:QueryAuditEvents", "*", call.services.clock())
    key = _string(body, "KeyId")
    limit = body.get("MaxResults", 50)
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_RESULTS:
        raise ValidationError(f"MaxResults must be an integer from 1 to {MAX_RESULTS}.")
    filters = Filters(
        account=ctx.account,
        key_arn=key if key and key.startswith("arn:") else None,
        key_id=key if key and not key.startswith("arn:") else None,
        principal=_string(body, "Principal"),
        event_name=_string(body, "Operation"),
        outcome=_string(body, "Outcome"),
        start=_time(body, "StartTime"),
        end=_time(body, "EndTime"),
    )
    services = call.services
    await services.read(services.audit_runner.catch_up)
    rows = await services.read(services.audit.lookup, filters, limit)
    return {"Records": [row.as_dict() for row in rows]}


_OPERATIONS = {
    "GetKeyHistory": get_key_history,
    "GetKeyStateAt": get_key_state_at,
    "QueryAuditEvents": query_audit_events,
}
