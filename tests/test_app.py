"""The Gateway in process, on a real Mosquitto: a Bluetooth adapter that fails to start is
retried in the background and never stops the gateway, whose other inputs keep flowing."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from bleak.exc import BleakError

from gateway.clock import ManualClock, parse_local_time
from gateway.config.load import load_config
from gateway.decode.adverts import adv_to_json
from gateway.decode.beacons import encode_ibeacon
from gateway.deliver.connect import connect_link
from gateway.events import MqttInput, ZoneEvent
from gateway.pipeline import Output
from gateway.runtime.app import Gateway
from gateway.sources.ble import BleSource, ReplayScannerBackend
from gateway.store.outbox import OfferRecord
from gateway.store.persist import load_pools, persist
from gateway.store.repo import Position, Store
from gateway.store.tables import OfferState
from rayon_tooling.benchmarks.latency import bench_offers
from tests.broker import Mosquitto, Subscriber
from tests.stores import reference_store
from tests.walks import (
    STORE_UUID,
    click_collect_customer,
    customer_of,
    walk_adverts,
    zone_centre,
)

BASE = "rayon/paris-11"

pytestmark = pytest.mark.mqtt


def test_a_dead_adapter_degrades_the_gateway_but_never_stops_it(
    tmp_path: Path, mosquitto: Mosquitto, subscriber: Callable[..., Subscriber]
) -> None:
    config = load_config(reference_store(tmp_path, port=mosquitto.port))
    start = parse_local_time("2026-03-03T11:00:00", config.store.timezone)
    clock = ManualClock(start + 30)
    dead = BleSource(
        "pi-entrance",
        clock=clock,
        backend=ReplayScannerBackend,
        backend_kwargs={"start_error": BleakError("No Bluetooth adapters found.")},
    )
    status = subscriber(f"{BASE}/gateway/status")
    phone = subscriber(f"{BASE}/offers/t-cc-2")
    customer = click_collect_customer("c-cc-2", "t-cc-2", 7)
    phone.publish(f"{BASE}/crm/customers/c-cc-2", json.dumps(customer).encode(), retain=True)
    x, y = zone_centre(config, "entrance")
    adverts = walk_adverts(config, 7, [(x, y, 0), (x, y, 8)], start)

    async def scenario() -> Gateway:
        store = Store(config.database.url)
        link = await connect_link(config)
        gateway = await Gateway.start(config, store=store, link=link, clock=clock, sources=[dead])
        stop = asyncio.Event()
        running = asyncio.create_task(gateway.run(stop))
        await asyncio.sleep(0.5)  # the retained CRM message reaches the pipeline first
        for adv in adverts:
            body = json.dumps(adv_to_json(adv)["adv"] | {"at": adv.at}).encode()
            await link.publish(f"{BASE}/scanners/{adv.anchor}/adv", body, qos=0)
        await asyncio.to_thread(phone.wait, 1, 15.0)
        stop.set()
        await running
        await link.disconnect()
        store.close()
        return gateway

    gateway = asyncio.run(scenario())
    assert json.loads(phone.messages[0].payload)["rule"] == "click-collect"
    assert gateway.state.counters["source_failures:ble:hci0"] >= 1
    assert any(
        "source ble:hci0 failing" in d and "adapter" in d.lower() for d in gateway.degraded()
    )
    said = [json.loads(m.payload) for m in status.messages]
    assert any(s["state"] == "online" and s.get("degraded") for s in said), said


def crm_in_the_offers_batch(
    tmp_path: Path, mosquitto: Mosquitto, subscriber: Callable[..., Subscriber], body: bytes
) -> tuple[list[OfferRecord], list[ZoneEvent], list[str]]:
    """A click-and-collect customer enters and earns an offer; the CRM message `body` about
    them is read in the same batch, after the adverts.  What the store has of them once the
    batch is written and the publisher has drained again (offers, events), and the topics
    their phone received (a marker published last)."""
    config = load_config(reference_store(tmp_path, port=mosquitto.port))
    start = parse_local_time("2026-03-03T11:00:00", config.store.timezone)
    clock = ManualClock(start + 30)
    phone = subscriber(f"{BASE}/offers/t-cc-3", "rayon/marker")
    customer = click_collect_customer("c-cc-3", "t-cc-3", 8)
    x, y = zone_centre(config, "entrance")
    adverts = walk_adverts(config, 8, [(x, y, 0), (x, y, 8)], start)
    crm = MqttInput(adverts[-1].at, f"{BASE}/crm/customers/c-cc-3", body)

    async def scenario() -> tuple[list[OfferRecord], list[ZoneEvent]]:
        store = Store(config.database.url)
        store.upsert_customer(customer_of(customer))
        link = await connect_link(config)
        gateway = await Gateway.start(config, store=store, link=link, clock=clock)
        stop = asyncio.Event()
        running = asyncio.create_task(gateway.run(stop))
        await asyncio.sleep(0.3)  # started: its first drain found nothing
        for adv in adverts:  # queued at once, with the CRM message: one batch
            gateway.offer_input(adv)
        gateway.offer_input(crm)
        async with asyncio.timeout(10):
            while len(gateway.inbox):  # the pipeline took them all, the CRM one last
                await asyncio.sleep(0.05)
        await asyncio.sleep(1.5)  # the batch written, and the publisher's next drain
        await link.publish("rayon/marker", b"", qos=1)
        await asyncio.to_thread(phone.wait, 1)
        stop.set()
        await running
        await link.disconnect()
        found = await store.call(store.offer_log), await store.call(store.events, "c-cc-3")
        store.close()
        return found

    offers, events = asyncio.run(scenario())
    return offers, events, [m.topic for m in phone.messages]


def test_an_offer_withdrawn_in_its_own_batch_is_never_sent(
    tmp_path: Path, mosquitto: Mosquitto, subscriber: Callable[..., Subscriber]
) -> None:
    """The customer withdraws push consent in a CRM message read in the same batch as their
    offer: persist cancels the offer it has just queued, and the writer withdraws it from
    the publisher's hand-off, so it never goes out."""
    customer = click_collect_customer("c-cc-3", "t-cc-3", 8)
    withdrawn = customer | {"consent": {"instore_location": True, "marketing_push": False}}
    body = json.dumps(withdrawn).encode()
    (record,), _, received = crm_in_the_offers_batch(tmp_path, mosquitto, subscriber, body)
    assert record.offer.rule == "click-collect" and record.state is OfferState.CANCELLED
    assert received == ["rayon/marker"]


