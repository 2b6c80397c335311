"""The daily schedule of `absent` rules (win-back): which rule already ran on which day.

`when: {absent: {for: 60d, at: "10:00"}}` runs once per store-local calendar day, at the
first call of `RuleEngine.on_schedule` at or after 10:00 local time (wall-clock time, so the
same hour on either side of a DST change; on the day an hour is skipped, the first call
after it; on the day an hour repeats, only the first).  A gateway started after the hour
runs that day's check at once.  Only the last day run per rule is kept, so the state stays
one entry per rule and `due` costs one comparison per absent rule.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date, datetime, time

from gateway.errors import InvalidInput
from gateway.rules.model import Rule


class AbsentSchedule:
    """Per absent rule, the last store-local date its daily check ran."""

    def __init__(self) -> None:
        self._last_run: dict[str, date] = {}

    def due(self, rules: Iterable[Rule], local: datetime) -> list[Rule]:
        """The rules whose check of `local`'s day has not run and whose hour has come."""
        today, now = local.date(), local.time().replace(tzinfo=None)
        return [r for r in rules if self.is_due(r, today, now)]

    def is_due(self, rule: Rule, today: date, now: time) -> bool:
        """Whether `rule`'s check of `today` is due at local time `now`."""
        hour = rule.trigger.at
        last = self._last_run.get(rule.id)
        return hour is not None and now >= hour and (last is None or last < today)

    def mark(self, rules: Iterable[Rule], today: date) -> None:
        """Record that the checks of `today` ran for `rules`."""
        for rule in rules:
            self._last_run[rule.id] = today

    def drop_after(self, today: date) -> int:
        """Forget the runs marked on a day after `today` (a clock that was ahead); how many."""
        later = [r for r, day in self._last_run.items() if day > today]
        for rule in later:
            del self._last_run[rule]
        return len(later)

    def snapshot(self) -> dict[str, str]:
        """Plain JSON: rule id → ISO date of its last run."""
        return {rule: day.isoformat() for rule, day in self._last_run.items()}

    def restore(self, state: Mapping[str, object]) -> None:
        """Continue from `snapshot()`; InvalidInput if it is not one."""
        try:
            self._last_run = {str(r): date.fromisoformat(str(d)) for r, d in state.items()}
        except (TypeError, ValueError, AttributeError) as exc:
            raise InvalidInput(f"not an absent-rule schedule ({exc}); discard it") from None
