"""`rayon report --png DIR`: the floor heat map, the hourly footfall and one offer funnel per rule.

matplotlib is an optional extra (`rayon-gateway[report]`), imported only here and only when
charts are asked for; figures are drawn with the object API on the Agg canvas (no pyplot, no
GUI backend, no global state), so the report runs headless on the Pi.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shapely.geometry import Polygon

from gateway.config.model import Zone
from gateway.errors import RuntimeFailure
from gateway.report.kpis import Report
from gateway.report.offers import Conversion, RuleOffers
from gateway.report.table import duration, percent, points
from gateway.zones.tracker import STORE_ZONE_ID

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.colors import Colormap
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

INSTALL_HINT = "pip install 'rayon-gateway[report]'"
_DPI = 120
_INK = "#222222"
_MUTED = "#666666"


def write_charts(
    report: Report, zones: Sequence[Zone], positions: Sequence[tuple[float, float]], folder: Path
) -> list[Path]:
    """Write heatmap.png, footfall.png and funnel-<rule>.png into `folder`; the paths written.
    RuntimeFailure (exit 3) when matplotlib is not installed or the folder cannot be written."""
    _require_matplotlib()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RuntimeFailure(f"--png {folder}: cannot create the folder: {exc.strerror}") from None
    figures = [
        ("heatmap.png", heatmap(report, zones, positions)),
        ("footfall.png", footfall_chart(report)),
    ]
    conversions = {c.rule: c for c in report.conversion}
    for rule in report.offers:
        chart = funnel_chart(report, rule, conversions.get(rule.rule))
        figures.append((f"funnel-{_file_safe(rule.rule)}.png", chart))
    return [_save(fig, folder / name) for name, fig in figures]


def _require_matplotlib() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise RuntimeFailure(
            f"--png needs matplotlib, which is not installed: {INSTALL_HINT}"
        ) from None


def _file_safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)


def _save(fig: Figure, path: Path) -> Path:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    try:
        fig.savefig(path, dpi=_DPI)
    except OSError as exc:
        raise RuntimeFailure(f"{path}: cannot write the chart: {exc.strerror}") from None
    return path


def _figure(width: float, height: float) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height))


def _axes(fig: Figure, left: float, right: float, top: float, bottom: float) -> Axes:
    """Axes with these margins, in inches: a fixed layout, the same on every run and store."""
    width, height = fig.get_size_inches()
    box = (left / width, bottom / height, 1 - (left + right) / width, 1 - (top + bottom) / height)
    return fig.add_axes(box)


_TOP = 0.95  # inches above the axes for the title and the period


def _titles(fig: Figure, title: str, report: Report, note: str = "") -> None:
    """The title, then the store and the period (local time) under it; `note` at the foot."""
    p = report.period
    width, height = fig.get_size_inches()

    def local(at: float) -> str:
        return datetime.fromtimestamp(at, p.tz).strftime("%a %d %b %Y %H:%M")

    period = f"{report.store_name} · {local(p.since)} → {local(p.until)} ({p.tz.key})"
    fig.text(
        0.5,
        1 - 0.3 / height,
        title,
        ha="center",
        va="center",
        fontsize=14,
        fontweight="bold",
        color=_INK,
    )
    fig.text(0.5, 1 - 0.6 / height, period, ha="center", va="center", fontsize=10, color=_MUTED)
    if note:
        fig.text(
            0.15 / width,
            0.12 / height,
            note,
            ha="left",
            va="bottom",
            fontsize=8,
            color=_MUTED,
            linespacing=1.5,
        )


# --- the floor heat map ----------------------------------------------------------------------


def heatmap(
    report: Report, zones: Sequence[Zone], positions: Sequence[tuple[float, float]]
) -> Figure:
    """Zones coloured by total dwell over the floor plan; positions as a faint density."""
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    outline = _outline(zones)
    fig, ax, bar_axes = _floor_figure(outline)
    if positions:
        _density(ax, positions, outline)
    minutes = {d.zone: d.total_s / 60.0 for d in report.dwell}
    # The whole-store zone holds every other one: it would flatten the scale, so it is only
    # the outline here, and its total goes in the note.
    floor = [z for z in zones if z.id != STORE_ZONE_ID]
    norm = Normalize(0.0, max([1.0, *(minutes.get(z.id, 0.0) for z in floor)]))
    cmap = _colormap()
    for zone in floor:
        _zone_patch(ax, zone, minutes.get(zone.id, 0.0), cmap(norm(minutes.get(zone.id, 0.0))))
    ox, oy = outline.exterior.xy
    ax.plot(list(ox), list(oy), color=_INK, linewidth=2.2, zorder=3)
    bar = fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), cax=bar_axes)
    bar.set_label("total dwell in the zone (minutes)")
    _floor_axes(ax, outline)
    _titles(fig, "Dwell per zone", report, _heatmap_note(report, minutes, len(positions)))
    return fig


def _floor_figure(outline: Polygon) -> tuple[Figure, Axes, Axes]:
    """A figure sized to the floor plan (1 m the same length on both axes, the plan at most
    8.2 × 5.6 in), with the colour bar's axes on its right."""
    x0, y0, x1, y1 = outline.bounds
    wide, deep = x1 - x0 + 2.0, y1 - y0 + 2.0
    scale = min(8.2 / wide, 5.6 / deep)
    left, right, bottom = 0.85, 1.3, 0.95
    fig = _figure(left + wide * scale + right, _TOP + deep * scale + bottom)
    ax = _axes(fig, left, right, _TOP, bottom)
    width, height = fig.get_size_inches()
    bar = fig.add_axes(
        ((left + wide * scale + 0.2) / width, bottom / height, 0.2 / width, deep * scale / height)
    )
    return fig, ax, bar


