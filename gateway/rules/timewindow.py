"""Local time-of-day windows (`time:` conditions, policy quiet hours), DST-correct.

A window compares wall-clock times in the store timezone, so `14:00–19:00` means the same
afternoon on either side of a DST change.  A window may cross midnight (`21:00–08:00`); its
`days` then name the day the window *starts*: Friday `22:00–02:00` includes Saturday 01:00.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time
from enum import IntEnum

from gateway.rules.located import Reader
from gateway.yamlsrc import Node, ScalarNode, did_you_mean


class Weekday(IntEnum):
    """Days as written in rule files, numbered like `datetime.weekday()`."""

    MON = 0
    TUE = 1
    WED = 2
    THU = 3
    FRI = 4
    SAT = 5
    SUN = 6


_DAY_NAMES = [d.name.lower() for d in Weekday]


@dataclass(frozen=True, slots=True)
class TimeWindow:
    """`start <= t < end` on `days` (all days when empty); crosses midnight if start > end."""

    start: time | None = None
    end: time | None = None
    days: frozenset[Weekday] = frozenset()

    def contains(self, local: datetime) -> bool:
        """Whether the local (store timezone) datetime falls in the window."""
        t, day = local.time().replace(tzinfo=None), local.weekday()
        if self.start is not None and self.end is not None:
            if self.start < self.end:
                if not self.start <= t < self.end:
                    return False
            elif t < self.end:
                day = (day - 1) % 7  # after midnight: the window began the day before
            elif t < self.start:
                return False
        return not self.days or Weekday(day) in self.days

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
    if node is None:
        return frozenset()
    items = reader.sequence(node, path, one_ok=True)
    if items is None:
        return None
    days: set[Weekday] = set()
    for i, item in enumerate(items):
        text = item.raw if isinstance(item, ScalarNode) else ""
        name = text.lower()
        if name in _DAY_NAMES:
            days.add(Weekday[name.upper()])
        else:
            hint = did_you_mean(name, _DAY_NAMES) or " (use mon, tue, wed, thu, fri, sat, sun)"
            reader.error(item, f"{path}[{i}]", f"unknown day '{text}'{hint}")
            return None
    return frozenset(days)
