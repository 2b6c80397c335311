"""The zones' polygons as plain floats, for `ZoneIndex`'s per-fix questions (which zones hold
a point, how deep, how far) without a numpy or shapely call: at ~1 µs per question shapely's
per-call overhead was most of a fix's cost.  Built once from the shapely polygons.  Pure.

Distances follow GEOS's point-to-segment formula operation for operation, so they are the very
floats `shapely.distance` gives and a decision on a threshold (challenge depth, accuracy)
comes out the same.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass

from shapely.geometry import Polygon

# ax, ay, bx, by, bx - ax, by - ay, squared length, length
Edge = tuple[float, float, float, float, float, float, float, float]
Box = tuple[float, float, float, float]  # min x, min y, max x, max y
Hit = tuple[bool, bool]  # (inside the polygon, inside the polygon grown by its margin)
# (the cell's rectangles with no margin as (index, box), its other zones, every zone index)
Cell = tuple[tuple[tuple[int, float, float, float, float], ...], tuple[int, ...], tuple[int, ...]]

BOTH: Hit = (True, True)
GROWN_ONLY: Hit = (False, True)
MAX_CELLS = 4096  # the grid's cap: beyond it, cells grow rather than multiply


@dataclass(frozen=True, slots=True)
class Shape:
    """One zone's polygon: its edges (exterior and holes alike), its box, its margin, and
    whether it is an axis-aligned rectangle (then containment is the box test)."""

    edges: tuple[Edge, ...]
    box: Box
    rect: bool
    margin: float

    @classmethod
    def of(cls, poly: Polygon, margin: float) -> Shape:
        """`poly`'s shape; an empty polygon has no edges and holds no point."""
        holes = [] if poly.is_empty else list(poly.interiors)
        rings = [] if poly.is_empty else [poly.exterior, *holes]
        edges = tuple(e for ring in rings for e in _edges(ring.coords))
        if not edges:
            return cls((), (math.inf, math.inf, -math.inf, -math.inf), False, margin)
        x0, y0 = min(e[0] for e in edges), min(e[1] for e in edges)
        x1, y1 = max(e[0] for e in edges), max(e[1] for e in edges)
        rect = not holes and len(edges) == 4
        if rect:  # four corners of the box, and its area (not a bow tie)
            area = (x1 - x0) * (y1 - y0)
            corners = all(ax in (x0, x1) and ay in (y0, y1) for ax, ay, *_ in edges)
            rect = corners and area > 0 and abs(poly.area - area) <= 1e-9 * area
        return cls(edges, (x0, y0, x1, y1), rect, margin)

    def grown_box(self) -> Box:
        """The box around the polygon grown by the margin."""
        x0, y0, x1, y1 = self.box
        m = self.margin
        return (x0 - m, y0 - m, x1 + m, y1 + m)

    def hit(self, x: float, y: float) -> Hit | None:
        """(inside, inside grown) for (x, y), or None when it is outside both.

        Grown is the exact Minkowski sum of the polygon and a disc of radius margin: inside,
        or at most `margin` from the boundary.  shapely's `buffer` draws the round corners as
        chords, so within m·(1 − cos π/16) (2 cm per metre of margin) of a convex corner's arc
        a point held here was outside the buffer; elsewhere both agree.
        """
        x0, y0, x1, y1 = self.box
        if self.rect:
            if x0 <= x <= x1 and y0 <= y <= y1:
                return BOTH
            dx = x0 - x if x < x0 else x - x1 if x > x1 else 0.0
            dy = y0 - y if y < y0 else y - y1 if y > y1 else 0.0
            m = self.margin
            return GROWN_ONLY if dx * dx + dy * dy <= m * m else None
        m = self.margin
        if not (x0 - m <= x <= x1 + m and y0 - m <= y <= y1 + m):
            return None
        if x0 <= x <= x1 and y0 <= y <= y1 and contains(self.edges, x, y):
            return BOTH
        if m > 0 and boundary_distance(self.edges, x, y) <= m:
            return GROWN_ONLY
        return None

    def distance(self, x: float, y: float) -> float:
        """From (x, y) to the polygon: 0 inside or on its boundary (as `shapely.distance`)."""
        x0, y0, x1, y1 = self.box
        if x0 <= x <= x1 and y0 <= y <= y1 and (self.rect or contains(self.edges, x, y)):
            return 0.0
        return boundary_distance(self.edges, x, y)

    def box_distance(self, x: float, y: float) -> float:
        """From (x, y) to the polygon's box: never more than `distance`."""
        x0, y0, x1, y1 = self.box
        dx = x0 - x if x < x0 else x - x1 if x > x1 else 0.0
        dy = y0 - y if y < y0 else y - y1 if y > y1 else 0.0
        return math.hypot(dx, dy)


