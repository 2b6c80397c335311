"""The live time window (issue 16): an inbound message whose own time is far from when it was
received is refused and counted, so that no device can push the pipeline's clocks ahead."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from gateway.clock import MAX_AGE_S, MAX_AHEAD_S, parse_local_time
from gateway.config.load import load_config
from gateway.config.model import AnchorKind, Config
from gateway.decode.beacons import encode_ibeacon
from gateway.events import EventKind, MqttInput, TraceItem
from gateway.identity.model import Consent, Customer, CustomerRegistry
from gateway.offline.replay import replay
from gateway.pipeline import Output, Pipeline
from gateway.rules.load import load_rules
from gateway.sources.trace import read_trace, write_trace
from tests.walks import STORE_UUID, rssi_at, walk_adverts, walk_positions, zone_centre

ROOT = Path(__file__).resolve().parent.parent
PREFIX = "rayon/paris-11"
DAY_S = 86_400.0


@pytest.fixture(scope="module")
def config() -> Config:
    return load_config(ROOT / "config.example.yaml")


def collector(cid: str = "c-cc", token: str = "t-cc", minor: int = 7) -> Customer:
    """A regular whose click-and-collect order is ready: `click-collect` offers at the entrance."""
    return Customer(
        id=cid,
        token=token,
        devices=(f"ibeacon:{STORE_UUID}:1000:{minor}",),
        consent=Consent(instore_location=True, marketing_push=True),
        visits=5,
        attributes={"order_ready": True},
    )


def pipeline(config: Config, *customers: Customer) -> Pipeline:
    return Pipeline(config, load_rules(config.rules_dir, config), CustomerRegistry(customers))


def beacons_heard(config: Config, x: float, y: float) -> list[dict[str, Any]]:
    """What a phone at (x, y) ranges of the store beacons (mode B)."""
    heard = []
    for a in config.anchors:
        if a.kind is AnchorKind.BEACON and a.beacon is not None:
            rssi = rssi_at(math.hypot(a.x - x, a.y - y), a.rssi_at_1m, a.path_loss_exponent)
            _, uuid, major, minor = a.beacon.split(":")
            if rssi >= -92:
                heard.append({"uuid": uuid, "major": int(major), "minor": int(minor), "rssi": rssi})
    return heard


def sightings_walk(config: Config, token: str, start: float, shift: float = 0.0) -> list[MqttInput]:
    """A phone standing in the entrance for 8 s, ranging once a second; received at the time
    of each report, whose own `at` is that time plus `shift`."""
    x, y = zone_centre(config, "entrance")
    return [
        MqttInput(
            at,
            f"{PREFIX}/phones/{token}/sightings",
            {"at": at + shift, "beacons": beacons_heard(config, px, py)},
        )
        for at, px, py in walk_positions([(x, y, 0), (x, y, 8)], start, 1.0)
    ]


def feed_all(p: Pipeline, items: list[TraceItem]) -> Output:
    out = Output()
    for item in items:
        out.extend(p.feed(item))
    return out


def start_of(config: Config) -> float:
    return parse_local_time("2026-03-03T11:00:00", config.store.timezone)


# -- the window, per topic class ----------------------------------------------------------


def _sightings(config: Config, at: float) -> tuple[str, Any]:
    return f"{PREFIX}/phones/t-cc/sightings", {"at": at, "beacons": beacons_heard(config, 20, 2)}


def _scanner(config: Config, at: float) -> tuple[str, Any]:
    payload = encode_ibeacon(STORE_UUID, 1000, 7, -59).hex()
    advert = {"at": at, "address": "c0:ff:ee:00:00:07", "rssi": -60}
    return f"{PREFIX}/scanners/node-tv/adv", advert | {"manufacturer_data": {"76": payload}}


def _location(config: Config, at: float) -> tuple[str, Any]:
    body = {"_type": "location", "lat": 48.8592, "lon": 2.3795, "acc": 20, "tst": at}
    return f"{PREFIX}/phones/t-cc/location", body


def _transition(config: Config, at: float) -> tuple[str, Any]:
    body = {"_type": "transition", "event": "enter", "desc": "Parking clients", "tst": at}
    return f"{PREFIX}/phones/t-cc/transition", body


MESSAGES = {
    "sightings": _sightings,
    "scanner": _scanner,
    "location": _location,
    "transition": _transition,
}


@pytest.mark.parametrize("kind", sorted(MESSAGES))
@pytest.mark.parametrize(
    ("offset", "verdict"),
    [
        (MAX_AHEAD_S + 1.0, "too_new"),
        (DAY_S, "too_new"),
        (-MAX_AGE_S - 1.0, "too_old"),
        (MAX_AHEAD_S, None),
        (-MAX_AGE_S, None),
        (0.0, None),
    ],
)
def test_a_message_outside_the_window_is_refused_and_counted_per_class(
    config: Config, kind: str, offset: float, verdict: str | None
) -> None:
    received = start_of(config)
    p = pipeline(config, collector())
    topic, body = MESSAGES[kind](config, received + offset)
    out = p.feed(MqttInput(received, topic, body))
    refused = {k: n for k, n in p.counters.items() if k.startswith("inbound_too_")}
    if verdict is None:
        assert refused == {}
        assert out or any(p.state_sizes().values()), "a message inside the window is used"
    else:
        assert refused == {f"inbound_{verdict}:{kind}": 1}
        assert not out and not any(p.state_sizes().values())


def test_a_scanner_batch_keeps_its_adverts_inside_the_window(config: Config) -> None:
    received = start_of(config)
    p = pipeline(config, collector())
    topic, advert = _scanner(config, received)
    batch = [advert | {"at": received + dt} for dt in (0.0, DAY_S, 0.5, -MAX_AGE_S - 5, 1.0)]
    out = p.feed(MqttInput(received, topic, batch))
    assert p.counters["inbound_too_new:scanner"] == 1
    assert p.counters["inbound_too_old:scanner"] == 1
    assert p.counters["adverts"] == 3
    assert out.fixes and max(f.at for f in out.fixes) <= received + 1.0


def test_the_window_logs_like_other_rejections(
    config: Config, caplog: pytest.LogCaptureFixture
) -> None:
    received = start_of(config)
    p = pipeline(config)
    topic, body = _sightings(config, received + DAY_S)
    p.feed(MqttInput(received, topic, body))
    (record,) = [r for r in caplog.records if r.name == "gateway.pipeline"]
    assert record.levelname == "WARNING"
    assert "rejected message on rayon/paris-11/phones/t-cc/sightings" in record.getMessage()
    assert "ahead of" in record.getMessage() and "clock" in record.getMessage()


# -- probe findings (a) and (b), on the pure pipeline ---------------------------------------


def test_a_stranger_s_future_sightings_do_not_stop_the_store_s_offers(config: Config) -> None:
    """Finding (a): 20 sightings of an unknown app token dated a day ahead used to push the
    zone clock a day ahead, so that no one's stay ever lasted `enter_after` again."""
    start = start_of(config)
    p = pipeline(config, collector())
    stranger = sightings_walk(config, "stranger", start - 20, shift=DAY_S)
    feed_all(p, [*stranger, *stranger, *stranger[:4]])
    assert p.counters["inbound_too_new:sightings"] == 20
    x, y = zone_centre(config, "entrance")
    out = feed_all(p, list(walk_adverts(config, 7, [(x, y, 0), (x, y, 8)], start)))
    assert [o.rule for o in out.offers] == ["click-collect"]
    assert (EventKind.ENTER, "entrance") in [(e.kind, e.zone) for e in out.events]
    assert all(e.at <= start + 8 for e in out.events)


