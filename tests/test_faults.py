"""Fault tests against a real Mosquitto: the broker stops or is `kill -9`ed mid-burst, the
gateway is `kill -9`ed.

What must hold: the app receives every offer that is still live (at least once: the offer id
is its idempotency key), never an expired one, and no customer more distinct offers than the
rules' caps allow — across the outage and across the restart.  A broker killed with SIGKILL
saves nothing on the way out (a clean stop, SIGTERM, saves everything): what it acknowledged
since its last save is gone, and the gateway must send it again.
"""

from __future__ import annotations

import asyncio
import json
import math
import signal
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from subprocess import Popen
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from gateway.clock import ManualClock
from gateway.config.load import load_config
from gateway.decode.adverts import adv_to_json
from gateway.deliver.mqtt import Backoff
from gateway.deliver.outbox import DrainResult, OutboxPublisher
from gateway.events import Offer, Purpose
from gateway.store.repo import Store
from gateway.store.tables import OfferState
from gateway.topics import Topics
from tests.broker import Mosquitto, Received, Subscriber
from tests.brokercrash import OutageLink, crash_run
from tests.stores import reference_store
from tests.test_run import start_daemon, stop_daemon
from tests.walks import click_collect_customer, walk_adverts, zone_centre

pytestmark = pytest.mark.mqtt

PARIS = ZoneInfo("Europe/Paris")
T0 = datetime(2026, 3, 3, 14, 0, tzinfo=UTC).timestamp()
BASE = "rayon/paris-11"
OFFERS = f"{BASE}/offers/+"


def offer_id(message: Received) -> str:
    oid: str = json.loads(message.payload)["id"]
    return oid


# --- (a) the broker stops in the middle of a burst ------------------------------------------


class SessionSubscriber(Subscriber):
    """The app: a subscriber whose session (subscriptions, queued QoS 1 messages) the broker
    keeps across the app's disconnections and, with persistence on, its own restarts."""

    def start(self, *filters: str, qos: int = 1) -> SessionSubscriber:
        self._wanted = [(f, SubscribeOptions(qos=qos)) for f in filters]
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = 300
        host, port = self.broker.host, self.broker.port
        self._client.connect(host, port, clean_start=False, properties=props)
        self._client.loop_start()
        self.wait_subscribed(1)
        return self


@pytest.fixture
def persistent_broker(mosquitto_with: Callable[..., Mosquitto], tmp_path: Path) -> Mosquitto:
    """A broker that saves its sessions and queued messages when it stops, as deployed
    (deploy/mosquitto/mosquitto.conf): a PUBACK means the message survives a clean restart."""
    return mosquitto_with("persistence true", f"persistence_location {tmp_path}/")


def burst(n: int) -> list[Offer]:
    """`n` offers created at T0; the odd ones expire 5 s later, the even ones in an hour."""
    return [
        Offer(
            id=f"o{i:03}",
            rule="tv-aisle-dwell",
            store="paris-11",
            zone="aisle-tv",
            customer=f"c{i}",
            token=f"tok-{i}",
            created_at=T0,
            expires_at=T0 + (5 if i % 2 else 3600),
            title="-15 % sur les TV",
            body="Offre valable aujourd'hui au rayon TV.",
            code="TV15",
            url=None,
            purpose=Purpose.COMMERCIAL,
        )
        for i in range(n)
    ]


