"""The report of `rayon backtest --recorded`: the live rule set and the draft one side by
side over the same recorded stretch — offers per rule and per hour, customers reached, and
the top reasons each rule did not fire.  `table` for people, `json` (`comparison_json`, its
field names stable) and `csv` (one row per rule, `COMPARE_COLUMNS`)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from gateway.offline.backtest.report import as_json
from gateway.offline.backtest.result import HOURS, BacktestResult, RuleResult, why_not_text
from gateway.textformat import Format

COMPARE_VERSION = 1


@dataclass(frozen=True, slots=True)
class Comparison:
    """The live set's backtest and, with `--rules`, the draft's, over one stretch."""

    recording: str
    since: float | None
    until: float | None
    offered_before: int  # offers stored before `since`, counted in the caps
    live: BacktestResult
    draft: BacktestResult | None


@dataclass(frozen=True, slots=True)
class RuleRow:
    rule: str
    live: RuleResult | None
    draft: RuleResult | None

    @property
    def delta(self) -> int:
        return (self.draft.offers if self.draft else 0) - (self.live.offers if self.live else 0)


def rows(c: Comparison) -> list[RuleRow]:
    """One row per rule of either set, in id order."""
    live = {r.rule: r for r in c.live.rules}
    draft = {r.rule: r for r in c.draft.rules} if c.draft is not None else {}
    return [RuleRow(rule, live.get(rule), draft.get(rule)) for rule in sorted({*live, *draft})]


def render_comparison(c: Comparison, fmt: Format) -> str:
    if fmt is Format.JSON:
        return json.dumps(comparison_json(c), ensure_ascii=False, indent=2) + "\n"
    if fmt is Format.CSV:
        return comparison_csv(c)
    return comparison_table(c)


def _iso(at: float | None, tz: ZoneInfo) -> str | None:
    return None if at is None else datetime.fromtimestamp(at, tz).isoformat(timespec="seconds")


def _rule_json(row: RuleRow) -> dict[str, Any]:
    def side(r: RuleResult | None) -> dict[str, Any] | None:
        if r is None:
            return None
        return {"offers": r.offers, "customers": r.customers, "holdout": r.holdout,
                "top_reasons": why_not_text(r), "by_hour": list(r.by_hour)}  # fmt: skip

    return {"rule": row.rule, "live": side(row.live), "draft": side(row.draft),
            "delta_offers": row.delta}  # fmt: skip


def comparison_json(c: Comparison) -> dict[str, Any]:
    """Version 1: `live` and `draft` are whole backtest reports (`rayon backtest --format
    json`); `rules` pairs them per rule."""
    tz = ZoneInfo(c.live.timezone)
    return {
        "v": COMPARE_VERSION,
        "recording": c.recording,
        "since": _iso(c.since, tz),
        "until": _iso(c.until, tz),
        "offers_before_since": c.offered_before,
        "rules": [_rule_json(row) for row in rows(c)],
        "live": as_json(c.live),
        "draft": as_json(c.draft) if c.draft is not None else None,
    }


COMPARE_COLUMNS = (
    *("rule", "in_live", "in_draft", "live_offers", "draft_offers", "delta_offers"),
    *("live_customers", "draft_customers", "live_top_reasons", "draft_top_reasons"),
    *(f"live_h{h:02d}" for h in range(HOURS)),
    *(f"draft_h{h:02d}" for h in range(HOURS)),
)


def comparison_csv(c: Comparison) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(COMPARE_COLUMNS)
    for row in rows(c):
        live, draft = row.live, row.draft
        writer.writerow([
            row.rule, int(live is not None), int(draft is not None),
            live.offers if live else "", draft.offers if draft else "", row.delta,
            live.customers if live else "", draft.customers if draft else "",
            why_not_text(live) if live else "", why_not_text(draft) if draft else "",
            *(live.by_hour if live else [""] * HOURS), *(draft.by_hour if draft else [""] * HOURS),
        ])  # fmt: skip
    return buf.getvalue()


def _span(c: Comparison) -> str:
    tz = ZoneInfo(c.live.timezone)
    first = c.since if c.since is not None else c.live.first_at
    last = c.until if c.until is not None else c.live.last_at
    if first is None or last is None:
        return "nothing recorded in that stretch"
    a, b = datetime.fromtimestamp(first, tz), datetime.fromtimestamp(last, tz)
    return f"{a:%Y-%m-%d %H:%M} → {b:%Y-%m-%d %H:%M} ({c.live.timezone})"


def comparison_table(c: Comparison) -> str:
    """Per rule: offers live and draft, the change, customers reached, top reasons."""
    live, draft = c.live, c.draft
    head = [
        f"backtest on the recording {c.recording}: {_span(c)}",
        f"{live.inputs:,} recorded inputs ({live.bad_lines} bad lines); customers and caps as "
        f"at the start: {live.customers_known:,} customers, {c.offered_before:,} earlier "
        "offers counted in the caps",
        f"live rules: {live.rules_dir}"
        + (f"; draft rules: {draft.rules_dir}" if draft is not None else ""),
        "nothing was published and nothing was written to the database",
        "",
    ]
    if draft is None:
        from gateway.offline.backtest.report import render_table

        return "\n".join(head) + "\n" + render_table(live)
    table = _side_by_side(rows(c))
    return "\n".join([*head, *table, "", *_hours(live, draft)]) + "\n"


def _side_by_side(found: list[RuleRow]) -> list[str]:
    width = max([len("total"), *(len(r.rule) + 10 for r in found)])
    cell: Callable[[object], str] = lambda v: "-" if v is None else str(v)  # noqa: E731
    line: Callable[[str, Iterable[object]], str] = lambda name, cells: (  # noqa: E731
        f"{name:<{width}}" + "".join(f"{cell(v):>12}" for v in cells)
    )
    out = [line("offers of rule", ["live", "draft", "change", "reach live", "reach draft"])]
    out.append("-" * (width + 60))
    for r in found:
        tag = " (new)" if r.live is None else " (gone)" if r.draft is None else ""
        cells = [
            r.live.offers if r.live else None, r.draft.offers if r.draft else None,
            f"{r.delta:+d}", r.live.customers if r.live else None,
            r.draft.customers if r.draft else None,
        ]  # fmt: skip
        out.append(line(r.rule + tag, cells))
    live_total = sum(r.live.offers for r in found if r.live)
    draft_total = sum(r.draft.offers for r in found if r.draft)
    change = f"{draft_total - live_total:+d}"
    out += ["-" * (width + 60), line("total", [live_total, draft_total, change, "", ""])]
    out += [
        "(reach: customers who would get at least one offer of the rule)",
        "",
        "why each rule did not fire (top reasons; each count is one decision):",
    ]
    name = max(len(r.rule) for r in found) if found else 0
    for r in found:
        if r.live is not None:
            out.append(f"  {r.rule:<{name}}  live:  {why_not_text(r.live)}")
        if r.draft is not None:
            out.append(f"  {r.rule:<{name}}  draft: {why_not_text(r.draft)}")
    return out


def _hours(live: BacktestResult, draft: BacktestResult) -> list[str]:
    a, b = live.by_hour, draft.by_hour
    used = [h for h in range(HOURS) if a[h] or b[h]]
    if not used:
        return ["offers by hour (store time): none, live or draft"]
    out = ["offers by hour (store time):", "  hour      live   draft"]
    for h in range(used[0], used[-1] + 1):
        out.append(f"  {h:02d}:00   {a[h]:>7} {b[h]:>7}")
    return out