def _edges(coords: Iterable[tuple[float, ...]]) -> list[Edge]:
    """A closed ring's edges; zero-length ones (repeated vertices) are dropped."""
    pts = [(float(c[0]), float(c[1])) for c in coords]
    out: list[Edge] = []
    for (ax, ay), (bx, by) in itertools.pairwise(pts):
        dx, dy = bx - ax, by - ay
        len2 = dx * dx + dy * dy
        if len2 > 0:
            out.append((ax, ay, bx, by, dx, dy, len2, math.sqrt(len2)))
    return out


def contains(edges: Sequence[Edge], x: float, y: float) -> bool:
    """Whether (x, y) is inside the rings `edges` bound (even-odd, so holes are out), boundary
    included as `shapely.intersects_xy` has it: on an edge is inside."""
    inside = False
    for ax, ay, bx, by, dx, dy, _, _ in edges:
        if (ay > y and by > y) or (ay < y and by < y):
            continue
        c = dx * (y - ay) - dy * (x - ax)  # > 0: (x, y) left of a → b
        if c == 0 and (ax <= x <= bx or bx <= x <= ax):
            return True
        if (ay > y) != (by > y) and (c > 0) == (by > ay):
            inside = not inside  # the ray to +x crosses this edge
    return inside


def boundary_distance(edges: Sequence[Edge], x: float, y: float) -> float:
    """The least distance from (x, y) to `edges`: GEOS's `Distance::pointToSegment`, the same
    operations in the same order, so the same float."""
    best = math.inf
    for ax, ay, bx, by, dx, dy, len2, length in edges:
        r = ((x - ax) * dx + (y - ay) * dy) / len2
        if r <= 0.0:
            ex, ey = x - ax, y - ay
            d = math.sqrt(ex * ex + ey * ey)
        elif r >= 1.0:
            ex, ey = x - bx, y - by
            d = math.sqrt(ex * ex + ey * ey)
        else:
            d = abs(((ay - y) * dx - (ax - x) * dy) / len2) * length
        if d < best:
            best = d
    return best


