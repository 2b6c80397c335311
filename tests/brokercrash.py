"""A broker crash in the middle of a burst of offers, end to end (tests/test_faults.py and
bench/bench_broker_crash.py).

A private Mosquitto with the persistence lines of the shipped deploy/mosquitto/mosquitto.conf;
the gateway's delivery path as the daemon wires it (the outbox publisher with its resend, and
the inbound door recording feedback, on a real SQLite store, on a persistent session); two apps
that behave as docs/mqtt.md asks (a persistent session, subscribe again when the broker has
none, `delivered` for every copy received, show an id once).  One app is online during the
burst (and slower than the gateway, as a phone is: the broker queues for it), the other went
offline before it.  The broker is SIGKILLed (no save on the way out) the moment it has
acknowledged `kill_after` offers of the burst, and started again on the same files.

An offer's `expires_at` is compared with the wall-clock time its copy arrived: Mosquitto
expires messages on its own clock, so this runs in real time (`SystemClock`).
"""

from __future__ import annotations

import asyncio
import json
import queue
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from paho.mqtt.client import Client, ConnectFlags, MQTTMessage
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from gateway.clock import SystemClock
from gateway.deliver.mqtt import Backoff, MqttLink
from gateway.deliver.outbox import OutboxPublisher
from gateway.events import Offer, Purpose
from gateway.identity.model import Consent, Customer
from gateway.runtime.inbound import Inbound
from gateway.store.repo import Store
from gateway.store.tables import OfferState
from gateway.topics import Topics
from tests.broker import Mosquitto, find_mosquitto
from tests.stores import ROOT

SHIPPED = ROOT / "deploy" / "mosquitto" / "mosquitto.conf"
PERSISTENCE = ("autosave_interval", "autosave_on_changes", "max_queued_messages")
TOPICS = Topics("rayon", "paris-11")
PARIS = ZoneInfo("Europe/Paris")
TOKENS = 20  # per app: the app's customers (a real app has one; the broker cannot tell)
SHORT_S = 6.0  # one offer in five expires that long after the burst starts
DOWN_S = 0.5  # how long the broker stays dead
WAIT_S = 30.0  # the most a run waits for an app to have every live offer
HANDLE_S = 0.002  # an app's time per offer (a phone on Wi-Fi): the broker queues for it


def shipped_persistence(folder: Path) -> list[str]:
    """The broker's persistence as shipped (its save policy and queue limits), in `folder`."""
    lines = SHIPPED.read_text(encoding="utf-8").splitlines()
    kept = [line for line in lines if line.split(" ", 1)[0] in PERSISTENCE]
    return ["persistence true", f"persistence_location {folder}/", *kept]


