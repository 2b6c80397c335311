"""Cost of one grid fix (`PositionGrid.update` + `estimate`), per likelihood and motion model.

    .venv/bin/python bench/bench_grid.py [--fixes 2000] [--runs 3] [--dt 0.5]

Twelve anchors over a 40 × 30 m floor (34 × 44 cells of 1 m), six of them heard at each fix,
a fix every `--dt` seconds at 2 m/s (σ = 2·dt m of blur).  Variants: the plain log-normal
(one matrix-vector product), the misfit clipped at `outlier_z` 2.5 σ, and that with two
walls (a door between them) across the floor.  Then the belief a radio map makes the
Locator keep (`locate.radio_map`): per fix, unpack the device's packed belief, the likelihood
of the burst's raw samples (6 anchors, 2 samples each), the motion and jump, the estimate, the
probability of 12 aisle zones and the store, and pack it again.  CPU time; prints the median
of `--runs` per variant in µs per fix, with the min and max.  Printed, never asserted: a
shared machine moves the figures.
"""

from __future__ import annotations

import argparse
import statistics
import time

from gateway.config.model import Anchor, AnchorKind, Zone
from gateway.locate.grid import GridSettings, PositionGrid, grid_geometry
from gateway.locate.locator import Locator
from gateway.locate.radiomap import Survey, fit_radio_map

SPOTS = [
    (0, 0), (20, 0), (40, 0), (0, 30), (20, 30), (40, 30),
    (10, 15), (30, 15), (20, 15), (5, 25), (35, 5), (25, 25),
]  # fmt: skip
ANCHORS = [Anchor(str(i), AnchorKind.SCANNER, float(x), float(y)) for i, (x, y) in enumerate(SPOTS)]
HEARD = [(str(i), -70.0 - 2.0 * i) for i in range(6)]
WALLS = (((10.0, -3.0), (10.0, 12.0)), ((10.0, 14.0), (10.0, 33.0)))
VARIANTS = {
    "plain log-normal": GridSettings(),
    "clipped at 2.5 σ": GridSettings(outlier_z=2.5),
    "clipped, walls": GridSettings(outlier_z=2.5, walls=WALLS),
}


def per_fix_us(settings: GridSettings, fixes: int, dt: float) -> float:
    """CPU µs per update + estimate, after 50 fixes of warm-up (the blur's cache filled)."""
    grid = PositionGrid(ANCHORS, settings)
    post = grid.update(None, 0.0, 2.0, HEARD)
    for _ in range(50):
        post = grid.update(post, dt, 2.0, HEARD)
    started = time.process_time()
    for _ in range(fixes):
        post = grid.update(post, dt, 2.0, HEARD)
        grid.estimate(post)
    return (time.process_time() - started) / fixes * 1e6


def belief_per_fix_us(fixes: int, dt: float) -> float:
    """CPU µs per fix of a Locator with a radio map (the path-loss levels: a map's cost does
    not depend on what it learned), one device, 12 raw samples a burst."""
    settings = GridSettings()
    geometry = grid_geometry(ANCHORS, settings)
    radio_map = fit_radio_map(ANCHORS, Survey.of_points([a.id for a in ANCHORS], []), geometry)
    aisles = [
        Zone(f"aisle-{i}-{j}", "", ((x, y), (x + 5, y), (x + 5, y + 7), (x, y + 7)))
        for i, x in enumerate(range(2, 38, 6))
        for j, y in enumerate((5, 18))
    ]
    zones = [*aisles, Zone("store", "", ((0, 0), (40, 0), (40, 30), (0, 30)))]
    locator = Locator(ANCHORS, radio_map=radio_map, zones=zones)
    at = 0.0

    def burst() -> None:
        nonlocal at
        at += dt
        for k, (anchor, rssi) in enumerate(HEARD * 2):
            locator.observe_link(at + 0.001 * k, "tag", anchor, rssi)

    for _ in range(50):
        burst()
    started = time.process_time()
    for _ in range(fixes):
        burst()
    return (time.process_time() - started) / fixes * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fixes", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--dt", type=float, default=0.5, help="seconds between fixes")
    args = parser.parse_args()
    rows, cols = PositionGrid(ANCHORS, GridSettings()).shape()
    print(f"{rows} × {cols} cells, {len(HEARD)} links heard, a fix every {args.dt:g} s")
    for name, settings in VARIANTS.items():
        runs = [per_fix_us(settings, args.fixes, args.dt) for _ in range(args.runs)]
        print(
            f"{name:<18} {statistics.median(runs):7.1f} µs per fix, median of {args.runs} "
            f"({min(runs):.1f}–{max(runs):.1f})"
        )
    runs = [belief_per_fix_us(args.fixes, args.dt) for _ in range(args.runs)]
    print(
        f"{'radio map belief':<18} {statistics.median(runs):7.1f} µs per fix, median of "
        f"{args.runs} ({min(runs):.1f}–{max(runs):.1f}); 12 raw samples a fix"
    )


if __name__ == "__main__":
    main()
