"""The report as `json` (one object, `as_json`: stable key names, version `REPORT_VERSION`) and
`csv` (tidy long format, `CSV_COLUMNS`: one figure per row, for a spreadsheet's pivot table);
`table.py` writes the one for people."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator, Mapping
from typing import Any

from gateway.events import FeedbackState
from gateway.report.funnel import FunnelStep, ZoneReach
from gateway.report.kpis import PoolUsage, Report, VisitFigures, ZoneDwell
from gateway.report.offers import STATES, Conversion, Group, RuleOffers
from gateway.report.table import render_table
from gateway.textformat import Format

REPORT_VERSION = 1
CSV_COLUMNS = ("section", "group", "metric", "value")
# The field that names the row of each list section (the CSV's `group`).
_GROUP_KEYS = {
    "footfall": "hour",
    "dwell": "zone",
    "zones": "zone",
    "funnel": "step",
    "offers": "rule",
    "conversion": "rule",
    "codes": "pool",
}


def render(report: Report, fmt: Format) -> str:
    """The report in `fmt`."""
    if fmt is Format.JSON:
        return json.dumps(as_json(report), ensure_ascii=False, indent=2) + "\n"
    if fmt is Format.CSV:
        return render_csv(report)
    return render_table(report)


def as_json(report: Report) -> dict[str, Any]:
    """The JSON report (version 1): these key names are for tools to rely on."""
    period = report.period
    return {
        "v": REPORT_VERSION,
        "store": {"id": report.store_id, "name": report.store_name, "timezone": period.tz.key},
        "period": {"since": period.iso(period.since), "until": period.iso(period.until)},
        "footfall": [{"hour": h.label, "visits": h.visits} for h in report.footfall],
        "visits": _visits(report.visits),
        "dwell": [_dwell(d) for d in report.dwell],
        "zones": [_reach(z) for z in report.zones],
        "funnel": [_step(s) for s in report.funnel],
        "offers": [_offers(r) for r in report.offers],
        "goal_zone": report.goal_zone,
        "conversion": [_conversion(c) for c in report.conversion],
        "codes": [_pool(p) for p in report.codes],
    }


def _s(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds, 3)


def _r(rate: float | None) -> float | None:
    return None if rate is None else round(rate, 6)


def _visits(v: VisitFigures) -> dict[str, Any]:
    return {
        "count": v.count,
        "customers": v.customers,
        "closed": v.closed,
        "open": v.open,
        "median_duration_s": _s(v.median_duration_s),
        "mean_duration_s": _s(v.mean_duration_s),
    }


def _dwell(d: ZoneDwell) -> dict[str, Any]:
    return {
        "zone": d.zone,
        "name": d.name,
        "entries": d.entries,
        "devices": d.devices,
        "total_s": _s(d.total_s),
        "median_s": _s(d.median_s),
    }


def _reach(z: ZoneReach) -> dict[str, Any]:
    return {"zone": z.zone, "name": z.name, "visits": z.visits, "share": _r(z.share)}


def _step(s: FunnelStep) -> dict[str, Any]:
    return {
        "step": s.label,
        "zones": list(s.zones),
        "visits": s.visits,
        "share": _r(s.share),
        "of_previous": _r(s.of_previous),
    }


def _offers(r: RuleOffers) -> dict[str, Any]:
    out: dict[str, Any] = {"rule": r.rule, "decided": r.decided, "holdout": r.holdout}
    out.update({state.value: r.state(state) for state in STATES})
    out.update({f.value: r.with_feedback(f) for f in FeedbackState})
    out.update({f"{f.value}_rate": _r(r.rate(f)) for f in FeedbackState})
    return out


def _group(g: Group) -> dict[str, Any]:
    return {"n": g.n, "converted": g.converted, "rate": _r(g.rate)}


def _conversion(c: Conversion) -> dict[str, Any]:
    return {
        "rule": c.rule,
        "treated": _group(c.treated),
        "control": _group(c.control),
        "uplift": _r(c.uplift),
        "ci_low": _r(c.ci_low),
        "ci_high": _r(c.ci_high),
    }


def _pool(p: PoolUsage) -> dict[str, Any]:
    return {
        "pool": p.pool,
        "total": p.total,
        "handed_out": p.handed_out,
        "handed_out_in_period": p.handed_out_in_period,
        "remaining": p.remaining,
    }


def render_csv(report: Report) -> str:
    """One figure per row, columns `CSV_COLUMNS`; n/a is an empty value."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    writer.writerows(csv_rows(as_json(report)))
    return buf.getvalue()


def csv_rows(report: Mapping[str, Any]) -> Iterator[tuple[str, str, str, Any]]:
    """(section, group, metric, value) for every number of the JSON report (names and the
    zone lists of funnel steps left out: they are labels, not figures)."""
    yield "store", "", "id", report["store"]["id"]
    yield "store", "", "timezone", report["store"]["timezone"]
    for key in ("since", "until"):
        yield "period", "", key, report["period"][key]
    yield "conversion", "", "goal_zone", _cell(report["goal_zone"])
    for metric, value in _flat(report["visits"]):
        yield "visits", "", metric, value
    for section, key in _GROUP_KEYS.items():
        for item in report[section]:
            for metric, value in _flat(item, skip={key, "name", "zones"}):
                yield section, item[key], metric, value


def _flat(
    obj: Mapping[str, Any], prefix: str = "", skip: frozenset[str] | set[str] = frozenset()
) -> Iterator[tuple[str, Any]]:
    for name, value in obj.items():
        if name in skip:
            continue
        if isinstance(value, Mapping):
            yield from _flat(value, f"{prefix}{name}_")
        else:
            yield f"{prefix}{name}", _cell(value)


def _cell(value: Any) -> Any:
    return "" if value is None else value
