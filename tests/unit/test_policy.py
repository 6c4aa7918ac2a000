"""Key policy / IAM policy evaluation: grammar, matching, conditions, decisions, lockout.

Expected values follow the IAM User Guide (policy evaluation logic, condition operators,
single- vs multivalued context keys, Principal/NotPrincipal) and the KMS Developer Guide
(determining access, default key policy, cross-account use, condition keys, quotas).
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from domain.errors import LimitExceededError, MalformedPolicyDocumentError
from domain.policy import (
    INVALID_ACTIONS,
    INVALID_PRINCIPALS,
    AccessRequest,
    ConditionValue,
    Decision,
    Outcome,
    Policy,
    Principal,
    authorize,
    evaluate,
    parse_policy,
    validate_key_policy,
    would_lock_out,
)
from domain.values import default_key_policy

ACCT = "111122223333"
OTHER = "444455556666"
KEY = f"arn:aws:kms:us-east-1:{ACCT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
OTHER_KEY = f"arn:aws:kms:us-east-1:{ACCT}:key/0987dcba-09fe-87dc-65ba-ab0987654321"
NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)

ROOT = Principal(f"arn:aws:iam::{ACCT}:root", ACCT)
ALICE = Principal(f"arn:aws:iam::{ACCT}:user/alice", ACCT)
BOB = Principal(f"arn:aws:iam::{ACCT}:user/bob", ACCT)
APP = Principal(f"arn:aws:iam::{ACCT}:role/app", ACCT)
APP_SESSION = Principal(f"arn:aws:sts::{ACCT}:assumed-role/app/i-0abc", ACCT)
OTHER_ROOT = Principal(f"arn:aws:iam::{OTHER}:root", OTHER)
CAROL = Principal(f"arn:aws:iam::{OTHER}:user/carol", OTHER)
S3 = Principal("s3.amazonaws.com", "", is_service=True)

Doc = dict[str, Any]


def aws(*principals: Principal | str) -> Doc:
    names = [p.arn if isinstance(p, Principal) else p for p in principals]
    return {"AWS": names[0] if len(names) == 1 else names}


def allow(principal: Any = None, action: Any = "kms:*", **extra: Any) -> Doc:
    statement: Doc = {"Effect": "Allow", "Action": action, "Resource": "*", **extra}
    if principal is not None:
        statement["Principal"] = principal
    return statement


def deny(principal: Any = None, action: Any = "kms:*", **extra: Any) -> Doc:
    return {**allow(principal, action, **extra), "Effect": "Deny"}


def policy(*statements: Doc) -> Policy:
    return parse_policy(json.dumps({"Version": "2012-10-17", "Statement": list(statements)}))


def request(
    principal: Principal = ALICE,
    action: str = "kms:Encrypt",
    resource: str = KEY,
    context: dict[str, ConditionValue] | None = None,
) -> AccessRequest:
    return AccessRequest(principal, action, resource, ACCT, context or {})


ROOT_DELEGATION = allow(aws(ROOT))
IAM_ALLOW_ALL = allow()


# --------------------------------------------------------------------------- conditions


MISSING: Any = object()


def c(case_id: str, op: str, key: str, wanted: Any, got: Any, expected: bool) -> Any:  # noqa: PLR0917
    """One operator on one key; ``got`` is the request's value for that key (or MISSING)."""
    context = {} if got is MISSING else {key: got}
    return pytest.param({op: {key: wanted}}, context, expected, id=case_id)


def cx(case_id: str, condition: Doc, context: dict[str, ConditionValue], expected: bool) -> Any:
    return pytest.param(condition, context, expected, id=case_id)


EPOCH_NOW = int(NOW.timestamp())
EC_KEYS = "kms:EncryptionContextKeys"
CALLER = "kms:CallerAccount"
VIA = "kms:ViaService"
ALIAS = "kms:RequestAlias"
DAYS = "kms:RotationPeriodInDays"
TIME = "aws:CurrentTime"
TLS = "aws:SecureTransport"
IP = "aws:SourceIp"
PARN = "aws:PrincipalArn"
EC_DEPT = "kms:EncryptionContext:dept"
EC2 = "ec2.us-east-1.amazonaws.com"
T, F = True, False

