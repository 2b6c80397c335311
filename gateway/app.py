"""The composition root: builds the object graph once and runs the gateway's tasks.

    sources ─▶ queue ─▶ pipeline ─▶ writer (store: events, outbox) ─▶ outbox publisher ─▶ MQTT
    MQTT in (CRM, phones, scanner nodes, feedback) ─▶ queue

One TaskGroup, named tasks, a bounded input queue with counted drops; the pipeline is pure and
runs on the event loop, the database is written from a worker thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import signal
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from gateway import __version__
from gateway.clock import Clock, SystemClock
from gateway.config import Config
from gateway.deliver.mqtt import MqttLink
from gateway.deliver.outbox import OutboxPublisher
from gateway.deliver.payloads import occupancy_payload, parse_feedback, status_payload
from gateway.deliver.topics import TopicKind, Topics
from gateway.errors import RuntimeFailure
from gateway.identity import CustomerRegistry
from gateway.pipeline import Output, Pipeline
from gateway.rules import load_rules
from gateway.sources.trace import MqttInput, TraceItem
from gateway.store import Store

log = logging.getLogger(__name__)

QUEUE_SIZE = 10_000
TICK_S = 1.0
WRITE_EVERY_S = 0.2
SOURCE_RETRY_MAX_S = 60.0


class Source(Protocol):
    """Anything that yields inputs: the Pi's radio, a simulator."""

    name: str

    def items(self) -> AsyncIterator[TraceItem]: ...


@dataclass(slots=True)
class GatewayState:
    counters: Counter[str] = field(default_factory=Counter)
    occupancy: dict[str, int] = field(default_factory=dict)


def inbound_filters(config: Config, topics: Topics) -> list[str]:
    """What the gateway subscribes to, per the enabled sources (DESIGN §5)."""
    filters = [topics.crm_filter(), topics.feedback_filter()]
    if config.sources.phone_reports:
        filters.append(topics.phones_filter())
    if config.sources.scanner_nodes:
        filters.append(topics.scanners_filter())
    return filters


async def connect_link(config: Config, *, client_suffix: str = "gw") -> MqttLink:
    """An MQTT v5 link to the configured broker, with the offline status as its will."""
    m = config.mqtt
    password = None
    if m.password_file is not None:
        try:
            password = m.password_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise RuntimeFailure(
                f"cannot read mqtt.password_file {m.password_file}: {exc}"
            ) from exc
    topics = Topics(m.topic_prefix, config.store.id)
    client_id = m.client_id or f"rayon-{config.store.id}-{client_suffix}-{uuid.uuid4().hex[:6]}"
    offline = status_payload("offline", __version__, None, tz=config.store.timezone)
    will = (topics.status(), json.dumps(offline).encode())
    link = MqttLink(
        host=m.host,
        port=m.port,
        client_id=client_id,
        username=m.username,
        password=password,
        tls=m.tls,
        keepalive=m.keepalive_s,
        will=will,
    )
    await link.connect()
    return link


def persist(store: Store, out: Output) -> None:
    """Write what the pipeline decided: CRM changes, events, then offers into the outbox
    (before anything is published: DESIGN §2, deliver)."""
    for customer in out.upserted:
        store.upsert_customer(customer)
    for customer_id in out.erased:
        store.delete_customer(customer_id)
    store.record_events(out.events)
    store.enqueue_offers(out.offers)


