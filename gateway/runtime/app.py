"""The gateway: its tasks around the pipeline (the daemon's root is gateway/runtime/daemon.py).

    sources ─────────────────────▶ inbox ─▶ pipeline ─▶ writer (store) ─▶ outbox publisher ─▶ MQTT
    MQTT in (phones, scanner nodes) ─▶ inbox (one bounded queue per sender, served in turn)
    MQTT in, own connection (CRM) ──▶ inbox (consent: never dropped, served first)
    MQTT in (feedback) ─────────────▶ feedback inbox ─▶ feedback writer (a batch per call)

One TaskGroup, named tasks; MQTT is sorted into the inboxes by `runtime/inbound.py`, and what
a gateway starts from is read by `runtime/startup.py`.  The pipeline is pure and runs on the
event loop; the database is written from a worker thread.  Nothing an app sends on its own
topics can crash a task, delay another sender's input, or push out a CRM update (a consent
withdrawal).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import random
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from gateway.clock import Clock
from gateway.config.load import load_config
from gateway.config.model import AnchorKind, Config
from gateway.deliver.announce import Announcer, RulesState
from gateway.deliver.mqtt import MqttLink
from gateway.deliver.outbox import OutboxPublisher
from gateway.errors import ConfigError, Diagnostic, RuntimeFailure
from gateway.events import TraceItem
from gateway.heap import settle_heap
from gateway.pipeline import Output
from gateway.rules.load import load_rules
from gateway.runtime.health import AnchorWatch
from gateway.runtime.inbound import Inbound
from gateway.runtime.livefeed import LiveFeed
from gateway.runtime.metrics import GatewayFigures, MetricsServer, gateway_samples, render
from gateway.runtime.reconfigure import carried_over, rebuild, restart_needed
from gateway.runtime.startup import Fingerprint, Loaded, load, rules_fingerprint
from gateway.runtime.systemd import Notifier
from gateway.store.persist import (
    RUNTIME_KEY,
    PositionSampler,
    persist,
    push_withdrawn,
)
from gateway.store.recording import Recorder, Whose, apply_retention, forget_in
from gateway.store.repo import Store
from gateway.store.retention import Purged, run_retention
from gateway.topics import Topics

log = logging.getLogger(__name__)

YIELD_EVERY = 1_000  # inputs the pipeline takes (~15 ms) before letting the MQTT readers run
TICK_S = 1.0
WRITE_EVERY_S = 0.2
STATUS_EVERY_S = 60.0
SOURCE_RETRY_MAX_S = 60.0
RULES_POLL_S = 2.0
RULES_SETTLE_S = 0.3
SNAPSHOT_EVERY_S = 10.0
RECORD_EVERY_S = 1.0  # the recording's lines are written this often (what is held stays small)
RECORD_RETENTION_EVERY_S = 600.0


class Source(Protocol):
    """Anything that yields inputs: the Pi's radio, a simulator."""

    name: str

    def items(self) -> AsyncIterator[TraceItem]: ...


@dataclass(slots=True)
class GatewayState:
    counters: Counter[str] = field(default_factory=Counter)


def inbound_filters(config: Config, topics: Topics, *, crm: bool = True) -> list[str]:
    """What the gateway subscribes to, per the enabled sources (docs/mqtt.md); `crm=False` when
    the CRM is read on a connection of its own."""
    filters = [topics.crm_filter()] if crm else []
    filters.append(topics.feedback_filter())
    if config.sources.phone_reports:
        filters.append(topics.phones_filter())
    if config.sources.scanner_nodes:
        filters.append(topics.scanners_filter())
    if config.sources.espresense:
        filters.append(topics.espresense_filter())
    return filters


def scanner_ids(config: Config) -> list[str]:
    return [a.id for a in config.anchors if a.kind is AnchorKind.SCANNER]


def summarize(diagnostics: Sequence[Diagnostic], most: int = 3) -> str:
    """The first diagnostics of a refused rule set, for the one-line status."""
    text = "; ".join(str(d) for d in diagnostics[:most])
    more = len(diagnostics) - most
    return f"{text} (+{more} more)" if more > 0 else text


