"""The KMS key-state table, operation by operation, through boto3.

Every implemented operation that names a key is tried against a key in each state:
Enabled, Disabled and PendingDeletion (the ``server``/``kms`` fixtures), and Deleted
(a ``--dev-clock`` process whose clock is moved past the waiting period). Expected
outcomes follow /work/shared/reference/aws-kms-api.md §d: ``OK``, or the exact error
type and message, e.g. DisabledException "<key ARN> is disabled.".
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import count
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.support import ProcessServer, advance

ENABLED, DISABLED, PENDING = "Enabled", "Disabled", "PendingDeletion"
OK = None
DAY = 86_400

# Error templates; {arn} is the key ARN, {alias_arn} the ARN of the key's alias.
IS_DISABLED = ("DisabledException", "{arn} is disabled.")
IS_PENDING = ("KMSInvalidStateException", "{arn} is pending deletion.")
NOT_PENDING = ("KMSInvalidStateException", "{arn} is not pending deletion.")
KEY_GONE = ("NotFoundException", "Key '{arn}' does not exist")
ALIAS_GONE = ("NotFoundException", "Alias {alias_arn} is not found.")

Expected = tuple[str, str] | None
_names = count()


@dataclass
class Subject:
    """A key in the state under test, with what the operations need around it."""

    key_id: str
    arn: str
    alias: str  # points at the key
    alias_arn: str
    ciphertext: bytes  # made while the key was Enabled
    other_key: str  # an Enabled key
    other_ciphertext: bytes  # made under other_key
    other_alias: str  # points at other_key


Call = Callable[[Any, Subject], Any]


@dataclass(frozen=True)
class Row:
    operation: str
    call: Call
    enabled: Expected
    disabled: Expected
    pending: Expected
    deleted: Expected = KEY_GONE

    def expected(self, state: str) -> Expected:
        return {
            ENABLED: self.enabled,
            DISABLED: self.disabled,
            PENDING: self.pending,
            "Deleted": self.deleted,
        }[state]


def _new_alias() -> str:
    return f"alias/key-state-{next(_names)}"


# Operation, how it is called with the subject key, outcome in En / Dis / PendDel (/ Deleted).
CRYPTO = (IS_DISABLED, IS_PENDING)
ROWS: list[Row] = [
    # Encrypt, Decrypt, ReEncrypt, GenerateDataKey*: Enabled only.
    Row("Encrypt", lambda k, s: k.encrypt(KeyId=s.key_id, Plaintext=b"x"), OK, *CRYPTO),
    Row(
        "Encrypt (via alias)",
        lambda k, s: k.encrypt(KeyId=s.alias, Plaintext=b"x"),
        OK,
        *CRYPTO,
        deleted=ALIAS_GONE,
    ),
    Row("Decrypt", lambda k, s: k.decrypt(CiphertextBlob=s.ciphertext), OK, *CRYPTO),
    Row(
        "Decrypt (with KeyId)",
        lambda k, s: k.decrypt(CiphertextBlob=s.ciphertext, KeyId=s.arn),
        OK,
        *CRYPTO,
    ),
    Row(
        "ReEncrypt (source)",
        lambda k, s: k.re_encrypt(CiphertextBlob=s.ciphertext, DestinationKeyId=s.other_key),
        OK,
        *CRYPTO,
    ),
    Row(
        "ReEncrypt (destination)",
        lambda k, s: k.re_encrypt(CiphertextBlob=s.other_ciphertext, DestinationKeyId=s.key_id),
        OK,
        *CRYPTO,
    ),
    Row(
        "GenerateDataKey",
        lambda k, s: k.generate_data_key(KeyId=s.key_id, KeySpec="AES_256"),
        OK,
        *CRYPTO,
    ),
    Row(
        "GenerateDataKeyWithoutPlaintext",
        lambda k, s: k.generate_data_key_without_plaintext(KeyId=s.key_id, NumberOfBytes=16),
        OK,
        *CRYPTO,
    ),
    # DescribeKey, policies, listings, DeleteAlias: any state.
    Row("DescribeKey", lambda k, s: k.describe_key(KeyId=s.key_id), OK, OK, OK),
    Row(
        "DescribeKey (via alias)",
        lambda k, s: k.describe_key(KeyId=s.alias),
        OK,
        OK,
        OK,
        deleted=ALIAS_GONE,
    ),
    Row(
        "GetKeyPolicy",
        lambda k, s: k.get_key_policy(KeyId=s.key_id, PolicyName="default"),
        OK,
        OK,
        OK,
    ),
    Row("ListKeyPolicies", lambda k, s: k.list_key_policies(KeyId=s.key_id), OK, OK, OK),
    Row("ListResourceTags", lambda k, s: k.list_resource_tags(KeyId=s.key_id), OK, OK, OK),
    Row("ListAliases (KeyId)", lambda k, s: k.list_aliases(KeyId=s.key_id), OK, OK, OK),
    Row(
        "DeleteAlias",
        lambda k, s: k.delete_alias(AliasName=s.alias),
        OK,
        OK,
        OK,
        deleted=ALIAS_GONE,  # deleting a key deletes its aliases
    ),
    # EnableKey, DisableKey, ScheduleKeyDeletion: not while pending deletion.
    Row("EnableKey", lambda k, s: k.enable_key(KeyId=s.key_id), OK, OK, IS_PENDING),
    Row("DisableKey", lambda k, s: k.disable_key(KeyId=s.key_id), OK, OK, IS_PENDING),
    Row(
        "ScheduleKeyDeletion",
        lambda k, s: k.schedule_key_deletion(KeyId=s.key_id, PendingWindowInDays=7),
        OK,
        OK,
        IS_PENDING,
    ),
    Row(
        "CancelKeyDeletion",
        lambda k, s: k.cancel_key_deletion(KeyId=s.key_id),
        NOT_PENDING,
        NOT_PENDING,
        OK,
    ),
    # CreateAlias (target), TagResource, UntagResource, UpdateKeyDescription.
    Row(
        "CreateAlias",
        lambda k, s: k.create_alias(AliasName=_new_alias(), TargetKeyId=s.key_id),
        OK,
        OK,
        IS_PENDING,
    ),
    Row(
        "TagResource",
        lambda k, s: k.tag_resource(KeyId=s.key_id, Tags=[{"TagKey": "t", "TagValue": "v"}]),
        OK,
        OK,
        IS_PENDING,
    ),
    Row(
        "UntagResource",
        lambda k, s: k.untag_resource(KeyId=s.key_id, TagKeys=["t"]),
        OK,
        OK,
        IS_PENDING,
    ),
    Row(
        "UpdateKeyDescription",
        lambda k, s: k.update_key_description(KeyId=s.key_id, Description="new"),
        OK,
        OK,
        IS_PENDING,
    ),
    # UpdateAlias: [10] OK if the source key is pending deletion, refused if the destination is.
    Row(
        "UpdateAlias (destination)",
        lambda k, s: k.update_alias(AliasName=s.other_alias, TargetKeyId=s.key_id),
        OK,
        OK,
        IS_PENDING,
    ),
    Row(
        "UpdateAlias (source)",
        lambda k, s: k.update_alias(AliasName=s.alias, TargetKeyId=s.other_key),
        OK,
        OK,
        OK,
        deleted=ALIAS_GONE,
    ),
    # Rotation: Enable/DisableKeyRotation and RotateKeyOnDemand need an Enabled key.
    Row(
        "EnableKeyRotation",
        lambda k, s: k.enable_key_rotation(KeyId=s.key_id),
        OK,
        IS_DISABLED,
        IS_PENDING,
    ),
    Row(
        "DisableKeyRotation",
        lambda k, s: k.disable_key_rotation(KeyId=s.key_id),
        OK,
        IS_DISABLED,
        IS_PENDING,
    ),
    Row(
        "RotateKeyOnDemand",
        lambda k, s: k.rotate_key_on_demand(KeyId=s.key_id),
        OK,
        IS_DISABLED,
        IS_PENDING,
    ),
    Row(
        "GetKeyRotationStatus",
        lambda k, s: k.get_key_rotation_status(KeyId=s.key_id),
        OK,
        OK,
        OK,
    ),
    Row("ListKeyRotations", lambda k, s: k.list_key_rotations(KeyId=s.key_id), OK, OK, OK),
]


def outcome(call: Callable[[], Any]) -> Expected:
    """None if the call succeeded, else the (code, message) of its KMS error."""
    try:
        call()
    except ClientError as error:
        assert error.response["ResponseMetadata"]["HTTPStatusCode"] == 400, error.response
        return error.response["Error"]["Code"], error.response["Error"]["Message"]
    return None


def expand(expected: Expected, subject: Subject) -> Expected:
    if expected is None:
        return None
    code, template = expected
    return code, template.format(arn=subject.arn, alias_arn=subject.alias_arn)


def make_subject(kms: Any, state: str, other_key: str, other_alias: str) -> Subject:
    metadata = kms.create_key(Description=f"subject {state}")["KeyMetadata"]
    key_id, arn = metadata["KeyId"], metadata["Arn"]
    alias = _new_alias()
    kms.create_alias(AliasName=alias, TargetKeyId=key_id)
    kms.tag_resource(KeyId=key_id, Tags=[{"TagKey": "t", "TagValue": "v"}])
    ciphertext = kms.encrypt(KeyId=key_id, Plaintext=b"sealed while enabled")["CiphertextBlob"]
    other_ciphertext = kms.encrypt(KeyId=other_key, Plaintext=b"other")["CiphertextBlob"]
    if state == DISABLED:
        kms.disable_key(KeyId=key_id)
    elif state == PENDING:
        kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=30)
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == state
    alias_arn = arn.split(":key/")[0] + ":" + alias
    return Subject(
        key_id, arn, alias, alias_arn, ciphertext, other_key, other_ciphertext, other_alias
    )


@pytest.mark.parametrize("state", [ENABLED, DISABLED, PENDING])
def test_key_state_table(kms: Any, state: str) -> None:
    """Each row gets a fresh key in ``state``; a refused call leaves the state as it was."""
    other_key = kms.create_key(Description="always enabled")["KeyMetadata"]["KeyId"]
    mismatches: list[str] = []
    for row in ROWS:
        other_alias = _new_alias()
        kms.create_alias(AliasName=other_alias, TargetKeyId=other_key)
        subject = make_subject(kms, state, other_key, other_alias)
        expected = expand(row.expected(state), subject)
        got = outcome(lambda row=row, subject=subject: row.call(kms, subject))
        if got != expected:
            mismatches.append(f"{row.operation} on a {state} key: expected {expected}, got {got}")
        if expected is not None:
            after = kms.describe_key(KeyId=subject.key_id)["KeyMetadata"]["KeyState"]
            if after != state:
                mismatches.append(f"refused {row.operation} moved the key {state} -> {after}")
    assert not mismatches, "\n".join(mismatches)


def test_the_operations_that_take_no_key_ignore_key_states(kms: Any) -> None:
    """CreateKey, ListKeys, ListAliases and GenerateRandom work whatever other keys are in;
    ListKeys lists keys in every state but Deleted."""
    ids = {}
    for state in (ENABLED, DISABLED, PENDING):
        ids[state] = kms.create_key()["KeyMetadata"]["KeyId"]
    kms.disable_key(KeyId=ids[DISABLED])
    kms.schedule_key_deletion(KeyId=ids[PENDING], PendingWindowInDays=7)
    listed = {key["KeyId"] for key in kms.list_keys()["Keys"]}
    assert set(ids.values()) <= listed
    assert len(kms.generate_random(NumberOfBytes=8)["Plaintext"]) == 8
    kms.list_aliases()


# -- Deleted: every key operation answers NotFoundException -----------------------------


@pytest.fixture
def dev_server(tmp_path: Path) -> Iterator[ProcessServer]:
    server = ProcessServer(tmp_path / "data", extra_args=("--dev-clock",)).start()
    yield server
    if server.process is not None and server.process.poll() is None:
        server.stop(signal.SIGKILL)


def test_a_deleted_key_is_not_found_by_any_operation(dev_server: ProcessServer) -> None:
    kms = dev_server.client()
    other_key = kms.create_key(Description="always enabled")["KeyMetadata"]["KeyId"]
    other_alias = _new_alias()
    kms.create_alias(AliasName=other_alias, TargetKeyId=other_key)
    subject = make_subject(kms, PENDING, other_key, other_alias)
    advance(dev_server, 31 * DAY)

    mismatches: list[str] = []
    for row in ROWS:
        expected = expand(row.deleted, subject)
        got = outcome(lambda row=row: row.call(kms, subject))
        if got != expected:
            mismatches.append(f"{row.operation} on a Deleted key: expected {expected}, got {got}")
    assert not mismatches, "\n".join(mismatches)
    assert subject.key_id not in {key["KeyId"] for key in kms.list_keys()["Keys"]}
