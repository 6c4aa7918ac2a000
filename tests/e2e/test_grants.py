"""Grants end to end: boto3 against a real server, two accounts, several principals.

The cast (``authz_config``): account A's root makes the keys, whose default policy
delegates to IAM; ``nobody`` (A) and ``carol`` (B) have no IAM policy, so only a grant
lets them in; ``bob`` (B) has an IAM allow for Encrypt/Decrypt on A's keys, which the key
policy alone does not honour across accounts; ``alice`` (A) has an IAM deny on keys
tagged protected=yes. Consistency follows grants.html#terms-eventual-consistency.
"""

from __future__ import annotations

import sqlite3
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from api.config import ConfigError, load_config
from domain.quotas import Limits
from tests.e2e.authz_config import ACCOUNT_A, ACCOUNT_B, CAST, World, root, settings, toml_text
from tests.integration.stores import open_usage
from tests.support import ProcessServer, ThreadServer, advance, refused

NOBODY, CAROL, BOB, ALICE = (CAST[n].arn for n in ("nobody", "carol", "bob", "alice"))
APP = CAST["app"].arn


def start(tmp_path: Path, **changes: Any) -> World:
    data_dir = tmp_path / "data"
    server = ThreadServer(replace(settings(data_dir), **changes)).start()
    return World(server, data_dir)


@pytest.fixture
def kms(tmp_path: Path) -> Iterator[World]:
    world = start(tmp_path)
    yield world
    world.server.stop()


def new_key(world: World, **params: Any) -> str:
    return world("root-a").create_key(**params)["KeyMetadata"]["Arn"]


def denied(call: Callable[..., Any], **params: Any) -> str:
    code, message = refused(call, **params)
    assert code == "AccessDeniedException", (code, message)
    return message


def allowed(call: Callable[..., Any], **params: Any) -> bool:
    try:
        call(**params)
    except ClientError as error:
        assert error.response["Error"]["Code"] == "AccessDeniedException", error.response
        return False
    return True


def wait_for(condition: Callable[[], bool], timeout: float = 8.0) -> float:
    """Seconds until ``condition`` held; fails the test after ``timeout``."""
    began = time.monotonic()
    while not condition():
        if time.monotonic() - began > timeout:
            pytest.fail("the condition did not hold in time")
        time.sleep(0.05)
    return time.monotonic() - began


# -- consistency ---------------------------------------------------------------------


def test_a_grant_works_by_token_at_once_and_without_one_after_propagation(
    tmp_path: Path,
) -> None:
    world = start(tmp_path, grant_propagation_seconds=2)
    try:
        key = new_key(world)
        nobody = world("nobody")
        made = world("root-a").create_grant(
            KeyId=key, GranteePrincipal=NOBODY, Operations=["Encrypt", "Decrypt"]
        )
        created = time.monotonic()
        token = made["GrantToken"]
        denied(nobody.encrypt, KeyId=key, Plaintext=b"x")
        blob = nobody.encrypt(KeyId=key, Plaintext=b"x", GrantTokens=[token])["CiphertextBlob"]
        assert world("root-a").list_grants(KeyId=key)["Grants"] == []  # not propagated yet

        wait_for(lambda: allowed(nobody.decrypt, CiphertextBlob=blob))
        assert time.monotonic() - created > 1.5, "the grant took effect before it propagated"
        listed = world("root-a").list_grants(KeyId=key)["Grants"]
        assert [g["GrantId"] for g in listed] == [made["GrantId"]]

        world("root-a").revoke_grant(KeyId=key, GrantId=made["GrantId"])
        revoked = time.monotonic()
        assert allowed(nobody.encrypt, KeyId=key, Plaintext=b"x")  # as in AWS: still works
        wait_for(lambda: not allowed(nobody.encrypt, KeyId=key, Plaintext=b"x"))
        assert time.monotonic() - revoked > 1.5
        # An authentic token of a revoked grant brings nothing back.
        denied(nobody.encrypt, KeyId=key, Plaintext=b"x", GrantTokens=[token])
        assert world("root-a").list_grants(KeyId=key)["Grants"] == []

        status = orjson.loads(urllib.request.urlopen(f"{world.server.endpoint}/projections").read())
        grants_view = next(v for v in status["views"] if v["name"] == "grants")
        assert grants_view["propagation_seconds"] == 2
        assert grants_view["position"] == grants_view["head"]
    finally:
        world.server.stop()


