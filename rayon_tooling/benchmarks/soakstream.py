"""The soak's shoppers: a day of visits by many returning devices, as a stream of adverts.

Not the `StoreSimulator` (whose shoppers each come once and whose radio model costs more than
the pipeline): the soak needs thousands of distinct devices that come back through the day,
generated lazily in time order so the stream itself takes no memory.  Each visit walks
entrance → 1–3 aisles → checkout (two visits in three) → entrance at 1.2 m/s, lasting a few
minutes; the phone advertises its iBeacon (the config's first proximity UUID, major 2000,
minor = device number) every `ADVERT_EVERY_S`, heard by the scanners within `HEARD_WITHIN_M`
(each one 80 % of the time) with log-distance path loss and 3 dB of noise.  Seeded.
"""

from __future__ import annotations

import heapq
import itertools
import math
import random
import uuid as uuidlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from types import MappingProxyType

from gateway.config.model import Anchor, AnchorKind, Config
from gateway.events import Advertisement
from gateway.ids import format_uuid, ibeacon_id

APPLE_COMPANY_ID = 76
SOAK_MAJOR = 2000
ADVERT_EVERY_S = 2.0
HEARD_WITHIN_M = 14.0
WALK_SPEED_M_S = 1.2
RETURN_ODDS = (0.45, 0.2)  # chance of a 2nd visit that day, then of a 3rd


@dataclass(frozen=True, slots=True)
class Visit:
    """One device in the store from `start`, walking `waypoints`: (time, x, y) ascending."""

    device: int
    start: float
    waypoints: tuple[tuple[float, float, float], ...]

    @property
    def end(self) -> float:
        return self.waypoints[-1][0]


def device_ids(config: Config, count: int) -> list[str]:
    """Canonical ids of the soak's devices, by device number (0-based)."""
    uuid = format_uuid(config.identity.proximity_uuids[0])
    return [ibeacon_id(uuid, SOAK_MAJOR, i + 1) for i in range(count)]


def plan_visits(
    config: Config, devices: int, opens: float, closes: float, seed: int
) -> list[Visit]:
    """Every device's visits, arriving between `opens` and `closes` (epoch s), by start."""
    rng = random.Random(seed)
    places = _places(config)
    visits: list[Visit] = []
    for device in range(devices):
        free_from = -math.inf
        for arrival in sorted(_arrivals(rng, opens, closes)):
            start = max(arrival, free_from + 120.0)  # out for 2 min at least between visits
            visit = _walk(rng, device, start, places)
            visits.append(visit)
            free_from = visit.end
    visits.sort(key=lambda v: (v.start, v.device))
    return visits


def adverts(config: Config, visits: Sequence[Visit], seed: int) -> Iterator[Advertisement]:
    """Every advert heard during `visits` (sorted by start), in time order.

    A visit's generator starts only when its time comes (`heapq.merge` would start them all
    at once), so the stream holds the visits under way, not the whole day's."""
    scanners = tuple(a for a in config.anchors if a.kind is AnchorKind.SCANNER)
    raw_uuid = uuidlib.UUID(format_uuid(config.identity.proximity_uuids[0])).bytes
    heap: list[_Head] = []
    order = itertools.count()  # ties in time go in the order the visits started
    upcoming = iter(visits)
    following = next(upcoming, None)
    while heap or following is not None:
        while following is not None and (not heap or following.start <= heap[0][0]):
            _push(heap, _visit_adverts(following, scanners, raw_uuid, seed), next(order))
            following = next(upcoming, None)
        _, rank, adv, stream = heapq.heappop(heap)
        yield adv
        _push(heap, stream, rank)


_Head = tuple[float, int, Advertisement, Iterator[Advertisement]]


def _push(heap: list[_Head], stream: Iterator[Advertisement], rank: int) -> None:
    """Queue `stream`'s next advert, if it has one."""
    adv = next(stream, None)
    if adv is not None:
        heapq.heappush(heap, (adv.at, rank, adv, stream))


