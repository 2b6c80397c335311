"""`rayon check`'s lints: rules that load but cannot do what their author meant.

Each is a warning (an error with `rayon check --strict`) located in the rule file:

- a campaign that has ended, or has not started yet (`valid:` against today's store date);
- `time:` conditions that all must hold but never hold together (09:00–12:00 and 14:00–18:00);
- a commercial rule whose time windows lie inside the policy's quiet hours (transactional
  rules are exempt: quiet hours do not apply to them);
- a per-customer cap that the cooldown makes unreachable (5 per day under a 2-day cooldown);
- a dwell rule whose offer expires sooner than the dwell it waits for.

Pure: reads the compiled rules and, for positions, the rule files' text; changes nothing.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from datetime import date, datetime, timedelta
from pathlib import Path

from gateway.config.yamlsrc import MapNode, Mark, Node, SeqNode, find
from gateway.errors import Diagnostic, Severity
from gateway.rules.located import Reader
from gateway.rules.model import Period, Policy, Rule, RuleSet, TriggerKind, show_duration
from gateway.rules.timewindow import TimeWindow

# The longest each calendar period can be (a DST day has 25 hours), so a cap is only called
# unreachable when no period could hold it.
_LONGEST = {Period.DAY: 25 * 3600.0, Period.WEEK: 7 * 86400.0 + 3600.0, Period.D30: 30 * 86400.0}
_MONDAY = datetime(2026, 1, 5)  # any Monday: a window depends only on weekday and time
_WEEK_MINUTES = 7 * 24 * 60


def lint_rules(rules: RuleSet, today: date) -> list[Diagnostic]:
    """Every lint of every rule, as located warnings, sorted by file and position."""
    out: list[Diagnostic] = []
    for rule in rules.rules:
        root = Reader(rule.file).compose(Path(rule.file))
        for path, message in _lints(rule, rules.policy, today, root):
            found = find(root, path) if root is not None else None
            mark = found.mark if found is not None else Mark(1, 1)
            out.append(Diagnostic(rule.file, mark.line, mark.col, message, path, Severity.WARNING))
    return sorted(out, key=lambda d: (d.file, d.line, d.col))


def _lints(rule: Rule, policy: Policy, today: date, root: Node | None) -> Iterator[tuple[str, str]]:
    yield from _validity(rule, today)
    windows = [c.window for c in rule.conditions if c.window is not None]
    minutes = _minutes(windows)
    if windows and not minutes:
        yield _time_path(root, len(windows) - 1), _disjoint(rule, windows)
    elif windows and rule.commercial and policy.quiet_hours is not None:
        quiet = policy.quiet_hours
        if all(quiet.contains(_at(m)) for m in minutes):
            when = " and ".join(w.describe() for w in windows)
            yield (
                _time_path(root, 0),
                (
                    f"commercial rule '{rule.id}' can only fire {when}, inside the quiet hours "
                    f"({quiet.describe()}): it never sends anything; change its time window"
                ),
            )
    yield from _caps(rule)
    yield from _expiry(rule)


def _validity(rule: Rule, today: date) -> Iterator[tuple[str, str]]:
    if rule.valid_until is not None and rule.valid_until < today:
        yield (
            "valid.until",
            (
                f"the campaign ended on {rule.valid_until} (today is {today}): rule '{rule.id}' "
                "never fires again; move valid.until or remove the rule"
            ),
        )
    elif rule.valid_from is not None and rule.valid_from > today:
        yield (
            "valid.from",
            (
                f"the campaign starts on {rule.valid_from} (today is {today}): rule '{rule.id}' "
                "does not fire before then"
            ),
        )


def _at(minute: int) -> datetime:
    return _MONDAY + timedelta(minutes=minute)


def _minutes(windows: Sequence[TimeWindow]) -> list[int]:
    """The minutes of a week (from Monday 00:00) in which every window holds.

    Windows are written to the minute, so this is exact."""
    if not windows:
        return []
    return [m for m in range(_WEEK_MINUTES) if all(w.contains(_at(m)) for w in windows)]


def _disjoint(rule: Rule, windows: Sequence[TimeWindow]) -> str:
    pair = next(
        ((a, b) for i, a in enumerate(windows) for b in windows[i + 1 :] if not _minutes([a, b])),
        None,
    )
    what = (
        f"the time windows '{pair[0].describe()}' and '{pair[1].describe()}'"
        if pair
        else "the time windows of if:"
    )
    return (
        f"{what} never hold together: rule '{rule.id}' never fires (every condition of if: "
        "must hold; to accept either, put them under any:)"
    )


def _caps(rule: Rule) -> Iterator[tuple[str, str]]:
    limits = rule.limits
    cap, cooldown, longest = limits.per_customer_max, limits.cooldown, _LONGEST.get(limits.per)
    if cap is None or not cooldown or longest is None:
        return
    reachable = math.ceil(longest / cooldown)
    if cap > reachable:
        yield (
            "limits.per_customer.max",
            (
                f"at most {cap} per {limits.per}, but the {show_duration(cooldown)} cooldown "
                f"allows at most {reachable} per {limits.per}: lower max to {reachable} or "
                "shorten the cooldown"
            ),
        )


def _expiry(rule: Rule) -> Iterator[tuple[str, str]]:
    trigger, expires = rule.trigger, rule.offer.expires_in
    if trigger.kind is not TriggerKind.DWELL or trigger.at_least is None:
        return
    if expires < trigger.at_least:
        yield (
            "then.offer.expires_in",
            (
                f"the offer expires {show_duration(expires)} after it is sent, sooner than the "
                f"{show_duration(trigger.at_least)} the dwell trigger waits: make expires_in at "
                f"least {show_duration(trigger.at_least)}"
            ),
        )


# -- where in the file -------------------------------------------------------------------------
def _time_path(root: Node | None, k: int) -> str:
    """The key path of the `k`-th `time:` condition among the items of the top-level `if:`
    (the compiled windows come in the file's order)."""
    items = find(root, "if") if root is not None else None
    found = [
        f"if[{i}].time"
        for i, item in enumerate(items.items if isinstance(items, SeqNode) else ())
        if isinstance(item, MapNode) and item.get("time") is not None
    ]
    return found[k] if k < len(found) else "if"