CONDITION_CASES = [
    # String operators
    c("StringEquals-match", "StringEquals", CALLER, ACCT, ACCT, T),
    c("StringEquals-mismatch", "StringEquals", CALLER, ACCT, OTHER, F),
    c(
        "StringEquals-value-case-sensitive",
        "StringEquals",
        "kms:KeySpec",
        "rsa_2048",
        "RSA_2048",
        F,
    ),
    c(
        "StringEquals-values-ORed",
        "StringEquals",
        "kms:EncryptionAlgorithm",
        ["RSAES_OAEP_SHA_1", "SYMMETRIC_DEFAULT"],
        "SYMMETRIC_DEFAULT",
        T,
    ),
    c("StringEquals-missing-key-false", "StringEquals", CALLER, ACCT, MISSING, F),
    c("StringEquals-no-wildcards", "StringEquals", VIA, "ec2.*", EC2, F),
    cx(
        "StringEquals-policy-key-name-case",
        {"StringEquals": {"KMS:CALLERACCOUNT": ACCT}},
        {CALLER: ACCT},
        T,
    ),
    cx(
        "StringEquals-context-key-name-case",
        {"StringEquals": {VIA: EC2}},
        {"KMS:VIASERVICE": EC2},
        T,
    ),
    c(
        "StringNotEquals-differs",
        "StringNotEquals",
        "kms:KeyUsage",
        "SIGN_VERIFY",
        "ENCRYPT_DECRYPT",
        T,
    ),
    c("StringNotEquals-equal", "StringNotEquals", "kms:KeyUsage", "SIGN_VERIFY", "SIGN_VERIFY", F),
    c(
        "StringNotEquals-values-NORed",
        "StringNotEquals",
        "kms:KeyUsage",
        ["SIGN_VERIFY", "ENCRYPT_DECRYPT"],
        "ENCRYPT_DECRYPT",
        F,
    ),
    c("StringNotEquals-missing-key-true", "StringNotEquals", "kms:KeyUsage", "X", MISSING, T),
    c(
        "StringEqualsIgnoreCase-match",
        "StringEqualsIgnoreCase",
        "kms:KeyOrigin",
        "aws_kms",
        "AWS_KMS",
        T,
    ),
    c(
        "StringEqualsIgnoreCase-mismatch",
        "StringEqualsIgnoreCase",
        "kms:KeyOrigin",
        "external",
        "AWS_KMS",
        F,
    ),
    c("StringEqualsIgnoreCase-missing", "StringEqualsIgnoreCase", "kms:KeyOrigin", "x", MISSING, F),
    c(
        "StringNotEqualsIgnoreCase-equal",
        "StringNotEqualsIgnoreCase",
        "kms:KeyOrigin",
        "aws_kms",
        "AWS_KMS",
        F,
    ),
    c(
        "StringNotEqualsIgnoreCase-differs",
        "StringNotEqualsIgnoreCase",
        "kms:KeyOrigin",
        "external",
        "AWS_KMS",
        T,
    ),
    c(
        "StringNotEqualsIgnoreCase-missing",
        "StringNotEqualsIgnoreCase",
        "kms:KeyOrigin",
        "x",
        MISSING,
        T,
    ),
    c("StringLike-star", "StringLike", VIA, "ec2.*.amazonaws.com", EC2, T),
    c("StringLike-star-mismatch", "StringLike", VIA, "ec2.*.amazonaws.com", "rds.amazonaws.com", F),
    c("StringLike-question-one-char", "StringLike", ALIAS, "alias/app-?", "alias/app-1", T),
    c("StringLike-question-not-two", "StringLike", ALIAS, "alias/app-?", "alias/app-10", F),
    c("StringLike-case-sensitive", "StringLike", ALIAS, "alias/App*", "alias/app", F),
    c("StringLike-dot-literal", "StringLike", ALIAS, "alias/a.b", "alias/aXb", F),
    c("StringLike-plus-literal", "StringLike", ALIAS, "alias/a+", "alias/aa", F),
    c("StringLike-plus-matches-itself", "StringLike", ALIAS, "alias/a+", "alias/a+", T),
    c(
        "StringLike-metachars-literal",
        "StringLike",
        ALIAS,
        "a/(x)[y]{2}^$|\\",
        "a/(x)[y]{2}^$|\\",
        T,
    ),
    c("StringLike-brackets-not-a-class", "StringLike", ALIAS, "alias/[ab]", "alias/a", F),
    c("StringLike-missing", "StringLike", ALIAS, "*", MISSING, F),
    c("StringNotLike-no-match", "StringNotLike", ALIAS, "alias/prod-*", "alias/dev-1", T),
    c("StringNotLike-match", "StringNotLike", ALIAS, "alias/prod-*", "alias/prod-1", F),
    c("StringNotLike-missing-true", "StringNotLike", ALIAS, "alias/prod-*", MISSING, T),
    c("policy-variable-literal", "StringEquals", PARN, "${aws:username}", "alice", F),
    c(
        "policy-variable-literal-match",
        "StringEquals",
        PARN,
        "${aws:username}",
        "${aws:username}",
        T,
    ),
    # Numeric operators
    c("NumericEquals-match", "NumericEquals", DAYS, "365", 365, T),
    c("NumericEquals-json-number", "NumericEquals", DAYS, 365, "365", T),
    c("NumericEquals-decimal", "NumericEquals", DAYS, "1.5", 1.50, T),
    c("NumericEquals-mismatch", "NumericEquals", DAYS, "90", 365, F),
    c("NumericEquals-not-a-number", "NumericEquals", DAYS, "90", "ninety", F),
    c("NumericEquals-missing", "NumericEquals", DAYS, "90", MISSING, F),
    c("NumericNotEquals-differs", "NumericNotEquals", DAYS, "90", 365, T),
    c("NumericNotEquals-equal", "NumericNotEquals", DAYS, "365", 365, F),
    c("NumericNotEquals-missing", "NumericNotEquals", DAYS, "1", MISSING, T),
    c("NumericLessThan-below", "NumericLessThan", DAYS, 366, 365, T),
    c("NumericLessThan-equal", "NumericLessThan", DAYS, 365, 365, F),
    c("NumericLessThanEquals-equal", "NumericLessThanEquals", DAYS, 365, 365, T),
    c("NumericLessThanEquals-above", "NumericLessThanEquals", DAYS, 365, 366, F),
    c("NumericGreaterThan-above", "NumericGreaterThan", DAYS, 90, 365, T),
    c("NumericGreaterThan-equal", "NumericGreaterThan", DAYS, 365, 365, F),
    c("NumericGreaterThanEquals-equal", "NumericGreaterThanEquals", DAYS, 365, 365, T),
    c("NumericGreaterThanEquals-below", "NumericGreaterThanEquals", DAYS, 365, 364, F),
    # Date operators (aws:CurrentTime comes in the request, never from a clock)
    c("DateEquals-iso", "DateEquals", TIME, "2026-01-01T12:00:00Z", NOW, T),
    c("DateEquals-epoch", "DateEquals", TIME, EPOCH_NOW, NOW, T),
    c("DateEquals-epoch-string", "DateEquals", TIME, str(EPOCH_NOW), NOW, T),
    c("DateEquals-offset", "DateEquals", TIME, "2026-01-01T13:00:00+01:00", NOW, T),
    c(
        "DateEquals-context-string",
        "DateEquals",
        TIME,
        "2026-01-01T12:00:00Z",
        "2026-01-01T12:00:00Z",
        T,
    ),
    c("DateEquals-mismatch", "DateEquals", TIME, "2026-01-02T12:00:00Z", NOW, F),
    c("DateEquals-missing", "DateEquals", TIME, "2026-01-01T12:00:00Z", MISSING, F),
    c("DateNotEquals-differs", "DateNotEquals", TIME, "2025-01-01T00:00:00Z", NOW, T),
    c("DateNotEquals-equal", "DateNotEquals", TIME, "2026-01-01T12:00:00Z", NOW, F),
    c("DateLessThan-before", "DateLessThan", TIME, "2027-01-01T00:00:00Z", NOW, T),
    c("DateLessThan-after", "DateLessThan", TIME, "2025-01-01", NOW, F),
    c(
        "DateLessThan-naive-is-utc",
        "DateLessThan",
        TIME,
        "2026-01-02",
        datetime(2026, 1, 1, 23, 59),
        T,
    ),
    c("DateLessThanEquals-equal", "DateLessThanEquals", TIME, EPOCH_NOW, NOW, T),
    c("DateLessThanEquals-after", "DateLessThanEquals", TIME, EPOCH_NOW - 1, NOW, F),
    c("DateGreaterThan-after", "DateGreaterThan", TIME, "2025-06-01T00:00:00Z", NOW, T),
    c("DateGreaterThan-before", "DateGreaterThan", TIME, "2026-06-01T00:00:00Z", NOW, F),
    c("DateGreaterThanEquals-equal", "DateGreaterThanEquals", TIME, "2026-01-01T12:00:00Z", NOW, T),
    c(
        "DateGreaterThanEquals-before",
        "DateGreaterThanEquals",
        TIME,
        "2026-01-01T12:00:01Z",
        NOW,
        F,
    ),
    # Bool
    c("Bool-true", "Bool", TLS, "true", True, T),
    c("Bool-json-false", "Bool", TLS, False, False, T),
    c("Bool-mismatch", "Bool", TLS, "false", True, F),
    c("Bool-literal-case-insensitive", "Bool", TLS, "TRUE", True, T),
    c("Bool-missing", "Bool", TLS, "true", MISSING, F),
    # IP address
    c("IpAddress-in-cidr", "IpAddress", IP, "203.0.113.0/24", "203.0.113.7", T),
    c("IpAddress-outside", "IpAddress", IP, "203.0.113.0/24", "198.51.100.1", F),
    c("IpAddress-single-host", "IpAddress", IP, "127.0.0.1", "127.0.0.1", T),
    c("IpAddress-ipv6", "IpAddress", IP, "2001:DB8::/32", "2001:db8:1::5", T),
    c("IpAddress-ipv4-in-ipv6-range", "IpAddress", IP, "2001:db8::/32", "203.0.113.7", F),
    c("IpAddress-cidrs-ORed", "IpAddress", IP, ["10.0.0.0/8", "203.0.113.0/24"], "203.0.113.7", T),
    c("IpAddress-not-an-ip", "IpAddress", IP, "10.0.0.0/8", "localhost", F),
    c("IpAddress-missing", "IpAddress", IP, "10.0.0.0/8", MISSING, F),
    c("NotIpAddress-outside", "NotIpAddress", IP, "10.0.0.0/8", "203.0.113.7", T),
    c("NotIpAddress-inside", "NotIpAddress", IP, "10.0.0.0/8", "10.1.2.3", F),
    c("NotIpAddress-missing", "NotIpAddress", IP, "10.0.0.0/8", MISSING, T),
    # ARN
    c("ArnEquals-match", "ArnEquals", PARN, ALICE.arn, ALICE.arn, T),
    c("ArnEquals-mismatch", "ArnEquals", PARN, ALICE.arn, BOB.arn, F),
    c("ArnLike-role-wildcard", "ArnLike", PARN, f"arn:aws:iam::{ACCT}:role/*", APP.arn, T),
    c("ArnLike-case-sensitive", "ArnLike", PARN, f"arn:aws:iam::{ACCT}:role/APP", APP.arn, F),
    c("ArnLike-question", "ArnLike", PARN, "arn:aws:iam::?????????333:role/app", APP.arn, T),
    c(
        "ArnLike-star-stays-in-component",
        "ArnLike",
        PARN,
        f"arn:aws:kms:*:{ACCT}:key/k",
        f"arn:aws:kms:us-east-1:extra:{ACCT}:key/k",
        F,
    ),
    c(
        "ArnLike-last-component-keeps-colons",
        "ArnLike",
        PARN,
        f"arn:aws:iam::{ACCT}:*",
        f"arn:aws:iam::{ACCT}:role/x:y",
        T,
    ),
    c("ArnLike-missing", "ArnLike", PARN, "arn:*", MISSING, F),
    c("ArnNotEquals-differs", "ArnNotEquals", PARN, ALICE.arn, BOB.arn, T),
    c("ArnNotEquals-equal", "ArnNotEquals", PARN, ALICE.arn, ALICE.arn, F),
    c("ArnNotLike-match", "ArnNotLike", PARN, f"arn:aws:iam::{ACCT}:user/*", ALICE.arn, F),
    c("ArnNotLike-no-match", "ArnNotLike", PARN, f"arn:aws:iam::{ACCT}:user/*", APP.arn, T),
    c("ArnNotLike-missing", "ArnNotLike", PARN, "arn:*", MISSING, T),
    # Null: true means the key must be absent
    c("Null-true-absent", "Null", EC_DEPT, "true", MISSING, T),
    c("Null-true-present", "Null", EC_DEPT, "true", "IT", F),
    c("Null-false-present", "Null", EC_DEPT, False, "IT", T),
    c("Null-false-absent", "Null", EC_DEPT, "false", MISSING, F),
    c("Null-true-empty-list", "Null", EC_KEYS, "true", [], T),
    # ...IfExists: a missing key makes the condition true
    c("StringEqualsIfExists-missing", "StringEqualsIfExists", VIA, EC2, MISSING, T),
    c("StringEqualsIfExists-mismatch", "StringEqualsIfExists", VIA, EC2, "s3.amazonaws.com", F),
    c("StringEqualsIfExists-match", "StringEqualsIfExists", VIA, EC2, EC2, T),
    c("StringNotEqualsIfExists-equal", "StringNotEqualsIfExists", VIA, EC2, EC2, F),
    c("NumericLessThanIfExists-missing", "NumericLessThanIfExists", DAYS, 10, MISSING, T),
    c("DateGreaterThanIfExists-missing", "DateGreaterThanIfExists", TIME, "2030-01-01", MISSING, T),
    c("BoolIfExists-missing", "BoolIfExists", TLS, "true", MISSING, T),
    c("BoolIfExists-present-false", "BoolIfExists", TLS, "true", False, F),
    c("IpAddressIfExists-outside", "IpAddressIfExists", IP, "10.0.0.0/8", "127.0.0.1", F),
    c("ArnLikeIfExists-missing", "ArnLikeIfExists", PARN, "arn:x", MISSING, T),
    # Set operators on multivalued keys
    c("ForAnyValue-one-matches", "ForAnyValue:StringEquals", EC_KEYS, "dept", ["proj", "dept"], T),
    c("ForAnyValue-none-match", "ForAnyValue:StringEquals", EC_KEYS, "dept", ["proj"], F),
    c("ForAnyValue-missing-false", "ForAnyValue:StringEquals", EC_KEYS, "dept", MISSING, F),
    c("ForAnyValue-empty-false", "ForAnyValue:StringEquals", EC_KEYS, "dept", [], F),
    c("ForAnyValue-IfExists-missing", "ForAnyValue:StringEqualsIfExists", EC_KEYS, "d", MISSING, T),
    c("ForAllValues-subset", "ForAllValues:StringEquals", EC_KEYS, ["dept", "proj"], ["dept"], T),
    c(
        "ForAllValues-extra-value",
        "ForAllValues:StringEquals",
        EC_KEYS,
        ["dept", "proj"],
        ["dept", "owner"],
        F,
    ),
    c("ForAllValues-missing-true", "ForAllValues:StringEquals", EC_KEYS, "dept", MISSING, T),
    c("ForAllValues-empty-true", "ForAllValues:StringEquals", EC_KEYS, "dept", [], T),
    c(
        "ForAllValues-StringLike-TagKeys",
        "ForAllValues:StringLike",
        "aws:TagKeys",
        "Created*",
        ["CreatedBy", "CreatedAt"],
        T,
    ),
    c(
        "ForAnyValue-StringLike-ResourceAliases",
        "ForAnyValue:StringLike",
        "kms:ResourceAliases",
        "alias/*Test*",
        ["alias/prod", "alias/my-Test-key"],
        T,
    ),
    c(
        "ForAllValues-StringLike-ResourceAliases",
        "ForAllValues:StringLike",
        "kms:ResourceAliases",
        "alias/*Test*",
        ["alias/prod", "alias/my-Test-key"],
        F,
    ),
    c(
        "ForAllValues-StringNotLike-other",
        "ForAllValues:StringNotLike",
        "aws:TagKeys",
        "key1*",
        ["key2"],
        T,
    ),
    c(
        "ForAllValues-StringNotLike-hit",
        "ForAllValues:StringNotLike",
        "aws:TagKeys",
        "key1*",
        ["key1legal"],
        F,
    ),
    c(
        "ForAllValues-StringNotLike-missing",
        "ForAllValues:StringNotLike",
        "aws:TagKeys",
        "key1*",
        MISSING,
        T,
    ),
    c(
        "ForAnyValue-StringNotEquals-some-other",
        "ForAnyValue:StringNotEquals",
        "kms:GrantOperations",
        "Decrypt",
        ["Decrypt", "Encrypt"],
        T,
    ),
    c(
        "ForAnyValue-StringNotEquals-all-equal",
        "ForAnyValue:StringNotEquals",
        "kms:GrantOperations",
        "Decrypt",
        ["Decrypt"],
        F,
    ),
    c(
        "ForAllValues-GrantOperations-in-set",
        "ForAllValues:StringEquals",
        "kms:GrantOperations",
        ["Decrypt", "GenerateDataKey", "Encrypt"],
        ["Decrypt", "GenerateDataKey"],
        T,
    ),
    c("plain-operator-on-list-any", "StringEquals", "aws:TagKeys", "env", ["owner", "env"], T),
    c("plain-negated-on-list-none", "StringNotEquals", "aws:TagKeys", "env", ["owner", "env"], F),
    c(
        "set-operator-on-scalar",
        "ForAnyValue:StringEquals",
        "kms:KeySpec",
        "RSA_2048",
        "RSA_2048",
        T,
    ),
    # AND across operators and keys
    cx(
        "two-operators-AND-true",
        {"StringEquals": {CALLER: ACCT}, "Bool": {TLS: "true"}},
        {CALLER: ACCT, TLS: True},
        T,
    ),
    cx(
        "two-operators-AND-false",
        {"StringEquals": {CALLER: ACCT}, "Bool": {TLS: "true"}},
        {CALLER: ACCT, TLS: False},
        F,
    ),
    cx(
        "two-keys-AND-true", {"StringEquals": {CALLER: ACCT, VIA: EC2}}, {CALLER: ACCT, VIA: EC2}, T
    ),
    cx("two-keys-AND-false", {"StringEquals": {CALLER: ACCT, VIA: EC2}}, {CALLER: ACCT}, F),
    cx("empty-condition-block", {}, {}, T),
    # The remaining KMS / global keys the service puts in the context
    c("aws:PrincipalAccount", "StringEquals", "aws:PrincipalAccount", ACCT, ACCT, T),
    c("kms:GranteePrincipal", "StringEquals", "kms:GranteePrincipal", APP.arn, APP.arn, T),
    c("kms:GranteePrincipal-other", "StringEquals", "kms:GranteePrincipal", APP.arn, BOB.arn, F),
    c(
        "kms:RetiringPrincipal",
        "ArnLike",
        "kms:RetiringPrincipal",
        f"arn:aws:iam::{ACCT}:*",
        APP.arn,
        T,
    ),
    c("kms:EncryptionContext-pair", "StringEquals", EC_DEPT, "IT", "IT", T),
    c("kms:EncryptionContext-value-case", "StringEquals", EC_DEPT, "it", "IT", F),
    cx(
        "kms:EncryptionContext-key-name-case",
        {"StringEquals": {EC_DEPT: "IT"}},
        {"kms:EncryptionContext:Dept": "IT"},
        T,
    ),
    cx(
        "kms:EncryptionContext-other-pair",
        {"StringEquals": {EC_DEPT: "IT"}},
        {"kms:EncryptionContext:project": "IT"},
        F,
    ),
    cx(
        "kms:EncryptionContext-keys-differing-in-case",
        {"StringEquals": {EC_DEPT: "b"}},
        {EC_DEPT: "a", "kms:EncryptionContext:DEPT": "b"},
        T,
    ),
    c("aws:ResourceTag", "StringEquals", "aws:ResourceTag/Project", "Alpha", "Alpha", T),
    c("aws:ResourceTag-other", "StringEquals", "aws:ResourceTag/Project", "Alpha", "Beta", F),
    c("aws:RequestTag", "StringEquals", "aws:RequestTag/env", "prod", "prod", T),
    c(
        "kms:EncryptionAlgorithm",
        "StringEquals",
        "kms:EncryptionAlgorithm",
        "RSAES_OAEP_SHA_256",
        "SYMMETRIC_DEFAULT",
        F,
    ),
    c("kms:KeyUsage", "StringEquals", "kms:KeyUsage", "ENCRYPT_DECRYPT", "ENCRYPT_DECRYPT", T),
    c("kms:KeyOrigin", "StringEquals", "kms:KeyOrigin", "EXTERNAL", "AWS_KMS", F),
]


