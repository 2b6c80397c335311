"""A simulated store (docs/trace.md): shoppers walking the floor plan, heard by the scanners, and
iOS phones reporting the store beacons they hear.

**Shoppers.**  They arrive spread over the period and walk entrance → 2–4 aisles (20–120 s each,
wandering inside the aisle's polygon) → checkout (30–120 s) → entrance at 1–1.4 m/s, then leave.
Walks between places are straight lines (shelves are not obstacles).  Shopper i's phone
advertises an iBeacon (the config's first proximity UUID, major 1000, minor i + 1, tx power −59)
every 0.3 s if it is an iPhone (`PhoneModel.ios_share`, app in the foreground) or every 0.8–1 s
(Android).  An iPhone also ranges the store beacons (anchors of kind beacon with an iBeacon id)
and reports them about once a second as `phones/<token>/sightings` MQTT items (mode B,
docs/mqtt.md); the tokens are those of the customers file `rayon simulate --customers`
writes.  A share of iPhones (`1 - ios_advertising_share`) has the app in the background: it
reports sightings but does not advertise.

**Radio** (`RadioModel`), the same for every link between a phone and an anchor (a scanner
hearing the phone, or the phone hearing a store beacon):

    rssi = rssi_at_1m + anchor offset + phone offset − 10 n log10(d)          (d in 3 D, 1.3 m
           + field_anchor(x, y) + path shadowing + white noise                 height difference)
           + Rician fading − body loss × behind

* `rssi_at_1m` and `n` are the anchor's own config values; the anchor offset (σ 2 dB, one per
  anchor, `StoreSimulator.true_anchors()`) is the calibration error `rayon calibrate` should find;
  the phone offset (σ 2 dB per phone) is the handset's.
* field_anchor is spatially correlated log-normal shadowing: one Gaussian random field over the
  floor per anchor (a sum of 64 random Fourier features, squared-exponential correlation of length
  `shadow_corr_m`, gridded every 0.5 m and interpolated), so two shoppers at the same spot see the
  same shadowing from an anchor, and one shopper sees it change smoothly as they walk.
* path shadowing (σ `path_sigma`, correlated over `path_corr_m` of walk) is what moves with the
  shopper (other people, trolleys, how the phone is held); the white part is uncorrelated.
* Rician fading with factor K; a phone's ranging report averages `ranging_looks` packets.
* body loss: half the shoppers keep the phone in a pocket or bag; the loss (4–10 dB) is full when
  the anchor is straight behind them and nothing when it is ahead.
* an advert below the sensitivity is not heard; others are dropped 10 % of the time, up to 60 %
  as the signal fades to the sensitivity.  In a ranging report a beacon heard the second before
  but missed now is listed with rssi 0, as iOS does.

Optionally (`beacons_heard_by_scanners`) the store beacons advertise once a second and the
scanners hear them over the same model at the beacon's fixed position (scanner offset, field of
the scanner at the beacon, no body): the input of `rayon calibrate TRACE`.

Seeded: the same config, arguments and seed give byte-identical output; mode A adverts do not
depend on whether sightings or beacon adverts are simulated.  The whole period is computed with
numpy per shopper and anchor, so 50 shoppers × 30 minutes take about a second.
"""

from __future__ import annotations

import heapq
import json
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Any, TextIO

import numpy as np

from gateway.config.model import Anchor, AnchorKind, Config
from gateway.errors import InvalidInput
from gateway.events import Advertisement, MqttInput, TraceItem
from gateway.ids import format_uuid, ibeacon_id
from gateway.sim.radio import (
    RadioModel,
    ShadowField,
    correlated,
    fading,
    kept,
    shadow_field,
)
from gateway.sim.walking import Floor, WalkPath, floor_plan, headings, walk
from gateway.sources.trace import item_to_line
from gateway.topics import Topics
from gateway.zones.index import ZoneIndex

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
        """The ground-truth line of docs/trace.md."""
        return {"at": self.at, "device": self.device, "x": self.x, "y": self.y,
                "zones": list(self.zones)}  # fmt: skip


@dataclass(frozen=True, slots=True)
class PhoneModel:
    """Which phones the shoppers carry and how they talk."""

    ios_share: float = 0.5  # iPhones: advertise fast, and range the store beacons (mode B)
    ios_interval_s: float = 0.3
    android_interval_s: tuple[float, float] = (0.8, 1.0)
    ios_advertising_share: float = 1.0  # iPhones whose app advertises (foreground)
    ranging_interval_s: float = 1.0  # how often an iPhone reports the beacons it hears
    ranging_looks: int = 5  # packets of a beacon averaged into one report
    beacon_interval_s: float = 1.0  # store beacons' advertising interval (scanners hearing them)


