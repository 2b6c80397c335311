"""Daniş et al. "tetam" office (../shared/datasets/danis_tetam): 12 receivers, one beacon walked.

Mode A.  Every packet of `trk/*_all_sensors.mbd` is an observation at its own timestamp and
carries the camera-annotated position; ground truth is sampled every 0.5 s (the position
annotated on the last packet).  Zones: 3 m cells laid so the walked aisles (x ≈ 6 and 12 m,
y ≈ 4.2, 8.5 and 13.2 m) run through the middle of cells, outer strips merged into the edge
cells: 6 × 6 cells over the 20.7 × 17.6 m area.  Split by track: the two tracks walked with
the carrier turning on the spot ("with rotation") and straight_03, the only north–south
walk, are the test; the six others train.  One packet reads +42 dBm (a glitch noted in the
README): RSSI ≥ 0 is dropped.

Calibration: the fingerprints of `hst/set_1` and `hst/set_2` (two surveys on other dates,
126 positions): per 3-D position, per receiver, a normalised RSSI histogram over 1 dB bins
(`Bins:` holds the 81 edges; a packet of r dBm counts in the bin from r).  Each position
becomes a static stream, the beacon standing there for `HST_SECONDS`: each receiver sends
`HST_RATE_HZ` packets a second (the tracks' rate), whose values are the histogram's quantiles
at (j + ½)/N — so their counts follow the probabilities — spread over time in golden-ratio
order so every second sees low and high values alike, the receivers staggered within each
interval.  Truth once a second at the position: one instant per second of survey.  The
receivers of the fingerprints must be the `Dongles` of tetam.dev.  Scored on the test tracks.
"""

from __future__ import annotations

import ast
import math
from pathlib import Path

import numpy as np

from gateway.config.model import Anchor, AnchorKind
from gateway.errors import InvalidInput
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
HST_SETS = ("set_1", "set_2")
HST_SECONDS = 10  # survey time per position
HST_RATE_HZ = 2  # packets a second per receiver, as in the tracks
GOLDEN = (math.sqrt(5.0) - 1.0) / 2.0


def load(root: Path) -> Dataset:
    """Convert the tetam folder under `root`."""
    folder = require(root / "danis_tetam")
    anchors = _anchors(require(folder / "cnf" / "tetam.dev"))
    zones = grid_zones(X_EDGES, Y_EDGES, "cell")
    zmap = ZoneMap(zones)
    known = {a.id for a in anchors}
    calibration = tuple(
        stream
        for hst in HST_SETS
        for stream in _fingerprints(
            require(folder / "hst" / hst / "tetam_multi_rssi.hst"), hst, known, zmap
        )
    )

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
        calibration=Part(calibration),
        calibration_split=(
            f"the fingerprints of hst/set_1 and set_2, {HST_SECONDS} s per position; "
            "the test tracks test"
        ),
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


def _fingerprints(path: Path, hst: str, known: set[str], zmap: ZoneMap) -> list[Stream]:
    """The positions of one .hst file as static streams (module docstring)."""
    lines = {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        key, _, value = line.partition(":")
        lines[key] = (number, value)
    try:
        edges = [float(v) for v in ast.literal_eval(lines["Bins"][1])]
        table = ast.literal_eval(lines["Fingerprints"][1])
    except (KeyError, ValueError, SyntaxError) as exc:
        raise InvalidInput(
            f"{path}: needs a 'Bins:' and a 'Fingerprints:' line of Python literals "
            f"({exc}); restore the file from the data set's hst/ folder"
        ) from None
    streams = []
    for k, (where, sensors) in enumerate(sorted(table.items())):
        x, y, _ = ast.literal_eval(where)
        unknown = sorted(set(sensors) - known)
        if unknown:
            raise InvalidInput(
                f"{path}:{lines['Fingerprints'][0]}: receivers {unknown} at {where} are not "
                "Dongles of cnf/tetam.dev; use the .dev file that belongs to this survey"
            )
        histograms = {
            s: np.sum([h for h in by_beacon.values()], axis=0) for s, by_beacon in sensors.items()
        }
        device = f"{DEVICE}:hst/{hst}/{k}"
        observations = _static_packets(device, histograms, edges[:-1])
        truth = tuple(
            Truth(float(t), float(x), float(y), zmap.zone_of(x, y))
            for t in range(1, HST_SECONDS + 1)
        )
        streams.append(Stream(device, f"hst/{hst}:{where}", observations, truth))
    return streams


def _static_packets(
    device: str, histograms: dict[str, np.ndarray], bins: list[float]
) -> tuple[Observation, ...]:
    """`HST_RATE_HZ` packets a second per receiver over `HST_SECONDS`, their values the
    histogram's quantiles in golden-ratio order, the receivers staggered."""
    n = HST_SECONDS * HST_RATE_HZ
    levels = (np.arange(n) + 0.5) / n
    rank = np.argsort(np.argsort((np.arange(n) * GOLDEN) % 1.0))  # slot → quantile, spread
    observations = []
    receivers = sorted(s for s, h in histograms.items() if np.sum(h) > 0)
    for i, sensor in enumerate(receivers):
        cdf = np.cumsum(histograms[sensor]) / np.sum(histograms[sensor])
        values = np.asarray(bins)[np.minimum(np.searchsorted(cdf, levels), len(bins) - 1)]
        for slot in range(n):
            at = (slot + (i + 0.5) / len(receivers)) / HST_RATE_HZ
            observations.append(Observation(at, device, sensor, float(values[rank[slot]])))
    observations.sort(key=lambda o: o.at)
    return tuple(observations)