def test_a_customer_s_sightings_at_9e10_are_refused_and_decide_nothing(config: Config) -> None:
    """Finding (b): a customer's phone dated 9e10 used to earn an offer whose expiry no MQTT
    message can carry (it stayed pending, and crashed every restart)."""
    start = start_of(config)
    p = pipeline(config, collector())
    items = sightings_walk(config, "t-cc", start)
    far = [MqttInput(m.at, m.topic, m.payload | {"at": 9e10}) for m in items]
    out = feed_all(p, list(far))
    assert not out.offers and not out.fixes
    assert p.counters["inbound_too_new:sightings"] == len(far)
    x, y = zone_centre(config, "entrance")
    walk = walk_adverts(config, 7, [(x, y, 0), (x, y, 8)], start + 8)
    then = feed_all(p, list(walk))  # the same customer, heard by the nodes, is served at once
    assert [o.rule for o in then.offers] == ["click-collect"]
    assert then.offers[0].expires_at < start + DAY_S


# -- replay: the same window on the trace's own times ---------------------------------------


def _replay(config: Config, trace: Path) -> tuple[list[str], dict[str, int]]:
    p = pipeline(config, collector())
    lines: list[str] = []

    def sink(out: Output) -> None:
        lines.extend(json.dumps([f.at, f.device, f.x, f.y]) for f in out.fixes)
        lines.extend(json.dumps([e.at, e.kind, e.zone, e.device, e.dwell_s]) for e in out.events)
        lines.extend(json.dumps([o.id, o.rule, o.created_at, o.expires_at]) for o in out.offers)

    replay(p, read_trace(trace), sink)
    return lines, {k: n for k, n in p.counters.items() if k.startswith("inbound_too_")}


