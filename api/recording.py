"""The audit record of a request that changed no aggregate (reads, crypto, failures)."""

from __future__ import annotations

from typing import Any

from api.services import Call
from domain.errors import KmsError
from domain.usage import RequestRecorded
from domain.values import RequestContext


def request_record(call: Call, error: KmsError | None) -> RequestRecorded:
    ctx = call.ctx or RequestContext(
        principal=None,
        account="",
        region="",
        request_id=call.request_id,
        source_ip=call.source_ip,
        user_agent=call.user_agent,
    )
    return RequestRecorded(
        originator_id=RequestRecorded.id_for(call.request_id),
        originator_version=1,
        timestamp=call.services.clock(),
        operation=call.operation,
        request=ctx.as_dict(),
        key_arn=call.key_arn,
        parameters=loggable(call.params),
        error_code=error.code if error else None,
        error_message=error.message if error else None,
    )


def loggable(params: dict[str, Any]) -> dict[str, Any]:
    """Request parameters as CloudTrail logs them: no blobs (plaintext, ciphertext)
    ever (https://docs.aws.amazon.com/kms/latest/developerguide/ct-decrypt.html)."""
    return {name: value for name, value in params.items() if not isinstance(value, bytes)}
