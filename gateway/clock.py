"""Time sources.  Every stage takes time from the event; only sources read a clock."""

from __future__ import annotations

import time
from datetime import datetime, tzinfo
from enum import StrEnum
from typing import Protocol

# The live time window (docs/mqtt.md).  An inbound message dated by its sender (a phone's `at` or
# `tst`, a scanner node's advert `at`) is used only if that time lies within
# [received - MAX_AGE_S, received + MAX_AHEAD_S] of when the gateway received it; the daemon
# stamps the receive time with its own clock and a trace line carries it, so a replay applies
# the same window to the trace's own times.  Every running clock of the pipeline (the zone
# tracker's and the geofences' "now") is the latest event time it has seen, so one device can
# push it at most MAX_AHEAD_S ahead of the gateway's clock.
MAX_AHEAD_S = 30.0  # a phone's clock a little fast, network and queueing jitter
MAX_AGE_S = 600.0  # a report queued on a phone or a node while the broker was unreachable


class OutOfWindow(StrEnum):
    """Why a sender's time was refused (the suffix of the `inbound_<why>:<class>` counters)."""

    TOO_OLD = "too_old"
    TOO_NEW = "too_new"


def out_of_window(at: float, received: float) -> OutOfWindow | None:
    """Whether a message dated `at` by its sender, received at `received`, lies outside the
    live window (None when inside, bounds included)."""
    if at > received + MAX_AHEAD_S:
        return OutOfWindow.TOO_NEW
    if at < received - MAX_AGE_S:
        return OutOfWindow.TOO_OLD
    return None


def window_problem(at: float, received: float) -> str:
    """What is wrong with a sender's time outside the window, and what to do, for a log line."""
    if at > received:
        return (
            f"its time is {at - received:.0f} s ahead of the gateway's clock (at most "
            f"{MAX_AHEAD_S:.0f} s is accepted): refused so that one device's clock cannot move "
            "the store's; check the sender's clock (NTP) and that 'at'/'tst' is epoch seconds"
        )
    return (
        f"its time is {received - at:.0f} s before it was received (at most {MAX_AGE_S:.0f} s "
        "is accepted): too late to say where the customer is now; check the sender's clock "
        "and how long it queues reports"
    )


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
