"""Issue 16, hostile input: the real Gateway on a real Mosquitto is sent what crashed it (a
feedback nested 2,000 deep, a 400-digit time, a retained CRM record with a 400-digit visit
count); it refuses and counts each one, and a normal customer still gets their offer."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from pathlib import Path

import pytest

from gateway.clock import ManualClock, parse_local_time
from gateway.config.load import load_config
from gateway.config.model import Config
from gateway.decode.adverts import adv_to_json
from gateway.deliver.connect import connect_link
from gateway.runtime.app import Gateway
from gateway.store.repo import Store
from tests.broker import Mosquitto, Subscriber
from tests.stores import reference_store
from tests.walks import click_collect_customer, walk_adverts, zone_centre

BASE = "rayon/paris-11"
FEEDBACK = {"type": "feedback", "v": 1, "offer": "o-1", "state": "opened"}
HUGE = "9" * 400

pytestmark = pytest.mark.mqtt


def drive_to_an_offer(
    config: Config,
    clock: ManualClock,
    minor: int,
    hostile: list[tuple[str, bytes]],
    phone: Subscriber,
) -> dict[str, int]:
    """Start the gateway, publish the `hostile` messages, then walk customer `minor` into the
    entrance: their offer must reach `phone`.  The gateway's counters once it has stopped
    (`run` returns normally: a crashed task group would raise out of it)."""
    start = clock.now() - 30
    x, y = zone_centre(config, "entrance")
    adverts = walk_adverts(config, minor, [(x, y, 0), (x, y, 8)], start)

    async def scenario() -> dict[str, int]:
        store = Store(config.database.url)
        link = await connect_link(config)
        gateway = await Gateway.start(config, store=store, link=link, clock=clock)
        stop = asyncio.Event()
        running = asyncio.create_task(gateway.run(stop))
        await asyncio.sleep(0.5)  # retained CRM messages reach the pipeline first
        for topic, body in hostile:
            await link.publish(topic, body, qos=1)
        await asyncio.sleep(0.3)
        for adv in adverts:
            body = json.dumps(adv_to_json(adv)["adv"] | {"at": adv.at}).encode()
            await link.publish(f"{BASE}/scanners/{adv.anchor}/adv", body, qos=0)
        await asyncio.to_thread(phone.wait, 1, 15.0)
        stop.set()
        await running
        counters = gateway.counters()
        await link.disconnect()
        store.close()
        return counters

    return asyncio.run(scenario())


def gateway_setup(tmp_path: Path, mosquitto: Mosquitto) -> tuple[Config, ManualClock]:
    config = load_config(reference_store(tmp_path, port=mosquitto.port))
    start = parse_local_time("2026-03-03T11:00:00", config.store.timezone)
    return config, ManualClock(start + 30)


def test_malformed_feedback_is_counted_and_the_gateway_keeps_delivering(
    tmp_path: Path, mosquitto: Mosquitto, subscriber: Callable[..., Subscriber]
) -> None:
    config, clock = gateway_setup(tmp_path, mosquitto)
    phone = subscriber(f"{BASE}/offers/t-cc-2")
    customer = click_collect_customer("c-cc-2", "t-cc-2", 7)
    phone.publish(f"{BASE}/crm/customers/c-cc-2", json.dumps(customer).encode(), retain=True)
    late = json.dumps(FEEDBACK | {"at": 0}).encode()[:-2] + HUGE.encode() + b"}"
    hostile = [
        (f"{BASE}/feedback/t-cc-2", b"[" * 2000 + b"]" * 2000),  # 4 KB: RecursionError
        (f"{BASE}/feedback/t-cc-2", late),  # "at": 400 digits: OverflowError
        (f"{BASE}/feedback/t-cc-2", json.dumps(FEEDBACK | {"at": clock.now() + 3600}).encode()),
    ]
    counters = drive_to_an_offer(config, clock, 7, hostile, phone)
    assert json.loads(phone.messages[0].payload)["rule"] == "click-collect"
    assert counters["feedback_rejected"] == len(hostile)


def test_a_retained_crm_record_out_of_bounds_never_stops_the_gateway_nor_its_restart(
    tmp_path: Path,
    mosquitto: Mosquitto,
    subscriber: Callable[..., Subscriber],
    caplog: pytest.LogCaptureFixture,
) -> None:
    config, clock = gateway_setup(tmp_path, mosquitto)
    phone = subscriber(f"{BASE}/offers/t-cc-2")
    good = click_collect_customer("c-cc-2", "t-cc-2", 7)
    phone.publish(f"{BASE}/crm/customers/c-cc-2", json.dumps(good).encode(), retain=True)
    bad = json.dumps(click_collect_customer("c-9", "t-c9", 9) | {"visits": 0})
    bad = bad.replace('"visits": 0', f'"visits": {HUGE}')
    phone.publish(f"{BASE}/crm/customers/c-9", bad.encode(), retain=True)
    offers: list[set[str]] = []
    for run in ("first start", "restart"):
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            counters = drive_to_an_offer(config, clock, 7, [], phone)
        said = [json.loads(m.payload) for m in phone.messages]  # QoS 1: maybe twice
        new = {o["id"] for o in said if o["rule"] == "click-collect"} - set().union(*offers)
        assert len(new) == 1, run
        offers.append(new)
        assert counters["inbound_rejected"] == 1, run
        said = [r.getMessage() for r in caplog.records if "crm/customers/c-9" in r.getMessage()]
        assert len(said) == 1 and "'visits'" in said[0] and HUGE not in said[0], run
        phone.messages.clear()
        clock.advance(86400)  # the next day: click-collect tells them again
