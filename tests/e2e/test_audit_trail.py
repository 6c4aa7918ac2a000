"""The audit trail end to end: every built operation leaves a CloudTrail-shaped record,
and a boto3 ``cloudtrail`` client reads them with LookupEvents on the same port.

Record shapes follow the KMS ct-*.md examples (security.md section 7.2, aws-kms-api.md
"CloudTrail LookupEvents"). Each record is found by the x-amzn-RequestId of its call.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from api.config import PrincipalConfig, Settings
from api.ops import OPERATIONS as BUILT
from api.sigv4 import Credential
from domain.values import default_key_policy
from tests.conftest import TEST_STORE_ENV
from tests.support import REPO, ThreadServer, client

ACCOUNT, OTHER = "111111111111", "222222222222"
ROOT = f"arn:aws:iam::{ACCOUNT}:root"
AUDITOR = f"arn:aws:iam::{ACCOUNT}:user/auditor"
NOBODY = f"arn:aws:iam::{ACCOUNT}:user/nobody"
SECRET = b"top secret plaintext 4711"
OPERATIONS = sorted(
    {
        *("CancelKeyDeletion", "CreateAlias", "CreateKey", "Decrypt", "DeleteAlias"),
        *("DescribeKey", "DisableKey", "DisableKeyRotation", "EnableKey", "EnableKeyRotation"),
        *("Encrypt", "GenerateDataKey", "GenerateDataKeyWithoutPlaintext", "GenerateRandom"),
        *("GetKeyPolicy", "GetKeyRotationStatus", "ListAliases", "ListKeyPolicies"),
        *("ListKeyRotations", "ListKeys", "ListResourceTags", "PutKeyPolicy", "ReEncrypt"),
        *("RotateKeyOnDemand", "ScheduleKeyDeletion", "TagResource", "UntagResource"),
        *("UpdateAlias", "UpdateKeyDescription", "GetKeyLastUsage"),
        *("CreateGrant", "ListGrants", "ListRetirableGrants", "RetireGrant", "RevokeGrant"),
    }
)
DRY_RUN = ("Decrypt", "Encrypt", "GenerateDataKey", "GenerateDataKeyWithoutPlaintext", "ReEncrypt")
READ_ONLY = {
    *("Decrypt", "DescribeKey", "Encrypt", "GenerateDataKey", "GenerateDataKeyWithoutPlaintext"),
    *("GenerateRandom", "GetKeyPolicy", "GetKeyRotationStatus", "ListAliases", "GetKeyLastUsage"),
    *("ListGrants", "ListRetirableGrants"),
    *("ListKeyPolicies", "ListKeyRotations", "ListKeys", "ListResourceTags", "ReEncrypt"),
    *("Sign", "Verify", "GetPublicKey", "GenerateMac", "GenerateDataKeyPair"),
}
LOOSE = Config(parameter_validation=False, retries={"max_attempts": 1})
CRYPTO = {"Decrypt", "Encrypt", "GenerateDataKey", "GenerateDataKeyWithoutPlaintext", "ReEncrypt"}


def principal(name: str, arn: str, account: str, *policies: dict[str, Any]) -> PrincipalConfig:
    return PrincipalConfig(
        Credential(f"AK{name.upper()}", f"secret-{name}", arn, account),
        policies=tuple(json.dumps(p) for p in policies),
    )


AUDIT_POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {"Effect": "Allow", "Action": ["cloudtrail:LookupEvents", "audit:*"], "Resource": "*"}
    ],
}
KMS_ONLY = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "kms:*", "Resource": "*"}],
}


def audit_settings(data_dir: Path) -> Settings:
    return Settings(
        data_dir=data_dir,
        port=0,
        principals=(
            principal("root", ROOT, ACCOUNT),
            principal("auditor", AUDITOR, ACCOUNT, AUDIT_POLICY),
            principal("nobody", NOBODY, ACCOUNT),
            principal("kmsuser", f"arn:aws:iam::{ACCOUNT}:user/kmsuser", ACCOUNT, KMS_ONLY),
            principal("other", f"arn:aws:iam::{OTHER}:root", OTHER),
        ),
    )


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[ThreadServer]:
    settings = audit_settings(tmp_path_factory.mktemp("audit") / "data")
    if os.environ.get(TEST_STORE_ENV) == "postgresql":  # the trail in PostgreSQL (conftest)
        settings = replace(settings, store=request.getfixturevalue("postgres").create_database())
    running = ThreadServer(settings).start()
    yield running
    running.stop()


def as_(server: ThreadServer, name: str, service: str = "kms", **kw: Any) -> Any:
    return client(
        server.endpoint,
        service,
        aws_access_key_id=f"AK{name.upper()}",
        aws_secret_access_key=f"secret-{name}",
        **kw,
    )


@pytest.fixture(scope="module")
def kms(server: ThreadServer) -> Any:
    return as_(server, "root")


@pytest.fixture(scope="module")
def trail(server: ThreadServer) -> Any:
    return as_(server, "root", "cloudtrail")


def record_of(trail: Any, request_id: str, event_name: str) -> dict[str, Any]:
    """The CloudTrail record of one request, found through LookupEvents."""
    pages = trail.get_paginator("lookup_events").paginate(
        LookupAttributes=[{"AttributeKey": "EventName", "AttributeValue": event_name}]
    )
    for page in pages:
        for event in page["Events"]:
            record = json.loads(event["CloudTrailEvent"])
            if record.get("requestID") == request_id:
                assert event["EventId"] == record["eventID"]
                assert event["EventName"] == record["eventName"] == event_name
                assert event["ReadOnly"] == str(record["readOnly"]).lower()
                return record
    raise AssertionError(f"no record of {event_name} {request_id}")


def request_id(response: dict[str, Any]) -> str:
    return str(response["ResponseMetadata"]["RequestId"])


def failed(call: Callable[..., Any], **params: Any) -> tuple[str, str]:
    """Call, expect a 400, return (error code, request id)."""
    with pytest.raises(ClientError) as caught:
        call(**params)
    response = caught.value.response
    return response["Error"]["Code"], request_id(response)


# -- one successful call of every built operation ---------------------------------------


def successful_calls(kms: Any) -> dict[str, Callable[[], tuple[dict[str, Any], str]]]:
    """Each operation once, on a key of its own; returns (response, key id)."""

    def new_key() -> str:
        return str(kms.create_key(Description="audit")["KeyMetadata"]["KeyId"])

    def on_key(call: Callable[[str], dict[str, Any]]) -> Callable[[], tuple[dict[str, Any], str]]:
        def run() -> tuple[dict[str, Any], str]:
            key = new_key()
            return call(key), key

        return run

    def blob(key: str) -> bytes:
        return bytes(kms.encrypt(KeyId=key, Plaintext=SECRET)["CiphertextBlob"])

    def scheduled(key: str) -> str:
        kms.schedule_key_deletion(KeyId=key, PendingWindowInDays=7)
        return key

    def granted(key: str) -> str:
        grant = kms.create_grant(
            KeyId=key, GranteePrincipal=AUDITOR, RetiringPrincipal=ROOT, Operations=["Encrypt"]
        )
        return str(grant["GrantId"])

    def aliased(key: str) -> str:
        name = f"alias/audit-{uuid4().hex[:8]}"
        kms.create_alias(AliasName=name, TargetKeyId=key)
        return name

    return {
        "CreateKey": lambda: (kms.create_key(Description="made"), ""),
        "DescribeKey": on_key(lambda k: kms.describe_key(KeyId=k)),
        "Encrypt": on_key(
            lambda k: kms.encrypt(KeyId=k, Plaintext=SECRET, EncryptionContext={"app": "audit"})
        ),
        "Decrypt": on_key(lambda k: kms.decrypt(CiphertextBlob=blob(k))),
        "ReEncrypt": on_key(lambda k: kms.re_encrypt(CiphertextBlob=blob(k), DestinationKeyId=k)),
        "GenerateDataKey": on_key(lambda k: kms.generate_data_key(KeyId=k, KeySpec="AES_256")),
        "GenerateDataKeyWithoutPlaintext": on_key(
            lambda k: kms.generate_data_key_without_plaintext(KeyId=k, NumberOfBytes=32)
        ),
        "GenerateRandom": lambda: (kms.generate_random(NumberOfBytes=32), ""),
        "GetKeyPolicy": on_key(lambda k: kms.get_key_policy(KeyId=k, PolicyName="default")),
        "GetKeyRotationStatus": on_key(lambda k: kms.get_key_rotation_status(KeyId=k)),
        "GetKeyLastUsage": on_key(lambda k: kms.get_key_last_usage(KeyId=k)),
        "ListAliases": lambda: (kms.list_aliases(), ""),
        "ListKeyPolicies": on_key(lambda k: kms.list_key_policies(KeyId=k)),
        "ListKeyRotations": on_key(lambda k: kms.list_key_rotations(KeyId=k)),
        "ListKeys": lambda: (kms.list_keys(), ""),
        "ListResourceTags": on_key(lambda k: kms.list_resource_tags(KeyId=k)),
        "PutKeyPolicy": on_key(
            lambda k: kms.put_key_policy(
                KeyId=k, PolicyName="default", Policy=default_key_policy(ACCOUNT)
            )
        ),
        "TagResource": on_key(
            lambda k: kms.tag_resource(KeyId=k, Tags=[{"TagKey": "team", "TagValue": "red"}])
        ),
        "UntagResource": on_key(lambda k: kms.untag_resource(KeyId=k, TagKeys=["team"])),
        "UpdateKeyDescription": on_key(
            lambda k: kms.update_key_description(KeyId=k, Description="new")
        ),
        "EnableKey": on_key(lambda k: kms.enable_key(KeyId=k)),
        "DisableKey": on_key(lambda k: kms.disable_key(KeyId=k)),
        "EnableKeyRotation": on_key(
            lambda k: kms.enable_key_rotation(KeyId=k, RotationPeriodInDays=90)
        ),
        "DisableKeyRotation": on_key(lambda k: kms.disable_key_rotation(KeyId=k)),
        "RotateKeyOnDemand": on_key(lambda k: kms.rotate_key_on_demand(KeyId=k)),
        "ScheduleKeyDeletion": on_key(
            lambda k: kms.schedule_key_deletion(KeyId=k, PendingWindowInDays=7)
        ),
        "CancelKeyDeletion": on_key(lambda k: kms.cancel_key_deletion(KeyId=scheduled(k))),
        "CreateAlias": on_key(
            lambda k: kms.create_alias(AliasName=f"alias/new-{uuid4().hex[:8]}", TargetKeyId=k)
        ),
        "UpdateAlias": on_key(
            lambda k: kms.update_alias(AliasName=aliased(k), TargetKeyId=new_key())
        ),
        "DeleteAlias": on_key(lambda k: kms.delete_alias(AliasName=aliased(k))),
        "CreateGrant": on_key(
            lambda k: kms.create_grant(KeyId=k, GranteePrincipal=AUDITOR, Operations=["Decrypt"])
        ),
        "ListGrants": on_key(lambda k: kms.list_grants(KeyId=k)),
        "ListRetirableGrants": lambda: (kms.list_retirable_grants(RetiringPrincipal=ROOT), ""),
        "RetireGrant": on_key(lambda k: kms.retire_grant(KeyId=k, GrantId=granted(k))),
        "RevokeGrant": on_key(lambda k: kms.revoke_grant(KeyId=k, GrantId=granted(k))),
    }


def assert_common_shape(record: dict[str, Any], operation: str, rid: str) -> None:
    assert record["eventVersion"] == "1.08"
    assert record["eventSource"] == "kms.amazonaws.com"
    assert record["eventName"] == operation
    assert record["awsRegion"] == "us-east-1"
    assert record["requestID"] == rid
    assert record["eventType"] == "AwsApiCall"
    assert record["managementEvent"] is True
    assert record["eventCategory"] == "Management"
    assert record["sourceIPAddress"] == "127.0.0.1"
    assert record["userAgent"].startswith("Boto3/")
    assert record["readOnly"] is (operation in READ_ONLY)
    assert datetime.strptime(record["eventTime"], "%Y-%m-%dT%H:%M:%SZ")
    text = json.dumps(record)
    assert SECRET.decode() not in text
    assert base64.b64encode(SECRET).decode() not in text


def test_every_built_operation_leaves_a_cloudtrail_record(kms: Any, trail: Any) -> None:
    calls = successful_calls(kms)
    assert sorted(calls) == OPERATIONS
    for operation, call in calls.items():
        response, key = call()
        record = record_of(trail, request_id(response), operation)
        assert_common_shape(record, operation, request_id(response))
        assert record["userIdentity"] == {
            "type": "Root",
            "principalId": ACCOUNT,
            "arn": ROOT,
            "accountId": ACCOUNT,
            "accessKeyId": "AKROOT",
        }, operation
        assert record["recipientAccountId"] == ACCOUNT
        assert "errorCode" not in record, operation
        for blob in ("CiphertextBlob", "Plaintext"):
            if blob in response:
                encoded = base64.b64encode(response[blob]).decode()
                assert encoded not in json.dumps(record), (operation, blob)
        if key and operation not in ("UpdateAlias", "DeleteAlias"):  # they name the alias
            arns = [r["ARN"] for r in record["resources"]]
            assert any(a.endswith(key) for a in arns), (operation, arns)
            assert all(r["type"] == "AWS::KMS::Key" for r in record["resources"])
        if operation in CRYPTO:
            assert record["responseElements"] is None, operation
            members = {"ReEncrypt": "destinationKeyId", "Decrypt": "encryptionAlgorithm"}
            member = members.get(operation, "keyId")
            assert record["requestParameters"][member], operation


def test_operations_built_later_are_recorded_too(server: ThreadServer, trail: Any) -> None:
    """Any built operation without a scripted call above (one added later) still leaves
    a failure record: called with a KeyId that names no key."""
    assert set(OPERATIONS) <= set(BUILT)  # the scripted ones are all still built
    loose = as_(server, "root", config=LOOSE)
    known = set(loose.meta.service_model.operation_names)  # this botocore's model
    for operation in sorted((set(BUILT) - set(OPERATIONS)) & known):
        code, rid = failed(getattr(loose, _snake(operation)), KeyId=str(uuid4()))
        record = record_of(trail, rid, operation)
        assert record["errorCode"] == code


def test_create_key_and_encrypt_records_match_the_cloudtrail_examples(kms: Any, trail: Any) -> None:
    created = kms.create_key(Description="example", Tags=[{"TagKey": "t", "TagValue": "v"}])
    record = record_of(trail, request_id(created), "CreateKey")
    params = record["requestParameters"]
    assert params["description"] == "example"
    assert (params["keySpec"], params["keyUsage"], params["origin"]) == (
        "SYMMETRIC_DEFAULT",
        "ENCRYPT_DECRYPT",
        "AWS_KMS",
    )
    metadata = record["responseElements"]["keyMetadata"]
    assert metadata["arn"] == created["KeyMetadata"]["Arn"]
    assert metadata["keyId"] == created["KeyMetadata"]["KeyId"]
    key = created["KeyMetadata"]["KeyId"]
    encrypted = kms.encrypt(KeyId=key, Plaintext=SECRET, EncryptionContext={"Dept": "IT"})
    record = record_of(trail, request_id(encrypted), "Encrypt")
    assert record["requestParameters"] == {
        "keyId": key,
        "encryptionContext": {"Dept": "IT"},
        "encryptionAlgorithm": "SYMMETRIC_DEFAULT",
    }
    assert record["resources"] == [
        {"accountId": ACCOUNT, "type": "AWS::KMS::Key", "ARN": created["KeyMetadata"]["Arn"]}
    ]


def failing_calls(kms: Any, loose: Any) -> dict[str, Callable[[], tuple[str, str]]]:
    """Each operation made to fail by its input (not by permissions)."""
    missing = str(uuid4())
    with_key = {
        op: getattr(kms, _snake(op))
        for op in OPERATIONS
        if op not in {"CreateKey", "GenerateRandom", "ListKeys", "ListAliases"}
        and op != "ListRetirableGrants"
    }
    params: dict[str, dict[str, Any]] = {
        "Encrypt": {"Plaintext": SECRET},
        "GenerateDataKey": {"KeySpec": "AES_256"},
        "GenerateDataKeyWithoutPlaintext": {"KeySpec": "AES_256"},
        "GetKeyPolicy": {"PolicyName": "default"},
        "PutKeyPolicy": {"PolicyName": "default", "Policy": default_key_policy(ACCOUNT)},
        "TagResource": {"Tags": [{"TagKey": "a", "TagValue": "b"}]},
        "UntagResource": {"TagKeys": ["a"]},
        "UpdateKeyDescription": {"Description": "x"},
        "EnableKeyRotation": {},
        "ScheduleKeyDeletion": {"PendingWindowInDays": 7},
        "CreateGrant": {"GranteePrincipal": AUDITOR, "Operations": ["Encrypt"]},
        "RetireGrant": {"GrantId": "0" * 64},
        "RevokeGrant": {"GrantId": "0" * 64},
    }
    calls: dict[str, Callable[[], tuple[str, str]]] = {}
    for op, method in with_key.items():
        if op == "Decrypt":
            calls[op] = lambda: failed(kms.decrypt, CiphertextBlob=b"not a ciphertext" * 4)
        elif op == "ReEncrypt":
            calls[op] = lambda: failed(
                kms.re_encrypt, CiphertextBlob=b"not a ciphertext" * 4, DestinationKeyId=missing
            )
        elif op in ("CreateAlias", "UpdateAlias"):
            calls[op] = lambda m=method: failed(
                m, AliasName=f"alias/x-{uuid4().hex[:6]}", TargetKeyId=missing
            )
        elif op == "DeleteAlias":
            calls[op] = lambda: failed(kms.delete_alias, AliasName="alias/never-made")
        else:
            calls[op] = lambda m=method, o=op: failed(m, KeyId=missing, **params.get(o, {}))
    calls["CreateKey"] = lambda: failed(kms.create_key, Policy="{not json")
    calls["GenerateRandom"] = lambda: failed(loose.generate_random, NumberOfBytes=0)
    calls["ListKeys"] = lambda: failed(kms.list_keys, Marker="bogus")
    calls["ListAliases"] = lambda: failed(kms.list_aliases, Marker="bogus")
    calls["ListRetirableGrants"] = lambda: failed(
        kms.list_retirable_grants, RetiringPrincipal=ROOT, Marker="bogus"
    )
    return calls


def _snake(name: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name).lstrip("_")


def test_failed_requests_are_recorded_with_error_code_and_message(
    server: ThreadServer, kms: Any, trail: Any
) -> None:
    calls = failing_calls(kms, as_(server, "root", config=LOOSE))
    assert sorted(calls) == OPERATIONS
    for operation, call in calls.items():
        code, rid = call()
        record = record_of(trail, rid, operation)
        assert_common_shape(record, operation, rid)
        assert record["errorCode"] == code, operation
        assert isinstance(record["errorMessage"], str), operation
        assert record["responseElements"] is None


def test_refused_requests_are_recorded_as_access_denied(
    server: ThreadServer, kms: Any, trail: Any
) -> None:
    nobody = as_(server, "nobody")
    key = kms.create_key()["KeyMetadata"]["KeyId"]
    refusals = {
        "DescribeKey": lambda: failed(nobody.describe_key, KeyId=key),
        "Encrypt": lambda: failed(nobody.encrypt, KeyId=key, Plaintext=SECRET),
        "CreateKey": lambda: failed(nobody.create_key),
        "ListKeys": lambda: failed(nobody.list_keys),
        "GenerateRandom": lambda: failed(nobody.generate_random, NumberOfBytes=8),
        "DisableKey": lambda: failed(nobody.disable_key, KeyId=key),
        "PutKeyPolicy": lambda: failed(
            nobody.put_key_policy, KeyId=key, PolicyName="default", Policy="{}"
        ),
    }
    for operation, call in refusals.items():
        code, rid = call()
        assert code == "AccessDeniedException", operation
        record = record_of(trail, rid, operation)
        assert record["errorCode"] == "AccessDeniedException"
        assert NOBODY in record["errorMessage"]
        assert record["userIdentity"]["type"] == "IAMUser"
        assert record["userIdentity"]["userName"] == "nobody"
        assert record["userIdentity"]["accessKeyId"] == "AKNOBODY"


def test_dry_runs_are_recorded_as_dry_run_failures(kms: Any, trail: Any) -> None:
    key = kms.create_key()["KeyMetadata"]["KeyId"]
    blob = kms.encrypt(KeyId=key, Plaintext=SECRET)["CiphertextBlob"]
    dry = {
        "Encrypt": lambda: failed(kms.encrypt, KeyId=key, Plaintext=SECRET, DryRun=True),
        "Decrypt": lambda: failed(kms.decrypt, CiphertextBlob=blob, DryRun=True),
        "ReEncrypt": lambda: failed(
            kms.re_encrypt, CiphertextBlob=blob, DestinationKeyId=key, DryRun=True
        ),
        "GenerateDataKey": lambda: failed(
            kms.generate_data_key, KeyId=key, KeySpec="AES_256", DryRun=True
        ),
        "GenerateDataKeyWithoutPlaintext": lambda: failed(
            kms.generate_data_key_without_plaintext, KeyId=key, KeySpec="AES_256", DryRun=True
        ),
    }
    assert sorted(dry) == sorted(DRY_RUN)
    for operation, call in dry.items():
        code, rid = call()
        assert code == "DryRunOperationException"
        record = record_of(trail, rid, operation)
        assert record["errorCode"] == "DryRunOperationException"
        assert record["requestParameters"]["dryRun"] is True
        assert record["resources"][0]["ARN"].endswith(key)


def test_an_unauthenticated_request_is_recorded(server: ThreadServer, trail: Any) -> None:
    stranger = client(server.endpoint, aws_access_key_id="AKSTRANGER")
    code, rid = failed(stranger.list_keys)
    assert code == "UnrecognizedClientException"
    pages = trail.get_paginator("lookup_events").paginate()
    records = [json.loads(e["CloudTrailEvent"]) for p in pages for e in p["Events"]]
    # It names no account, so no account's LookupEvents shows it; the audit query does.
    assert rid not in {r.get("requestID") for r in records}
    data = server.settings.data_dir
    assert data is not None
    query = [sys.executable, "-m", "api", "audit", "query", "--data-dir", str(data)]
    query += ["--outcome", "UnrecognizedClientException", "--json"]
    if server.settings.store is not None:
        query += ["--store", server.settings.store]
    result = subprocess.run(query, cwd=REPO, capture_output=True, text=True, check=True)
    (record,) = [r for r in json.loads(result.stdout) if r["requestID"] == rid]
    assert record["userIdentity"] == {"type": "Unknown", "accountId": None}
    assert record["sourceIPAddress"] == "127.0.0.1"


# -- LookupEvents --------------------------------------------------------------------------


def events(trail: Any, **params: Any) -> list[dict[str, Any]]:
    found = []
    for page in trail.get_paginator("lookup_events").paginate(**params):
        found += page["Events"]
    return found


def lookup(trail: Any, key: str, value: str, **params: Any) -> list[dict[str, Any]]:
    attribute = [{"AttributeKey": key, "AttributeValue": value}]
    return events(trail, LookupAttributes=attribute, **params)


def test_lookup_by_every_attribute(server: ThreadServer, kms: Any, trail: Any) -> None:
    user = as_(server, "kmsuser")
    created = user.create_key(Description="by attribute")
    key_arn = created["KeyMetadata"]["Arn"]
    encrypted = user.encrypt(KeyId=key_arn, Plaintext=SECRET)
    encrypt_record = record_of(trail, request_id(encrypted), "Encrypt")
    event_id = encrypt_record["eventID"]

    by_id = lookup(trail, "EventId", event_id)
    assert [e["EventId"] for e in by_id] == [event_id]
    assert json.loads(by_id[0]["CloudTrailEvent"]) == encrypt_record

    by_name = lookup(trail, "EventName", "Encrypt")
    assert by_name and {e["EventName"] for e in by_name} == {"Encrypt"}

    for value, expected in (("true", "true"), ("false", "false")):
        found = lookup(trail, "ReadOnly", value)
        assert found and {e["ReadOnly"] for e in found} == {expected}

    by_user = lookup(trail, "Username", "kmsuser")
    assert {e["EventName"] for e in by_user} >= {"CreateKey", "Encrypt"}
    assert {e["Username"] for e in by_user} == {"kmsuser"}

    by_type = lookup(trail, "ResourceType", "AWS::KMS::Key")
    assert event_id in {e["EventId"] for e in by_type}

    by_resource = lookup(trail, "ResourceName", key_arn)
    assert [e["EventName"] for e in by_resource] == ["Encrypt", "CreateKey"]  # newest first
    assert by_resource[0]["Resources"] == [
        {"ResourceType": "AWS::KMS::Key", "ResourceName": key_arn}
    ]

    by_source = lookup(trail, "EventSource", "kms.amazonaws.com")
    assert event_id in {e["EventId"] for e in by_source}
    assert lookup(trail, "EventSource", "cloudtrail.amazonaws.com")  # LookupEvents itself

    by_access_key = lookup(trail, "AccessKeyId", "AKKMSUSER")
    assert {e["AccessKeyId"] for e in by_access_key} == {"AKKMSUSER"}
    assert {e["EventName"] for e in by_access_key} >= {"CreateKey", "Encrypt"}


def test_time_ranges_are_inclusive_and_newest_first(kms: Any, trail: Any) -> None:
    key = kms.create_key()["KeyMetadata"]["Arn"]
    for _ in range(3):
        kms.encrypt(KeyId=key, Plaintext=SECRET)
    found = lookup(trail, "ResourceName", key)
    times = [e["EventTime"] for e in found]
    assert times == sorted(times, reverse=True)
    first, last = times[-1], times[0]
    assert len(lookup(trail, "ResourceName", key, StartTime=first, EndTime=last)) == 4
    assert lookup(trail, "ResourceName", key, StartTime=last + timedelta(seconds=1)) == []
    assert lookup(trail, "ResourceName", key, EndTime=first - timedelta(seconds=1)) == []
    assert len(lookup(trail, "ResourceName", key, EndTime=first)) == 1


def test_paginator_and_max_results(kms: Any, trail: Any) -> None:
    key = kms.create_key()["KeyMetadata"]["Arn"]
    for _ in range(6):
        kms.encrypt(KeyId=key, Plaintext=SECRET)
    attribute = [{"AttributeKey": "ResourceName", "AttributeValue": key}]
    first = trail.lookup_events(LookupAttributes=attribute, MaxResults=4)
    assert len(first["Events"]) == 4 and "NextToken" in first
    second = trail.lookup_events(
        LookupAttributes=attribute, MaxResults=4, NextToken=first["NextToken"]
    )
    assert len(second["Events"]) == 3 and "NextToken" not in second
    pages = list(
        trail.get_paginator("lookup_events").paginate(
            LookupAttributes=attribute, PaginationConfig={"PageSize": 2}
        )
    )
    ids = [e["EventId"] for p in pages for e in p["Events"]]
    assert len(pages) == 4 and len(ids) == len(set(ids)) == 7
    assert ids == [e["EventId"] for e in first["Events"] + second["Events"]]


def test_lookup_errors(server: ThreadServer, trail: Any) -> None:
    loose = as_(server, "root", "cloudtrail", config=LOOSE)
    now = datetime.now(UTC)
    two = [
        {"AttributeKey": "EventName", "AttributeValue": "Encrypt"},
        {"AttributeKey": "ReadOnly", "AttributeValue": "true"},
    ]
    assert failed(trail.lookup_events, LookupAttributes=two)[0] == (
        "InvalidLookupAttributesException"
    )
    bad_key = [{"AttributeKey": "Colour", "AttributeValue": "red"}]
    assert failed(loose.lookup_events, LookupAttributes=bad_key)[0] == (
        "InvalidLookupAttributesException"
    )
    bad_bool = [{"AttributeKey": "ReadOnly", "AttributeValue": "maybe"}]
    assert failed(trail.lookup_events, LookupAttributes=bad_bool)[0] == (
        "InvalidLookupAttributesException"
    )
    assert failed(trail.lookup_events, StartTime=now, EndTime=now - timedelta(hours=1))[0] == (
        "InvalidTimeRangeException"
    )
    assert failed(trail.lookup_events, NextToken="garbage!")[0] == "InvalidNextTokenException"
    assert failed(loose.lookup_events, MaxResults=51)[0] == "InvalidMaxResultsException"
    assert failed(loose.lookup_events, MaxResults=0)[0] == "InvalidMaxResultsException"
    page = trail.lookup_events(MaxResults=1)
    other = [{"AttributeKey": "EventName", "AttributeValue": "Encrypt"}]
    # A token is good only with the parameters it was issued for.
    assert (
        failed(trail.lookup_events, LookupAttributes=other, NextToken=page["NextToken"])[0]
        == "InvalidNextTokenException"
    )


def test_lookup_is_authorized_by_iam_and_scoped_to_the_account(
    server: ThreadServer, kms: Any
) -> None:
    code, _ = failed(as_(server, "kmsuser", "cloudtrail").lookup_events)
    assert code == "AccessDeniedException"
    code, _ = failed(as_(server, "nobody", "cloudtrail").lookup_events)
    assert code == "AccessDeniedException"
    auditor = as_(server, "auditor", "cloudtrail")
    key = kms.create_key()["KeyMetadata"]["Arn"]
    assert lookup(auditor, "ResourceName", key)
    other = as_(server, "other", "cloudtrail")
    other_kms = as_(server, "other")
    mine = other_kms.create_key()["KeyMetadata"]["Arn"]
    assert lookup(other, "ResourceName", key) == []  # account A's key: not B's trail
    assert lookup(other, "ResourceName", mine)
    assert {e["EventId"] for e in events(other, MaxResults=50)}.isdisjoint(
        {e["EventId"] for e in lookup(auditor, "ResourceName", key)}
    )


# -- GetKeyLastUsage ---------------------------------------------------------------------


def test_get_key_last_usage_names_the_last_successful_crypto_call(
    server: ThreadServer, kms: Any, trail: Any
) -> None:
    created = kms.create_key()["KeyMetadata"]
    key = created["KeyId"]
    unused = kms.get_key_last_usage(KeyId=key)
    assert "KeyLastUsage" not in unused or unused["KeyLastUsage"] == {}
    assert unused["KeyId"] == key
    assert unused["KeyCreationDate"] == unused["TrackingStartDate"] == created["CreationDate"]
    blob = kms.encrypt(KeyId=key, Plaintext=SECRET)["CiphertextBlob"]
    decrypted = kms.decrypt(CiphertextBlob=blob)
    kms.describe_key(KeyId=key)  # not cryptographic: not tracked
    failed(kms.encrypt, KeyId=key, Plaintext=SECRET, DryRun=True)  # not successful
    failed(kms.decrypt, CiphertextBlob=blob, EncryptionContext={"wrong": "context"})
    last = kms.get_key_last_usage(KeyId=created["Arn"])["KeyLastUsage"]
    assert last["Operation"] == "Decrypt"
    assert last["KmsRequestId"] == request_id(decrypted)
    record = record_of(trail, request_id(decrypted), "Decrypt")
    assert last["CloudTrailEventId"] == record["eventID"]
    found = trail.lookup_events(
        LookupAttributes=[{"AttributeKey": "EventId", "AttributeValue": last["CloudTrailEventId"]}]
    )["Events"]
    assert [e["EventName"] for e in found] == ["Decrypt"]
    assert abs((last["Timestamp"] - found[0]["EventTime"]).total_seconds()) < 1
    assert failed(kms.get_key_last_usage, KeyId="alias/aws/s3")[0] == "NotFoundException"
    code, _ = failed(as_(server, "nobody").get_key_last_usage, KeyId=key)
    assert code == "AccessDeniedException"


def test_a_grant_is_recorded_and_names_itself_on_the_calls_it_allows(
    server: ThreadServer, kms: Any, trail: Any
) -> None:
    key = kms.create_key()["KeyMetadata"]["Arn"]
    created = kms.create_grant(
        KeyId=key,
        GranteePrincipal=NOBODY,
        Operations=["Encrypt"],
        Constraints={"EncryptionContextSubset": {"app": "audit"}},
    )
    record = record_of(trail, request_id(created), "CreateGrant")
    assert record["requestParameters"]["granteePrincipal"] == NOBODY
    assert record["requestParameters"]["operations"] == ["Encrypt"]
    assert record["requestParameters"]["keyId"] == key.rsplit("/", 1)[1]
    assert record["responseElements"] == {"grantId": created["GrantId"]}
    assert created["GrantToken"] not in json.dumps(record)
    nobody = as_(server, "nobody")
    used = nobody.encrypt(KeyId=key, Plaintext=SECRET, EncryptionContext={"app": "audit"})
    record = record_of(trail, request_id(used), "Encrypt")
    assert record["additionalEventData"] == {"grantId": created["GrantId"]}
    assert record["userIdentity"]["userName"] == "nobody"
    revoked = kms.revoke_grant(KeyId=key, GrantId=created["GrantId"])
    record = record_of(trail, request_id(revoked), "RevokeGrant")
    assert record["requestParameters"]["grantId"] == created["GrantId"]


def test_the_audit_view_reports_its_position_and_lag(server: ThreadServer, kms: Any) -> None:
    kms.list_keys()
    with urllib.request.urlopen(f"{server.endpoint}/projections", timeout=10) as response:
        views = json.loads(response.read())["views"]
    audit = next(v for v in views if v["name"] == "audit")
    assert set(audit["ledgers"]) == {"KeyLedger", "UsageLedger"}
    assert audit["head"] >= audit["position"] > 0
    assert audit["lag_events"] == audit["head"] - audit["position"]


def test_key_type_operations_are_recorded_without_messages_or_keys(kms: Any, trail: Any) -> None:
    signing = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]
    mac = kms.create_key(KeySpec="HMAC_256", KeyUsage="GENERATE_VERIFY_MAC")["KeyMetadata"]
    wrapping = kms.create_key()["KeyMetadata"]
    message = b"audit me not: a secret message 0815"
    signed = kms.sign(KeyId=signing["KeyId"], Message=message, SigningAlgorithm="ECDSA_SHA_256")
    calls = {
        "Sign": signed,
        "Verify": kms.verify(
            KeyId=signing["KeyId"],
            Message=message,
            Signature=signed["Signature"],
            SigningAlgorithm="ECDSA_SHA_256",
        ),
        "GetPublicKey": kms.get_public_key(KeyId=signing["KeyId"]),
        "GenerateMac": kms.generate_mac(
            KeyId=mac["KeyId"], Message=message, MacAlgorithm="HMAC_SHA_256"
        ),
        "GenerateDataKeyPair": kms.generate_data_key_pair(
            KeyId=wrapping["KeyId"], KeyPairSpec="ECC_NIST_P256"
        ),
    }
    for operation, response in calls.items():
        record = record_of(trail, request_id(response), operation)
        assert_common_shape(record, operation, request_id(response))
        assert record["readOnly"] is True, operation
        assert record["responseElements"] is None, operation
        text = json.dumps(record)
        assert base64.b64encode(message).decode() not in text, operation
        for blob in ("Signature", "PublicKey", "Mac", "PrivateKeyPlaintext"):
            if blob in response:
                assert base64.b64encode(response[blob]).decode() not in text, (operation, blob)
    record = record_of(trail, request_id(calls["Sign"]), "Sign")
    assert record["requestParameters"]["signingAlgorithm"] == "ECDSA_SHA_256"
    assert record["resources"][0]["ARN"] == signing["Arn"]
