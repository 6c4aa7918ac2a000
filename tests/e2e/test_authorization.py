"""Authorization end to end: key policies, IAM policies, two accounts, AWS managed keys.

Every test talks boto3 to a real server configured with the cast of ``authz_config``:
account A (111111111111) has its root, alice (IAM kms:* except on keys tagged
protected=yes), the role app (IAM: Encrypt/Decrypt/GenerateDataKey/DescribeKey on A's
keys), nobody (no IAM policy), aliasadmin (IAM: alias operations on alias/app-*) and an
s3-writer role whose calls come through S3 (kms:ViaService); account B (222222222222) has
its root, bob (IAM: Encrypt/Decrypt on A's keys), carol (no IAM policy) and its own
s3-writer. Messages follow security.md §5.2 and the KMS "Determining access" guide.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from api.config import PrincipalConfig, Settings
from api.sigv4 import Credential
from tests.e2e.authz_config import (
    ACCOUNT_A,
    ACCOUNT_B,
    CAST,
    REGION,
    S3_SERVICE,
    World,
    alias_arn,
    allow,
    document,
    key_arn,
    root,
    settings,
    toml_text,
)
from tests.integration.stores import recorded_request_ids
from tests.support import ProcessServer, ThreadServer

ALICE = CAST["alice"].arn
APP = CAST["app"].arn
NOBODY = CAST["nobody"].arn
ALIAS_ADMIN = CAST["aliasadmin"].arn
BOB = CAST["bob"].arn
CAROL = CAST["carol"].arn
ROOT_A, ROOT_B = root(ACCOUNT_A), root(ACCOUNT_B)
MANAGED_SERVICES = (
    *("acm", "dynamodb", "ebs", "elasticfilesystem", "es", "glue", "kinesisvideo"),
    *("lambda", "rds", "redshift", "s3", "secretsmanager", "ssm", "xray"),
)
LOCKOUT = "The new key policy will not allow you to update the key policy in the future."
INVALID_PRINCIPALS = "Policy contains a statement with one or more invalid principals."


@pytest.fixture
def kms(tmp_path: Path) -> Iterator[World]:
    data_dir = tmp_path / "data"
    server = ThreadServer(settings(data_dir)).start()
    yield World(server, data_dir)
    server.stop()


# -- helpers ---------------------------------------------------------------------------


def error_of(call: Callable[..., Any], **params: Any) -> ClientError:
    with pytest.raises(ClientError) as caught:
        call(**params)
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    return caught.value


def refused(call: Callable[..., Any], **params: Any) -> tuple[str, str]:
    """(code, message) of a KMS error the call must raise."""
    error = error_of(call, **params).response["Error"]
    return error["Code"], error["Message"]


def denied(call: Callable[..., Any], **params: Any) -> str:
    """The message of the AccessDeniedException the call must raise."""
    code, message = refused(call, **params)
    assert code == "AccessDeniedException", message
    return message


def because(who: str, action: str, resource: str, kind: str) -> str:
    """AWS's implicit-deny text; ``kind`` is "identity" or "resource"."""
    return (
        f"User: {who} is not authorized to perform: kms:{action} on resource: {resource} "
        f"because no {kind}-based policy allows the kms:{action} action"
    )


def explicit(who: str, action: str, resource: str, kind: str) -> str:
    """AWS's explicit-deny text; ``kind`` is "identity" or "resource"."""
    article = "an" if kind == "identity" else "a"
    return (
        f"User: {who} is not authorized to perform: kms:{action} on resource: {resource} "
        f"with an explicit deny in {article} {kind}-based policy"
    )


def statement(
    principal: Any, actions: list[str] | str, effect: str = "Allow", **extra: Any
) -> dict:
    return {"Effect": effect, "Principal": principal, "Action": actions, "Resource": "*", **extra}


ROOT_ADMIN = statement(
    {"AWS": ROOT_A}, ["kms:PutKeyPolicy", "kms:GetKeyPolicy", "kms:ListKeyPolicies"]
)
ENABLE_IAM = statement({"AWS": ROOT_A}, "kms:*", Sid="Enable IAM User Permissions")


def policy(*statements: dict[str, Any]) -> str:
    return json.dumps(document(*statements))


def roundtrip(client: Any, key: str, context: dict[str, str] | None = None) -> None:
    """Encrypt then Decrypt with the same principal and encryption context."""
    context = context or {}
    blob = client.encrypt(KeyId=key, Plaintext=b"payload", EncryptionContext=context)
    opened = client.decrypt(CiphertextBlob=blob["CiphertextBlob"], EncryptionContext=context)
    assert opened["Plaintext"] == b"payload"


# -- default key policy ------------------------------------------------------------------


