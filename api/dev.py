"""Development-only routes, present only under `keyledger serve --dev-clock`."""

from __future__ import annotations

import math

import orjson
from aiohttp import web

from api.scheduler import Scheduler
from eventstore.clock import OffsetClock

MAX_ADVANCE_SECONDS = 100 * 365 * 86400  # a century per call keeps datetime in range
DEV_CLOCK = web.AppKey("dev_clock", OffsetClock)
SCHEDULER = web.AppKey("scheduler", Scheduler)


async def advance_clock(request: web.Request) -> web.Response:
    """POST /_dev/clock {"advance_seconds": N}: move the clock forward, run everything
    that became due, and only then answer {"now": <epoch seconds>}."""
    try:
        seconds = orjson.loads(await request.read())["advance_seconds"]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        seconds = None
    valid = isinstance(seconds, int | float) and not isinstance(seconds, bool)
    if not valid or not math.isfinite(seconds) or not 0 <= seconds <= MAX_ADVANCE_SECONDS:
        message = f"advance_seconds: a number from 0 to {MAX_ADVANCE_SECONDS}"
        body = {"__type": "ValidationException", "message": message}
        return web.json_response(body, status=400, dumps=lambda o: orjson.dumps(o).decode())
    clock = request.app[DEV_CLOCK]
    try:
        clock.advance(seconds)
    except OverflowError:
        body = {"__type": "ValidationException", "message": "the clock cannot go that far"}
        return web.json_response(body, status=400)
    await request.app[SCHEDULER].run_due()
    return web.json_response({"now": clock().timestamp()})