@pytest.mark.parametrize(("condition", "context", "expected"), CONDITION_CASES)
def test_condition(condition: Doc, context: dict[str, ConditionValue], expected: bool) -> None:
    decision = evaluate(policy(allow(Condition=condition)), request(context=context))
    assert decision is (Decision.ALLOW if expected else Decision.IMPLICIT_DENY)


# --------------------------------------------------------------------------- actions, resources


def m(case_id: str, statement: Doc, req: AccessRequest, expected: Decision) -> Any:
    return pytest.param([statement], req, expected, id=case_id)


ALIAS_DOT = f"arn:aws:kms:us-east-1:{ACCT}:alias/a.b"
ALIAS_PLUS = f"arn:aws:kms:us-east-1:{ACCT}:alias/a+b"
A, D, NO = Decision.ALLOW, Decision.EXPLICIT_DENY, Decision.IMPLICIT_DENY

MATCH_CASES = [
    m("action-exact", allow(action="kms:Encrypt"), request(), A),
    m("action-case-insensitive", allow(action="KMS:encrypt"), request(), A),
    m("action-star", allow(action="*"), request(), A),
    m("action-service-star", allow(action="kms:*"), request(), A),
    m("action-prefix-star", allow(action="kms:Describe*"), request(action="kms:DescribeKey"), A),
    m("action-prefix-star-other", allow(action="kms:Describe*"), request(action="kms:Decrypt"), NO),
    m("action-question", allow(action="kms:Get?eyPolicy"), request(action="kms:GetKeyPolicy"), A),
    m(
        "action-question-other",
        allow(action="kms:Get?eyPolicy"),
        request(action="kms:GetKeyRotationStatus"),
        NO,
    ),
    m("action-list", allow(action=["kms:Decrypt", "kms:Encrypt"]), request(), A),
    m("action-other-service", allow(action="s3:*"), request(), NO),
    m("action-no-substring", allow(action="kms:Encrypt"), request(action="kms:ReEncryptFrom"), NO),
    m(
        "NotAction-other",
        {"Effect": "Allow", "NotAction": "kms:Decrypt", "Resource": "*"},
        request(),
        A,
    ),
    m(
        "NotAction-listed",
        {"Effect": "Allow", "NotAction": "kms:Encrypt", "Resource": "*"},
        request(),
        NO,
    ),
    m("resource-exact", allow(Resource=KEY), request(), A),
    m("resource-case-sensitive", allow(Resource=KEY.upper()), request(), NO),
    m("resource-wildcards", allow(Resource=f"arn:aws:kms:*:{ACCT}:key/*"), request(), A),
    m("resource-other-key", allow(Resource=OTHER_KEY), request(), NO),
    m(
        "resource-dot-literal",
        allow(Resource=ALIAS_DOT),
        request(resource=ALIAS_DOT.replace("a.b", "aXb")),
        NO,
    ),
    m("resource-dot-matches-itself", allow(Resource=ALIAS_DOT), request(resource=ALIAS_DOT), A),
    m(
        "resource-plus-literal",
        allow(Resource=ALIAS_PLUS),
        request(resource=ALIAS_PLUS.replace("a+b", "aab")),
        NO,
    ),
    m("resource-plus-matches-itself", allow(Resource=ALIAS_PLUS), request(resource=ALIAS_PLUS), A),
    m("resource-list", allow(Resource=[OTHER_KEY, KEY]), request(), A),
    m(
        "NotResource-other",
        {"Effect": "Allow", "Action": "*", "NotResource": OTHER_KEY},
        request(),
        A,
    ),
    m("NotResource-listed", {"Effect": "Allow", "Action": "*", "NotResource": KEY}, request(), NO),
    m("no-resource-element", {"Effect": "Allow", "Action": "kms:*"}, request(), A),
    m("deny-only", deny(), request(), D),
    m("principal-account-covers-its-users", allow(aws(ROOT)), request(), A),
    m("principal-other-user", allow(aws(BOB)), request(), NO),
    m("principal-other-account", allow(aws(OTHER_ROOT)), request(), NO),
]


