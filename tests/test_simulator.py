"""The store simulator: determinism, ordering, payloads, and a coarse end-to-end check."""

from __future__ import annotations

import dataclasses
import io
import itertools
import json
from collections.abc import Iterable
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from gateway.config.model import (
    Anchor,
    AnchorKind,
    Config,
    DatabaseConfig,
    IdentityConfig,
    MqttConfig,
    Outline,
    RetentionConfig,
    SourcesConfig,
    StoreConfig,
    VisitsConfig,
    Zone,
)
from gateway.decode.inbound import Sightings, parse_sightings
from gateway.errors import InvalidInput
from gateway.events import Advertisement, MqttInput, Observation, TraceItem
from gateway.ids import ibeacon_id
from gateway.locate.locator import Locator
from gateway.sim.customers import demo_customers
from gateway.sim.radio import RadioModel
from gateway.sim.simulator import PhoneModel, StoreSimulator, TruthRecord
from gateway.sources.trace import parse_line
from gateway.zones.tracker import ZoneTracker

UUID = "8d8c1a2e-5b3f-4c1d-9e2a-0f6b7c8d9e10"
START = 1772550000.0
REFERENCE = Path(__file__).resolve().parent.parent / "config.example.yaml"


def box(x0: float, y0: float, x1: float, y1: float) -> Outline:
    return ((x0, y0), (x1, y0), (x1, y1), (x0, y1))


def small_store() -> Config:
    """A 40 m × 25 m store: entrance, checkout, six aisles with a scanner at each centre."""
    aisles = {
        f"aisle-{name}": (x, y)
        for name, x, y in [
            ("tv", 8, 11), ("audio", 20, 11), ("phones", 32, 11),
            ("games", 8, 20), ("photo", 20, 20), ("home", 32, 20),
        ]
    }  # fmt: skip
    zones = [
        Zone("store", "Magasin", box(0, 0, 40, 25), 3.0, 60.0),
        Zone("entrance", "Entrée", box(16, 0, 24, 4), 1.0, 5.0),
        Zone("checkout", "Caisses", box(28, 0, 38, 5), 3.0, 15.0),
    ] + [Zone(z, z, box(x - 3, y - 3, x + 3, y + 3), 4.0, 10.0) for z, (x, y) in aisles.items()]
    anchors = [
        Anchor("pi-entrance", AnchorKind.SCANNER, 20.0, 1.5, -59.0, 2.2),
        Anchor("node-checkout", AnchorKind.SCANNER, 33.0, 2.5, -60.0, 2.4),
        Anchor("beacon-1", AnchorKind.BEACON, 1.0, 1.0, beacon=ibeacon_id(UUID, 1, 1)),
    ] + [
        Anchor(f"node-{z[6:]}", AnchorKind.SCANNER, x, y, -59.0, 2.6)
        for z, (x, y) in aisles.items()
    ]
    return Config(
        path=Path("test-store.yaml"),
        store=StoreConfig("test", "Test store", ZoneInfo("Europe/Paris")),
        mqtt=MqttConfig(),
        database=DatabaseConfig("sqlite://"),
        sources=SourcesConfig(),
        identity=IdentityConfig(proximity_uuids=(UUID,)),
        anchors=tuple(anchors),
        zones=tuple(zones),
        geofences=(),
        visits=VisitsConfig(gap=1800.0, timeout=120.0),
        retention=RetentionConfig(),
        rules_dir=Path("rules"),
    )


def decode_ibeacon(adv: Advertisement) -> str | None:
    data = adv.manufacturer_data.get(76, b"")
    if len(data) != 23 or data[:2] != b"\x02\x15":
        return None
    major, minor = int.from_bytes(data[18:20], "big"), int.from_bytes(data[20:22], "big")
    return ibeacon_id(data[2:18].hex(), major, minor)


def written(sim: StoreSimulator) -> tuple[str, str]:
    trace, truth = io.StringIO(), io.StringIO()
    sim.write(trace, truth)
    return trace.getvalue(), truth.getvalue()