def test_a_replay_applies_the_window_to_the_trace_s_own_times(
    config: Config, tmp_path: Path
) -> None:
    """The trace line's `at` is the receive time the daemon stamped: a replay refuses what
    the daemon refused, however long after the recording it runs, the same way every time."""
    start = start_of(config)
    x, y = zone_centre(config, "entrance")
    stranger = sightings_walk(config, "stranger", start - 3, shift=DAY_S)[:2]
    items: list[TraceItem] = [*stranger, *walk_adverts(config, 7, [(x, y, 0), (x, y, 8)], start)]
    trace = tmp_path / "trace.jsonl"
    with trace.open("w", encoding="utf-8") as fh:
        write_trace(items, fh)
    first, refused = _replay(config, trace)
    second, again = _replay(config, trace)
    assert first == second
    assert refused == again == {"inbound_too_new:sightings": 2}
    assert any("click-collect" in line for line in first)


# -- a live state saved ahead of the clock, repaired on restore -----------------------------


def test_a_restored_state_dated_ahead_is_repaired_and_the_store_serves_again(
    config: Config,
) -> None:
    """What a gateway without the window saved (a customer's visit a day ahead) must not
    restore a clock a day ahead; a state within MAX_AHEAD_S is restored untouched."""
    start = start_of(config)
    x, y = zone_centre(config, "entrance")
    poisoned = pipeline(config, collector("c-p", "t-p", 9))
    feed_all(poisoned, list(walk_adverts(config, 9, [(x, y, 0), (x, y, 8)], start + DAY_S)))
    fresh = pipeline(config, collector("c-p", "t-p", 9), collector())
    fresh.restore(poisoned.snapshot(), ())
    assert fresh.drop_future(start) == {"zone devices": 1, "zone clock": 1, "rule visits": 1}
    assert fresh.snapshot()["zones"]["now"] is None and fresh.zones.tracked() == 0
    assert fresh.drop_future(start) == {}
    out = feed_all(fresh, list(walk_adverts(config, 7, [(x, y, 0), (x, y, 8)], start)))
    assert [o.rule for o in out.offers] == ["click-collect"]
    recent = pipeline(config, collector())
    recent.restore(fresh.snapshot(), ())
    assert recent.drop_future(start + 8 - MAX_AHEAD_S) == {}
    assert recent.zones.tracked() == 1