def _density(ax: Axes, positions: Sequence[tuple[float, float]], outline: Polygon) -> None:
    """Where customers were (sampled positions), as faint blue hexagons under the zones."""
    x0, y0, x1, y1 = outline.bounds
    xs, ys = zip(*positions, strict=True)
    cells = ax.hexbin(
        xs,
        ys,
        gridsize=(40, 25),
        extent=(x0, x1, y0, y1),
        cmap="Blues",
        mincnt=1,
        alpha=0.6,
        linewidths=0,
        zorder=1,
    )
    counts = cells.get_array()
    top = float(max(counts.max(), 1.0)) if counts is not None and len(counts) else 1.0
    cells.set_clim(-0.25 * top, top)  # a single position is a light blue, not white


def _zone_patch(ax: Axes, zone: Zone, minutes: float, colour: Any) -> None:
    from matplotlib.patches import Polygon as Patch

    ax.add_patch(
        Patch(
            list(zone.polygon.exterior.coords),
            closed=True,
            facecolor=colour,
            edgecolor=_INK,
            linewidth=0.8,
            alpha=0.8,
            zorder=2,
        )
    )
    _label(ax, zone, minutes, colour)


def _heatmap_note(report: Report, minutes: dict[str, float], positions: int) -> str:
    store = minutes.get(STORE_ZONE_ID)
    whole = f"whole store: {duration(store * 60.0)}; " if store is not None else ""
    density = (
        f"blue: {positions:,} sampled customer positions"
        if positions
        else ("no sampled positions in the period (kept 24 h by default)")
    )
    return f"dwell = finished stays (exit events); {whole}{density}"


def _colormap() -> Colormap:
    from matplotlib import colormaps

    return colormaps["YlOrRd"]


def _outline(zones: Sequence[Zone]) -> Polygon:
    """The store zone's outline, else the hull of every zone."""
    for zone in zones:
        if zone.id == STORE_ZONE_ID:
            return zone.polygon
    from shapely import MultiPolygon

    hull = MultiPolygon([z.polygon for z in zones]).convex_hull
    return hull if isinstance(hull, Polygon) else Polygon(hull.buffer(0.5).exterior)


def _label(ax: Axes, zone: Zone, minutes: float, colour: Any) -> None:
    """The zone's name and total dwell, in white on a dark fill."""
    red, green, blue, _ = colour
    dark = 0.2126 * red + 0.7152 * green + 0.0722 * blue < 0.45
    point = zone.polygon.representative_point()
    name = zone.name if len(zone.name) <= 14 else zone.name.replace(" ", "\n", 1)
    ax.text(
        point.x,
        point.y,
        f"{name}\n{duration(minutes * 60.0)}",
        ha="center",
        va="center",
        fontsize=8,
        color="white" if dark else _INK,
        zorder=4,
    )


def _floor_axes(ax: Axes, outline: Polygon) -> None:
    x0, y0, x1, y1 = outline.bounds
    ax.set_xlim(x0 - 1.0, x1 + 1.0)
    ax.set_ylim(y0 - 1.0, y1 + 1.0)
    ax.set_aspect("equal")
    ax.set_xlabel("x (m) — along the shop front")
    ax.set_ylabel("y (m) — from the entrance wall")
    ax.grid(color="#dddddd", linewidth=0.5, zorder=0)


# --- hourly footfall -------------------------------------------------------------------------


