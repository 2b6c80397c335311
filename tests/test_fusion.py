"""One track per customer: mode A (scanners hear their phone) and mode B (their phone hears the
store beacons) fused in the pipeline, and forgotten together."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import pytest

from gateway.clock import parse_local_time
from gateway.config.load import load_config
from gateway.config.model import AnchorKind, Config
from gateway.events import EventKind, Fix, MqttInput, TraceItem
from gateway.identity.customers import customer_to_obj
from gateway.identity.model import Consent, Customer, CustomerRegistry
from gateway.pipeline import Output, Pipeline, track_key
from gateway.rules.load import load_rules
from tests.walks import STORE_UUID, Leg, rssi_at, tv_aisle_walk, walk_adverts, walk_positions

ROOT = Path(__file__).resolve().parent.parent
DEVICE = f"ibeacon:{STORE_UUID}:1000:1"
TOKEN = "t-both-1"
PREFIX = "rayon/paris-11"


@pytest.fixture(scope="module")
def config() -> Config:
    return load_config(ROOT / "config.example.yaml")


def customer(devices: tuple[str, ...] = (DEVICE,)) -> Customer:
    return Customer(
        id="c-both",
        token=TOKEN,
        devices=devices,
        consent=Consent(instore_location=True, marketing_push=True),
        interests=frozenset({"tv"}),
        visits=3,  # a regular: no welcome offer
    )


def pipeline(config: Config, *customers: Customer) -> Pipeline:
    return Pipeline(config, load_rules(config.rules_dir, config), CustomerRegistry(customers))


def sightings(config: Config, legs: list[Leg], start: float) -> list[MqttInput]:
    """Mode B: the phone ranging the store beacons once a second along the walk."""
    beacons = [a for a in config.anchors if a.kind is AnchorKind.BEACON]
    out = []
    for at, x, y in walk_positions(legs, start, 1.0):
        heard = []
        for a in beacons:
            rssi = rssi_at(math.hypot(a.x - x, a.y - y), a.rssi_at_1m, a.path_loss_exponent)
            assert a.beacon is not None
            _, uuid, major, minor = a.beacon.split(":")
            if rssi >= -92:
                heard.append({"uuid": uuid, "major": int(major), "minor": int(minor), "rssi": rssi})
        body = {"at": at, "beacons": heard}
        out.append(MqttInput(at, f"{PREFIX}/phones/{TOKEN}/sightings", body))
    return out


def both_modes(config: Config, start: float) -> list[TraceItem]:
    legs = tv_aisle_walk(config, start)
    items: list[TraceItem] = [
        *walk_adverts(config, 1, legs, start),
        *sightings(config, legs, start),
    ]
    return sorted(items, key=lambda item: item.at)


def run(p: Pipeline, items: list[TraceItem], then_s: int = 400) -> Output:
    out = Output()
    for item in items:
        out.extend(p.feed(item))
    for t in range(int(items[-1].at), int(items[-1].at) + then_s):
        out.extend(p.tick(float(t)))
    return out


def start_of(config: Config) -> float:
    return parse_local_time("2026-03-03T15:00:00", config.store.timezone)


def test_a_customer_seen_in_both_modes_is_one_track(config: Config) -> None:
    out = run(pipeline(config, customer()), both_modes(config, start_of(config)))
    assert {f.device for f in out.fixes} == {DEVICE}
    assert {(e.device, e.customer) for e in out.events} == {(DEVICE, "c-both")}
    kinds = Counter((e.kind, e.zone) for e in out.events)
    assert kinds[(EventKind.VISIT_START, "store")] == 1 and kinds[(EventKind.VISIT_END, "store")]
    enters = Counter(e.zone for e in out.events if e.kind is EventKind.ENTER)
    assert enters == {"store": 1, "entrance": 2, "aisle-tv": 1}  # in, to the TV aisle, out
    used = {a for f in out.fixes for a in f.anchors}
    assert any(a.startswith("beacon-") for a in used) and any(a.startswith("node-") for a in used)
    assert [o.rule for o in out.offers] == ["tv-aisle-dwell"]  # once, not once per mode


def test_fused_positions_follow_the_walk(config: Config) -> None:
    start = start_of(config)
    out = run(pipeline(config, customer()), both_modes(config, start), then_s=1)
    truth = {
        round(at, 1): (x, y)
        for at, x, y in walk_positions(tv_aisle_walk(config, start), start, 0.5)
    }
    errors = [error(f, truth) for f in out.fixes if round(f.at, 1) in truth]
    assert len(errors) > 50
    assert sorted(errors)[len(errors) // 2] < 2.5  # median, noise-free RSSI
    assert max(b.at - a.at for a, b in zip(out.fixes, out.fixes[1:], strict=False)) <= 1.0


def error(fix: Fix, truth: dict[float, tuple[float, float]]) -> float:
    x, y = truth[round(fix.at, 1)]
    return math.hypot(fix.x - x, fix.y - y)


def test_a_phone_only_customer_is_tracked_as_their_phone(config: Config) -> None:
    start = start_of(config)
    p = pipeline(config, customer(devices=()))
    out = run(p, list(sightings(config, tv_aisle_walk(config, start), start)))
    assert {e.device for e in out.events} == {f"phone:{TOKEN}"} == {f.device for f in out.fixes}
    assert track_key(customer(devices=())) == f"phone:{TOKEN}"


def test_an_erase_forgets_the_fused_track(config: Config) -> None:
    p = pipeline(config, customer())
    items = both_modes(config, start_of(config))
    middle = len(items) // 2
    first = Output()
    for item in items[:middle]:
        first.extend(p.feed(item))
    assert p.zones.devices() == 1 and first.events
    at = items[middle].at
    gone = p.feed(MqttInput(at, f"{PREFIX}/crm/customers/c-both", b""))
    assert gone.erased == ["c-both"] and p.zones.devices() == 0
    assert p.snapshot()["zones"]["devices"] == {} and p.tick(at + 1000).events == []
    # Bound again: the next observation starts a new track (no link of before is left).
    p.feed(MqttInput(at, f"{PREFIX}/crm/customers/c-both", customer_to_obj(customer())))
    again = run(p, items[middle : middle + 1], then_s=2)  # a tick settles its burst
    assert len(again.fixes) == 1 and len(again.fixes[0].anchors) == 1
    assert [e.kind for e in again.events] == [EventKind.VISIT_START]


def test_a_device_bound_later_joins_the_customer_track(config: Config) -> None:
    """A phone tracked anonymously, then bound to a customer whose first device is a tag:
    its own track ends silently; from then on there is one visit, under the tag."""
    tag = f"ibeacon:{STORE_UUID}:1000:9"
    start = start_of(config)
    items = both_modes(config, start)
    p = pipeline(config)
    early = run(p, [i for i in items if i.at < start + 10], then_s=0)
    assert {e.device for e in early.events} == {DEVICE, f"phone:{TOKEN}"}  # two strangers
    bound = customer(devices=(tag, DEVICE))
    p.feed(MqttInput(start + 10, f"{PREFIX}/crm/customers/c-both", customer_to_obj(bound)))
    late = run(p, [i for i in items if i.at >= start + 10])
    assert {(e.device, e.customer) for e in late.events} == {(tag, "c-both")}
    starts = [e for e in late.events if e.kind is EventKind.VISIT_START]
    ends = [e for e in early.events + late.events if e.kind is EventKind.VISIT_END]
    assert len(starts) == 1 and len(ends) == 1
