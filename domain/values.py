"""KMS vocabulary: key states, specs, ARNs, identifiers and the request context."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from domain.errors import InvalidAliasNameError, NotFoundError, ValidationError

if TYPE_CHECKING:
    from domain.grant_tokens import GrantRef
    from domain.identity import Identity


class KeyState(StrEnum):
    ENABLED = "Enabled"
    DISABLED = "Disabled"
    PENDING_DELETION = "PendingDeletion"
    PENDING_IMPORT = "PendingImport"
    DELETED = "Deleted"  # internal: AWS answers NotFoundException for a deleted key


SYMMETRIC_DEFAULT = "SYMMETRIC_DEFAULT"
ENCRYPT_DECRYPT = "ENCRYPT_DECRYPT"
AWS_KMS = "AWS_KMS"
EXTERNAL = "EXTERNAL"  # Origin of a key whose material the customer imports
DEFAULT_POLICY_NAME = "default"

# KMS quotas that botocore does not check client-side
# (https://docs.aws.amazon.com/kms/latest/developerguide/resource-limits.html).
MAX_TAGS_PER_KEY = 50
MAX_ALIASES_PER_KEY = 50
MAX_ON_DEMAND_ROTATIONS = 25
ROTATION_PERIOD_DAYS = (90, 2560, 365)  # min, max, default (EnableKeyRotation reference)
PENDING_WINDOW_DAYS = (7, 30, 30)  # min, max, default (ScheduleKeyDeletion reference)
MAX_POLICY_BYTES = 32 * 1024
DATA_KEY_BYTES = {"AES_128": 16, "AES_256": 32}

_UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
# A multi-Region key id is "mrk-" and 32 hex digits (multi-region-keys-overview.html);
# keyledger has none yet, but such an id is well formed: unknown, not invalid.
_MRK_RE = re.compile(r"^mrk-[0-9a-f]{32}$")
_KEY_ARN_RE = re.compile(r"^arn:(aws[a-z-]*):kms:([a-z0-9-]+):(\d{12}):key/(.+)$")
_ALIAS_ARN_RE = re.compile(r"^arn:(aws[a-z-]*):kms:([a-z0-9-]+):(\d{12}):(alias/.+)$")
_ALIAS_NAME_RE = re.compile(r"^alias/[a-zA-Z0-9/_-]+$")
RESERVED_ALIAS_PREFIX = "alias/aws/"


_TRANSIENT = frozenset(
    {"identity", "conditions", "grants_used", "grant_tokens", "encryption_context"}
)


@dataclass(frozen=True)
class RequestContext:
    """Who asked, from where, and when: stamped on every event and usage record."""

    principal: str | None
    account: str
    region: str
    request_id: str
    source_ip: str | None = None
    user_agent: str | None = None
    access_key_id: str | None = None
    # CloudTrail's eventType: "AwsApiCall" for callers, "AwsServiceEvent" when keyledger
    # itself acts (automatic rotation, deletion at the end of the waiting period).
    event_type: str = "AwsApiCall"
    # The KMS operation (CloudTrail's eventName); None for contexts made outside a request.
    operation: str | None = None
    # Not persisted: the caller's policies, and condition keys from the request itself.
    identity: Identity | None = field(default=None, compare=False, repr=False)
    conditions: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)
    # The grants that authorized this request, noted by authorization as it decides; the
    # list is shared by every copy made with ``replace``, so the record sees what any step
    # used. Persisted as ``grant_id`` (CloudTrail's additionalEventData.grantId).
    grants_used: list[str] = field(default_factory=list, compare=False, repr=False)
    # The grants the request's GrantTokens name (already authenticated), and the encryption
    # context of the operation being authorized (None where the operation takes none), which
    # grant constraints are checked against.
    grant_tokens: tuple[GrantRef, ...] = field(default=(), compare=False, repr=False)
    encryption_context: Mapping[str, str] | None = field(default=None, compare=False, repr=False)

    @classmethod
    def service(
        cls, account: str, region: str, request_id: str, operation: str | None = None
    ) -> RequestContext:
        """keyledger acting on its own; ``operation`` names the action as CloudTrail's
        AwsServiceEvent records do (RotateKey, DeleteKey: ct-delete-key.html)."""
        return cls(
            principal=None,
            account=account,
            region=region,
            request_id=request_id,
            user_agent="keyledger-scheduler",
            event_type="AwsServiceEvent",
            operation=operation,
        )

    def as_dict(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in _TRANSIENT}
        data["grant_id"] = self.grants_used[0] if self.grants_used else None
        return data

    def with_conditions(self, **conditions: Any) -> RequestContext:
        return replace(self, conditions={**self.conditions, **conditions})


def key_arn(region: str, account: str, key_id: str) -> str:
    return f"arn:aws:kms:{region}:{account}:key/{key_id}"


def alias_arn(region: str, account: str, alias_name: str) -> str:
    return f"arn:aws:kms:{region}:{account}:{alias_name}"


@dataclass(frozen=True)
class KeyRef:
    """A KeyId parameter, parsed: a key (id or ARN) or an alias (name or ARN)."""

    account: str
    region: str
    key_id: str | None = None
    alias_name: str | None = None

    @property
    def arn(self) -> str:
        if self.alias_name is not None:
            return alias_arn(self.region, self.account, self.alias_name)
        return key_arn(self.region, self.account, self.key_id or "")


def parse_key_ref(value: str, ctx: RequestContext, *, allow_alias: bool = True) -> KeyRef:
    """Parse a KeyId the way KMS does (DescribeKey "KeyId" parameter docs).

    A key ARN of another region answers "Invalid arn <region>" as AWS does.
    """
    if value.startswith("arn:"):
        return _parse_arn(value, ctx, allow_alias=allow_alias)
    if value.startswith("alias/"):
        if not allow_alias:
            raise NotFoundError(f"Invalid keyId '{value}'")
        return KeyRef(ctx.account, ctx.region, alias_name=value)
    if not is_key_id(value):
        raise NotFoundError(f"Invalid keyId '{value}'")
    return KeyRef(ctx.account, ctx.region, key_id=value)


def is_key_id(value: str) -> bool:
    """A well-formed key id: a dashed UUID, or a multi-Region key id."""
    return bool(_UUID_RE.match(value) or _MRK_RE.match(value))


def is_multi_region_id(value: str) -> bool:
    return bool(_MRK_RE.match(value))


def _parse_arn(value: str, ctx: RequestContext, *, allow_alias: bool) -> KeyRef:
    key_match = _KEY_ARN_RE.match(value)
    alias_match = _ALIAS_ARN_RE.match(value) if allow_alias else None
    match = key_match or alias_match
    if match is None:
        raise NotFoundError(f"Invalid arn {value}")
    _, region, account, rest = match.groups()
    if region != ctx.region:
        raise NotFoundError(f"Invalid arn {region}")
    if key_match:
        if not is_key_id(rest):
            raise NotFoundError(f"Invalid keyId '{rest}'")
        return KeyRef(account, region, key_id=rest)
    return KeyRef(account, region, alias_name=rest)


def check_alias_name(name: str, *, creating: bool) -> None:
    """Alias naming rules (https://docs.aws.amazon.com/kms/latest/developerguide/alias-about.html)."""
    if not name.startswith("alias/"):
        raise ValidationError(
            'Alias must start with the prefix "alias/". Please see '
            "https://docs.aws.amazon.com/kms/latest/developerguide/kms-alias.html"
        )
    if not _ALIAS_NAME_RE.match(name):
        raise InvalidAliasNameError(f"{name} contains invalid characters for an alias")
    if creating and name.startswith(RESERVED_ALIAS_PREFIX):
        raise InvalidAliasNameError(
            f"{name} must not begin with {RESERVED_ALIAS_PREFIX}: that prefix is reserved "
            "for AWS managed keys"
        )


def default_key_policy(account: str) -> str:
    """The policy AWS gives a key created without one (key-policy-default)."""
    return (
        "{\n"
        '  "Version" : "2012-10-17",\n'
        '  "Id" : "key-default-1",\n'
        '  "Statement" : [ {\n'
        '    "Sid" : "Enable IAM User Permissions",\n'
        '    "Effect" : "Allow",\n'
        '    "Principal" : {\n'
        f'      "AWS" : "arn:aws:iam::{account}:root"\n'
        "    },\n"
        '    "Action" : "kms:*",\n'
        '    "Resource" : "*"\n'
        "  } ]\n"
        "}"
    )