def test_the_grant_used_is_in_the_audit_record(kms: World) -> None:
    key = new_key(kms)
    made = kms("root-a").create_grant(KeyId=key, GranteePrincipal=NOBODY, Operations=["Encrypt"])
    response = kms("nobody").encrypt(KeyId=key, Plaintext=b"x", GrantTokens=[made["GrantToken"]])
    by_policy = kms("root-a").encrypt(KeyId=key, Plaintext=b"x")
    wanted = {
        response["ResponseMetadata"]["RequestId"]: made["GrantId"],
        by_policy["ResponseMetadata"]["RequestId"]: None,
    }
    usage = open_usage(kms.data_dir)
    try:
        found = {}
        for notification in usage.recorder.select_notifications(start=1, limit=10_000):
            request = usage.mapper.to_domain_event(notification).request
            if request["request_id"] in wanted:
                found[request["request_id"]] = request["grant_id"]
    finally:
        usage.close()
    assert found == wanted


# -- constraints --------------------------------------------------------------------


def test_constraints_are_enforced_on_every_operation_with_an_encryption_context(
    kms: World,
) -> None:
    key = new_key(kms)
    admin, nobody = kms("root-a"), kms("nobody")
    subset = admin.create_grant(
        KeyId=key,
        GranteePrincipal=NOBODY,
        Operations=["Encrypt", "Decrypt", "GenerateDataKey", "ReEncryptFrom", "ReEncryptTo"],
        Constraints={"EncryptionContextSubset": {"Dept": "IT"}},
    )["GrantToken"]
    t = [subset]
    blob = nobody.encrypt(
        KeyId=key, Plaintext=b"x", EncryptionContext={"dept": "IT", "x": "1"}, GrantTokens=t
    )["CiphertextBlob"]
    denied(
        nobody.encrypt, KeyId=key, Plaintext=b"x", EncryptionContext={"dept": "it"}, GrantTokens=t
    )
    denied(nobody.encrypt, KeyId=key, Plaintext=b"x", GrantTokens=t)
    nobody.decrypt(CiphertextBlob=blob, EncryptionContext={"dept": "IT", "x": "1"}, GrantTokens=t)
    nobody.generate_data_key(
        KeyId=key, KeySpec="AES_256", EncryptionContext={"DEPT": "IT"}, GrantTokens=t
    )
    denied(nobody.generate_data_key, KeyId=key, KeySpec="AES_256", GrantTokens=t)
    nobody.re_encrypt(
        CiphertextBlob=blob,
        SourceEncryptionContext={"dept": "IT", "x": "1"},
        DestinationKeyId=key,
        DestinationEncryptionContext={"Dept": "IT"},
        GrantTokens=t,
    )
    denied(
        nobody.re_encrypt,
        CiphertextBlob=blob,
        SourceEncryptionContext={"dept": "IT", "x": "1"},
        DestinationKeyId=key,
        DestinationEncryptionContext={"other": "IT"},
        GrantTokens=t,
    )
    # DescribeKey takes no encryption context: constraints do not apply.
    describe = admin.create_grant(
        KeyId=key,
        GranteePrincipal=CAROL,
        Operations=["DescribeKey"],
        Constraints={"EncryptionContextEquals": {"a": "b"}},
    )["GrantToken"]
    kms("carol").describe_key(KeyId=key, GrantTokens=[describe])

    equals = admin.create_grant(
        KeyId=key,
        GranteePrincipal=APP,
        Operations=["GenerateDataKeyWithoutPlaintext"],
        Constraints={"EncryptionContextEquals": {"Tenant": "t1"}},
    )["GrantToken"]
    app = kms("app")  # its IAM policy does not allow GenerateDataKeyWithoutPlaintext
    app.generate_data_key_without_plaintext(
        KeyId=key, KeySpec="AES_128", EncryptionContext={"tenant": "t1"}, GrantTokens=[equals]
    )
    for context in ({"tenant": "T1"}, {"tenant": "t1", "more": "x"}, {}):
        denied(
            app.generate_data_key_without_plaintext,
            KeyId=key,
            KeySpec="AES_128",
            EncryptionContext=context,
            GrantTokens=[equals],
        )


