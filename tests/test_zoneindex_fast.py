"""`ZoneIndex`'s plain-float geometry (`zonegeom`) against shapely, the oracle it replaced on
the per-fix path: containment, the margin, depth and the nearest zone, on random points and
on the points where floats bite (vertices, edges, cell lines of the grid)."""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Sequence

import numpy as np
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st
from shapely import affinity
from shapely.geometry import Point, Polygon

from gateway.config.model import Zone
from gateway.zones.index import ZoneIndex

# shapely's buffer draws a quarter circle as 8 chords: the arc's points it leaves out are at
# least this share of the margin away from the polygon.
CHORD = math.cos(math.pi / 32)


def box(x0: float, y0: float, x1: float, y1: float) -> Polygon:
    return Polygon([(x0, y0), (x1, y0), (x1, y1), (x0, y1)])


def zone(zid: str, poly: Polygon, margin: float = 0.0) -> Zone:
    """A zone of `poly`'s outline (zones have no holes: config.yaml gives one outline)."""
    return Zone(zid, zid, tuple((x, y) for x, y in poly.exterior.coords[:-1]), margin_m=margin)


def shapes() -> list[Polygon]:
    """Rectangles, a concave L, a C around a box, rotated rectangles, a triangle."""
    ring = Polygon([(30, 0), (42, 0), (42, 12), (30, 12), (30, 9), (39, 9), (39, 3), (30, 3)])
    ell = Polygon([(0, 20), (10, 20), (10, 24), (4, 24), (4, 32), (0, 32)])
    return [
        box(0, 0, 10, 8),
        box(10, 0, 15, 8),  # shares x = 10 with the first
        box(-3.25, -2.5, 50.75, 40.5),  # around everything
        ell,
        ring,
        affinity.rotate(box(14, 20, 24, 24), 30, origin="center"),
        affinity.rotate(box(26, 22, 29, 34), -63.4, origin="centroid"),
        Polygon([(44, 14), (50, 30), (40, 26)]),
        box(35.5, 4.5, 37.5, 7.5),  # inside the C's notch
    ]


def index_of(margins: Sequence[float]) -> tuple[ZoneIndex, list[Polygon]]:
    polys = shapes()
    zones = [zone(f"z{k}", p, m) for k, (p, m) in enumerate(zip(polys, margins, strict=True))]
    return ZoneIndex(zones), polys


def test_shapes_keep_their_kind() -> None:
    """The rectangles take the box test; the L, the ring and the rotated ones do not."""
    index, _ = index_of([0.0] * 9)
    rects = [shape.rect for shape in index._shapes]
    assert rects == [True, True, True, False, False, False, False, False, True]


def boundary_points(polys: Sequence[Polygon]) -> list[tuple[float, float]]:
    """Every vertex, and points along every edge (exactly on it when the edge is straight
    along an axis)."""
    out: list[tuple[float, float]] = []
    for poly in polys:
        for ring in [poly.exterior, *poly.interiors]:
            coords = list(ring.coords)
            for (ax, ay), (bx, by) in itertools.pairwise(coords):
                out += [(ax, ay)] + [(ax + f * (bx - ax), ay + f * (by - ay)) for f in (0.25, 0.5)]
    return out


