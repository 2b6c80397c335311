"""A calibration walk as `rayon calibrate --map-out` reads it: what the walking devices were
heard with (adverts heard by scanners, phones' scans of the store beacons), where the truth
puts them then (a position, or only a zone), and the radio map learned from it.

* Every advert of a device of the truth is one RSSI sample of its scanner; every sightings
  message of a phone (mapped to its device by `--customers`) is one scan: an RSSI sample of
  each beacon it lists, and the row of anchors it heard.
* A sample or scan is kept where the truth knows the device's position (interpolated between
  position lines) or its zone (a zone line); elsewhere it is left out.
* Held back: the walk is cut into `SEGMENT_S` segments from its first truth line and every
  `HOLD_EVERY`th is left out of a second fit; the Locator with that map then runs over the
  held-back segments alone, asked every second where the device is (`evaluate`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from gateway.config.model import Anchor, Config, Zone
from gateway.decode.privacy import PrivacyFilter
from gateway.events import TraceItem
from gateway.locate.grid import GridSettings, grid_geometry
from gateway.locate.radiomap import GridGeometry, RadioMap, Survey, fit_radio_map, zone_cells
from gateway.offline.calibrate import Criteria, Samples, fit_anchors, readings
from gateway.offline.truth import NO_ZONE, Truth
from gateway.sources.trace import TraceError
from gateway.zones.index import ZoneIndex

SEGMENT_S = 30.0
HOLD_EVERY = 5


@dataclass(slots=True)
class Walk:
    """The samples and scans of the truth's devices, with where the truth puts each.

    Samples: `at`, `device` (index into `devices`), `anchor` (index into `anchors`), `rssi`,
    `scan` (the index of its scan, −1 for an advert), `x`, `y` (NaN unless known) and `zone`
    (`NO_ZONE` unless a zone line holds).  Scans: `scan_at`, `scan_device`, `scan_x`,
    `scan_y`, `scan_zone`, `scan_heard` (scans × anchors)."""

    anchors: tuple[str, ...]
    devices: list[str] = field(default_factory=list)
    at: np.ndarray = field(default_factory=lambda: np.zeros(0))
    device: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    anchor: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    rssi: np.ndarray = field(default_factory=lambda: np.zeros(0))
    scan: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    x: np.ndarray = field(default_factory=lambda: np.zeros(0))
    y: np.ndarray = field(default_factory=lambda: np.zeros(0))
    zone: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    scan_at: np.ndarray = field(default_factory=lambda: np.zeros(0))
    scan_device: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    scan_x: np.ndarray = field(default_factory=lambda: np.zeros(0))
    scan_y: np.ndarray = field(default_factory=lambda: np.zeros(0))
    scan_zone: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    scan_heard: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), dtype=bool))
    bad_lines: int = 0

    def known(self) -> np.ndarray:
        """The samples whose position or zone the truth gives."""
        out: np.ndarray = np.isfinite(self.x) | (self.zone >= 0)
        return out

    def scan_known(self) -> np.ndarray:
        out: np.ndarray = np.isfinite(self.scan_x) | (self.scan_zone >= 0)
        return out


def read_walk(
    config: Config,
    items: Iterable[TraceItem | TraceError],
    truth: Truth,
    aliases: Mapping[str, str] | None = None,
) -> Walk:
    """The walk's samples and scans of the devices of `truth` (`aliases`: a phone's
    `phone:<token>` → its truth device), each placed by the truth."""
    anchors = tuple(a.id for a in config.anchors)
    index = {a: i for i, a in enumerate(anchors)}
    wanted = truth.devices()
    alias = aliases or {}
    allow = PrivacyFilter(config.identity.proximity_uuids, config.identity.eddystone_namespaces)
    walk, samples = Walk(anchors), Samples()
    devices: dict[str, int] = {}
    rows: list[tuple[float, int, int, float, int]] = []
    scans: list[tuple[float, int, frozenset[int]]] = []
    for got in readings(config, items, allow, samples):
        group = got if isinstance(got, tuple) else (got,)
        kept = [o for o in group if o.anchor in index]
        name = alias.get(kept[0].device, kept[0].device) if kept else ""
        if name not in wanted:
            continue
        d = devices.setdefault(name, len(devices))
        scan = -1
        if isinstance(got, tuple):
            scan = len(scans)
            scans.append((kept[0].at, d, frozenset(index[o.anchor] for o in kept)))
        rows.extend((o.at, d, index[o.anchor], float(o.rssi), scan) for o in kept)
    walk.devices, walk.bad_lines = list(devices), samples.bad_lines
    _fill_samples(walk, rows, truth)
    _fill_scans(walk, scans, truth)
    return walk


def _place(
    truth: Truth, devices: list[str], at: np.ndarray, device: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(x, y, zone) of each (time, device): x, y NaN where unknown, zone `NO_ZONE`."""
    x, y = np.full(len(at), math.nan), np.full(len(at), math.nan)
    zone = np.full(len(at), NO_ZONE, dtype=np.int64)
    for d, name in enumerate(devices):
        mine = device == d
        px, py, known = truth.positions(name, at[mine])
        x[mine] = np.where(known, px, math.nan)
        y[mine] = np.where(known, py, math.nan)
        zone[mine] = truth.zone_at(name, at[mine])
    return x, y, zone


