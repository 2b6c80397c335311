"""UJI BLE RSS database (../shared/datasets/uji_ble_db): a library and an office, mode B.

Single, sparse scans (100 = not heard) at surveyed points, several scans per point, walked
point after point: each collection run (one phone, one beacon setting) is one walk, scans
`SCAN_INTERVAL_S` apart.  The fingerprint id reads `<phone><tx><set>0<point:2><scan:2>`
(library: three phones, beacons at -12 dBm; office: one phone, three transmit powers).

* `uji-lib`: 24 beacons.  Zones follow the shelving: four bays of two shelf aisles each
  (~3.6 m) across the three shelf rows and the two corridors between them (20 zones).
  Split by position: the 34 corridor points train, the 24 points in the shelf aisles —
  never seen in training — test.
* `uji-geo`: 22 beacons, each transmit power a deployment of its own (anchor `B1@2` is
  beacon B1 at setting 2, calibrated apart).  Zones: a 4 × 3 grid laid between the
  surveyed rows and columns.  Split by position: every other surveyed point in (x, y) order tests,
  the others train (a checkerboard over the survey grid).
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path

from gateway.config.model import Anchor, AnchorKind, Zone
from rayon_tooling.accuracy.datasets import (
    Dataset,
    Part,
    Stream,
    ZoneMap,
    anchor,
    grid_zones,
    require,
    scan_stream,
)

NOT_HEARD = 100.0
LIB_X_EDGES = (14.0, 19.5, 23.1, 26.6, 32.0)
LIB_Y_EDGES = (1.5, 5.6, 7.1, 10.1, 11.5, 15.5)
GEO_X_EDGES = (-1.0, 4.25, 9.3, 14.3, 17.5)
GEO_Y_EDGES = (-1.0, 4.0, 6.4, 11.5)

Scan = tuple[str, float, float, list[float]]  # fingerprint id, x, y, RSSI per beacon column


def load_lib(root: Path) -> Dataset:
    """Convert the library zone: position split corridor points → shelf-aisle points."""
    folder = require(root / "uji_ble_db" / "data")
    beacons = _beacons(folder / "dep" / "lib.csv")
    zones = grid_zones(LIB_X_EDGES, LIB_Y_EDGES, "lib")
    scans = _scans(folder, "lib")

    def test(scan: Scan) -> bool:
        return scan[0][2] == "2"  # point set 2: the aisles between the shelves

    return _dataset(
        "uji-lib",
        zones,
        beacons,
        scans,
        run=lambda fid: fid[0],
        is_test=test,
        anchor_id=lambda run, b: b,
        split="by position: 34 corridor points train, 24 shelf-aisle points test (3 phones)",
    )


def load_geo(root: Path) -> Dataset:
    """Convert the office zone: position split odd → even points, per transmit power."""
    folder = require(root / "uji_ble_db" / "data")
    beacons = _beacons(folder / "dep" / "geo.csv")
    zones = grid_zones(GEO_X_EDGES, GEO_Y_EDGES, "geo")
    scans = _scans(folder, "geo")
    return _dataset(
        "uji-geo",
        zones,
        beacons,
        scans,
        run=lambda fid: fid[1],
        is_test=_alternate_positions(scans),
        anchor_id=lambda run, b: f"{b}@{run}",
        split="by position: a checkerboard of the 34 points, 17 train, 17 test (3 tx powers)",
    )


def _dataset(
    name: str,
    zones: tuple[Zone, ...],
    beacons: list[tuple[str, float, float]],
    scans: list[Scan],
    run: Callable[[str], str],
    is_test: Callable[[Scan], bool],
    anchor_id: Callable[[str, str], str],
    split: str,
) -> Dataset:
    zmap = ZoneMap(zones)
    runs = sorted({run(s[0]) for s in scans})
    anchors: dict[str, Anchor] = {}
    for r in runs:
        for b, x, y in beacons:
            aid = anchor_id(r, b)
            anchors[aid] = anchor(aid, x, y, AnchorKind.BEACON)

    def part(test: bool) -> Part:
        streams: list[Stream] = []
        for r in runs:
            mine = [s for s in scans if run(s[0]) == r and is_test(s) == test]
            if not mine:
                continue
            heard = [
                (x, y, zmap.zone_of(x, y), _heard(rssi, [anchor_id(r, b[0]) for b in beacons]))
                for _, x, y, rssi in mine
            ]
            unit = f"{name}:{r}:{'test' if test else 'train'}"
            streams.append(scan_stream(unit, unit, heard))
        return Part(tuple(streams))

    return Dataset(name, "B", tuple(anchors.values()), zones, part(False), part(True), 0.0, split)


def _alternate_positions(scans: list[Scan]) -> Callable[[Scan], bool]:
    """Test = every other surveyed position in (x, y) order: a checkerboard over the grid.

    By coordinates, not by the point number of the id, which does not name the same place
    in every run."""
    positions = sorted({(x, y) for _, x, y, _ in scans})
    test = set(positions[1::2])
    return lambda scan: (scan[1], scan[2]) in test


def _heard(rssi: list[float], ids: list[str]) -> dict[str, float]:
    return {aid: v for aid, v in zip(ids, rssi, strict=True) if v != NOT_HEARD}


def _beacons(path: Path) -> list[tuple[str, float, float]]:
    with require(path).open(newline="") as f:
        return [(r["id"], float(r["x"]), float(r["y"])) for r in csv.DictReader(f)]


def _scans(folder: Path, area: str) -> list[Scan]:
    """The rows of the rss, crd and ids files of `area`, in collection order."""
    rss = require(folder / "rss" / f"{area}_rss.csv").read_text().split()
    crd = require(folder / "rss" / f"{area}_crd.csv").read_text().split()
    ids = require(folder / "rss" / f"{area}_ids.csv").read_text().split()
    if not len(rss) == len(crd) == len(ids):
        raise ValueError(f"{folder}/rss/{area}_*.csv: the rss, crd and ids files differ in length")
    scans: list[Scan] = []
    for fid, c, r in zip(ids, crd, rss, strict=True):
        x, y = (float(v) for v in c.split(","))
        scans.append((fid, x, y, [float(v) for v in r.split(",")]))
    return scans