@pytest.mark.parametrize(("statements", "req", "expected"), MATCH_CASES)
def test_matching(statements: list[Doc], req: AccessRequest, expected: Decision) -> None:
    assert evaluate(policy(*statements), req) is expected


def test_deny_beats_allow_within_one_policy() -> None:
    assert (
        evaluate(policy(allow(), deny(action="kms:Encrypt")), request()) is Decision.EXPLICIT_DENY
    )
    assert evaluate(policy(allow(), deny(action="kms:Decrypt")), request()) is Decision.ALLOW


# --------------------------------------------------------------------------- authorize


NO_IDENTITY = "no identity-based policy allows the kms:Encrypt action"
NO_RESOURCE = "no resource-based policy allows the kms:Encrypt action"
DENY_RESOURCE = "an explicit deny in a resource-based policy"
DENY_IDENTITY = "an explicit deny in an identity-based policy"
OK = ""


def az(
    case_id: str,
    key_statements: list[Doc],
    identity: list[list[Doc]],
    req: AccessRequest,
    reason: str,
) -> Any:
    return pytest.param(key_statements, identity, req, reason, id=case_id)


def from_other(principal: Principal, **context: ConditionValue) -> AccessRequest:
    return request(principal=principal, context=dict(context))


SENDS_VIA_EC2 = {"StringEquals": {"kms:ViaService": "ec2.us-east-1.amazonaws.com"}}

