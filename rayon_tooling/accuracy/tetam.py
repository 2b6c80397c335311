"""Daniş et al. "tetam" office (../shared/datasets/danis_tetam): 12 receivers, one beacon walked.

Mode A.  Every packet of `trk/*_all_sensors.mbd` is an observation at its own timestamp and
carries the camera-annotated position; ground truth is sampled every 0.5 s (the position
annotated on the last packet).  Zones: 3 m cells laid so the walked aisles (x ≈ 6 and 12 m,
y ≈ 4.2, 8.5 and 13.2 m) run through the middle of cells, outer strips merged into the edge
cells: 6 × 6 cells over the 20.7 × 17.6 m area.  Split by track: the two tracks walked with
the carrier turning on the spot ("with rotation") and straight_03, the only north–south
walk, are the test; the six others train.  One packet reads +42 dBm (a glitch noted in the
README): RSSI ≥ 0 is dropped.
"""

from __future__ import annotations

import ast
from pathlib import Path

from gateway.config.model import Anchor, AnchorKind
from gateway.events import Observation
from rayon_tooling.accuracy.datasets import (
    Dataset,
    Part,
    Stream,
    Truth,
    ZoneMap,
    anchor,
    grid_zones,
    require,
)

NAME = "tetam"
TEST_TRACKS = ("rectangular_with_rotation", "straight_03", "zigzagging_with_rotation")
TRAIN_TRACKS = (
    "rectangular_without_rotation",
    "straight_01",
    "straight_02",
    "straight_04",
    "straight_05",
    "zigzagging_without_rotation",
)
X_EDGES = (-1.0, 4.5, 7.5, 10.5, 13.5, 16.5, 21.7)
Y_EDGES = (-1.0, 3.5, 6.5, 9.5, 12.5, 15.5, 18.7)
TRUTH_EVERY_S = 0.5
DEVICE = "tetam:beacon1"


def load(root: Path) -> Dataset:
    """Convert the tetam folder under `root`."""
    folder = require(root / "danis_tetam")
    anchors = _anchors(require(folder / "cnf" / "tetam.dev"))
    zones = grid_zones(X_EDGES, Y_EDGES, "cell")
    zmap = ZoneMap(zones)
    known = {a.id for a in anchors}

    def part(tracks: tuple[str, ...]) -> Part:
        return Part(
            tuple(_track(folder / "trk" / f"{t}_all_sensors.mbd", t, known, zmap) for t in tracks)
        )

    return Dataset(
        name=NAME,
        mode="A",
        anchors=anchors,
        zones=zones,
        train=part(TRAIN_TRACKS),
        test=part(TEST_TRACKS),
        window_s=1.0,
        split="by track: 6 train; straight_03 and the two walks with rotation test",
    )


def _anchors(path: Path) -> tuple[Anchor, ...]:
    """The `Dongles:` line of tetam.dev: MAC → [[x, y, z], colour, alias]."""
    for line in path.read_text().splitlines():
        if line.startswith("Dongles:"):
            table = ast.literal_eval(line.split(":", 1)[1])
            return tuple(
                anchor(mac, float(v[0][0]), float(v[0][1]), AnchorKind.SCANNER)
                for mac, v in sorted(table.items())
            )
    raise ValueError(f"{path}: no 'Dongles:' line")


def _track(path: Path, name: str, known: set[str], zmap: ZoneMap) -> Stream:
    """One .mbd track: every packet an observation, ground truth once a second."""
    device = f"{DEVICE}:{name}"
    observations: list[Observation] = []
    truth: list[Truth] = []
    for line in require(path).read_text().splitlines():
        fields = line.split(",")
        at, sensor, rssi = float(fields[0]), fields[1], float(fields[3])
        x, y = float(fields[4]), float(fields[5])
        if not truth or at - truth[-1].at >= TRUTH_EVERY_S:
            truth.append(Truth(at, x, y, zmap.zone_of(x, y)))
        if sensor in known and rssi < 0:
            observations.append(Observation(at, device, sensor, rssi))
    observations.sort(
        key=lambda o: o.at
    )  # the per-sensor merge is off by microseconds here and there
    return Stream(device, name, tuple(observations), tuple(truth))