def test_a_customer_erased_in_the_offers_batch_leaves_nothing_and_gets_nothing(
    tmp_path: Path, mosquitto: Mosquitto, subscriber: Callable[..., Subscriber]
) -> None:
    """The CRM erases the customer (an empty message) in the batch that decided their entry
    events and offer: persist erases first, so those must not be written after the erase."""
    offers, events, received = crm_in_the_offers_batch(tmp_path, mosquitto, subscriber, b"")
    assert offers == [] and events == []
    assert received == ["rayon/marker"]


def test_code_pools_survive_a_restart_and_never_hand_a_code_out_twice(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'rayon.db'}")
    try:
        assert store.import_codes("tv15", ["A1", "A2", "A3"]) == 3
        pools = load_pools(store)
        assert pools.assign("tv15", "c-1", 10.0) == "A1"
        persist(store, Output(), at=10.0, assignments=pools.take_new())
        after = load_pools(store)  # the next run
        assert after.code_of("tv15", "c-1") == "A1" and after.remaining("tv15") == 2
        assert after.assign("tv15", "c-2", 11.0) == "A2"
        store.delete_customer("c-1")  # erased, but the code stays spent
        assert load_pools(store).remaining("tv15") == 2
    finally:
        store.close()


def test_an_erasure_unlinks_the_batch_s_codes_and_drops_its_positions(tmp_path: Path) -> None:
    """Codes handed out and positions sampled before an erasure, in the same batch, are
    written after it: the codes stay spent but linked to nobody, the positions are dropped;
    a code on an offer kept for the customer (registered again after it) stays theirs."""
    store = Store(f"sqlite:///{tmp_path / 'rayon.db'}")
    try:
        store.import_codes("tv15", ["A1", "A2", "A3"])
        pools = load_pools(store)
        for customer in ("c-1", "c-2", "c-3"):
            pools.assign("tv15", customer, 10.0)
        kept = dataclasses.replace(bench_offers(1)[0], customer="c-3", code="A3")
        out = Output(offers=[kept], erased=["c-1", "c-3"])
        where = [Position(10.0, f"d-{c}", c, 1.0, 2.0, 3.0) for c in ("c-1", "c-2", "c-3")]
        persist(store, out, at=10.0, assignments=pools.take_new(), positions=where)
        assert [(code, customer) for _, code, customer, _ in store.codes()] == [
            ("A1", None),
            ("A2", "c-2"),
            ("A3", "c-3"),
        ]
        assert [p.customer for p in store.positions()] == ["c-2"]
        assert load_pools(store).remaining("tv15") == 0  # all three stay spent
    finally:
        store.close()


