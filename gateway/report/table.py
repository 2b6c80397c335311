"""The report for people: aligned text sections for a terminal (the default `--format`)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from gateway.events import FeedbackState
from gateway.report.kpis import HourCount, Report
from gateway.report.offers import STATES, Conversion, Group
from gateway.report.period import Period

NA = "n/a"
_BAR = 40  # characters of the longest footfall bar
_GAP = 3  # a run of this many empty hours or more is shown as one "…" line


def duration(seconds: float | None) -> str:
    """`45s`, `9m12s`, `2h05m`; n/a for None."""
    if seconds is None:
        return NA
    s = round(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def percent(rate: float | None) -> str:
    return NA if rate is None else f"{100 * rate:.1f} %"


def points(diff: float | None) -> str:
    """A difference of rates in percentage points, signed."""
    return NA if diff is None else f"{100 * diff:+.1f} pts"


def grid(head: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    """Columns sized to their content: the first left-aligned, the others right-aligned."""
    cells = [[str(c) for c in head], *([str(c) for c in row] for row in rows)]
    widths = [max(len(r[i]) for r in cells) for i in range(len(head))]
    lines = []
    for n, row in enumerate(cells):
        first = row[0].ljust(widths[0])
        lines.append(
            "  ".join([first, *(c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True))])
        )
        if n == 0:
            lines.append("-" * len(lines[0]))
    return lines


def _local(at: float, period: Period) -> str:
    return datetime.fromtimestamp(at, period.tz).strftime("%Y-%m-%d %H:%M")


def render_table(report: Report) -> str:
    """Every section of the report, one after the other."""
    sections = [
        _header(report),
        _footfall(report.footfall),
        _dwell(report),
        _zones(report),
        _funnel(report),
        _offers(report),
        _conversion(report),
        _codes(report),
    ]
    return "\n\n".join("\n".join(lines) for lines in sections) + "\n"


def _header(report: Report) -> list[str]:
    p, v = report.period, report.visits
    return [
        f"{report.store_name} ({report.store_id}): {_local(p.since, p)} → {_local(p.until, p)} "
        f"({p.tz.key})",
        f"visits: {v.count} by {v.customers} customer(s); {v.closed} closed (median "
        f"{duration(v.median_duration_s)}, mean {duration(v.mean_duration_s)}), "
        f"{v.open} still open",
        "only customers with in-store location consent are counted: anonymous devices are "
        "never stored",
    ]


def _footfall(hours: Sequence[HourCount]) -> list[str]:
    used = [i for i, h in enumerate(hours) if h.visits]
    if not used:
        return ["footfall per hour (visits started): none"]
    top = max(h.visits for h in hours)
    lines = ["footfall per hour (visits started, store time)"]
    empty = 0
    for h in hours[used[0] : used[-1] + 1]:
        empty = empty + 1 if not h.visits else 0
        if empty == _GAP:
            lines[-(_GAP - 1) :] = ["  …"]
        if empty >= _GAP:
            continue
        bar = "█" * max(1 if h.visits else 0, round(_BAR * h.visits / top))
        lines.append(f"  {h.label.replace('T', ' ')}  {h.visits:>5}  {bar}")
    return lines


def _dwell(report: Report) -> list[str]:
    rows = [
        (d.zone, d.entries, d.devices, duration(d.total_s), duration(d.median_s))
        for d in report.dwell
    ]
    head = ("dwell per zone (finished stays)", "entries", "devices", "total", "median")
    return grid(head, rows)


def _zones(report: Report) -> list[str]:
    rows = [(z.zone, z.visits, percent(z.share)) for z in report.zones]
    return grid(("zones entered per visit", "visits", "of visits"), rows)


def _funnel(report: Report) -> list[str]:
    if not report.funnel:
        return ["ordered funnel: none (the config has no entrance/aisle-*/checkout: pass --funnel)"]
    rows = [(s.label, s.visits, percent(s.share), percent(s.of_previous)) for s in report.funnel]
    title = "funnel " + " → ".join(s.label for s in report.funnel)
    return grid((title, "visits", "of visits", "of previous"), rows)


def _offers(report: Report) -> list[str]:
    if not report.offers:
        return ["offers per rule: none in the period"]
    head = ("offers per rule", "decided", "holdout", *(s.value for s in STATES))
    counts = [(r.rule, r.decided, r.holdout, *(r.state(s) for s in STATES)) for r in report.offers]
    feedback = [
        (r.rule, r.sent, *(f"{r.with_feedback(f)} ({percent(r.rate(f))})" for f in FeedbackState))
        for r in report.offers
    ]
    head2 = ("feedback per rule (of sent)", "sent", *(f.value for f in FeedbackState))
    return [*grid(head, counts), "", *grid(head2, feedback)]


def _conversion(report: Report) -> list[str]:
    if report.goal_zone is None:
        return ["conversion: no goal zone (pass --goal-zone)"]
    title = f"conversion (goal: enter {report.goal_zone})"
    if not report.conversion:
        return [f"{title}: no offers in the period"]
    rows = [
        (c.rule, _group(c.treated), _group(c.control), points(c.uplift), _interval(c))
        for c in report.conversion
    ]
    head = (title, "treated (sent)", "control (holdout)", "uplift", "95 % CI")
    notes = [
        "a goal is the customer entering the goal zone after the offer was decided and before "
        "it expired; CI: Newcombe's hybrid score interval, in percentage points"
    ]
    return [*grid(head, rows), *notes]


def _group(g: Group) -> str:
    return f"{g.converted}/{g.n} ({percent(g.rate)})"


def _interval(c: Conversion) -> str:
    if c.ci_low is None or c.ci_high is None:
        return NA
    return f"{100 * c.ci_low:+.1f} to {100 * c.ci_high:+.1f}"


def _codes(report: Report) -> list[str]:
    if not report.codes:
        return ["code pools: none imported"]
    rows = [
        (p.pool, p.total, p.handed_out, p.handed_out_in_period, p.remaining) for p in report.codes
    ]
    return grid(("code pools", "total", "handed out", "in period", "remaining"), rows)
