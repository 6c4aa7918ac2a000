"""The one clock: everything that needs the time is handed one of these."""

from __future__ import annotations

from datetime import UTC, datetime
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
        from datetime import timedelta

        return datetime.now(UTC) + timedelta(seconds=self.offset)

    def advance(self, seconds: float) -> datetime:
        """Raises OverflowError, leaving the clock as it was, past the year 9999."""
        from datetime import timedelta

        moved = datetime.now(UTC) + timedelta(seconds=self.offset + seconds)
        self.offset += seconds
        return moved


class FixedClock:
    """A clock that moves only when told; used by tests and by the dev clock."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> datetime:
        from datetime import timedelta

        self.now += timedelta(seconds=seconds)
        return self.now