def test_a_broker_outage_mid_burst_loses_no_live_offer_and_sends_no_expired_one(
    tmp_path: Path, persistent_broker: Mosquitto
) -> None:
    mosquitto = persistent_broker
    sub = SessionSubscriber(mosquitto, "the-app").start(OFFERS)
    store = Store(f"sqlite:///{tmp_path / 'rayon.db'}")
    offers = {o.id: o for o in burst(200)}
    store.enqueue_offers(list(offers.values()))
    before, after = T0 + 1, T0 + 11  # the clock during the burst, and once the broker is back
    clock = ManualClock(before)

    async def main() -> tuple[DrainResult, DrainResult]:
        backoff = Backoff(initial=0.02, cap=0.2)
        link = OutageLink(
            mosquitto, 50, mosquitto.stop, "rayon-faults", backoff=backoff, timeout=5.0
        )
        async with link:
            topics = Topics("rayon", "paris-11")
            outbox = OutboxPublisher(store, link, topics, clock, PARIS, batch=100, window=32)
            during = await outbox.drain()
            clock.set(after)  # the short-lived offers expire while the broker is down
            await asyncio.to_thread(mosquitto.start)
            await asyncio.to_thread(sub.wait_subscribed, 2)
            await link.wait_connected()
            return during, await outbox.drain()  # the same publisher and link carry on

    try:
        during, resumed = asyncio.run(main())
        live = {oid for oid, o in offers.items() if o.expires_at > after}
        wait_until(lambda: received(sub) >= live)  # every live offer arrives
        assert 50 <= during.sent < 100 and during.failed > 0, "the outage must be mid-burst"
        assert resumed.failed == 0 and resumed.expired > 0
        log = {r.offer.id: r for r in store.offer_log()}
        short = set(offers) - live
        assert {log[oid].state for oid in live} == {OfferState.SENT}
        for oid in short:  # sent during the burst, or expired: never published late
            assert (log[oid].state, log[oid].sent_at) in {
                (OfferState.SENT, before),
                (OfferState.EXPIRED, None),
            }
        attempted = {oid for oid, r in log.items() if r.attempts > 0}
        assert received(sub) & short <= attempted  # the app got only those tried in time
        assert {oid for oid, r in log.items() if r.state is OfferState.SENT} <= received(sub)
        for m in sub.messages:  # the expiry as computed at send time, less the broker's wait
            assert 1 <= (m.expiry_s or 0) <= math.ceil(offers[offer_id(m)].expires_at - before)
    finally:
        sub.stop()
        store.close()


def received(sub: Subscriber) -> set[str]:
    return {offer_id(m) for m in sub.messages}


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"still false after {timeout} s: {condition}")
        time.sleep(0.05)


# --- (b) the broker is killed (SIGKILL) in the middle of a burst ----------------------------


def test_a_broker_killed_mid_burst_loses_no_live_offer_for_the_app_online_or_away(
    tmp_path: Path,
) -> None:
    """The shipped persistence and the gateway's resend: see tests/brokercrash.py, and
    bench/bench_broker_crash.py for the same run repeated, with its figures."""
    run = crash_run(tmp_path)
    # the app had only part of what the broker had acknowledged when it died
    assert run.online_at_kill < run.acked_at_kill < run.offers, run
    for app in (run.online, run.offline):
        assert (app.lost, app.late, app.mismatched) == (0, 0, 0), run
    assert run.offline.received > 0 and run.unconfirmed == 0, run


# --- (c) the gateway is killed (SIGKILL) during a burst -------------------------------------

CUSTOMERS = 200
KILL_AFTER = 20  # offers the app has seen when the gateway is killed
ROUND_S = 8.0  # each round of adverts: the phones stand that long at the entrance
MAX_ADVERTS = 250  # per scanner message: under the gateway's 500 adverts and 64 KiB


def cc_customer(i: int) -> dict[str, Any]:
    """A regular (no welcome offer) whose order is ready: `click-collect` offers once a visit."""
    return click_collect_customer(f"c-{i:03}", f"t-{i:03}", i, "Nadia")


def at_entrance(config_path: Path, minors: range, start: float) -> list[tuple[str, bytes]]:
    """Scanner-node messages (topic, payload) of these phones standing ROUND_S at the entrance
    from `start` on: each node's adverts in time order, at most MAX_ADVERTS a message.

    Rounds must not overlap in time (a fix older than the gateway's clock counts as of that
    clock), hence a `start` at or after the end of the previous round, even in the future.
    """
    config = load_config(config_path)
    x, y = zone_centre(config, "entrance")
    per_node: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for minor in minors:
        for adv in walk_adverts(config, minor, [(x, y, 0), (x, y, ROUND_S)], start):
            per_node[adv.anchor].append(adv_to_json(adv)["adv"] | {"at": adv.at})
    for advs in per_node.values():
        advs.sort(key=lambda adv: float(adv["at"]))
    return [
        (f"{BASE}/scanners/{node}/adv", json.dumps(advs[i : i + MAX_ADVERTS]).encode())
        for node, advs in per_node.items()
        for i in range(0, len(advs), MAX_ADVERTS)
    ]


