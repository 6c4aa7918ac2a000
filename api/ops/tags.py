"""Tags: TagResource, UntagResource, ListResourceTags."""

from __future__ import annotations

from typing import Any

from api.ops.keys import tags_from
from api.ops.paging import after, page
from api.services import Call
from domain.authorization import request_conditions


async def tag_resource(call: Call) -> dict[str, Any]:
    tags = tags_from(call.params["Tags"])
    call.ctx = call.context.with_conditions(**request_conditions(tags=tags))
    call.key_arn = await call.command(
        call.services.ledger.tag_resource, key_id=call.params["KeyId"], tags=tags
    )
    return {}


async def untag_resource(call: Call) -> dict[str, Any]:
    call.ctx = call.context.with_conditions(**request_conditions(tag_keys=call.params["TagKeys"]))
    call.key_arn = await call.command(
        call.services.ledger.untag_resource,
        key_id=call.params["KeyId"],
        tag_keys=call.params["TagKeys"],
    )
    return {}


async def list_resource_tags(call: Call) -> dict[str, Any]:
    ctx, p, services = call.context, call.params, call.services
    limit = p.get("Limit", 50)
    cmk = await call.read(
        services.ledger.read_key,
        ctx,
        p["KeyId"],
        "ListResourceTags",
        allow_alias=False,
    )
    call.key_arn = cmk.arn
    await services.views_current()
    rows = await call.read(services.view.list_tags, str(cmk.id), after(p.get("Marker")), limit + 1)
    entries = [{"TagKey": key, "TagValue": value} for key, value in rows]
    return page(rows, limit, lambda row: row[0], "Tags", entries)


OPERATIONS = {
    "TagResource": tag_resource,
    "UntagResource": untag_resource,
    "ListResourceTags": list_resource_tags,
}