def test_same_seed_same_bytes_other_seed_other_bytes() -> None:
    config = small_store()
    a = written(StoreSimulator(config, shoppers=4, minutes=5, seed=11, start_at=START))
    b = written(StoreSimulator(config, shoppers=4, minutes=5, seed=11, start_at=START))
    c = written(StoreSimulator(config, shoppers=4, minutes=5, seed=12, start_at=START))
    assert a == b
    assert a[0] != c[0] and a[1] != c[1]
    assert a[0].count("\n") > 1000


def test_adverts_are_ordered_plausible_and_decode_to_the_shoppers() -> None:
    config = small_store()
    sim = StoreSimulator(config, shoppers=5, minutes=6, seed=3, start_at=START)
    adverts = list(sim.adverts())
    assert [a.at for a in adverts] == sorted(a.at for a in adverts)
    assert adverts[0].at >= START and adverts[-1].at <= START + 6 * 60
    scanners = {a.id for a in config.anchors if a.kind is AnchorKind.SCANNER}
    assert {a.anchor for a in adverts} <= scanners
    assert all(-95 <= a.rssi <= -20 for a in adverts)
    assert {decode_ibeacon(a) for a in adverts} == set(sim.devices())
    assert sim.devices()[0] == f"ibeacon:{UUID}:1000:1"
    by_device: dict[str | None, set[str]] = {}
    for a in adverts:
        by_device.setdefault(decode_ibeacon(a), set()).add(a.address)
    assert all(len(addresses) == 1 for addresses in by_device.values())
    mac = next(iter(by_device[sim.devices()[0]]))
    assert int(mac[:2], 16) & 0xC0 == 0xC0  # a random static address
    assert adverts[0].manufacturer_data[76][-1] == 0xC5  # tx power -59


def test_trace_lines_parse_back() -> None:
    trace, truth = written(StoreSimulator(small_store(), 2, 3, seed=5, start_at=START))
    first = parse_line(trace.splitlines()[0])
    assert isinstance(first, Advertisement) and decode_ibeacon(first) is not None
    record = json.loads(truth.splitlines()[0])
    assert set(record) == {"at", "device", "x", "y", "zones"}


def test_truth_is_about_one_hertz_per_shopper_and_walks_the_zones() -> None:
    sim = StoreSimulator(small_store(), shoppers=3, minutes=10, seed=9, start_at=START)
    truth = list(sim.truth())
    assert [r.at for r in truth] == sorted(r.at for r in truth)
    for device in sim.devices():
        times = [r.at for r in truth if r.device == device]
        gaps = {round(b - a, 3) for a, b in itertools.pairwise(times)}
        assert gaps == {1.0}
        zones = {z for r in truth if r.device == device for z in r.zones}
        assert {"store", "entrance"} <= zones
        assert len([z for z in zones if z.startswith("aisle")]) >= 2


def aisle_agreement(config: Config, items: Iterable[TraceItem | TruthRecord]) -> float:
    """Share of truth seconds in an aisle where the tracker has the shopper in that aisle."""
    locator = Locator([a for a in config.anchors if a.kind is AnchorKind.SCANNER])
    tracker = ZoneTracker(config.zones, config.visits)
    agree = total = 0
    for item in items:
        if isinstance(item, MqttInput):  # mode B: this check is about the scanners only
            continue
        if isinstance(item, Advertisement):
            device = decode_ibeacon(item)
            assert device is not None
            fix = locator.observe(Observation(item.at, device, item.anchor, item.rssi))
            if fix is not None:
                tracker.update(fix)
            continue
        tracker.tick(item.at)
        truth = [z for z in item.zones if z.startswith("aisle")]
        if truth:
            total += 1
            agree += truth == [z for z in tracker.zones_of(item.device) if z.startswith("aisle")]
    assert total > 100
    return agree / total


