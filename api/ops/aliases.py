"""Aliases: CreateAlias, UpdateAlias, DeleteAlias, ListAliases."""

from __future__ import annotations

from typing import Any

from api.ops.paging import after, page
from api.services import Call
from domain.authorization import authorize_identity
from domain.managed_keys import PREDEFINED_ALIASES
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
    """ListAliases reads the view; a KeyId filter names a key by id or key ARN. Without
    a filter, predefined alias/aws/* names with no key yet are listed without TargetKeyId."""
    ctx, p, services = call.context, call.params, call.services
    authorize_identity(ctx, "ListAliases", "*", services.clock())
    limit, key_id, start = p.get("Limit", 50), None, after(p.get("Marker"))
    if "KeyId" in p:
        ledger = services.ledger
        cmk = await call.read(ledger.read_key, ctx, p["KeyId"], "ListAliases", allow_alias=False)
        call.key_arn, key_id = cmk.arn, str(cmk.id)
    await services.views_current()
    view = services.view
    rows = await call.read(view.list_aliases, ctx.account, ctx.region, key_id, start, limit + 1)
    if key_id is None:
        live = await call.read(view.existing_names, ctx.account, ctx.region, PREDEFINED_ALIASES)
        waiting = [n for n in PREDEFINED_ALIASES if n > start and n not in live]
        rows = sorted(rows + [{"name": n} for n in waiting], key=lambda row: row["name"])
    entries = [_entry(ctx.region, ctx.account, row) for row in rows]
    return page(rows, limit, lambda row: row["name"], "Aliases", entries)


def _entry(region: str, account: str, row: dict[str, Any]) -> dict[str, Any]:
    return {
        "AliasName": row["name"],
        "AliasArn": alias_arn(region, account, row["name"]),
        "TargetKeyId": row.get("target_key_id"),
        "CreationDate": row.get("created"),
        "LastUpdatedDate": row.get("updated"),
    }


OPERATIONS = {
    "CreateAlias": create_alias,
    "UpdateAlias": update_alias,
    "DeleteAlias": delete_alias,
    "ListAliases": list_aliases,
}