def _arrivals(rng: random.Random, opens: float, closes: float) -> list[float]:
    """One arrival, then maybe returns; busier in the late afternoon (triangular)."""
    mode = opens + 0.65 * (closes - opens)
    out = [rng.triangular(opens, closes, mode)]
    for odds in RETURN_ODDS:
        if rng.random() >= odds:
            break
        out.append(rng.triangular(opens, closes, mode))
    return out


def _places(config: Config) -> dict[str, list[tuple[float, float]]]:
    """Centres of the entrance, checkout and aisles (zones named so), to walk between."""
    found: dict[str, list[tuple[float, float]]] = {"entrance": [], "checkout": [], "aisle": []}
    for zone in config.zones:
        kind = "aisle" if zone.id.startswith("aisle-") else zone.id
        if kind in found:
            c = zone.polygon.centroid
            found[kind].append((float(c.x), float(c.y)))
    if not found["entrance"] or not found["aisle"]:
        found = {"entrance": [(2.0, 2.0)], "checkout": [], "aisle": [(10.0, 10.0)]}
    return found


def _walk(
    rng: random.Random, device: int, start: float, places: dict[str, list[tuple[float, float]]]
) -> Visit:
    stops = [(rng.choice(places["entrance"]), 5.0)]
    for aisle in rng.sample(places["aisle"], min(len(places["aisle"]), rng.randint(1, 3))):
        stops.append((aisle, rng.uniform(45.0, 200.0)))
    if places["checkout"] and rng.random() < 2 / 3:
        stops.append((rng.choice(places["checkout"]), rng.uniform(30.0, 120.0)))
    stops.append((stops[0][0], 5.0))
    t, points = start, []
    prev = stops[0][0]
    for (x, y), stay in stops:
        t += math.hypot(x - prev[0], y - prev[1]) / WALK_SPEED_M_S
        points.append((t, x, y))
        t += stay
        jx, jy = x + rng.uniform(-1.5, 1.5), y + rng.uniform(-1.5, 1.5)
        points.append((t, jx, jy))  # wandering inside the place
        prev = (jx, jy)
    return Visit(device, start, tuple(points))


def _visit_adverts(
    visit: Visit, scanners: Sequence[Anchor], raw_uuid: bytes, seed: int
) -> Iterator[Advertisement]:
    rng = random.Random(seed * 1_000_003 + visit.device * 7 + int(visit.start))
    minor = visit.device + 1
    payload = b"\x02\x15" + raw_uuid + SOAK_MAJOR.to_bytes(2, "big") + minor.to_bytes(2, "big")
    data = MappingProxyType({APPLE_COMPANY_ID: payload + (-59).to_bytes(1, "big", signed=True)})
    address = f"02:50:{(visit.device >> 8) & 0xFF:02X}:{visit.device & 0xFF:02X}:00:01"
    t = visit.start + rng.uniform(0.0, ADVERT_EVERY_S)
    while t < visit.end:
        x, y = _position(visit.waypoints, t)
        at = round(t, 3)
        for anchor in scanners:
            d = math.hypot(x - anchor.x, y - anchor.y)
            if d <= HEARD_WITHIN_M and rng.random() < 0.8:
                loss = 10.0 * anchor.path_loss_exponent * math.log10(max(d, 0.5))
                rssi = round(anchor.rssi_at_1m - loss + rng.gauss(0.0, 3.0))
                yield Advertisement(at, anchor.id, address, rssi, data)
        t += ADVERT_EVERY_S * rng.uniform(0.9, 1.1)


def _position(points: Sequence[tuple[float, float, float]], t: float) -> tuple[float, float]:
    """Where the walk is at `t` (linear between waypoints; before the first, at the first)."""
    prev = points[0]
    for point in points:
        if point[0] >= t:
            span = point[0] - prev[0]
            k = (t - prev[0]) / span if span > 0 else 1.0
            return prev[1] + k * (point[1] - prev[1]), prev[2] + k * (point[2] - prev[2])
        prev = point
    return prev[1], prev[2]