def sample(n: int, seed: int) -> list[tuple[float, float]]:
    rng = random.Random(seed)
    pts = [(rng.uniform(-6, 54), rng.uniform(-6, 44)) for _ in range(n)]
    pts += [(float(rng.randint(-5, 52)), float(rng.randint(-5, 42))) for _ in range(n // 4)]
    pts += [(round(rng.uniform(-6, 54), 1), round(rng.uniform(-6, 44), 1)) for _ in range(n // 4)]
    return pts


def check_point(
    index: ZoneIndex, polys: list[Polygon], margins: list[float], x: float, y: float
) -> None:
    hits = index.hits(x, y)
    p = Point(x, y)
    for i, (poly, m) in enumerate(zip(polys, margins, strict=True)):
        raw, grown = hits.get(i, (False, False))
        d = float(shapely.distance(poly, p))
        edge = float(shapely.distance(poly.boundary, p))
        want_raw = bool(shapely.intersects_xy(poly, x, y))
        if raw != want_raw:  # only a hair from a slanted edge may a float decide otherwise
            assert edge < 1e-9 and not index._shapes[i].rect, (i, x, y)
        grown_poly = poly.buffer(m) if m > 0 else poly
        want_grown = bool(shapely.intersects_xy(grown_poly, x, y))
        if grown != want_grown:
            near_margin = abs(d - m) < 1e-9 or (m == 0 and edge < 1e-9)
            in_chord = grown and d > CHORD * m - 1e-9  # the arc shapely cuts with a chord
            assert near_margin or in_chord, (i, x, y, grown, d)
        assert not raw or grown  # the polygon is inside its grown self
        if raw:
            assert index.depth(i, x, y) == edge  # the same float as shapely's


def test_hits_and_depth_agree_with_shapely_on_many_points() -> None:
    for margins in ([0.0] * 9, [0.5, 1.5, 0.0, 1.0, 2.0, 0.75, 1.25, 0.3, 0.0]):
        index, polys = index_of(margins)
        for x, y in sample(1500, seed=7) + boundary_points(polys):
            check_point(index, polys, margins, x, y)


@settings(max_examples=300, deadline=None)
@given(
    st.floats(-8, 56, allow_nan=False),
    st.floats(-8, 46, allow_nan=False),
    st.lists(st.sampled_from([0.0, 0.25, 1.0, 3.0]), min_size=9, max_size=9),
)
def test_hits_agree_with_shapely(x: float, y: float, margins: list[float]) -> None:
    index, polys = index_of(margins)
    check_point(index, polys, margins, x, y)


def test_containing_is_the_raw_hits_in_zone_order() -> None:
    index, polys = index_of([1.0] * 9)
    for x, y in sample(400, seed=3):
        want = tuple(f"z{i}" for i, p in enumerate(polys) if shapely.intersects_xy(p, x, y))
        assert index.containing(x, y) == want
    xs, ys = np.array([5.0, 10.0, 60.0]), np.array([4.0, 8.0, 0.0])
    assert index.containing_many(xs, ys)[:2].tolist() == [[True, True, False], [False, True, False]]


def nearest_oracle(
    polys: Sequence[Polygon], among: Sequence[int], x: float, y: float, within: float
) -> int | None:
    """What `nearest` was: shapely's distances and the first of the least."""
    if not among:
        return None
    dist = shapely.distance(np.array([polys[j] for j in among], dtype=object), Point(x, y))
    k = int(np.argmin(dist))
    return among[k] if float(dist[k]) <= within else None


def test_nearest_agrees_with_shapely() -> None:
    index, polys = index_of([0.5] * 9)
    rng = random.Random(11)
    pools = [tuple(range(9)), (3, 5, 6, 7), (8, 0, 1), (1, 0), (4,), ()]
    for x, y in sample(600, seed=5) + boundary_points(polys):
        for among in pools:
            within = rng.choice([0.0, 0.5, 2.0, 4.4, 15.0, math.inf])
            assert index.nearest(among, x, y, within) == nearest_oracle(polys, among, x, y, within)


def test_nearest_breaks_ties_by_the_order_given() -> None:
    """(10, 4) is on the shared edge of z0 and z1: both at 0, the first listed wins."""
    index, _ = index_of([0.0] * 9)
    assert index.nearest((0, 1), 10.0, 4.0, 1.0) == 0
    assert index.nearest((1, 0), 10.0, 4.0, 1.0) == 1
    assert index.nearest([1, 0], 10.0, 4.0, 1.0) == 1  # any sequence, not only tuples
    assert index.nearest((1, 0), 20.0, 4.0, 4.0) is None  # 5 m from z1
    assert index.nearest((1, 0), 20.0, 4.0, math.nan) is None


def test_a_grid_of_cells_agrees_on_its_lines() -> None:
    """200 cells edge to edge, as the benchmark store: points on the cells' shared edges and
    corners (the grid's own cell lines fall there too) hold every cell they touch."""
    cells = [box(5.0 * c, 4.0 * r, 5.0 * c + 5, 4.0 * r + 4) for r in range(10) for c in range(20)]
    polys = [box(0, 0, 100, 40), *cells[:-1]]
    index = ZoneIndex([zone(f"z{k}", p) for k, p in enumerate(polys)])
    geoms = np.array(polys, dtype=object)
    pts = [(x * 2.5, y * 2.0) for x in range(-1, 42) for y in range(-1, 22)]
    pts += sample(2000, seed=9)
    rng = random.Random(2)
    for x, y in pts:
        want = np.flatnonzero(shapely.intersects_xy(geoms, x, y)).tolist()
        assert sorted(index.hits(x, y)) == want, (x, y)
        among = tuple(sorted(rng.sample(range(len(polys)), 60)))
        within = rng.choice([0.0, 1.0, 3.0, 9.0])
        assert index.nearest(among, x, y, within) == nearest_oracle(polys, among, x, y, within)


def test_empty_and_degenerate_inputs() -> None:
    assert ZoneIndex([]).hits(1.0, 2.0) == {}
    assert ZoneIndex([]).containing(1.0, 2.0) == ()
    index = ZoneIndex([zone("a", box(0, 0, 4, 4)), Zone("e", "e", ())])
    assert index.hits(2.0, 2.0) == {0: (True, True)}
    assert index.hits(math.nan, 2.0) == {} and index.hits(2.0, math.inf) == {}
    assert index.nearest((1, 0), 6.0, 2.0, 5.0) == 0
