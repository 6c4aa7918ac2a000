"""The monthly bill, from what the usage view recorded: pure arithmetic, no I/O.

Rules (AWS KMS pricing page, https://aws.amazon.com/kms/pricing/, as of 2024-2026):
- each customer managed key costs ``key_month`` per month while it exists, prorated by
  the hour; AWS managed keys cost nothing per month;
- a key pending deletion is not charged, unless the deletion is cancelled: then it is
  charged as if it had never been scheduled (so billing stops at the scheduling of the
  deletion that completes, or that is still pending);
- rotation: the first and the second rotation of a key (automatic or on demand) each add
  ``rotation_month`` per month from the moment they happen; later rotations are free (the
  May 2024 rule, which replaced "every rotated version adds $1");
- requests: ``free_requests`` per month and account are free, the rest cost
  ``request_per_10k`` per 10,000 (symmetric and HMAC keys, and requests with no key) or
  ``asymmetric_request_per_10k`` (RSA, ECC, ML-DSA, ML-KEM keys). CreateKey and
  ScheduleKeyDeletion requests are free; failed requests are not billed.
"""

from __future__ import annotations

from calendar import monthrange
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

FREE_OPERATIONS = frozenset({"CreateKey", "ScheduleKeyDeletion"})
SYMMETRIC, ASYMMETRIC = "symmetric", "asymmetric"


@dataclass(frozen=True)
class Prices:
    """The ``[pricing]`` table (US dollars)."""

    key_month: float = 1.0
    rotation_month: float = 1.0
    billed_rotations: int = 2
    request_per_10k: float = 0.03
    asymmetric_request_per_10k: float = 0.15
    free_requests: int = 20_000


@dataclass(frozen=True)
class KeyLife:
    key_id: str
    account: str
    key_spec: str
    customer: bool
    created: datetime
    billed_until: datetime | None  # None: still billed
    rotations: tuple[datetime, ...] = ()


@dataclass(frozen=True)
class Requests:
    day: str  # YYYY-MM-DD
    key_id: str | None
    operation: str
    count: int


@dataclass
class Bill:
    month: str
    account: str | None
    keys: list[dict[str, Any]] = field(default_factory=list)
    families: dict[str, dict[str, float]] = field(default_factory=dict)
    days: list[dict[str, Any]] = field(default_factory=list)
    total: float = 0.0


def month_bounds(month: str) -> tuple[datetime, datetime]:
    year, number = (int(part) for part in month.split("-"))
    start = datetime(year, number, 1, tzinfo=UTC)
    return start, start + timedelta(days=monthrange(year, number)[1])


def family_of(key_spec: str | None) -> str:
    if key_spec is None or key_spec == "SYMMETRIC_DEFAULT" or key_spec.startswith("HMAC_"):
        return SYMMETRIC
    return ASYMMETRIC


def _hours(begin: datetime, end: datetime | None, start: datetime, stop: datetime) -> float:
    lo, hi = max(begin, start), min(end or stop, stop)
    return max((hi - lo).total_seconds(), 0.0) / 3600


def bill(
    month: str,
    keys: Iterable[KeyLife],
    requests: Iterable[Requests],
    prices: Prices,
    account: str | None = None,
) -> Bill:
    start, stop = month_bounds(month)
    month_hours = (stop - start).total_seconds() / 3600
    result = Bill(month, account)
    specs: dict[str, str] = {}
    keys_list = list(keys)
    for key in keys_list:
        specs[key.key_id] = key.key_spec
        if not key.customer:
            continue
        hours = _hours(key.created, key.billed_until, start, stop)
        key_cost = prices.key_month * hours / month_hours
        rotation_cost = sum(
            prices.rotation_month * _hours(at, key.billed_until, start, stop) / month_hours
            for at in key.rotations[: prices.billed_rotations]
        )
        if hours or rotation_cost:
            result.keys.append(
                {
                    "KeyId": key.key_id,
                    "KeySpec": key.key_spec,
                    "Hours": round(hours, 4),
                    "KeyCost": key_cost,
                    "RotationCost": rotation_cost,
                    "Requests": 0,
                }
            )
    by_key = {entry["KeyId"]: entry for entry in result.keys}
    counts: dict[str, int] = defaultdict(int)
    per_day: dict[str, int] = defaultdict(int)
    for row in requests:
        if row.operation in FREE_OPERATIONS:
            continue
        counts[family_of(specs.get(row.key_id or ""))] += row.count
        per_day[row.day] += row.count
        if row.key_id in by_key:
            by_key[row.key_id]["Requests"] += row.count
    free = prices.free_requests
    rates = ((SYMMETRIC, prices.request_per_10k), (ASYMMETRIC, prices.asymmetric_request_per_10k))
    for family, price in rates:
        count = counts.get(family, 0)
        covered = min(count, free)
        free -= covered
        result.families[family] = {
            "Requests": count,
            "FreeRequests": covered,
            "Cost": (count - covered) / 10_000 * price,
        }
    keys_total = sum(e["KeyCost"] + e["RotationCost"] for e in result.keys)
    result.total = keys_total + sum(f["Cost"] for f in result.families.values())
    customer = [key for key in keys_list if key.customer]
    day = start
    while day < stop:
        following = day + timedelta(days=1)
        name = day.date().isoformat()
        alive = sum(1 for key in customer if _hours(key.created, key.billed_until, day, following))
        result.days.append({"Day": name, "Requests": per_day.get(name, 0), "Keys": alive})
        day = following
    return result


def as_json(result: Bill) -> dict[str, Any]:
    """The bill as the CLI's --json and the HTTP answer give it (US dollars)."""
    return {
        "Month": result.month,
        "Account": result.account,
        "Keys": [
            {
                **entry,
                "KeyCost": round(entry["KeyCost"], 6),
                "RotationCost": round(entry["RotationCost"], 6),
            }
            for entry in result.keys
        ],
        "Requests": {
            family: {**figures, "Cost": round(figures["Cost"], 6)}
            for family, figures in result.families.items()
        },
        "Days": result.days,
        "Total": round(result.total, 6),
    }