def test_the_default_key_policy_delegates_to_the_iam_policies_of_the_account(kms: World) -> None:
    key = kms("root-a").create_key(Description="default policy")["KeyMetadata"]
    arn = key["Arn"]
    assert arn == key_arn(ACCOUNT_A, key["KeyId"])
    assert key["AWSAccountId"] == ACCOUNT_A

    # The root holds every permission of its account; alice's IAM allows kms:*.
    for name in ("root-a", "alice"):
        client = kms(name)
        roundtrip(client, key["KeyId"], {"who": name})
        client.disable_key(KeyId=arn)
        client.enable_key(KeyId=arn)
        client.update_key_description(KeyId=arn, Description=f"touched by {name}")
        assert client.describe_key(KeyId=arn)["KeyMetadata"]["Description"] == f"touched by {name}"

    # GetKeyPolicy returns the default policy; ListKeyPolicies names it.
    text = kms("alice").get_key_policy(KeyId=arn, PolicyName="default")["Policy"]
    assert json.loads(text) == {
        "Version": "2012-10-17",
        "Id": "key-default-1",
        "Statement": [ENABLE_IAM],
    }
    listed = kms("root-a").list_key_policies(KeyId=arn)
    assert listed["PolicyNames"] == ["default"]
    assert listed["Truncated"] is False

    # A principal of the account with no IAM allow: refused by the identity side.
    nobody = kms("nobody")
    assert denied(nobody.encrypt, KeyId=arn, Plaintext=b"x") == because(
        NOBODY, "Encrypt", arn, "identity"
    )
    blob = kms("root-a").encrypt(KeyId=arn, Plaintext=b"secret")["CiphertextBlob"]
    assert denied(nobody.decrypt, CiphertextBlob=blob) == because(
        NOBODY, "Decrypt", arn, "identity"
    )
    for call, params, action in (
        (nobody.describe_key, {"KeyId": arn}, "DescribeKey"),
        (nobody.get_key_policy, {"KeyId": arn, "PolicyName": "default"}, "GetKeyPolicy"),
        (nobody.list_key_policies, {"KeyId": arn}, "ListKeyPolicies"),
        (nobody.disable_key, {"KeyId": arn}, "DisableKey"),
    ):
        assert denied(call, **params) == because(NOBODY, action, arn, "identity")

    # The app role may use the key as its IAM policy says, but not manage it.
    app = kms("app")
    roundtrip(app, arn)
    assert app.decrypt(CiphertextBlob=blob)["Plaintext"] == b"secret"
    assert app.generate_data_key(KeyId=arn, KeySpec="AES_256")["KeyId"] == arn
    assert app.describe_key(KeyId=arn)["KeyMetadata"]["Arn"] == arn
    # DryRun answers the authorization question without doing the work.
    assert refused(app.encrypt, KeyId=arn, Plaintext=b"x", DryRun=True)[0] == (
        "DryRunOperationException"
    )
    assert denied(nobody.encrypt, KeyId=arn, Plaintext=b"x", DryRun=True) == because(
        NOBODY, "Encrypt", arn, "identity"
    )
    # ReEncrypt needs kms:ReEncryptFrom on the source key, which app is not allowed.
    other = kms("root-a").create_key()["KeyMetadata"]["Arn"]
    assert denied(app.re_encrypt, CiphertextBlob=blob, DestinationKeyId=other) == because(
        APP, "ReEncryptFrom", arn, "identity"
    )
    moved = kms("alice").re_encrypt(CiphertextBlob=blob, DestinationKeyId=other)
    assert (moved["SourceKeyId"], moved["KeyId"]) == (arn, other)
    for call, params, action in (
        (app.disable_key, {"KeyId": arn}, "DisableKey"),
        (app.get_key_policy, {"KeyId": arn, "PolicyName": "default"}, "GetKeyPolicy"),
        (app.schedule_key_deletion, {"KeyId": arn}, "ScheduleKeyDeletion"),
        (
            app.generate_data_key_without_plaintext,
            {"KeyId": arn, "KeySpec": "AES_256"},
            "GenerateDataKeyWithoutPlaintext",
        ),
    ):
        assert denied(call, **params) == because(APP, action, arn, "identity")
    assert kms("root-a").describe_key(KeyId=arn)["KeyMetadata"]["KeyState"] == "Enabled"


def test_a_key_policy_without_the_root_statement_makes_iam_allows_ineffective(kms: World) -> None:
    restrictive = policy(
        ROOT_ADMIN,
        statement({"AWS": ALICE}, ["kms:Encrypt", "kms:Decrypt", "kms:DescribeKey"]),
    )
    key = kms("root-a").create_key(Policy=restrictive)["KeyMetadata"]
    arn = key["Arn"]
    assert json.loads(kms("root-a").get_key_policy(KeyId=arn)["Policy"]) == json.loads(restrictive)

    roundtrip(kms("alice"), arn, {"purpose": "named directly"})
    assert kms("alice").describe_key(KeyId=arn)["KeyMetadata"]["KeyId"] == key["KeyId"]

    app = kms("app")  # its IAM policy allows these, the key policy does not
    for call, params, action in (
        (app.encrypt, {"KeyId": arn, "Plaintext": b"x"}, "Encrypt"),
        (app.describe_key, {"KeyId": arn}, "DescribeKey"),
        (app.generate_data_key, {"KeyId": arn, "NumberOfBytes": 32}, "GenerateDataKey"),
    ):
        assert denied(call, **params) == because(APP, action, arn, "resource")
    blob = kms("alice").encrypt(KeyId=arn, Plaintext=b"alice's")["CiphertextBlob"]
    assert denied(app.decrypt, CiphertextBlob=blob) == because(APP, "Decrypt", arn, "resource")

    # Not even the root may use a key whose policy does not allow it.
    root_a = kms("root-a")
    assert denied(root_a.encrypt, KeyId=arn, Plaintext=b"x") == because(
        ROOT_A, "Encrypt", arn, "resource"
    )
    assert denied(root_a.disable_key, KeyId=arn) == because(ROOT_A, "DisableKey", arn, "resource")
    # ...but the admin statement, which names the account, delegates to alice's kms:*.
    assert json.loads(kms("alice").get_key_policy(KeyId=arn)["Policy"]) == json.loads(restrictive)
    assert denied(kms("nobody").get_key_policy, KeyId=arn, PolicyName="default") == because(
        NOBODY, "GetKeyPolicy", arn, "identity"
    )


