"""GET /health (the process answers) and GET /ready (it can do its work), for load
balancers and orchestrators. Unauthenticated, so they say nothing of keys, principals or
configuration: only which checks pass."""

from __future__ import annotations

import asyncio

import orjson
from aiohttp import web

from api.services import SERVICES, Services
from eventstore.outage import store_unavailable
from projections.runner import PollingRunner

READY_MAX_LAG = web.AppKey("ready_max_lag", float)


async def health(request: web.Request) -> web.Response:
    return _json(200, {"status": "ok"})


async def ready(request: web.Request) -> web.Response:
    services = request.app.get(SERVICES)
    if services is None:
        return _json(503, {"ready": False, "checks": {"stores": False}})
    bound = request.app[READY_MAX_LAG]
    loop = asyncio.get_running_loop()
    checks = await loop.run_in_executor(services.readers, _checks, services, bound)
    ok = all(checks.values())
    return _json(200 if ok else 503, {"ready": ok, "checks": checks})


def _checks(services: Services, bound: float) -> dict[str, bool]:
    """Stores answer, writer and projection threads live, views within their lag bound
    (the grants view's bound is its propagation delay plus the same margin)."""
    checks = {
        "stores": _stores_answer(services),
        "writer_keyledger": services.commands.alive,
        "writer_usage": services.records.alive,
        # False while a store cannot commit: every write is refused until it can again.
        "commits_keyledger": not services.commands.unavailable,
        "commits_usage": not services.records.unavailable,
    }
    for runner in services.runners():
        checks[f"projection_{runner.name}"] = _within_bound(runner, bound)
    return checks


def _within_bound(runner: PollingRunner, bound: float) -> bool:
    try:
        status = runner.status()  # reads the ledger's head
    except Exception as error:
        if not store_unavailable(error):
            raise
        return False  # the store is unreachable: not ready (the outage is logged once)
    return runner.alive and status["lag_seconds"] <= bound + status["propagation_seconds"]


def _stores_answer(services: Services) -> bool:
    try:
        services.ledger.recorder.max_notification_id()
        services.usage.recorder.max_notification_id()
        services.view.keys_by_state()
    except Exception:  # noqa: BLE001 - any failure means "not ready", said as such
        return False
    return True


def _json(status: int, body: object) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(body), content_type="application/json")
