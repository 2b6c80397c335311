"""The console's live topics (`console/positions`, `console/ticker`) as the gateway publishes
them, on a real Mosquitto: a TV fan's two visits and an anonymous shopper, fed to a running
Gateway; what a console subscriber receives is checked against the contract (docs/mqtt.md)."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

import gateway.deliver.schemas as schemas
from gateway.central.bridge import render_bridge
from gateway.clock import ManualClock, parse_local_time
from gateway.config.load import load_config
from gateway.config.model import Config, VisitsConfig, Zone
from gateway.deliver.connect import connect_link
from gateway.events import Advertisement, EventKind, Fix, Offer, Purpose, Reason, ZoneEvent
from gateway.identity.model import Consent, Customer, CustomerRegistry
from gateway.ids import visit_pseudonym
from gateway.runtime.app import Gateway
from gateway.runtime.livefeed import MAX_DOTS, LiveFeed
from gateway.store.repo import Store, Visit
from gateway.topics import Topics
from gateway.zones.tracker import ZoneTracker
from tests.broker import Mosquitto, Received, Subscriber
from tests.stores import reference_store
from tests.walks import STORE_UUID, customer_of, tv_aisle_walk, walk_adverts, zone_centre

BASE = "rayon/paris-11"
FAN = {
    "id": "c-tv-1",
    "token": "t-tv-1",
    "devices": [f"ibeacon:{STORE_UUID}:1000:1"],
    "consent": {"instore_location": True, "marketing_push": True},
    "first_name": "Karim",
    "interests": ["tv"],
    "visits": 3,
}
# what no console payload may ever hold: the fan's ids, token, name and devices, the
# anonymous shopper's device (minor 9), any canonical device id
SECRETS = ("c-tv-1", "t-tv-1", "Karim", STORE_UUID, "ibeacon", "c0:ff:ee", "1000:9")
PSEUDONYM = re.compile(r"v-[0-9a-f]{12}")

pytestmark = pytest.mark.mqtt


class Run:
    """What one scenario left: the console's messages, the fan's visits, the store's key,
    the metrics text at the end."""

    def __init__(self) -> None:
        self.visits: list[Visit] = []
        self.key = b""
        self.metrics = ""


def payloads(sub: Subscriber, leaf: str) -> list[dict[str, Any]]:
    return [json.loads(m.payload) for m in sub.messages if m.topic == f"{BASE}/console/{leaf}"]


async def until(check: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    """Wait for `check` to hold (the gateway's ticker runs once a real second)."""
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.05)


def fed(gateway: Gateway, adverts: list[Advertisement]) -> Callable[[], bool]:
    for adv in adverts:
        gateway.offer_input(adv)
    return lambda: not len(gateway.inbox)


def offer_states(sub: Subscriber) -> list[str]:
    return [t["state"] for t in payloads(sub, "ticker") if t["type"] == "offer"]


def in_zone(sub: Subscriber, zone: str) -> bool:
    return any(d["zone"] == zone for p in payloads(sub, "positions") for d in p["devices"])


def shown(sub: Subscriber, count: int) -> Callable[[], bool]:
    """Whether the last positions message shows `count` devices."""
    return lambda: (
        bool(payloads(sub, "positions"))
        and (len(payloads(sub, "positions")[-1]["devices"]) == count)
    )