AUTHORIZE_CASES = [
    az("default-policy-needs-iam", [ROOT_DELEGATION], [], request(), NO_IDENTITY),
    az("default-policy-iam-allows", [ROOT_DELEGATION], [[IAM_ALLOW_ALL]], request(), OK),
    az(
        "default-policy-iam-other-action",
        [ROOT_DELEGATION],
        [[allow(action="kms:Decrypt")]],
        request(),
        NO_IDENTITY,
    ),
    az(
        "default-policy-iam-denies",
        [ROOT_DELEGATION],
        [[IAM_ALLOW_ALL, deny()]],
        request(),
        DENY_IDENTITY,
    ),
    az("default-policy-root-needs-no-iam", [ROOT_DELEGATION], [], request(ROOT), OK),
    az("bare-account-id-is-root", [allow(aws(ACCT))], [[IAM_ALLOW_ALL]], request(), OK),
    az("bare-account-id-delegates-only", [allow(aws(ACCT))], [], request(), NO_IDENTITY),
    az(
        "no-root-statement-iam-allow-ineffective",
        [allow(aws(BOB))],
        [[IAM_ALLOW_ALL]],
        request(),
        NO_RESOURCE,
    ),
    az(
        "no-root-statement-iam-deny-effective",
        [allow(aws(ALICE))],
        [[deny()]],
        request(),
        DENY_IDENTITY,
    ),
    az("empty-identity-policies-no-root", [allow(aws(BOB))], [], request(), NO_RESOURCE),
    az("user-named-directly", [allow(aws(ALICE))], [], request(), OK),
    az("role-named-directly", [allow(aws(APP))], [], request(APP), OK),
    az("assumed-role-session-matches-role", [allow(aws(APP))], [], request(APP_SESSION), OK),
    az("other-user-not-covered", [allow(aws(BOB))], [], request(), NO_RESOURCE),
    az(
        "key-policy-deny-user",
        [ROOT_DELEGATION, deny(aws(ALICE))],
        [[IAM_ALLOW_ALL]],
        request(),
        DENY_RESOURCE,
    ),
    az(
        "key-policy-deny-account-covers-users",
        [allow(aws(ALICE)), deny(aws(ROOT))],
        [],
        request(),
        DENY_RESOURCE,
    ),
    az(
        "key-policy-deny-other-action",
        [allow(aws(ALICE)), deny(aws(ALICE), "kms:Decrypt")],
        [],
        request(),
        OK,
    ),
    az(
        "both-deny-resource-reported",
        [ROOT_DELEGATION, deny("*")],
        [[deny()]],
        request(),
        DENY_RESOURCE,
    ),
    az(
        "star-with-caller-account",
        [allow("*", Condition={"StringEquals": {"kms:CallerAccount": ACCT}})],
        [],
        from_other(ALICE, **{"kms:CallerAccount": ACCT}),
        OK,
    ),
    az(
        "star-with-wrong-caller-account",
        [allow("*", Condition={"StringEquals": {"kms:CallerAccount": ACCT}})],
        [],
        from_other(ALICE, **{"kms:CallerAccount": OTHER}),
        NO_RESOURCE,
    ),
    az("aws-star", [allow(aws("*"))], [], request(BOB), OK),
    az("key-policy-action-subset", [allow(aws(ALICE), "kms:Decrypt")], [], request(), NO_RESOURCE),
    az(
        "conditional-key-policy-met",
        [allow(aws(ALICE), Condition=SENDS_VIA_EC2)],
        [],
        from_other(ALICE, **{"kms:ViaService": "ec2.us-east-1.amazonaws.com"}),
        OK,
    ),
    az(
        "conditional-key-policy-unmet",
        [allow(aws(ALICE), Condition=SENDS_VIA_EC2)],
        [],
        request(),
        NO_RESOURCE,
    ),
    az(
        "one-of-several-iam-allows",
        [ROOT_DELEGATION],
        [[], [allow(action="kms:Encrypt")]],
        request(),
        OK,
    ),
    az(
        "one-of-several-iam-denies",
        [ROOT_DELEGATION],
        [[IAM_ALLOW_ALL], [deny(action="kms:En*")]],
        request(),
        DENY_IDENTITY,
    ),
    az(
        "iam-deny-other-resource",
        [ROOT_DELEGATION],
        [[IAM_ALLOW_ALL, deny(Resource=OTHER_KEY)]],
        request(),
        OK,
    ),
    # cross-account (key-policy-modifying-external-accounts)
    az(
        "cross-account-delegated-with-iam",
        [ROOT_DELEGATION, allow(aws(OTHER_ROOT))],
        [[IAM_ALLOW_ALL]],
        request(CAROL),
        OK,
    ),
    az(
        "cross-account-delegated-without-iam",
        [ROOT_DELEGATION, allow(aws(OTHER_ROOT))],
        [],
        request(CAROL),
        NO_IDENTITY,
    ),
    az(
        "cross-account-user-named-without-iam", [allow(aws(CAROL))], [], request(CAROL), NO_IDENTITY
    ),
    az(
        "cross-account-user-named-with-iam",
        [allow(aws(CAROL))],
        [[IAM_ALLOW_ALL]],
        request(CAROL),
        OK,
    ),
    az("cross-account-root-caller", [allow(aws(OTHER))], [], request(OTHER_ROOT), OK),
    az(
        "cross-account-not-named", [ROOT_DELEGATION], [[IAM_ALLOW_ALL]], request(CAROL), NO_RESOURCE
    ),
    az("cross-account-star-needs-iam", [allow("*")], [], request(CAROL), NO_IDENTITY),
    # service principals
    az("service-principal-named", [allow({"Service": "s3.amazonaws.com"})], [], request(S3), OK),
    az(
        "service-principal-list",
        [allow({"Service": ["ec2.amazonaws.com", "s3.amazonaws.com"]})],
        [],
        request(S3),
        OK,
    ),
    az("service-principal-not-root", [ROOT_DELEGATION], [], request(S3), NO_RESOURCE),
    az(
        "service-principal-other-service",
        [allow({"Service": "ec2.amazonaws.com"})],
        [],
        request(S3),
        NO_RESOURCE,
    ),
    az("service-principal-star", [allow("*")], [], request(S3), OK),
    az(
        "user-not-service",
        [allow({"Service": "s3.amazonaws.com"})],
        [[IAM_ALLOW_ALL]],
        request(),
        NO_RESOURCE,
    ),
    # NotPrincipal (reference_policies_elements_notprincipal)
    az(
        "NotPrincipal-deny-exempts-user-and-account",
        [ROOT_DELEGATION, {**deny(), "NotPrincipal": aws(BOB, ROOT)}],
        [[IAM_ALLOW_ALL]],
        request(BOB),
        OK,
    ),
    az(
        "NotPrincipal-deny-hits-others",
        [ROOT_DELEGATION, {**deny(), "NotPrincipal": aws(BOB, ROOT)}],
        [[IAM_ALLOW_ALL]],
        request(),
        DENY_RESOURCE,
    ),
    az(
        "NotPrincipal-deny-user-without-account",
        [ROOT_DELEGATION, {**deny(), "NotPrincipal": aws(BOB)}],
        [[IAM_ALLOW_ALL]],
        request(BOB),
        DENY_RESOURCE,
    ),
    az(
        "NotPrincipal-deny-exempts-root",
        [ROOT_DELEGATION, {**deny(), "NotPrincipal": aws(ROOT)}],
        [],
        request(ROOT),
        OK,
    ),
    az(
        "NotPrincipal-allow-others",
        [{**allow(), "NotPrincipal": aws(BOB, ROOT)}],
        [],
        request(),
        OK,
    ),
    az(
        "NotPrincipal-allow-excluded",
        [{**allow(), "NotPrincipal": aws(BOB, ROOT)}],
        [],
        request(BOB),
        NO_RESOURCE,
    ),
]


