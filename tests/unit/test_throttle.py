"""The request-quota buckets stay bounded however many Regions callers sign for, and
letting idle buckets go never resets one that is still throttling."""

from __future__ import annotations

import pytest

from api.throttle import PRUNE_AT, Throttle
from domain.errors import ThrottlingError
from domain.quotas import Quotas


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_buckets_stay_bounded_across_many_regions() -> None:
    clock = Clock()
    throttle = Throttle(Quotas(rates={"create_key": 5.0}), clock)
    for n in range(3 * PRUNE_AT):
        clock.now += 0.01
        throttle.take("111122223333", f"region-{n}", "CreateKey")
    # Each bucket refills 1 token in 0.2 s: all but the last ~20 are full, and let go.
    assert len(throttle) <= PRUNE_AT + 1


def test_a_throttling_bucket_survives_the_pruning() -> None:
    clock = Clock()
    throttle = Throttle(Quotas(rates={"create_key": 5.0}), clock)
    for _ in range(5):
        throttle.take("111122223333", "us-east-1", "CreateKey")
    with pytest.raises(ThrottlingError):
        throttle.take("111122223333", "us-east-1", "CreateKey")
    # Many other Regions arrive within the same instant: the pruning keeps the empty bucket.
    for n in range(PRUNE_AT + 10):
        throttle.take("111122223333", f"region-{n}", "CreateKey")
    with pytest.raises(ThrottlingError):
        throttle.take("111122223333", "us-east-1", "CreateKey")
    clock.now += 0.2
    throttle.take("111122223333", "us-east-1", "CreateKey")
