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

Calibration, per the collection campaigns.  A campaign is a point set (the id's `<set>`),
ordered by when it was collected (`*_tms.csv`: nanoseconds on each phone's own clock, so
compared within a phone only).  Every run visits each position twice, out and back, six
(library) or thirteen (office) scans a visit.
* `uji-lib`: the three phones were carried together (their clocks differ by a constant
  offset, point after point) through two campaigns, the same order on every phone: set 2,
  the 24 shelf-aisle points, then set 3, the 34 corridor points, minutes later.  The earlier
  campaign calibrates and the later one is scored: calibration = set 2 (the test part of
  the position split above), `calibration_test` = set 3 (its train part).  The two never share
  a scan or a position.
* `uji-geo`: one point set; the only later collections are the other transmit powers, each
  its own deployment (anchors), so no campaign can calibrate another.  Calibration = the
  train part (17 positions), scored on the test part (the 17 others).
"""

from __future__ import annotations

import csv
import dataclasses
import statistics
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

from gateway.config.model import Anchor, AnchorKind, Zone
from gateway.errors import InvalidInput
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


class Scan(NamedTuple):
    """One fingerprint: its id, where, the RSSI per beacon column, and when (ns on the
    phone's clock; None when nothing was heard)."""

    fid: str
    x: float
    y: float
    rssi: list[float]
    at: int | None


def load_lib(root: Path) -> Dataset:
    """Convert the library zone: position split corridor points → shelf-aisle points."""
    folder = require(root / "uji_ble_db" / "data")
    beacons = _beacons(folder / "dep" / "lib.csv")
    zones = grid_zones(LIB_X_EDGES, LIB_Y_EDGES, "lib")
    scans = _scans(folder, "lib")

    def test(scan: Scan) -> bool:
        return scan.fid[2] == "2"  # point set 2: the aisles between the shelves

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
    runs = sorted({run(s.fid) for s in scans})
    anchors: dict[str, Anchor] = {}
    for r in runs:
        for b, x, y in beacons:
            aid = anchor_id(r, b)
            anchors[aid] = anchor(aid, x, y, AnchorKind.BEACON)

    def part(keep: Callable[[Scan], bool], label: str) -> Part:
        streams: list[Stream] = []
        for r in runs:
            mine = [s for s in scans if run(s.fid) == r and keep(s)]
            if not mine:
                continue
            ids = [anchor_id(r, b[0]) for b in beacons]
            heard = [(s.x, s.y, zmap.zone_of(s.x, s.y), _heard(s.rssi, ids)) for s in mine]
            unit = f"{name}:{r}:{label}"
            streams.append(scan_stream(unit, unit, heard))
        return Part(tuple(streams))

    train = part(lambda s: not is_test(s), "train")
    test = part(is_test, "test")
    plain = Dataset(
        name=name,
        mode="B",
        anchors=tuple(anchors.values()),
        zones=zones,
        train=train,
        test=test,
        window_s=0.0,
        split=split,
        calibration=train,
        calibration_split="one campaign (point set): the train part calibrates, test tests",
    )
    campaigns = _campaigns(scans)
    if len(campaigns) < 2:
        return plain
    *early, last = campaigns
    return dataclasses.replace(
        plain,
        calibration=part(lambda s: s.fid[2] in early, f"set{'+'.join(early)}"),
        calibration_split=(
            f"by campaign: point set {', '.join(early)} (collected first) calibrates, "
            f"set {last} (collected after) tests"
        ),
        calibration_test=part(lambda s: s.fid[2] == last, f"set{last}"),
    )


def _campaigns(scans: list[Scan]) -> list[str]:
    """The point sets (the id's `<set>`) in collection order: by the median scan time per
    phone, which every phone must agree on (each has its own clock); none when they do not."""
    times: dict[tuple[str, str], list[int]] = defaultdict(list)
    for s in scans:
        if s.at is not None:
            times[(s.fid[0], s.fid[2])].append(s.at)
    orders = set()
    for phone in {p for p, _ in times}:
        mine = {
            point_set: statistics.median(t) for (p, point_set), t in times.items() if p == phone
        }
        orders.add(tuple(sorted(mine, key=lambda k: mine[k])))
    return list(orders.pop()) if len(orders) == 1 else []


def _alternate_positions(scans: list[Scan]) -> Callable[[Scan], bool]:
    """Test = every other surveyed position in (x, y) order: a checkerboard over the grid.

    By coordinates, not by the point number of the id, which does not name the same place
    in every run."""
    positions = sorted({(s.x, s.y) for s in scans})
    test = set(positions[1::2])
    return lambda scan: (scan.x, scan.y) in test


def _heard(rssi: list[float], ids: list[str]) -> dict[str, float]:
    return {aid: v for aid, v in zip(ids, rssi, strict=True) if v != NOT_HEARD}


def _beacons(path: Path) -> list[tuple[str, float, float]]:
    with require(path).open(newline="") as f:
        return [(r["id"], float(r["x"]), float(r["y"])) for r in csv.DictReader(f)]


def _scans(folder: Path, area: str) -> list[Scan]:
    """The rows of the rss, crd, ids and tms files of `area`, in collection order."""
    rss, crd, ids, tms = (
        require(folder / "rss" / f"{area}_{kind}.csv").read_text().split()
        for kind in ("rss", "crd", "ids", "tms")
    )
    if not len(rss) == len(crd) == len(ids) == len(tms):
        raise InvalidInput(
            f"{folder}/rss/{area}_*.csv: the rss, crd, ids and tms files differ in length "
            f"({len(rss)}, {len(crd)}, {len(ids)}, {len(tms)} rows); restore them from the "
            "data set's download"
        )
    scans: list[Scan] = []
    for fid, c, r, t in zip(ids, crd, rss, tms, strict=True):
        x, y = (float(v) for v in c.split(","))
        heard = [int(v) for v in t.split(",") if int(v)]  # 0: not heard
        scans.append(Scan(fid, x, y, [float(v) for v in r.split(",")], min(heard, default=None)))
    return scans
