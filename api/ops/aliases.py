"""Aliases: CreateAlias, UpdateAlias, DeleteAlias, ListAliases."""

from __future__ import annotations

from typing import Any

from api.ops.paging import after, page
from api.services import Call
from domain.values import alias_arn


async def create_alias(call: Call) -> dict[str, Any]:
    call.key_arn = await call.command(
        call.services.ledger.create_alias,
        alias_name=call.params["AliasName"],
        target_key_id=call.params["TargetKeyId"],
    )
    return {}


async def update_alias(call: Call) -> dict[str, Any]:
    call.key_arn = await call.command(
        call.services.ledger.update_alias,
        alias_name=call.params["AliasName"],
        target_key_id=call.params["TargetKeyId"],
    )
    return {}


async def delete_alias(call: Call) -> dict[str, Any]:
    call.key_arn = await call.command(
        call.services.ledger.delete_alias, alias_name=call.params["AliasName"]
    )
    return {}


async def list_aliases(call: Call) -> dict[str, Any]:
    """ListAliases reads the view; a KeyId filter names a key by id or key ARN."""
    ctx, p, services = call.context, call.params, call.services
    limit, key_id = p.get("Limit", 50), None
    if "KeyId" in p:
        cmk = await call.read(
            services.ledger.resolve,
            services.ledger.load,
            ctx,
            p["KeyId"],
            "ListAliases",
            allow_alias=False,
        )
        call.key_arn, key_id = cmk.arn, str(cmk.id)
    await services.views_current()
    rows = await call.read(
        services.view.list_aliases,
        ctx.account,
        ctx.region,
        key_id,
        after(p.get("Marker")),
        limit + 1,
    )
    entries = [
        {
            "AliasName": row["name"],
            "AliasArn": alias_arn(ctx.region, ctx.account, row["name"]),
            "TargetKeyId": row["target_key_id"],
            "CreationDate": row["created"],
            "LastUpdatedDate": row["updated"],
        }
        for row in rows
    ]
    return page(rows, limit, lambda row: row["name"], "Aliases", entries)


OPERATIONS = {
    "CreateAlias": create_alias,
    "UpdateAlias": update_alias,
    "DeleteAlias": delete_alias,
    "ListAliases": list_aliases,
}
