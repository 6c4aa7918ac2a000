"""Forensics by replay against `keyledger serve --dev-clock`: a key's history and its state
at past moments (CLI and HTTP) match what DescribeKey, GetKeyPolicy, ListAliases,
ListResourceTags and GetKeyRotationStatus answered at those moments; service actions
(automatic rotation, deletion) are AwsServiceEvent records with no principal."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from domain.values import default_key_policy
from tests.conftest import TEST_STORE_ENV
from tests.support import REPO, ProcessServer, advance

pytestmark = pytest.mark.slow
DAY = 86_400
ACCOUNT = "000000000000"


def _principal(name: str, action: str) -> str:
    """A config entry: an IAM user whose one identity policy allows ``action``."""
    return f"""
[[principals]]
arn = "arn:aws:iam::000000000000:user/{name}"
access_key_id = "AK{name.upper()}"
secret_access_key = "secret-{name}"

[[principals.policies]]
Version = "2012-10-17"

[[principals.policies.Statement]]
Effect = "Allow"
Action = "{action}"
Resource = "*"
"""


CONFIG = (
    """
[[principals]]
arn = "arn:aws:iam::000000000000:root"
access_key_id = "test"
secret_access_key = "test"
"""
    + _principal("kmsadmin", "kms:*")
    + _principal("auditor", "audit:*")
)


@dataclass
class Story:
    server: ProcessServer
    data: Path
    key: str
    arn: str
    # (moment, what the API answered just after it)
    snapshots: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    request_ids: dict[str, str] = field(default_factory=dict)  # eventName -> x-amzn-RequestId
    after: float = 0.0
    store: tuple[str, ...] = ()  # ("--store", URL) when the server's store is PostgreSQL


def observe(kms: Any, key: str) -> dict[str, Any]:
    rotation = kms.get_key_rotation_status(KeyId=key)
    return {
        "metadata": kms.describe_key(KeyId=key)["KeyMetadata"],
        "policy": kms.get_key_policy(KeyId=key, PolicyName="default")["Policy"],
        "aliases": sorted(a["AliasName"] for a in kms.list_aliases(KeyId=key)["Aliases"]),
        "tags": kms.list_resource_tags(KeyId=key)["Tags"],
        "rotation": (rotation["KeyRotationEnabled"], rotation.get("RotationPeriodInDays")),
        "grants": sorted(g["GrantId"] for g in kms.list_grants(KeyId=key)["Grants"]),
    }


@pytest.fixture(scope="module")
def story(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[Story]:
    root = tmp_path_factory.mktemp("forensics")
    store: tuple[str, ...] = ()
    if os.environ.get(TEST_STORE_ENV) == "postgresql":  # the trail in PostgreSQL (conftest)
        store = ("--store", request.getfixturevalue("postgres").create_database())
    config = root / "config.toml"
    config.write_text(CONFIG)
    data = root / "data"
    data.mkdir()
    server = ProcessServer(data, extra_args=("--dev-clock", "--config", str(config), *store))
    server.start()
    kms = server.client()
    created = kms.create_key(Description="v1")
    key, arn = created["KeyMetadata"]["KeyId"], created["KeyMetadata"]["Arn"]
    told = Story(server, data, key, arn, store=store)
    told.request_ids["CreateKey"] = created["ResponseMetadata"]["RequestId"]

    def snapshot() -> None:
        moment = advance(server, 1)  # strictly after everything so far
        told.snapshots.append((moment, observe(kms, key)))
        advance(server, 1)

    def note(name: str, response: dict[str, Any]) -> None:
        told.request_ids[name] = response["ResponseMetadata"]["RequestId"]

    snapshot()
    kms.create_alias(AliasName="alias/forensics", TargetKeyId=key)
    note("TagResource", kms.tag_resource(KeyId=key, Tags=[{"TagKey": "team", "TagValue": "red"}]))
    note("UpdateKeyDescription", kms.update_key_description(KeyId=key, Description="v2"))
    snapshot()
    note("EnableKeyRotation", kms.enable_key_rotation(KeyId=key, RotationPeriodInDays=90))
    grantee = f"arn:aws:iam::{ACCOUNT}:user/auditor"
    note(
        "CreateGrant", kms.create_grant(KeyId=key, GranteePrincipal=grantee, Operations=["Encrypt"])
    )
    policy = default_key_policy(ACCOUNT).replace("key-default-1", "key-forensics-2")
    note("PutKeyPolicy", kms.put_key_policy(KeyId=key, PolicyName="default", Policy=policy))
    snapshot()
    advance(server, 91 * DAY)  # the scheduler rotates the key: RotateKey, AwsServiceEvent
    snapshot()
    note("ScheduleKeyDeletion", kms.schedule_key_deletion(KeyId=key, PendingWindowInDays=7))
    snapshot()
    advance(server, 8 * DAY)  # the waiting period ends: DeleteKey, AwsServiceEvent
    told.after = advance(server, 1)
    yield told
    server.stop(signal.SIGTERM)


def cli(story: Story, *args: str) -> Any:
    result = subprocess.run(
        [sys.executable, "-m", "api", *args, "--data-dir", str(story.data), *story.store, "--json"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def audit_call(story: Story, operation: str, body: dict[str, Any], who: str = "test") -> Any:
    """A SigV4-signed POST with X-Amz-Target KeyledgerAudit.<operation>."""
    secrets = {"test": "test", "AKAUDITOR": "secret-auditor", "AKKMSADMIN": "secret-kmsadmin"}
    request = AWSRequest(
        method="POST",
        url=story.server.endpoint + "/",
        data=json.dumps(body).encode(),
        headers={
            "Content-Type": "application/x-amz-json-1.1",
            "X-Amz-Target": f"KeyledgerAudit.{operation}",
        },
    )
    SigV4Auth(Credentials(who, secrets[who]), "kms", "us-east-1").add_auth(request)
    prepared = urllib.request.Request(
        request.url, data=request.body, headers=dict(request.headers), method="POST"
    )
    try:
        with urllib.request.urlopen(prepared, timeout=30) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as error:
        return {"status": error.code, **json.loads(error.read())}


def compare(state: dict[str, Any], seen: dict[str, Any]) -> None:
    """A replayed state (JSON) against what the API answered at that moment."""
    metadata, then = state["KeyMetadata"], seen["metadata"]
    for name in ("KeyId", "Arn", "KeyState", "Enabled", "Description", "KeySpec", "KeyUsage"):
        assert metadata[name] == then[name], name
    assert metadata["CurrentKeyMaterialId"] == then["CurrentKeyMaterialId"]
    deletion = metadata.get("DeletionDate")
    if "DeletionDate" in then:
        assert datetime.fromisoformat(str(deletion)) == then["DeletionDate"]
    else:
        assert deletion is None
    assert state["Policy"] == seen["policy"]
    assert state["Aliases"] == seen["aliases"]
    assert state["Tags"] == seen["tags"]
    rotation = state["Rotation"]
    assert (rotation["KeyRotationEnabled"], rotation["RotationPeriodInDays"]) == seen["rotation"]
    assert sorted(state["Grants"]) == seen["grants"]


def test_state_at_each_moment_is_what_the_api_answered_then(story: Story) -> None:
    assert len(story.snapshots) == 5
    states = [cli(story, "keys", "state", story.key, "--at", str(at)) for at, _ in story.snapshots]
    for state, (_, seen) in zip(states, story.snapshots, strict=True):
        compare(state, seen)
    # the story really changed between the moments
    assert [s["KeyMetadata"]["Description"] for s in states] == ["v1", "v2", "v2", "v2", "v2"]
    assert [len(s["Rotation"]["Rotations"]) for s in states] == [0, 0, 0, 1, 1]
    assert [len(s["Grants"]) for s in states] == [0, 0, 1, 1, 1]
    assert states[4]["KeyMetadata"]["KeyState"] == "PendingDeletion"
    assert states[1]["Aliases"] == ["alias/forensics"]
    final = cli(story, "keys", "state", story.arn, "--at", str(story.after))
    assert final["KeyMetadata"]["KeyState"] == "Deleted"
    assert final["Aliases"] == []  # deleted with the key


def test_state_over_http_is_the_same_replay(story: Story) -> None:
    moment, seen = story.snapshots[2]
    state = audit_call(story, "GetKeyStateAt", {"KeyId": story.key, "At": moment}, "AKAUDITOR")
    assert state["KeyMetadata"]["Description"] == seen["metadata"]["Description"]
    assert state["Policy"] == seen["policy"]
    assert state["Aliases"] == seen["aliases"]
    before = audit_call(story, "GetKeyStateAt", {"KeyId": story.key, "At": 0})
    assert (before["status"], before["__type"]) == (400, "NotFoundException")


def test_history_names_who_when_where_and_the_request(story: Story) -> None:
    entries = cli(story, "keys", "history", story.key)
    names = [e["eventName"] for e in entries]
    assert names == [
        "CreateKey",
        "TagResource",
        "UpdateKeyDescription",
        "EnableKeyRotation",
        "CreateGrant",
        "PutKeyPolicy",
        "RotateKey",
        "ScheduleKeyDeletion",
        "DeleteKey",
    ]
    assert [e["version"] for e in entries] == list(range(1, 10))
    for entry in entries:
        if entry["eventName"] in ("RotateKey", "DeleteKey"):
            assert entry["eventType"] == "AwsServiceEvent"
            assert entry["principal"] is None
            assert entry["sourceIPAddress"] == "AWS Internal"
        else:
            assert entry["principal"] == f"arn:aws:iam::{ACCOUNT}:root"
            assert entry["sourceIPAddress"] == "127.0.0.1"
            assert entry["requestId"] == story.request_ids[entry["eventName"]]
    times = [e["timestamp"] for e in entries]
    assert times == sorted(times)
    assert entries[2]["details"]["description"] == "v2"
    over_http = audit_call(story, "GetKeyHistory", {"KeyId": story.arn}, "AKAUDITOR")
    assert [e["eventName"] for e in over_http["Events"]] == names


def test_service_actions_are_service_events_with_no_principal(story: Story) -> None:
    trail = story.server.client("cloudtrail")
    for name in ("RotateKey", "DeleteKey"):
        found = trail.lookup_events(
            LookupAttributes=[{"AttributeKey": "EventName", "AttributeValue": name}]
        )["Events"]
        assert len(found) == 1, name
        record = json.loads(found[0]["CloudTrailEvent"])
        assert record["eventType"] == "AwsServiceEvent"
        assert record["userIdentity"] == {"accountId": ACCOUNT, "invokedBy": "AWS Internal"}
        assert record["userAgent"] == "AWS Internal"
        assert record["requestParameters"] is None
        assert "requestID" not in record
        assert story.arn in [r["ARN"] for r in record["resources"]]
        assert "Username" not in found[0]
    delete = json.loads(
        trail.lookup_events(
            LookupAttributes=[{"AttributeKey": "EventName", "AttributeValue": "DeleteKey"}]
        )["Events"][0]["CloudTrailEvent"]
    )
    # the aliases deleted with the key belong to the same service action
    assert f"arn:aws:kms:us-east-1:{ACCOUNT}:alias/forensics" in [
        r["ARN"] for r in delete["resources"]
    ]
    assert delete["responseElements"] == {"keyId": story.arn}


def test_query_over_http_and_cli(story: Story) -> None:
    records = cli(story, "audit", "query", "--key", story.key, "--operation", "PutKeyPolicy")
    assert [r["requestID"] for r in records] == [story.request_ids["PutKeyPolicy"]]
    failures = cli(story, "audit", "query", "--key", story.key, "--outcome", "failure")
    assert {r["eventSource"] for r in failures} <= {"audit.keyledger"}  # only our own probes
    answer = audit_call(
        story, "QueryAuditEvents", {"KeyId": story.arn, "Operation": "TagResource"}, "AKAUDITOR"
    )
    assert [r["requestID"] for r in answer["Records"]] == [story.request_ids["TagResource"]]


def test_the_http_answers_need_an_audit_permission(story: Story) -> None:
    for operation, body in (
        ("GetKeyHistory", {"KeyId": story.key}),
        ("GetKeyStateAt", {"KeyId": story.key, "At": story.after}),
        ("QueryAuditEvents", {}),
    ):
        denied = audit_call(story, operation, body, "AKKMSADMIN")
        assert (denied["status"], denied["__type"]) == (400, "AccessDeniedException"), operation
        assert f"audit:{operation}" in denied["message"]
    unknown = audit_call(story, "DropTables", {})
    assert unknown["__type"] == "UnsupportedOperationException"
    bad = audit_call(story, "GetKeyStateAt", {"KeyId": story.key, "At": "yesterday"})
    assert bad["__type"] == "ValidationException"
    assert datetime.fromtimestamp(story.after, UTC) > datetime(2026, 1, 1, tzinfo=UTC)
