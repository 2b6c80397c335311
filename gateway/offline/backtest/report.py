"""The `rayon backtest` report: a table for people, `json` (`as_json`: its field names are
stable) and `csv` (one row per rule, `CSV_COLUMNS`, `h00`…`h23` for the hours)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from gateway.offline.backtest.result import (
    HOURS,
    LABELS,
    BacktestResult,
    Cause,
    RuleResult,
    top_reasons,
    why_not_text,
)
from gateway.textformat import Format

REPORT_VERSION = 1


def render(result: BacktestResult, fmt: Format) -> str:
    """The report in `fmt`."""
    if fmt is Format.JSON:
        return json.dumps(as_json(result), ensure_ascii=False, indent=2) + "\n"
    if fmt is Format.CSV:
        return render_csv(result)
    return render_table(result)


def _counts(causes: Mapping[Cause, int]) -> dict[str, Any]:
    """`{"caps": {"per_customer": n, …}, "policy": {…}, "no_consent": n, "not_met": {…}}`."""
    out: dict[str, Any] = {}
    for cause in Cause:
        group, _, key = cause.value.rpartition(".")
        (out.setdefault(group, {}) if group else out)[key] = causes[cause]
    return out


def as_json(result: BacktestResult) -> dict[str, Any]:
    """The JSON report (version 1): these field names are for tools to rely on."""
    tz = ZoneInfo(result.timezone)
    return {
        "v": REPORT_VERSION,
        "trace": result.trace,
        "rules_dir": result.rules_dir,
        "timezone": result.timezone,
        "first_at": _iso(result.first_at, tz),
        "last_at": _iso(result.last_at, tz),
        "inputs": result.inputs,
        "bad_lines": result.bad_lines,
        "events": result.events,
        "customers_known": result.customers_known,
        "totals": {
            "offers": result.offers,
            "customers": result.customers_reached,
            "holdout": result.holdout,
            **_counts({c: result.cause(c) for c in Cause}),
            "by_hour": list(result.by_hour),
        },
        "rules": [_rule_json(r) for r in result.rules],
    }


def _rule_json(r: RuleResult) -> dict[str, Any]:
    return {
        "rule": r.rule,
        "name": r.name,
        "purpose": r.purpose.value,
        "offers": r.offers,
        "customers": r.customers,
        "holdout": r.holdout,
        **_counts(r.causes),
        "top_reasons": [
            {"cause": c.value, "label": LABELS[c], "count": n} for c, n in top_reasons(r.causes)
        ],
        "by_hour": list(r.by_hour),
    }


def _iso(at: float | None, tz: ZoneInfo) -> str | None:
    return None if at is None else datetime.fromtimestamp(at, tz).isoformat(timespec="seconds")


CSV_COLUMNS = (
    *("rule", "name", "purpose", "offers", "customers", "holdout"),
    *(c.value for c in Cause),
    *(f"h{h:02d}" for h in range(HOURS)),
    "top_reasons",
)


def render_csv(result: BacktestResult) -> str:
    """One row per rule, columns `CSV_COLUMNS`."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for r in result.rules:
        head = [r.rule, r.name, r.purpose.value, r.offers, r.customers, r.holdout]
        writer.writerow([*head, *(r.causes[c] for c in Cause), *r.by_hour, why_not_text(r)])
    return buf.getvalue()


# The table's "why not" columns: caps, then policy, then consent, then a CRM attribute the
# offer text cites missing.
_TABLE_CAUSES = (
    *(("per-cust", Cause.CAP_PER_CUSTOMER), ("cooldown", Cause.CAP_COOLDOWN)),
    *(("budget", Cause.CAP_TOTAL), ("pressure", Cause.POLICY_PRESSURE)),
    *(("quiet", Cause.POLICY_QUIET_HOURS), ("min-gap", Cause.POLICY_MIN_GAP)),
    *(("per-visit", Cause.POLICY_MAX_PER_VISIT), ("no-consent", Cause.NO_CONSENT)),
    ("no-attr", Cause.ATTRIBUTES),
)
_TABLE_HEAD = ("offers", "customers", "holdout", *(name for name, _ in _TABLE_CAUSES))


def render_table(result: BacktestResult) -> str:
    """The report for people: a header, one line per rule, a total, offers by hour."""
    width = max([len("total"), *(len(r.rule) for r in result.rules)])
    row: Callable[[str, Iterable[object]], str] = lambda name, cells: (  # noqa: E731
        f"{name:<{width}}" + "".join(f"{c:>11}" for c in cells)
    )
    rule = "-" * (width + 11 * len(_TABLE_HEAD))
    lines = [*_summary(result), "", row("rule", _TABLE_HEAD), rule]
    for r in result.rules:
        lines.append(row(r.rule, [r.offers, r.customers, r.holdout, *_why_not(r.causes)]))
    totals = {c: result.cause(c) for c in Cause}
    reach = [result.offers, result.customers_reached, result.holdout]
    lines += [rule, row("total", [*reach, *_why_not(totals)])]
    lines += [
        "",
        "why not — caps: per-customer limit, cooldown, campaign budget; policy: pressure, "
        "quiet hours, min_gap, max_offers_per_visit; no-consent: no marketing_push consent; "
        "no-attr: the customer lacks a CRM attribute the offer text cites",
        "",
        *why_not_lines(result.rules),
    ]
    return "\n".join([*lines, "", *_hours(result)]) + "\n"


def why_not_lines(rules: Iterable[RuleResult]) -> list[str]:
    """Each rule's top reasons for not firing (every cause: conditions, dates, trigger,
    priority, caps, policy, consent, code pool), one line each."""
    rules = list(rules)
    width = max([0, *(len(r.rule) for r in rules)])
    head = "why each rule did not fire (top reasons; each count is one decision):"
    return [head, *(f"  {r.rule:<{width}}  {why_not_text(r)}" for r in rules)]


def _why_not(causes: Mapping[Cause, int]) -> list[int]:
    return [causes[c] for _, c in _TABLE_CAUSES]


def _summary(result: BacktestResult) -> list[str]:
    tz = ZoneInfo(result.timezone)
    span = "an empty trace"
    if result.first_at is not None and result.last_at is not None:
        first = datetime.fromtimestamp(result.first_at, tz)
        last = datetime.fromtimestamp(result.last_at, tz)
        span = f"{first:%Y-%m-%d %H:%M} → {last:%Y-%m-%d %H:%M} ({result.timezone})"
    return [
        f"backtest of {result.trace or 'the trace'} with the rules of {result.rules_dir or '?'}",
        f"{result.inputs:,} inputs ({result.bad_lines} bad lines), {result.events:,} zone "
        f"events, {span}; {result.customers_known:,} customers known",
        "nothing was published and nothing was written to the database",
    ]


def _hours(result: BacktestResult) -> list[str]:
    hours = result.by_hour
    used = [h for h in range(HOURS) if hours[h]]
    if not used:
        return ["offers by hour (store time): none"]
    top = max(hours)
    lines = ["offers by hour (store time):"]
    for h in range(used[0], used[-1] + 1):
        bar = "█" * max(1 if hours[h] else 0, round(40 * hours[h] / top))
        lines.append(f"  {h:02d}:00  {hours[h]:>6}  {bar}")
    return lines