@pytest.mark.parametrize(("key_statements", "identity", "req", "reason"), AUTHORIZE_CASES)
def test_authorize(
    key_statements: list[Doc], identity: list[list[Doc]], req: AccessRequest, reason: str
) -> None:
    identity_policies = [policy(*p) if p else Policy(()) for p in identity]
    outcome = authorize(policy(*key_statements), identity_policies, req)
    assert outcome == Outcome(reason == OK, reason)


def test_the_default_key_policy_text_delegates_to_iam() -> None:
    key_policy = parse_policy(default_key_policy(ACCT))
    assert not authorize(key_policy, [], request()).allowed
    assert authorize(key_policy, [policy(IAM_ALLOW_ALL)], request()).allowed


@pytest.mark.parametrize(
    ("outcome", "req", "text"),
    [
        pytest.param(
            Outcome(False, "no resource-based policy allows the kms:Encrypt action"),
            request(),
            f"User: {ALICE.arn} is not authorized to perform: kms:Encrypt on resource: {KEY} "
            "because no resource-based policy allows the kms:Encrypt action",
            id="message-no-resource-policy",
        ),
        pytest.param(
            Outcome(False, "no identity-based policy allows the kms:Decrypt action"),
            request(action="kms:Decrypt"),
            f"User: {ALICE.arn} is not authorized to perform: kms:Decrypt on resource: {KEY} "
            "because no identity-based policy allows the kms:Decrypt action",
            id="message-no-identity-policy",
        ),
        pytest.param(
            Outcome(False, DENY_RESOURCE),
            request(),
            f"User: {ALICE.arn} is not authorized to perform: kms:Encrypt on resource: {KEY} "
            "with an explicit deny in a resource-based policy",
            id="message-deny-resource-policy",
        ),
        pytest.param(
            Outcome(False, DENY_IDENTITY),
            request(CAROL),
            f"User: {CAROL.arn} is not authorized to perform: kms:Encrypt on resource: {KEY} "
            "with an explicit deny in an identity-based policy",
            id="message-deny-identity-policy",
        ),
        pytest.param(Outcome(True, ""), request(), "", id="message-allowed-empty"),
    ],
)
def test_access_denied_message(outcome: Outcome, req: AccessRequest, text: str) -> None:
    assert outcome.message(req) == text


def test_authorize_reports_the_action_of_the_request() -> None:
    req = request(action="kms:GenerateDataKey")
    outcome = authorize(policy(ROOT_DELEGATION), [], req)
    assert outcome.decision is Decision.IMPLICIT_DENY
    assert outcome.message(req).endswith(
        "because no identity-based policy allows the kms:GenerateDataKey action"
    )


# --------------------------------------------------------------------------- grammar


def statement_doc(**fields: Any) -> str:
    return json.dumps({"Statement": [{"Effect": "Allow", "Action": "kms:*", **fields}]})


def bad(case_id: str, text: str, message: str) -> Any:
    return pytest.param(text, message, id=case_id)


PARSE_ERRORS = [
    bad("not-json", "{", "The policy is not valid JSON."),
    bad("json-nan", '{"Statement": NaN}', "The policy is not valid JSON."),
    bad("array", "[]", "The policy must be a JSON object with a Statement."),
    bad(
        "no-statement",
        '{"Version": "2012-10-17"}',
        "The policy must be a JSON object with a Statement.",
    ),
    bad(
        "empty-statement-list",
        '{"Statement": []}',
        "The policy must be a JSON object with a Statement.",
    ),
    bad(
        "statement-string",
        '{"Statement": "x"}',
        "The policy must be a JSON object with a Statement.",
    ),
    bad("statement-item-not-object", '{"Statement": [1]}', "Each statement must be a JSON object."),
    bad(
        "bad-version",
        '{"Version": "2020-01-01", "Statement": {"Effect": "Allow", "Action": "*"}}',
        "The policy Version must be 2012-10-17 or 2008-10-17.",
    ),
    bad(
        "unknown-top-element",
        '{"Statment": [], "Statement": {"Effect": "Allow", "Action": "*"}}',
        "The policy has an unsupported element: Statment.",
    ),
    bad(
        "id-not-string",
        '{"Id": 1, "Statement": {"Effect": "Allow", "Action": "*"}}',
        "The policy Id must be a string.",
    ),
    bad(
        "unknown-statement-element",
        statement_doc(Resources="*"),
        "Policy statement has an unsupported element: Resources.",
    ),
    bad(
        "effect-lowercase",
        statement_doc(Effect="allow"),
        "Policy statement Effect must be Allow or Deny.",
    ),
    bad(
        "effect-missing",
        json.dumps({"Statement": {"Action": "*"}}),
        "Policy statement Effect must be Allow or Deny.",
    ),
    bad("sid-not-string", statement_doc(Sid=3), "Policy statement Sid must be a string."),
    bad(
        "no-action",
        json.dumps({"Statement": {"Effect": "Allow", "Resource": "*"}}),
        "A statement must have an Action or NotAction element.",
    ),
    bad(
        "action-and-notaction",
        statement_doc(NotAction="kms:Decrypt"),
        "A statement cannot have both Action and NotAction.",
    ),
    bad(
        "principal-and-notprincipal",
        statement_doc(Principal="*", NotPrincipal="*"),
        "A statement cannot have both Principal and NotPrincipal.",
    ),
    bad(
        "resource-and-notresource",
        statement_doc(Resource="*", NotResource="*"),
        "A statement cannot have both Resource and NotResource.",
    ),
    bad("action-number", statement_doc(Action=5), INVALID_ACTIONS),
    bad("action-empty-list", statement_doc(Action=[]), INVALID_ACTIONS),
    bad("action-without-service", statement_doc(Action="Encrypt"), INVALID_ACTIONS),
    bad(
        "resource-number",
        statement_doc(Resource=1),
        "The Resource element must be a string or a list of strings.",
    ),
    bad("principal-short-account", statement_doc(Principal={"AWS": "1234"}), INVALID_PRINCIPALS),
    bad(
        "principal-wildcard-arn",
        statement_doc(Principal={"AWS": f"arn:aws:iam::{ACCT}:user/*"}),
        INVALID_PRINCIPALS,
    ),
    bad("principal-unknown-type", statement_doc(Principal={"Human": "alice"}), INVALID_PRINCIPALS),
    bad("principal-empty-object", statement_doc(Principal={}), INVALID_PRINCIPALS),
    bad("principal-plain-string", statement_doc(Principal="alice"), INVALID_PRINCIPALS),
    bad(
        "principal-service-wildcard",
        statement_doc(Principal={"Service": "*.amazonaws.com"}),
        INVALID_PRINCIPALS,
    ),
    bad(
        "condition-not-object",
        statement_doc(Condition=[]),
        "The Condition element must be an object.",
    ),
    bad(
        "condition-block-not-object",
        statement_doc(Condition={"StringEquals": "x"}),
        "Condition StringEquals must map condition keys to values.",
    ),
    bad(
        "unknown-operator",
        statement_doc(Condition={"StringEqualz": {"k": "v"}}),
        "Condition operator StringEqualz is not supported.",
    ),
    bad(
        "unknown-set-operator",
        statement_doc(Condition={"ForSomeValues:StringEquals": {"k": "v"}}),
        "Condition operator ForSomeValues:StringEquals is not supported.",
    ),
    bad(
        "null-if-exists",
        statement_doc(Condition={"NullIfExists": {"k": "true"}}),
        "Condition operator NullIfExists is not supported.",
    ),
    bad(
        "numeric-bad-value",
        statement_doc(Condition={"NumericEquals": {"k": "ten"}}),
        "Condition NumericEquals has an invalid value for key k.",
    ),
    bad(
        "date-bad-value",
        statement_doc(Condition={"DateLessThan": {"k": "yesterday"}}),
        "Condition DateLessThan has an invalid value for key k.",
    ),
    bad(
        "ip-bad-value",
        statement_doc(Condition={"IpAddress": {"k": "10.0.0.300/8"}}),
        "Condition IpAddress has an invalid value for key k.",
    ),
    bad(
        "bool-bad-value",
        statement_doc(Condition={"Bool": {"k": "yes"}}),
        "Condition Bool has an invalid value for key k.",
    ),
    bad(
        "null-bad-value",
        statement_doc(Condition={"Null": {"k": "maybe"}}),
        "Condition Null has an invalid value for key k.",
    ),
    bad(
        "condition-value-object",
        statement_doc(Condition={"StringEquals": {"k": {"a": 1}}}),
        "Condition StringEquals has an invalid value for key k.",
    ),
    bad(
        "date-epoch-out-of-range",
        statement_doc(Condition={"DateLessThan": {"k": 10**20}}),
        "Condition DateLessThan has an invalid value for key k.",
    ),
]


