"""`keyledger limits`: each quota, its configured value, and what an account uses of it."""

from __future__ import annotations

from typing import Any

from domain.quotas import ALIASES, CUSTOMER_MANAGED_KEYS, Limits, Quotas
from projections.grants_view import GrantsView
from projections.keys_view import KeysView


def limits_report(
    account: str,
    region: str,
    *,
    limits: Limits,
    keys: KeysView,
    grants: GrantsView | None,
    quotas: Quotas,
    rate_use: dict[str, float] | None = None,
) -> dict[str, Any]:
    resources = [
        _row(
            "customer_managed_keys",
            limits.customer_managed_keys,
            keys.count(account, region, CUSTOMER_MANAGED_KEYS),
        ),
        _row("aliases", limits.aliases, keys.count(account, region, ALIASES)),
        _row("key_policy_bytes", limits.key_policy_bytes, None),
    ]
    most, most_for_one = grants.busiest(account, region) if grants is not None else (None, None)
    resources += [
        _row("grants_per_key", limits.grants_per_key, most),
        _row("grants_per_principal_per_key", limits.grants_per_principal_per_key, most_for_one),
    ]
    use = rate_use or {}
    requests = [
        {"Quota": family, "RequestsPerSecond": rate, "InUse": use.get(family, 0.0)}
        for family, rate in sorted(quotas.rates.items())
    ]
    return {
        "Account": account,
        "Region": region,
        "ResourceQuotas": resources,
        "RequestQuotas": requests if quotas.enabled else [],
        "RequestQuotasEnabled": quotas.enabled,
    }


def _row(name: str, value: int, used: int | None) -> dict[str, Any]:
    """``used`` for per-key quotas is the key that uses the most."""
    return {"Quota": name, "Value": value, "Used": used}