class Gateway:
    """One store's gateway: the pipeline between its sources and its outbox."""

    def __init__(
        self,
        config: Config,
        *,
        store: Store,
        link: MqttLink,
        clock: Clock,
        sources: Sequence[Source] = (),
    ) -> None:
        self.config = config
        self.store = store
        self.link = link
        self.clock = clock
        self.sources = list(sources)
        self.topics = Topics(config.mqtt.topic_prefix, config.store.id)
        self.state = GatewayState()
        self.queue: asyncio.Queue[TraceItem] = asyncio.Queue(QUEUE_SIZE)
        self.pipeline: Pipeline | None = None
        self._pending = Output()
        self._wake = asyncio.Event()
        self.started_at = clock.now()

    async def run(self, stop: asyncio.Event) -> None:
        """Run until `stop` is set, then drain the outbox once and say offline."""
        customers = await asyncio.to_thread(self.store.load_customers)
        rules = load_rules(self.config.rules_dir, self.config)
        self.pipeline = Pipeline(self.config, rules, CustomerRegistry(customers))
        await self._publish_status("online")
        await self.link.subscribe(inbound_filters(self.config, self.topics))
        publisher = OutboxPublisher(
            self.store, self.link, self.topics, self.clock, self.config.store.timezone
        )
        try:
            async with asyncio.TaskGroup() as tg:
                tasks = [
                    tg.create_task(self._pump(s), name=f"source:{s.name}") for s in self.sources
                ]
                tasks += [
                    tg.create_task(self._pump_mqtt(), name="mqtt-in"),
                    tg.create_task(self._process(), name="pipeline"),
                    tg.create_task(self._ticker(), name="ticker"),
                    tg.create_task(self._writer(), name="writer"),
                    tg.create_task(publisher.run(self._wake), name="outbox"),
                ]
                await stop.wait()
                for task in tasks:
                    task.cancel()
        finally:
            await self._flush()
            await publisher.drain()
            await self._publish_status("offline")

    # -- inputs -----------------------------------------------------------------------------

    def offer_input(self, item: TraceItem) -> None:
        try:
            self.queue.put_nowait(item)
        except asyncio.QueueFull:
            self.state.counters["input_dropped"] += 1

    async def _pump(self, source: Source) -> None:
        """Feed one source's inputs; a failing source (adapter gone, bluetoothd down) is
        retried with capped, jittered backoff and never stops the gateway."""
        failures = 0
        while True:
            try:
                async for item in source.items():
                    failures = 0
                    self.offer_input(item)
                return
            except RuntimeFailure as exc:
                failures += 1
                self.state.counters[f"source_failures:{source.name}"] += 1
                delay = min(SOURCE_RETRY_MAX_S, 2.0**failures) * random.uniform(0.8, 1.2)
                log.error("source %s failed: %s; retrying in %.0f s", source.name, exc, delay)
                await asyncio.sleep(delay)

    async def _pump_mqtt(self) -> None:
        async for topic, payload, _retained in self.link.messages():
            parsed = self.topics.parse(topic)
            if parsed is not None and parsed[0] is TopicKind.FEEDBACK:
                await self._feedback(payload)
            else:
                self.offer_input(MqttInput(self.clock.now(), topic, payload))

    async def _feedback(self, payload: bytes) -> None:
        fb = parse_feedback(payload)
        if isinstance(fb, str):
            self.state.counters["feedback_rejected"] += 1
            log.warning("rejected feedback: %s", fb)
            return
        await asyncio.to_thread(self.store.record_feedback, fb.offer, fb.state, fb.at)

    # -- processing -------------------------------------------------------------------------

    async def _process(self) -> None:
        assert self.pipeline is not None
        while True:
            item = await self.queue.get()
            self._pending.extend(self.pipeline.feed(item))
            self.state.counters["inputs"] += 1

    async def _ticker(self) -> None:
        assert self.pipeline is not None
        while True:
            await asyncio.sleep(TICK_S)
            self._pending.extend(self.pipeline.tick(self.clock.now()))
            await self._publish_occupancy()

    async def _writer(self) -> None:
        while True:
            await asyncio.sleep(WRITE_EVERY_S)
            await self._flush()

    async def _flush(self) -> None:
        pending, self._pending = self._pending, Output()
        if not pending:
            return
        await asyncio.to_thread(persist, self.store, pending)
        self.state.counters["offers"] += sum(not o.holdout for o in pending.offers)
        if pending.offers:
            self._wake.set()

    # -- outbound ---------------------------------------------------------------------------

    async def _publish_status(self, state: str) -> None:
        counters = dict(self.state.counters)
        if self.pipeline is not None:
            counters.update(self.pipeline.counters)
        payload = status_payload(
            state, __version__, self.started_at, counters, tz=self.config.store.timezone
        )
        try:
            await self.link.publish(
                self.topics.status(), json.dumps(payload).encode(), qos=1, retain=True
            )
        except RuntimeFailure as exc:
            log.warning("could not publish status %s: %s", state, exc)

    async def _publish_occupancy(self) -> None:
        """Anonymous counts per zone, retained, only when they change."""
        assert self.pipeline is not None
        now = self.pipeline.zones.occupancy()
        for zone in self.config.zones:
            count = now.get(zone.id, 0)
            if self.state.occupancy.get(zone.id) == count:
                continue
            self.state.occupancy[zone.id] = count
            body = occupancy_payload(count, self.clock.now(), self.config.store.timezone)
            with contextlib.suppress(RuntimeFailure):  # the next change replaces a lost one
                await self.link.publish(
                    self.topics.occupancy(zone.id), json.dumps(body).encode(), qos=0, retain=True
                )


def build_sources(config: Config, clock: Clock) -> list[Source]:
    """The Pi's own radio when the config enables it."""
    if config.sources.ble is None:
        return []
    from gateway.sources.ble import BleSource

    ble = config.sources.ble
    anchor = ble.anchor or next(a.id for a in config.anchors if a.kind == "scanner")
    return [
        BleSource(anchor=anchor, adapter=ble.adapter, scanning_mode=ble.scanning_mode, clock=clock)
    ]


async def run_daemon(config: Config) -> int:
    """`rayon run`: until SIGTERM or SIGINT."""
    clock = SystemClock()
    store = Store(config.database.url)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        link = await connect_link(config)
        try:
            gateway = Gateway(
                config, store=store, link=link, clock=clock, sources=build_sources(config, clock)
            )
            await gateway.run(stop)
        finally:
            await link.disconnect()
    finally:
        store.close()
    return 0
