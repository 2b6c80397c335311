"""Local time-of-day windows (`time:` conditions, policy quiet hours), DST-correct, and
calendar date ranges (`date:` conditions).

A window compares wall-clock times in the store timezone, so `14:00–19:00` means the same
afternoon on either side of a DST change.  A window may cross midnight (`21:00–08:00`); its
`days` then name the day the window *starts*: Friday `22:00–02:00` includes Saturday 01:00.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time
from enum import IntEnum

from gateway.config.yamlsrc import MapNode, Node, ScalarNode, did_you_mean
from gateway.rules.located import Reader


class Weekday(IntEnum):
    """Days as written in rule files, numbered like `datetime.weekday()`."""

    MON = 0
    TUE = 1
    WED = 2
    THU = 3
    FRI = 4
    SAT = 5
    SUN = 6


ENGLISH_DAYS = {d.name.lower(): d for d in Weekday}
# French abbreviations, beside the English ones: the two sets share no word, so `mar` is only
# mardi and `sun` only Sunday, whichever language the rest of the file is in.
FRENCH_DAYS = dict(zip(("lun", "mar", "mer", "jeu", "ven", "sam", "dim"), Weekday, strict=True))
DAY_WORDS: dict[str, Weekday] = {**ENGLISH_DAYS, **FRENCH_DAYS}
_DAYS_HELP = f" (use {', '.join(ENGLISH_DAYS)}, or {', '.join(FRENCH_DAYS)})"


@dataclass(frozen=True, slots=True)
class TimeWindow:
    """`start <= t < end` on `days` (all days when empty); crosses midnight if start > end."""

    start: time | None = None
    end: time | None = None
    days: frozenset[Weekday] = frozenset()

    def contains(self, local: datetime) -> bool:
        """Whether the local (store timezone) datetime falls in the window."""
        t, day = local.time(), local.weekday()  # `time()` is naive (`timetz()` is not)
        if self.start is not None and self.end is not None:
            if self.start < self.end:
                if not self.start <= t < self.end:
                    return False
            elif t < self.end:
                day = (day - 1) % 7  # after midnight: the window began the day before
            elif t < self.start:
                return False
        return not self.days or day in self.days  # an IntEnum hashes and equals its int

    def describe(self) -> str:
        """`between 14:00 and 19:00 on mon, tue`, as a marketer wrote it."""
        parts = []
        if self.start is not None and self.end is not None:
            parts.append(f"between {self.start:%H:%M} and {self.end:%H:%M}")
        if self.days:
            parts.append("on " + ", ".join(d.name.lower() for d in sorted(self.days)))
        return " ".join(parts)


def read_window(reader: Reader, node: Node, path: str) -> TimeWindow | None:
    """Parse `{between: ["HH:MM", "HH:MM"], days: [mon, …]}` (at least one of the two)."""
    keys = reader.mapping(node, path, ("between", "days"))
    if keys is None:
        return None
    if not keys:
        reader.error(node, path, "a time window needs 'between', 'days' or both")
        return None
    start, end = _read_between(reader, keys.get("between"), f"{path}.between")
    days = _read_days(reader, keys.get("days"), f"{path}.days")
    if days is None or (start is None and "between" in keys):
        return None
    return TimeWindow(start, end, days)


def _read_between(reader: Reader, node: Node | None, path: str) -> tuple[time | None, time | None]:
    if node is None:
        return None, None
    items = reader.sequence(node, path)
    if items is None:
        return None, None
    if len(items) != 2:
        reader.error(node, path, f'between needs two times ["HH:MM", "HH:MM"], got {len(items)}')
        return None, None
    start, end = reader.clock(items[0], f"{path}[0]"), reader.clock(items[1], f"{path}[1]")
    if start is not None and start == end:
        reader.error(node, path, "an empty window: start and end are the same time")
        return None, None
    return (start, end) if start is not None and end is not None else (None, None)


def _read_days(reader: Reader, node: Node | None, path: str) -> frozenset[Weekday] | None:
    """`days:` in English (`mon` … `sun`) or French (`lun` … `dim`), any case, mixed freely."""
    if node is None:
        return frozenset()
    items = reader.sequence(node, path, one_ok=True)
    if items is None:
        return None
    days: set[Weekday] = set()
    for i, item in enumerate(items):
        text = item.raw if isinstance(item, ScalarNode) else ""
        name = text.lower()
        if name in DAY_WORDS:
            days.add(DAY_WORDS[name])
        else:
            hint = did_you_mean(name, DAY_WORDS) or _DAYS_HELP
            reader.error(item, f"{path}[{i}]", f"unknown day '{text}'{hint}")
            return None
    return frozenset(days)


@dataclass(frozen=True, slots=True)
class DateRange:
    """Store-local calendar days: `first <= day <= last` (either open) on `days_of_month`."""

    first: date | None = None
    last: date | None = None
    days_of_month: frozenset[int] = frozenset()

    def contains(self, day: date) -> bool:
        """Whether the local calendar day is in the range."""
        if self.first is not None and day < self.first:
            return False
        if self.last is not None and day > self.last:
            return False
        return not self.days_of_month or day.day in self.days_of_month

    def describe(self) -> str:
        """`between 2026-12-01 and 2026-12-24 on days 1, 15`."""
        parts = []
        if self.first is not None and self.last is not None:
            parts.append(f"between {self.first} and {self.last}")
        if self.days_of_month:
            parts.append("on days " + ", ".join(str(d) for d in sorted(self.days_of_month)))
        return " ".join(parts)


def read_dates(reader: Reader, node: Node, path: str) -> DateRange | None:
    """Parse `{between: ["YYYY-MM-DD", "YYYY-MM-DD"], days_of_month: [1, 15]}`."""
    keys = reader.mapping(node, path, ("between", "days_of_month"))
    if keys is None:
        return None
    if not keys:
        if isinstance(node, MapNode) and not node.entries:  # (unknown keys are reported)
            reader.error(node, path, "a date condition needs 'between', 'days_of_month' or both")
        return None
    first = last = None
    if "between" in keys:
        items = reader.sequence(keys["between"], f"{path}.between")
        if items is None or len(items) != 2:
            if items is not None:
                msg = f'between needs two dates ["YYYY-MM-DD", "YYYY-MM-DD"], got {len(items)}'
                reader.error(keys["between"], f"{path}.between", msg)
            return None
        first, last = (reader.day(n, f"{path}.between[{i}]") for i, n in enumerate(items))
        if first is None or last is None:
            return None
        if last < first:
            reader.error(
                keys["between"], f"{path}.between", f"ends ({last}) before it starts ({first})"
            )
            return None
    days = _read_month_days(reader, keys.get("days_of_month"), f"{path}.days_of_month")
    return DateRange(first, last, days) if days is not None else None


def _read_month_days(reader: Reader, node: Node | None, path: str) -> frozenset[int] | None:
    if node is None:
        return frozenset()
    items = reader.sequence(node, path, one_ok=True)
    if items is None:
        return None
    days = [reader.integer(item, f"{path}[{i}]", minimum=1) for i, item in enumerate(items)]
    if any(d is None or d > 31 for d in days):
        bad = next((i for i, d in enumerate(days) if d is not None and d > 31), None)
        if bad is not None:
            reader.error(
                items[bad], f"{path}[{bad}]", f"a day of the month is 1 to 31, got {days[bad]}"
            )
        return None
    return frozenset(d for d in days if d is not None)