async def scenario(config: Config, clock: ManualClock, console: Subscriber, start: float) -> Run:
    run, store = Run(), Store(config.database.url)
    store.upsert_customer(customer_of(FAN))
    link = await connect_link(config)
    try:
        gateway = await Gateway.start(config, store=store, link=link, clock=clock)
        stop = asyncio.Event()
        running = asyncio.create_task(gateway.run(stop))
        # first visit: the fan walks to the TV aisle (an offer), an anonymous shopper to the door
        first = walk_adverts(config, 1, tv_aisle_walk(config, start), start)
        ex, ey = zone_centre(config, "entrance")
        stranger = walk_adverts(config, 9, [(ex, ey, 0), (ex, ey, 20)], start)
        in_aisle = [a for a in first if a.at < start + 56]  # past the 30 s dwell, still there
        clock.set(in_aisle[-1].at)
        await until(fed(gateway, sorted(in_aisle + stranger, key=lambda a: a.at)), "fed")
        clock.advance(1.0)  # a positions round with every input taken
        await until(lambda: in_zone(console, "aisle-tv"), "the fan's dot in the TV aisle")
        await until(lambda: "sent" in offer_states(console), "the offer sent")
        offer_id = next(t["offer"] for t in payloads(console, "ticker") if t["type"] == "offer")
        feedback = {"type": "feedback", "v": 1, "offer": offer_id, "state": "delivered"}
        body = json.dumps(feedback | {"at": clock.now()}).encode()
        await link.publish(f"{BASE}/feedback/t-tv-1", body, qos=1)  # the fan's app confirms
        await until(lambda: "delivered" in offer_states(console), "the offer delivered")
        await until(fed(gateway, [a for a in first if a.at >= start + 56]), "fed")
        clock.set(first[-1].at + config.visits.timeout + 5)  # the fan's visit ends
        await until(shown(console, 0), "the empty map")
        # second visit, after the gap: a new pseudonym
        again = first[-1].at + config.visits.timeout + config.visits.gap + 60
        second = walk_adverts(config, 1, [(ex, ey, 0), (ex, ey, 10)], again)
        clock.set(second[-1].at)
        await until(fed(gateway, second), "fed")
        await until(lambda: len(payloads(console, "positions")[-1]["devices"]) == 1, "back")
        run.metrics = await gateway.metrics_text()
        stop.set()
        await running
        run.visits = await store.call(store.visits, "c-tv-1")
        key = await store.call(store.visit_key)
        run.key = key or b""
    finally:
        await link.disconnect()
        store.close()
    return run


@pytest.fixture
def lived(
    tmp_path: Path, mosquitto: Mosquitto, subscriber: Callable[..., Subscriber]
) -> tuple[Run, Subscriber, list[Received]]:
    """The scenario run once; the console's subscriber; what a late subscriber got retained."""
    config = load_config(reference_store(tmp_path, port=mosquitto.port))
    start = parse_local_time("2026-03-03T15:00:00", config.store.timezone)  # a Tuesday
    console = subscriber(f"{BASE}/console/#", qos=0)
    run = asyncio.run(scenario(config, ManualClock(start), console, start))
    late = subscriber(f"{BASE}/console/#", "rayon/marker")
    late.publish("rayon/marker", b"after")
    return run, console, late.wait(1)


def test_positions_show_the_fan_by_visit_pseudonym_only(
    lived: tuple[Run, Subscriber, list[Received]],
) -> None:
    run, console, _ = lived
    positions = payloads(console, "positions")
    dots = [d for p in positions for d in p["devices"]]
    assert dots and all(PSEUDONYM.fullmatch(d["visit"]) for d in dots)
    assert max(len(p["devices"]) for p in positions) == 1  # the anonymous shopper: never
    assert {d["zone"] for d in dots} >= {"aisle-tv"}
    # the console names each visit from the database's visits and key; a new visit, a new name
    expected = [visit_pseudonym(run.key, v.device, v.started_at) for v in run.visits]
    assert list(dict.fromkeys(d["visit"] for d in dots)) == expected
    assert len(expected) == 2 and expected[0] != expected[1]


def test_the_map_empties_once_when_the_last_one_leaves(
    lived: tuple[Run, Subscriber, list[Received]],
) -> None:
    _, console, _ = lived
    counts = [len(p["devices"]) for p in payloads(console, "positions")]
    assert counts.count(0) == 1 and counts[-1] == 1


