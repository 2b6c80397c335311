"""Checks a zone's or geofence's outline in pure Python (no shapely: `rayon console` loads config).

`outline_problem(closed_outline(points))` says why a list of corners is no simple polygon, in
the words shapely's `explain_validity` used (`Self-intersection[2 2]`), or None when it is one:
at least 3 distinct corners, none repeated twice in a row, no two edges that cross or touch
besides neighbours at their shared corner, and an area above zero (shoelace).  Orientation tests
are exact (fractions), so a corner lying on an edge is found whatever the float rounding.
"""

from __future__ import annotations

from fractions import Fraction
from itertools import combinations

from gateway.config.model import Outline

Point = tuple[float, float]
_FIX = "list the corners in order along the outline"


def closed_outline(points: list[Point] | Outline) -> Outline:
    """The corners without a last one repeating the first (a ring written closed)."""
    ring = tuple((float(x), float(y)) for x, y in points)
    return ring[:-1] if len(ring) > 1 and ring[0] == ring[-1] else ring


def outline_problem(ring: Outline) -> str | None:
    """Why `ring` (as `closed_outline` returns it) is not a simple polygon, or None."""
    repeated = next((p for i, p in enumerate(ring) if p == ring[i - 1]), None)
    if repeated is not None and len(ring) > 1:
        return f"invalid polygon (Repeated point{_at(repeated)}): list each corner once"
    if len(ring) < 3:
        where = _at(ring[0]) if ring else ""
        return f"invalid polygon (Too few points in geometry component{where}): {_FIX}"
    crossing = _spike(ring) or _crossing(ring)
    if crossing is not None:
        return f"invalid polygon ({crossing}): {_FIX}"
    if shoelace_area(ring) <= 0:
        return "the polygon has no area: give at least 3 corners not on a line"
    return None


def shoelace_area(ring: Outline) -> float:
    """The area enclosed by `ring` (absolute value of the shoelace sum)."""
    twice = sum(
        x0 * y1 - x1 * y0 for (x0, y0), (x1, y1) in zip(ring, ring[1:] + ring[:1], strict=True)
    )
    return abs(twice) / 2.0


def _at(p: Point) -> str:
    """`[x y]` with 15 significant digits, as GEOS prints a coordinate."""
    return f"[{_num(p[0])} {_num(p[1])}]"


def _num(v: float) -> str:
    text = f"{v:.15g}"
    return "0" if text == "-0" else text


def _orient(a: Point, b: Point, c: Point) -> int:
    """The sign of the turn a -> b -> c: 1 left, -1 right, 0 on one line (exact)."""
    ax, ay = Fraction(a[0]), Fraction(a[1])
    cross = (Fraction(b[0]) - ax) * (Fraction(c[1]) - ay) - (Fraction(b[1]) - ay) * (
        Fraction(c[0]) - ax
    )
    return (cross > 0) - (cross < 0)


def _spike(ring: Outline) -> str | None:
    """A corner where the outline turns straight back along itself (neighbouring edges overlap)."""
    n = len(ring)
    for i, b in enumerate(ring):
        a, c = ring[i - 1], ring[(i + 1) % n]
        back = (b[0] - a[0]) * (c[0] - b[0]) + (b[1] - a[1]) * (c[1] - b[1]) < 0
        if back and _orient(a, b, c) == 0:
            return f"Self-intersection{_at(b)}"
    return None


def _crossing(ring: Outline) -> str | None:
    """The first meeting of two edges that are not neighbours, in GEOS's words."""
    n = len(ring)
    edges = [(ring[i], ring[(i + 1) % n]) for i in range(n)]
    for i, j in combinations(range(n), 2):
        if j - i in (1, n - 1):
            continue
        found = _meet(edges[i], edges[j])
        if found is not None:
            return found
    return None


def _meet(e: tuple[Point, Point], f: tuple[Point, Point]) -> str | None:
    (p, q), (r, s) = e, f
    if not _boxes_meet(p, q, r, s):
        return None
    d1, d2, d3, d4 = _orient(p, q, r), _orient(p, q, s), _orient(r, s, p), _orient(r, s, q)
    if d1 * d2 < 0 and d3 * d4 < 0:
        return f"Self-intersection{_at(_cross_point(p, q, r, s))}"
    touching = [
        pt
        for pt, d, (a, b) in ((r, d1, e), (s, d2, e), (p, d3, f), (q, d4, f))
        if d == 0 and _within(pt, a, b)
    ]
    if not touching:
        return None
    if d1 == d2 == 0 and len(set(touching)) > 1:  # the edges overlap along a stretch
        return f"Self-intersection{_at(touching[0])}"
    return f"Ring Self-intersection{_at(touching[0])}"


def _boxes_meet(p: Point, q: Point, r: Point, s: Point) -> bool:
    return (
        min(p[0], q[0]) <= max(r[0], s[0])
        and min(r[0], s[0]) <= max(p[0], q[0])
        and min(p[1], q[1]) <= max(r[1], s[1])
        and min(r[1], s[1]) <= max(p[1], q[1])
    )


def _within(pt: Point, a: Point, b: Point) -> bool:
    """`pt`, on the line through a and b, lies on the segment a-b."""
    return min(a[0], b[0]) <= pt[0] <= max(a[0], b[0]) and min(a[1], b[1]) <= pt[1] <= max(
        a[1], b[1]
    )


def _cross_point(p: Point, q: Point, r: Point, s: Point) -> Point:
    """Where the lines p-q and r-s cross (they do), computed exactly then rounded."""
    px, py, qx, qy = (Fraction(v) for v in (*p, *q))
    rx, ry, sx, sy = (Fraction(v) for v in (*r, *s))
    denom = (qx - px) * (sy - ry) - (qy - py) * (sx - rx)
    t = ((rx - px) * (sy - ry) - (ry - py) * (sx - rx)) / denom
    return float(px + t * (qx - px)), float(py + t * (qy - py))
