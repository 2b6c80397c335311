"""The console's live view: `LiveState` (what the live topics say now), `Fanout` (bounded
per-browser queues for the SSE stream) and `LiveFeed` (the console's own MQTT connection).

`LiveState.handle(topic, payload)` validates one message of `console/positions`,
`console/ticker`, `zones/<zone>/occupancy` or `gateway/status` (gateway.console.livemsg),
updates the state and returns the event for the browsers, or None. A malformed message never
raises: it is counted (`malformed`, by topic kind) and logged with its topic.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
import uuid
from collections import Counter, deque
from collections.abc import Iterable, Mapping
from dataclasses import asdict
from typing import Any

from gateway.config.model import Config
from gateway.console.livemsg import (
    Dot,
    Malformed,
    RulesStatus,
    TickerLine,
    at_of,
    dots_of,
    parse_json,
    rules_of,
    ticker_line,
)
from gateway.deliver.connect import read_password
from gateway.deliver.mqtt import Backoff, MqttLink
from gateway.deliver.mqtterrors import LinkError
from gateway.topics import ConsoleLeaf, TopicKind, Topics

log = logging.getLogger(__name__)

TICKER_LINES = 200
_SILENT = re.compile(r"anchor (\S+) silent")


class LiveState:
    """Occupancy per zone, the current dots, anchors' health, the last rule reload and the
    last TICKER_LINES ticker lines, as the live topics tell them."""

    def __init__(self, topics: Topics, zones: Iterable[str], anchors: Iterable[str]) -> None:
        self._topics = topics
        self._positions = topics.console(ConsoleLeaf.POSITIONS)
        self._ticker_topic = topics.console(ConsoleLeaf.TICKER)
        self.zones = tuple(zones)
        self.anchors = tuple(anchors)
        self.occupancy: dict[str, int] = {}
        self.dots: tuple[Dot, ...] = ()
        self.positions_at: str | None = None
        self.ticker: deque[TickerLine] = deque(maxlen=TICKER_LINES)
        self.gateway: str | None = None  # "online" / "offline" once a status came
        self.silent: frozenset[str] = frozenset()
        self.degraded: tuple[str, ...] = ()
        self.rules: RulesStatus | None = None
        self.malformed: Counter[str] = Counter()
        self.messages = 0

    def handle(self, topic: str, payload: bytes) -> dict[str, Any] | None:
        """Take one message; the event for the browsers, or None (malformed, not ours)."""
        self.messages += 1
        kind = self._kind(topic)
        if kind is None:
            return None
        try:
            data = parse_json(payload)
            return self._apply(kind, topic, data)
        except Malformed as exc:
            self.malformed[kind] += 1
            log.warning("malformed console message on %s: %s", topic, exc)
            return None

    def anchor_health(self, anchor: str) -> str:
        """`silent` (the running gateway says so), `ok` (it runs and does not) or `unknown`
        (no status yet, or the gateway is offline: nobody listens to the anchors)."""
        if self.gateway != "online":
            return "unknown"
        return "silent" if anchor in self.silent else "ok"

    def snapshot(self) -> dict[str, Any]:
        """Everything at once: the stream's first event and /state.json."""
        return {
            "occupancy": {z: self.occupancy.get(z, 0) for z in self.zones},
            "positions": self._positions_event(),
            "ticker": [asdict(line) for line in reversed(self.ticker)],  # newest first
            "status": self._status_event(),
        }

    def _kind(self, topic: str) -> str | None:
        if topic == self._positions:
            return "positions"
        if topic == self._ticker_topic:
            return "ticker"
        parsed = self._topics.parse(topic)
        if parsed is not None and parsed[0] is TopicKind.OCCUPANCY:
            return "occupancy"
        if parsed is not None and parsed[0] is TopicKind.STATUS:
            return "status"
        return None

    def _apply(self, kind: str, topic: str, data: Mapping[str, Any]) -> dict[str, Any]:
        if kind == "positions":
            self.dots, self.positions_at = dots_of(data), at_of(data)
            return {"event": "positions", "data": self._positions_event()}
        if kind == "ticker":
            line = ticker_line(data)
            self.ticker.append(line)
            return {"event": "ticker", "data": asdict(line)}
        if kind == "occupancy":
            return {"event": "occupancy", "data": self._occupancy(topic, data)}
        self._status(data)
        return {"event": "status", "data": self._status_event()}

    def _occupancy(self, topic: str, data: Mapping[str, Any]) -> dict[str, Any]:
        zone = topic.split("/")[-2]
        if zone not in self.zones:
            raise Malformed(f"zone {zone!r} is not in the config's zones")
        count = data.get("count")
        if not isinstance(count, int) or isinstance(count, bool) or count < 0:
            raise Malformed("'count' must be a non-negative integer")
        self.occupancy[zone] = count
        return {"zone": zone, "count": count}

    def _status(self, data: Mapping[str, Any]) -> None:
        state = data.get("state")
        if state not in ("online", "offline"):
            raise Malformed("'state' must be 'online' or 'offline'")
        degraded = data.get("degraded", [])
        if not isinstance(degraded, list) or not all(isinstance(d, str) for d in degraded):
            raise Malformed("'degraded' must be a list of strings")
        rules = rules_of(data.get("rules"))
        self.gateway, self.degraded = str(state), tuple(d[:300] for d in degraded[:100])
        self.silent = frozenset(m.group(1) for d in degraded if (m := _SILENT.fullmatch(d)))
        self.rules = rules if rules is not None else self.rules

    def _positions_event(self) -> dict[str, Any]:
        return {"at": self.positions_at, "devices": [asdict(d) for d in self.dots]}

    def _status_event(self) -> dict[str, Any]:
        return {
            "gateway": self.gateway,
            "degraded": list(self.degraded),
            "anchors": {a: self.anchor_health(a) for a in self.anchors},
            "rules": asdict(self.rules) if self.rules is not None else None,
        }