# -- CreateGrant ----------------------------------------------------------------------


def test_the_same_name_returns_the_same_grant_with_a_new_token_each_time(kms: World) -> None:
    key = new_key(kms)
    admin = kms("root-a")
    params = {"KeyId": key, "GranteePrincipal": NOBODY, "Operations": ["Encrypt"], "Name": "ci"}
    first, second = admin.create_grant(**params), admin.create_grant(**params)
    assert first["GrantId"] == second["GrantId"]
    assert first["GrantToken"] != second["GrantToken"]
    for token in (first["GrantToken"], second["GrantToken"]):
        kms("nobody").encrypt(KeyId=key, Plaintext=b"x", GrantTokens=[token])
    other = admin.create_grant(**{**params, "Operations": ["Encrypt", "Decrypt"]})
    assert other["GrantId"] != first["GrantId"]
    grants = admin.list_grants(KeyId=key)["Grants"]
    assert sorted(g["GrantId"] for g in grants) == sorted({first["GrantId"], other["GrantId"]})
    entry = next(g for g in grants if g["GrantId"] == first["GrantId"])
    assert entry["Name"] == "ci"
    assert entry["KeyId"] == key
    assert entry["IssuingAccount"] == root(ACCOUNT_A)
    assert entry["GranteePrincipal"] == NOBODY
    assert entry["Operations"] == ["Encrypt"]


def test_create_grant_refusals(kms: World) -> None:
    key = new_key(kms)
    admin = kms("root-a")
    code, message = refused(
        admin.create_grant, KeyId=key, GranteePrincipal=NOBODY, Operations=["Sign"]
    )
    assert code == "ValidationException" and "Sign" in message
    code, _ = refused(
        admin.create_grant, KeyId=key, GranteePrincipal=NOBODY, Operations=["Encrypt"], DryRun=True
    )
    assert code == "DryRunOperationException"
    assert admin.list_grants(KeyId=key)["Grants"] == []  # DryRun writes nothing
    denied(kms("nobody").create_grant, KeyId=key, GranteePrincipal=NOBODY, Operations=["Encrypt"])
    code, _ = refused(
        admin.create_grant,
        KeyId=key.replace(key[-12:], "0" * 12),
        GranteePrincipal=NOBODY,
        Operations=["Encrypt"],
    )
    assert code == "NotFoundException"
    admin.disable_key(KeyId=key)
    code, message = refused(
        admin.create_grant, KeyId=key, GranteePrincipal=NOBODY, Operations=["Encrypt"]
    )
    assert (code, message) == ("DisabledException", f"{key} is disabled.")


def test_a_grant_with_create_grant_delegates_only_narrower_grants(kms: World) -> None:
    key = new_key(kms)
    parent = kms("root-a").create_grant(
        KeyId=key,
        GranteePrincipal=NOBODY,
        Operations=["CreateGrant", "Encrypt", "Decrypt"],
        Constraints={"EncryptionContextSubset": {"app": "web"}},
    )["GrantToken"]
    nobody = kms("nobody")

    def child(**params: Any) -> Any:
        return nobody.create_grant(
            KeyId=key, GranteePrincipal=CAROL, GrantTokens=[parent], **params
        )

    narrow = child(
        Operations=["Encrypt"], Constraints={"EncryptionContextSubset": {"APP": "web", "b": "2"}}
    )
    child(Operations=["Decrypt"], Constraints={"EncryptionContextEquals": {"app": "web"}})
    denied(
        child,
        Operations=["Encrypt", "GenerateDataKey"],
        Constraints={"EncryptionContextSubset": {"app": "web"}},
    )
    denied(child, Operations=["Encrypt"])
    denied(child, Operations=["Encrypt"], Constraints={"EncryptionContextSubset": {"app": "db"}})
    kms("carol").encrypt(
        KeyId=key,
        Plaintext=b"x",
        EncryptionContext={"app": "web", "b": "2"},
        GrantTokens=[narrow["GrantToken"]],
    )