def test_the_ticker_carries_the_enter_and_the_offer_with_its_rule(
    lived: tuple[Run, Subscriber, list[Received]],
) -> None:
    run, console, _ = lived
    ticker = payloads(console, "ticker")
    first = visit_pseudonym(run.key, run.visits[0].device, run.visits[0].started_at)
    events = [(t["kind"], t["zone"], t["visit"]) for t in ticker if t["type"] == "zone_event"]
    assert ("visit_start", "store", first) in events and ("enter", "aisle-tv", first) in events
    ended = events.index(("visit_end", "store", first))
    assert {visit for _, _, visit in events[: ended + 1]} == {first}  # its exits too
    assert events[ended + 1][:2] == ("visit_start", "store") and events[ended + 1][2] != first
    offers = [t for t in ticker if t["type"] == "offer"]
    assert (offers[0]["rule"], offers[0]["zone"], offers[0]["visit"]) == (
        "tv-aisle-dwell",
        "aisle-tv",
        first,
    )
    states = [o["state"] for o in offers if o["offer"] == offers[0]["offer"]]
    assert states == ["pending", "sent", "delivered"]  # decided, acknowledged, confirmed


def test_every_payload_matches_its_schema_and_names_nobody(
    lived: tuple[Run, Subscriber, list[Received]],
) -> None:
    _, console, _ = lived
    assert console.messages
    for message in console.messages:
        leaf = message.topic.rsplit("/", 1)[1]
        validator = Draft202012Validator(schemas.schema(f"console_{leaf}"))
        assert [e.message for e in validator.iter_errors(json.loads(message.payload))] == []
        assert not [s for s in SECRETS if s in message.payload.decode()], message.payload


def test_nothing_is_retained(lived: tuple[Run, Subscriber, list[Received]]) -> None:
    _, console, late = lived
    assert [m.topic for m in late] == ["rayon/marker"]  # no retained console message first
    assert not any(m.retain for m in console.messages)


def test_metrics_count_offers_by_rule_and_state_and_zones(
    lived: tuple[Run, Subscriber, list[Received]],
) -> None:
    run, _, _ = lived
    lines = run.metrics.splitlines()
    assert 'rayon_offers_total{rule="tv-aisle-dwell",state="pending"} 1' in lines
    assert 'rayon_offers_total{rule="tv-aisle-dwell",state="sent"} 1' in lines
    assert 'rayon_offers_total{rule="tv-aisle-dwell",state="delivered"} 1' in lines
    assert "# TYPE rayon_zone_occupancy gauge" in lines
    assert 'rayon_zone_occupancy{zone="entrance"} 1' in lines  # the fan, back at the door
    assert lines.count("# TYPE rayon_offers_total counter") == 1


# -- the feed on its own: a tracker and customers made by hand ---------------------------------

KEY = b"k" * 32
DAY = 1772546400.0


def device(i: int) -> str:
    return f"ibeacon:{STORE_UUID}:1000:{i}"


def customer(i: int, consent: bool = True) -> Customer:
    return Customer(f"c-{i}", f"t-{i}", (device(i),), Consent(consent, True))


def store_tracker() -> ZoneTracker:
    store = Zone("store", "Magasin", ((0, 0), (40, 0), (40, 25), (0, 25)), 0.0, 60.0)
    return ZoneTracker([store], VisitsConfig(gap=1800.0, timeout=300.0))


async def with_feed(
    config: Config, clock: ManualClock, use: Callable[[LiveFeed], Awaitable[None]]
) -> None:
    link = await connect_link(config)
    try:
        await use(LiveFeed(link, Topics("rayon", "paris-11"), clock, config.store.timezone, KEY))
    finally:
        await link.disconnect()


