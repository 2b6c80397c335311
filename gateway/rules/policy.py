"""`rules/policy.yaml`: store-wide marketing pressure, and the periods caps count over.

```yaml
quiet_hours: {between: ["21:00", "08:00"]}   # no commercial offer then (store time)
pressure: {per_customer: {day: 2, week: 5}}   # commercial offers per customer
holdout: 0%                                   # default control group of rules without one
max_offers_per_visit: 3                       # commercial offers per visit
min_gap: 10m                                  # between two commercial offers to one customer
max_offers_per_event: 1                       # offers one event may produce (highest priority)
```
Transactional rules skip all of it (and do not count towards it); consent always applies.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from gateway.config.yamlsrc import Node, ScalarNode, did_you_mean
from gateway.rules.located import Reader
from gateway.rules.model import Period, Policy
from gateway.rules.timewindow import read_window

POLICY_FILE = "policy.yaml"
_KEYS = (
    "quiet_hours",
    "pressure",
    "holdout",
    "max_offers_per_visit",
    "min_gap",
    "max_offers_per_event",
)
# Cap periods in English and in French (`mois` is the rolling 30 days, as `30d`); no word is
# in both vocabularies.
PERIOD_WORDS: dict[str, Period] = {p.value: p for p in Period}
PERIOD_WORDS |= {"jour": Period.DAY, "semaine": Period.WEEK, "mois": Period.D30}
_PERIODS = list(PERIOD_WORDS)


def read_policy(reader: Reader, path: Path) -> Policy:
    """The policy of `path` (defaults when the file does not exist); errors go to `reader`."""
    if not path.exists():
        return Policy()
    root = reader.compose(path)
    keys = reader.mapping(root, "", _KEYS) if root is not None else None
    if keys is None:
        return Policy()
    quiet = (
        read_window(reader, keys["quiet_hours"], "quiet_hours") if "quiet_hours" in keys else None
    )
    holdout = reader.percent(keys["holdout"], "holdout") if "holdout" in keys else 0.0
    return Policy(
        quiet_hours=quiet,
        pressure=_read_pressure(reader, keys.get("pressure")),
        holdout=holdout or 0.0,
        max_offers_per_visit=_optional_int(reader, keys, "max_offers_per_visit", 1),
        min_gap=reader.duration(keys["min_gap"], "min_gap") if "min_gap" in keys else None,
        max_offers_per_event=_optional_int(reader, keys, "max_offers_per_event", 1) or 1,
    )


def _optional_int(reader: Reader, keys: dict[str, Node], key: str, minimum: int) -> int | None:
    return reader.integer(keys[key], key, minimum) if key in keys else None


def _read_pressure(reader: Reader, node: Node | None) -> tuple[tuple[Period, int], ...]:
    if node is None:
        return ()
    keys = reader.mapping(node, "pressure", ("per_customer",), required=("per_customer",))
    if not keys:
        return ()
    path = "pressure.per_customer"
    caps = reader.mapping(keys["per_customer"], path, _PERIODS)
    out: dict[Period, int] = {}
    for name, value in (caps or {}).items():
        period = PERIOD_WORDS[name]
        if period in out:  # `day` and `jour` both given
            reader.error(value, f"{path}.{name}", f"'{name}' repeats the period {period}: keep one")
            continue
        limit = reader.integer(value, f"{path}.{name}", minimum=1)
        if limit is not None:
            out[period] = limit
    return tuple(out.items())


def read_period(reader: Reader, node: Node, path: str) -> Period | None:
    """A cap period: visit | day | week | 30d | lifetime, or jour | semaine | mois."""
    text = node.raw if isinstance(node, ScalarNode) else ""
    if text in PERIOD_WORDS:
        return PERIOD_WORDS[text]
    hint = did_you_mean(text, _PERIODS) or f" (use one of: {', '.join(_PERIODS)})"
    reader.error(node, path, f"unknown period '{text}'{hint}")
    return None


def period_start(period: Period, at: float, tz: ZoneInfo, visit_start: float | None) -> float:
    """Epoch seconds where a cap of `period` starts counting for an event at `at`.

    `day` starts at local midnight, `week` on Monday 00:00 local (both DST-correct), `30d`
    thirty days of 86 400 s before, `visit` at the visit's start (the event itself when the
    visit is unknown), `lifetime` at the epoch.
    """
    if period is Period.LIFETIME:
        return float("-inf")
    if period is Period.D30:
        return at - 30 * 86400.0
    if period is Period.VISIT:
        return visit_start if visit_start is not None else at
    local = datetime.fromtimestamp(at, tz)
    midnight = datetime(local.year, local.month, local.day, tzinfo=tz)
    if period is Period.WEEK:
        midnight = _monday(midnight, tz)
    return midnight.timestamp()


class PeriodStarts:
    """`period_start` with the day and week starts remembered per store-local date.

    Both depend only on the local date, so the engine (which has the local time of the event
    at hand) pays the timezone arithmetic once a day instead of once per check.
    """

    _KEEP = 400  # dates remembered before the memory starts over (a year and then some)

    def __init__(self, tz: ZoneInfo) -> None:
        self._tz = tz
        self._starts: dict[tuple[Period, date], float] = {}

    def start(self, period: Period, at: float, local: datetime, visit_start: float | None) -> float:
        """`period_start(period, at, tz, visit_start)`; `local` must be `at` in the store
        timezone (`datetime.fromtimestamp(at, tz)`)."""
        if period is not Period.DAY and period is not Period.WEEK:
            return period_start(period, at, self._tz, visit_start)
        key = (period, local.date())
        found = self._starts.get(key)
        if found is None:
            if len(self._starts) >= self._KEEP:
                self._starts.clear()
            found = self._starts[key] = period_start(period, at, self._tz, visit_start)
        return found


def _monday(midnight: datetime, tz: ZoneInfo) -> datetime:
    day = (midnight - timedelta(days=midnight.weekday())).date()
    return datetime(day.year, day.month, day.day, tzinfo=tz)
