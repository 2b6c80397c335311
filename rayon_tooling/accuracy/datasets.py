"""Recorded BLE data sets as Rayon inputs: anchors, zones, observation streams, ground truth.

Each converter (`tetam`, `kolakowski`, `uci`, `uji`) reads one folder of ../shared/datasets
(README there) where it lies and returns a `Dataset`: the anchors (fixed receivers in mode A,
store beacons in mode B — the locator treats both alike), zones of room or aisle size that we
defined (docs/accuracy.md says how), and a train and a test `Part` that never share a track,
a day or a position.  Beside them a calibration `Part`: what a store would survey before live
traffic (a fingerprint survey or a calibration walk), from the set's own files, and the part
the methods trained on it are scored on (`calibration_test`, the test part unless the set's
campaigns say otherwise); the two never share data.  Scan-based sets get synthetic times: one
scan is one instant, and the scans of one walk are `SCAN_INTERVAL_S` apart.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import shapely
from shapely.geometry import Polygon, box

from gateway.config.model import Anchor, AnchorKind, Zone
from gateway.errors import InvalidInput
from gateway.events import Observation
from gateway.locate.grid import Walls

SCAN_INTERVAL_S = 2.0  # between consecutive scans of one walk (UCI, UJI): a phone's scan period
DATASETS_ENV = "RAYON_DATASETS"


@dataclass(frozen=True, slots=True)
class Truth:
    """Where the device really was at `at`, and the zone that contains it."""

    at: float
    x: float
    y: float
    zone: str


@dataclass(frozen=True, slots=True)
class Stream:
    """One walk of one device: its observations and ground truth, both in time order.

    `unit` names what the split keeps apart (a track, a day, a set of positions).
    """

    device: str
    unit: str
    observations: tuple[Observation, ...]
    truth: tuple[Truth, ...]


@dataclass(frozen=True, slots=True)
class Part:
    """The streams of one side of a split."""

    streams: tuple[Stream, ...]

    def instants(self) -> int:
        """How many evaluation instants (ground-truth points) the part holds."""
        return sum(len(s.truth) for s in self.streams)

    def units(self) -> frozenset[str]:
        """The tracks, days or position sets this part is made of."""
        return frozenset(s.unit for s in self.streams)


_SAME_AS_TEST = Part(())


@dataclass(frozen=True, slots=True)
class Dataset:
    """A converted data set.  `window_s`: the span of raw samples that makes one instant
    for the unfiltered baselines (0: samples of exactly that instant, one scan or row).
    `walls`: polylines in the set's metres that a walker cannot cross (the grid's motion).
    `calibration`: the survey made before live traffic, what the calibrated methods train on;
    `calibration_test`: the part they are scored on (default: `test`), never sharing data
    with `calibration`; `calibration_split` says how the two were drawn."""

    name: str
    mode: str
    anchors: tuple[Anchor, ...]
    zones: tuple[Zone, ...]
    train: Part
    test: Part
    window_s: float
    split: str
    calibration: Part
    calibration_split: str
    walls: Walls = ()
    calibration_test: Part = _SAME_AS_TEST

    def __post_init__(self) -> None:
        if self.calibration_test is _SAME_AS_TEST:
            object.__setattr__(self, "calibration_test", self.test)


class ZoneMap:
    """Point → zone id: the zone containing the point, else the nearest one (walls, edges)."""

    def __init__(self, zones: Sequence[Zone]) -> None:
        if not zones:
            raise ValueError("a zone map needs at least one zone")
        self._ids = [z.id for z in zones]
        self._polygons = [z.polygon for z in zones]
        for polygon in self._polygons:
            shapely.prepare(polygon)

    def zone_of(self, x: float, y: float) -> str:
        """The id of the zone at (x, y)."""
        for zid, polygon in zip(self._ids, self._polygons, strict=True):
            if shapely.contains_xy(polygon, x, y):
                return zid
        point = shapely.Point(x, y)
        return min(zip(self._ids, self._polygons, strict=True), key=lambda z: z[1].distance(point))[
            0
        ]


def zone(zid: str, polygon: Polygon) -> Zone:
    """A zone for evaluation (hysteresis plays no part in a per-instant score); its outline is
    the polygon's exterior."""
    return Zone(id=zid, name=zid, outline=tuple((x, y) for x, y in polygon.exterior.coords[:-1]))


def grid_zones(x_edges: Sequence[float], y_edges: Sequence[float], prefix: str) -> tuple[Zone, ...]:
    """Rectangular cells between consecutive edges, named `<prefix><col>-<row>` from 1."""
    return tuple(
        zone(f"{prefix}{i + 1}-{j + 1}", box(x0, y0, x1, y1))
        for i, (x0, x1) in enumerate(itertools.pairwise(x_edges))
        for j, (y0, y1) in enumerate(itertools.pairwise(y_edges))
    )


def anchor(aid: str, x: float, y: float, kind: AnchorKind) -> Anchor:
    """An anchor with the default calibration (the benchmark fits its own on training data)."""
    return Anchor(id=aid, kind=kind, x=x, y=y)


def datasets_root(explicit: str | Path | None = None) -> Path:
    """Where the data sets live: `explicit`, else $RAYON_DATASETS, else ../shared/datasets
    next to the repository root."""
    if explicit is not None:
        return Path(explicit)
    env = os.environ.get(DATASETS_ENV)
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[3] / "shared" / "datasets"


def require(path: Path) -> Path:
    """`path` if it exists, else an error saying which file a converter needs."""
    if not path.exists():
        raise InvalidInput(
            f"{path}: missing; point --datasets or ${DATASETS_ENV} at the folder of "
            "../shared/datasets"
        )
    return path


def scan_stream(
    device: str, unit: str, scans: Iterable[tuple[float, float, str, dict[str, float]]]
) -> Stream:
    """A stream from scans (x, y, zone, {anchor: rssi}), one instant `SCAN_INTERVAL_S` apart."""
    observations: list[Observation] = []
    truth: list[Truth] = []
    for k, (x, y, zid, rssi) in enumerate(scans):
        at = k * SCAN_INTERVAL_S
        observations.extend(Observation(at, device, a, v) for a, v in sorted(rssi.items()))
        truth.append(Truth(at, x, y, zid))
    return Stream(device, unit, tuple(observations), tuple(truth))


Loader = Callable[[Path], Dataset]
