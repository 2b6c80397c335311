"""The pure pipeline on plain values: privacy first, consent, CRM, both sensing modes."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pytest

from gateway.clock import parse_local_time
from gateway.config.load import load_config
from gateway.config.model import AnchorKind, Config, LocateConfig, PositionMethod
from gateway.decode.beacons import encode_ibeacon
from gateway.events import Advertisement, EventKind, MqttInput
from gateway.identity.customers import customer_to_obj
from gateway.identity.model import Consent, Customer, CustomerRegistry
from gateway.pipeline import Output, Pipeline
from gateway.rules.load import load_rules
from tests.walks import STORE_UUID, tv_aisle_walk, walk_adverts, zone_centre

ROOT = Path(__file__).resolve().parent.parent
TUESDAY_3PM = "2026-03-03T15:00:00"
DEVICE = f"ibeacon:{STORE_UUID}:1000:1"


@pytest.fixture(scope="module")
def config() -> Config:
    return load_config(ROOT / "config.example.yaml")


def fan(instore: bool = True, push: bool = True) -> Customer:
    return Customer(
        id="c-tv-1",
        token="t-tv-1",
        devices=(DEVICE,),
        consent=Consent(instore_location=instore, marketing_push=push),
        interests=frozenset({"tv"}),
        visits=3,
    )


def pipeline(config: Config, *customers: Customer) -> Pipeline:
    return Pipeline(config, load_rules(config.rules_dir, config), CustomerRegistry(customers))


def run_walk(p: Pipeline, config: Config, when: str = TUESDAY_3PM) -> Output:
    start = parse_local_time(when, config.store.timezone)
    out = Output()
    adverts = walk_adverts(config, 1, tv_aisle_walk(config, start), start)
    for adv in adverts:
        out.extend(p.feed(adv))
    for t in range(int(adverts[-1].at), int(adverts[-1].at) + 400):
        out.extend(p.tick(float(t)))
    return out


def test_tv_fan_walk_gives_events_and_one_offer(config: Config) -> None:
    out = run_walk(pipeline(config, fan()), config)
    kinds = [(e.kind, e.zone) for e in out.events]
    assert (EventKind.ENTER, "aisle-tv") in kinds and (EventKind.DWELL, "aisle-tv") in kinds
    assert kinds[0] == (EventKind.VISIT_START, "store") and kinds[-1] == (
        EventKind.VISIT_END,
        "store",
    )
    assert all(e.customer == "c-tv-1" for e in out.events)
    assert [o.rule for o in out.offers] == ["tv-aisle-dwell"]
    assert out.offers[0].token == "t-tv-1" and out.offers[0].zone == "aisle-tv"


def test_foreign_beacons_are_dropped_before_anything(config: Config) -> None:
    p = pipeline(config)
    foreign = encode_ibeacon("00000000-1111-2222-3333-444444444444", 1, 2, -59)
    out = p.feed(Advertisement(1.0, "node-tv", "aa:bb", -50, {76: foreign}))
    assert not out and p.counters["adverts_not_ours"] == 1
    assert p.zones.devices() == 0


def test_no_location_consent_keeps_nothing(config: Config) -> None:
    p = pipeline(config, fan(instore=False))
    out = run_walk(p, config)
    assert not out.fixes and not out.events and not out.offers
    assert p.counters["observations_without_consent"] > 0


def test_no_push_consent_tracks_but_never_offers(config: Config) -> None:
    out = run_walk(pipeline(config, fan(push=False)), config)
    assert out.events and not out.offers


def test_anonymous_device_is_tracked_without_customer_or_offer(config: Config) -> None:
    out = run_walk(pipeline(config), config)
    assert out.events and all(e.customer is None for e in out.events)
    assert not out.offers


def test_crm_upsert_then_erase_over_mqtt(config: Config) -> None:
    p = pipeline(config)
    topic = "rayon/paris-11/crm/customers/c-tv-1"
    up = p.feed(MqttInput(0.0, topic, customer_to_obj(fan())))
    assert [c.id for c in up.upserted] == ["c-tv-1"] and p.customers.get("c-tv-1") is not None
    assert [o.rule for o in run_walk(p, config).offers] == ["tv-aisle-dwell"]
    gone = p.feed(MqttInput(0.0, topic, b""))
    assert gone.erased == ["c-tv-1"] and p.customers.get("c-tv-1") is None


@pytest.mark.parametrize(
    "payload", [b"{not json", b"[]", json.dumps({"id": 3}).encode(), b"x" * 70_000]
)
def test_bad_crm_message_is_counted_never_raised(config: Config, payload: bytes) -> None:
    p = pipeline(config)
    assert not p.feed(MqttInput(0.0, "rayon/paris-11/crm/customers/c-1", payload))
    assert p.counters["inbound_rejected"] == 1


def test_unknown_topic_is_rejected(config: Config) -> None:
    p = pipeline(config)
    assert not p.feed(MqttInput(0.0, "elsewhere/x", {}))
    assert p.counters["inbound_rejected"] == 1


def test_phone_sightings_mode_b_locate_the_phone(config: Config) -> None:
    p = pipeline(config, fan())
    beacons = [a for a in config.anchors if a.kind is AnchorKind.BEACON]
    near = beacons[0]
    assert near.beacon is not None
    _, uuid, major, minor = near.beacon.split(":")
    fixes = []
    for i in range(6):
        body = {
            "at": 100.0 + i,
            "beacons": [
                {
                    "uuid": uuid,
                    "major": int(major),
                    "minor": int(minor),
                    "rssi": -55,
                    "tx_power": -59,
                }
            ],
        }
        fixes += p.feed(MqttInput(100.0 + i, "rayon/paris-11/phones/t-tv-1/sightings", body)).fixes
    assert fixes and fixes[-1].device == DEVICE  # the customer's one track (their first device)
    assert abs(fixes[-1].x - near.x) < 0.5 and abs(fixes[-1].y - near.y) < 0.5


def test_one_sightings_message_gives_one_fix_from_all_its_beacons(config: Config) -> None:
    """A phone's scan is located after all its beacons, not at the first one listed."""
    p = pipeline(config, fan())
    by_id = {a.id: a for a in config.anchors}
    heard = {"beacon-03": -85, "beacon-04": -55, "beacon-05": -80, "beacon-07": -82}
    beacons = []
    for anchor_id, rssi in heard.items():
        beacon = by_id[anchor_id].beacon
        assert beacon is not None
        _, uuid, major, minor = beacon.split(":")
        beacons.append(
            {"uuid": uuid, "major": int(major), "minor": int(minor), "rssi": rssi, "tx_power": -59}
        )
    body = {"at": 100.0, "beacons": beacons}
    out = p.feed(MqttInput(100.0, "rayon/paris-11/phones/t-tv-1/sightings", body))
    assert len(out.fixes) == 1
    fix = out.fixes[0]
    assert sorted(fix.anchors) == sorted(heard)
    near, first = by_id["beacon-04"], by_id["beacon-03"]  # the loudest, the first listed
    assert math.hypot(fix.x - near.x, fix.y - near.y) < math.hypot(fix.x - first.x, fix.y - first.y)


