"""Grant rules, pure: constraints, "no broader than the parent", tokens, who may retire,
and the Cmk aggregate's GrantCreated / GrantRetired / GrantRevoked."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from uuid import uuid4

import pytest

from domain.errors import (
    DisabledError,
    InvalidGrantIdError,
    InvalidGrantTokenError,
    InvalidStateError,
    LimitExceededError,
    ValidationError,
)
from domain.grant_tokens import GrantTokens
from domain.grants import (
    EQUALS,
    SUBSET,
    Grant,
    GrantLimits,
    GrantRequest,
    at_least_as_strict,
    check_grant_id,
    check_grant_request,
    constraints_hold,
    may_retire,
    operations_fitting,
)
from tests.unit.test_cmk import CTX, NOW, new_key, replay

BOB = "arn:aws:iam::111111111111:user/bob"
RETIRER = "arn:aws:iam::111111111111:role/retirer"


# -- constraints: keys case-insensitive, values case-sensitive (GrantConstraints) ----------

CONSTRAINT_CASES = [
    # (constraints, request context, holds)
    (None, {}, True),
    (None, {"a": "1"}, True),
    ({EQUALS: {"a": "1"}}, {"a": "1"}, True),
    ({EQUALS: {"a": "1"}}, {"A": "1"}, True),  # key case does not matter
    ({EQUALS: {"a": "1"}}, {"a": "1 "}, False),
    ({EQUALS: {"a": "x"}}, {"a": "X"}, False),  # value case does
    ({EQUALS: {"a": "1"}}, {"a": "1", "b": "2"}, False),  # exactly these pairs
    ({EQUALS: {"a": "1"}}, {}, False),
    ({EQUALS: {"a": "1", "b": "2"}}, {"B": "2", "a": "1"}, True),
    ({SUBSET: {"a": "1"}}, {"a": "1"}, True),
    ({SUBSET: {"a": "1"}}, {"a": "1", "b": "2"}, True),
    ({SUBSET: {"Dept": "IT"}}, {"dept": "IT", "x": "y"}, True),
    ({SUBSET: {"dept": "IT"}}, {"dept": "it"}, False),
    ({SUBSET: {"a": "1"}}, {}, False),
    ({SUBSET: {"a": "1", "b": "2"}}, {"a": "1"}, False),
    ({SUBSET: {}}, {}, True),
    ({EQUALS: {"a": "1"}, SUBSET: {"a": "1"}}, {"a": "1"}, True),
    ({EQUALS: {"a": "1"}, SUBSET: {"b": "2"}}, {"a": "1"}, False),
]


@pytest.mark.parametrize(("constraints", "context", "holds"), CONSTRAINT_CASES)
def test_constraints(constraints: dict | None, context: dict, holds: bool) -> None:
    assert constraints_hold(constraints, context) is holds


def grant(**overrides: object) -> Grant:
    fields: dict[str, object] = {
        "grant_id": "ab" * 32,
        "key_id": str(uuid4()),
        "name": None,
        "grantee_principal": BOB,
        "retiring_principal": RETIRER,
        "operations": ("Encrypt", "Decrypt", "CreateGrant"),
        "constraints": {SUBSET: {"app": "web"}},
        "issuing_account": "111111111111",
        "created": NOW,
    }
    fields.update(overrides)
    return Grant(**fields)  # type: ignore[arg-type]


def test_admits_checks_operation_then_constraints_where_the_operation_has_a_context() -> None:
    g = grant()
    assert g.admits("Encrypt", {"app": "web"})
    assert not g.admits("Encrypt", {"app": "db"})
    assert not g.admits("GenerateDataKey", {"app": "web"})
    # CreateGrant takes no encryption context: constraints do not apply to it.
    assert g.admits("CreateGrant", None)


STRICTNESS = [
    # (child, parent, child is at least as strict)
    (None, None, True),
    ({SUBSET: {"a": "1"}}, None, True),
    (None, {SUBSET: {"a": "1"}}, False),
    ({SUBSET: {"a": "1"}}, {SUBSET: {"a": "1"}}, True),
    ({SUBSET: {"A": "1", "b": "2"}}, {SUBSET: {"a": "1"}}, True),
    ({SUBSET: {"b": "2"}}, {SUBSET: {"a": "1"}}, False),
    ({EQUALS: {"a": "1", "b": "2"}}, {SUBSET: {"a": "1"}}, True),
    ({EQUALS: {"b": "2"}}, {SUBSET: {"a": "1"}}, False),
    ({EQUALS: {"a": "1"}}, {EQUALS: {"A": "1"}}, True),
    ({EQUALS: {"a": "1", "b": "2"}}, {EQUALS: {"a": "1"}}, False),
    ({SUBSET: {"a": "1"}}, {EQUALS: {"a": "1"}}, False),
]


@pytest.mark.parametrize(("child", "parent", "strict"), STRICTNESS)
def test_a_child_grant_is_at_least_as_strict(child: dict, parent: dict, strict: bool) -> None:
    assert at_least_as_strict(child, parent) is strict


def test_no_broader_needs_a_subset_of_the_operations_too() -> None:
    parent = grant()
    assert parent.no_broader(("Encrypt",), {SUBSET: {"app": "web"}})
    assert not parent.no_broader(("Encrypt", "GenerateDataKey"), {SUBSET: {"app": "web"}})
    assert not parent.no_broader(("Encrypt",), None)


# -- operations that fit the key ------------------------------------------------------


def test_operations_fitting_a_symmetric_key() -> None:
    fitting = operations_fitting("SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT")
    assert {"Encrypt", "GenerateDataKeyPair", "ReEncryptTo", "DescribeKey"} <= fitting
    assert not {"Sign", "GenerateMac", "GetPublicKey", "DeriveSharedSecret"} & fitting
    assert "Sign" in operations_fitting("ECC_NIST_P256", "SIGN_VERIFY")
    assert "GenerateDataKey" not in operations_fitting("RSA_2048", "ENCRYPT_DECRYPT")


def test_check_grant_request_refuses_operations_that_do_not_fit() -> None:
    with pytest.raises(ValidationError, match="Sign"):
        check_grant_request(
            ["Encrypt", "Sign"], None, key_spec="SYMMETRIC_DEFAULT", key_usage="ENCRYPT_DECRYPT"
        )
    with pytest.raises(ValidationError, match="constraints"):
        check_grant_request(
            ["Sign"], {SUBSET: {"a": "b"}}, key_spec="ECC_NIST_P256", key_usage="SIGN_VERIFY"
        )
    with pytest.raises(ValidationError):
        check_grant_request([], None, key_spec="SYMMETRIC_DEFAULT", key_usage="ENCRYPT_DECRYPT")


@pytest.mark.parametrize("bad", ["", "abc", "AB" * 32, "ab" * 31, "ab" * 33, "zz" * 32])
def test_malformed_grant_ids(bad: str) -> None:
    with pytest.raises(InvalidGrantIdError):
        check_grant_id(bad)


# -- who may retire ---------------------------------------------------------------


def test_who_may_retire_without_a_policy() -> None:
    plain = grant(operations=("Encrypt",))
    with_retire = grant(operations=("Encrypt", "RetireGrant"))
    assert may_retire(plain, RETIRER, "111111111111")
    assert may_retire(plain, "arn:aws:iam::111111111111:root", "111111111111")
    assert not may_retire(plain, BOB, "111111111111")
    assert may_retire(with_retire, BOB, "111111111111")
    assert not may_retire(plain, "arn:aws:iam::222222222222:root", "111111111111")


# -- tokens ---------------------------------------------------------------------------

TOKENS = GrantTokens.from_root_key(b"r" * 32)


def test_a_token_names_its_key_and_grant_and_each_issue_differs() -> None:
    key_id, grant_id = uuid4(), "cd" * 32
    first = TOKENS.issue(key_id, grant_id, b"\x01" * 16)
    second = TOKENS.issue(key_id, grant_id, b"\x02" * 16)
    assert first != second
    for token in (first, second):
        ref = TOKENS.read(token)
        assert (ref.key_id, ref.grant_id) == (key_id, grant_id)


def _flip(token: str, index: int) -> str:
    raw = bytearray(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    raw[index] ^= 0x01
    return base64.urlsafe_b64encode(bytes(raw)).decode().rstrip("=")


@pytest.mark.parametrize("index", [0, 1, 17, 40, 60, 70, 96])
def test_a_token_altered_anywhere_is_refused(index: int) -> None:
    token = TOKENS.issue(uuid4(), "cd" * 32, b"\x00" * 16)
    with pytest.raises(InvalidGrantTokenError):
        TOKENS.read(_flip(token, index))


def test_forged_truncated_and_foreign_tokens_are_refused() -> None:
    token = TOKENS.issue(uuid4(), "cd" * 32, b"\x00" * 16)
    other_server = GrantTokens.from_root_key(b"s" * 32)
    for bad in (
        token[:-4],
        token + "AA",
        "",
        "not a token!",
        "A" * 130,
        other_server.issue(uuid4(), "cd" * 32, b"\x00" * 16),
    ):
        with pytest.raises(InvalidGrantTokenError):
            TOKENS.read(bad)


def test_tokens_do_not_print_their_secret() -> None:
    assert "redacted" in repr(TOKENS)


# -- the aggregate --------------------------------------------------------------------

LIMITS = GrantLimits(per_key=3, per_principal_per_key=2)


def request(grantee: str = BOB, **overrides: object) -> GrantRequest:
    fields: dict[str, object] = {"grantee_principal": grantee, "operations": ("Encrypt",)}
    fields.update(overrides)
    return GrantRequest(**fields)  # type: ignore[arg-type]


def test_create_grant_records_the_event_and_replays() -> None:
    cmk = new_key()
    gid = cmk.create_grant(request(name="n"), "01" * 32, LIMITS, CTX, NOW)
    assert gid == "01" * 32
    rebuilt = replay(cmk)
    assert rebuilt.grants[gid].operations == ("Encrypt",)
    assert rebuilt.grants[gid].issuing_account == cmk.account
    assert rebuilt.grants[gid].created == NOW


def test_the_same_name_and_parameters_is_a_retry_and_records_nothing() -> None:
    cmk = new_key()
    first = cmk.create_grant(request(name="n"), "01" * 32, LIMITS, CTX, NOW)
    pending = len(cmk.pending_events)
    again = cmk.create_grant(request(name="n"), "02" * 32, LIMITS, CTX, NOW)
    assert again == first and len(cmk.pending_events) == pending
    other = cmk.create_grant(
        request(name="n", operations=("Decrypt",)), "03" * 32, LIMITS, CTX, NOW
    )
    assert other == "03" * 32  # same Name, other parameters: a new grant
    assert cmk.create_grant(request(), "04" * 32, GrantLimits(), CTX, NOW) == "04" * 32
    assert cmk.create_grant(request(), "05" * 32, GrantLimits(), CTX, NOW) == "05" * 32


def test_limits_at_their_edges() -> None:
    cmk = new_key()
    cmk.create_grant(request(), "01" * 32, LIMITS, CTX, NOW)
    cmk.create_grant(request(), "02" * 32, LIMITS, CTX, NOW)
    with pytest.raises(LimitExceededError, match="grantee"):
        cmk.create_grant(request(), "03" * 32, LIMITS, CTX, NOW)
    cmk.create_grant(request("arn:aws:iam::111111111111:user/carol"), "04" * 32, LIMITS, CTX, NOW)
    with pytest.raises(LimitExceededError, match="most a KMS key may have"):
        cmk.create_grant(request("arn:aws:iam::111111111111:user/dan"), "05" * 32, LIMITS, CTX, NOW)
    cmk.retire_grant("01" * 32, CTX, NOW)
    cmk.create_grant(request(), "06" * 32, LIMITS, CTX, NOW)


def test_retire_and_revoke_remove_the_grant_and_unknown_ids_are_refused() -> None:
    cmk = new_key()
    cmk.create_grant(request(), "01" * 32, LIMITS, CTX, NOW)
    cmk.create_grant(request(), "02" * 32, LIMITS, CTX, NOW)
    cmk.retire_grant("01" * 32, CTX, NOW)
    cmk.revoke_grant("02" * 32, CTX, NOW)
    assert replay(cmk).grants == {}
    with pytest.raises(InvalidGrantIdError):
        cmk.revoke_grant("02" * 32, CTX, NOW)


def test_create_grant_follows_the_key_state_table() -> None:
    cmk = new_key()
    cmk.disable(CTX, NOW)
    with pytest.raises(DisabledError):
        cmk.create_grant(request(), "01" * 32, LIMITS, CTX, NOW)
    cmk.schedule_deletion(7, CTX, NOW)
    with pytest.raises(InvalidStateError):
        cmk.create_grant(request(), "01" * 32, LIMITS, CTX, NOW)
    # RetireGrant and RevokeGrant work in every state but Deleted (key-state table)
    assert cmk.grants == {}


def test_deletion_takes_the_grants_with_it() -> None:
    cmk = new_key()
    cmk.create_grant(request(), "01" * 32, LIMITS, CTX, NOW)
    cmk.schedule_deletion(7, CTX, NOW)
    cmk.delete(CTX, datetime(2027, 1, 1, tzinfo=UTC))
    assert replay(cmk).grants == {}