def footfall_chart(report: Report) -> Figure:
    """One bar per local hour of the period: visits started in it."""
    hours = report.footfall
    fig = _figure(11.0, 4.8)
    ax = _axes(fig, 0.8, 0.3, _TOP, 1.45 if len(hours) > 24 else 0.8)
    bars = ax.bar(
        range(len(hours)), [h.visits for h in hours], width=0.85, color="#d95f0e", zorder=2
    )
    if len(hours) <= 48:  # counts on the bars while they are wide enough to read
        ax.bar_label(bars, [str(h.visits) if h.visits else "" for h in hours], fontsize=8)
    step = max(1, len(hours) // 24)
    ticks = list(range(0, len(hours), step))
    ax.set_xticks(
        ticks,
        [_hour_tick(hours[i].start, report, len(hours)) for i in ticks],
        rotation=90 if len(hours) > 24 else 0,
        fontsize=8,
    )
    ax.set_xlim(-0.6, max(len(hours), 1) - 0.4)
    ax.set_ylabel("visits started")
    ax.set_xlabel(f"local hour ({report.period.tz.key})")
    ax.yaxis.set_major_locator(_integer_ticks())
    ax.grid(axis="y", color="#dddddd", linewidth=0.5, zorder=0)
    ax.spines[["top", "right"]].set_visible(False)
    _titles(fig, f"Footfall per hour ({report.visits.count} visits)", report)
    return fig


def _integer_ticks() -> MaxNLocator:
    """Ticks on whole numbers only: counts of visits and offers have no halves."""
    from matplotlib.ticker import MaxNLocator

    return MaxNLocator(integer=True)


def _hour_tick(start: float, report: Report, count: int) -> str:
    local = datetime.fromtimestamp(start, report.period.tz)
    return local.strftime("%H:00") if count <= 24 else local.strftime("%a %d %H:00")


# --- offer funnels ---------------------------------------------------------------------------


def funnel_chart(report: Report, rule: RuleOffers, conversion: Conversion | None) -> Figure:
    """Sent → delivered → opened → redeemed for one rule, with its holdout conversion."""
    fig = _figure(9.0, 4.8)
    ax = _axes(fig, 1.1, 0.4, _TOP, 1.15)
    stages = _stages(rule)
    y = list(range(len(stages)))[::-1]
    counts = [n for _, n, _ in stages]
    ax.barh(y, counts, color=_BLUES, edgecolor=_INK, linewidth=0.6, height=0.7, zorder=2)
    top = max([1, *counts])
    for yi, (_, n, rate) in zip(y, stages, strict=True):
        text = f"{n}" if rate is None else f"{n}  ({percent(rate)} of sent)"
        ax.text(n + top * 0.015, yi, text, va="center", fontsize=9, color=_INK)
    ax.set_yticks(y, [name for name, _, _ in stages])
    ax.set_xlim(0, top * 1.35)
    ax.set_xlabel("offers (distinct offers with each feedback)")
    ax.xaxis.set_major_locator(_integer_ticks())
    ax.grid(axis="x", color="#dddddd", linewidth=0.5, zorder=0)
    ax.spines[["top", "right"]].set_visible(False)
    held = f"{rule.decided} decided, {rule.holdout} held out (control group: recorded, never sent)"
    note = f"{held}\n{_conversion_note(report, conversion)}"
    _titles(fig, f"Offer funnel — rule {rule.rule}", report, note)
    return fig


_BLUES = ("#08519c", "#3182bd", "#6baed6", "#9ecae1")


def _stages(rule: RuleOffers) -> list[tuple[str, int, float | None]]:
    """(name, offers, rate over sent) from sent to redeemed."""
    from gateway.events import FeedbackState as F

    stages: list[tuple[str, int, float | None]] = [("sent", rule.sent, None)]
    for state in (F.DELIVERED, F.OPENED, F.REDEEMED):
        stages.append((state.value, rule.with_feedback(state), rule.rate(state)))
    return stages


def _conversion_note(report: Report, c: Conversion | None) -> str:
    if report.goal_zone is None or c is None:
        return "conversion: no goal zone"
    head = f"conversion (entered {report.goal_zone} while the offer was valid): "
    treated = f"sent {c.treated.converted}/{c.treated.n} ({percent(c.treated.rate)})"
    control = f"holdout {c.control.converted}/{c.control.n} ({percent(c.control.rate)})"
    if c.uplift is None or c.ci_low is None or c.ci_high is None:
        return f"{head}{treated} vs {control}; uplift n/a"
    ci = f"95 % CI {points(c.ci_low)} to {points(c.ci_high)}"
    return f"{head}{treated} vs {control}; uplift {points(c.uplift)} ({ci})"
