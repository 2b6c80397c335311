"""The pure-Python outline check (gateway/config/outline.py) against shapely, the oracle it
replaced: the same outlines are refused, with shapely's words where it had some."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from shapely.geometry import Polygon
from shapely.validation import explain_validity

from gateway.config.model import Outline
from gateway.config.outline import closed_outline, outline_problem, shoelace_area

# Corners on a small grid: collinear corners, shared corners and touching edges come often.
CORNERS = st.lists(
    st.tuples(st.integers(0, 6), st.integers(0, 6)).map(lambda p: (float(p[0]), float(p[1]))),
    min_size=3,
    max_size=8,
)


def shapely_accepts(ring: Outline) -> bool:
    poly = Polygon(ring)
    return poly.is_valid and poly.area > 0


@settings(max_examples=3000, deadline=None)
@given(CORNERS)
def test_it_refuses_what_shapely_refused(points: list[tuple[float, float]]) -> None:
    ring = closed_outline(points)
    repeated = any(p == ring[i - 1] for i, p in enumerate(ring))
    problem = outline_problem(ring)
    if len(ring) < 3:  # shapely raised ValueError on these (the old loader crashed)
        assert problem is not None
        return
    if repeated:  # shapely let these pass; a corner written twice is now a mistake
        assert problem is not None and "Repeated point" in problem
        return
    assert (problem is None) == shapely_accepts(ring), (
        ring,
        problem,
        explain_validity(Polygon(ring)),
    )
    if problem is None:
        assert shoelace_area(ring) == Polygon(ring).area


def test_crossings_are_named_as_shapely_named_them() -> None:
    cases = [
        ((0, 0), (4, 4), (4, 0), (0, 4)),
        ((0, 0), (3, 1), (3, 0), (0, 1.1)),
        ((0, 0), (4, 0), (2, 2), (4, 4), (0, 4), (2, 2)),
        ((0, 0), (10, 0), (10, 10), (0, 10), (5, 10), (5, 5)),
        ((0.1, 0.2), (0.3, 0.3), (0.1, 0.4), (0.3, 0.1)),
    ]
    for case in cases:
        ring = closed_outline([(float(x), float(y)) for x, y in case])
        assert f"({explain_validity(Polygon(ring))})" in (outline_problem(ring) or ""), case


def test_a_ring_written_closed_loses_its_last_corner_only() -> None:
    square = [(0.0, 0.0), (4.0, 0.0), (4.0, 4.0), (0.0, 4.0)]
    assert closed_outline([*square, (0.0, 0.0)]) == tuple(square)
    assert outline_problem(closed_outline([*square, (0.0, 0.0)])) is None
    assert outline_problem(closed_outline([(0.0, 0.0), (1.0, 1.0), (0.0, 0.0)])) == (
        "invalid polygon (Too few points in geometry component[0 0]): list the corners in "
        "order along the outline"
    )