def test_an_explicit_deny_beats_every_allow(kms: World) -> None:
    root_a, alice = kms("root-a"), kms("alice")

    # Deny in the key policy: alice's IAM allow and the root statement do not help.
    key = root_a.create_key(
        Policy=policy(ENABLE_IAM, statement({"AWS": ALICE}, "kms:Encrypt", effect="Deny"))
    )["KeyMetadata"]
    arn = key["Arn"]
    assert denied(alice.encrypt, KeyId=arn, Plaintext=b"x") == explicit(
        ALICE, "Encrypt", arn, "resource"
    )
    blob = root_a.encrypt(KeyId=arn, Plaintext=b"still works")["CiphertextBlob"]
    assert alice.decrypt(CiphertextBlob=blob)["Plaintext"] == b"still works"

    # A Deny naming the account covers the root and every principal of it.
    everyone = root_a.create_key(
        Policy=policy(ENABLE_IAM, statement({"AWS": ACCOUNT_A}, "kms:Decrypt", effect="Deny"))
    )["KeyMetadata"]["Arn"]
    blob = root_a.encrypt(KeyId=everyone, Plaintext=b"sealed")["CiphertextBlob"]
    for name, who in (("root-a", ROOT_A), ("alice", ALICE), ("app", APP)):
        assert denied(kms(name).decrypt, CiphertextBlob=blob) == explicit(
            who, "Decrypt", everyone, "resource"
        )

    # Deny in an identity policy: alice is refused keys tagged protected=yes, although
    # the key policy allows her by name.
    protected = root_a.create_key(
        Policy=policy(ENABLE_IAM, statement({"AWS": ALICE}, "kms:*")),
        Tags=[{"TagKey": "protected", "TagValue": "yes"}],
    )["KeyMetadata"]["Arn"]
    for call, params, action in (
        (alice.encrypt, {"KeyId": protected, "Plaintext": b"x"}, "Encrypt"),
        (alice.describe_key, {"KeyId": protected}, "DescribeKey"),
        (alice.untag_resource, {"KeyId": protected, "TagKeys": ["protected"]}, "UntagResource"),
    ):
        assert denied(call, **params) == explicit(ALICE, action, protected, "identity")
    roundtrip(root_a, protected)  # the root has no such Deny
    # Once the tag is gone, so is the Deny.
    root_a.untag_resource(KeyId=protected, TagKeys=["protected"])
    roundtrip(alice, protected)

    # Both at once: the resource-based Deny is the one reported.
    both = root_a.create_key(
        Policy=policy(ENABLE_IAM, statement({"AWS": ALICE}, "kms:*", effect="Deny")),
        Tags=[{"TagKey": "protected", "TagValue": "yes"}],
    )["KeyMetadata"]["Arn"]
    assert denied(alice.describe_key, KeyId=both) == explicit(
        ALICE, "DescribeKey", both, "resource"
    )


# -- two accounts --------------------------------------------------------------------------


def test_another_account_uses_a_key_only_when_both_key_policy_and_its_iam_allow(
    kms: World,
) -> None:
    root_a, bob, carol, root_b = kms("root-a"), kms("bob"), kms("carol"), kms("root-b")
    key = root_a.create_key()["KeyMetadata"]
    arn, key_id = key["Arn"], key["KeyId"]
    root_a.create_alias(AliasName="alias/shared", TargetKeyId=key_id)

    # The default policy names only account A: B's principals are refused by A's key.
    for client, who in ((bob, BOB), (root_b, ROOT_B), (carol, CAROL)):
        assert denied(client.encrypt, KeyId=arn, Plaintext=b"x") == because(
            who, "Encrypt", arn, "resource"
        )

    root_a.put_key_policy(
        KeyId=arn,
        PolicyName="default",
        Policy=policy(
            ENABLE_IAM,
            statement({"AWS": ROOT_B}, ["kms:Encrypt", "kms:Decrypt"], Sid="Account B uses"),
        ),
    )
    # bob: allowed by the key policy (his account) and by his own IAM policy.
    sealed = bob.encrypt(KeyId=arn, Plaintext=b"from B", EncryptionContext={"k": "v"})
    assert sealed["KeyId"] == arn
    opened = bob.decrypt(CiphertextBlob=sealed["CiphertextBlob"], EncryptionContext={"k": "v"})
    assert (opened["Plaintext"], opened["KeyId"]) == (b"from B", arn)
    assert (
        root_a.decrypt(CiphertextBlob=sealed["CiphertextBlob"], EncryptionContext={"k": "v"})[
            "Plaintext"
        ]
        == b"from B"
    )
    # Only what the key policy grants B, whatever B's IAM says.
    assert denied(bob.describe_key, KeyId=arn) == because(BOB, "DescribeKey", arn, "resource")
    assert denied(bob.generate_data_key, KeyId=arn, KeySpec="AES_256") == because(
        BOB, "GenerateDataKey", arn, "resource"
    )
    # carol's IAM policy does not allow: the identity side refuses.
    assert denied(carol.encrypt, KeyId=arn, Plaintext=b"x") == because(
        CAROL, "Encrypt", arn, "identity"
    )
    # B's root holds every permission of account B.
    roundtrip(root_b, arn)

    # A bare key id or an alias name resolves in the caller's own account: never A's key.
    missing = key_arn(ACCOUNT_B, key_id)
    for client in (bob, root_b):
        assert refused(client.encrypt, KeyId=key_id, Plaintext=b"x") == (
            "NotFoundException",
            f"Key '{missing}' does not exist",
        )
        code, _ = refused(client.encrypt, KeyId="alias/shared", Plaintext=b"x")
        assert code == "NotFoundException"
    assert refused(root_b.describe_key, KeyId=key_id)[0] == "NotFoundException"
    # B lists its own (empty) key set, not A's.
    assert root_b.list_keys()["Keys"] == []
    b_aliases = root_b.list_aliases()["Aliases"]
    assert all(a["AliasName"].startswith("alias/aws/") for a in b_aliases), b_aliases
    assert all("TargetKeyId" not in a for a in b_aliases)


def test_another_account_may_name_the_key_by_alias_arn(kms: World) -> None:
    """Encrypt API reference, KeyId: "To specify a KMS key in a different Amazon Web
    Services account, you must use the key ARN or alias ARN." """
    root_a = kms("root-a")
    key = root_a.create_key(
        Policy=policy(ENABLE_IAM, statement({"AWS": ROOT_B}, ["kms:Encrypt", "kms:Decrypt"]))
    )["KeyMetadata"]
    root_a.create_alias(AliasName="alias/shared", TargetKeyId=key["KeyId"])
    sealed = kms("bob").encrypt(KeyId=alias_arn(ACCOUNT_A, "alias/shared"), Plaintext=b"x")
    assert sealed["KeyId"] == key["Arn"]


