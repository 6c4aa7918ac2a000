"""The one clock: everything that needs the time is handed one of these."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def __call__(self) -> datetime: ...


def system_clock() -> datetime:
    return datetime.now(UTC)


class OffsetClock:
    """Real time plus an offset that only moves forward: ``keyledger serve --dev-clock``
    lets tests jump days ahead while the server keeps running."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> datetime:
        return datetime.now(UTC) + timedelta(seconds=self.offset)

    def advance(self, seconds: float) -> datetime:
        """Raises OverflowError, leaving the clock as it was, past the year 9999."""
        moved = datetime.now(UTC) + timedelta(seconds=self.offset + seconds)
        self.offset += seconds
        return moved
