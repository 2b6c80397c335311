"""A simulated store (DESIGN.md §6): shoppers walking the floor plan, heard by the scanners.

Each shopper carries a phone advertising an iBeacon (the config's first proximity UUID,
major 1000, minor = shopper index + 1, tx power −59) every 0.3 s (iOS-like) or 0.8–1 s
(Android-like).  They arrive spread over the period, walk entrance → 2–4 aisles (20–120 s
each, wandering inside) → checkout → entrance at 1–1.4 m/s, then leave.  Walks are straight
lines between points (shelves are not obstacles in this version).

The radio is not kind (`RadioModel`): log-distance path loss with each scanner's own
parameters and a 1.3 m height difference, a per-scanner calibration offset, log-normal
shadowing that is mostly spatially correlated along each shopper-scanner path, body loss when
the phone is on the body and the scanner behind the shopper, Rician fast fading, and dropped
adverts (more when weak); nothing below the scanner sensitivity is heard.  Only `scanner`
anchors are simulated (mode A); store beacons heard by phones (mode B) are not, yet.

Seeded: the same config, arguments and seed give byte-identical output.  The whole period is
computed with numpy per shopper and scanner, so 50 shoppers × 30 minutes take seconds.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, TextIO

import numpy as np
import shapely
from shapely.geometry import Polygon

from gateway.config import Anchor, AnchorKind, Config, Zone
from gateway.errors import InvalidInput
from gateway.events import Advertisement
from gateway.ids import format_uuid, ibeacon_id
from gateway.sources.trace import item_to_line
from gateway.zones import ZoneIndex

APPLE_COMPANY_ID = 76
SHOPPER_MAJOR = 1000
TX_POWER_1M = -59
PHONE_HEIGHT_DIFF_M = 1.3


@dataclass(frozen=True, slots=True)
class TruthRecord:
    """Where a shopper really was: `zones` are the ids of the zones containing the point."""

    at: float
    device: str
    x: float
    y: float
    zones: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        """The ground-truth line of DESIGN.md §6."""
        return {"at": self.at, "device": self.device, "x": self.x, "y": self.y,
                "zones": list(self.zones)}  # fmt: skip


@dataclass(frozen=True, slots=True)
class RadioModel:
    """How unkind the radio is.  dB unless named otherwise."""

    shadow_sigma: float = 4.5  # spatially correlated log-normal shadowing
    shadow_corr_m: float = 3.0  # its decorrelation distance along the walk
    shadow_white_sigma: float = 1.5  # uncorrelated part
    anchor_offset_sigma: float = 2.0  # per-scanner calibration error
    body_share: float = 0.5  # shoppers with the phone in a pocket or bag
    body_loss: tuple[float, float] = (4.0, 10.0)  # loss range with the scanner behind them
    rician_k: float = 4.0  # fast fading (K factor, linear)
    drop_base: float = 0.1  # fraction of adverts missed even when loud
    drop_weak: float = 0.5  # extra drop fraction as the signal falls to sensitivity
    sensitivity_dbm: float = -95.0


@dataclass(frozen=True, slots=True)
class _Floor:
    entrance: Polygon
    checkout: Polygon
    aisles: tuple[Polygon, ...]


@dataclass(frozen=True, slots=True)
class _Path:
    t: np.ndarray  # knot times, seconds from the start of the period
    x: np.ndarray
    y: np.ndarray
    s: np.ndarray  # walked distance at each knot


class StoreSimulator:
    """Shoppers in the store of `config`, for `minutes` from `start_at` (epoch seconds)."""

    def __init__(
        self,
        config: Config,
        shoppers: int,
        minutes: float,
        seed: int,
        start_at: float,
        radio: RadioModel | None = None,
    ) -> None:
        if not config.identity.proximity_uuids:
            raise InvalidInput(
                f"{config.path}: identity.proximity_uuids is empty; the simulated phones "
                "advertise the first one, so add the store app's UUID"
            )
        self._scanners = tuple(a for a in config.anchors if a.kind is AnchorKind.SCANNER)
        self._uuid = format_uuid(config.identity.proximity_uuids[0])
        self._zones = ZoneIndex(config.zones)
        self._floor = _floor_plan(config.zones, self._scanners)
        self._n = max(0, shoppers)
        self._duration = max(0.0, minutes * 60.0)
        self._seed = seed
        self._start = start_at
        self._radio = radio or RadioModel()

    def devices(self) -> list[str]:
        """Canonical device ids of the shoppers' phones, by shopper index."""
        return [ibeacon_id(self._uuid, SHOPPER_MAJOR, i + 1) for i in range(self._n)]

    def adverts(self) -> Iterator[Advertisement]:
        """Every advert heard by a scanner, ordered by time (then shopper, then scanner)."""
        at, shopper, anchor, rssi = self._heard()
        ids = [a.id for a in self._scanners]
        macs = [_mac(self._seed, i) for i in range(self._n)]
        data = [MappingProxyType({APPLE_COMPANY_ID: self._payload(i)}) for i in range(self._n)]
        for t, s, a, r in zip(
            at.tolist(), shopper.tolist(), anchor.tolist(), rssi.tolist(), strict=True
        ):
            yield Advertisement(t, ids[a], macs[s], r, data[s])

    def truth(self) -> Iterator[TruthRecord]:
        """Each shopper's true position and zones at ~1 Hz, ordered by time."""
        records: list[TruthRecord] = []
        devices = self.devices()
        for i, path in enumerate(self._paths()):
            ts = np.arange(path.t[0], path.t[-1], 1.0)
            xs, ys = np.interp(ts, path.t, path.x), np.interp(ts, path.t, path.y)
            inside = self._zones.containing_many(xs, ys)
            rows = zip(ts.tolist(), np.round(xs, 3).tolist(), np.round(ys, 3).tolist(), strict=True)
            for k, (t, x, y) in enumerate(rows):
                zones = tuple(self._zones.ids[z] for z in np.flatnonzero(inside[:, k]))
                records.append(TruthRecord(round(self._start + t, 3), devices[i], x, y, zones))
        records.sort(key=lambda r: r.at)
        yield from records

    def run(self) -> Iterator[Advertisement | TruthRecord]:
        """Adverts and truth records merged in time order (truth first on a tie)."""
        truth = self.truth()
        pending = next(truth, None)
        for adv in self.adverts():
            while pending is not None and pending.at <= adv.at:
                yield pending
                pending = next(truth, None)
            yield adv
        if pending is not None:
            yield pending
        yield from truth

    def write(self, trace_out: TextIO, truth_out: TextIO | None = None) -> int:
        """Write the trace (and the ground truth) as JSON Lines; return the trace line count."""
        n = 0
        for adv in self.adverts():
            trace_out.write(item_to_line(adv) + "\n")
            n += 1
        if truth_out is not None:
            for rec in self.truth():
                truth_out.write(_json_line(rec.to_json()) + "\n")
        return n

    def _payload(self, index: int) -> bytes:
        return (
            b"\x02\x15"
            + bytes.fromhex(self._uuid.replace("-", ""))
            + SHOPPER_MAJOR.to_bytes(2, "big")
            + (index + 1).to_bytes(2, "big")
            + TX_POWER_1M.to_bytes(1, "big", signed=True)
        )

    def _rng(self, index: int) -> np.random.Generator:
        return np.random.default_rng([self._seed % 2**64, index])

    def _arrivals(self) -> np.ndarray:
        rng = self._rng(0)
        return np.sort(rng.uniform(0.0, self._duration * 0.85, self._n))

    def _paths(self) -> list[_Path]:
        arrivals = self._arrivals()
        return [
            _walk(self._floor, self._rng(2 + i), float(arrivals[i]), self._duration)
            for i in range(self._n)
        ]

    def _heard(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        offsets = self._rng(1).normal(0.0, self._radio.anchor_offset_sigma, len(self._scanners))
        parts: list[tuple[np.ndarray, ...]] = []
        for i, path in enumerate(self._paths()):
            rng = self._rng(1_000_000 + i)
            parts.extend(_hear(path, self._scanners, offsets, self._radio, rng, i))
        if not parts:
            empty = np.zeros(0)
            return empty, empty.astype(int), empty.astype(int), empty.astype(int)
        t, s, a, r = (np.concatenate(col) for col in zip(*parts, strict=True))
        t = np.round(self._start + t, 3)
        order = np.lexsort((a, s, t))
        return t[order], s[order], a[order], r[order]


def _hear(
    path: _Path,
    scanners: tuple[Anchor, ...],
    offsets: np.ndarray,
    radio: RadioModel,
    rng: np.random.Generator,
    index: int,
) -> list[tuple[np.ndarray, ...]]:
    """The adverts of one shopper heard by each scanner: (times, shopper, scanner, rssi)."""
    interval = 0.3 if rng.random() < 0.5 else rng.uniform(0.8, 1.0)
    n = max(0, int((path.t[-1] - path.t[0]) / interval))
    times = path.t[0] + np.cumsum(interval + rng.uniform(0.0, 0.01, n))
    times = times[times < path.t[-1]]
    x, y = np.interp(times, path.t, path.x), np.interp(times, path.t, path.y)
    walked = np.interp(times, path.t, path.s)
    heading = _headings(path, times)
    body = rng.uniform(*radio.body_loss) if rng.random() < radio.body_share else 0.0
    out: list[tuple[np.ndarray, ...]] = []
    for j, anchor in enumerate(scanners):
        dx, dy = anchor.x - x, anchor.y - y
        d = np.sqrt(dx * dx + dy * dy + PHONE_HEIGHT_DIFF_M**2)
        rssi = anchor.rssi_at_1m - 10.0 * anchor.path_loss_exponent * np.log10(d) + offsets[j]
        rssi += _shadowing(walked, radio, rng) + _fading(len(times), radio.rician_k, rng)
        behind = (1.0 - (np.cos(heading) * dx + np.sin(heading) * dy) / d) / 2.0
        rssi -= body * behind
        weak = np.clip((-70.0 - rssi) / (-70.0 - radio.sensitivity_dbm), 0.0, 1.0)
        keep = (rssi >= radio.sensitivity_dbm) & (
            rng.random(len(times)) >= radio.drop_base + radio.drop_weak * weak
        )
        k = int(keep.sum())
        out.append(
            (times[keep], np.full(k, index), np.full(k, j), np.round(rssi[keep]).astype(int))
        )
    return out


def _shadowing(walked: np.ndarray, radio: RadioModel, rng: np.random.Generator) -> np.ndarray:
    """Correlated along the walked distance (knots every `shadow_corr_m`) plus a white part."""
    length = float(walked[-1]) if len(walked) else 0.0
    knots = np.arange(0.0, length + 2 * radio.shadow_corr_m, radio.shadow_corr_m)
    values = rng.normal(0.0, radio.shadow_sigma, len(knots))
    white = rng.normal(0.0, radio.shadow_white_sigma, len(walked))
    shadow: np.ndarray = np.interp(walked, knots, values) + white
    return shadow


def _fading(n: int, k: float, rng: np.random.Generator) -> np.ndarray:
    """Rician fading in dB: a line-of-sight part plus a scattered complex Gaussian part."""
    los = math.sqrt(k / (k + 1.0))
    scatter = math.sqrt(1.0 / (2.0 * (k + 1.0)))
    re = los + scatter * rng.standard_normal(n)
    im = scatter * rng.standard_normal(n)
    return np.maximum(10.0 * np.log10(re * re + im * im + 1e-12), -25.0)


def _headings(path: _Path, times: np.ndarray) -> np.ndarray:
    """The walking direction (radians) at each time; a pause keeps the last direction."""
    dx, dy = np.diff(path.x), np.diff(path.y)
    moving = np.hypot(dx, dy) > 1e-9
    last = np.maximum.accumulate(np.where(moving, np.arange(len(dx)), -1))
    angles = np.where(last >= 0, np.arctan2(dy[np.maximum(last, 0)], dx[np.maximum(last, 0)]), 0.0)
    seg = np.clip(np.searchsorted(path.t, times, side="right") - 1, 0, max(len(dx) - 1, 0))
    return angles[seg] if len(dx) else np.zeros(len(times))


def _walk(floor: _Floor, rng: np.random.Generator, start: float, end: float) -> _Path:
    """Entrance → 2–4 aisles (wandering 20–120 s in each) → checkout → entrance."""
    speed = rng.uniform(1.0, 1.4)
    knots = [(start, *_point_in(floor.entrance, rng))]
    n_aisles = min(int(rng.integers(2, 5)), len(floor.aisles))
    for a in rng.choice(len(floor.aisles), size=n_aisles, replace=False).tolist():
        _go(knots, _point_in(floor.aisles[a], rng), speed)
        _wander(knots, floor.aisles[a], rng.uniform(20.0, 120.0), rng)
    _go(knots, _point_in(floor.checkout, rng), speed)
    _pause(knots, rng.uniform(30.0, 120.0))
    _go(knots, _point_in(floor.entrance, rng), speed)
    arr = np.array(knots)
    t, x, y = arr[:, 0], arr[:, 1], arr[:, 2]
    s = np.concatenate(([0.0], np.cumsum(np.hypot(np.diff(x), np.diff(y)))))
    if t[-1] <= end:
        return _Path(t, x, y, s)
    keep = t < end  # the period ends mid-trip: stop the path at `end`
    cut = (np.append(t[keep], end), np.append(x[keep], np.interp(end, t, x)))
    return _Path(
        *cut, np.append(y[keep], np.interp(end, t, y)), np.append(s[keep], np.interp(end, t, s))
    )


def _go(knots: list[tuple[float, float, float]], to: tuple[float, float], speed: float) -> None:
    t, x, y = knots[-1]
    knots.append((t + math.hypot(to[0] - x, to[1] - y) / speed, to[0], to[1]))


def _pause(knots: list[tuple[float, float, float]], seconds: float) -> None:
    t, x, y = knots[-1]
    knots.append((t + seconds, x, y))


def _wander(
    knots: list[tuple[float, float, float]], area: Polygon, dwell: float, rng: np.random.Generator
) -> None:
    """Browse inside `area` for about `dwell` seconds: short slow walks and pauses."""
    until = knots[-1][0] + dwell
    while knots[-1][0] < until:
        _go(knots, _point_in(area, rng), 0.6)
        _pause(knots, min(rng.uniform(3.0, 15.0), max(until - knots[-1][0], 0.0)))


def _point_in(area: Polygon, rng: np.random.Generator) -> tuple[float, float]:
    """A uniform random point inside `area` (rejection sampling in its bounds)."""
    x0, y0, x1, y1 = area.bounds
    xs, ys = rng.uniform(x0, x1, 64), rng.uniform(y0, y1, 64)
    ok = np.flatnonzero(shapely.contains_xy(area, xs, ys))
    if len(ok) == 0:
        p = area.representative_point()
        return float(p.x), float(p.y)
    return float(xs[ok[0]]), float(ys[ok[0]])


def _floor_plan(zones: tuple[Zone, ...], scanners: tuple[Anchor, ...]) -> _Floor:
    """Entrance, checkout and aisles from the zone ids, with fallbacks for sparse configs."""
    by_id = {z.id: z.polygon for z in zones}
    aisles = tuple(z.polygon for z in zones if z.id.startswith("aisle"))
    if not aisles:
        special = {"store", "entrance", "checkout"}
        aisles = tuple(z.polygon for z in zones if z.id not in special)
    outline = by_id.get("store") or _hull(zones, scanners)
    entrance = by_id.get("entrance", outline)
    return _Floor(entrance, by_id.get("checkout", entrance), aisles or (outline,))


def _hull(zones: tuple[Zone, ...], scanners: tuple[Anchor, ...]) -> Polygon:
    pts = [(a.x, a.y) for a in scanners] + [c for z in zones for c in z.polygon.exterior.coords]
    if len(pts) < 3:
        raise InvalidInput("the simulator needs zones or at least 3 scanner anchors to walk in")
    hull = shapely.MultiPoint(pts).convex_hull
    return hull if isinstance(hull, Polygon) else Polygon(hull.buffer(1.0).exterior)


def _mac(seed: int, index: int) -> str:
    """A random static address: the two most significant bits set."""
    raw = np.random.default_rng([seed % 2**64, index, 7]).integers(0, 256, 6).tolist()
    raw[0] |= 0xC0
    return ":".join(f"{b:02X}" for b in raw)


def _json_line(obj: dict[str, Any]) -> str:
    return json.dumps(obj, separators=(",", ":"))