def test_positions_show_consenting_customers_only_at_most_max_dots_once_a_second(
    tmp_path: Path, mosquitto: Mosquitto, subscriber: Callable[..., Subscriber]
) -> None:
    config = load_config(reference_store(tmp_path, port=mosquitto.port))
    tracker, clock = store_tracker(), ManualClock(DAY)
    hidden = [device(0), device(1)]  # no consent; no customer
    everyone = [*hidden, *(device(i) for i in range(2, MAX_DOTS + 3))]  # 1,001 consenting
    for d in everyone:
        tracker.update(Fix(DAY, d, 5.0, 5.0, 1.0, ("pi-entrance",)))
    customers = CustomerRegistry([customer(0, consent=False), *map(customer, range(2, 1100))])
    console = subscriber(f"{BASE}/console/positions", qos=0)

    async def rounds(feed: LiveFeed) -> None:
        await feed.positions(tracker, customers)
        clock.advance(0.5)
        await feed.positions(tracker, customers)  # too soon: nothing
        clock.advance(0.5)
        await feed.positions(tracker, customers)

    asyncio.run(with_feed(config, clock, rounds))
    first, second = (json.loads(m.payload) for m in console.wait(2))
    assert len(first["devices"]) == MAX_DOTS and first["devices"] == second["devices"]
    shown = {d["visit"] for d in first["devices"]}
    assert len(shown) == MAX_DOTS
    assert not shown & {visit_pseudonym(KEY, d, DAY) for d in hidden}
    assert shown == {visit_pseudonym(KEY, device(i), DAY) for i in range(2, MAX_DOTS + 2)}
    assert second["at"] != first["at"]


def event(at: float, kind: EventKind, zone: str, reason: Reason | None = None) -> ZoneEvent:
    return ZoneEvent(at, kind, zone, device(2), "c-2", None, reason)


def test_a_batch_names_each_line_by_the_visit_it_belongs_to_even_when_the_tracker_is_past_it(
    tmp_path: Path, mosquitto: Mosquitto, subscriber: Callable[..., Subscriber]
) -> None:
    """The batch was written after the next visit began: its lines still name the visit
    they happened in, and an offer's later states follow it, counted once."""
    config = load_config(reference_store(tmp_path, port=mosquitto.port))
    tracker, clock = store_tracker(), ManualClock(DAY + 4000)
    customers = CustomerRegistry([customer(2)])
    again = DAY + 3000  # the tracker is in the second visit already
    tracker.update(Fix(again, device(2), 5.0, 5.0, 1.0, ("pi-entrance",)))
    events = [
        event(DAY + 400, EventKind.EXIT, "aisle-tv"),
        event(DAY + 400, EventKind.VISIT_END, "store", {"started_at": DAY}),
        event(again, EventKind.VISIT_START, "store"),
        event(again + 5, EventKind.ENTER, "aisle-tv"),
    ]
    offer = Offer("o-1", "thanks", "paris-11", None, "c-2", "t-2", DAY + 400, DAY + 9000,
                  "Merci", "…", None, None, Purpose.COMMERCIAL)  # fmt: skip
    console = subscriber(f"{BASE}/console/ticker", qos=0)
    tally: dict[tuple[str, str], int] = {}

    async def batch(feed: LiveFeed) -> None:
        feed.note_decided(events, [(offer, "pending")], tracker, customers)
        feed.note_settled([(offer, "sent")])
        feed.note_confirmed(["o-1", "o-1", "unknown"])
        await feed.flush()
        tally.update(feed.offers_by)

    asyncio.run(with_feed(config, clock, batch))
    lines = [json.loads(m.payload) for m in console.wait(7)]
    first, second = visit_pseudonym(KEY, device(2), DAY), visit_pseudonym(KEY, device(2), again)
    assert [(t.get("kind") or t["state"], t["visit"]) for t in lines] == [
        ("exit", first),
        ("visit_end", first),
        ("pending", first),  # decided at the visit's end, after it in the batch
        ("visit_start", second),
        ("enter", second),
        ("sent", first),
        ("delivered", first),
    ]
    assert tally == {("thanks", "pending"): 1, ("thanks", "sent"): 1, ("thanks", "delivered"): 1}


def test_the_console_topics_are_never_bridged_to_the_centre(tmp_path: Path) -> None:
    config = load_config(reference_store(tmp_path))
    bridged = render_bridge(config, address="central.example.com:8883", plain=True)
    topics = [line for line in bridged.splitlines() if line.startswith("topic ")]
    assert topics and all(line.startswith("topic chain/") for line in topics)
    assert "console" not in bridged