class Subscription:
    """One browser's pending live events, at most `size`: a `positions` event replaces the
    one still pending (every positions message redraws all the dots), so a browser that
    stops reading holds at most one positions event of up to MAX_DOTS dots, never `size`."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._events: deque[dict[str, Any] | None] = deque()  # None: the pending positions
        self._positions: dict[str, Any] | None = None
        self._ready = asyncio.Event()

    def put(self, event: dict[str, Any]) -> bool:
        """Queue `event`; False when the browser is `size` events behind (dropped)."""
        if event.get("event") == "positions" and self._positions is not None:
            self._positions = event
            return True
        if len(self._events) >= self._size:
            return False
        if event.get("event") == "positions":
            self._positions, event_or_mark = event, None
        else:
            event_or_mark = event
        self._events.append(event_or_mark)
        self._ready.set()
        return True

    def qsize(self) -> int:
        """How many events wait."""
        return len(self._events)

    def get_nowait(self) -> dict[str, Any]:
        """The oldest pending event; asyncio.QueueEmpty when none."""
        if not self._events:
            raise asyncio.QueueEmpty
        event = self._events.popleft()
        if event is None:
            event, self._positions = self._positions or {}, None
        if not self._events:
            self._ready.clear()
        return event

    async def get(self) -> dict[str, Any]:
        """The oldest pending event, waiting for one."""
        while not self._events:
            await self._ready.wait()
        return self.get_nowait()


class Fanout:
    """The live events, copied to one bounded `Subscription` per browser (at most
    `max_clients` of them); a browser that lags behind `queue_size` events loses the newest
    ones (counted in `dropped`) rather than slow the rest."""

    def __init__(self, queue_size: int = 100, max_clients: int = 64) -> None:
        self._size, self.max_clients = queue_size, max_clients
        self._queues: set[Subscription] = set()
        self.dropped = 0

    def subscribe(self) -> Subscription:
        """A new browser's subscription; `unsubscribe` it when the browser leaves."""
        queue = Subscription(self._size)
        self._queues.add(queue)
        return queue

    def unsubscribe(self, queue: Subscription) -> None:
        self._queues.discard(queue)

    @property
    def clients(self) -> int:
        return len(self._queues)

    @property
    def full(self) -> bool:
        """Whether `max_clients` browsers already follow the stream."""
        return len(self._queues) >= self.max_clients

    def publish(self, event: dict[str, Any]) -> None:
        """Queue `event` for every browser."""
        for queue in self._queues:
            if not queue.put(event):
                self.dropped += 1
                if self.dropped == 1 or self.dropped % 1000 == 0:
                    log.warning("a console browser lags: %d live events dropped", self.dropped)


def live_filters(topics: Topics) -> list[str]:
    """What the console subscribes to: console/+, zones/+/occupancy, gateway/status."""
    return [topics.console_filter(), f"{topics.base}/zones/+/occupancy", topics.status()]


class LiveFeed:
    """The console's MQTT connection (its own login, `mqtt.console`): every message of the
    live topics goes through `state` to `fanout`. Connecting is retried with capped, jittered
    backoff, and the link (gateway.deliver.mqtt.MqttLink, whose paho callbacks only fill an
    asyncio queue) reconnects and subscribes again by itself once up."""

    def __init__(
        self,
        config: Config,
        state: LiveState,
        fanout: Fanout,
        *,
        backoff: Backoff | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self._config, self.state, self._fanout = config, state, fanout
        self._backoff = backoff or Backoff(initial=0.5, cap=30.0)
        self._rng = rng or random.Random()
        self.link = self._new_link()

    @property
    def connected(self) -> bool:
        return self.link.connected

    async def run(self) -> None:
        """Connect, subscribe and feed the state until cancelled."""
        topics = Topics(self._config.mqtt.topic_prefix, self._config.store.id)
        await self._connect()
        try:
            try:
                await self.link.subscribe(live_filters(topics), qos=0)
            except LinkError as exc:  # renewed by the link at its next connection
                log.warning("console subscription failed for now: %s", exc)
            async for message in self.link.messages():
                event = self.state.handle(message.topic, message.payload)
                if event is not None:
                    self._fanout.publish(event)
        finally:
            await self.link.disconnect()

    async def _connect(self) -> None:
        attempt = 0
        while True:
            try:
                await self.link.connect()
                return
            except LinkError as exc:
                delay = self._backoff.delay(attempt, self._rng)
                log.warning("console: MQTT broker unreachable (%s); retrying in %.1f s", exc, delay)
                attempt += 1
                await asyncio.sleep(delay)

    def _new_link(self) -> MqttLink:
        m = self._config.mqtt
        username, password = console_login(self._config)
        return MqttLink(
            host=m.host,
            port=m.port,
            client_id=f"rayon-{self._config.store.id}-console-{uuid.uuid4().hex[:6]}",
            username=username,
            password=password,
            tls=m.tls,
            keepalive=m.keepalive_s,
            queue_size=1000,
        )


def console_login(config: Config) -> tuple[str | None, str | None]:
    """The console's MQTT user name and password (`mqtt.console`); without it, no login at
    all (a warning says to add one): the console never borrows the gateway's password."""
    login = config.mqtt.console
    if login is None:
        log.warning(
            "mqtt.console is not set: the console connects without a login; add "
            "`mqtt: {console: {username, password_file}}` (deploy/mosquitto/README.md)"
        )
        return None, None
    return login.username, read_password(login.password_file, "mqtt.console.password_file")