# -- retiring and revoking -------------------------------------------------------------


def test_who_may_retire_and_revoke(kms: World) -> None:
    key = new_key(kms)
    admin = kms("root-a")
    retirer = CAST["app"].arn

    def make(operations: list[str], **params: Any) -> dict[str, Any]:
        return admin.create_grant(
            KeyId=key, GranteePrincipal=NOBODY, Operations=operations, **params
        )

    by_retirer = make(["Encrypt"], RetiringPrincipal=retirer)
    denied(kms("nobody").retire_grant, GrantToken=by_retirer["GrantToken"])
    denied(kms("carol").retire_grant, KeyId=key, GrantId=by_retirer["GrantId"])
    kms("app").retire_grant(KeyId=key, GrantId=by_retirer["GrantId"])

    self_retiring = make(["Encrypt", "RetireGrant"])
    kms("nobody").retire_grant(GrantToken=self_retiring["GrantToken"])
    code, _ = refused(kms("nobody").retire_grant, GrantToken=self_retiring["GrantToken"])
    assert code == "InvalidGrantTokenException"  # already retired

    by_account = make(["Encrypt"])
    code, _ = refused(admin.retire_grant, KeyId=key, GrantId=by_account["GrantId"], DryRun=True)
    assert code == "DryRunOperationException"
    admin.retire_grant(KeyId=key, GrantId=by_account["GrantId"])

    revocable = make(["Decrypt"], RetiringPrincipal=retirer)
    denied(kms("nobody").revoke_grant, KeyId=key, GrantId=revocable["GrantId"])
    denied(kms("app").revoke_grant, KeyId=key, GrantId=revocable["GrantId"])
    kms("alice").revoke_grant(KeyId=key, GrantId=revocable["GrantId"])  # IAM kms:*
    code, _ = refused(admin.revoke_grant, KeyId=key, GrantId=revocable["GrantId"])
    assert code == "InvalidGrantIdException"
    code, _ = refused(admin.revoke_grant, KeyId=key, GrantId="not-a-grant-id")
    assert code == "InvalidGrantIdException"
    code, _ = refused(admin.retire_grant, KeyId=key)
    assert code == "ValidationException"
    assert admin.list_grants(KeyId=key)["Grants"] == []


def test_list_retirable_grants(kms: World) -> None:
    keys = [new_key(kms) for _ in range(2)]
    retirer = CAST["app"].arn
    made = {
        kms("root-a").create_grant(
            KeyId=key, GranteePrincipal=NOBODY, Operations=["Encrypt"], RetiringPrincipal=retirer
        )["GrantId"]
        for key in keys
        for _ in range(2)
    }
    kms("root-a").create_grant(KeyId=keys[0], GranteePrincipal=NOBODY, Operations=["Encrypt"])
    pages = (
        kms("root-a")
        .get_paginator("list_retirable_grants")
        .paginate(RetiringPrincipal=retirer, PaginationConfig={"PageSize": 3})
    )
    listed = [g for page in pages for g in page["Grants"]]
    assert {g["GrantId"] for g in listed} == made and len(listed) == 4
    assert {g["KeyId"] for g in listed} == set(keys)
    denied(kms("nobody").list_retirable_grants, RetiringPrincipal=retirer)


# -- tokens ---------------------------------------------------------------------------