class Gateway:
    """One store's gateway: the pipeline between its sources and its outbox."""

    def __init__(
        self,
        config: Config,
        loaded: Loaded,
        *,
        store: Store,
        link: MqttLink,
        clock: Clock,
        sources: Sequence[Source] = (),
        notifier: Notifier | None = None,
        crm_link: MqttLink | None = None,
    ) -> None:
        """Around a pipeline `loaded` from the store (`Gateway.start` builds both)."""
        self.config = config
        self.crm_link = crm_link  # None: the CRM comes on `link` (tests, tools)
        self.notifier = notifier or Notifier({})
        self.store = store
        self.link = link
        self.clock = clock
        self.sources = list(sources)
        self.topics = Topics(config.mqtt.topic_prefix, config.store.id)
        self.state = GatewayState(Counter(loaded.repaired))
        tz = config.store.timezone
        self.live = LiveFeed(link, self.topics, clock, tz, loaded.visit_key)
        self.inbound = Inbound(
            self.topics,
            clock,
            store,
            crm_apart=crm_link is not None,
            on_confirmed=self.live.note_confirmed,
        )
        self.inbox = self.inbound.inbox  # what the pipeline task takes from
        self.pipeline = loaded.pipeline
        self.pools = loaded.pools
        self._rules_seen = loaded.rules_seen
        self._pending = Output()
        self._wake = asyncio.Event()
        self.publisher = OutboxPublisher(
            store, link, self.topics, clock, tz, on_settled=self.live.note_settled
        )
        self._offers_due = asyncio.Event()
        self.started_at = clock.now()
        self._reload = asyncio.Event()
        self._saved_at = clock.now()
        self._reload_config = False
        self._failing: dict[str, str] = {}  # source name → why it fails
        self._status_due = False
        self._positions = PositionSampler()
        self.metrics_port: int | None = None
        self.recorder = (
            Recorder(config.record_dir, config.record) if config.record.enabled else None
        )
        self._record_erased: list[Whose] = []  # erased customers' lines to rewrite away
        if self.recorder is not None:
            self.pipeline.keep = self.recorder.keep
        self.anchor_watch = AnchorWatch(scanner_ids(config))
        self.rules_state = RulesState(clock.now(), loaded.rules)
        self.announcer = Announcer(
            link,
            self.topics,
            clock,
            config.store.timezone,
            self.started_at,
            (z.id for z in config.zones),
        )

    @classmethod
    async def start(
        cls,
        config: Config,
        *,
        store: Store,
        link: MqttLink,
        clock: Clock,
        sources: Sequence[Source] = (),
        notifier: Notifier | None = None,
        crm_link: MqttLink | None = None,
    ) -> Gateway:
        """A gateway ready to `run`: the rules loaded, the customers, code pools and live
        state of the last run read from `store` (ConfigError for rules that do not load)."""
        loaded = await load(config, store, clock)
        gateway = cls(
            config,
            loaded,
            store=store,
            link=link,
            clock=clock,
            sources=sources,
            notifier=notifier,
            crm_link=crm_link,
        )
        settle_heap()
        return gateway

    def counters(self) -> dict[str, int]:
        """Everything counted so far: inputs, drops, rejections, failures."""
        out = Counter(self.state.counters)
        out.update(self.announcer.counters)
        out.update(self.inbound.counted())
        links = [self.link, *([self.crm_link] if self.crm_link is not None else [])]
        out["mqtt_queue_dropped"] += sum(link.dropped for link in links)
        out.update(self.publisher.counters)
        out.update(self.live.counters)
        out.update(self.pipeline.counters)
        if self.recorder is not None:
            out.update(self.recorder.counters)
        return dict(out)

    def devices(self) -> dict[str, int]:
        """Tracked radio devices now, the cap, and how many the cap made us forget."""
        return {
            "tracked": self.pipeline.tracked_devices(),
            "max": self.config.limits.tracked_devices,
            "shed": self.pipeline.counters["devices_shed"],
        }

    async def run(self, stop: asyncio.Event) -> None:
        """Run until `stop` is set, then drain the outbox once and say offline."""
        await self._status("online")
        crm_link = self.crm_link
        await self.link.subscribe(inbound_filters(self.config, self.topics, crm=crm_link is None))
        if crm_link is not None:
            await crm_link.subscribe([self.topics.crm_filter()])
        publisher = self.publisher
        try:
            async with asyncio.TaskGroup() as tg:
                tasks = [
                    tg.create_task(self._pump(s), name=f"source:{s.name}") for s in self.sources
                ]
                if crm_link is not None:
                    crm_in = self.inbound.pump(crm_link, crm_link=True)
                    tasks.append(tg.create_task(crm_in, name="crm-in"))
                tasks += [
                    tg.create_task(self.inbound.pump(self.link), name="mqtt-in"),
                    tg.create_task(self.inbound.write_feedback(), name="feedback"),
                    tg.create_task(self._process(), name="pipeline"),
                    tg.create_task(self._ticker(), name="ticker"),
                    tg.create_task(self._writer(), name="writer"),
                    tg.create_task(publisher.run(self._wake), name="outbox"),
                    tg.create_task(self._watch_rules(self._rules_seen), name="rules-watch"),
                    tg.create_task(self._retention(), name="retention"),
                ]
                if self.recorder is not None:
                    tasks.append(tg.create_task(self._record(self.recorder), name="recorder"))
                metrics = await self._start_metrics()
                self.notifier.ready(self.summary())
                await stop.wait()
                if metrics is not None:
                    await metrics.close()
                self.notifier.stopping()
                for task in tasks:
                    task.cancel()
        finally:
            try:
                await self._flush(final=True)
                await self.live.flush()
                if self.recorder is not None:
                    await self._write_recording(self.recorder)
                await publisher.drain()
            finally:  # a failed last write (disk full …) must not leave us "online"
                await self._status("offline")

    def _retention(self) -> Coroutine[None, None, None]:
        def count(purged: Purged) -> None:
            for kind, n in dataclasses.asdict(purged).items():
                self.state.counters[f"retention_{kind}"] += n

        return run_retention(self.store, lambda: self.config.retention, self.clock.now, count)

    async def _record(self, recorder: Recorder) -> None:
        """The rolling recording: its buffer written every RECORD_EVERY_S, the lines of
        customers erased meanwhile rewritten away, retention and the size cap applied."""
        last_retention = -RECORD_RETENTION_EVERY_S
        while True:
            await asyncio.sleep(RECORD_EVERY_S)
            await self._write_recording(recorder)
            if time.monotonic() - last_retention >= RECORD_RETENTION_EVERY_S:
                last_retention = time.monotonic()
                await self._recording_job(
                    apply_retention, recorder.folder, self.config.record, self.clock.now()
                )

    async def _write_recording(self, recorder: Recorder) -> None:
        await self._recording_job(recorder.flush, recorder.take())
        erased, self._record_erased = self._record_erased, []
        ours = self.pipeline.privacy_filter
        for whose in erased:
            await self._recording_job(forget_in, recorder.folder, whose, ours, self.topics)

    async def _recording_job(self, job: Callable[..., object], *args: object) -> None:
        """Run one of the recording's file jobs in a worker thread; a failure (disk full, a
        folder not writable) is logged and counted, never fatal: the gateway goes on."""
        try:
            await asyncio.to_thread(job, *args)
        except OSError as exc:
            self.state.counters["record_failed"] += 1
            log.error("recording: %s (folder %s)", exc.strerror or exc, self.config.record_dir)

    async def _start_metrics(self) -> MetricsServer | None:
        m = self.config.metrics
        if m is None:
            return None
        server = MetricsServer(m.host, m.port, self.metrics_text)
        try:
            await server.start()
        except OSError as exc:  # the port is taken: no metrics, still a gateway
            self.state.counters["metrics_failed"] += 1
            log.error("metrics endpoint %s:%d not started: %s", m.host, m.port, exc)
            return None
        self.metrics_port = server.port
        return server

    async def _status(self, state: str) -> None:
        await self.announcer.status(
            state, self.counters(), self.rules_state, self.degraded(), self.devices()
        )
        if state == "online":
            self.notifier.status(self.summary())

    async def metrics_text(self) -> str:
        """The Prometheus exposition of this gateway, now."""
        by_state = await self.store.call(self.store.counts_by_state)
        figures = GatewayFigures(
            now=self.clock.now(),
            counters=self.counters(),
            anchor_adverts=self.pipeline.anchor_adverts,
            anchor_last=self.pipeline.anchor_last,
            anchors=scanner_ids(self.config),
            queue_depth=len(self.inbox),
            offers_by_state={str(k): v for k, v in by_state.items()},
            rules_in_force=self.rules_state.count,
            devices=self.devices(),
            occupancy=self.pipeline.zones.occupancy(),
            offers_by=self.live.offers_by,
        )
        return render(gateway_samples(figures))

    def degraded(self) -> list[str]:
        """What is wrong while we keep running, one line each (empty when all is well)."""
        silent = [f"anchor {a} silent" for a in sorted(self.anchor_watch.silent)]
        return silent + [f"source {n} failing: {why}" for n, why in sorted(self._failing.items())]

    def summary(self) -> str:
        """One line for `systemctl status`."""
        rules = self.rules_state
        text = f"{rules.count} rules"
        if rules.error:
            text += f" (reload refused: {rules.error[:120]})"
        customers = len(self.pipeline.customers)
        state = "online"
        if self.degraded():
            state = f"degraded ({'; '.join(self.degraded())})"
        return f"{state}: {text}, {customers} customers, {self.state.counters['inputs']} inputs"

    # -- rules reload -----------------------------------------------------------------------

    def request_reload(self) -> None:
        """Reload config.yaml and the rules soon (SIGHUP)."""
        self._reload_config = True
        self._reload.set()

    async def _watch_rules(self, seen: Fingerprint) -> None:
        """Reload when a rule file changes (once it has stopped changing) or on request."""
        folder = self.config.rules_dir
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(RULES_POLL_S):
                    await self._reload.wait()
            now = await asyncio.to_thread(rules_fingerprint, folder)
            if now == seen and not self._reload.is_set():
                continue
            await asyncio.sleep(RULES_SETTLE_S)  # an editor may still be writing
            seen = await asyncio.to_thread(rules_fingerprint, folder)
            self._reload.clear()
            config_too, self._reload_config = self._reload_config, False
            await self.reload_rules(config_too=config_too)

    async def reload_rules(self, *, config_too: bool = False) -> bool:
        """Load the rules (and with `config_too`, config.yaml) again, all or nothing: what is
        refused leaves the running set in force, its errors logged and on gateway/status."""
        config = self.config
        try:
            if config_too:
                config = await asyncio.to_thread(self._fresh_config)
            rules = await asyncio.to_thread(load_rules, config.rules_dir, config)
        except ConfigError as exc:
            return await self._refused(exc)
        if config != self.config:
            self.pipeline = rebuild(self.pipeline, config, rules, self.pools)
            self.config = config
            self.anchor_watch = AnchorWatch(scanner_ids(config))
        else:
            self.pipeline.reload_rules(rules)
        self.rules_state = RulesState(self.clock.now(), len(rules.rules))
        self.state.counters["rules_reloaded"] += 1
        settle_heap()  # the old set's cycles are collected, the new set is frozen
        log.info(
            "%s reloaded: %d rules in force",
            "config and rules" if config_too else "rules",
            len(rules.rules),
        )
        await self._status("online")
        return True

    def _fresh_config(self) -> Config:
        fresh = load_config(self.config.path)
        needs = restart_needed(self.config, fresh)
        if needs:
            log.warning(
                "config: %s changed; restart the gateway to apply that "
                "(systemctl restart rayon-gateway)",
                ", ".join(needs),
            )
        return carried_over(self.config, fresh)

    async def _refused(self, exc: ConfigError) -> bool:
        self.state.counters["rules_reload_failed"] += 1
        for diagnostic in exc.diagnostics:
            log.error("not reloaded: %s", diagnostic)
        self.rules_state = dataclasses.replace(self.rules_state, error=summarize(exc.diagnostics))
        await self._status("online")
        return False

    # -- inputs -----------------------------------------------------------------------------

    def offer_input(self, item: TraceItem, sender: str = "source") -> None:
        """Queue an input of one of our sources (the Pi's radio, a simulator)."""
        if not self.inbox.put("source", sender, item):
            self.state.counters["input_dropped"] += 1

    async def _pump(self, source: Source) -> None:
        """Feed one source's inputs; a failing source (adapter gone, bluetoothd down) is
        retried with capped, jittered backoff and never stops the gateway."""
        failures = 0
        while True:
            try:
                async for item in source.items():
                    if failures:
                        failures = 0
                        await self._source_health(source.name, None)
                    self.offer_input(item, source.name)
                return
            except RuntimeFailure as exc:
                failures += 1
                self.state.counters[f"source_failures:{source.name}"] += 1
                await self._source_health(source.name, str(exc)[:160])
                delay = min(SOURCE_RETRY_MAX_S, 2.0**failures) * random.uniform(0.8, 1.2)
                log.error("source %s failed: %s; retrying in %.0f s", source.name, exc, delay)
                await asyncio.sleep(delay)

    async def _source_health(self, name: str, failing: str | None) -> None:
        """A source started failing or recovered: say it on gateway/status at once."""
        if failing is None:
            self._failing.pop(name, None)
        else:
            self._failing[name] = failing
        await self._status("online")

    # -- processing -------------------------------------------------------------------------

    async def _process(self) -> None:
        taken = 0
        while True:
            item = await self.inbox.get()
            out = self.pipeline.feed(item)
            self._pending.extend(out)
            if out.erased and self.recorder is not None:
                whose = self.recorder.erase(out.erased)
                if whose is not None:
                    self._record_erased.append(whose)
            self.state.counters["inputs"] += 1
            if out.offers:  # an offer waits for no batch: write it, then it is published
                self._offers_due.set()
            taken += 1
            if taken % YIELD_EVERY == 0:  # a full inbox never returns to the loop by itself
                await asyncio.sleep(0)

    async def _ticker(self) -> None:
        """Time passes: zone timers, occupancy, the periodic status, and the watchdog ping —
        sent from here so that a stuck pipeline stops it and systemd restarts us."""
        last_status, last_ping = self.clock.now(), 0.0
        while True:
            await asyncio.sleep(TICK_S)
            if (
                self.notifier.watchdog_s
                and time.monotonic() - last_ping >= self.notifier.watchdog_s
            ):
                last_ping = time.monotonic()
                self.notifier.watchdog()
            now = self.clock.now()
            ticked = self.pipeline.tick(now)
            self._pending.extend(ticked)
            if ticked.offers:
                self._offers_due.set()
            self._watch_anchors(now)
            await self.announcer.occupancy(self.pipeline.zones.occupancy())
            await self.live.positions(self.pipeline.zones, self.pipeline.customers)
            if self._status_due or now - last_status >= STATUS_EVERY_S:
                last_status, self._status_due = now, False
                await self._status("online")

    def _watch_anchors(self, now: float) -> None:
        changes = self.anchor_watch.check(now, self.pipeline.anchor_last)
        for anchor in changes.fell_silent:
            self.state.counters["anchor_silent_alarms"] += 1
            log.error(
                "anchor %s has heard nothing for %.0f s: check its power, Wi-Fi and "
                "MQTT login (rayon doctor)",
                anchor,
                self.anchor_watch.silent_after_s,
            )
        for anchor in changes.came_back:
            log.warning("anchor %s hears adverts again", anchor)
        if changes.fell_silent or changes.came_back:
            self._status_due = True

    async def _writer(self) -> None:
        """Write pending outputs every WRITE_EVERY_S, or at once when an offer is decided
        (the advert → PUBACK latency: a batch interval would be added to every offer)."""
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(WRITE_EVERY_S):
                    await self._offers_due.wait()
            self._offers_due.clear()
            await self._flush()
            await self.live.flush()  # the ticker: this batch's, and the outbox's news

    async def _flush(self, *, final: bool = False) -> None:
        """Write pending outputs; with them, the live state when offers were decided (so a
        crash can never split the two), every SNAPSHOT_EVERY_S, and at the end."""
        pending, self._pending = self._pending, Output()
        now = self.clock.now()
        snapshot_due = bool(pending.offers) or final or now - self._saved_at >= SNAPSHOT_EVERY_S
        if not pending and not snapshot_due:
            return
        runtime = None
        pipeline = self.pipeline
        if snapshot_due:  # only what changed since the last write
            runtime, self._saved_at = {RUNTIME_KEY: pipeline.snapshot_changes()}, now
        assigned = self.pools.take_new()
        positions = self._positions.sample(pending.fixes, pipeline.customers.by_device)
        try:
            result = await self.store.call(
                persist, self.store, pending, runtime, now, assigned, positions
            )
        except BaseException:
            if runtime is not None:
                pipeline.resave()  # those changes are not saved: the next write has them all
            raise
        self.state.counters["offers"] += sum(not o.holdout for o in pending.offers)
        self.state.counters["offers_dropped"] += result.dropped
        decided = [(offer, state.value) for offer, state in result.decided]
        self.live.note_decided(pending.events, decided, pipeline.zones, pipeline.customers)
        if result.pending:  # sent at once, without reading them back
            self.publisher.hand(result.pending)
            self._wake.set()
        if pending.erased or pending.upserted:  # what persist cancelled must not go out
            self.publisher.withdraw({*push_withdrawn(pending), *pending.erased})
        await self.announcer.events(pending.events)


__all__ = ["Gateway", "Source"]