def feed(app: Subscriber, messages: list[tuple[str, bytes]]) -> None:
    for topic, payload in messages:
        app.publish(topic, payload, qos=0)


def offers_by_customer(app: Subscriber) -> dict[str, set[str]]:
    """Distinct click-collect offer ids each token received."""
    got: dict[str, set[str]] = defaultdict(set)
    for m in app.messages:
        body = json.loads(m.payload)
        if body["rule"] == "click-collect":
            got[m.topic.rsplit("/", 1)[1]].add(body["id"])
    return got


def wait_online(status: Subscriber, seen: int) -> None:
    """Until a status message after the first `seen` says online (the restarted gateway)."""
    wait_until(
        lambda: any(json.loads(m.payload)["state"] == "online" for m in status.messages[seen:]),
        timeout=30,
    )


@pytest.fixture
def gateway(tmp_path: Path, mosquitto: Mosquitto) -> Iterator[Callable[[], Popen[str]]]:
    """`gateway()` starts `rayon run` on the test's broker; every one is killed at teardown."""
    config_path = reference_store(tmp_path, port=mosquitto.port)
    procs: list[Popen[str]] = []

    def start() -> Popen[str]:
        procs.append(start_daemon(config_path))
        return procs[-1]

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


def test_a_gateway_killed_mid_burst_resumes_without_losing_or_repeating_offers(
    tmp_path: Path, gateway: Callable[[], Popen[str]], subscriber: Callable[..., Subscriber]
) -> None:
    config_path = tmp_path / "config.yaml"
    status = subscriber(f"{BASE}/gateway/status")
    first = gateway()
    wait_online(status, 0)
    app = subscriber(OFFERS)
    for i in range(1, CUSTOMERS + 2):  # the last one is the marker, fed after the restart
        customer = cc_customer(i)
        app.publish(
            f"{BASE}/crm/customers/{customer['id']}", json.dumps(customer).encode(), retain=True
        )
    start = time.time()
    feed(app, at_entrance(config_path, range(1, CUSTOMERS + 1), start))
    app.wait(KILL_AFTER, timeout=20)
    first.send_signal(signal.SIGKILL)  # in the middle of the burst: no drain, no goodbye
    first.communicate()
    seen = len(status.messages)
    again = gateway()
    wait_online(status, seen)
    # They are still at the entrance: the per-visit cap must hold across the restart.  Then a
    # newcomer walks in: once the newcomer's offer is out, all before it was processed.
    start = max(start + ROUND_S, time.time())
    feed(app, at_entrance(config_path, range(1, CUSTOMERS + 1), start))
    feed(app, at_entrance(config_path, range(CUSTOMERS + 1, CUSTOMERS + 2), start + ROUND_S))
    everyone = {cc_customer(i)["token"] for i in range(1, CUSTOMERS + 2)}
    wait_until(lambda: set(offers_by_customer(app)) >= everyone, timeout=20)
    stop_daemon(again)
    got = offers_by_customer(app)
    assert {token: len(ids) for token, ids in got.items()} == dict.fromkeys(everyone, 1)
    store = Store(f"sqlite:///{tmp_path / 'rayon.db'}")
    try:
        logged = store.offer_log()
    finally:
        store.close()
    per_customer = defaultdict(set)
    for record in logged:
        per_customer[record.offer.customer].add(record.offer.id)
    assert max(len(ids) for ids in per_customer.values()) == 1  # decided once, not only sent once
    assert {r.offer.id for r in logged} <= set().union(*got.values())  # and every one arrived
    assert {r.state for r in logged} == {OfferState.SENT}