class App:
    """A store app as docs/mqtt.md describes it, on a paho thread of its own: a persistent
    session under a stable client id, a subscription renewed whenever the broker says it has
    no session, `delivered` feedback for every copy of an offer, each id shown once."""

    def __init__(self, broker: Mosquitto, name: str, tokens: Iterable[str]) -> None:
        self.broker, self.tokens = broker, list(tokens)
        self.received: list[tuple[str, float, bytes]] = []  # (offer id, wall time, payload)
        self.shown: set[str] = set()
        self._lock = threading.Lock()
        self.subscribed: queue.Queue[int] = queue.Queue()
        self.name = name
        self._client: Client | None = None

    def connect(self) -> None:
        """Connect (resuming the session if the broker has it); returns once subscribed.
        Each connection is a new paho client under the same client id, as an app restarted."""
        v5 = MQTTProtocolVersion.MQTTv5
        client = self._client = Client(
            CallbackAPIVersion.VERSION2, client_id=self.name, protocol=v5
        )
        client.reconnect_delay_set(0.05, 0.2)  # type: ignore[arg-type]
        client.on_connect = self._on_connect
        client.on_subscribe = lambda *_a: self.subscribed.put(1)
        client.on_message = self._on_message
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = 7 * 24 * 3600
        client.connect(self.broker.host, self.broker.port, clean_start=False, properties=props)
        client.loop_start()
        self.subscribed.get(timeout=10)

    def leave(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.disconnect()
            client.loop_stop()

    def count(self) -> int:
        with self._lock:
            return len(self.received)

    def ids(self) -> set[str]:
        return {oid for oid, _, _ in self.copies()}

    def copies(self) -> list[tuple[str, float, bytes]]:
        """Every copy received so far: (offer id, wall-clock time, payload)."""
        with self._lock:
            return list(self.received)

    def _on_connect(self, client: Client, _u: Any, flags: ConnectFlags, code: Any, _p: Any) -> None:
        # A session the broker lost (or never had) has no subscription: renew it.  With a
        # session, the subscription is there, and the broker sends what it queued at once.
        if flags.session_present:
            self.subscribed.put(1)
        else:
            client.subscribe([(TOPICS.offers(t), 1) for t in self.tokens])

    def _on_message(self, client: Client, _u: Any, message: MQTTMessage) -> None:
        time.sleep(HANDLE_S)  # paho acknowledges once this returns
        at = time.time()
        offer = json.loads(message.payload)
        with self._lock:
            self.received.append((offer["id"], at, bytes(message.payload)))
            self.shown.add(offer["id"])
        token = message.topic.rsplit("/", 1)[1]
        feedback = {"type": "feedback", "v": 1, "offer": offer["id"], "state": "delivered"}
        client.publish(TOPICS.feedback(token), json.dumps(feedback | {"at": at}).encode(), 1)


@dataclass(frozen=True, slots=True)
class AppFigures:
    """What one app got: offers meant for it, `lost` (never received while live), `late`
    (a copy received after its `expires_at`), `duplicates` (copies beyond the first, always
    under the same id and payload: `mismatched` counts those that were not)."""

    offers: int
    received: int
    lost: int
    late: int
    duplicates: int
    mismatched: int


@dataclass(frozen=True, slots=True)
class CrashRun:
    """One crash: offers in the burst, how many the broker had acknowledged at the kill and
    how many of those the online app had received, and what each app got in the end;
    `unconfirmed`: live offers the store still has as not confirmed."""

    offers: int
    acked_at_kill: int
    online_at_kill: int
    online: AppFigures
    offline: AppFigures
    unconfirmed: int


class OutageLink(MqttLink):
    """A real link to a real broker that calls `outage` (the broker's `stop` or `kill`) once
    `after` publishes were acknowledged, then sets `killed`: the outage lands in the
    publisher's window, mid-burst."""

    def __init__(
        self,
        broker: Mosquitto,
        after: int,
        outage: Callable[[], None],
        client_id: str,
        **kwargs: Any,
    ) -> None:
        super().__init__(broker.host, broker.port, client_id, **kwargs)
        self.broker, self.after, self.outage, self.acked = broker, after, outage, 0
        self.killed = asyncio.Event()

    async def publish(
        self,
        topic: str,
        payload: bytes,
        qos: int = 0,
        retain: bool = False,
        expiry_s: int | None = None,
    ) -> None:
        await super().publish(topic, payload, qos, retain, expiry_s)
        self.acked += 1
        if self.acked == self.after:
            self.outage()
            self.killed.set()


def burst(start: float, tokens: list[str], per_token: int) -> list[Offer]:
    """`per_token` offers to each token, round robin; one in five expires SHORT_S after
    `start`, the others in an hour."""
    offers = []
    for i in range(per_token * len(tokens)):
        token = tokens[i % len(tokens)]
        offers.append(
            Offer(
                id=f"{token}-{i:04}",
                rule="tv-aisle-dwell",
                store="paris-11",
                zone="aisle-tv",
                customer=f"c-{token}",
                token=token,
                created_at=start,
                expires_at=start + (SHORT_S if i % 5 == 0 else 3600),
                title="-15 % sur les TV",
                body="Offre valable aujourd'hui au rayon TV.",
                code="TV15",
                url=None,
                purpose=Purpose.COMMERCIAL,
            )
        )
    return offers


def figures(app: App, offers: list[Offer]) -> AppFigures:
    """`app`'s figures, now: an offer not received is lost if it is still live."""
    mine = {o.id: o for o in offers}
    now = time.time()
    received = app.copies()
    got = {oid for oid, _, _ in received}
    first: dict[str, bytes] = {}
    late = mismatched = 0
    for oid, at, payload in received:
        late += oid in mine and at > mine[oid].expires_at
        mismatched += oid not in mine or first.setdefault(oid, payload) != payload
    lost = sum(oid not in got and o.expires_at > now for oid, o in mine.items())
    return AppFigures(len(mine), len(got), lost, late, len(received) - len(got), mismatched)


def missing(app: App, offers: list[Offer]) -> set[str]:
    now, got = time.time(), app.ids()
    return {o.id for o in offers if o.id not in got and o.expires_at > now}


def wait_for(condition: Callable[[], bool], timeout: float = WAIT_S) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def crash_run(
    folder: Path, per_token: int = 15, kill_after: int = 360, autosave: Iterable[str] = ()
) -> CrashRun:
    """One broker crash mid-burst (see the module docstring); `per_token` offers to each of
    the 2 × TOKENS tokens, the broker killed once it acknowledged `kill_after` of them.
    `autosave`: config lines in place of the shipped save policy (`autosave_interval 300`,
    the previous one, for a comparison)."""
    binary = find_mosquitto()
    if binary is None:
        raise RuntimeError("mosquitto is not installed (apt-get install mosquitto)")
    lines = shipped_persistence(folder / "broker")
    if autosave:
        lines = [*(line for line in lines if not line.startswith("autosave")), *autosave]
    broker = Mosquitto(binary, folder / "broker", lines)
    broker.start()
    store = Store(f"sqlite:///{folder / 'rayon.db'}")
    on = [f"on-{i:02}-tok" for i in range(TOKENS)]
    off = [f"off-{i:02}-tok" for i in range(TOKENS)]
    store.upsert_customers(
        [Customer(id=f"c-{t}", token=t, consent=Consent(True, True)) for t in on + off]
    )
    online, offline = App(broker, "app-online", on), App(broker, "app-offline", off)
    try:
        offline.connect()  # its session and subscription exist, then it goes away
        offline.leave()
        online.connect()
        start = time.time()
        offers = burst(start, [t for pair in zip(on, off, strict=True) for t in pair], per_token)
        store.enqueue_offers(offers)
        online_at_kill = asyncio.run(_gateway(broker, store, online, offline, offers, kill_after))
        state = {r.offer.id: r.state for r in store.offer_log()}
        unconfirmed = sum(
            state[o.id] is not OfferState.DELIVERED and o.expires_at > time.time() for o in offers
        )
        return CrashRun(
            len(offers),
            kill_after,
            online_at_kill,
            figures(online, [o for o in offers if o.token in on]),
            figures(offline, [o for o in offers if o.token in off]),
            unconfirmed,
        )
    finally:
        online.leave()
        offline.leave()
        store.close()
        broker.kill()


async def _gateway(
    broker: Mosquitto,
    store: Store,
    online: App,
    offline: App,
    offers: list[Offer],
    kill_after: int,
) -> int:
    """The gateway's side of a run: publish the burst, live through the crash, resend; the
    apps' side is waited for in threads.  How many offers the online app had at the kill."""
    clock, backoff = SystemClock(), Backoff(initial=0.05, cap=0.5)
    gateway_id = "rayon-paris-11-gateway"  # the broker's SIGKILL: no save on the way out
    link = OutageLink(
        broker,
        kill_after,
        broker.kill,
        gateway_id,
        backoff=backoff,
        timeout=5.0,
        session_expiry_s=3600,
    )
    await link.connect()
    await link.subscribe([TOPICS.feedback_filter()])
    inbound = Inbound(TOPICS, clock, store, crm_apart=False)
    publisher = OutboxPublisher(store, link, TOPICS, clock, PARIS, batch=100)
    tasks = [
        asyncio.create_task(inbound.pump(link), name="mqtt-in"),
        asyncio.create_task(inbound.write_feedback(), name="feedback"),
        asyncio.create_task(publisher.run(asyncio.Event()), name="outbox"),
    ]
    try:
        async with asyncio.timeout(WAIT_S):
            await link.killed.wait()
        online_at_kill = online.count()
        await asyncio.sleep(DOWN_S)
        await asyncio.to_thread(broker.start)
        on_ids = [o for o in offers if o.token.startswith("on-")]
        off_ids = [o for o in offers if o.token.startswith("off-")]
        await asyncio.to_thread(wait_for, lambda: not missing(online, on_ids))
        # the offline app comes back once the short offers have expired
        short_end = min(o.expires_at for o in offers) + 1.0
        await asyncio.sleep(max(0.0, short_end - time.time()))
        await asyncio.to_thread(offline.connect)
        await asyncio.to_thread(wait_for, lambda: not missing(offline, off_ids))
        live = {o.id for o in offers if o.expires_at > time.time()}

        def confirmed() -> bool:
            done = {r.offer.id for r in store.offer_log(state=OfferState.DELIVERED)}
            return live <= done

        await asyncio.to_thread(wait_for, confirmed, 10.0)
        return online_at_kill
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await link.disconnect()
