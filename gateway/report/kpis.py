"""The figures of `rayon report`, computed from the rows of a period.  Pure: values in,
frozen values out (docs/report.md defines each figure).

Footfall and visits count the visits of tracked devices, that is of customers who consented
to in-store location: anonymous devices are never stored (docs/design.md §1), so they are not here.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from gateway.config.model import Zone
from gateway.report.funnel import (
    FunnelStep,
    Step,
    ZoneReach,
    enters_by_visit,
    ordered_funnel,
    zone_reach,
)
from gateway.report.offers import Conversion, RuleOffers, conversions, offers_per_rule
from gateway.report.period import Period, hour_label, hour_start
from gateway.report.rows import PoolCode, ReportData, Stay, VisitRecord
from gateway.report.stats import mean, median

DEFAULT_GOAL_ZONE = "checkout"  # the conversion goal when the config has such a zone


@dataclass(frozen=True, slots=True)
class HourCount:
    """Visits started in one local hour (`start`: epoch seconds; `label`: local, with offset)."""

    start: float
    label: str
    visits: int


@dataclass(frozen=True, slots=True)
class VisitFigures:
    """The period's visits: how many, of how many customers, how long the closed ones lasted."""

    count: int
    customers: int
    closed: int
    open: int
    median_duration_s: float | None
    mean_duration_s: float | None


@dataclass(frozen=True, slots=True)
class ZoneDwell:
    """Finished stays in a zone (its `exit` events in the period)."""

    zone: str
    name: str
    entries: int
    devices: int
    total_s: float
    median_s: float | None


@dataclass(frozen=True, slots=True)
class PoolUsage:
    """A code pool: codes imported, handed out (ever, and in the period), still free."""

    pool: str
    total: int
    handed_out: int
    handed_out_in_period: int
    remaining: int


@dataclass(frozen=True, slots=True)
class Report:
    """Every figure of one report."""

    store_id: str
    store_name: str
    period: Period
    footfall: tuple[HourCount, ...]
    visits: VisitFigures
    dwell: tuple[ZoneDwell, ...]
    zones: tuple[ZoneReach, ...]
    funnel: tuple[FunnelStep, ...]
    offers: tuple[RuleOffers, ...]
    goal_zone: str | None
    conversion: tuple[Conversion, ...]
    codes: tuple[PoolUsage, ...]


def footfall(visits: Sequence[VisitRecord], period: Period) -> tuple[HourCount, ...]:
    """Visits started in each local hour of the period (every hour, zeros included)."""
    tz = period.tz
    counts = Counter(hour_start(v.started_at, tz) for v in visits if v.started_at in period)
    return tuple(HourCount(h, hour_label(h, tz), counts.get(h, 0)) for h in period.hours())


def visit_figures(visits: Sequence[VisitRecord]) -> VisitFigures:
    """Counts and durations; a visit still open has no duration yet and is counted apart."""
    durations = [v.ended_at - v.started_at for v in visits if v.ended_at is not None]
    customers = {v.customer for v in visits if v.customer is not None}
    return VisitFigures(
        count=len(visits),
        customers=len(customers),
        closed=len(durations),
        open=len(visits) - len(durations),
        median_duration_s=median(durations),
        mean_duration_s=mean(durations),
    )


def dwell_per_zone(
    zones: Sequence[tuple[str, str]], stays: Sequence[Stay]
) -> tuple[ZoneDwell, ...]:
    """For each (id, name) zone in order: entries, devices, total and median dwell."""
    out = []
    for zone, name in zones:
        mine = [s for s in stays if s.zone == zone]
        dwell = [s.dwell_s for s in mine]
        devices = len({s.device for s in mine})
        out.append(ZoneDwell(zone, name, len(mine), devices, sum(dwell), median(dwell)))
    return tuple(out)


def pool_usage(codes: Sequence[PoolCode], period: Period) -> tuple[PoolUsage, ...]:
    """Per pool (by name): total, handed out ever and in the period, remaining."""
    out = []
    for pool in sorted({c.pool for c in codes}):
        mine = [c for c in codes if c.pool == pool]
        handed = [c.assigned_at for c in mine if c.assigned_at is not None]
        in_period = sum(at in period for at in handed)
        out.append(PoolUsage(pool, len(mine), len(handed), in_period, len(mine) - len(handed)))
    return tuple(out)


def build_report(
    data: ReportData,
    *,
    store: tuple[str, str],
    zones: Sequence[Zone],
    funnel: Sequence[Step],
    goal_zone: str | None,
) -> Report:
    """Every figure of the period's rows; `store` is (id, name), `zones` the config's, in
    order, `funnel` the ordered steps, `goal_zone` the conversion goal (None: no conversion)."""
    named = [(z.id, z.name) for z in zones]
    per_visit = enters_by_visit(data.visits, data.enters)
    goal = [e for e in data.enters if e.zone == goal_zone] if goal_zone else []
    return Report(
        store_id=store[0],
        store_name=store[1],
        period=data.period,
        footfall=footfall(data.visits, data.period),
        visits=visit_figures(data.visits),
        dwell=dwell_per_zone(named, data.stays),
        zones=zone_reach(named, per_visit),
        funnel=ordered_funnel(funnel, per_visit) if funnel else (),
        offers=offers_per_rule(data.offers, data.feedback),
        goal_zone=goal_zone,
        conversion=conversions(data.offers, goal) if goal_zone else (),
        codes=pool_usage(data.codes, data.period),
    )
