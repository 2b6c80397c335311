"""Kolakowski's furnished flat (../shared/datasets/kolakowski_flat): 6 anchors, a robot tag.

Mode A with walls: `layout.csv` is one polyline tracing the flat's walls, the doors gaps in
it, handed to the grid's motion as `Dataset.walls`.  Each row of the CSV files (a robot
position, LiDAR-SLAM truth, and the RSS of the six anchors, ~3 rows a second) is one
instant at its own timestamp; an empty cell is an anchor that did not hear the tag.
Zones: the flat's four rooms read off `layout.csv`: the west room, the L-shaped living
room, the hall along the south wall and the south-east room, split at the middle of each
wall.  Split by session: the calibration survey (4,104 points) trains, the robot's test
run recorded hours later tests.  The walking-person test has no per-sample truth and is
not used.  Calibration: the same survey (the set's calibration walk), scored on the robot run.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

from shapely.geometry import Polygon, box

from gateway.config.model import Anchor, AnchorKind
from gateway.events import Observation
from rayon_tooling.accuracy.datasets import (
    Dataset,
    Part,
    Stream,
    Truth,
    ZoneMap,
    anchor,
    require,
    zone,
)

NAME = "kolakowski"
ANCHOR_COLUMNS = ("1", "2", "3", "4", "5", "6")
ZONES = (
    zone("room-west", box(0.0, 2.18, 2.64, 7.1)),
    zone(
        "living",
        Polygon([(2.64, 2.12), (6.32, 2.12), (6.32, 4.19), (9.07, 4.19), (9.07, 7.1), (2.64, 7.1)]),
    ),
    zone("hall", box(0.0, 0.0, 3.96, 2.12)),
    zone("room-south-east", box(3.96, 0.0, 6.22, 2.12)),
)


def load(root: Path) -> Dataset:
    """Convert the kolakowski folder under `root`."""
    folder = require(root / "kolakowski_flat")
    anchors = _anchors(require(folder / "anchors.csv"))
    zmap = ZoneMap(ZONES)
    train = _stream(folder / "calibration" / "calibration_df.csv", "calibration", zmap)
    test = _stream(folder / "tests" / "test_robot_df.csv", "robot-test", zmap)
    return Dataset(
        name=NAME,
        mode="A",
        anchors=anchors,
        zones=ZONES,
        train=Part((train,)),
        test=Part((test,)),
        window_s=0.0,
        split="by session: calibration survey trains, the robot test run (hours later) tests",
        calibration=Part((train,)),
        calibration_split="the calibration survey (the train part); the robot run tests",
        walls=(_layout(require(folder / "layout.csv")),),
    )


def _layout(path: Path) -> tuple[tuple[float, float], ...]:
    """The wall polyline: one (x, y) in metres a row."""
    with path.open(newline="") as f:
        return tuple((float(row["x"]), float(row["y"])) for row in csv.DictReader(f))


def _anchors(path: Path) -> tuple[Anchor, ...]:
    with path.open(newline="") as f:
        return tuple(
            anchor(row["id"], float(row["x"]), float(row["y"]), AnchorKind.SCANNER)
            for row in csv.DictReader(f)
        )


def _stream(path: Path, unit: str, zmap: ZoneMap) -> Stream:
    """Rows → observations at the row's time (ns → s) and one ground-truth point per row."""
    device = f"kolakowski:{unit}"
    observations: list[Observation] = []
    truth: list[Truth] = []
    with require(path).open(newline="") as f:
        for row in csv.DictReader(f):
            at = float(row["ts"]) / 1e9
            x, y = float(row["x"]), float(row["y"])
            truth.append(Truth(at, x, y, zmap.zone_of(x, y)))
            for aid in ANCHOR_COLUMNS:
                cell = row[f"rssi_{aid}"]
                if cell and math.isfinite(rssi := float(cell)):
                    observations.append(Observation(at, device, aid, rssi))
    return Stream(device, unit, tuple(observations), tuple(truth))