@pytest.mark.parametrize(("text", "message"), PARSE_ERRORS)
def test_parse_errors(text: str, message: str) -> None:
    with pytest.raises(MalformedPolicyDocumentError) as refused:
        parse_policy(text)
    assert refused.value.message == message


def test_parse_accepts_the_shapes_aws_allows() -> None:
    parsed = parse_policy(
        json.dumps(
            {
                "Version": "2008-10-17",
                "Id": "key-consolepolicy-3",
                "Statement": {
                    "Sid": "one",
                    "Effect": "Deny",
                    "Principal": {
                        "AWS": [ACCT, ROOT.arn, ALICE.arn],
                        "Service": "S3.amazonaws.com",
                    },
                    "NotAction": ["kms:Describe*"],
                    "NotResource": KEY,
                    "Condition": {"ForAnyValue:StringLikeIfExists": {"aws:TagKeys": ["a*", 1]}},
                },
            }
        )
    )
    (statement,) = parsed.statements
    assert (parsed.version, parsed.id, statement.sid) == (
        "2008-10-17",
        "key-consolepolicy-3",
        "one",
    )
    assert statement.principals is not None
    assert statement.principals.accounts == {ACCT}
    assert statement.principals.arns == {ALICE.arn}
    assert statement.principals.services == {"s3.amazonaws.com"}
    (condition,) = statement.conditions
    assert (condition.qualifier, condition.test, condition.if_exists) == (
        "ForAnyValue",
        "StringLike",
        True,
    )
    assert condition.values == ("a*", "1")


# --------------------------------------------------------------------------- key policy checks


def everyone_known(_arn: str) -> bool:
    return True


def key_doc(*statements: Doc, pad_to: int = 0) -> str:
    document = {"Version": "2012-10-17", "Id": "", "Statement": list(statements)}
    text = json.dumps(document, ensure_ascii=False)
    if pad_to:
        text = text.replace('"Id": ""', '"Id": "' + "x" * (pad_to - len(text)) + '"')
        assert len(text.encode("utf-8")) == pad_to
    return text


def test_a_key_policy_of_exactly_32_kb_is_accepted() -> None:
    parsed = validate_key_policy(
        key_doc(ROOT_DELEGATION, pad_to=32768), known_principal=everyone_known
    )
    assert len(parsed.statements) == 1


def test_a_key_policy_over_32_kb_is_refused_as_a_quota() -> None:
    with pytest.raises(LimitExceededError) as refused:
        validate_key_policy(key_doc(ROOT_DELEGATION, pad_to=32769), known_principal=everyone_known)
    assert "32768 bytes" in refused.value.message


def test_the_size_limit_counts_utf8_bytes_not_characters() -> None:
    text = key_doc({**ROOT_DELEGATION, "Sid": "é" * 16384})
    assert len(text) < 32768 < len(text.encode("utf-8"))
    with pytest.raises(LimitExceededError):
        validate_key_policy(text, known_principal=everyone_known)


KEY_POLICY_ERRORS = [
    bad(
        "no-principal",
        key_doc(allow()),
        "A key policy statement must have a Principal or NotPrincipal element.",
    ),
    bad("non-kms-action", key_doc(allow(aws(ROOT), "s3:GetObject")), INVALID_ACTIONS),
    bad(
        "non-kms-action-in-list",
        key_doc(allow(aws(ROOT), ["kms:Encrypt", "iam:*"])),
        INVALID_ACTIONS,
    ),
    bad("unknown-user", key_doc(allow(aws(f"arn:aws:iam::{ACCT}:user/ghost"))), INVALID_PRINCIPALS),
    bad(
        "unknown-in-NotPrincipal",
        key_doc({**deny(), "NotPrincipal": aws(ROOT, f"arn:aws:iam::{ACCT}:role/ghost")}),
        INVALID_PRINCIPALS,
    ),
    bad(
        "ForAllValues-encryption-context",
        key_doc(
            allow(
                aws(ROOT),
                Condition={"ForAllValues:StringEquals": {"kms:EncryptionContext:dept": "IT"}},
            )
        ),
        "OverlyPermissiveCondition: Using the ForAllValues set operator with a single-valued "
        "condition key matches requests without the specified encryption context or with an "
        "unspecified encryption context. To fix, remove ForAllValues.",
    ),
    bad(
        "ForAllValues-request-tag",
        key_doc(
            allow(
                aws(ROOT), Condition={"ForAllValues:StringEquals": {"aws:RequestTag/env": "prod"}}
            )
        ),
        "OverlyPermissiveCondition: Using the ForAllValues set operator with a single-valued "
        "condition key matches requests without the specified tag or with an unspecified tag. "
        "To fix, remove ForAllValues.",
    ),
    bad(
        "grammar-still-checked",
        key_doc(allow(aws(ROOT), Effect="Permit")),
        "Policy statement Effect must be Allow or Deny.",
    ),
]


@pytest.mark.parametrize(("text", "message"), KEY_POLICY_ERRORS)
def test_key_policy_errors(text: str, message: str) -> None:
    def known(arn: str) -> bool:
        return not arn.endswith("ghost")

    with pytest.raises(MalformedPolicyDocumentError) as refused:
        validate_key_policy(text, known_principal=known)
    assert refused.value.message == message


def test_only_user_and_role_arns_are_looked_up() -> None:
    asked: list[str] = []

    def known(arn: str) -> bool:
        asked.append(arn)
        return True

    text = key_doc(
        allow(aws(ROOT, ACCT, "*", ALICE)),
        allow({"Service": "s3.amazonaws.com"}),
        allow(aws(APP), "kms:Describe*", Condition={"ForAnyValue:StringEquals": {EC_KEYS: "a"}}),
    )
    assert len(validate_key_policy(text, known_principal=known).statements) == 3
    assert sorted(asked) == sorted([ALICE.arn, APP.arn])


def test_the_default_key_policy_is_valid() -> None:
    validate_key_policy(default_key_policy(ACCT), known_principal=lambda _arn: False)


# --------------------------------------------------------------------------- lockout


def lock(
    case_id: str,
    statements: list[Doc],
    principal: Principal,
    expected: bool,
    may_use_iam: bool = True,
    **options: Any,
) -> Any:
    return pytest.param(statements, principal, may_use_iam, options, expected, id=case_id)


