"""The KPIs page's figures: `rayon report`'s, over a chosen period, as JSON for the browser's
charts and as CSV tables to download.

The rows are read by the report's own query (`gateway.report.query.read_period`) through the
console's read-only `History`, and every figure is the report's (`gateway.report.kpis`,
docs/report.md defines each); only the shape differs, made for charts and tables:

    {
      "v": 1,
      "store": {"id", "name", "timezone"},
      "since", "until":        local ISO 8601 times with their offset, [since, until)
      "visits":                {"count", "customers", "closed", "open",
                                "median_duration_s", "mean_duration_s"}
      "footfall_day":  [{"day": "2026-03-03", "visits"}]         every local day, zeros too
      "footfall_hour": [{"hour": "2026-03-03T09:00+01:00", "visits"}]   every local hour
      "dwell":  [{"zone", "name", "visits", "share", "entries", "devices", "total_s",
                  "median_s", "mean_s"}]       per zone of the config, in its order: `visits`
                 reached it (`share` of all visits), `entries` finished stays in it
      "funnel": [{"step", "zones", "visits", "share", "of_previous"}]
      "goal_zone": the conversion goal ("checkout" when the config has it, else None)
      "rules":  [{"rule", "offers", "holdout", "pending", "sent", "expired", "cancelled",
                  "dropped", "delivered", "opened", "redeemed", "dismissed", "opened_rate",
                  …, "treated", "treated_converted", "conversion", "control",
                  "control_converted", "control_conversion", "uplift", "ci_low", "ci_high"}]
                 `offers` the non-holdout offers decided; `conversion` the treated group's
                 rate; `uplift` against the holdout with its 95 % interval (None: n/a)
      "codes":  [{"pool", "total", "assigned", "assigned_in_period", "remaining"}]
    }

Rates and durations are rounded as the report rounds them; None is n/a.  `kpis_csv` writes
one of the list tables (`TABLES`) as CSV with a header row.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from gateway.config.model import Config
from gateway.console.history import History
from gateway.errors import InvalidInput
from gateway.report.funnel import default_funnel
from gateway.report.kpis import DEFAULT_GOAL_ZONE, Report, build_report
from gateway.report.period import Period
from gateway.report.query import read_period
from gateway.report.render import REPORT_VERSION, as_json

_CONVERSION_KEYS = (
    "treated",
    "treated_converted",
    "conversion",
    "control",
    "control_converted",
    "control_conversion",
    "uplift",
    "ci_low",
    "ci_high",
)

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
TABLES: Mapping[str, tuple[str, ...]] = {
    "footfall_day": ("day", "visits"),
    "footfall_hour": ("hour", "visits"),
    "dwell": (
        "zone",
        "name",
        "visits",
        "share",
        "entries",
        "devices",
        "total_s",
        "median_s",
        "mean_s",
    ),
    "rules": (
        "rule",
        "offers",
        "holdout",
        "pending",
        "sent",
        "expired",
        "cancelled",
        "dropped",
        "delivered",
        "opened",
        "redeemed",
        "dismissed",
        "opened_rate",
        "redeemed_rate",
        *_CONVERSION_KEYS,
    ),
    "codes": ("pool", "total", "assigned", "assigned_in_period", "remaining"),
}
"""The CSV tables and their columns, in order."""


def kpis(config: Config, history: History, since: float, until: float) -> dict[str, Any]:
    """The figures of [since, until) (epoch seconds), JSON-ready (see the module docstring).
    InvalidInput when the period is empty or reversed."""
    if not since < until:
        raise InvalidInput(
            f"the period's start ({since}) is not before its end ({until}): pick a start "
            "date before the end date"
        )
    period = Period(since, until, config.store.timezone)
    data = read_period(history, period)
    zone_ids = [z.id for z in config.zones]
    report = build_report(
        data,
        store=(config.store.id, config.store.name),
        zones=config.zones,
        funnel=default_funnel(zone_ids),
        goal_zone=DEFAULT_GOAL_ZONE if DEFAULT_GOAL_ZONE in zone_ids else None,
    )
    return shaped(report)


def shaped(report: Report) -> dict[str, Any]:
    """The report's JSON (`gateway.report.render.as_json`) in the console's shape."""
    figures = as_json(report)
    return {
        "v": REPORT_VERSION,
        "store": figures["store"],
        "since": figures["period"]["since"],
        "until": figures["period"]["until"],
        "visits": figures["visits"],
        "footfall_day": _days(report),
        "footfall_hour": figures["footfall"],
        "dwell": _dwell(figures["dwell"], figures["zones"]),
        "funnel": figures["funnel"],
        "goal_zone": figures["goal_zone"],
        "rules": _rules(figures["offers"], figures["conversion"]),
        "codes": [_pool(p) for p in figures["codes"]],
    }


def kpis_csv(report: Mapping[str, Any], table: str) -> str:
    """One table of `kpis()`'s result as CSV text, header row first (n/a is an empty cell);
    InvalidInput for a table that is not one of `TABLES`."""
    columns = TABLES.get(table)
    if columns is None:
        raise InvalidInput(f"no KPI table {table!r}: the tables are {', '.join(TABLES)}")
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    for row in report.get(table, ()):
        writer.writerow([_cell(row.get(c)) for c in columns])
    return buf.getvalue()


def _cell(value: object) -> object:
    """A CSV cell: n/a empty, and a text a spreadsheet would run as a formula (a zone name
    or rule id starting with = + - @ or a tab from config.yaml or a marketer's rule file)
    quoted with a leading apostrophe; numbers as they are."""
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def _days(report: Report) -> list[dict[str, Any]]:
    """Visits started per local day: the hours' counts summed by their local date."""
    days: dict[str, int] = {}
    tz = report.period.tz
    for hour in report.footfall:
        day = datetime.fromtimestamp(hour.start, tz).date().isoformat()
        days[day] = days.get(day, 0) + hour.visits
    return [{"day": day, "visits": n} for day, n in days.items()]


def _dwell(
    dwell: Sequence[Mapping[str, Any]], reach: Sequence[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    reached = {z["zone"]: z for z in reach}
    out = []
    for d in dwell:
        zone = reached.get(d["zone"], {})
        mean = round(d["total_s"] / d["entries"], 3) if d["entries"] else None
        out.append(
            {
                "zone": d["zone"],
                "name": d["name"],
                "visits": zone.get("visits", 0),
                "share": zone.get("share"),
                "entries": d["entries"],
                "devices": d["devices"],
                "total_s": d["total_s"],
                "median_s": d["median_s"],
                "mean_s": mean,
            }
        )
    return out


def _rules(
    offers: Sequence[Mapping[str, Any]], conversion: Sequence[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    converted = {c["rule"]: c for c in conversion}
    out = []
    for o in offers:
        row = {"rule": o["rule"], "offers": o["decided"]}
        row.update({k: v for k, v in o.items() if k not in ("rule", "decided")})
        c = converted.get(o["rule"])
        row.update(_conversion(c) if c is not None else dict.fromkeys(_CONVERSION_KEYS))
        out.append(row)
    return out


def _conversion(c: Mapping[str, Any]) -> dict[str, Any]:
    treated, control = c["treated"], c["control"]
    return {
        "treated": treated["n"],
        "treated_converted": treated["converted"],
        "conversion": treated["rate"],
        "control": control["n"],
        "control_converted": control["converted"],
        "control_conversion": control["rate"],
        "uplift": c["uplift"],
        "ci_low": c["ci_low"],
        "ci_high": c["ci_high"],
    }


def _pool(p: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "pool": p["pool"],
        "total": p["total"],
        "assigned": p["handed_out"],
        "assigned_in_period": p["handed_out_in_period"],
        "remaining": p["remaining"],
    }