def _fill_samples(walk: Walk, rows: list[tuple[float, int, int, float, int]], truth: Truth) -> None:
    arr = np.array(rows, dtype=float).reshape(-1, 5)
    walk.at, walk.rssi = arr[:, 0], arr[:, 3]
    walk.device, walk.anchor = arr[:, 1].astype(np.int64), arr[:, 2].astype(np.int64)
    walk.scan = arr[:, 4].astype(np.int64)
    walk.x, walk.y, walk.zone = _place(truth, walk.devices, walk.at, walk.device)


def _fill_scans(walk: Walk, scans: list[tuple[float, int, frozenset[int]]], truth: Truth) -> None:
    walk.scan_at = np.array([s[0] for s in scans], dtype=float)
    walk.scan_device = np.array([s[1] for s in scans], dtype=np.int64)
    walk.scan_heard = np.zeros((len(scans), len(walk.anchors)), dtype=bool)
    for k, (_, _, heard) in enumerate(scans):
        walk.scan_heard[k, list(heard)] = True
    walk.scan_x, walk.scan_y, walk.scan_zone = _place(
        truth, walk.devices, walk.scan_at, walk.scan_device
    )


def survey_of(walk: Walk, samples: np.ndarray, scans: np.ndarray) -> Survey:
    """The `Survey` of the samples and scans selected (boolean masks), placed by the truth."""
    s = samples & walk.known()
    c = scans & walk.scan_known()
    return Survey(
        anchors=walk.anchors,
        anchor=walk.anchor[s],
        rssi=walk.rssi[s],
        x=np.nan_to_num(walk.x[s]),
        y=np.nan_to_num(walk.y[s]),
        zone=np.where(np.isfinite(walk.x[s]), NO_ZONE, walk.zone[s]),
        scan_x=np.nan_to_num(walk.scan_x[c]),
        scan_y=np.nan_to_num(walk.scan_y[c]),
        scan_zone=np.where(np.isfinite(walk.scan_x[c]), NO_ZONE, walk.scan_zone[c]),
        scan_heard=walk.scan_heard[c],
    )


def distances(
    walk: Walk, anchors: Sequence[Anchor], selected: np.ndarray, height_m: float
) -> Samples:
    """(distance, rssi) per anchor of the selected samples with a known position: the
    path-loss fit's input."""
    out = Samples()
    pos = {a.id: (a.x, a.y) for a in anchors}
    keep = selected & np.isfinite(walk.x)
    for k, aid in enumerate(walk.anchors):
        mine = keep & (walk.anchor == k)
        ax, ay = pos[aid]
        d = np.hypot(np.hypot(walk.x[mine] - ax, walk.y[mine] - ay), height_m)
        for dist, r in zip(d.tolist(), walk.rssi[mine].tolist(), strict=True):
            out.add(aid, dist, r)
    return out


