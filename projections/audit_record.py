"""Event or usage record -> CloudTrail record: pure functions, no I/O, no clock.

Shapes follow AWS's CloudTrail examples for KMS (developerguide ct-*.md, e.g.
https://docs.aws.amazon.com/kms/latest/developerguide/ct-encrypt.html and ct-delete-key.html)
and the record contents reference
(https://docs.aws.amazon.com/awscloudtrail/latest/userguide/cloudtrail-event-reference-record-contents.html).
Request parameters are camelCase and never hold plaintext, ciphertext or key material.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from uuid import NAMESPACE_URL, uuid5

from domain.usage import RequestRecorded

EVENT_VERSION = "1.08"
KEY_RESOURCE = "AWS::KMS::Key"
KEY_LEDGER = "KeyLedger"
USAGE_LEDGER = "UsageLedger"
SERVICE_EVENT = "AwsServiceEvent"
AWS_INTERNAL = "AWS Internal"
_SOURCES = {
    "sts": "sts.amazonaws.com",
    "cloudtrail": "cloudtrail.amazonaws.com",
    "audit": "audit.keyledger",  # the forensics answers (api/forensics.py)
}

# Event fields that are bookkeeping or material, never request parameters.
_NOT_PARAMETERS = frozenset(
    {
        "originator_id",
        "originator_version",
        "originator_topic",
        "timestamp",
        "request",
        "wrapped_material",
        "material_id",
        "account",
        "region",
        "key_manager",
        "next_rotation",
        "deletion_date",
        "recreated",
        "rotation_type",
    }
)
# Event field -> the request member CloudTrail logs it as (the KMS API names).
_RENAMED = {
    "target_key_id": "targetKeyId",
    "period_days": "rotationPeriodInDays",
    "pending_window_days": "pendingWindowInDays",
    "removed_keys": "tagKeys",
}
# For records written before RequestContext carried its operation.
_EVENT_NAMES = {
    "Cmk.Created": "CreateKey",
    "Cmk.Enabled": "EnableKey",
    "Cmk.Disabled": "DisableKey",
    "Cmk.DescriptionUpdated": "UpdateKeyDescription",
    "Cmk.PolicyPut": "PutKeyPolicy",
    "Cmk.TagsChanged": "TagResource",
    "Cmk.RotationEnabled": "EnableKeyRotation",
    "Cmk.RotationDisabled": "DisableKeyRotation",
    "Cmk.Rotated": "RotateKeyOnDemand",
    "Cmk.DeletionScheduled": "ScheduleKeyDeletion",
    "Cmk.DeletionCancelled": "CancelKeyDeletion",
    "Cmk.Deleted": "DeleteKey",
    "Alias.Created": "CreateAlias",
    "Alias.Retargeted": "UpdateAlias",
    "Alias.Deleted": "DeleteAlias",
}
# Operations CloudTrail marks readOnly although their names do not say so.
_READ_ONLY = frozenset(
    {
        "Encrypt",
        "Decrypt",
        "ReEncrypt",
        "GenerateDataKey",
        "GenerateDataKeyWithoutPlaintext",
        "GenerateDataKeyPair",
        "GenerateDataKeyPairWithoutPlaintext",
        "GenerateRandom",
        "GenerateMac",
        "VerifyMac",
        "Sign",
        "Verify",
        "DeriveSharedSecret",
        "LookupEvents",
        "GetCallerIdentity",
    }
)
_DEFAULT_ALGORITHM_OPS = frozenset({"Encrypt", "Decrypt"})
_CAMEL = re.compile(r"_([a-z])")


def event_id(ledger: str, position: int) -> str:
    """Stable across rebuilds: derived from where the record's first event sits."""
    return str(uuid5(NAMESPACE_URL, f"keyledger:audit:{ledger}:{position}"))