def test_scanner_node_adverts_over_mqtt_feed_the_same_pipeline(config: Config) -> None:
    p = pipeline(config, fan())
    payload = encode_ibeacon(STORE_UUID, 1000, 1, -59).hex()
    body = [
        {
            "at": 50.0 + i / 2,
            "address": "c0:ff:ee:00:00:01",
            "rssi": -60,
            "manufacturer_data": {"76": payload},
        }
        for i in range(6)
    ]
    out = p.feed(MqttInput(50.0, "rayon/paris-11/scanners/node-tv/adv", body))
    assert out.fixes and out.fixes[0].anchors == ("node-tv",)


def test_gps_location_enters_the_approach_geofence(config: Config) -> None:
    p = pipeline(config, fan())
    topic = "rayon/paris-11/phones/t-tv-1/location"
    near = {"_type": "location", "lat": 48.8592, "lon": 2.3795, "acc": 20, "tst": 1_772_550_000}
    out = p.feed(MqttInput(1_772_550_000.0, topic, json.dumps(near).encode()))
    assert [(e.kind, e.zone, e.customer) for e in out.events] == [
        (EventKind.ENTER, "store-approach", "c-tv-1")
    ]
    far = {**near, "lat": 48.90, "tst": 1_772_550_600}
    gone = p.feed(MqttInput(1_772_550_600.0, topic, far))
    assert [(e.kind, e.zone) for e in gone.events] == [(EventKind.EXIT, "store-approach")]


