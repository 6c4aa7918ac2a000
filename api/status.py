"""GET /projections: each view's position, the log's head, and the lag between them.

Operators watch this to see how far the views (and so ListKeys, ListGrants and
authorization through grants) are behind the write model. It says nothing about keys,
principals or configuration, so it needs no signature.
"""

from __future__ import annotations

import asyncio

import orjson
from aiohttp import web

from api.services import SERVICES


async def projections_status(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    loop = asyncio.get_running_loop()
    views = [
        await loop.run_in_executor(services.readers, runner.status) for runner in services.runners()
    ]
    return web.Response(body=orjson.dumps({"views": views}), content_type="application/json")
