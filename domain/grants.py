"""Grants: who a grant admits, for which operations, under which encryption context.

Pure rules, from the KMS developer guide's "Grants in AWS KMS" pages
(https://docs.aws.amazon.com/kms/latest/developerguide/grants.html) and the
GrantConstraints API reference.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from domain.errors import InvalidGrantIdError, ValidationError

_ANY_KEY = frozenset({"DescribeKey", "CreateGrant", "RetireGrant"})
# Operations a grant may allow, by the key's usage: "you cannot create a grant for an
# operation that the KMS key does not support" (CreateGrant API reference, Operations).
_BY_USAGE: Mapping[str, frozenset[str]] = {
    "ENCRYPT_DECRYPT": frozenset(
        {
            "Decrypt",
            "Encrypt",
            "GenerateDataKey",
            "GenerateDataKeyWithoutPlaintext",
            "GenerateDataKeyPair",
            "GenerateDataKeyPairWithoutPlaintext",
            "ReEncryptFrom",
            "ReEncryptTo",
        }
    ),
    "SIGN_VERIFY": frozenset({"Sign", "Verify", "GetPublicKey"}),
    "GENERATE_VERIFY_MAC": frozenset({"GenerateMac", "VerifyMac"}),
    "KEY_AGREEMENT": frozenset({"DeriveSharedSecret", "GetPublicKey"}),
    # ML-KEM keys (GrantOperation in botocore's KMS model from 1.44).
    "ENCAPSULATE_DECAPSULATE": frozenset({"Encapsulate", "Decapsulate", "GetPublicKey"}),
}
# Asymmetric encryption keys: data keys and data key pairs come only from symmetric keys.
_ASYMMETRIC_ENCRYPTION = frozenset(
    {"Decrypt", "Encrypt", "ReEncryptFrom", "ReEncryptTo", "GetPublicKey"}
)
# "Grant operations" (grants.html#terms-grant-operations): a grant can allow these, no others.
GRANT_OPERATIONS = frozenset().union(*_BY_USAGE.values(), _ANY_KEY)
EQUALS, SUBSET = "EncryptionContextEquals", "EncryptionContextSubset"
_GRANT_ID = re.compile(r"^[0-9a-f]{64}$")


def operations_fitting(key_spec: str, key_usage: str) -> frozenset[str]:
    """The grant operations that fit a key of this spec and usage."""
    if key_usage == "ENCRYPT_DECRYPT" and key_spec != "SYMMETRIC_DEFAULT":
        return _ASYMMETRIC_ENCRYPTION | _ANY_KEY
    return _BY_USAGE.get(key_usage, frozenset()) | _ANY_KEY


def check_grant_request(
    operations: Collection[str],
    constraints: Mapping[str, Any] | None,
    *,
    key_spec: str,
    key_usage: str,
) -> None:
    """CreateGrant's rules about the key: every operation must fit it, and constraints
    (encryption context) only make sense for symmetric encryption keys (GrantConstraints:
    "not applied to ... cryptographic operations with asymmetric KMS keys")."""
    if not operations:
        raise ValidationError("The grant must allow at least one operation.")
    unfit = sorted(set(operations) - operations_fitting(key_spec, key_usage))
    if unfit:
        raise ValidationError(
            f"Grant operations {unfit} are not valid for a KMS key with KeySpec {key_spec} "
            f"and KeyUsage {key_usage}."
        )
    if constraints and key_spec != "SYMMETRIC_DEFAULT":
        raise ValidationError(
            "Grant constraints are not supported for KMS keys with KeySpec "
            f"{key_spec}; they apply only to symmetric encryption keys."
        )


def check_grant_id(grant_id: str) -> None:
    """Grant ids are 64 hex digits, as AWS's are."""
    if not _GRANT_ID.match(grant_id):
        raise InvalidGrantIdError(f"Grant ID {grant_id} is not valid.")


@dataclass(frozen=True)
class GrantRequest:
    """What a CreateGrant asks for."""

    grantee_principal: str
    operations: tuple[str, ...]
    retiring_principal: str | None = None
    constraints: Mapping[str, Mapping[str, str]] | None = None
    name: str | None = None


