"""Issue 16, future clocks, through the real `Gateway` on a real Mosquitto and a real database:
one app dating its messages ahead must not stop every customer's offers, nor crash the
gateway; a store already poisoned by such messages is repaired when the gateway starts."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from gateway.clock import ManualClock, parse_local_time
from gateway.config.load import load_config
from gateway.config.model import Config
from gateway.decode.adverts import adv_to_json
from gateway.deliver.connect import connect_link
from gateway.deliver.mqtt import MqttLink
from gateway.events import Advertisement
from gateway.identity.model import CustomerRegistry
from gateway.pipeline import Output, Pipeline
from gateway.rules.load import load_rules
from gateway.runtime.app import Gateway
from gateway.store.persist import RUNTIME_KEY
from gateway.store.repo import Store
from gateway.store.tables import OfferState
from rayon_tooling.benchmarks.latency import bench_offers
from tests.broker import Mosquitto, Subscriber
from tests.stores import reference_store
from tests.test_timewindow import beacons_heard
from tests.walks import click_collect_customer, customer_of, walk_adverts, zone_centre

BASE = "rayon/paris-11"
DAY_S = 86_400.0

pytestmark = pytest.mark.mqtt

Scenario = Callable[[Gateway, MqttLink], Awaitable[None]]


def store_config(tmp_path: Path, mosquitto: Mosquitto, url: str | None = None) -> Config:
    overrides: dict[str, Any] = {"database": {"url": url}} if url else {}
    return load_config(reference_store(tmp_path, port=mosquitto.port, **overrides))


def start_of(config: Config) -> float:
    return parse_local_time("2026-03-03T11:00:00", config.store.timezone)


def entrance_walk(config: Config, minor: int, start: float) -> list[Advertisement]:
    """The customer's phone (iBeacon minor `minor`) 8 s in the entrance, heard by the nodes."""
    x, y = zone_centre(config, "entrance")
    return walk_adverts(config, minor, [(x, y, 0), (x, y, 8)], start)


async def publish_adverts(link: MqttLink, adverts: list[Advertisement]) -> None:
    for adv in adverts:
        body = json.dumps(adv_to_json(adv)["adv"] | {"at": adv.at}).encode()
        await link.publish(f"{BASE}/scanners/{adv.anchor}/adv", body, qos=0)


async def sightings(link: MqttLink, config: Config, token: str, ats: list[float]) -> None:
    x, y = zone_centre(config, "entrance")
    for at in ats:
        body = json.dumps({"at": at, "beacons": beacons_heard(config, x, y)}).encode()
        await link.publish(f"{BASE}/phones/{token}/sightings", body, qos=1)


async def processed(gateway: Gateway, more: int, since: int) -> None:
    """Until the pipeline has taken `more` inputs after its first `since`."""
    async with asyncio.timeout(10):
        while gateway.state.counters["inputs"] < since + more:
            await asyncio.sleep(0.02)


async def subscribed(gateway: Gateway, link: MqttLink) -> None:
    """Until the gateway hears the phones' topics: a phone reporting no beacon (which decides
    nothing) is sent until one reaches the pipeline."""
    async with asyncio.timeout(10):
        while not gateway.state.counters["inputs"]:
            await link.publish(f"{BASE}/phones/probe/sightings", b'{"beacons": []}', qos=1)
            await asyncio.sleep(0.05)
    await asyncio.sleep(0.1)  # the probes still on their way


def run_gateway(config: Config, store: Store, clock: ManualClock, scenario: Scenario) -> Gateway:
    """Run the real Gateway on `store` through `scenario`, then stop it cleanly."""

    async def main() -> Gateway:
        link = await connect_link(config)
        gateway = await Gateway.start(config, store=store, link=link, clock=clock)
        stop = asyncio.Event()
        running = asyncio.create_task(gateway.run(stop))
        try:
            await subscribed(gateway, link)
            await scenario(gateway, link)
        finally:
            stop.set()
            await running
            await link.disconnect()
        return gateway

    return asyncio.run(main())


def offered(phones: Subscriber) -> list[str]:
    """The topics of the distinct offers received, in order (an offer acknowledged as the
    gateway stops may come twice: at least once, the id is the app's idempotency key)."""
    seen: dict[str, str] = {}
    for m in phones.messages:
        seen.setdefault(json.loads(m.payload)["id"], m.topic)
    return list(seen.values())


async def until_offered(phones: Subscriber, count: int) -> None:
    """Until `count` distinct offers arrived (a repeat of one does not count)."""
    async with asyncio.timeout(15):
        while len(offered(phones)) < count:
            await asyncio.sleep(0.05)


def add_customer(store: Store, cid: str, token: str, minor: int) -> None:
    store.upsert_customer(customer_of(click_collect_customer(cid, token, minor)))


