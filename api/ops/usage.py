"""GetKeyLastUsage: the last successful cryptographic operation on a key, from the audit view.

https://docs.aws.amazon.com/kms/latest/APIReference/API_GetKeyLastUsage.html -- the
operations tracked are the model's KeyLastUsageTrackingOperation enum; the CloudTrail
event id is the audit record's eventID, so LookupEvents(EventId=...) finds it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from api.services import Call

TRACKED_SHAPE = "KeyLastUsageTrackingOperation"


async def get_key_last_usage(call: Call) -> dict[str, Any]:
    services = call.services
    cmk = await call.read(
        services.ledger.read_key,
        call.context,
        call.params["KeyId"],
        "GetKeyLastUsage",
        allow_alias=False,
    )
    call.key_arn = cmk.arn
    await services.read(services.audit_runner.catch_up)  # everything recorded so far
    last = await services.read(
        services.audit.last_success, cmk.arn, services.wire.enum(TRACKED_SHAPE)
    )
    # keyledger's trail starts with the store, so tracking starts when the key was made.
    answer: dict[str, Any] = {
        "KeyId": str(cmk.id),
        "TrackingStartDate": cmk.created_on,
        "KeyCreationDate": cmk.created_on,
    }
    if last is not None:
        record = last.as_dict()
        answer["KeyLastUsage"] = {
            "Operation": record["eventName"],
            "Timestamp": datetime.fromtimestamp(last.event_time, UTC),
            "CloudTrailEventId": record["eventID"],
            "KmsRequestId": record["requestID"],
        }
    return answer


OPERATIONS = {"GetKeyLastUsage": get_key_last_usage}