def held_back(walk: Walk, truth: Truth) -> tuple[np.ndarray, np.ndarray]:
    """Which samples and which scans fall in a held-back segment."""
    start, _ = truth.span()
    return _held(walk.at, start), _held(walk.scan_at, start)


def _held(at: np.ndarray, start: float) -> np.ndarray:
    out: np.ndarray = (
        np.floor((at - start) / SEGMENT_S).astype(np.int64) % HOLD_EVERY == HOLD_EVERY - 1
    )
    return out


def fit_map(
    config: Config,
    walk: Walk,
    truth: Truth,
    criteria: Criteria,
    selected: tuple[np.ndarray, np.ndarray],
    *,
    made_at: str = "",
    source: str = "",
) -> RadioMap:
    """The radio map of the selected samples and scans: the anchors' path loss fitted
    robustly on those with a known position (an anchor that cannot be fitted keeps the
    config's), then `fit_radio_map` over cells covering the anchors, the walk and the zones."""
    samples, scans = selected
    fits, _ = fit_anchors(
        config.anchors, distances(walk, config.anchors, samples, criteria.height_m), criteria
    )
    fitted = {f.anchor.id: f for f in fits}
    anchors = [
        replace(a, rssi_at_1m=f.rssi_at_1m, path_loss_exponent=f.path_loss_exponent)
        if (f := fitted.get(a.id)) is not None
        else a
        for a in config.anchors
    ]
    geometry = map_geometry(config, truth)
    return fit_radio_map(
        anchors,
        survey_of(walk, samples, scans),
        geometry,
        zone_cells(config.zones, geometry),
        made_at=made_at,
        source=source,
    )


def map_geometry(config: Config, truth: Truth) -> GridGeometry:
    """The map's cells: the locator's grid over the anchors, the walk and every zone."""
    px, py = truth.points()
    cover = list(zip(px.tolist(), py.tolist(), strict=True))
    cover += [corner for z in config.zones for corner in z.outline]
    return grid_geometry(config.anchors, GridSettings(cell_m=config.locate.cell_m), cover=cover)


# -- coverage --------------------------------------------------------------------------------


def covered_zones(zones: Sequence[Zone], truth: Truth) -> set[int]:
    """The zones the walk entered: a position line inside it, or a zone line for it or for a
    zone it wholly holds (a surveyor in an aisle is in the store)."""
    px, py = truth.points()
    index = ZoneIndex(zones)
    got = (
        set(np.flatnonzero(index.containing_many(px, py).any(axis=1)).tolist())
        if len(px)
        else set()
    )
    for k in truth.named_zones():
        got |= {j for j, z in enumerate(zones) if j == k or z.polygon.covers(zones[k].polygon)}
    return got


def zone_counts(zones: Sequence[Zone], walk: Walk) -> tuple[np.ndarray, np.ndarray]:
    """Per zone, how many samples and how many scans the walk placed in it (a sample known by
    a zone counts there and in the zones that wholly hold it)."""
    return (
        _count(zones, walk.x, walk.y, walk.zone),
        _count(zones, walk.scan_x, walk.scan_y, walk.scan_zone),
    )


def _count(zones: Sequence[Zone], x: np.ndarray, y: np.ndarray, zone: np.ndarray) -> np.ndarray:
    counts = np.zeros(len(zones), dtype=np.int64)
    pointed = np.isfinite(x)
    if pointed.any():
        counts += ZoneIndex(zones).containing_many(x[pointed], y[pointed]).sum(axis=1)
    for k, n in zip(*np.unique(zone[~pointed & (zone >= 0)], return_counts=True), strict=True):
        for j, z in enumerate(zones):
            if j == k or z.polygon.covers(zones[int(k)].polygon):
                counts[j] += n
    return counts
