"""The probabilistic grid's robust likelihood and its walls (`GridSettings.outlier_z`,
`GridSettings.walls`), on plain values through the Locator and on the grid itself."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from gateway.config.model import Anchor, AnchorKind, FilterKind, LocateConfig, PositionMethod
from gateway.events import Fix, Observation
from gateway.locate.grid import GridSettings, PositionGrid
from gateway.locate.locator import Locator
from tests.test_locate import DEV, SQUARE, rssi_at


def grid_locator(anchors: tuple[Anchor, ...], settings: GridSettings) -> Locator:
    return Locator(
        anchors,
        min_interval_s=0.0,
        method=PositionMethod.GRID,
        rssi_filter=FilterKind.RAW,
        grid=settings,
    )


def hear(
    loc: Locator, heard_by: tuple[Anchor, ...], at: float, where: tuple[float, float]
) -> Fix | None:
    """Every anchor of `heard_by` hears the device at `where` with its true model RSSI."""
    for a in heard_by:
        d = math.hypot(where[0] - a.x, where[1] - a.y)
        loc.observe(Observation(at, DEV, a.id, rssi_at(a, d)))
    return loc.locate(DEV, at)


@pytest.mark.parametrize("where", [(13.0, 6.0), (6.0, 14.0)])
def test_one_anchor_15_db_off_does_not_drag_the_robust_grid(where: tuple[float, float]) -> None:
    """Anchor "a" is configured 15 dB louder at 1 m than it hears: the plain log-normal
    likelihood trades the other three off against it and lands metres away; clipped at
    2.5 σ, "a" is outvoted."""
    wrong = (dataclasses.replace(SQUARE[0], rssi_at_1m=SQUARE[0].rssi_at_1m + 15.0), *SQUARE[1:])
    errors = {}
    for z in (math.inf, 2.5):
        loc = grid_locator(wrong, GridSettings(sigma_db=3.0, cell_m=0.5, outlier_z=z))
        fixes = [hear(loc, SQUARE, float(t), where) for t in range(5)]
        last = fixes[-1]
        assert last is not None
        errors[z] = math.hypot(last.x - where[0], last.y - where[1])
    assert errors[2.5] < 1.0
    assert errors[math.inf] > 5.0


def test_the_robust_grid_agrees_with_the_plain_one_when_every_anchor_fits() -> None:
    plain = grid_locator(SQUARE, GridSettings(sigma_db=3.0, cell_m=0.5))
    robust = grid_locator(SQUARE, GridSettings(sigma_db=3.0, cell_m=0.5, outlier_z=2.5))
    a, b = hear(plain, SQUARE, 0.0, (13.0, 6.0)), hear(robust, SQUARE, 0.0, (13.0, 6.0))
    assert a is not None and b is not None
    assert (b.x, b.y) == pytest.approx((a.x, a.y), abs=0.05)


# Four anchors in a cross, a wall from north to south through the middle: the north and
# south anchors alone hear a device at (5, 10) exactly as one at (15, 10).
CROSS = tuple(
    Anchor(k, AnchorKind.SCANNER, x, y)
    for k, x, y in (("w", 0.0, 10.0), ("e", 20.0, 10.0), ("s", 10.0, 0.0), ("n", 10.0, 20.0))
)
WALL = (((10.0, -5.0), (10.0, 25.0)),)


def test_a_device_behind_a_wall_stays_on_its_side_when_the_links_cannot_tell() -> None:
    xs = {}
    for walls in ((), WALL):
        loc = grid_locator(CROSS, GridSettings(sigma_db=3.0, cell_m=0.5, walls=walls))
        for t in range(5):  # all four: the west side
            hear(loc, CROSS, float(t), (5.0, 10.0))
        for t in range(5, 40):  # north and south only: mirror-ambiguous
            fix = hear(loc, CROSS[2:], float(t), (5.0, 10.0))
        assert fix is not None
        xs[bool(walls)] = fix.x
    assert xs[True] < 6.0  # held on the west side by the wall
    assert xs[False] > 8.0  # without it, the mass leaks to the mirror image


def test_a_stores_walls_reach_the_grid_of_its_configured_locator() -> None:
    """`Locator.configured(anchors, locate, walls)`, as the pipeline builds it from
    config.yaml's `locate:` and `walls:`: the same west-side device, default σ."""
    xs = {}
    for walls in ((), WALL):
        loc = Locator.configured(CROSS, LocateConfig(method=PositionMethod.GRID), walls)
        for t in range(5):
            hear(loc, CROSS, float(t), (5.0, 10.0))
        for t in range(5, 40):
            fix = hear(loc, CROSS[2:], float(t), (5.0, 10.0))
        assert fix is not None
        xs[bool(walls)] = fix.x
    assert xs[True] < 6.5 < 8.0 < xs[False]


def test_the_walled_blur_goes_through_a_door_and_keeps_the_mass() -> None:
    door = (((10.0, -5.0), (10.0, 9.0)), ((10.0, 11.0), (10.0, 25.0)))  # a gap at y 9–11
    for walls, through in ((WALL, False), (door, True)):
        grid = PositionGrid(CROSS, GridSettings(cell_m=0.5, walls=walls))
        rows, cols = grid.shape()
        prior = np.zeros((rows, cols), dtype=np.float32)
        row = int(np.argmin(np.abs(grid.ys - 10.0)))
        prior[row, int(np.argmin(np.abs(grid.xs - 8.0)))] = 1.0  # 2 m west of the wall
        moved = grid._blur(prior, 4.0)
        assert moved is not None
        assert float(moved.sum()) == pytest.approx(1.0)
        east = float(moved[:, grid.xs > 10.0].sum())
        assert (east > 0.05) if through else (east == 0.0)