def test_a_stranger_s_future_sightings_stop_no_one_s_offers_even_after_a_restart(
    tmp_path: Path, mosquitto: Mosquitto, subscriber: Callable[..., Subscriber]
) -> None:
    """Finding (a): 20 sightings of an unknown token dated a day ahead pushed the zone clock a
    day ahead (persisted), so no customer's stay lasted `enter_after` again."""
    config = store_config(tmp_path, mosquitto)
    start = start_of(config)
    clock = ManualClock(start + 30)
    store = Store(config.database.url)
    add_customer(store, "c-a", "t-a", 7)
    add_customer(store, "c-b", "t-b", 8)
    phones = subscriber(f"{BASE}/offers/+")

    async def poisoned_then_walk(gateway: Gateway, link: MqttLink) -> None:
        future, since = (
            [clock.now() + DAY_S + i for i in range(20)],
            gateway.state.counters["inputs"],
        )
        await sightings(link, config, "stranger", future)
        await processed(gateway, 20, since)
        await publish_adverts(link, entrance_walk(config, 7, start))
        await until_offered(phones, 1)

    first = run_gateway(config, store, clock, poisoned_then_walk)
    assert offered(phones) == [f"{BASE}/offers/t-a"]
    assert first.counters()["inbound_too_new:sightings"] == 20

    clock.set(start + 90)  # the same database, the next run

    async def walk(gateway: Gateway, link: MqttLink) -> None:
        await publish_adverts(link, entrance_walk(config, 8, start + 70))
        await until_offered(phones, 2)

    run_gateway(config, store, clock, walk)
    store.close()
    assert offered(phones) == [f"{BASE}/offers/t-a", f"{BASE}/offers/t-b"]


def test_a_customer_s_sightings_at_9e10_are_refused_and_nothing_unsendable_waits(
    tmp_path: Path, mosquitto: Mosquitto, subscriber: Callable[..., Subscriber]
) -> None:
    """Finding (b): sightings dated 9e10 earned an offer whose expiry interval overflowed
    MQTT's 32-bit field: the publisher raised struct.error, and the offer stayed pending."""
    config = store_config(tmp_path, mosquitto)
    start = start_of(config)
    clock = ManualClock(start + 10)
    store = Store(config.database.url)
    add_customer(store, "c-a", "t-a", 7)
    phone = subscriber(f"{BASE}/offers/t-a")

    async def far_then_sane(gateway: Gateway, link: MqttLink) -> None:
        since = gateway.state.counters["inputs"]
        await sightings(link, config, "t-a", [9e10 + i for i in range(8)])
        await processed(gateway, 8, since)
        await asyncio.sleep(0.5)  # written, and drained: nothing may be pending now
        assert await store.call(store.offer_log) == []
        await publish_adverts(link, entrance_walk(config, 7, start))
        await asyncio.to_thread(phone.wait, 1, 15.0)

    gateway = run_gateway(config, store, clock, far_then_sane)
    (record,) = store.offer_log()
    store.close()
    assert gateway.counters()["inbound_too_new:sightings"] == 8
    assert record.state is OfferState.SENT and record.offer.created_at < start + 10
    assert json.loads(phone.messages[0].payload)["rule"] == "click-collect"


# -- a store already poisoned ---------------------------------------------------------------


def poison(config: Config, store: Store, start: float) -> None:
    """What an unfixed gateway left behind, written with the store's own API: a live state a
    day ahead (zone clock, a device's visit and stays, a rules' visit), the offer it decided
    then, and a pending offer whose expiry no MQTT message can carry."""
    customers = CustomerRegistry(store.load_customers())
    pipeline = Pipeline(config, load_rules(config.rules_dir, config), customers)
    decided = Output()
    for adv in entrance_walk(config, 9, start + DAY_S):  # the radio path has no window
        decided.extend(pipeline.feed(adv))
    assert [o.rule for o in decided.offers] == ["click-collect"]
    unsendable = dataclasses.replace(
        bench_offers(1)[0],
        id="o-9e10",
        customer="c-old",
        token="t-old",
        created_at=start - 60,
        expires_at=9e10,
    )
    store.commit(
        decided.events, [*decided.offers, unsendable], {RUNTIME_KEY: pipeline.snapshot()}, start
    )
    state = store.load_runtime(RUNTIME_KEY)
    assert state is not None and state["zones"]["now"] > start + DAY_S


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_a_poisoned_store_is_repaired_at_start_and_serves_again(
    tmp_path: Path,
    mosquitto: Mosquitto,
    subscriber: Callable[..., Subscriber],
    request: pytest.FixtureRequest,
    database: str,
) -> None:
    url = request.getfixturevalue("postgres_url") if database == "postgresql" else None
    config = store_config(tmp_path, mosquitto, url)
    start = start_of(config)
    clock = ManualClock(start + 30)
    store = Store(config.database.url)
    add_customer(store, "c-p", "t-p", 9)  # served a day ahead, by the unfixed gateway
    add_customer(store, "c-a", "t-a", 7)  # a fresh customer, today
    poison(config, store, start)
    status = subscriber(f"{BASE}/gateway/status")
    phones = subscriber(f"{BASE}/offers/+")

    async def walk(gateway: Gateway, link: MqttLink) -> None:
        await publish_adverts(link, entrance_walk(config, 7, start))
        await until_offered(phones, 1)
        await asyncio.sleep(0.3)  # a publisher that crashed would have ended the run here

    gateway = run_gateway(config, store, clock, walk)
    log = {r.offer.id: r for r in store.offer_log()}
    store.close()
    said = [json.loads(m.payload) for m in status.messages]
    assert said[0]["state"] == "online"
    assert offered(phones) == [f"{BASE}/offers/t-a"]
    counters = gateway.counters()
    assert counters["repaired_future_state"] >= 1
    assert counters["repaired_offers"] == 2
    assert log["o-9e10"].state is OfferState.CANCELLED
    future = [r for r in log.values() if r.offer.customer == "c-p"]
    assert [r.state for r in future] == [OfferState.CANCELLED]
    assert all(r.last_error and "repaired" in r.last_error for r in (log["o-9e10"], *future))