ADMIN_ONLY_OVER_TLS = allow(aws(ALICE), Condition={"Bool": {"aws:SecureTransport": "true"}})

LOCKOUT_CASES = [
    lock("default-policy-delegates", [ROOT_DELEGATION], ALICE, False),
    lock("default-policy-without-iam", [ROOT_DELEGATION], ALICE, True, may_use_iam=False),
    lock("default-policy-root", [ROOT_DELEGATION], ROOT, False, may_use_iam=False),
    lock("only-bob-may-admin", [allow(aws(BOB))], ALICE, True),
    lock(
        "caller-named-directly",
        [allow(aws(ALICE), "kms:PutKeyPolicy")],
        ALICE,
        False,
        may_use_iam=False,
    ),
    lock("wildcard-action-pattern", [allow(aws(ALICE), "kms:Put*")], ALICE, False),
    lock("use-only-policy", [allow(aws(ROOT), ["kms:Encrypt", "kms:Decrypt"])], ALICE, True),
    lock("deny-put-key-policy", [ROOT_DELEGATION, deny("*", "kms:PutKeyPolicy")], ALICE, True),
    lock(
        "deny-other-action", [ROOT_DELEGATION, deny("*", "kms:ScheduleKeyDeletion")], ALICE, False
    ),
    lock("resource-means-this-key", [allow(aws(ROOT), Resource=KEY)], ALICE, False),
    lock(
        "resource-checked-with-key-arn",
        [allow(aws(ROOT), Resource=OTHER_KEY)],
        ALICE,
        True,
        key_arn=KEY,
    ),
    lock("resource-matches-key-arn", [allow(aws(ROOT), Resource=KEY)], ALICE, False, key_arn=KEY),
    lock("condition-without-context", [ADMIN_ONLY_OVER_TLS], ALICE, True),
    lock(
        "condition-with-context",
        [ADMIN_ONLY_OVER_TLS],
        ALICE,
        False,
        context={"aws:SecureTransport": True},
    ),
    lock("session-of-named-role", [allow(aws(APP))], APP_SESSION, False, may_use_iam=False),
]


@pytest.mark.parametrize(
    ("statements", "principal", "may_use_iam", "options", "expected"), LOCKOUT_CASES
)
def test_lockout(
    statements: list[Doc],
    principal: Principal,
    may_use_iam: bool,
    options: dict[str, Any],
    expected: bool,
) -> None:
    assert would_lock_out(policy(*statements), principal, may_use_iam, **options) is expected


# --------------------------------------------------------------------------- property


PRINCIPALS = [ROOT, ALICE, BOB, APP, APP_SESSION, OTHER_ROOT, CAROL, S3]
ACTIONS = ["kms:Encrypt", "kms:Decrypt", "kms:PutKeyPolicy", "kms:DescribeKey", "kms:CreateGrant"]
PATTERNS = ["*", "kms:*", "kms:Encrypt", "kms:De*", "kms:?ncrypt", "kms:Put*", "s3:*"]
RESOURCES = ["*", KEY, OTHER_KEY, f"arn:aws:kms:*:{ACCT}:key/*"]
CONDITIONS: list[Doc] = [
    {},
    {"StringEquals": {"kms:CallerAccount": ACCT}},
    {"StringNotEquals": {"kms:ViaService": "ec2.us-east-1.amazonaws.com"}},
    {"Bool": {"aws:SecureTransport": "true"}},
    {"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}},
    {"ForAllValues:StringEquals": {EC_KEYS: ["a", "b"]}},
    {"ForAnyValue:StringEquals": {EC_KEYS: "a"}},
    {"Null": {"kms:EncryptionContext:a": "false"}},
    {"DateLessThan": {"aws:CurrentTime": "2026-06-01T00:00:00Z"}},
]
PRINCIPAL_ELEMENTS: list[Any] = [
    "*",
    aws("*"),
    aws(ROOT),
    aws(ACCT),
    aws(OTHER_ROOT),
    aws(ALICE),
    aws(APP, CAROL),
    {"Service": "s3.amazonaws.com"},
]


def random_statement(rng: random.Random, with_principal: bool) -> Doc:
    statement: Doc = {
        "Effect": rng.choice(["Allow", "Allow", "Deny"]),
        rng.choice(["Action", "Action", "NotAction"]): rng.sample(PATTERNS, rng.randint(1, 2)),
        rng.choice(["Resource", "Resource", "NotResource"]): rng.choice(RESOURCES),
    }
    if condition := rng.choice(CONDITIONS):
        statement["Condition"] = condition
    if with_principal:
        key = rng.choice(["Principal"] * 5 + ["NotPrincipal"])
        statement[key] = rng.choice(PRINCIPAL_ELEMENTS)
    return statement


def random_request(rng: random.Random) -> AccessRequest:
    principal = rng.choice(PRINCIPALS)
    context: dict[str, ConditionValue] = {
        "kms:CallerAccount": principal.account,
        "aws:CurrentTime": NOW,
        "aws:SecureTransport": rng.choice([True, False]),
        "aws:SourceIp": rng.choice(["10.1.2.3", "203.0.113.9"]),
    }
    if rng.random() < 0.5:
        keys = rng.sample(["a", "b", "c"], rng.randint(0, 3))
        context[EC_KEYS] = keys
        context.update({f"kms:EncryptionContext:{k}": "v" for k in keys})
    return AccessRequest(
        principal, rng.choice(ACTIONS), rng.choice([KEY, OTHER_KEY]), ACCT, context
    )


def random_setup(rng: random.Random) -> tuple[list[Doc], list[list[Doc]], AccessRequest]:
    key_statements = [random_statement(rng, True) for _ in range(rng.randint(1, 4))]
    identity = [
        [random_statement(rng, False) for _ in range(rng.randint(1, 3))]
        for _ in range(rng.randint(0, 2))
    ]
    return key_statements, identity, random_request(rng)


def decide(key: list[Doc], identity: list[list[Doc]], req: AccessRequest) -> Outcome:
    return authorize(policy(*key), [policy(*p) for p in identity], req)


def matching_deny(
    rng: random.Random, req: AccessRequest
) -> Callable[[list[Doc], list[list[Doc]]], None]:
    def into_key_policy(key: list[Doc], _identity: list[list[Doc]]) -> None:
        principal = "*" if req.principal.is_service else aws(req.principal)
        key.append(deny(principal, req.action.upper(), Resource=req.resource))

    def into_identity(_key: list[Doc], identity: list[list[Doc]]) -> None:
        identity.append([deny(None, "kms:*", Resource=req.resource)])

    return rng.choice([into_key_policy, into_identity])


def test_a_matching_deny_is_never_allowed() -> None:
    rng = random.Random(20260101)
    allowed_before = 0
    for _ in range(500):
        key, identity, req = random_setup(rng)
        allowed_before += decide(key, identity, req).allowed
        matching_deny(rng, req)(key, identity)
        outcome = decide(key, identity, req)
        assert outcome.decision is Decision.EXPLICIT_DENY, (key, identity, req)
    assert allowed_before > 25  # the generator does produce allowed requests to turn around


def test_adding_any_deny_never_turns_a_deny_into_an_allow() -> None:
    rng = random.Random(7)
    for _ in range(500):
        key, identity, req = random_setup(rng)
        before = decide(key, identity, req)
        extra = random_statement(rng, with_principal=True) | {"Effect": "Deny"}
        key.append(extra)
        after = decide(key, identity, req)
        assert after.allowed <= before.allowed, (key, identity, req)
        if not before.allowed and after.decision is not Decision.EXPLICIT_DENY:
            assert after == before
