"""Where simulated shoppers walk: entrance → 2–4 aisles (wandering inside) → checkout → exit.

Walks are straight lines between points at 1–1.4 m/s (0.6 m/s while browsing), as knots
(time, x, y) with the walked distance; `headings` gives the walking direction at any time
(the simulator's body-loss model needs it).  Shelves are not obstacles in this version.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import shapely
from shapely.geometry import Polygon
from shapely.geometry.base import BaseGeometry

from gateway.config.model import Anchor, Zone
from gateway.errors import InvalidInput


@dataclass(frozen=True, slots=True)
class Floor:
    """The areas a walk goes through, from the config's zones."""

    entrance: Polygon
    checkout: Polygon
    aisles: tuple[Polygon, ...]


@dataclass(frozen=True, slots=True)
class WalkPath:
    """A shopper's walk as knots: times, positions and walked distance."""

    t: np.ndarray  # knot times, seconds from the start of the period
    x: np.ndarray
    y: np.ndarray
    s: np.ndarray  # walked distance at each knot


def headings(path: WalkPath, times: np.ndarray) -> np.ndarray:
    """The walking direction (radians) at each time; a pause keeps the last direction."""
    dx, dy = np.diff(path.x), np.diff(path.y)
    moving = np.hypot(dx, dy) > 1e-9
    last = np.maximum.accumulate(np.where(moving, np.arange(len(dx)), -1))
    angles = np.where(last >= 0, np.arctan2(dy[np.maximum(last, 0)], dx[np.maximum(last, 0)]), 0.0)
    seg = np.clip(np.searchsorted(path.t, times, side="right") - 1, 0, max(len(dx) - 1, 0))
    return angles[seg] if len(dx) else np.zeros(len(times))


def walk(floor: Floor, rng: np.random.Generator, start: float, end: float) -> WalkPath:
    """Entrance → 2–4 aisles (wandering 20–120 s in each) → checkout → entrance."""
    speed = rng.uniform(1.0, 1.4)
    knots = [(start, *point_in(floor.entrance, rng))]
    n_aisles = min(int(rng.integers(2, 5)), len(floor.aisles))
    for a in rng.choice(len(floor.aisles), size=n_aisles, replace=False).tolist():
        _go(knots, point_in(floor.aisles[a], rng), speed)
        _wander(knots, floor.aisles[a], rng.uniform(20.0, 120.0), rng)
    _go(knots, point_in(floor.checkout, rng), speed)
    _pause(knots, rng.uniform(30.0, 120.0))
    _go(knots, point_in(floor.entrance, rng), speed)
    arr = np.array(knots)
    t, x, y = arr[:, 0], arr[:, 1], arr[:, 2]
    s = np.concatenate(([0.0], np.cumsum(np.hypot(np.diff(x), np.diff(y)))))
    if t[-1] <= end:
        return WalkPath(t, x, y, s)
    keep = t < end  # the period ends mid-trip: stop the path at `end`
    cut = (np.append(t[keep], end), np.append(x[keep], np.interp(end, t, x)))
    return WalkPath(
        *cut, np.append(y[keep], np.interp(end, t, y)), np.append(s[keep], np.interp(end, t, s))
    )


def _go(knots: list[tuple[float, float, float]], to: tuple[float, float], speed: float) -> None:
    t, x, y = knots[-1]
    knots.append((t + math.hypot(to[0] - x, to[1] - y) / speed, to[0], to[1]))


def _pause(knots: list[tuple[float, float, float]], seconds: float) -> None:
    t, x, y = knots[-1]
    knots.append((t + seconds, x, y))


def _wander(
    knots: list[tuple[float, float, float]], area: Polygon, dwell: float, rng: np.random.Generator
) -> None:
    """Browse inside `area` for about `dwell` seconds: short slow walks and pauses."""
    until = knots[-1][0] + dwell
    while knots[-1][0] < until:
        _go(knots, point_in(area, rng), 0.6)
        _pause(knots, min(rng.uniform(3.0, 15.0), max(until - knots[-1][0], 0.0)))


def point_in(area: BaseGeometry, rng: np.random.Generator, tries: int = 64) -> tuple[float, float]:
    """A uniform random point inside `area` (rejection sampling in its bounds, `tries` draws;
    its representative point if none falls inside)."""
    x0, y0, x1, y1 = area.bounds
    xs, ys = rng.uniform(x0, x1, tries), rng.uniform(y0, y1, tries)
    ok = np.flatnonzero(shapely.contains_xy(area, xs, ys))
    if len(ok) == 0:
        p = area.representative_point()
        return float(p.x), float(p.y)
    return float(xs[ok[0]]), float(ys[ok[0]])


def floor_plan(zones: tuple[Zone, ...], scanners: tuple[Anchor, ...]) -> Floor:
    """Entrance, checkout and aisles from the zone ids, with fallbacks for sparse configs."""
    by_id = {z.id: z.polygon for z in zones}
    aisles = tuple(z.polygon for z in zones if z.id.startswith("aisle"))
    if not aisles:
        special = {"store", "entrance", "checkout"}
        aisles = tuple(z.polygon for z in zones if z.id not in special)
    outline = by_id.get("store") or _hull(zones, scanners)
    entrance = by_id.get("entrance", outline)
    return Floor(entrance, by_id.get("checkout", entrance), aisles or (outline,))


def _hull(zones: tuple[Zone, ...], scanners: tuple[Anchor, ...]) -> Polygon:
    pts = [(a.x, a.y) for a in scanners] + [c for z in zones for c in z.polygon.exterior.coords]
    if len(pts) < 3:
        raise InvalidInput("the simulator needs zones or at least 3 scanner anchors to walk in")
    hull = shapely.MultiPoint(pts).convex_hull
    return hull if isinstance(hull, Polygon) else Polygon(hull.buffer(1.0).exterior)