def test_owntracks_transition_by_region_name(config: Config) -> None:
    p = pipeline(config, fan())
    body = {
        "_type": "transition",
        "event": "enter",
        "desc": "Parking clients",
        "t": "c",
        "tst": 1_772_550_000,
        "lat": 48.8598,
        "lon": 2.3804,
        "acc": 10,
    }
    out = p.feed(MqttInput(1_772_550_000.0, "rayon/paris-11/phones/t-tv-1/transition", body))
    assert [(e.kind, e.zone) for e in out.events] == [(EventKind.ENTER, "parking")]


def test_gps_without_consent_or_customer_is_not_kept(config: Config) -> None:
    body = {"_type": "location", "lat": 48.8592, "lon": 2.3795, "acc": 20, "tst": 1_772_550_000}
    for p, token in ((pipeline(config, fan(instore=False)), "t-tv-1"), (pipeline(config), "t-x")):
        out = p.feed(MqttInput(1_772_550_000.0, f"rayon/paris-11/phones/{token}/location", body))
        assert not out and p.geofences.inside(f"phone:{token}") == ()
        assert p.counters["locations_without_consent"] == 1


def test_espresense_reports_feed_the_pipeline_when_ours(config: Config) -> None:
    p = pipeline(config, fan())
    device = f"iBeacon:{STORE_UUID}-1000-1"
    body = {"id": device, "rssi": -60, "rssi@1m": -59, "distance": 1.2}
    out = p.feed(MqttInput(10.0, f"espresense/devices/{device}/node-tv", json.dumps(body)))
    out.extend(p.tick(10.5))  # its burst settled: no other scanner reported it
    assert out.fixes and out.fixes[0].anchors == ("node-tv",)
    foreign = "iBeacon:00000000-1111-2222-3333-444444444444-1-2"
    p.feed(MqttInput(11.0, f"espresense/devices/{foreign}/node-tv", {**body, "id": foreign}))
    assert p.counters["adverts_not_ours"] == 1
    p.feed(MqttInput(12.0, f"espresense/devices/{device}/kitchen", body))
    assert p.counters["inbound_rejected"] == 1


def test_adverts_from_a_node_that_is_not_a_scanner_anchor_are_rejected(config: Config) -> None:
    p = pipeline(config, fan())
    payload = encode_ibeacon(STORE_UUID, 1000, 1, -59).hex()
    body = {
        "at": 50.0,
        "address": "c0:ff:ee:00:00:01",
        "rssi": -60,
        "manufacturer_data": {"76": payload},
    }
    for node in ("beacon-01", "t-tv-1"):  # a store beacon's id; an app login's own name
        assert not p.feed(MqttInput(50.0, f"rayon/paris-11/scanners/{node}/adv", body))
    assert p.counters["inbound_rejected"] == 2 and p.counters["adverts"] == 0


def test_an_unchanged_crm_resend_keeps_the_visit_and_its_caps(config: Config) -> None:
    """The broker re-sends every retained customer when the gateway reconnects: that must not
    reset what is tracked (a click-and-collect customer would be told twice)."""
    ready = dataclasses.replace(fan(), attributes={"order_ready": True})
    p = pipeline(config, ready)
    start = parse_local_time(TUESDAY_3PM, config.store.timezone)
    x, y = zone_centre(config, "entrance")
    first = Output()
    for adv in walk_adverts(config, 1, [(x, y, 0), (x, y, 8)], start):
        first.extend(p.feed(adv))
    p.feed(MqttInput(start + 9, "rayon/paris-11/crm/customers/c-tv-1", customer_to_obj(ready)))
    again = Output()
    for adv in walk_adverts(config, 1, [(x, y, 0), (x, y, 8)], start + 10):
        again.extend(p.feed(adv))
    assert [o.rule for o in first.offers] == ["click-collect"] and again.offers == []


