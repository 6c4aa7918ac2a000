"""Who may do what: the caller's identity, its condition keys, and the two kinds of check."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from domain.errors import AccessDeniedError, MalformedPolicyDocumentError
from domain.identity import Identity
from domain.policy import (
    DENY_IN_IDENTITY_POLICY,
    LOCKOUT,
    AccessRequest,
    Decision,
    Outcome,
    Policy,
    Principal,
    authorize,
    evaluate,
    no_policy_allows,
    parse_policy,
    would_lock_out,
)

if TYPE_CHECKING:
    from domain.cmk import Cmk
    from domain.grants import Grant
    from domain.values import RequestContext


def identity_of(ctx: RequestContext) -> Identity:
    """The identity a request context carries; a context built without one (internal
    callers, tests) acts as the principal it names, with no IAM policies."""
    if ctx.identity is not None:
        return ctx.identity
    return Identity(Principal(ctx.principal or "", ctx.account), source_ip=ctx.source_ip)


@functools.lru_cache(maxsize=4096)
def key_policy(text: str) -> Policy:
    """Key policies are validated when stored; parsed once per distinct text."""
    return parse_policy(text)


def mentions_resource_aliases(cmk: Cmk, ctx: RequestContext) -> bool:
    """kms:ResourceAliases needs a view lookup; do it only for policies that use it."""
    return _uses_resource_aliases(cmk.policy) or identity_of(ctx).mentions_resource_aliases


@functools.lru_cache(maxsize=4096)
def _uses_resource_aliases(policy_text: str) -> bool:
    return "resourcealiases" in policy_text.lower()


def caller_conditions(identity: Identity, now: datetime) -> dict[str, Any]:
    """Global and KMS condition keys that describe the caller
    (https://docs.aws.amazon.com/kms/latest/developerguide/conditions-kms.html)."""
    principal = identity.principal
    return {
        "aws:PrincipalArn": principal.arn,
        "aws:PrincipalAccount": principal.account,
        "kms:CallerAccount": principal.account,
        "aws:SourceIp": identity.source_ip,
        "aws:CurrentTime": now,
        "aws:EpochTime": int(now.timestamp()),
        "aws:SecureTransport": identity.secure_transport,
        "aws:SourceVpce": identity.source_vpce,
        "kms:ViaService": identity.via_service,
        **identity.extra,
    }


def key_conditions(cmk: Cmk, aliases: list[str]) -> dict[str, Any]:
    conditions: dict[str, Any] = {
        "kms:KeySpec": cmk.key_spec,
        "kms:KeyUsage": cmk.key_usage,
        "kms:KeyOrigin": cmk.origin,
        "kms:KeyManager": cmk.key_manager,
        "kms:MultiRegion": cmk.multi_region,
        "kms:ResourceAliases": aliases,
    }
    for tag_key, tag_value in cmk.tags.items():
        conditions[f"aws:ResourceTag/{tag_key}"] = tag_value
    return conditions


def request_conditions(
    encryption_context: Mapping[str, str] | None = None,
    algorithm: str | None = None,
    tags: Mapping[str, str] | None = None,
    tag_keys: list[str] | None = None,
) -> dict[str, Any]:
    """Condition keys taken from the request's own parameters."""
    conditions: dict[str, Any] = {}
    if encryption_context is not None:
        conditions["kms:EncryptionContextKeys"] = list(encryption_context)
        for key, value in encryption_context.items():
            conditions[f"kms:EncryptionContext:{key}"] = value
    if algorithm is not None:
        conditions["kms:EncryptionAlgorithm"] = algorithm
    if tags is not None:
        conditions["aws:TagKeys"] = list(tags)
        for key, value in tags.items():
            conditions[f"aws:RequestTag/{key}"] = value
    if tag_keys is not None:
        conditions["aws:TagKeys"] = list(tag_keys)
    return conditions


# Operations whose API reference says "Cross-account use: Yes"; a key policy granting any
# other operation to another account has no effect (KMS guide, "Allowing users in other
# accounts to use a KMS key").
CROSS_ACCOUNT_OPERATIONS = frozenset(
    {
        "CreateGrant",
        "Decrypt",
        "DescribeKey",
        "DeriveSharedSecret",
        "Encrypt",
        "GenerateDataKey",
        "GenerateDataKeyPair",
        "GenerateDataKeyPairWithoutPlaintext",
        "GenerateDataKeyWithoutPlaintext",
        "GenerateMac",
        "GetKeyRotationStatus",
        "GetPublicKey",
        "ListGrants",
        "ReEncrypt",
        "ReEncryptFrom",
        "ReEncryptTo",
        "RetireGrant",
        "RevokeGrant",
        "Sign",
        "Verify",
        "VerifyMac",
    }
)


def check_cross_account(cmk: Cmk, identity: Identity, operation: str) -> None:
    principal = identity.principal
    if principal.is_service or principal.account == cmk.account:
        return
    if operation not in CROSS_ACCOUNT_OPERATIONS:
        action = f"kms:{operation}"
        raise AccessDeniedError(
            f"User: {principal.arn} is not authorized to perform: {action} on resource: "
            f"{cmk.arn} because {no_policy_allows('resource', action)}"
        )


def authorize_key(
    cmk: Cmk,
    ctx: RequestContext,
    operation: str,
    now: datetime,
    *,
    aliases: list[str] | None = None,
    request_alias: str | None = None,
    grants: Callable[[], Iterable[Grant]] | None = None,
) -> None:
    """Key policy plus IAM policies (where the key policy delegates), then grants; an
    explicit Deny in any policy wins over every allow, grants included ("Determining
    access to a KMS key", determining-access.html). Grants are looked at only when the
    policies do not allow, so the common path pays nothing for them. The grant that
    allowed the request is noted on the context for its audit record."""
    identity = identity_of(ctx)
    if identity.principal.arn == "":
        return  # keyledger itself (scheduler): service events are not authorized
    check_cross_account(cmk, identity, operation)
    conditions = {
        **caller_conditions(identity, now),
        **key_conditions(cmk, aliases or []),
        **ctx.conditions,
        "kms:RequestAlias": request_alias,
    }
    request = AccessRequest(
        identity.principal, f"kms:{operation}", cmk.arn, cmk.account, conditions
    )
    outcome = authorize(key_policy(cmk.policy), identity.policies, request)
    if outcome.allowed:
        return
    if outcome.decision is not Decision.EXPLICIT_DENY and grants is not None:
        grant = grant_allowing(grants(), identity, request, ctx.encryption_context)
        if grant is not None:
            ctx.grants_used.append(grant.grant_id)
            return
    raise AccessDeniedError(outcome.message(request))


def grant_allowing(
    grants: Iterable[Grant],
    identity: Identity,
    request: AccessRequest,
    context: Mapping[str, str] | None,
) -> Grant | None:
    """The first grant that admits this caller for this operation. A grant names its
    grantee exactly; a grant to an account root also serves the principals of that
    account whose IAM policies allow the operation, as a key policy statement naming the
    account does (grants.html, "grantee principal")."""
    operation = request.action.removeprefix("kms:")
    principal = identity.principal
    delegated: bool | None = None
    for grant in grants:
        if not grant.admits(operation, context):
            continue
        if grant.grantee_principal == principal.arn:
            return grant
        if grant.grantee_principal == f"arn:aws:iam::{principal.account}:root":
            if delegated is None:
                delegated = any(
                    evaluate(policy, request) is Decision.ALLOW for policy in identity.policies
                )
            if delegated:
                return grant
    return None


def check_lockout(
    policy: Policy, ctx: RequestContext, now: datetime, key_arn: str | None = None
) -> None:
    """Lockout safety check: refuse a key policy under which the caller could not change
    the policy again (CreateKey/PutKeyPolicy BypassPolicyLockoutSafetyCheck)."""
    identity = identity_of(ctx)
    context = {**caller_conditions(identity, now), **ctx.conditions}
    if would_lock_out(policy, identity.principal, key_arn=key_arn, context=context):
        raise MalformedPolicyDocumentError(LOCKOUT)


def authorize_identity(ctx: RequestContext, operation: str, resource: str, now: datetime) -> None:
    """Operations with no key policy in play (CreateKey, ListKeys, ListAliases,
    GenerateRandom, the alias side of alias operations): IAM policies decide, and an
    account root holds every permission of its account."""
    authorize_action(ctx, f"kms:{operation}", resource, now)


def authorize_action(ctx: RequestContext, action: str, resource: str, now: datetime) -> None:
    """IAM policies alone, for any service's action ("cloudtrail:LookupEvents",
    "audit:KeyHistory"); an account root holds every permission of its account."""
    identity = identity_of(ctx)
    if identity.principal.arn == "":
        return
    conditions = {**caller_conditions(identity, now), **ctx.conditions}
    request = AccessRequest(
        identity.principal, action, resource, identity.principal.account, conditions
    )
    decisions = {evaluate(policy, request) for policy in identity.policies}
    if Decision.EXPLICIT_DENY in decisions:
        outcome = Outcome(False, DENY_IN_IDENTITY_POLICY)
    elif Decision.ALLOW in decisions or identity.is_root:
        return
    else:
        outcome = Outcome(False, no_policy_allows("identity", action))
    raise AccessDeniedError(outcome.message(request))