def test_sighup_reloads_the_floor_plan_and_keeps_what_needs_a_restart(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    path = reference_store(tmp_path, port=mosquitto.port)
    config = load_config(path)
    text = path.read_text(encoding="utf-8")
    node = "rayon/paris-11/scanners/node-new/adv"
    advert = {
        "at": 10.0,
        "address": "c0:ff:ee:00:00:01",
        "rssi": -60,
        "manufacturer_data": {"76": encode_ibeacon(STORE_UUID, 1000, 1, -59).hex()},
    }

    async def scenario() -> tuple[Gateway, list[bool]]:
        store = Store(config.database.url)
        link = await connect_link(config)
        gateway = await Gateway.start(config, store=store, link=link, clock=ManualClock(10.0))
        stop = asyncio.Event()
        running = asyncio.create_task(gateway.run(stop))
        await asyncio.sleep(0.3)
        before = gateway.pipeline.feed(MqttInput(10.0, node, advert))
        raw = yaml.safe_load(text)
        raw["anchors"].append({"id": "node-new", "kind": "scanner", "x": 20.0, "y": 12.0})
        raw["mqtt"]["port"] = 1  # needs a restart: kept as it runs
        path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
        ok = await gateway.reload_rules(config_too=True)
        after = gateway.pipeline.feed(MqttInput(11.0, node, {**advert, "at": 11.0}))
        after.extend(gateway.pipeline.tick(11.5))  # its burst settled: a fix
        path.write_text(text.replace("timezone: Europe/Paris", "timezone: Mars/Olympus"), "utf-8")
        refused = await gateway.reload_rules(config_too=True)
        stop.set()
        await running
        await link.disconnect()
        store.close()
        return gateway, [not before.fixes, ok, bool(after.fixes), not refused]

    gateway, checks = asyncio.run(scenario())
    assert checks == [True, True, True, True]
    assert gateway.config.anchor("node-new") is not None  # the floor plan applied at once
    assert gateway.config.mqtt.port == mosquitto.port  # the broker waits for a restart
    assert "Mars/Olympus" in (gateway.rules_state.error or "")


def test_settle_heap_freezes_what_lives_and_still_collects_what_a_reload_drops() -> None:
    import gc
    import weakref

    from gateway.heap import settle_heap

    class Node:
        def __init__(self) -> None:
            self.me = self  # a cycle: only the collector can free it

    old_rules = Node()
    gone = weakref.ref(old_rules)
    settle_heap()
    assert gc.get_freeze_count() > 0  # the start-up heap is out of the collector's passes
    del old_rules  # a reload replaced it
    settle_heap()
    assert gone() is None  # unfrozen, collected: reloads do not leak
    gc.unfreeze()
