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

from gateway.config.model import Zone
from gateway.zones.geom import Grid, Hit, Shape, boundary_distance

SLIVER_SHARE = 0.05  # an overlap up to this share of the smaller zone still makes rivals


class ZoneIndex:
    """The zones' polygons, prepared once, with their margin buffers and rivals.

    The per-fix questions (`hits`, `depth`, `nearest`) run on plain floats (`zonegeom`);
    shapely answers the rest, once per zone or pair, or for many points at a time.
    """

    def __init__(self, zones: Sequence[Zone]) -> None:
        self.zones = tuple(zones)
        self.ids = tuple(z.id for z in self.zones)
        raw = [z.polygon for z in self.zones]
        self.areas = tuple(p.area for p in raw)  # square metres, per zone
        grown = [z.polygon.buffer(z.margin_m) if z.margin_m > 0 else z.polygon for z in zones]
        self._geoms = np.array(raw + grown, dtype=object)
        shapely.prepare(self._geoms)
        self._shapes = tuple(Shape.of(z.polygon, z.margin_m) for z in self.zones)
        self._grid = Grid(self._shapes)
        self._inradius = [_inradius(p) for p in raw]
        rival = _rival_matrix(raw)
        self.rivals: tuple[tuple[int, ...], ...] = tuple(
            tuple(np.flatnonzero(row).tolist()) for row in rival
        )
        # Row i, column j at [i * len(zones) + j]: 1 if rivals.  A grid's cells are nearly all
        # each other's rivals: 200 zones make 39,402 pairs, 4.3 MB as a set of tuples, 40 kB here.
        self.rival_matrix = rival.tobytes()
        self._bounds = shapely.total_bounds(self._geoms) if self.zones else np.zeros(4)
        self._gaps: dict[tuple[int, int], float] = {}
        self._ranks: dict[int, tuple[Sequence[int], dict[int, int]]] = {}

    def hits(self, x: float, y: float) -> dict[int, Hit]:
        """The zones whose polygon grown by its margin holds (x, y), each with (inside the
        polygon, inside the grown polygon); boundaries included.  See `Shape.hit` for how
        grown differs from shapely's buffer near corners."""
        return self._grid.hits(x, y)

    def containing(self, x: float, y: float) -> tuple[str, ...]:
        """Ids of the zones whose polygon contains (x, y), boundary included."""
        got = self._grid.hits(x, y)
        return tuple(self.ids[i] for i in sorted(got) if got[i][0])

    def containing_many(self, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
        """A (zones × points) boolean matrix of containment, boundary included."""
        geoms = self._geoms[: len(self.zones), None]
        return np.asarray(shapely.intersects_xy(geoms, xs[None, :], ys[None, :]), dtype=bool)

    def depth(self, i: int, x: float, y: float) -> float:
        """How far (x, y), a point inside zone `i`, is from that zone's edge, in metres."""
        return boundary_distance(self._shapes[i].edges, x, y)

    def shallower(self, i: int, x: float, y: float, need: float) -> bool:
        """Whether `depth(i, x, y) < need`; for a rectangle, the sides' distances settle it
        unless they are within a hair of `need` (then `depth`'s own float decides)."""
        shape = self._shapes[i]
        if shape.rect:
            x0, y0, x1, y1 = shape.box
            if x0 <= x <= x1 and y0 <= y <= y1:
                d = min(x - x0, x1 - x, y - y0, y1 - y)
                hair = 1e-9 * (1.0 + abs(x) + abs(y))
                if d < need - hair:
                    return True
                if d > need + hair:
                    return False
        return boundary_distance(shape.edges, x, y) < need

    def are_rivals(self, i: int, j: int) -> bool:
        """Whether zones `i` and `j` are rivals (see the module docstring)."""
        return bool(self.rival_matrix[i * len(self.zones) + j])

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
        """The zone of `among` nearest to (x, y) if it is at most `within` metres away (the
        first in `among` of equally near ones).  Only zones near the point are measured: the
        grid's, first in the point's cell, then in squares around it that double until they
        hold every zone as near as the best found so far."""
        if not among:
            return None
        if not (math.isfinite(x) and math.isfinite(y) and 0 <= within < math.inf):
            return self._nearest_of(list(among), {}, x, y, within)[0]  # nothing to prune by
        rank = self._rank(among)
        grid = self._grid
        best, best_d = self._nearest_of(
            [j for j in grid.near(x, y, 0) if j in rank], rank, x, y, within
        )
        half = grid.step
        while best_d > 0 and within > 0:  # else nothing can be nearer, or need be
            reach = min(within, best_d)
            pad = 1e-9 * (1.0 + abs(x) + abs(y) + reach)  # lest a float leave a cell out
            near = [j for j in grid.near(x, y, min(half, reach) + pad) if j in rank]
            best, best_d = self._nearest_of(near, rank, x, y, within)
            if half >= reach:
                break
            half *= 2
        return best

    def _nearest_of(
        self, candidates: list[int], rank: dict[int, int], x: float, y: float, within: float
    ) -> tuple[int | None, float]:
        """Of `candidates`, the nearest at most `within` away and its distance (else None,
        inf); ties go to the lowest `rank` (their order in the caller's `among`), or to the
        earlier of `candidates` when `rank` is empty.  They are measured nearest box first,
        until the boxes are farther than the best so far."""
        shapes = self._shapes
        boxed = []
        for k, j in enumerate(candidates):
            x0, y0, x1, y1 = shapes[j].box
            dx = x0 - x if x < x0 else x - x1 if x > x1 else 0.0
            dy = y0 - y if y < y0 else y - y1 if y > y1 else 0.0
            boxed.append((math.hypot(dx, dy), rank.get(j, k), j))
        boxed.sort()
        best, best_d, best_rank = None, math.inf, math.inf
        for box_d, r, j in boxed:
            if box_d > min(within, best_d) + 1e-9:
                break  # this box and every later one is out of reach, so are their zones
            d = shapes[j].distance(x, y)
            if d < best_d or (d == best_d and r < best_rank):
                best, best_d, best_rank = j, d, float(r)  # float: mypyc keeps it a C double
        return (best, best_d) if best_d <= within else (None, math.inf)

    def _rank(self, among: Sequence[int]) -> dict[int, int]:
        """Zone index → first position in `among`; kept for tuples, as callers pass the same
        `rivals` tuples again and again."""
        got = self._ranks.get(id(among))
        if got is not None and got[0] is among:
            return got[1]
        rank: dict[int, int] = {}
        for k, j in enumerate(among):
            rank.setdefault(j, k)
        if isinstance(among, tuple):
            if len(self._ranks) > 2 * len(self.zones) + 64:
                self._ranks.clear()
            self._ranks[id(among)] = (among, rank)  # held, so its id is not reused
        return rank


def _inradius(poly: Polygon) -> float:
    if poly.is_empty:
        return 0.0
    return float(shapely.maximum_inscribed_circle(poly).length)


def _rival_matrix(polys: Sequence[Polygon]) -> np.ndarray:
    """Which zones are rivals (see the module docstring), an n × n boolean matrix.  An STRtree
    finds the pairs that touch or overlap; every pair it does not return shares nothing, so
    competes."""
    n = len(polys)
    if n == 0:
        return np.zeros((0, 0), dtype=bool)
    geoms = np.array(polys, dtype=object)
    left, right = shapely.STRtree(geoms).query(geoms, predicate="intersects")
    pair = left < right
    left, right = left[pair], right[pair]
    areas = shapely.area(geoms)
    smaller = np.minimum(areas[left], areas[right])
    shared = shapely.area(shapely.intersection(geoms[left], geoms[right]))
    overlap = (smaller > 0) & (shared > SLIVER_SHARE * smaller)
    rival = ~np.eye(n, dtype=bool)
    rival[left[overlap], right[overlap]] = rival[right[overlap], left[overlap]] = False
    return rival