@dataclass(frozen=True, slots=True)
class _Phone:
    """One shopper's handset: its kind, advertising interval, offset and body loss."""

    ios: bool
    advertises: bool
    interval: float
    offset: float
    body: float  # dB lost with an anchor straight behind (0: phone in hand)


@dataclass(frozen=True, slots=True)
class _Samples:
    """Where the phone is at the times it transmits or reports (seconds from the start)."""

    t: np.ndarray
    x: np.ndarray
    y: np.ndarray
    walked: np.ndarray
    heading: np.ndarray


@dataclass(frozen=True, slots=True)
class _Radio:
    """What every link shares: the model, the anchors' offsets and their shadowing fields."""

    model: RadioModel
    offsets: dict[str, float]
    fields: dict[str, ShadowField]


class StoreSimulator:
    """Shoppers in the store of `config`, for `minutes` from `start_at` (epoch seconds).

    `tokens` are the shoppers' delivery tokens, by index, for their sightings topics (default:
    those of `gateway.sim.customers.demo_customers(devices(), seed)`, the `--customers` file).
    `store_seed` draws the store's radio (the anchors' offsets and shadowing fields; default
    `seed`): a calibration walk and the shoppers it is scored on share the store, not the walk.
    `paths`: the walks themselves (one shopper each, times from `start_at`; `shoppers` is
    then ignored), e.g. a calibration walk (`gateway.sim.survey`); by default drawn as above.
    """

    def __init__(
        self,
        config: Config,
        shoppers: int,
        minutes: float,
        seed: int,
        start_at: float,
        radio: RadioModel | None = None,
        *,
        phones: PhoneModel | None = None,
        sightings: bool = True,
        beacons_heard_by_scanners: bool = False,
        tokens: Sequence[str] | None = None,
        store_seed: int | None = None,
        paths: Sequence[WalkPath] | None = None,
    ) -> None:
        if not config.identity.proximity_uuids:
            raise InvalidInput(
                f"{config.path}: identity.proximity_uuids is empty; the simulated phones "
                "advertise the first one, so add the store app's UUID"
            )
        self._config = config
        self._scanners = tuple(a for a in config.anchors if a.kind is AnchorKind.SCANNER)
        self._beacons = tuple(
            (a, b) for a in config.anchors if (b := _ibeacon_fields(a)) is not None
        )
        self._uuid = format_uuid(config.identity.proximity_uuids[0])
        self._zones = ZoneIndex(config.zones)
        self._floor = floor_plan(config.zones, self._scanners)
        self._given = list(paths) if paths is not None else None
        self._n = len(self._given) if self._given is not None else max(0, shoppers)
        self._duration = max(0.0, minutes * 60.0)
        self._seed = seed
        self._store_seed = seed if store_seed is None else store_seed
        self._start = start_at
        self._model = radio or RadioModel()
        self._phones_model = phones or PhoneModel()
        self._sightings = sightings
        self._beacons_heard = beacons_heard_by_scanners
        self._tokens = list(tokens) if tokens is not None else None
        self._radio_cache: _Radio | None = None

    def devices(self) -> list[str]:
        """Canonical device ids of the shoppers' phones, by shopper index."""
        return [ibeacon_id(self._uuid, SHOPPER_MAJOR, i + 1) for i in range(self._n)]

    def tokens(self) -> list[str]:
        """The shoppers' delivery tokens, by shopper index (their sightings topics)."""
        if self._tokens is None:
            from gateway.sim.customers import demo_customers

            self._tokens = [c.token for c in demo_customers(self.devices(), self._seed)]
        if len(self._tokens) < self._n:
            raise InvalidInput(f"{len(self._tokens)} token(s) given for {self._n} shoppers")
        return self._tokens

    def true_anchors(self) -> tuple[Anchor, ...]:
        """The config's anchors with the calibration the simulated radio really has: the
        config's `rssi_at_1m` plus the anchor's offset (what `rayon calibrate` should find)."""
        offsets = self._radio().offsets
        return tuple(
            replace(a, rssi_at_1m=round(a.rssi_at_1m + offsets[a.id], 3))
            for a in self._config.anchors
        )

    def adverts(self) -> Iterator[Advertisement]:
        """Every phone advert heard by a scanner, ordered by time (then shopper, then scanner)."""
        at, shopper, anchor, rssi = self._heard()
        ids = [a.id for a in self._scanners]
        macs = [_mac(self._seed, i) for i in range(self._n)]
        data = [MappingProxyType({APPLE_COMPANY_ID: self._payload(i)}) for i in range(self._n)]
        for t, s, a, r in zip(
            at.tolist(), shopper.tolist(), anchor.tolist(), rssi.tolist(), strict=True
        ):
            yield Advertisement(t, ids[a], macs[s], r, data[s])

    def items(self) -> Iterator[TraceItem]:
        """The whole trace in time order: phone adverts, then on a tie store beacons' adverts
        (if `beacons_heard_by_scanners`), then phones' sightings (if `sightings`)."""
        streams: list[Iterator[TraceItem]] = [self.adverts()]
        if self._beacons_heard:
            streams.append(iter(self.beacon_adverts()))
        if self._sightings:
            streams.append(iter(self.sightings()))
        return heapq.merge(*streams, key=lambda item: item.at)

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

    def run(self) -> Iterator[TraceItem | TruthRecord]:
        """Trace items and truth records merged in time order (truth first on a tie)."""
        truth = self.truth()
        pending = next(truth, None)
        for item in self.items():
            while pending is not None and pending.at <= item.at:
                yield pending
                pending = next(truth, None)
            yield item
        if pending is not None:
            yield pending
        yield from truth

    def write(self, trace_out: TextIO, truth_out: TextIO | None = None) -> int:
        """Write the trace (and the ground truth) as JSON Lines; return the trace line count."""
        n = 0
        for item in self.items():
            trace_out.write(item_to_line(item) + "\n")
            n += 1
        if truth_out is not None:
            for rec in self.truth():
                truth_out.write(_json_line(rec.to_json()) + "\n")
        return n

    def sightings(self) -> list[MqttInput]:
        """Every iPhone's ranging reports, ordered by time then shopper."""
        if not self._beacons:
            return []
        topics = Topics(self._config.mqtt.topic_prefix, self._config.store.id)
        radio, found = self._radio(), []
        for i, path in enumerate(self._paths()):
            phone = self._phone(i)
            if phone.ios:
                topic = topics.phone_sightings(self.tokens()[i])
                rng = np.random.default_rng([self._seed % 2**64, 6, i])
                for t, listed in _ranging(
                    path, phone, self._beacons, radio, self._phones_model, rng
                ):
                    at = round(self._start + t, 3)
                    found.append((t, i, MqttInput(at, topic, {"at": at, "beacons": listed})))
        found.sort(key=lambda f: (f[0], f[1]))
        return [f[2] for f in found]

    def beacon_adverts(self) -> list[Advertisement]:
        """Store beacons heard by the scanners, ordered by time, beacon, scanner."""
        radio = self._radio()
        out: list[tuple[float, int, int, Advertisement]] = []
        interval = self._phones_model.beacon_interval_s
        for j, (beacon, fields) in enumerate(self._beacons):
            rng = np.random.default_rng([self._seed % 2**64, 8, j])
            times = rng.uniform(0.0, interval) + np.arange(0.0, self._duration, interval)
            times = times[times < self._duration]
            data = MappingProxyType({APPLE_COMPANY_ID: _ibeacon_payload(*fields)})
            mac = _mac(self._seed, 1_000_000 + j)
            for k, scanner in enumerate(self._scanners):
                rssi, keep = _static_link(beacon, scanner, times, radio, rng)
                out.extend(
                    (t, j, k, Advertisement(round(self._start + t, 3), scanner.id, mac, r, data))
                    for t, r in zip(times[keep].tolist(), rssi[keep].tolist(), strict=True)
                )
        out.sort(key=lambda a: a[:3])
        return [a[3] for a in out]

    def _payload(self, index: int) -> bytes:
        return _ibeacon_payload(self._uuid, SHOPPER_MAJOR, index + 1)

    def _rng(self, index: int) -> np.random.Generator:
        return np.random.default_rng([self._seed % 2**64, index])

    def _radio(self) -> _Radio:
        """Anchor offsets and shadowing fields, drawn once (they do not depend on shoppers)."""
        if self._radio_cache is None:
            anchors = self._config.anchors
            store = np.random.default_rng([self._store_seed % 2**64, 1])
            draws = store.normal(0.0, self._model.anchor_offset_sigma, len(anchors))
            offsets = {a.id: float(o) for a, o in zip(anchors, draws.tolist(), strict=True)}
            bounds = _field_bounds(self._floor, anchors)
            fields = {
                a.id: shadow_field(
                    bounds, self._model, np.random.default_rng([self._store_seed, 5, j])
                )
                for j, a in enumerate(anchors)
            }
            self._radio_cache = _Radio(self._model, offsets, fields)
        return self._radio_cache

    def _phone(self, index: int) -> _Phone:
        rng = np.random.default_rng([self._seed % 2**64, 4, index])
        pm, rm = self._phones_model, self._model
        ios = bool(rng.random() < pm.ios_share)
        advertises = not ios or bool(rng.random() < pm.ios_advertising_share)
        interval = pm.ios_interval_s if ios else float(rng.uniform(*pm.android_interval_s))
        offset = float(rng.normal(0.0, rm.phone_offset_sigma))
        body = float(rng.uniform(*rm.body_loss)) if rng.random() < rm.body_share else 0.0
        return _Phone(ios, advertises, interval, offset, body)

    def _arrivals(self) -> np.ndarray:
        rng = self._rng(0)
        return np.sort(rng.uniform(0.0, self._duration * 0.85, self._n))

    def _paths(self) -> list[WalkPath]:
        if self._given is not None:
            return self._given
        arrivals = self._arrivals()
        return [
            walk(self._floor, self._rng(2 + i), float(arrivals[i]), self._duration)
            for i in range(self._n)
        ]

    def _heard(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        radio = self._radio()
        parts: list[tuple[np.ndarray, ...]] = []
        for i, path in enumerate(self._paths()):
            phone = self._phone(i)
            if phone.advertises:
                rng = self._rng(1_000_000 + i)
                parts.extend(_hear(path, phone, self._scanners, radio, rng, i))
        if not parts:
            empty = np.zeros(0)
            return empty, empty.astype(int), empty.astype(int), empty.astype(int)
        t, s, a, r = (np.concatenate(col) for col in zip(*parts, strict=True))
        t = np.round(self._start + t, 3)
        order = np.lexsort((a, s, t))
        return t[order], s[order], a[order], r[order]


def _hear(
    path: WalkPath,
    phone: _Phone,
    scanners: tuple[Anchor, ...],
    radio: _Radio,
    rng: np.random.Generator,
    index: int,
) -> list[tuple[np.ndarray, ...]]:
    """The adverts of one phone heard by each scanner: (times, shopper, scanner, rssi)."""
    n = max(0, int((path.t[-1] - path.t[0]) / phone.interval))
    times = path.t[0] + np.cumsum(phone.interval + rng.uniform(0.0, 0.01, n))
    samples = _samples(path, times[times < path.t[-1]])
    out: list[tuple[np.ndarray, ...]] = []
    for j, anchor in enumerate(scanners):
        rssi = _received(samples, anchor, phone, radio, rng, looks=1)
        keep = kept(rssi, radio.model, rng)
        k = int(keep.sum())
        out.append(
            (samples.t[keep], np.full(k, index), np.full(k, j), np.round(rssi[keep]).astype(int))
        )
    return out


def _ranging(
    path: WalkPath,
    phone: _Phone,
    beacons: tuple[tuple[Anchor, tuple[str, int, int]], ...],
    radio: _Radio,
    pm: PhoneModel,
    rng: np.random.Generator,
) -> Iterator[tuple[float, list[dict[str, Any]]]]:
    """One iPhone's ranging reports `(time, beacons)`; a report that lists none is not sent."""
    first = path.t[0] + rng.uniform(0.0, pm.ranging_interval_s)
    samples = _samples(path, np.arange(first, path.t[-1], pm.ranging_interval_s))
    heard, rssi = [], []
    for beacon, _ in beacons:
        r = _received(samples, beacon, phone, radio, rng, looks=pm.ranging_looks)
        heard.append(kept(r, radio.model, rng))
        rssi.append(np.round(r).astype(int))
    h, r = np.array(heard).T, np.array(rssi).T  # (reports, beacons)
    before = np.vstack([np.zeros((1, len(beacons)), dtype=bool), h[:-1]])
    for k, t in enumerate(samples.t.tolist()):
        listed = [
            {"uuid": uuid, "major": major, "minor": minor,
             "rssi": int(r[k, b]) if h[k, b] else 0, "tx_power": TX_POWER_1M}
            for b, (_, (uuid, major, minor)) in enumerate(beacons)
            if h[k, b] or before[k, b]
        ]  # fmt: skip
        if listed:
            yield t, listed


def _samples(path: WalkPath, times: np.ndarray) -> _Samples:
    x, y = np.interp(times, path.t, path.x), np.interp(times, path.t, path.y)
    walked = np.interp(times, path.t, path.s)
    return _Samples(times, x, y, walked, headings(path, times))


def _received(
    at: _Samples, anchor: Anchor, phone: _Phone, radio: _Radio, rng: np.random.Generator, looks: int
) -> np.ndarray:
    """RSSI (float dBm) of the link between the phone at `at` and `anchor`, before drops."""
    m = radio.model
    dx, dy = anchor.x - at.x, anchor.y - at.y
    d = np.sqrt(dx * dx + dy * dy + PHONE_HEIGHT_DIFF_M**2)
    base = anchor.rssi_at_1m + radio.offsets[anchor.id] + phone.offset
    rssi: np.ndarray = base - 10.0 * anchor.path_loss_exponent * np.log10(d)
    rssi += radio.fields[anchor.id].at(at.x, at.y)
    rssi += correlated(at.walked, m.path_sigma, m.path_corr_m, rng)
    rssi += rng.normal(0.0, m.shadow_white_sigma, len(at.t))
    rssi += fading(len(at.t), m.rician_k, rng, looks)
    behind = (1.0 - (np.cos(at.heading) * dx + np.sin(at.heading) * dy) / d) / 2.0
    out: np.ndarray = rssi - phone.body * behind
    return out


def _static_link(
    beacon: Anchor, scanner: Anchor, times: np.ndarray, radio: _Radio, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """A store beacon heard by a scanner: (rounded rssi, kept mask) at `times`.  Both are
    fixed, so only the path part (people walking by, correlated over 5 s) and fading move."""
    m = radio.model
    d = max(math.hypot(beacon.x - scanner.x, beacon.y - scanner.y), 0.1)
    rssi = scanner.rssi_at_1m + radio.offsets[scanner.id]
    rssi -= 10.0 * scanner.path_loss_exponent * math.log10(d)
    rssi += float(radio.fields[scanner.id].at(np.array([beacon.x]), np.array([beacon.y]))[0])
    noise = correlated(times, m.path_sigma, 5.0, rng)
    noise += rng.normal(0.0, m.shadow_white_sigma, len(times))
    values = rssi + noise + fading(len(times), m.rician_k, rng, 1)
    return np.round(values).astype(int), kept(values, m, rng)


def _field_bounds(floor: Floor, anchors: Sequence[Anchor]) -> tuple[float, float, float, float]:
    shapes = [floor.entrance, floor.checkout, *floor.aisles]
    xs = [a.x for a in anchors] + [v for s in shapes for v in (s.bounds[0], s.bounds[2])]
    ys = [a.y for a in anchors] + [v for s in shapes for v in (s.bounds[1], s.bounds[3])]
    return min(xs) - 2.0, min(ys) - 2.0, max(xs) + 2.0, max(ys) + 2.0


def _ibeacon_fields(anchor: Anchor) -> tuple[str, int, int] | None:
    """(uuid, major, minor) of a store beacon with an iBeacon id; None for anything else."""
    if anchor.kind is not AnchorKind.BEACON or not anchor.beacon:
        return None
    kind, _, rest = anchor.beacon.partition(":")
    parts = rest.split(":")
    if kind != "ibeacon" or len(parts) != 3:
        return None
    return parts[0], int(parts[1]), int(parts[2])


def _ibeacon_payload(uuid: str, major: int, minor: int) -> bytes:
    return (
        b"\x02\x15"
        + bytes.fromhex(uuid.replace("-", ""))
        + major.to_bytes(2, "big")
        + minor.to_bytes(2, "big")
        + TX_POWER_1M.to_bytes(1, "big", signed=True)
    )


def _mac(seed: int, index: int) -> str:
    """A random static address: the two most significant bits set."""
    raw = np.random.default_rng([seed % 2**64, index, 7]).integers(0, 256, 6).tolist()
    raw[0] |= 0xC0
    return ":".join(f"{b:02X}" for b in raw)


def _json_line(obj: dict[str, Any]) -> str:
    return json.dumps(obj, separators=(",", ":"))