def test_walking_to_the_next_aisle_hands_over_at_once_and_is_counted(config: Config) -> None:
    p = pipeline(config, fan())
    start = parse_local_time(TUESDAY_3PM, config.store.timezone)
    (ex, ey), (ax, ay) = zone_centre(config, "entrance"), zone_centre(config, "aisle-audio")
    tx, ty = zone_centre(config, "aisle-tv")
    legs = [(ex, ey, 0), (ax, ay, 10), (ax, ay, 20), (tx, ty, 8), (tx, ty, 20)]
    out = Output()
    for adv in walk_adverts(config, 1, legs, start):
        out.extend(p.feed(adv))
    moves = [(e.kind, e.zone, e.at) for e in out.events if e.zone in ("aisle-audio", "aisle-tv")]
    assert [m[:2] for m in moves] == [
        (EventKind.ENTER, "aisle-audio"),
        (EventKind.EXIT, "aisle-audio"),
        (EventKind.ENTER, "aisle-tv"),
    ]
    assert moves[1][2] == moves[2][2] and p.counters["zone_takeovers"] == 1
    handover = [e for e in out.events if e.at == moves[1][2] and e.zone == "aisle-audio"]
    assert handover[0].reason["cause"] == "superseded"
    assert handover[0].reason["runner_up"] == "aisle-tv"


def test_an_erasure_drops_what_was_decided_before_about_that_customer_only(
    config: Config,
) -> None:
    p = pipeline(config, fan(), dataclasses.replace(fan(), id="c-tv-2", devices=("d:2",)))
    pending = Output(upserted=[fan()])  # a CRM update before the erasure: superseded by it
    pending.extend(run_walk(p, config))
    assert [o.customer for o in pending.offers] == ["c-tv-1"]
    other = dataclasses.replace(pending.offers[0], id="o-2", customer="c-tv-2")
    pending.extend(
        Output(offers=[other], events=[dataclasses.replace(pending.events[0], customer="c-tv-2")])
    )
    pending.extend(p.feed(MqttInput(0.0, "rayon/paris-11/crm/customers/c-tv-1", b"")))
    assert pending.erased == ["c-tv-1"] and pending.upserted == []
    assert (
        {o.customer for o in pending.offers} == {e.customer for e in pending.events} == {"c-tv-2"}
    )
    later = dataclasses.replace(pending.offers[0], id="o-3", customer="c-tv-1")
    pending.extend(Output(offers=[later]))  # decided after the erasure (back again): kept
    assert [o.id for o in pending.offers] == ["o-2", "o-3"]


@pytest.mark.parametrize("method", [PositionMethod.STRONGEST, PositionMethod.CENTROID])
def test_the_locate_method_of_the_config_places_a_phone_scan(
    config: Config, method: PositionMethod
) -> None:
    """`locate.method` reaches the pipeline: strongest puts the scan on its loudest beacon,
    the centroid between the beacons heard."""
    configured = dataclasses.replace(config, locate=LocateConfig(method=method))
    p = pipeline(configured, fan())
    by_id = {a.id: a for a in config.anchors}
    beacons = []
    for anchor_id, rssi in {"beacon-03": -70, "beacon-04": -62, "beacon-05": -71}.items():
        _, uuid, major, minor = str(by_id[anchor_id].beacon).split(":")
        beacons.append({"uuid": uuid, "major": int(major), "minor": int(minor), "rssi": rssi})
    out = p.feed(
        MqttInput(
            100.0, "rayon/paris-11/phones/t-tv-1/sightings", {"at": 100.0, "beacons": beacons}
        )
    )
    (fix,) = out.fixes
    loudest = by_id["beacon-04"]
    on_it = (fix.x, fix.y) == (loudest.x, loudest.y)
    assert on_it is (method is PositionMethod.STRONGEST)