def test_locator_and_tracker_put_shoppers_in_the_right_aisle() -> None:
    config = small_store()
    share = aisle_agreement(config, StoreSimulator(config, 8, 12, seed=1, start_at=START).run())
    print(f"right aisle {share:.1%} of the time")
    assert share >= 0.6


def test_reference_store_config() -> None:
    try:
        from gateway.config.load import load_config

        config = load_config(REFERENCE)
    except (ImportError, OSError) as exc:
        pytest.skip(f"reference config not loadable yet: {exc}")
    sim = StoreSimulator(config, shoppers=6, minutes=10, seed=2, start_at=START)
    share = aisle_agreement(config, sim.run())
    print(f"reference store: right aisle {share:.1%} of the time")
    assert share >= 0.6


def test_a_config_without_uuid_is_refused_with_a_fix() -> None:
    config = small_store()
    bare = dataclasses.replace(config, identity=IdentityConfig())
    with pytest.raises(InvalidInput, match="proximity_uuids"):
        StoreSimulator(bare, 1, 1, seed=0, start_at=START)


def beacon_anchors(config: Config) -> dict[str, str]:
    return {a.beacon: a.id for a in config.anchors if a.kind is AnchorKind.BEACON and a.beacon}


def store_with_beacons() -> Config:
    """The small store with six store beacons along the walls and the walkway."""
    spots = [(1, 6), (39, 6), (14, 15.5), (26, 15.5), (1, 24), (39, 24)]
    beacons = tuple(
        Anchor(f"beacon-{k}", AnchorKind.BEACON, x, y, beacon=ibeacon_id(UUID, 1, k))
        for k, (x, y) in enumerate(spots, start=1)
    )
    config = small_store()
    plain = tuple(a for a in config.anchors if a.kind is AnchorKind.SCANNER)
    return dataclasses.replace(config, anchors=plain + beacons)


def test_iphones_report_the_store_beacons_about_once_a_second_on_their_tokens() -> None:
    config = store_with_beacons()
    sim = StoreSimulator(config, shoppers=6, minutes=6, seed=4, start_at=START)
    items = list(sim.items())
    assert [i.at for i in items] == sorted(i.at for i in items)
    reports = [i for i in items if isinstance(i, MqttInput)]
    tokens = [c.token for c in demo_customers(sim.devices(), 4)]
    assert sim.tokens() == tokens  # what `rayon simulate --customers` writes
    by_topic: dict[str, list[float]] = {}
    for r in reports:
        by_topic.setdefault(r.topic, []).append(r.at)
    assert by_topic and set(by_topic) <= {f"rayon/test/phones/{t}/sightings" for t in tokens}
    assert len(by_topic) < 6  # only the iPhones report (half, by default)
    for times in by_topic.values():
        gaps = np.diff(times)
        assert len(times) > 30 and np.median(gaps) == pytest.approx(1.0, abs=0.01)
    anchors = beacon_anchors(config)
    got = [parse_sightings(r.payload, "t", r.at, anchors) for r in reports]
    assert all(isinstance(g, Sightings) for g in got)
    observations = [o for g in got if isinstance(g, Sightings) for o in g.observations]
    assert {o.anchor for o in observations} == set(anchors.values())
    assert all(-95 <= o.rssi <= -20 for o in observations)
    assert sum(g.unmeasured for g in got if isinstance(g, Sightings)) > 0  # iOS's rssi 0


def test_phone_adverts_do_not_depend_on_the_other_streams() -> None:
    config = store_with_beacons()
    alone = StoreSimulator(config, 4, 4, seed=8, start_at=START, sightings=False)
    full = StoreSimulator(config, 4, 4, seed=8, start_at=START, beacons_heard_by_scanners=True)
    assert list(alone.adverts()) == list(full.adverts())
    assert not any(isinstance(i, MqttInput) for i in alone.items())
    assert len(list(full.items())) > len(list(full.adverts())) + len(full.sightings())


