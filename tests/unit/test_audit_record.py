"""The pure event/usage record -> CloudTrail record functions, by table."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import uuid4

from domain.alias import Alias
from domain.cmk import Cmk
from domain.usage import RequestRecorded
from domain.values import RequestContext
from projections.audit_record import (
    group_by_request,
    key_events_record,
    new_arns,
    principal_id,
    usage_record,
    username,
)

NOW = datetime(2026, 11, 30, 1, 2, 3, tzinfo=UTC)
ACCOUNT = "111122223333"
ALICE = f"arn:aws:iam::{ACCOUNT}:user/alice"


def ctx(operation: str, principal: str | None = ALICE, **kw: object) -> RequestContext:
    return RequestContext(
        principal=principal,
        account=ACCOUNT,
        region="us-east-1",
        request_id=kw.pop("request_id", str(uuid4())),  # type: ignore[arg-type]
        source_ip="127.0.0.1",
        user_agent="Boto3/1.0",
        access_key_id="AKALICE",
        operation=operation,
        **kw,  # type: ignore[arg-type]
    )


def usage(operation: str, context: RequestContext | None, **kw: object) -> RequestRecorded:
    return RequestRecorded(
        originator_id=uuid4(),
        originator_version=1,
        timestamp=NOW,
        operation=operation,
        request=context.as_dict() if context else {},
        key_arn=kw.get("key_arn"),  # type: ignore[arg-type]
        parameters=kw.get("parameters", {}),  # type: ignore[arg-type]
        error_code=kw.get("error_code"),  # type: ignore[arg-type]
        error_message=kw.get("error_message"),  # type: ignore[arg-type]
    )


def new_key(context: RequestContext) -> Cmk:
    return Cmk.create(
        key_id=uuid4(),
        ctx=context,
        now=NOW,
        description="payments",
        policy="{}",
        tags={"team": "a"},
        material_id="m" * 64,
        wrapped_material=b"\x00" * 60,
    )


def test_encrypt_record_matches_cloudtrail_example_shape() -> None:
    key = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/{uuid4()}"
    context = ctx("Encrypt")
    record = usage_record(
        usage(
            "Encrypt",
            context,
            key_arn=key,
            parameters={"KeyId": "alias/x", "EncryptionContext": {"Dept": "IT"}},
        ),
        7,
    )
    assert record["eventVersion"] == "1.08"
    assert record["userIdentity"] == {
        "type": "IAMUser",
        "principalId": principal_id(ALICE, ACCOUNT),
        "arn": ALICE,
        "accountId": ACCOUNT,
        "accessKeyId": "AKALICE",
        "userName": "alice",
    }
    assert record["eventTime"] == "2026-11-30T01:02:03Z"
    assert record["eventSource"] == "kms.amazonaws.com"
    assert record["eventName"] == "Encrypt"
    # caller-chosen map keys keep their case; members are camelCase (ct-encrypt.html)
    assert record["requestParameters"] == {
        "keyId": "alias/x",
        "encryptionContext": {"Dept": "IT"},
        "encryptionAlgorithm": "SYMMETRIC_DEFAULT",
    }
    assert record["responseElements"] is None
    assert record["requestID"] == context.request_id
    assert record["readOnly"] is True
    assert record["resources"] == [{"accountId": ACCOUNT, "type": "AWS::KMS::Key", "ARN": key}]
    assert record["eventType"] == "AwsApiCall"
    assert record["managementEvent"] is True
    assert record["eventCategory"] == "Management"
    assert record["recipientAccountId"] == ACCOUNT
    assert "errorCode" not in record
    assert "additionalEventData" not in record
    assert username(record) == "alice"


def test_failure_refusal_dry_run_and_grant_are_recorded() -> None:
    context = ctx("Decrypt")
    context.grants_used.append("g" * 64)
    record = usage_record(
        usage(
            "Decrypt",
            context,
            parameters={"DryRun": True},
            error_code="DryRunOperationException",
            error_message="The request would have succeeded, but the DryRun option is set.",
        ),
        1,
    )
    assert record["errorCode"] == "DryRunOperationException"
    assert record["errorMessage"].startswith("The request would have succeeded")
    assert record["requestParameters"] == {"dryRun": True}
    assert record["additionalEventData"] == {"grantId": "g" * 64}


def test_unauthenticated_request_has_unknown_identity() -> None:
    record = usage_record(
        usage("Unknown", None, error_code="UnrecognizedClientException", error_message="x"), 3
    )
    assert record["userIdentity"]["type"] == "Unknown"
    assert record["errorCode"] == "UnrecognizedClientException"


def test_sts_and_cloudtrail_calls_name_their_own_source() -> None:
    sts = usage_record(usage("sts:GetCallerIdentity", ctx("sts:GetCallerIdentity")), 1)
    trail = usage_record(usage("cloudtrail:LookupEvents", ctx("cloudtrail:LookupEvents")), 2)
    assert (sts["eventSource"], sts["eventName"]) == ("sts.amazonaws.com", "GetCallerIdentity")
    assert (trail["eventSource"], trail["readOnly"]) == ("cloudtrail.amazonaws.com", True)


def test_create_key_record_has_parameters_and_key_metadata() -> None:
    cmk = new_key(ctx("CreateKey"))
    events = cmk.collect_events()
    arns = new_arns(events)
    record = key_events_record(events, 4, arns)
    arn = arns[str(cmk.id)]
    assert record["eventName"] == "CreateKey"
    assert record["readOnly"] is False
    params = record["requestParameters"]
    assert params["description"] == "payments"
    assert params["keySpec"] == "SYMMETRIC_DEFAULT"
    assert params["tags"] == [{"tagKey": "team", "tagValue": "a"}]
    assert "wrappedMaterial" not in params and "policy" not in params
    assert record["responseElements"]["keyMetadata"]["arn"] == arn
    assert record["resources"][0]["ARN"] == arn
    assert "AAAAAAAA" not in str(record)  # no material (base64 of the zero bytes)


def test_service_deletion_groups_key_and_alias_into_one_service_event() -> None:
    cmk = new_key(ctx("CreateKey"))
    alias = Alias.create("alias/pay", str(cmk.id), ctx("CreateAlias"), NOW)
    arns = new_arns([*cmk.collect_events(), *alias.collect_events()])
    service = RequestContext.service(ACCOUNT, "us-east-1", str(uuid4()), "DeleteKey")
    cmk.state = cmk.state.PENDING_DELETION
    cmk.trigger_event(cmk.Deleted, timestamp=NOW, request=service.as_dict())
    alias.delete(service, NOW)
    events = [*cmk.collect_events(), *alias.collect_events()]
    groups = group_by_request(events)
    assert len(groups) == 1
    record = key_events_record(groups[0], 9, arns)
    assert record["eventType"] == "AwsServiceEvent"
    assert record["eventName"] == "DeleteKey"
    assert record["userIdentity"] == {"accountId": ACCOUNT, "invokedBy": "AWS Internal"}
    assert record["sourceIPAddress"] == "AWS Internal"
    assert record["requestParameters"] is None
    assert "requestID" not in record
    assert record["responseElements"] == {"keyId": arns[str(cmk.id)]}
    assert [r["ARN"] for r in record["resources"]] == [arns[str(cmk.id)], arns[str(alias.id)]]
    assert record["serviceEventDetails"] == {"keyId": str(cmk.id)}


def test_event_ids_are_stable_and_distinct() -> None:
    a = usage_record(usage("Encrypt", ctx("Encrypt")), 1)
    b = usage_record(usage("Encrypt", ctx("Encrypt")), 2)
    again = usage_record(usage("Encrypt", ctx("Encrypt")), 1)
    assert a["eventID"] != b["eventID"]
    assert a["eventID"] == again["eventID"]


def test_root_principal_is_root() -> None:
    record = usage_record(usage("ListKeys", ctx("ListKeys", f"arn:aws:iam::{ACCOUNT}:root")), 1)
    assert record["userIdentity"]["type"] == "Root"
    assert record["userIdentity"]["principalId"] == ACCOUNT
    assert username(record) == "root"
    assert record["readOnly"] is True
