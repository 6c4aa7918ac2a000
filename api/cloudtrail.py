"""CloudTrail LookupEvents on the KMS port, so a boto3 ``cloudtrail`` client reads the trail.

https://docs.aws.amazon.com/awscloudtrail/latest/APIReference/API_LookupEvents.html
Shapes and constraints come from botocore's cloudtrail model; the checks CloudTrail
answers with its own exception types are made first, with those types.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import replace
from datetime import datetime
from typing import Any

import orjson

from api.services import Call
from domain.authorization import authorize_action
from domain.errors import KmsError, ValidationError
from projections.audit_record import username
from projections.audit_view import Filters, StoredRecord

CLOUDTRAIL_TARGET_PREFIX = "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101."
MAX_RESULTS = (1, 50)
LOOKUP_KEYS = {
    "EventId": "event_id",
    "EventName": "event_name",
    "ReadOnly": "read_only",
    "Username": "username",
    "ResourceType": "resource_type",
    "ResourceName": "resource_name",
    "EventSource": "event_source",
    "AccessKeyId": "access_key_id",
}


class InvalidLookupAttributesError(KmsError):
    code = "InvalidLookupAttributesException"


class InvalidTimeRangeError(KmsError):
    code = "InvalidTimeRangeException"


class InvalidNextTokenError(KmsError):
    code = "InvalidNextTokenException"


class InvalidMaxResultsError(KmsError):
    code = "InvalidMaxResultsException"


class CloudTrailUnsupportedError(KmsError):
    code = "UnsupportedOperationException"


async def run(call: Call, operation: str, body: object) -> dict[str, Any]:
    """The CloudTrail operations keyledger answers: LookupEvents only."""
    call.operation = f"cloudtrail:{operation}"
    call.ctx = replace(call.context, operation=call.operation)
    if operation != "LookupEvents" or not call.services.cloudtrail.has_operation(operation):
        raise CloudTrailUnsupportedError(f"{operation} is not supported by keyledger.")
    _check_max_results(body)
    try:
        call.params = call.services.cloudtrail.parse_request(operation, body)
    except ValidationError as error:
        if "lookupAttributes" in error.message:
            raise InvalidLookupAttributesError(error.message) from None
        raise
    result = await lookup_events(call)
    return call.services.cloudtrail.serialize_response(operation, result)


def _check_max_results(body: object) -> None:
    value = body.get("MaxResults") if isinstance(body, dict) else None
    low, high = MAX_RESULTS
    if isinstance(value, int) and not low <= value <= high:
        raise InvalidMaxResultsError(f"MaxResults must be between {low} and {high}.")


async def lookup_events(call: Call) -> dict[str, Any]:
    ctx, params = call.context, call.params
    authorize_action(ctx, "cloudtrail:LookupEvents", "*", call.services.clock())
    filters = _filters(params, ctx.account)
    limit = params.get("MaxResults") or MAX_RESULTS[1]
    fingerprint = _fingerprint(params)
    before = _decode_token(params["NextToken"], fingerprint) if "NextToken" in params else None
    if params.get("EventCategory") == "insight":
        return {"Events": []}  # keyledger has no Insights events
    audit = call.services
    await audit.read(audit.audit_runner.catch_up)  # read-your-writes for this process
    rows = await audit.read(audit.audit.lookup, filters, limit + 1, before)
    result: dict[str, Any] = {"Events": [_event(row) for row in rows[:limit]]}
    if len(rows) > limit:
        last = rows[limit - 1]
        result["NextToken"] = _encode_token(
            (last.event_time, last.ledger, last.chain_pos), fingerprint
        )
    return result


def _filters(params: dict[str, Any], account: str) -> Filters:
    start, end = params.get("StartTime"), params.get("EndTime")
    start, end = _epoch(start), _epoch(end)
    if start is not None and end is not None and start > end:
        raise InvalidTimeRangeError("Start time must be before or equal to end time.")
    attributes = params.get("LookupAttributes") or []
    if len(attributes) > 1:
        raise InvalidLookupAttributesError("You cannot specify more than one lookup attribute.")
    selected: dict[str, Any] = {}
    for attribute in attributes:
        key, value = attribute.get("AttributeKey"), attribute.get("AttributeValue")
        if key not in LOOKUP_KEYS or value is None:
            raise InvalidLookupAttributesError(f"Invalid lookup attribute key: {key}")
        if key == "ReadOnly":
            if value.lower() not in ("true", "false"):
                raise InvalidLookupAttributesError("ReadOnly must be true or false.")
            value = value.lower() == "true"
        selected[LOOKUP_KEYS[key]] = value
    return Filters(
        account=account,
        start=start,
        end=end,
        **selected,
    )


def _epoch(value: datetime | float | None) -> float | None:
    return value.timestamp() if isinstance(value, datetime) else value


def _event(row: StoredRecord) -> dict[str, Any]:
    """LookupEvents' Event: a summary and the whole record as a JSON string."""
    record = row.as_dict()
    identity = record.get("userIdentity") or {}
    return {
        "EventId": record["eventID"],
        "EventName": record["eventName"],
        "ReadOnly": "true" if record["readOnly"] else "false",
        "AccessKeyId": identity.get("accessKeyId"),
        "EventTime": datetime.fromtimestamp(row.event_time).astimezone(),
        "EventSource": record["eventSource"],
        "Username": username(record),
        "Resources": [
            {"ResourceType": r["type"], "ResourceName": r["ARN"]}
            for r in record.get("resources") or []
        ],
        "CloudTrailEvent": bytes(row.record).decode("utf-8"),
    }


def _fingerprint(params: dict[str, Any]) -> str:
    """A token is good only with the parameters it was issued for (CloudTrail:
    InvalidNextTokenException when they differ)."""
    fixed = {k: v for k, v in params.items() if k not in ("NextToken", "MaxResults")}
    return hashlib.sha256(
        orjson.dumps(fixed, default=str, option=orjson.OPT_SORT_KEYS)
    ).hexdigest()[:16]


def _encode_token(position: tuple[float, str, int], fingerprint: str) -> str:
    raw = orjson.dumps({"at": list(position), "for": fingerprint})
    return base64.urlsafe_b64encode(raw).decode("ascii")


def _decode_token(token: str, fingerprint: str) -> tuple[float, str, int]:
    try:
        data = orjson.loads(base64.urlsafe_b64decode(token.encode("ascii")))
        when, ledger, pos = data["at"]
        if data["for"] != fingerprint:
            raise ValueError("issued for other parameters")
        return float(when), str(ledger), int(pos)
    except (ValueError, TypeError, KeyError, binascii.Error, orjson.JSONDecodeError):
        raise InvalidNextTokenError("Invalid NextToken.") from None