def test_iphones_in_the_background_report_but_do_not_advertise() -> None:
    phones = PhoneModel(ios_share=1.0, ios_advertising_share=0.0)
    sim = StoreSimulator(store_with_beacons(), 3, 4, seed=2, start_at=START, phones=phones)
    assert list(sim.adverts()) == []
    assert len({r.topic for r in sim.sightings()}) == 3


def test_scanners_hear_the_store_beacons_louder_when_nearer() -> None:
    config = store_with_beacons()
    sim = StoreSimulator(config, 0, 3, seed=6, start_at=START, beacons_heard_by_scanners=True)
    heard = sim.beacon_adverts()
    assert heard and [a.at for a in heard] == sorted(a.at for a in heard)
    beacons = {a.beacon: a for a in config.anchors if a.beacon}
    scanners = {a.id: a for a in config.anchors if a.kind is AnchorKind.SCANNER}
    assert {decode_ibeacon(a) for a in heard} <= set(beacons)
    assert {a.anchor for a in heard} <= set(scanners)
    distance = [
        np.hypot(beacons[b].x - scanners[a.anchor].x, beacons[b].y - scanners[a.anchor].y)
        for a in heard
        if (b := decode_ibeacon(a)) is not None
    ]
    assert (
        np.corrcoef(np.log10(distance), [a.rssi for a in heard])[0, 1] < -0.5
    )  # shadowing blurs it


def test_true_anchors_carry_the_simulated_offsets() -> None:
    config = store_with_beacons()
    sim = StoreSimulator(config, 1, 1, seed=3, start_at=START, radio=RadioModel())
    true = sim.true_anchors()
    assert [a.id for a in true] == [a.id for a in config.anchors]
    offsets = np.array(
        [t.rssi_at_1m - a.rssi_at_1m for t, a in zip(true, config.anchors, strict=True)]
    )
    assert 0.8 < offsets.std() < 4.0 and len(set(offsets.round(3))) == len(offsets)
    assert all(
        t.path_loss_exponent == a.path_loss_exponent
        for t, a in zip(true, config.anchors, strict=True)
    )


def test_two_shoppers_at_the_same_spot_see_the_same_shadowing() -> None:
    """Only the spatial field is left random: the residual RSSI is a function of the place."""
    field_only = RadioModel(
        path_sigma=0.0, shadow_white_sigma=0.0, anchor_offset_sigma=0.0, phone_offset_sigma=0.0,
        body_share=0.0, rician_k=1e9, drop_base=0.0, drop_weak=0.0, sensitivity_dbm=-200.0,
    )  # fmt: skip
    config = small_store()
    sim = StoreSimulator(config, 10, 12, seed=5, start_at=START, radio=field_only)
    rows: dict[str, list[tuple[float, float, float]]] = {}
    for rec in sim.truth():
        rows.setdefault(rec.device, []).append((rec.at, rec.x, rec.y))
    tracks = {device: np.array(r).T for device, r in rows.items()}
    anchors = {a.id: a for a in config.anchors}
    cells: dict[tuple[str, int, int], list[tuple[str, float]]] = {}
    for adv in sim.adverts():
        device = decode_ibeacon(adv)
        assert device is not None
        t, xs, ys = tracks[device]
        x, y = float(np.interp(adv.at, t, xs)), float(np.interp(adv.at, t, ys))
        a = anchors[adv.anchor]
        d = np.sqrt((a.x - x) ** 2 + (a.y - y) ** 2 + 1.3**2)
        residual = adv.rssi - (a.rssi_at_1m - 10 * a.path_loss_exponent * np.log10(d))
        cells.setdefault((a.id, round(x), round(y)), []).append((device, residual))
    shared = [v for v in cells.values() if len({dev for dev, _ in v}) >= 2]
    assert len(shared) > 50
    within = np.concatenate(
        [np.array([r for _, r in v]) - np.mean([r for _, r in v]) for v in shared]
    )
    overall = np.array([r for v in cells.values() for _, r in v])
    assert overall.std() > 2.5  # the field is there…
    assert within.std() < 1.2  # …and two shoppers at one spot see about the same value
