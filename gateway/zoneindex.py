"""`ZoneIndex`: the store's zone polygons prepared once for point-in-zone tests, and the
geometry the zone decisions need (rivals, gaps, depths).  Pure.

Two zones are *rivals* when a device cannot sensibly be in both at once: their polygons share
no area, or only a sliver (at most `SLIVER_SHARE` of the smaller one, the slop of two aisles
drawn edge to edge).  Zones that really overlap — the store outline around its aisles, a promo
end-cap drawn over an aisle — are meant to hold together and are never rivals.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import shapely
from shapely.geometry import Polygon

from gateway.config import Zone

SLIVER_SHARE = 0.05  # an overlap up to this share of the smaller zone still makes rivals


class ZoneIndex:
    """The zones' polygons, prepared once, with their margin buffers and rivals."""

    def __init__(self, zones: Sequence[Zone]) -> None:
        self.zones = tuple(zones)
        self.ids = tuple(z.id for z in self.zones)
        raw = [z.polygon for z in self.zones]
        grown = [z.polygon.buffer(z.margin_m) if z.margin_m > 0 else z.polygon for z in zones]
        self._geoms = np.array(raw + grown, dtype=object)
        shapely.prepare(self._geoms)
        self._boundaries = [p.boundary for p in raw]
        self._inradius = [_inradius(p) for p in raw]
        self.rivals: tuple[tuple[int, ...], ...] = _rivals(raw)
        self._rival_pairs = {(i, j) for i, js in enumerate(self.rivals) for j in js}
        self._bounds = shapely.total_bounds(self._geoms) if self.zones else np.zeros(4)
        self._gaps: dict[tuple[int, int], float] = {}

    def masks(self, x: float, y: float) -> tuple[np.ndarray, np.ndarray]:
        """Per zone: is (x, y) inside the polygon; is it inside the polygon grown by margin."""
        hit = shapely.intersects_xy(self._geoms, x, y)
        n = len(self.zones)
        return hit[:n], hit[n:]

    def containing(self, x: float, y: float) -> tuple[str, ...]:
        """Ids of the zones whose polygon contains (x, y), boundary included."""
        inside, _ = self.masks(x, y)
        return tuple(self.ids[i] for i in np.flatnonzero(inside))

    def containing_many(self, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
        """A (zones × points) boolean matrix of containment, boundary included."""
        geoms = self._geoms[: len(self.zones), None]
        return np.asarray(shapely.intersects_xy(geoms, xs[None, :], ys[None, :]), dtype=bool)

    def depth(self, i: int, x: float, y: float) -> float:
        """How far (x, y), a point inside zone `i`, is from that zone's edge, in metres."""
        return float(shapely.distance(self._boundaries[i], shapely.Point(x, y)))

    def are_rivals(self, i: int, j: int) -> bool:
        """Whether zones `i` and `j` are rivals (see the module docstring)."""
        return (i, j) in self._rival_pairs

    def span_m(self) -> float:
        """The diagonal of the box around every zone: no walk between two zones is longer."""
        x0, y0, x1, y1 = (float(v) for v in self._bounds)
        return math.hypot(x1 - x0, y1 - y0)

    def inradius(self, i: int) -> float:
        """The deepest a point can be inside zone `i` (its largest inscribed circle's radius)."""
        return self._inradius[i]

    def gap(self, start: int, end: int) -> float:
        """The shortest distance from zone `start` grown by its margin to zone `end`'s
        polygon: what a device last confirmed in `start` must at least walk to be in `end`.
        Straight line, as walls are not in the config.  Computed once per pair."""
        key = (start, end)
        got = self._gaps.get(key)
        if got is None:
            n = len(self.zones)
            got = self._gaps[key] = float(
                shapely.distance(self._geoms[n + start], self._geoms[end])
            )
        return got

    def nearest(self, among: Sequence[int], x: float, y: float, within: float) -> int | None:
        """The zone of `among` nearest to (x, y) if it is at most `within` metres away."""
        if not among:
            return None
        dist = shapely.distance(self._geoms[list(among)], shapely.Point(x, y))
        k = int(np.argmin(dist))
        return among[k] if float(dist[k]) <= within else None


def _inradius(poly: Polygon) -> float:
    if poly.is_empty:
        return 0.0
    return float(shapely.maximum_inscribed_circle(poly).length)


def _rivals(polys: Sequence[Polygon]) -> tuple[tuple[int, ...], ...]:
    """Per zone, the indexes of its rivals (see the module docstring).  An STRtree finds the
    pairs that touch or overlap; every pair it does not return shares nothing, so competes."""
    n = len(polys)
    together: set[tuple[int, int]] = set()
    left, right = shapely.STRtree(polys).query(polys, predicate="intersects")
    for i, j in zip(left.tolist(), right.tolist(), strict=True):
        if i < j and _overlap(polys[i], polys[j]):
            together |= {(i, j), (j, i)}
    return tuple(tuple(j for j in range(n) if j != i and (i, j) not in together) for i in range(n))


def _overlap(a: Polygon, b: Polygon) -> bool:
    smaller = min(a.area, b.area)
    return smaller > 0 and a.intersection(b).area > SLIVER_SHARE * smaller