def test_key_management_operations_never_work_across_accounts(kms: World) -> None:
    """Only the use operations (Encrypt, Decrypt, DescribeKey, GetKeyRotationStatus, ...)
    work across accounts; for the others a key policy grant to another account "has no
    effect" (KMS guide, "Allowing users in other accounts to use a KMS key"; each API
    reference: "Cross-account use: No. You cannot perform this operation on a KMS key in
    a different AWS account")."""
    root_a, root_b = kms("root-a"), kms("root-b")
    key = root_a.create_key(Description="A's key")["KeyMetadata"]
    arn = key["Arn"]
    granted = policy(ENABLE_IAM, statement({"AWS": ROOT_B}, "kms:*", Sid="B may do anything"))
    root_a.put_key_policy(KeyId=arn, PolicyName="default", Policy=granted)

    # Cross-account operations work.
    roundtrip(root_b, arn)
    assert root_b.describe_key(KeyId=arn)["KeyMetadata"]["Arn"] == arn
    assert root_b.get_key_rotation_status(KeyId=arn)["KeyRotationEnabled"] is False

    takeover = policy(statement({"AWS": ROOT_B}, "kms:*"))
    for call, params in (
        (root_b.disable_key, {"KeyId": arn}),
        (root_b.schedule_key_deletion, {"KeyId": arn, "PendingWindowInDays": 7}),
        (root_b.update_key_description, {"KeyId": arn, "Description": "B's now"}),
        (root_b.tag_resource, {"KeyId": arn, "Tags": [{"TagKey": "owner", "TagValue": "B"}]}),
        (root_b.enable_key_rotation, {"KeyId": arn}),
        (root_b.get_key_policy, {"KeyId": arn, "PolicyName": "default"}),
        (
            root_b.put_key_policy,
            {
                "KeyId": arn,
                "PolicyName": "default",
                "Policy": takeover,
                "BypassPolicyLockoutSafetyCheck": True,
            },
        ),
    ):
        code, message = refused(call, **params)
        assert code in ("AccessDeniedException", "NotFoundException"), (call, message)

    # Account A's key is as A left it.
    metadata = root_a.describe_key(KeyId=arn)["KeyMetadata"]
    assert (metadata["KeyState"], metadata["Description"]) == ("Enabled", "A's key")
    assert json.loads(root_a.get_key_policy(KeyId=arn)["Policy"]) == json.loads(granted)
    assert root_a.list_resource_tags(KeyId=arn)["Tags"] == []
    assert root_a.get_key_rotation_status(KeyId=arn)["KeyRotationEnabled"] is False


# -- conditions ------------------------------------------------------------------------------


def test_encryption_context_conditions_in_the_key_policy(kms: World) -> None:
    root_a = kms("root-a")
    key_policy = policy(
        ROOT_ADMIN,
        statement(
            {"AWS": APP},
            ["kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey"],
            Condition={"StringEquals": {"kms:EncryptionContext:purpose": "billing"}},
        ),
        statement(
            {"AWS": ALICE},
            ["kms:Encrypt", "kms:Decrypt"],
            Condition={
                "ForAnyValue:StringEquals": {"kms:EncryptionContextKeys": ["tenant", "project"]}
            },
        ),
    )
    arn = root_a.create_key(Policy=key_policy)["KeyMetadata"]["Arn"]
    app, alice = kms("app"), kms("alice")

    # kms:EncryptionContext:purpose must be "billing"; the key name is case-insensitive,
    # the value is not (StringEquals); other pairs may come along.
    for context in (
        {"purpose": "billing"},
        {"purpose": "billing", "x": "y"},
        {"Purpose": "billing"},
    ):
        roundtrip(app, arn, context)
    assert (
        app.generate_data_key(
            KeyId=arn, KeySpec="AES_128", EncryptionContext={"purpose": "billing"}
        )["KeyId"]
        == arn
    )
    for context in ({"purpose": "payroll"}, {"purpose": "Billing"}, {"other": "billing"}, {}):
        assert denied(app.encrypt, KeyId=arn, Plaintext=b"x", EncryptionContext=context) == because(
            APP, "Encrypt", arn, "resource"
        )
    # Decrypt is authorized with the context of the Decrypt request itself.
    blob = app.encrypt(KeyId=arn, Plaintext=b"x", EncryptionContext={"purpose": "billing"})
    assert denied(app.decrypt, CiphertextBlob=blob["CiphertextBlob"]) == because(
        APP, "Decrypt", arn, "resource"
    )

    # ForAnyValue:StringEquals kms:EncryptionContextKeys: some key must be tenant or project.
    for context in ({"tenant": "t1"}, {"project": "p", "other": "o"}):
        roundtrip(alice, arn, context)
    for context in ({"other": "o"}, {}, {"TENANT_ID": "t1"}):
        assert denied(
            alice.encrypt, KeyId=arn, Plaintext=b"x", EncryptionContext=context
        ) == because(ALICE, "Encrypt", arn, "resource")
    # The app's statement does not cover alice, nor alice's the app.
    assert denied(
        app.encrypt, KeyId=arn, Plaintext=b"x", EncryptionContext={"tenant": "t1"}
    ) == because(APP, "Encrypt", arn, "resource")


def test_request_alias_condition_matches_only_requests_naming_that_alias(kms: World) -> None:
    root_a = kms("root-a")
    arn = root_a.create_key(
        Policy=policy(
            ROOT_ADMIN,
            statement({"AWS": ROOT_A}, "kms:CreateAlias"),
            statement(
                {"AWS": APP},
                ["kms:Encrypt", "kms:DescribeKey"],
                Condition={"StringEquals": {"kms:RequestAlias": "alias/billing"}},
            ),
        )
    )["KeyMetadata"]["Arn"]
    kms("alice").create_alias(AliasName="alias/billing", TargetKeyId=arn)
    kms("alice").create_alias(AliasName="alias/payroll", TargetKeyId=arn)
    app = kms("app")
    assert app.encrypt(KeyId="alias/billing", Plaintext=b"x")["KeyId"] == arn
    assert app.describe_key(KeyId="alias/billing")["KeyMetadata"]["Arn"] == arn
    for key_id in (arn, arn.rsplit("/", 1)[1], "alias/payroll"):
        assert denied(app.encrypt, KeyId=key_id, Plaintext=b"x") == because(
            APP, "Encrypt", arn, "resource"
        )


