"""The period of a report: `--since`/`--until` read in the store's timezone, and its local hours.

A period is half-open, `[since, until)`, in epoch seconds.  Hours are the store's local clock
hours, DST included: a spring-forward day has 23 of them, a fall-back day 25 (its two
`02:00` hours are told apart by their UTC offset).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo

from gateway.errors import UsageError

DEFAULT_DAYS = 7
ACCEPTED_FORMS = (
    "a date (2026-03-03: local midnight), a local time (2026-03-03T14:00) "
    "or a time with an offset (2026-03-03T14:00+01:00)"
)
_STEP_S = 900  # no timezone moves its clock by less than 15 minutes


@dataclass(frozen=True, slots=True)
class Period:
    """`[since, until)` in epoch seconds, reported in `tz` (the store's timezone)."""

    since: float
    until: float
    tz: ZoneInfo

    def __contains__(self, at: object) -> bool:
        return isinstance(at, int | float) and self.since <= at < self.until

    def iso(self, at: float) -> str:
        """`at` as a local ISO 8601 time with its offset, to the second."""
        return datetime.fromtimestamp(at, self.tz).isoformat(timespec="seconds")

    def hours(self) -> tuple[float, ...]:
        """The start of every local hour that overlaps the period, in order."""
        starts = {hour_start(t, self.tz) for t in _steps(self.since, self.until)}
        return tuple(sorted(starts))


def _steps(since: float, until: float) -> list[float]:
    steps = [since]
    t = since - since % _STEP_S + _STEP_S
    while t < until:
        steps.append(t)
        t += _STEP_S
    return steps


def hour_start(at: float, tz: tzinfo) -> float:
    """The start of the local hour holding `at` (epoch seconds); DST-correct because the
    local time keeps its `fold`, so the two 02:00 hours of a fall-back night stay apart."""
    local = datetime.fromtimestamp(at, tz)
    return local.replace(minute=0, second=0, microsecond=0).timestamp()


def hour_label(start: float, tz: tzinfo) -> str:
    """`2026-10-25T02:00+01:00`: the local hour with its offset."""
    return datetime.fromtimestamp(start, tz).isoformat(timespec="minutes")


def time_arg(text: str) -> datetime:
    """argparse `type=` of `--since`/`--until`: the form is checked here (exit 2 with the
    accepted forms); the store's timezone is applied later, once the config is read."""
    try:
        return datetime.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a time: write {ACCEPTED_FORMS}"
        ) from None


def resolve(since: datetime | None, until: datetime | None, tz: ZoneInfo, now: float) -> Period:
    """The period of the options: `until` defaults to `now`, `since` to `until` minus
    `DEFAULT_DAYS` local days (wall-clock days, so a DST change keeps local midnight)."""
    end = _local(until, tz) if until is not None else datetime.fromtimestamp(now, tz)
    start = _local(since, tz) if since is not None else end - timedelta(days=DEFAULT_DAYS)
    if start.timestamp() >= end.timestamp():
        raise UsageError(
            f"--since {start.isoformat(timespec='minutes')} is not before --until "
            f"{end.isoformat(timespec='minutes')}: give a period that starts before it ends"
        )
    return Period(start.timestamp(), end.timestamp(), tz)


def _local(when: datetime, tz: ZoneInfo) -> datetime:
    """A naive time is the store's local time; one with an offset is shown in `tz`."""
    if when.tzinfo is None:
        return when.replace(tzinfo=tz)
    return when.astimezone(tz)