def event_time(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def principal_id(principal: str, account: str) -> str:
    """AWS answers the account id for a root, a stable unique id ("AIDA…") otherwise."""
    if principal.endswith(":root"):
        return account
    digest = hashlib.sha256(principal.encode()).hexdigest().upper()
    prefix = "AROA" if ":role/" in principal or ":assumed-role/" in principal else "AIDA"
    return prefix + digest[:17]


def user_identity(request: Mapping[str, Any]) -> dict[str, Any]:
    """CloudTrail's userIdentity element (cloudtrail-event-reference-user-identity)."""
    account = request.get("account") or ""
    if request.get("event_type") == SERVICE_EVENT:
        return {"accountId": account, "invokedBy": AWS_INTERNAL}
    principal = request.get("principal")
    if not principal:  # the request never authenticated
        return {"type": "Unknown", "accountId": account or None}
    identity: dict[str, Any] = {
        "type": principal_type(principal),
        "principalId": principal_id(principal, account),
        "arn": principal,
        "accountId": account,
        "accessKeyId": request.get("access_key_id"),
    }
    if ":user/" in principal:
        identity["userName"] = principal.rsplit("/", 1)[1]
    return identity


def principal_type(principal: str) -> str:
    if principal.endswith(":root"):
        return "Root"
    if ":assumed-role/" in principal or ":role/" in principal:
        return "AssumedRole"
    if ":user/" in principal:
        return "IAMUser"
    return "AWSService"


def username(record: Mapping[str, Any]) -> str | None:
    """LookupEvents' Username: "root", the IAM user name, or the role session."""
    identity = record.get("userIdentity") or {}
    arn = identity.get("arn")
    if not arn:
        return None
    if identity.get("type") == "Root":
        return "root"
    return identity.get("userName") or arn.rsplit("/", 1)[-1]


def is_read_only(operation: str) -> bool:
    return operation.startswith(("Describe", "List", "Get")) or operation in _READ_ONLY


def _source_and_name(operation: str) -> tuple[str, str]:
    """STS and CloudTrail calls on this port are recorded as "sts:Op" / "cloudtrail:Op"."""
    service, _, name = operation.rpartition(":")
    return _SOURCES.get(service, "kms.amazonaws.com"), name


def _base(
    request: Mapping[str, Any], name: str, source: str, when: datetime, ident: str
) -> dict[str, Any]:
    service = request.get("event_type") == SERVICE_EVENT
    return {
        "eventVersion": EVENT_VERSION,
        "userIdentity": user_identity(request),
        "eventTime": event_time(when),
        "eventSource": source,
        "eventName": name,
        "awsRegion": request.get("region") or None,
        "sourceIPAddress": AWS_INTERNAL if service else request.get("source_ip"),
        "userAgent": AWS_INTERNAL if service else request.get("user_agent"),
        "requestParameters": None,
        "responseElements": None,
        "requestID": None if service else request.get("request_id"),
        "eventID": ident,
        "readOnly": is_read_only(name),
        "resources": [],
        "eventType": request.get("event_type") or "AwsApiCall",
        "managementEvent": True,
        "recipientAccountId": request.get("account") or None,
        "eventCategory": "Management",
    }


def _finish(record: dict[str, Any], request: Mapping[str, Any]) -> dict[str, Any]:
    if request.get("grant_id"):
        record["additionalEventData"] = {"grantId": request["grant_id"]}
    if record["requestID"] is None:
        del record["requestID"]
    if record["eventType"] == SERVICE_EVENT:
        record["requestParameters"] = None
    return record


def resource(arn: str) -> dict[str, str]:
    return {"accountId": arn.split(":")[4], "type": KEY_RESOURCE, "ARN": arn}


# -- usage records (one request, one record) ------------------------------------------


def usage_record(recorded: RequestRecorded, position: int) -> dict[str, Any]:
    """A RequestRecorded (crypto call, read, failure, refusal, DryRun) as CloudTrail writes it."""
    request = recorded.request or {}
    source, name = _source_and_name(recorded.operation or "Unknown")
    record = _base(request, name, source, recorded.timestamp, event_id(USAGE_LEDGER, position))
    parameters = camel_parameters(recorded.parameters)
    if name in _DEFAULT_ALGORITHM_OPS and recorded.key_arn:
        # CloudTrail's Encrypt/Decrypt records always name the algorithm (ct-decrypt.html).
        parameters.setdefault("encryptionAlgorithm", "SYMMETRIC_DEFAULT")
    record["requestParameters"] = parameters or None
    if recorded.key_arn:
        record["resources"] = [resource(recorded.key_arn)]
        record["recipientAccountId"] = recorded.key_arn.split(":")[4]
    if recorded.error_code:
        record["errorCode"] = recorded.error_code
        record["errorMessage"] = recorded.error_message
    return _finish(record, request)


def camel_parameters(value: Any) -> Any:
    """KMS request members as CloudTrail writes them: KeyId -> keyId, Tags[].TagKey ->
    tags[].tagKey. Map keys chosen by the caller (EncryptionContext) are kept as given;
    blobs never appear (they were dropped when the request was recorded)."""
    if isinstance(value, Mapping):
        return {
            _lower_first(k): v if k in _FREE_MAPS else camel_parameters(v)
            for k, v in value.items()
            if not isinstance(v, bytes | bytearray)
        }
    if isinstance(value, list):
        return [camel_parameters(item) for item in value]
    if isinstance(value, datetime):
        return event_time(value)
    return value


# Members whose keys are the caller's own (KMS service model: map shapes).
_FREE_MAPS = frozenset(
    {"EncryptionContext", "DestinationEncryptionContext", "SourceEncryptionContext"}
)


def _lower_first(name: str) -> str:
    return name[:1].lower() + name[1:]


# -- key events (one request may make several events: one record) --------------------


def event_kind(event: Any) -> str:
    """'Cmk.Created', 'Alias.Deleted', 'Cmk.GrantCreated': the event's nested class path."""
    return type(event).__qualname__


def request_of(event: Any) -> Mapping[str, Any]:
    return getattr(event, "request", None) or {}


def group_by_request(events: Sequence[Any]) -> list[list[Any]]:
    """Events of one request, together, in the order their requests first appear."""
    groups: dict[str, list[Any]] = {}
    for index, event in enumerate(events):
        request_id = request_of(event).get("request_id") or f"#{index}"
        groups.setdefault(request_id, []).append(event)
    return list(groups.values())


def key_events_record(
    events: Sequence[Any], position: int, arns: Mapping[str, str]
) -> dict[str, Any]:
    """The CloudTrail record of one request that changed aggregates. ``arns`` maps an
    aggregate id to its ARN (keys and aliases seen so far, this request's included)."""
    first = events[0]
    request = request_of(first)
    name = request.get("operation") or _EVENT_NAMES.get(event_kind(first), event_kind(first))
    if event_kind(first) == "Cmk.Created" and name != "CreateKey":
        name = "CreateKey"  # an AWS managed key made on first use by another operation
    source, name = _source_and_name(name)
    record = _base(request, name, source, first.timestamp, event_id(KEY_LEDGER, position))
    parameters: dict[str, Any] = {}
    response: dict[str, Any] = {}
    resources: list[str] = []
    for event in events:
        arn = arns.get(str(event.originator_id))
        target = arns.get(str(getattr(event, "target_key_id", "")))
        for named in (arn, target):  # an alias record names its key too (ct-createalias)
            if named and named not in resources:
                resources.append(named)
        parameters |= _event_parameters(event, arn)
        response |= _event_response(event, arn)
    key_arns = [a for a in resources if ":key/" in a]
    if resources:
        record["resources"] = [resource(a) for a in resources]
        record["recipientAccountId"] = (key_arns or resources)[0].split(":")[4]
    record["requestParameters"] = parameters or None
    record["responseElements"] = response or None
    if record["eventType"] == SERVICE_EVENT and key_arns:
        record["serviceEventDetails"] = {"keyId": key_arns[0].rsplit("/", 1)[1]}
    return _finish(record, request)


def _event_parameters(event: Any, arn: str | None) -> dict[str, Any]:
    kind = event_kind(event)
    fields = {k: v for k, v in vars(event).items() if k not in _NOT_PARAMETERS}
    parameters: dict[str, Any] = {}
    if kind.startswith("Cmk.") and kind != "Cmk.Created" and arn:
        parameters["keyId"] = arn.rsplit("/", 1)[1]
    if kind == "Cmk.Created":
        fields.pop("policy", None)  # CreateKey's record leaves the policy out (ct-createkey)
        fields["customer_master_key_spec"] = fields.get("key_spec")
    if kind.startswith("Alias.") and arn:
        parameters["aliasName"] = arn.split(":", 5)[5]
    for name, value in fields.items():
        if isinstance(value, bytes | bytearray):
            continue
        if name in ("tags", "set_tags"):
            if value or name == "set_tags":
                parameters["tags"] = [{"tagKey": k, "tagValue": v} for k, v in value.items()]
            continue
        if name == "name" and kind.startswith("Alias."):
            continue  # named by aliasName above
        parameters[_RENAMED.get(name) or _CAMEL.sub(lambda m: m[1].upper(), name)] = (
            camel_parameters(value)
        )
    if kind == "Cmk.PolicyPut":
        parameters["policyName"] = "default"
    if kind == "Cmk.TagsChanged" and not fields.get("set_tags"):
        parameters.pop("tags", None)
    if kind == "Cmk.TagsChanged" and not fields.get("removed_keys"):
        parameters.pop("tagKeys", None)
    return parameters


def _event_response(event: Any, arn: str | None) -> dict[str, Any]:
    kind = event_kind(event)
    if kind == "Cmk.Created" and arn:
        return {"keyMetadata": _key_metadata(event, arn)}
    if kind == "Cmk.DeletionScheduled" and arn:
        return {
            "keyId": arn,
            "deletionDate": event_time(event.deletion_date),
            "keyState": "PendingDeletion",
            "pendingWindowInDays": event.pending_window_days,
        }
    if kind == "Cmk.Deleted" and arn:
        # Records since December 2022 name the key here (ct-delete-key.html).
        return {"keyId": arn}
    if kind.endswith("GrantCreated"):
        return {"grantId": getattr(event, "grant_id", None)}
    return {}


def _key_metadata(event: Any, arn: str) -> dict[str, Any]:
    return {
        "aWSAccountId": event.account,
        "keyId": arn.rsplit("/", 1)[1],
        "arn": arn,
        "creationDate": event_time(event.timestamp),
        "enabled": True,
        "description": event.description,
        "keyUsage": event.key_usage,
        "keyState": "Enabled",
        "origin": event.origin,
        "keyManager": getattr(event, "key_manager", "CUSTOMER"),
        "customerMasterKeySpec": event.key_spec,
        "keySpec": event.key_spec,
        "encryptionAlgorithms": ["SYMMETRIC_DEFAULT"],
        "multiRegion": event.multi_region,
    }


def new_arns(events: Iterable[Any]) -> dict[str, str]:
    """ARNs of aggregates these events create (keys and aliases)."""
    found: dict[str, str] = {}
    for event in events:
        kind = event_kind(event)
        if kind == "Cmk.Created":
            found[str(event.originator_id)] = (
                f"arn:aws:kms:{event.region}:{event.account}:key/{event.originator_id}"
            )
        elif kind == "Alias.Created":
            found[str(event.originator_id)] = (
                f"arn:aws:kms:{event.region}:{event.account}:{event.name}"
            )
    return found
