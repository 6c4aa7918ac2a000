"""RequestRecorded: the audit record of a request that changed no aggregate."""

from __future__ import annotations

from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import DomainEvent
from eventsourcing.utils import register_topic


class RequestRecorded(DomainEvent):
    """One per cryptographic call, read, and failed or refused request.

    Its id derives from the request id, so a record can never be written twice.
    Holds request parameters as CloudTrail does: never plaintext, ciphertext or
    key material (https://docs.aws.amazon.com/kms/latest/developerguide/ct-encrypt.html).
    """

    TOPIC = "keyledger:RequestRecorded"
    operation: str
    request: dict[str, Any]
    key_arn: str | None
    parameters: dict[str, Any]
    error_code: str | None
    error_message: str | None

    @staticmethod
    def id_for(request_id: str) -> UUID:
        return uuid5(NAMESPACE_URL, f"keyledger:request:{request_id}")


register_topic(RequestRecorded.TOPIC, RequestRecorded)
