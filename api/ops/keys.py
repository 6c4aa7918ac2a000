"""Key management: CreateKey, DescribeKey, ListKeys, Enable/DisableKey, descriptions, policies."""

from __future__ import annotations

from typing import Any

from api.ops.managed import ensure_managed_key
from api.ops.paging import after, page
from api.services import Call
from domain import key_material
from domain.authorization import authorize_identity, check_lockout, request_conditions
from domain.errors import (
    NotFoundError,
    TagError,
    UnsupportedOperationError,
    ValidationError,
)
from domain.imports import check_importable
from domain.key_specs import check_create
from domain.policy import validate_key_policy
from domain.values import (
    AWS_KMS,
    DEFAULT_POLICY_NAME,
    EXTERNAL,
    SYMMETRIC_DEFAULT,
    key_arn,
)


async def create_key(call: Call) -> dict[str, Any]:
    p = call.params
    key_spec, key_usage = _check_key_shape(p)
    tags = tags_from(p.get("Tags", []))
    call.ctx = call.context.with_conditions(
        **request_conditions(tags=tags),
        **{
            "kms:KeySpec": key_spec,
            "kms:KeyUsage": key_usage,
            "kms:KeyOrigin": p.get("Origin", AWS_KMS),
            "kms:BypassPolicyLockoutSafetyCheck": p.get("BypassPolicyLockoutSafetyCheck", False),
        },
    )
    policy = p.get("Policy")
    if policy is not None:
        checked_policy(call, policy)
    # Made before the command, on the key generation threads: the writer thread commits
    # for every request, and an RSA_4096 key takes up to a second to generate.
    material = None
    origin = p.get("Origin", AWS_KMS)
    if key_spec != SYMMETRIC_DEFAULT and origin == AWS_KMS:
        material = await call.services.generate(key_material.generate, key_spec)
    metadata = await call.command(
        call.services.ledger.create_key,
        description=p.get("Description", ""),
        policy=policy,
        tags=tags,
        key_spec=key_spec,
        key_usage=key_usage,
        material=material,
        origin=origin,
    )
    call.key_arn = metadata["Arn"]
    return {"KeyMetadata": metadata}


def checked_policy(call: Call, policy: str, key_arn: str | None = None) -> None:
    """Grammar, size, principals that exist, and the lockout safety check."""
    known = call.services.known_principals
    document = validate_key_policy(
        policy,
        known_principal=known.__contains__,
        max_bytes=call.services.ledger.limits.key_policy_bytes,
    )
    if not call.params.get("BypassPolicyLockoutSafetyCheck"):
        check_lockout(document, call.context, call.services.clock(), key_arn)


async def put_key_policy(call: Call) -> dict[str, Any]:
    p, ledger = call.params, call.services.ledger
    if p.get("PolicyName", DEFAULT_POLICY_NAME) != DEFAULT_POLICY_NAME:
        raise NotFoundError("No such policy exists")
    cmk = await call.read(
        ledger.read_key, call.context, p["KeyId"], "PutKeyPolicy", allow_alias=False
    )
    call.key_arn = cmk.arn
    checked_policy(call, p["Policy"], cmk.arn)
    await call.command(ledger.put_key_policy, key_id=p["KeyId"], policy=p["Policy"])
    return {}


def _check_key_shape(p: dict[str, Any]) -> tuple[str, str]:
    """CreateKey parameter rules (CreateKey API reference); keys of origin AWS_KMS and
    EXTERNAL (imported material). Returns the key spec and key usage."""
    if "KeySpec" in p and "CustomerMasterKeySpec" in p:
        raise ValidationError(
            "You cannot specify KeySpec and CustomerMasterKeySpec in the same request. "
            "CustomerMasterKeySpec parameter is deprecated. Use KeySpec only."
        )
    spec = p.get("KeySpec") or p.get("CustomerMasterKeySpec") or SYMMETRIC_DEFAULT
    usage = check_create(spec, p.get("KeyUsage"))
    if p.get("Origin") == EXTERNAL:
        check_importable(spec)
    elif p.get("Origin", AWS_KMS) != AWS_KMS:
        raise UnsupportedOperationError(f"Origin {p['Origin']} is not supported by keyledger yet.")
    for unsupported in ("CustomKeyStoreId", "XksKeyId"):
        if unsupported in p:
            raise UnsupportedOperationError(f"{unsupported} is not supported by keyledger yet.")
    if p.get("MultiRegion"):
        raise UnsupportedOperationError("Multi-Region keys are not supported by keyledger yet.")
    return spec, usage


def tags_from(entries: list[dict[str, str]]) -> dict[str, str]:
    keys = [entry["TagKey"] for entry in entries]
    if len(set(keys)) != len(keys):
        raise TagError("Duplicate tag keys")
    return {entry["TagKey"]: entry["TagValue"] for entry in entries}


async def describe_key(call: Call) -> dict[str, Any]:
    await ensure_managed_key(call, call.params["KeyId"])
    cmk = await call.read(
        call.services.ledger.read_key, call.context, call.params["KeyId"], "DescribeKey"
    )
    call.key_arn = cmk.arn
    return {"KeyMetadata": cmk.metadata()}


async def list_keys(call: Call) -> dict[str, Any]:
    ctx, limit = call.context, call.params.get("Limit", 100)
    authorize_identity(ctx, "ListKeys", "*", call.services.clock())
    await call.services.views_current()
    key_ids = await call.read(
        call.services.view.list_keys,
        ctx.account,
        ctx.region,
        after(call.params.get("Marker")),
        limit + 1,
    )
    entries = [{"KeyId": k, "KeyArn": key_arn(ctx.region, ctx.account, k)} for k in key_ids]
    return page(key_ids, limit, lambda k: k, "Keys", entries)


async def enable_key(call: Call) -> dict[str, Any]:
    call.key_arn = await call.command(call.services.ledger.enable_key, key_id=call.params["KeyId"])
    return {}


async def disable_key(call: Call) -> dict[str, Any]:
    call.key_arn = await call.command(call.services.ledger.disable_key, key_id=call.params["KeyId"])
    return {}


async def update_key_description(call: Call) -> dict[str, Any]:
    call.key_arn = await call.command(
        call.services.ledger.update_key_description,
        key_id=call.params["KeyId"],
        description=call.params["Description"],
    )
    return {}


async def get_key_policy(call: Call) -> dict[str, Any]:
    name = call.params.get("PolicyName", DEFAULT_POLICY_NAME)
    cmk = await call.read(
        call.services.ledger.read_key, call.context, call.params["KeyId"], "GetKeyPolicy"
    )
    call.key_arn = cmk.arn
    if name != DEFAULT_POLICY_NAME:
        raise NotFoundError("No such policy exists")
    return {"Policy": cmk.policy, "PolicyName": DEFAULT_POLICY_NAME}


async def list_key_policies(call: Call) -> dict[str, Any]:
    cmk = await call.read(
        call.services.ledger.read_key, call.context, call.params["KeyId"], "ListKeyPolicies"
    )
    call.key_arn = cmk.arn
    return {"PolicyNames": [DEFAULT_POLICY_NAME], "Truncated": False}


OPERATIONS = {
    "CreateKey": create_key,
    "DescribeKey": describe_key,
    "ListKeys": list_keys,
    "EnableKey": enable_key,
    "DisableKey": disable_key,
    "UpdateKeyDescription": update_key_description,
    "GetKeyPolicy": get_key_policy,
    "ListKeyPolicies": list_key_policies,
    "PutKeyPolicy": put_key_policy,
}
