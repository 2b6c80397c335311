"""The rules page's list: the rule set as the gateway loads it, each rule's state now.

The set is loaded by the product's loader (`gateway.rules.load.load_rules`, all or nothing,
as `rayon run` and `rayon check` load it).  A refused set gives no rules and the loader's
located errors, `file:line:col: error: …`, as `rayon check` prints them.

A rule is `ended` once its `valid.until` day is past, `scheduled` before its `valid.from` day
or while one of its `time:` windows does not hold, else `active`; days and hours are the
store's (`store.timezone`).  `detail` says why, in words, with the next opening of its time
window when there is one within a week.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from gateway.config.model import Config
from gateway.console.i18n import Language, english
from gateway.errors import ConfigError, InvalidInput, Severity
from gateway.rules.load import load_rules
from gateway.rules.model import Rule
from gateway.rules.timewindow import TimeWindow

_LOOK_AHEAD = timedelta(days=8)
_STEP = timedelta(minutes=1)  # windows are written to the minute


class RuleStatus(StrEnum):
    """Where a rule is in its life, now."""

    ACTIVE = "active"
    SCHEDULED = "scheduled"
    ENDED = "ended"


@dataclass(frozen=True, slots=True)
class RuleState:
    """One rule of the loaded set and its state now; `file` is the rule's file as the
    loader names it (relative to the working directory when under it)."""

    id: str
    name: str
    purpose: str
    state: RuleStatus
    detail: str
    file: str


@dataclass(frozen=True, slots=True)
class RulesView:
    """The loaded rules (none when the set is refused), the loader's errors, and its
    warnings (a set that loads may still carry them, `rayon check` shows them)."""

    rules: tuple[RuleState, ...]
    errors: tuple[str, ...]
    warnings: tuple[str, ...] = ()


def rule_states(config: Config, now: float, language: Language | None = None) -> RulesView:
    """The rules of `config.rules_dir` and their state at `now` (epoch seconds), the details
    in `language` (English by default)."""
    lang = language or english()
    try:
        rules = load_rules(config.rules_dir, config)
    except ConfigError as exc:
        errors = [d for d in exc.diagnostics if d.severity is Severity.ERROR]
        return RulesView((), tuple(str(d) for d in errors) or (str(exc),))
    except InvalidInput as exc:
        return RulesView((), (str(exc),))
    local = datetime.fromtimestamp(now, config.store.timezone)
    return RulesView(
        tuple(rule_state(rule, local, lang) for rule in rules.rules),
        (),
        tuple(str(w) for w in rules.warnings),
    )


def rule_state(rule: Rule, local: datetime, language: Language | None = None) -> RuleState:
    """`rule`'s state at the store-local time `local` (the detail in `language`)."""
    state, detail = _state(rule, local, language or english())
    return RuleState(rule.id, rule.name, rule.purpose.value, state, detail, rule.file)


def _state(rule: Rule, local: datetime, t: Language) -> tuple[RuleStatus, str]:
    today = local.date()
    if rule.valid_until is not None and rule.valid_until < today:
        return RuleStatus.ENDED, t.gettext(
            "the campaign ended on %(day)s", day=t.day(rule.valid_until)
        )
    if rule.valid_from is not None and rule.valid_from > today:
        return RuleStatus.SCHEDULED, t.gettext(
            "the campaign starts on %(day)s", day=t.day(rule.valid_from)
        )
    windows = [c.window for c in rule.conditions if c.window is not None]
    until = (
        t.gettext("valid until %(day)s", day=t.day(rule.valid_until))
        if rule.valid_until
        else t.gettext("no end date")
    )
    if all(w.contains(local) for w in windows):
        when = t.gettext(" and ").join(_describe(w, t) for w in windows)
        detail = t.gettext("%(until)s; %(when)s", until=until, when=when) if when else until
        return RuleStatus.ACTIVE, detail
    return RuleStatus.SCHEDULED, _outside(rule, windows, local, t)


def _outside(rule: Rule, windows: list[TimeWindow], local: datetime, t: Language) -> str:
    when = t.gettext(" and ").join(_describe(w, t) for w in windows)
    opens = _next_opening(rule, windows, local)
    if opens is None:
        return t.gettext(
            "outside its time window (%(when)s): it does not open within a week", when=when
        )
    return t.gettext(
        "outside its time window (%(when)s): opens %(opens)s", when=when, opens=t.short(opens)
    )


def _describe(window: TimeWindow, t: Language) -> str:
    """The window in words, `between 14:00 and 19:00 on mon, tue` in English (as
    `TimeWindow.describe` writes it), in `t`'s language otherwise."""
    parts = []
    if window.start is not None and window.end is not None:
        start, end = f"{window.start:%H:%M}", f"{window.end:%H:%M}"
        parts.append(t.gettext("between %(start)s and %(end)s", start=start, end=end))
    if window.days:
        days = ", ".join(t.weekday(d) for d in sorted(window.days))
        parts.append(t.gettext("on %(days)s", days=days))
    return " ".join(parts)


def _next_opening(rule: Rule, windows: list[TimeWindow], local: datetime) -> datetime | None:
    """The first minute after `local` (within a week and a day, before the campaign ends)
    in which every window holds; stepped in absolute time, so a DST change is right."""
    base = local.replace(second=0, microsecond=0).timestamp()
    for step in range(1, int(_LOOK_AHEAD / _STEP) + 1):
        at = datetime.fromtimestamp(base + step * _STEP.total_seconds(), local.tzinfo)
        if rule.valid_until is not None and at.date() > rule.valid_until:
            return None
        if all(w.contains(at) for w in windows):
            return at
    return None
