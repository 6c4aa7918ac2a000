"""Token buckets for the request quotas: one per (account, region, family).

A bucket holds at most one second of its rate (at least one request) and refills
continuously; a request that finds it empty is refused with ThrottlingException "Rate
exceeded", which AWS SDKs retry with backoff (standard mode) or pace themselves against
(adaptive mode). Wall-clock monotonic time, never the dev clock.

A full bucket is the same as no bucket, so once there are many, the full ones are let
go: a caller who signs with ever new Region names in its credential scope cannot make
the table grow without bound.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from domain.errors import ThrottlingError
from domain.quotas import Quotas, family_of

# Past this many buckets, a new one first drops every bucket that has refilled; if most
# are still in use, the next pruning waits until the table has doubled, so the scan costs
# O(1) per new bucket on average, never a full scan per request.
PRUNE_AT = 4096


@dataclass
class _Bucket:
    rate: float
    capacity: float
    tokens: float
    stamp: float


class Throttle:
    def __init__(self, quotas: Quotas, clock: Callable[[], float] = time.monotonic) -> None:
        self.quotas = quotas
        self._clock = clock
        self._buckets: dict[tuple[str, str, str], _Bucket] = {}
        self._prune_at = PRUNE_AT
        self._lock = threading.Lock()

    def take(
        self,
        account: str,
        region: str,
        operation: str,
        *,
        key_spec: str | None = None,
        pair_spec: str | None = None,
    ) -> None:
        if not self.quotas.enabled:  # nothing to count: keep the request path bare
            return
        family = family_of(operation, key_spec, pair_spec)
        rate = self.quotas.rate(family)
        if rate is None:
            return
        now = self._clock()
        with self._lock:
            bucket = self._buckets.get((account, region, family))
            if bucket is None:
                if len(self._buckets) >= self._prune_at:
                    self._drop_full(now)
                    self._prune_at = max(PRUNE_AT, 2 * len(self._buckets))
                capacity = max(rate, 1.0)
                bucket = self._buckets[account, region, family] = _Bucket(
                    rate, capacity, capacity, now
                )
            bucket.tokens = min(bucket.capacity, bucket.tokens + (now - bucket.stamp) * bucket.rate)
            bucket.stamp = now
            if bucket.tokens < 1.0:
                raise ThrottlingError("Rate exceeded")
            bucket.tokens -= 1.0

    def __len__(self) -> int:
        return len(self._buckets)

    def _drop_full(self, now: float) -> None:
        full = [
            name
            for name, b in self._buckets.items()
            if b.tokens + (now - b.stamp) * b.rate >= b.capacity
        ]
        for name in full:
            del self._buckets[name]

    def use(self, account: str, region: str) -> dict[str, float]:
        """Tokens used per family right now (for `keyledger limits`)."""
        now = self._clock()
        with self._lock:
            return {
                family: round(b.capacity - min(b.capacity, b.tokens + (now - b.stamp) * b.rate), 2)
                for (acct, reg, family), b in self._buckets.items()
                if (acct, reg) == (account, region)
            }
