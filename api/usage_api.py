"""Usage and quotas over HTTP (JSON 1.1, SigV4 like every call on this port):
``X-Amz-Target: KeyledgerUsage.<Operation>``, authorized by a ``usage:<Operation>``
permission in the caller's IAM policies (an account root holds it for its account).

- GetMonthlyUsage {Month: "YYYY-MM"}   the caller's account's bill for that month
- GetLimits       {}                   each quota, its value and the account's use
"""

from __future__ import annotations

import re
from typing import Any

from api.own_operations import own_operation
from api.services import Call
from domain.authorization import authorize_action
from domain.errors import ValidationError
from domain.pricing import as_json, bill
from projections.limits_report import limits_report

USAGE_TARGET_PREFIX = "KeyledgerUsage."
_MONTH = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")


async def run(call: Call, operation: str, body: object) -> dict[str, Any]:
    handler, params = own_operation(call, "usage", operation, body, _OPERATIONS)
    authorize_action(call.context, call.operation, "*", call.services.clock())
    return await handler(call, params)


async def get_monthly_usage(call: Call, body: dict[str, Any]) -> dict[str, Any]:
    month = body.get("Month")
    if not isinstance(month, str) or not _MONTH.match(month):
        raise ValidationError("Month must be a month as YYYY-MM.")
    services, account = call.services, call.context.account
    for runner in services.usage_runners:  # the bill includes everything recorded so far
        await services.read(runner.catch_up)
    view = services.usage_view
    keys = await services.read(view.key_lives, month, account)
    requests = await services.read(view.requests, month, account)
    return as_json(bill(month, keys, requests, services.prices, account))


async def get_limits(call: Call, body: dict[str, Any]) -> dict[str, Any]:
    services, ctx = call.services, call.context
    await services.views_current()
    return await services.read(
        limits_report,
        ctx.account,
        ctx.region,
        limits=services.ledger.limits,
        keys=services.view,
        grants=services.grants_view,
        quotas=services.throttle.quotas,
        rate_use=services.throttle.use(ctx.account, ctx.region),
    )


_OPERATIONS = {"GetMonthlyUsage": get_monthly_usage, "GetLimits": get_limits}
