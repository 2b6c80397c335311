"""UCI "BLE RSSI dataset for indoor localization" (../shared/datasets/uci_ble_rssi).

Mode B: 13 iBeacons in a library hall, an iPhone scanning.  Each labelled row is one scan
at a grid cell (`O02`: column O, row 2).  No beacon coordinates or cell size are published:
beacon positions come from `beacon_positions.csv` (cell units, measured off the layout
image) and one cell is ASSUMED to be `CELL_M` = 3 m, so every distance here scales with that
guess.  A cell (col, row) has its centre at (col, row) cell units.  Zones: blocks of 2 × 2
cells (6 × 6 m with the assumed cell).  -200, -199 and -198 mean "not heard".  Split by day:
10-18-2016, the last day, tests; the ten earlier days train.  Rows of a day are ordered by
their recorded time and replayed as one walk, scans `SCAN_INTERVAL_S` apart.  Calibration:
the days before the test day (the train part), scored on the test day.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from datetime import datetime
from pathlib import Path

from gateway.config.model import AnchorKind
from rayon_tooling.accuracy.datasets import (
    Dataset,
    Part,
    anchor,
    grid_zones,
    require,
    scan_stream,
)

NAME = "uci"
CELL_M = 3.0  # assumed: the data set does not state its cell size
BLOCK_CELLS = 2
TEST_DAY = "10-18-2016"
NOT_HEARD = -198.0


def load(root: Path) -> Dataset:
    """Convert the UCI folder under `root`."""
    folder = require(root / "uci_ble_rssi")
    with require(folder / "beacon_positions.csv").open(newline="") as f:
        anchors = tuple(
            anchor(
                r["beacon"],
                float(r["x_cell"]) * CELL_M,
                float(r["y_cell"]) * CELL_M,
                AnchorKind.BEACON,
            )
            for r in csv.DictReader(f)
        )
    edges = [(k * BLOCK_CELLS + 0.5) * CELL_M for k in range(14)]
    zones = grid_zones(edges, edges, "block")
    days = _days(require(folder / "iBeacon_RSSI_Labeled.csv"), [a.id for a in anchors])
    streams = {day: scan_stream(f"uci:{day}", day, _scans(rows)) for day, rows in days.items()}
    train = Part(tuple(s for d, s in sorted(streams.items()) if d != TEST_DAY))
    return Dataset(
        name=NAME,
        mode="B",
        anchors=anchors,
        zones=zones,
        train=train,
        test=Part((streams[TEST_DAY],)),
        window_s=0.0,
        split=f"by day: {TEST_DAY} (the last) tests, the 10 earlier days train",
        calibration=train,
        calibration_split=f"the days before {TEST_DAY} (the train part); that day tests",
    )


Row = tuple[datetime, str, dict[str, float]]


def _days(path: Path, beacons: list[str]) -> dict[str, list[Row]]:
    days: dict[str, list[Row]] = defaultdict(list)
    with path.open(newline="") as f:
        for r in csv.DictReader(f):
            heard = {b: float(r[b]) for b in beacons if float(r[b]) > NOT_HEARD}
            at = datetime.strptime(r["date"], "%m-%d-%Y %H:%M:%S")
            days[r["date"].split()[0]].append((at, r["location"], heard))
    return days


def _scans(rows: list[Row]) -> list[tuple[float, float, str, dict[str, float]]]:
    scans = []
    for _, cell, heard in sorted(rows, key=lambda r: r[0]):
        col, row = ord(cell[0]) - ord("A") + 1, int(cell[1:])
        zid = f"block{(col - 1) // BLOCK_CELLS + 1}-{(row - 1) // BLOCK_CELLS + 1}"
        scans.append((col * CELL_M, row * CELL_M, zid, heard))
    return scans
