"""Scripted walks through the reference store, as traces a real scanner network would record.

Noise-free log-distance RSSI from each scanner anchor, so the expected zones are known exactly;
the simulator (gateway.sim.simulator) is where the radio is unkind.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from pathlib import Path

from gateway.config.model import AnchorKind, Config
from gateway.decode.beacons import encode_ibeacon
from gateway.decode.jsonvalues import InboundError
from gateway.events import Advertisement
from gateway.identity.customers import customer_from_obj
from gateway.identity.model import Customer
from gateway.sources.trace import write_trace

STORE_UUID = "8d8c1a2e-5b3f-4c1d-9e2a-0f6b7c8d9e10"

Leg = tuple[float, float, float]  # x, y, seconds spent getting there (or staying, if unmoved)


def rssi_at(distance_m: float, rssi_at_1m: float, exponent: float) -> int:
    return round(rssi_at_1m - 10 * exponent * math.log10(max(distance_m, 0.3)))


def walk_positions(
    legs: Sequence[Leg], start: float, step: float
) -> Iterator[tuple[float, float, float]]:
    """(at, x, y) every `step` seconds along straight legs."""
    at, (x, y, _) = start, legs[0]
    for tx, ty, seconds in legs[1:]:
        n = max(1, round(seconds / step))
        for i in range(1, n + 1):
            f = i / n
            yield at + i * step, x + (tx - x) * f, y + (ty - y) * f
        at, x, y = at + n * step, tx, ty


def walk_adverts(
    config: Config,
    minor: int,
    legs: Sequence[Leg],
    start: float,
    step: float = 0.5,
    hearing_dbm: float = -92,
) -> list[Advertisement]:
    payload = encode_ibeacon(STORE_UUID, 1000, minor, -59)
    scanners = [a for a in config.anchors if a.kind is AnchorKind.SCANNER]
    out = []
    for at, x, y in walk_positions(legs, start, step):
        for a in scanners:
            rssi = rssi_at(math.hypot(a.x - x, a.y - y), a.rssi_at_1m, a.path_loss_exponent)
            if rssi >= hearing_dbm:
                out.append(
                    Advertisement(
                        at,
                        a.id,
                        f"c0:ff:ee:00:{minor >> 8:02x}:{minor & 255:02x}",
                        rssi,
                        {76: payload},
                    )
                )
    return out


def zone_centre(config: Config, zone_id: str) -> tuple[float, float]:
    zone = config.zone(zone_id)
    assert zone is not None, zone_id
    c = zone.polygon.representative_point()
    return c.x, c.y


def tv_aisle_walk(config: Config, start: float, minor: int = 1, stay_s: float = 40.0) -> list[Leg]:
    """In at the entrance, to the TV aisle, `stay_s` there, back out through the entrance."""
    ex, ey = zone_centre(config, "entrance")
    tx, ty = zone_centre(config, "aisle-tv")
    return [(ex, ey, 0), (ex, ey, 5), (tx, ty, 12), (tx, ty, stay_s), (ex, ey, 12)]


def write_walk(path: Path, adverts: list[Advertisement]) -> None:
    with path.open("w", encoding="utf-8") as fh:
        write_trace(sorted(adverts, key=lambda a: a.at), fh)


def click_collect_customer(
    cid: str, token: str, minor: int, first_name: str | None = None
) -> dict[str, object]:
    """A regular (no welcome offer) whose click-and-collect order is ready, phone minor `minor`,
    as the CRM publishes it: the shipped `click-collect` rule tells them once a visit."""
    customer: dict[str, object] = {
        "id": cid,
        "token": token,
        "visits": 5,
        "devices": [f"ibeacon:{STORE_UUID}:1000:{minor}"],
        "attributes": {"order_ready": True},
        "consent": {"instore_location": True, "marketing_push": True},
    }
    if first_name is not None:
        customer["first_name"] = first_name
    return customer


def customer_of(obj: object) -> Customer:
    """The Customer of a CRM record a test knows to be valid (AssertionError if not)."""
    customer = customer_from_obj(obj, "test")
    assert not isinstance(customer, InboundError), customer.reason
    return customer
