"""Time sources.  Every stage takes time from the event; only sources read a clock."""

from __future__ import annotations

import time
from datetime import datetime, tzinfo
from typing import Protocol


class Clock(Protocol):
    """Gives the current time as epoch seconds."""

    def now(self) -> float: ...


class SystemClock:
    """The wall clock, for the live daemon."""

    def now(self) -> float:
        return time.time()


class ManualClock:
    """A clock that only moves when told to: replays, simulations and tests."""

    def __init__(self, start: float = 0.0) -> None:
        self._now = start

    def now(self) -> float:
        return self._now

    def set(self, at: float) -> None:
        """Move to `at`; a clock never runs backwards, so earlier times are ignored."""
        if at > self._now:
            self._now = at

    def advance(self, seconds: float) -> None:
        self._now += seconds


class AcceleratedClock:
    """Wall time sped up `factor` times from `start` (the demo's simulated store)."""

    def __init__(self, start: float, factor: float) -> None:
        self._start = start
        self._factor = factor
        self._t0 = time.monotonic()

    def now(self) -> float:
        return self._start + (time.monotonic() - self._t0) * self._factor


def parse_local_time(text: str, tz: tzinfo) -> float:
    """An ISO 8601 time as epoch seconds; local to `tz` unless it carries an offset.

    Raises ValueError with a hint on a malformed time.
    """
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text!r} is not an ISO 8601 time, e.g. 2026-03-03T15:00:00") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=tz)
    return when.timestamp()
