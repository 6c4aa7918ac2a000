"""Grants: CreateGrant, ListGrants, ListRetirableGrants, RetireGrant, RevokeGrant."""

from __future__ import annotations

from typing import Any

from api.ops.paging import after, page
from api.services import Call
from api.wire import missing_member
from domain.authorization import authorize_identity
from domain.errors import UnsupportedOperationError
from domain.grants import GrantRequest, check_grant_id


def _no_service_principals(params: dict[str, Any]) -> None:
    """Grants to AWS service principals (with a SourceArn constraint) are not built."""
    for member in (
        "GranteeServicePrincipal",
        "RetiringServicePrincipal",
    ):
        if member in params:
            raise UnsupportedOperationError(f"{member} is not supported by keyledger yet.")


def _required(params: dict[str, Any], member: str) -> Any:
    if member not in params:
        raise missing_member(member)
    return params[member]


async def create_grant(call: Call) -> dict[str, Any]:
    p = call.params
    _no_service_principals(p)
    request = GrantRequest(
        grantee_principal=_required(p, "GranteePrincipal"),
        operations=tuple(p.get("Operations", [])),
        retiring_principal=p.get("RetiringPrincipal"),
        constraints=p.get("Constraints") or None,
        name=p.get("Name"),
    )
    result = await call.command(
        call.services.ledger.create_grant,
        key_id=p["KeyId"],
        request=request,
        dry_run=bool(p.get("DryRun")),
    )
    call.key_arn = result.pop("KeyArn")
    return result


async def list_grants(call: Call) -> dict[str, Any]:
    """Reads the grants view: eventually consistent, as AWS documents for ListGrants."""
    p, services = call.params, call.services
    if "GranteeServicePrincipal" in p:
        raise UnsupportedOperationError(
            "GranteeServicePrincipal is not supported by keyledger yet."
        )
    cmk = await call.read(services.ledger.read_key, call.context, p["KeyId"], "ListGrants")
    call.key_arn = cmk.arn
    grant_id = p.get("GrantId")
    if grant_id is not None:
        check_grant_id(grant_id)
    limit = p.get("Limit", 50)
    await services.grants_current()
    grants = await call.read(
        services.grants_view.list_grants,
        str(cmk.id),
        grant_id,
        p.get("GranteePrincipal"),
        after(p.get("Marker")),
        limit + 1,
    )
    entries = [grant.entry(cmk.arn) for grant in grants]
    return page(grants, limit, lambda g: g.grant_id, "Grants", entries)


async def list_retirable_grants(call: Call) -> dict[str, Any]:
    """Every grant, on keys of any account, that names this retiring principal; allowed by
    the caller's IAM policies (ListRetirableGrants: "Cross-account use: You must specify a
    principal in your Amazon Web Services account")."""
    p, services = call.params, call.services
    _no_service_principals(p)
    retiring = _required(p, "RetiringPrincipal")
    authorize_identity(call.context, "ListRetirableGrants", "*", services.clock())
    limit = p.get("Limit", 50)
    await services.grants_current()
    rows = await call.read(
        services.grants_view.list_retirable,
        retiring,
        after(p.get("Marker")),
        limit + 1,
    )
    entries = [grant.entry(key_arn) for key_arn, grant in rows]
    return page(rows, limit, lambda row: f"{row[1].key_id}/{row[1].grant_id}", "Grants", entries)


async def retire_grant(call: Call) -> dict[str, Any]:
    p = call.params
    call.key_arn = await call.command(
        call.services.ledger.retire_grant,
        grant_token=p.get("GrantToken"),
        key_id=p.get("KeyId"),
        grant_id=p.get("GrantId"),
        dry_run=bool(p.get("DryRun")),
    )
    return {}


async def revoke_grant(call: Call) -> dict[str, Any]:
    p = call.params
    call.key_arn = await call.command(
        call.services.ledger.revoke_grant,
        key_id=p["KeyId"],
        grant_id=p["GrantId"],
        dry_run=bool(p.get("DryRun")),
    )
    return {}


OPERATIONS = {
    "CreateGrant": create_grant,
    "ListGrants": list_grants,
    "ListRetirableGrants": list_retirable_grants,
    "RetireGrant": retire_grant,
    "RevokeGrant": revoke_grant,
}