class Grid:
    """A uniform grid over the zones' grown boxes: each cell lists the zones whose grown box
    meets it, axis-aligned rectangles with no margin apart (a box test settles them).

    Cells are half-open, [k, k + 1) in cell units, so a box that ends on a cell line is not
    listed in the cell beyond; a point on a cell line is looked up in the cells on both sides.
    """

    def __init__(self, shapes: Sequence[Shape]) -> None:
        self._shapes = tuple(shapes)
        boxes = [s.grown_box() for s in shapes if s.edges]
        self._nx = self._ny = 0
        self._x0 = self._y0 = 0.0
        self._sx = self._sy = math.nan  # no cells: every point falls outside the grid
        self.step = 1.0  # the smaller side of a cell, metres
        self._cells: list[Cell] = []
        if not boxes:
            return
        self._x0, self._y0 = min(b[0] for b in boxes), min(b[1] for b in boxes)
        width = max(b[2] for b in boxes) - self._x0
        height = max(b[3] for b in boxes) - self._y0
        cw = _cell_size([b[2] - b[0] for b in boxes], width)
        ch = _cell_size([b[3] - b[1] for b in boxes], height)
        nx, ny = max(1, math.ceil(width / cw)), max(1, math.ceil(height / ch))
        if nx * ny > MAX_CELLS:
            shrink = math.sqrt(MAX_CELLS / (nx * ny))
            nx, ny = max(1, int(nx * shrink)), max(1, int(ny * shrink))
        self._nx, self._ny = nx, ny
        self.step = max(min(width / nx, height / ny), 1e-3)
        self._sx = nx / width if width > 0 else 0.0  # cells per metre
        self._sy = ny / height if height > 0 else 0.0
        members: list[list[int]] = [[] for _ in range(nx * ny)]
        for i, s in enumerate(shapes):
            if s.edges:
                x0, y0, x1, y1 = s.grown_box()
                for k in self._cells_of(x0, y0, x1, y1, registering=True):
                    members[k].append(i)
        self._cells = [self._cell(ks) for ks in members]

    def hits(self, x: float, y: float) -> dict[int, Hit]:
        """The zones whose grown polygon holds (x, y), with (inside, inside grown)."""
        out: dict[int, Hit] = {}
        fx, fy = (x - self._x0) * self._sx, (y - self._y0) * self._sy
        if not (0.0 <= fx <= self._nx and 0.0 <= fy <= self._ny):
            return out  # outside every grown box (or NaN)
        ix, iy = int(fx), int(fy)
        if ix == fx or iy == fy:
            for k in self._cells_of(x, y, x, y):  # on a cell line: the cells on both sides
                self._hits_in(k, x, y, out)
            return out
        rects, others, _ = self._cells[iy * self._nx + ix]
        for i, x0, y0, x1, y1 in rects:
            if x0 <= x <= x1 and y0 <= y <= y1:
                out[i] = BOTH
        shapes = self._shapes
        for i in others:
            got = shapes[i].hit(x, y)
            if got is not None:
                out[i] = got
        return out

    def near(self, x: float, y: float, within: float) -> Collection[int]:
        """The zones whose grown box meets a cell that the square of half-side `within` around
        (x, y) meets: every zone within `within` of the point, and a few more.  `x`, `y` and
        `within` must be finite."""
        if not self._cells:
            return ()
        ks = self._cells_of(x - within, y - within, x + within, y + within)
        if len(ks) == 1:
            return self._cells[ks[0]][2]
        out: set[int] = set()
        for k in ks:
            out.update(self._cells[k][2])
        return out

    def _hits_in(self, k: int, x: float, y: float, out: dict[int, Hit]) -> None:
        rects, others, _ = self._cells[k]
        for i, x0, y0, x1, y1 in rects:
            if x0 <= x <= x1 and y0 <= y <= y1:
                out[i] = BOTH
        for i in others:
            got = self._shapes[i].hit(x, y)
            if got is not None:
                out[i] = got

    def _cells_of(
        self, x0: float, y0: float, x1: float, y1: float, *, registering: bool = False
    ) -> list[int]:
        """The cells a closed box meets (clamped to the grid), as indexes into `_cells`.  A
        box is registered in the cells its half-open extent meets (at least one); a query
        also looks in the cell before a cell line it starts on."""
        fx0, fx1 = (x0 - self._x0) * self._sx, (x1 - self._x0) * self._sx
        fy0, fy1 = (y0 - self._y0) * self._sy, (y1 - self._y0) * self._sy
        if registering:
            i0, j0 = int(fx0), int(fy0)
            i1, j1 = max(i0, math.ceil(fx1) - 1), max(j0, math.ceil(fy1) - 1)
        else:
            i0, j0 = math.ceil(fx0) - 1, math.ceil(fy0) - 1
            i1, j1 = int(fx1), int(fy1)
        nx, ny = self._nx, self._ny
        i0, i1 = min(max(i0, 0), nx - 1), min(max(i1, 0), nx - 1)
        j0, j1 = min(max(j0, 0), ny - 1), min(max(j1, 0), ny - 1)
        return [j * nx + i for j in range(j0, j1 + 1) for i in range(i0, i1 + 1)]

    def _cell(self, ks: list[int]) -> Cell:
        shapes = self._shapes
        rects = tuple((i, *shapes[i].box) for i in ks if shapes[i].rect and shapes[i].margin <= 0)
        others = tuple(i for i in ks if not (shapes[i].rect and shapes[i].margin <= 0))
        return rects, others, tuple(ks)


def _cell_size(sizes: list[float], total: float) -> float:
    """Half the median zone size along one axis: a point then weighs a handful of zones."""
    median = sorted(sizes)[len(sizes) // 2] / 2
    return median if median > 0 else max(total, 1.0)