def test_forged_altered_truncated_and_foreign_tokens_are_refused(
    kms: World, tmp_path: Path
) -> None:
    key = new_key(kms)
    token = kms("root-a").create_grant(KeyId=key, GranteePrincipal=NOBODY, Operations=["Encrypt"])[
        "GrantToken"
    ]
    other = start(tmp_path / "other")
    try:
        foreign_key = new_key(other)
        foreign = other("root-a").create_grant(
            KeyId=foreign_key, GranteePrincipal=NOBODY, Operations=["Encrypt"]
        )["GrantToken"]
    finally:
        other.server.stop()
    altered = token[:10] + ("A" if token[10] != "A" else "B") + token[11:]
    for bad in (token[:-5], altered, "AQpAM2RhZ", foreign, "x" * 200):
        code, _ = refused(kms("root-a").encrypt, KeyId=key, Plaintext=b"x", GrantTokens=[bad])
        assert code == "InvalidGrantTokenException", bad
        code, _ = refused(kms("nobody").retire_grant, GrantToken=bad)
        assert code == "InvalidGrantTokenException"
    # A good token next to a bad one does not help the bad one through.
    code, _ = refused(
        kms("nobody").encrypt, KeyId=key, Plaintext=b"x", GrantTokens=[token, altered]
    )
    assert code == "InvalidGrantTokenException"
    raw = kms.server.client(
        aws_access_key_id=CAST["nobody"].access_key_id,
        aws_secret_access_key=CAST["nobody"].secret_access_key,
        config=Config(parameter_validation=False, retries={"max_attempts": 1}),
    )
    code, _ = refused(raw.encrypt, KeyId=key, Plaintext=b"x", GrantTokens=[token] * 11)
    assert code == "ValidationException"
    kms("nobody").encrypt(KeyId=key, Plaintext=b"x", GrantTokens=[token] * 10)


# -- authorization combined ------------------------------------------------------------


def test_cross_account_grants(kms: World) -> None:
    key = new_key(kms)
    denied(kms("carol").encrypt, KeyId=key, Plaintext=b"x")
    kms("root-a").create_grant(KeyId=key, GranteePrincipal=CAROL, Operations=["Encrypt"])
    blob = kms("carol").encrypt(KeyId=key, Plaintext=b"x")["CiphertextBlob"]
    denied(kms("carol").decrypt, CiphertextBlob=blob)  # only what the grant allows
    denied(kms("bob").decrypt, CiphertextBlob=blob)
    # A grant to account B's root serves B's principals whose IAM policies allow it.
    kms("root-a").create_grant(KeyId=key, GranteePrincipal=root(ACCOUNT_B), Operations=["Decrypt"])
    assert kms("bob").decrypt(CiphertextBlob=blob)["Plaintext"] == b"x"
    denied(kms("carol").decrypt, CiphertextBlob=blob)  # no IAM allow in B
    assert kms("root-b").decrypt(CiphertextBlob=blob)["Plaintext"] == b"x"
    # Carol lists nothing of A's: ListGrants needs the key policy, grants never give it.
    denied(kms("carol").list_grants, KeyId=key)


def test_an_explicit_deny_beats_a_grant(kms: World) -> None:
    key = new_key(kms, Tags=[{"TagKey": "protected", "TagValue": "yes"}])
    token = kms("root-a").create_grant(KeyId=key, GranteePrincipal=ALICE, Operations=["Encrypt"])[
        "GrantToken"
    ]
    message = denied(kms("alice").encrypt, KeyId=key, Plaintext=b"x", GrantTokens=[token])
    assert "explicit deny" in message


# -- limits, paging, lifetime -----------------------------------------------------------


def test_both_grant_limits_at_their_edge(tmp_path: Path) -> None:
    world = start(tmp_path, limits=Limits(grants_per_key=3, grants_per_principal_per_key=2))
    try:
        key, admin = new_key(world), world("root-a")

        def grant(grantee: str) -> Any:
            return admin.create_grant(KeyId=key, GranteePrincipal=grantee, Operations=["Encrypt"])

        first = grant(NOBODY)
        grant(NOBODY)
        code, message = refused(grant, grantee=NOBODY)
        assert code == "LimitExceededException" and NOBODY in message
        grant(CAROL)
        code, message = refused(grant, grantee=BOB)
        assert code == "LimitExceededException" and key in message
        admin.revoke_grant(KeyId=key, GrantId=first["GrantId"])
        grant(BOB)
    finally:
        world.server.stop()


