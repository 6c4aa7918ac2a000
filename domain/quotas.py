"""Resource quotas and request quotas, as KMS documents them.

Resource quotas (https://docs.aws.amazon.com/kms/latest/developerguide/resource-limits.html;
defaults from the limits table of the KMS overview keyledger is built from) are counted by
``ResourceCount`` aggregates, one per (account, region, resource): every command that takes
a slot changes that aggregate in the same transaction as the resource itself, so two
requests racing for the last slot — in one batch or in two processes sharing a store —
cannot both succeed (the second save conflicts, reloads and sees the count).

Request quotas (https://docs.aws.amazon.com/kms/latest/developerguide/requests-per-second.html)
are per account and region, per family: the shared cryptographic-operations quotas (by key
type), the data-key-pair quotas (by pair spec), and one per management operation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate

from domain.errors import LimitExceededError
from domain.grants import GrantLimits

CUSTOMER_MANAGED_KEYS = "customer_managed_keys"
ALIASES = "aliases"


@dataclass(frozen=True)
class Limits:
    """The ``[limits]`` table: resource quotas per account and region."""

    customer_managed_keys: int = 10_000
    aliases: int = 10_000
    key_policy_bytes: int = 32_768
    grants_per_key: int = 10_000
    grants_per_principal_per_key: int = 500

    @property
    def grants(self) -> GrantLimits:
        return GrantLimits(self.grants_per_key, self.grants_per_principal_per_key)


class ResourceCount(Aggregate):
    """How many of one resource an account holds in a region."""

    TOPIC = "keyledger:ResourceCount"

    class Created(Aggregate.Created):
        """First use of the counter; ``count`` is what the store already held (counted
        from the view when the counter was introduced)."""

        TOPIC = "keyledger:ResourceCount.Created"
        account: str
        region: str
        resource: str
        count: int

        def apply(self, counter: ResourceCount) -> None:
            counter.account, counter.region = self.account, self.region
            counter.resource, counter.count = self.resource, self.count

    class Changed(Aggregate.Event):
        TOPIC = "keyledger:ResourceCount.Changed"
        delta: int

        def apply(self, counter: ResourceCount) -> None:
            counter.count += self.delta

    if TYPE_CHECKING:  # assigned by Created.apply
        account: str
        region: str
        resource: str
        count: int

    @staticmethod
    def id_for(account: str, region: str, resource: str) -> UUID:
        return uuid5(NAMESPACE_URL, f"keyledger:quota:{account}/{region}/{resource}")

    @classmethod
    def start(cls, account: str, region: str, resource: str, count: int, now: datetime) -> Any:
        return cls._create(
            cls.Created,
            id=cls.id_for(account, region, resource),
            timestamp=now,
            account=account,
            region=region,
            resource=resource,
            count=count,
        )

    def take(self, limit: int, now: datetime) -> None:
        if self.count >= limit:
            raise LimitExceededError(_EXCEEDED[self.resource].format(limit=limit))
        self.trigger_event(self.Changed, timestamp=now, delta=1)

    def release(self, now: datetime) -> None:
        if self.count > 0:
            self.trigger_event(self.Changed, timestamp=now, delta=-1)


# Texts in the style of AWS's LimitExceededException ("The request was rejected because a
# quota was exceeded"); the exact AWS wording for each quota is not recorded anywhere we
# could check.
_EXCEEDED = {
    CUSTOMER_MANAGED_KEYS: (
        "The request was rejected because a quota was exceeded: this account already has "
        "{limit} customer managed keys in this Region (keys pending deletion count)."
    ),
    ALIASES: (
        "The request was rejected because a quota was exceeded: this account already has "
        "{limit} aliases in this Region."
    ),
}


# -- request quotas ---------------------------------------------------------------------

SYMMETRIC = "cryptographic_operations_symmetric"
RSA = "cryptographic_operations_rsa"
ECC = "cryptographic_operations_ecc"
ML_DSA = "cryptographic_operations_ml_dsa"
ML_KEM = "cryptographic_operations_ml_kem"
# The cryptographic operations that share one quota by the key's type ("Shared quotas for
# cryptographic operations"); GenerateRandom uses no key and counts as symmetric.
SHARED_CRYPTO = frozenset(
    {
        "Decrypt",
        "Encrypt",
        "GenerateDataKey",
        "GenerateDataKeyWithoutPlaintext",
        "GenerateMac",
        "VerifyMac",
        "ReEncrypt",
        "Sign",
        "Verify",
        "DeriveSharedSecret",
        "Encapsulate",
        "Decapsulate",
    }
)

# Default rates, requests per second (the request quotas table; the symmetric figure is the
# default outside the Regions AWS lists with higher ones).
DEFAULT_RATES: dict[str, float] = {
    SYMMETRIC: 10_000,
    RSA: 500,
    ECC: 300,
    ML_DSA: 300,
    ML_KEM: 300,
    "generate_data_key_pair_rsa_2048": 1,
    "generate_data_key_pair_rsa_3072": 0.5,
    "generate_data_key_pair_rsa_4096": 0.1,
    "generate_data_key_pair_ecc_nist_p256": 100,
    "generate_data_key_pair_ecc_nist_p384": 50,
    "generate_data_key_pair_ecc_nist_p521": 20,
    "generate_data_key_pair_ecc_secg_p256k1": 100,
    "generate_data_key_pair_ecc_nist_edwards25519": 100,
    "generate_data_key_pair_ml_kem": 100,
    "cancel_key_deletion": 5,
    "create_alias": 5,
    "create_grant": 50,
    "create_key": 5,
    "delete_alias": 5,
    "delete_imported_key_material": 5,
    "describe_key": 2_000,
    "disable_key": 5,
    "disable_key_rotation": 5,
    "enable_key": 5,
    "enable_key_rotation": 5,
    "get_key_policy": 1_000,
    "get_key_rotation_status": 1_000,
    "get_parameters_for_import": 5,
    "get_public_key": 2_000,
    "import_key_material": 5,
    "list_aliases": 500,
    "list_grants": 100,
    "list_key_policies": 100,
    "list_key_rotations": 100,
    "list_keys": 500,
    "list_resource_tags": 500,
    "list_retirable_grants": 100,
    "put_key_policy": 5,
    "retire_grant": 50,
    "revoke_grant": 50,
    "rotate_key_on_demand": 5,
    "schedule_key_deletion": 5,
    "tag_resource": 10,
    "untag_resource": 10,
    "update_alias": 5,
    "update_key_description": 5,
}


def _snake(operation: str) -> str:
    out = [operation[0].lower()]
    for char in operation[1:]:
        out.append(f"_{char.lower()}" if char.isupper() else char)
    return "".join(out)


def key_family(key_spec: str) -> str:
    if key_spec.startswith("RSA_"):
        return RSA
    if key_spec.startswith(("ECC_", "SM2")):
        return ECC
    if key_spec.startswith("ML_DSA"):
        return ML_DSA
    if key_spec.startswith("ML_KEM"):
        return ML_KEM
    return SYMMETRIC  # SYMMETRIC_DEFAULT and HMAC keys


def family_of(operation: str, key_spec: str | None = None, pair_spec: str | None = None) -> str:
    """The quota a request counts against. Cryptographic operations need the key's spec;
    GenerateDataKeyPair* counts against its pair spec's quota."""
    if operation == "GenerateRandom":
        return SYMMETRIC
    if operation in SHARED_CRYPTO:
        return key_family(key_spec or "SYMMETRIC_DEFAULT")
    if operation.startswith("GenerateDataKeyPair"):
        spec = (pair_spec or "").lower()
        return (
            "generate_data_key_pair_ml_kem"
            if "ml_kem" in spec
            else f"generate_data_key_pair_{spec}"
        )
    return _snake(operation)


def needs_key_spec(operation: str) -> bool:
    """Throttled once the key is known (its type picks the quota), not at the door."""
    return operation in SHARED_CRYPTO


@dataclass(frozen=True)
class Quotas:
    """The ``[quotas]`` table: requests per second per family; ``enabled`` false turns
    throttling off."""

    enabled: bool = True
    rates: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_RATES))

    def rate(self, family: str) -> float | None:
        return self.rates.get(family) if self.enabled else None