def test_principal_star_with_caller_account_and_source_ip_conditions(kms: World) -> None:
    """{"AWS": "*"} limited by kms:CallerAccount is how a key is opened to every principal
    of an account without IAM policies; another account still needs its own IAM allow."""
    root_a = kms("root-a")
    arn = root_a.create_key(
        Policy=policy(
            ENABLE_IAM,
            statement(
                {"AWS": "*"},
                ["kms:Encrypt", "kms:Decrypt"],
                Condition={"StringEquals": {"kms:CallerAccount": [ACCOUNT_A, ACCOUNT_B]}},
            ),
            statement(
                "*",
                "kms:GenerateDataKey",
                Condition={"IpAddress": {"aws:SourceIp": "127.0.0.0/8"}},
            ),
            statement(
                "*",
                "kms:GenerateDataKeyWithoutPlaintext",
                Condition={"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}},
            ),
        )
    )["KeyMetadata"]["Arn"]
    roundtrip(kms("nobody"), arn)  # no IAM policy needed inside the account
    assert kms("nobody").generate_data_key(KeyId=arn, NumberOfBytes=16)["KeyId"] == arn
    assert denied(
        kms("nobody").generate_data_key_without_plaintext, KeyId=arn, NumberOfBytes=16
    ) == because(NOBODY, "GenerateDataKeyWithoutPlaintext", arn, "identity")
    roundtrip(kms("bob"), arn)  # B: the key policy and bob's IAM policy allow
    assert denied(kms("carol").encrypt, KeyId=arn, Plaintext=b"x") == because(
        CAROL, "Encrypt", arn, "identity"
    )


# -- lockout safety check and malformed policies ----------------------------------------------


def test_the_lockout_safety_check_on_put_key_policy_and_create_key(kms: World) -> None:
    root_a, alice = kms("root-a"), kms("alice")
    arn = root_a.create_key()["KeyMetadata"]["Arn"]
    locking = policy(statement({"AWS": ALICE}, ["kms:Encrypt", "kms:Decrypt"]))

    assert refused(alice.put_key_policy, KeyId=arn, PolicyName="default", Policy=locking) == (
        "MalformedPolicyDocumentException",
        LOCKOUT,
    )
    # Policies alice could change again are accepted: naming her for PutKeyPolicy, or
    # delegating to account A, whose IAM policies may allow her.
    for accepted in (
        policy(statement({"AWS": ALICE}, ["kms:PutKeyPolicy", "kms:GetKeyPolicy"])),
        policy(ENABLE_IAM),
    ):
        alice.put_key_policy(KeyId=arn, PolicyName="default", Policy=accepted)
        assert json.loads(alice.get_key_policy(KeyId=arn)["Policy"]) == json.loads(accepted)

    # With the bypass the policy is stored, and then nobody can change it any more.
    alice.put_key_policy(
        KeyId=arn, PolicyName="default", Policy=locking, BypassPolicyLockoutSafetyCheck=True
    )
    roundtrip(alice, arn)
    for client, who in ((alice, ALICE), (root_a, ROOT_A)):
        assert denied(
            client.put_key_policy, KeyId=arn, PolicyName="default", Policy=policy(ENABLE_IAM)
        ) == because(who, "PutKeyPolicy", arn, "resource")
        assert denied(client.get_key_policy, KeyId=arn, PolicyName="default") == because(
            who, "GetKeyPolicy", arn, "resource"
        )

    # CreateKey applies the same check to the policy of the key it creates.
    assert refused(alice.create_key, Policy=locking) == (
        "MalformedPolicyDocumentException",
        LOCKOUT,
    )
    created = alice.create_key(Policy=locking, BypassPolicyLockoutSafetyCheck=True)["KeyMetadata"]
    roundtrip(alice, created["KeyId"])
    assert denied(alice.describe_key, KeyId=created["Arn"]) == because(
        ALICE, "DescribeKey", created["Arn"], "resource"
    )


def test_malformed_key_policies_are_refused(kms: World) -> None:
    root_a = kms("root-a")
    arn = root_a.create_key()["KeyMetadata"]["Arn"]

    def put(text: str) -> tuple[str, str]:
        return refused(root_a.put_key_policy, KeyId=arn, PolicyName="default", Policy=text)

    for text in ('{"Version": "2012-10-17", "Statement": [', "[]", '"kms:*"'):
        assert put(text)[0] == "MalformedPolicyDocumentException", text
        assert refused(root_a.create_key, Policy=text)[0] == "MalformedPolicyDocumentException"

    # A principal that does not exist (no such user in the configuration).
    ghost = policy(ENABLE_IAM, statement({"AWS": f"arn:aws:iam::{ACCOUNT_A}:user/ghost"}, "kms:*"))
    assert put(ghost) == ("MalformedPolicyDocumentException", INVALID_PRINCIPALS)
    assert refused(root_a.create_key, Policy=ghost) == (
        "MalformedPolicyDocumentException",
        INVALID_PRINCIPALS,
    )
    # Principals that do exist, in either account, are accepted.
    known = policy(ENABLE_IAM, statement({"AWS": [BOB, APP, ACCOUNT_B]}, "kms:Encrypt"))
    root_a.put_key_policy(KeyId=arn, PolicyName="default", Policy=known)

    # ForAllValues with a single-valued key matches requests without it: refused.
    permissive = policy(
        ENABLE_IAM,
        statement(
            {"AWS": APP},
            "kms:Decrypt",
            Condition={"ForAllValues:StringEquals": {"kms:EncryptionContext:purpose": "x"}},
        ),
    )
    assert put(permissive)[0] == "MalformedPolicyDocumentException"

    # 32 KB: the quota is on the document's bytes.
    def padded(size: int) -> str:
        base = policy({**ENABLE_IAM, "Sid": ""})
        text = policy({**ENABLE_IAM, "Sid": "p" * (size - len(base))})
        assert len(text.encode()) == size
        return text

    root_a.put_key_policy(KeyId=arn, PolicyName="default", Policy=padded(32768))
    assert put(padded(32769))[0] == "LimitExceededException"  # a quota (Policy member docs)
    assert refused(root_a.create_key, Policy=padded(40000))[0] == "LimitExceededException"
    # Nothing refused was stored.
    assert len(root_a.get_key_policy(KeyId=arn)["Policy"].encode()) == 32768


# -- alias operations, list operations and IAM-only operations ---------------------------------


def test_alias_operations_need_permission_on_the_alias_and_on_the_key(kms: World) -> None:
    root_a, admin = kms("root-a"), kms("aliasadmin")
    first = root_a.create_key()["KeyMetadata"]
    second = root_a.create_key()["KeyMetadata"]
    # A key whose policy names alice, and the root only for policy administration.
    closed = root_a.create_key(Policy=policy(ROOT_ADMIN, statement({"AWS": ALICE}, "kms:*")))[
        "KeyMetadata"
    ]

    admin.create_alias(AliasName="alias/app-x", TargetKeyId=first["KeyId"])
    admin.update_alias(AliasName="alias/app-x", TargetKeyId=second["Arn"])
    aliases = {a["AliasName"]: a for a in root_a.list_aliases()["Aliases"]}
    assert aliases["alias/app-x"]["TargetKeyId"] == second["KeyId"]

    other = alias_arn(ACCOUNT_A, "alias/other")
    assert denied(
        admin.create_alias, AliasName="alias/other", TargetKeyId=first["KeyId"]
    ) == because(ALIAS_ADMIN, "CreateAlias", other, "identity")
    # An allowed alias name, but a key whose policy does not let aliasadmin in.
    assert denied(
        admin.create_alias, AliasName="alias/app-closed", TargetKeyId=closed["KeyId"]
    ) == because(ALIAS_ADMIN, "CreateAlias", closed["Arn"], "resource")
    assert denied(
        admin.update_alias, AliasName="alias/app-x", TargetKeyId=closed["KeyId"]
    ) == because(ALIAS_ADMIN, "UpdateAlias", closed["Arn"], "resource")
    # The app role's IAM policy allows no alias operation at all.
    app_alias = alias_arn(ACCOUNT_A, "alias/app-y")
    assert denied(
        kms("app").create_alias, AliasName="alias/app-y", TargetKeyId=first["KeyId"]
    ) == because(APP, "CreateAlias", app_alias, "identity")

    # DeleteAlias: the alias named, and the key it points at.
    root_a.create_alias(AliasName="alias/other", TargetKeyId=first["KeyId"])
    assert denied(admin.delete_alias, AliasName="alias/other") == because(
        ALIAS_ADMIN, "DeleteAlias", other, "identity"
    )
    kms("alice").create_alias(AliasName="alias/app-closed", TargetKeyId=closed["KeyId"])
    assert denied(admin.delete_alias, AliasName="alias/app-closed") == because(
        ALIAS_ADMIN, "DeleteAlias", closed["Arn"], "resource"
    )
    admin.delete_alias(AliasName="alias/app-x")
    names = {a["AliasName"] for a in root_a.list_aliases()["Aliases"]}
    assert {"alias/other", "alias/app-closed"} <= names
    assert "alias/app-x" not in names


def test_list_and_key_less_operations_are_authorized_by_iam_on_resource_star(kms: World) -> None:
    root_a = kms("root-a")
    key = root_a.create_key()["KeyMetadata"]
    root_a.create_alias(AliasName="alias/listed", TargetKeyId=key["KeyId"])

    nobody, app, bob = kms("nobody"), kms("app"), kms("bob")
    for client, who in ((nobody, NOBODY), (app, APP), (bob, BOB)):
        assert denied(client.list_keys) == because(who, "ListKeys", "*", "identity")
        assert denied(client.list_aliases) == because(who, "ListAliases", "*", "identity")
    assert denied(nobody.list_aliases, KeyId=key["KeyId"]) == because(
        NOBODY, "ListAliases", "*", "identity"
    )
    for client, who in ((app, APP), (nobody, NOBODY), (kms("carol"), CAROL)):
        assert denied(client.create_key) == because(who, "CreateKey", "*", "identity")
        assert denied(client.generate_random, NumberOfBytes=16) == because(
            who, "GenerateRandom", "*", "identity"
        )

    # Allowed: the root of each account, and alice (IAM kms:*).
    for name in ("root-a", "alice"):
        client = kms(name)
        assert key["KeyId"] in {k["KeyId"] for k in client.list_keys()["Keys"]}
        aliases = client.list_aliases(KeyId=key["KeyId"])["Aliases"]
        assert [a["AliasName"] for a in aliases] == ["alias/listed"]
        assert len(client.generate_random(NumberOfBytes=16)["Plaintext"]) == 16
    created = kms("alice").create_key()["KeyMetadata"]
    assert created["AWSAccountId"] == ACCOUNT_A
    assert kms("root-b").create_key()["KeyMetadata"]["AWSAccountId"] == ACCOUNT_B
    assert len(kms("root-b").generate_random(NumberOfBytes=8)["Plaintext"]) == 8
    # None of the refusals created a key.
    assert len(root_a.list_keys()["Keys"]) == 2


# -- AWS managed keys ------------------------------------------------------------------------


def test_aws_managed_keys_are_usable_only_through_their_service(kms: World) -> None:
    root_a, alice, s3_a = kms("root-a"), kms("alice"), kms("s3-a")

    def aliases(client: Any) -> dict[str, dict[str, Any]]:
        listed = client.list_aliases()["Aliases"]
        return {a["AliasName"]: a for a in listed if a["AliasName"].startswith("alias/aws/")}

    predefined = aliases(root_a)
    assert sorted(predefined) == [f"alias/aws/{s}" for s in MANAGED_SERVICES]
    for name, entry in predefined.items():
        assert "TargetKeyId" not in entry, entry
        assert entry["AliasArn"] == alias_arn(ACCOUNT_A, name)

    # DescribeKey by the predefined alias creates the key behind it.
    metadata = root_a.describe_key(KeyId="alias/aws/s3")["KeyMetadata"]
    arn = metadata["Arn"]
    assert arn == key_arn(ACCOUNT_A, metadata["KeyId"])
    assert metadata["KeyManager"] == "AWS"
    assert metadata["KeyState"] == "Enabled"
    assert metadata["Enabled"] is True
    assert metadata["Description"] == (
        "Default key that protects my s3 resources when no other key is defined"
    )
    assert root_a.describe_key(KeyId="alias/aws/s3")["KeyMetadata"]["Arn"] == arn
    rotation = root_a.get_key_rotation_status(KeyId=arn)
    assert rotation["KeyRotationEnabled"] is True
    after = aliases(root_a)
    assert after["alias/aws/s3"]["TargetKeyId"] == metadata["KeyId"]
    assert all("TargetKeyId" not in e for n, e in after.items() if n != "alias/aws/s3")
    assert metadata["KeyId"] in {k["KeyId"] for k in root_a.list_keys()["Keys"]}

    # The principals of the account may read its policy, not use or manage the key.
    managed_policy = json.loads(alice.get_key_policy(KeyId=arn, PolicyName="default")["Policy"])
    assert json.loads(root_a.get_key_policy(KeyId=arn)["Policy"]) == managed_policy
    conditions = managed_policy["Statement"][0]["Condition"]["StringEquals"]
    assert conditions == {
        "kms:CallerAccount": ACCOUNT_A,
        "kms:ViaService": f"s3.{REGION}.amazonaws.com",
    }
    for client, who in ((root_a, ROOT_A), (alice, ALICE)):
        for key_id in ("alias/aws/s3", arn):
            assert denied(client.encrypt, KeyId=key_id, Plaintext=b"x") == because(
                who, "Encrypt", arn, "resource"
            )
        for call, params, action in (
            (client.disable_key, {"KeyId": arn}, "DisableKey"),
            (
                client.put_key_policy,
                {"KeyId": arn, "PolicyName": "default", "Policy": policy(ENABLE_IAM)},
                "PutKeyPolicy",
            ),
            (client.schedule_key_deletion, {"KeyId": arn}, "ScheduleKeyDeletion"),
            (client.disable_key_rotation, {"KeyId": arn}, "DisableKeyRotation"),
        ):
            assert denied(call, **params) == because(who, action, arn, "resource")
    assert root_a.describe_key(KeyId=arn)["KeyMetadata"]["KeyState"] == "Enabled"

    # Through S3, principals of account A use it by its alias.
    sealed = s3_a.encrypt(KeyId="alias/aws/s3", Plaintext=b"object", EncryptionContext={"b": "1"})
    assert sealed["KeyId"] == arn
    opened = s3_a.decrypt(CiphertextBlob=sealed["CiphertextBlob"], EncryptionContext={"b": "1"})
    assert opened["Plaintext"] == b"object"
    assert s3_a.generate_data_key(KeyId="alias/aws/s3", KeySpec="AES_256")["KeyId"] == arn
    assert denied(
        root_a.decrypt, CiphertextBlob=sealed["CiphertextBlob"], EncryptionContext={"b": "1"}
    ) == because(ROOT_A, "Decrypt", arn, "resource")
    # ...but not another service's managed key.
    assert refused(s3_a.encrypt, KeyId="alias/aws/ebs", Plaintext=b"x")[0] == (
        "AccessDeniedException"
    )

    # Account B's S3 principal cannot use A's managed key (kms:CallerAccount) ...
    s3_b = kms("s3-b")
    assert denied(s3_b.encrypt, KeyId=arn, Plaintext=b"x") == because(
        CAST["s3-b"].arn, "Encrypt", arn, "resource"
    )
    # ... and alias/aws/s3 in account B is B's own managed key, made on first use.
    own = s3_b.encrypt(KeyId="alias/aws/s3", Plaintext=b"b's object")["KeyId"]
    assert own.startswith(f"arn:aws:kms:{REGION}:{ACCOUNT_B}:key/")
    assert own != arn
    assert kms("root-b").describe_key(KeyId="alias/aws/s3")["KeyMetadata"]["Arn"] == own


def test_a_service_principal_first_use_creates_the_managed_key(kms: World) -> None:
    s3_a = kms("s3-a")
    sealed = s3_a.encrypt(KeyId="alias/aws/s3", Plaintext=b"first")
    described = kms("root-a").describe_key(KeyId="alias/aws/s3")["KeyMetadata"]
    assert sealed["KeyId"] == described["Arn"]
    assert described["KeyManager"] == "AWS"
    entry = {a["AliasName"]: a for a in kms("alice").list_aliases()["Aliases"]}["alias/aws/s3"]
    assert entry["TargetKeyId"] == described["KeyId"]
    assert s3_a.decrypt(CiphertextBlob=sealed["CiphertextBlob"])["Plaintext"] == b"first"


# -- STS and audit -----------------------------------------------------------------------------


def test_sts_get_caller_identity_names_each_principal(kms: World) -> None:
    assert {
        k: v
        for k, v in kms("root-a", "sts").get_caller_identity().items()
        if k != "ResponseMetadata"
    } == {"Arn": ROOT_A, "Account": ACCOUNT_A, "UserId": ACCOUNT_A}
    for name, prefix in (("alice", "AIDA"), ("bob", "AIDA"), ("app", "AROA")):
        found = kms(name, "sts").get_caller_identity()
        assert found["Arn"] == CAST[name].arn
        assert found["Account"] == CAST[name].account
        assert re.fullmatch(prefix + r"[A-Z0-9]{17}", found["UserId"]), found
        assert kms(name, "sts").get_caller_identity()["UserId"] == found["UserId"]
    root_b = kms("root-b", "sts").get_caller_identity()
    assert (root_b["Arn"], root_b["Account"], root_b["UserId"]) == (ROOT_B, ACCOUNT_B, ACCOUNT_B)
    assert (
        kms("alice", "sts").get_caller_identity()["UserId"]
        != kms("bob", "sts").get_caller_identity()["UserId"]
    )


def test_denied_requests_are_recorded(kms: World) -> None:
    arn = kms("root-a").create_key()["KeyMetadata"]["Arn"]
    refusals = [
        error_of(kms("nobody").encrypt, KeyId=arn, Plaintext=b"x"),
        error_of(kms("bob").encrypt, KeyId=arn, Plaintext=b"x"),
        error_of(kms("app").list_keys),
        error_of(kms("app").create_key),
        error_of(kms("app").disable_key, KeyId=arn),
        error_of(
            kms("alice").put_key_policy,
            KeyId=arn,
            PolicyName="default",
            Policy=policy(statement({"AWS": ALICE}, "kms:Encrypt")),
        ),
    ]
    ids = [e.response["ResponseMetadata"]["RequestId"] for e in refusals]
    assert [e.response["Error"]["Code"] for e in refusals] == [
        *["AccessDeniedException"] * 5,
        "MalformedPolicyDocumentException",
    ]
    assert all(ids) and len(set(ids)) == len(ids)
    recorded = recorded_request_ids(kms.data_dir)
    assert set(ids) <= recorded, set(ids) - recorded


# -- the configuration file ------------------------------------------------------------------


@pytest.mark.slow
def test_a_toml_configuration_file_with_policies_as_json_and_as_tables(tmp_path: Path) -> None:
    config = tmp_path / "keyledger.toml"
    config.write_text(toml_text())
    data_dir = tmp_path / "data"
    server = ProcessServer(data_dir, extra_args=("--config", str(config))).start()
    try:
        kms = World(server, data_dir)
        who = kms("alice", "sts").get_caller_identity()
        assert (who["Arn"], who["Account"]) == (ALICE, ACCOUNT_A)
        assert kms("bob", "sts").get_caller_identity()["Account"] == ACCOUNT_B

        key = kms("root-a").create_key()["KeyMetadata"]
        arn = key["Arn"]
        # alice: a JSON-string Allow and a TOML-table Deny.
        roundtrip(kms("alice"), arn)
        protected = kms("root-a").create_key(Tags=[{"TagKey": "protected", "TagValue": "yes"}])
        protected_arn = protected["KeyMetadata"]["Arn"]
        assert denied(kms("alice").describe_key, KeyId=protected_arn) == explicit(
            ALICE, "DescribeKey", protected_arn, "identity"
        )
        # app: [[principals.policies]] tables.
        roundtrip(kms("app"), arn)
        assert denied(kms("app").create_key) == because(APP, "CreateKey", "*", "identity")
        assert denied(kms("nobody").encrypt, KeyId=arn, Plaintext=b"x") == because(
            NOBODY, "Encrypt", arn, "identity"
        )
        # via_service = "s3"
        assert (
            kms("s3-a")
            .encrypt(KeyId="alias/aws/s3", Plaintext=b"x")["KeyId"]
            .startswith(f"arn:aws:kms:{REGION}:{ACCOUNT_A}:key/")
        )
        # The s3.amazonaws.com service principal: only where a key policy names it.
        service = kms(S3_SERVICE.name)
        assert denied(service.encrypt, KeyId=arn, Plaintext=b"x") == because(
            "s3.amazonaws.com", "Encrypt", arn, "resource"
        )
        for_s3 = kms("root-a").create_key(
            Policy=policy(ENABLE_IAM, statement({"Service": "s3.amazonaws.com"}, "kms:Encrypt"))
        )["KeyMetadata"]["Arn"]
        assert service.encrypt(KeyId=for_s3, Plaintext=b"x")["KeyId"] == for_s3

        denial = error_of(kms("carol").encrypt, KeyId=arn, Plaintext=b"x")
    finally:
        exit_code = server.stop()
    assert exit_code == 0
    assert denial.response["ResponseMetadata"]["RequestId"] in recorded_request_ids(data_dir)


def test_an_identity_policy_may_carry_conditions(tmp_path: Path) -> None:
    """An IAM policy with a condition on the request: the app role may encrypt under
    a key of its account only with an encryption context naming its tenant."""
    conditional = document(
        {
            **allow(["kms:Encrypt", "kms:Decrypt"], f"arn:aws:kms:*:{ACCOUNT_A}:key/*"),
            "Condition": {"StringLike": {"kms:EncryptionContext:tenant": "acme-*"}},
        }
    )
    principals = (
        PrincipalConfig(Credential("AKROOT", "s", ROOT_A, ACCOUNT_A)),
        PrincipalConfig(
            Credential("AKAPP", "s", APP, ACCOUNT_A), policies=(json.dumps(conditional),)
        ),
    )
    server = ThreadServer(Settings(data_dir=tmp_path / "data", principals=principals)).start()
    try:
        root_client = server.client(aws_access_key_id="AKROOT", aws_secret_access_key="s")
        app = server.client(aws_access_key_id="AKAPP", aws_secret_access_key="s")
        arn = root_client.create_key()["KeyMetadata"]["Arn"]
        roundtrip(app, arn, {"tenant": "acme-eu"})
        for context in ({"tenant": "other"}, {}):
            assert denied(
                app.encrypt, KeyId=arn, Plaintext=b"x", EncryptionContext=context
            ) == because(APP, "Encrypt", arn, "identity")
    finally:
        server.stop()