def test_list_grants_pages_and_filters(kms: World) -> None:
    key, admin = new_key(kms), kms("root-a")
    ids = [
        admin.create_grant(KeyId=key, GranteePrincipal=who, Operations=["Encrypt"])["GrantId"]
        for who in (NOBODY, NOBODY, CAROL, NOBODY, BOB, CAROL, NOBODY)
    ]
    pages = list(
        admin.get_paginator("list_grants").paginate(KeyId=key, PaginationConfig={"PageSize": 3})
    )
    assert [len(p["Grants"]) for p in pages] == [3, 3, 1]
    assert [g["GrantId"] for p in pages for g in p["Grants"]] == sorted(ids)
    by_grantee = admin.list_grants(KeyId=key, GranteePrincipal=CAROL)["Grants"]
    assert sorted(g["GrantId"] for g in by_grantee) == sorted([ids[2], ids[5]])
    one = admin.list_grants(KeyId=key, GrantId=ids[4])["Grants"]
    assert [g["GranteePrincipal"] for g in one] == [BOB]
    code, _ = refused(admin.list_grants, KeyId=key, GrantId="nope")
    assert code == "InvalidGrantIdException"
    code, _ = refused(admin.list_grants, KeyId=key, Marker="garbage")
    assert code == "InvalidMarkerException"


def test_grants_survive_a_restart_and_go_with_their_key(tmp_path: Path) -> None:
    config = tmp_path / "keyledger.toml"
    config.write_text(
        toml_text() + "\n[grants]\npropagation_seconds = 0.5\n\n[limits]\ngrants_per_key = 2\n"
    )
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    server = ProcessServer(data_dir, extra_args=("--config", str(config), "--dev-clock"))
    world = World(server.start(), data_dir)
    key = new_key(world)
    made = world("root-a").create_grant(KeyId=key, GranteePrincipal=NOBODY, Operations=["Encrypt"])
    world("root-a").create_grant(KeyId=key, GranteePrincipal=CAROL, Operations=["Encrypt"])
    code, _ = refused(
        world("root-a").create_grant, KeyId=key, GranteePrincipal=BOB, Operations=["Encrypt"]
    )
    assert code == "LimitExceededException"  # [limits] grants_per_key = 2 from the file
    server.stop()

    world = World(server.start(), data_dir)
    wait_for(lambda: allowed(world("nobody").encrypt, KeyId=key, Plaintext=b"x"))
    world("nobody").encrypt(KeyId=key, Plaintext=b"x", GrantTokens=[made["GrantToken"]])
    assert len(world("root-a").list_grants(KeyId=key)["Grants"]) == 2

    world("root-a").schedule_key_deletion(KeyId=key, PendingWindowInDays=7)
    advance(server, 8 * 86400)
    code, _ = refused(world("root-a").list_grants, KeyId=key)
    assert code == "NotFoundException"
    code, _ = refused(world("nobody").retire_grant, GrantToken=made["GrantToken"])
    assert code == "InvalidGrantTokenException"

    def view_rows() -> int:
        with sqlite3.connect(data_dir / "grants.db") as db:
            return int(db.execute("SELECT COUNT(*) FROM grants").fetchone()[0])

    wait_for(lambda: view_rows() == 0)
    server.stop()


@pytest.mark.parametrize(
    "bad", ['[grants]\npropagation_seconds = "soon"', "[limits]\ngrants_per_key = -1", "grants = 3"]
)
def test_a_configuration_with_bad_grant_settings_is_refused(tmp_path: Path, bad: str) -> None:
    config = tmp_path / "keyledger.toml"
    config.write_text(bad + "\n\n" + toml_text())
    with pytest.raises(ConfigError):
        load_config(config)