@dataclass(frozen=True)
class Grant:
    """One live grant on a key, as CreateGrant made it."""

    grant_id: str
    key_id: str
    name: str | None
    grantee_principal: str
    retiring_principal: str | None
    operations: tuple[str, ...]
    constraints: Mapping[str, Mapping[str, str]] | None
    issuing_account: str
    created: datetime

    def same_request(self, request: GrantRequest) -> bool:
        """A CreateGrant with this grant's Name and the same parameters is a retry: it
        gets this grant's id back (CreateGrant API reference, Name)."""
        return (
            self.name == request.name
            and self.grantee_principal == request.grantee_principal
            and self.retiring_principal == request.retiring_principal
            and set(self.operations) == set(request.operations)
            and _normalised(self.constraints) == _normalised(request.constraints)
        )

    def admits(self, operation: str, context: Mapping[str, str] | None) -> bool:
        """Does the grant allow ``operation`` with this request encryption context?
        ``context`` is None for operations that take none: constraints do not apply there
        (GrantConstraints API reference)."""
        if operation not in self.operations:
            return False
        return context is None or constraints_hold(self.constraints, context)

    def no_broader(
        self, operations: Collection[str], constraints: Mapping[str, Mapping[str, str]] | None
    ) -> bool:
        """A principal that may CreateGrant only through this grant can create grants
        that allow no more than this one ("Granting CreateGrant permission",
        create-grant-overview.html): a subset of its operations, and constraints at
        least as strict as its own."""
        if not set(operations) <= set(self.operations):
            return False
        return at_least_as_strict(constraints, self.constraints)

    def entry(self, key_arn: str) -> dict[str, Any]:
        """A GrantListEntry (ListGrants / ListRetirableGrants)."""
        entry: dict[str, Any] = {
            "KeyId": key_arn,
            "GrantId": self.grant_id,
            "CreationDate": self.created,
            "GranteePrincipal": self.grantee_principal,
            "IssuingAccount": f"arn:aws:iam::{self.issuing_account}:root",
            "Operations": list(self.operations),
        }
        if self.name is not None:
            entry["Name"] = self.name
        if self.retiring_principal is not None:
            entry["RetiringPrincipal"] = self.retiring_principal
        if self.constraints:
            entry["Constraints"] = {k: dict(v) for k, v in self.constraints.items()}
        return entry


def _lower_keys(pairs: Mapping[str, str]) -> dict[str, str]:
    # "in a grant constraint, the key in each key-value pair is not case sensitive, but
    # the value is case sensitive" (GrantConstraints API reference).
    return {key.lower(): value for key, value in pairs.items()}


def _normalised(
    constraints: Mapping[str, Mapping[str, str]] | None,
) -> dict[str, dict[str, str]]:
    return {kind: _lower_keys(pairs) for kind, pairs in (constraints or {}).items()}


def constraints_hold(
    constraints: Mapping[str, Mapping[str, str]] | None, context: Mapping[str, str]
) -> bool:
    """EncryptionContextEquals: the request's context is exactly these pairs.
    EncryptionContextSubset: the request's context includes these pairs."""
    if not constraints:
        return True
    given = _lower_keys(context)
    if EQUALS in constraints and given != _lower_keys(constraints[EQUALS]):
        return False
    if SUBSET in constraints:
        wanted = _lower_keys(constraints[SUBSET])
        if any(given.get(key) != value for key, value in wanted.items()):
            return False
    return True


def at_least_as_strict(
    child: Mapping[str, Mapping[str, str]] | None,
    parent: Mapping[str, Mapping[str, str]] | None,
) -> bool:
    """Every context the child admits, the parent admits too."""
    if not parent:
        return True
    if not child:
        return False
    child_n, parent_n = _normalised(child), _normalised(parent)
    if EQUALS in parent_n:
        return child_n.get(EQUALS) == parent_n[EQUALS]
    required = parent_n.get(SUBSET, {})
    for kind in (EQUALS, SUBSET):
        pairs = child_n.get(kind)
        if pairs is not None and all(pairs.get(k) == v for k, v in required.items()):
            return True
    return False


def may_retire(grant: Grant, principal_arn: str, key_account: str) -> bool:
    """Who may retire a grant without a policy ("Retiring and revoking grants",
    grant-delete.html): its retiring principal, its grantee when the grant allows
    RetireGrant, and the account that owns the key (its root)."""
    return (
        principal_arn == grant.retiring_principal
        or (principal_arn == grant.grantee_principal and "RetireGrant" in grant.operations)
        or principal_arn == f"arn:aws:iam::{key_account}:root"
    )


@dataclass(frozen=True)
class GrantLimits:
    """Resource quotas on grants (kms-overview limits table; ``[limits]`` in the
    configuration file). AWS documents 50,000 per key today; set that to match it."""

    per_key: int = 10_000
    per_principal_per_key: int = 500
