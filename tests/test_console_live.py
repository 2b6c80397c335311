"""The console's live view on a real Mosquitto: positions, ticker, occupancy and status as the
gateway publishes them (and malformed ones) reach `LiveState`, and the SSE stream of a real
uvicorn server follows."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from sse_starlette import EventSourceResponse
from starlette.requests import Request
from starlette.testclient import TestClient

from gateway.clock import ManualClock
from gateway.config.model import Config
from gateway.console.app import SEND_TIMEOUT_S, build_app, live_stream
from gateway.console.auth import SESSION_COOKIE
from gateway.console.live import Fanout, LiveFeed, LiveState
from gateway.console.livemsg import OFFER_STATES
from gateway.console.users import Role
from gateway.console.web import Console
from gateway.deliver.mqtt import Backoff
from gateway.deliver.payloads import (
    TickerOffer,
    encode,
    occupancy_payload,
    positions_payload,
    status_payload,
    ticker_event_payload,
    ticker_offer_payload,
)
from gateway.events import EventKind, ZoneEvent
from gateway.topics import ConsoleLeaf, Topics
from tests.broker import Mosquitto, Subscriber, free_port
from tests.consolekit import START, console_config, make_console

pytestmark = pytest.mark.mqtt

AT = "2026-03-03T09:00:00+01:00"
VISIT = "v-0123456789ab"
POSITIONS: dict[str, Any] = {
    "type": "positions",
    "v": 1,
    "at": AT,
    "devices": [{"visit": VISIT, "x": 25.0, "y": 10.0, "accuracy_m": 2.5, "zone": "aisle-tv"}],
}
ENTER: dict[str, Any] = {
    "type": "zone_event",
    "v": 1,
    "at": AT,
    "kind": "enter",
    "zone": "aisle-tv",
    "visit": VISIT,
}
OFFER: dict[str, Any] = {
    "type": "offer",
    "v": 1,
    "at": AT,
    "offer": "8f0c7a52-3c1e-4c55-9d59-2f0e2b1a0c11",
    "rule": "tv-aisle-dwell",
    "zone": "aisle-tv",
    "state": "sent",
    "visit": VISIT,
}
STATUS: dict[str, Any] = {
    "state": "online",
    "version": "0.1.0",
    "started_at": AT,
    "rules": {"loaded_at": AT, "count": 3, "error": "rules/tv.yaml:4:9: error: unknown zone"},
    "degraded": ["anchor node-tv silent"],
}


def topics() -> Topics:
    return Topics("rayon", "paris-11")


def state_for(config: Config) -> LiveState:
    return LiveState(topics(), [z.id for z in config.zones], [a.id for a in config.anchors])


def dumps(value: Any) -> bytes:
    return json.dumps(value).encode()


# --- LiveState alone --------------------------------------------------------------------


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return console_config(tmp_path)


def test_valid_messages_update_the_state_and_give_their_event(config: Config) -> None:
    state, t = state_for(config), topics()
    event = state.handle(t.console(ConsoleLeaf.POSITIONS), dumps(POSITIONS))
    assert event is not None and event["event"] == "positions"
    assert [(d.visit, d.x, d.zone) for d in state.dots] == [(VISIT, 25.0, "aisle-tv")]
    state.handle(t.console(ConsoleLeaf.TICKER), dumps(ENTER))
    state.handle(t.console(ConsoleLeaf.TICKER), dumps(OFFER))
    assert [(x.type, x.what, x.state) for x in state.ticker] == [
        ("zone_event", "enter", None),
        ("offer", "tv-aisle-dwell", "sent"),
    ]
    state.handle(t.occupancy("aisle-tv"), dumps({"count": 4, "at": AT}))
    state.handle(t.status(), dumps(STATUS))
    snap = state.snapshot()
    assert snap["occupancy"]["aisle-tv"] == 4 and snap["occupancy"]["store"] == 0
    assert snap["ticker"][0]["what"] == "tv-aisle-dwell"  # newest first
    assert snap["status"]["anchors"]["node-tv"] == "silent"
    assert snap["status"]["anchors"]["node-audio"] == "ok"
    assert snap["status"]["rules"]["error"].startswith("rules/tv.yaml:4:9")
    assert state.malformed == {}


EXAMPLES = Path(__file__).resolve().parent.parent / "gateway" / "data" / "mqtt" / "examples"


@pytest.mark.parametrize(
    ("example", "topic"),
    [
        ("console_positions", topics().console(ConsoleLeaf.POSITIONS)),
        ("console_ticker", topics().console(ConsoleLeaf.TICKER)),
        ("occupancy", topics().occupancy("aisle-tv")),
        ("status", topics().status()),
    ],
)
def test_the_contracts_examples_are_accepted(config: Config, example: str, topic: str) -> None:
    """docs/mqtt.md's examples (validated against the schemas by test_mqtt_contract)."""
    state = state_for(config)
    assert state.handle(topic, (EXAMPLES / f"{example}.json").read_bytes()) is not None
    assert state.malformed == {}


def test_what_the_gateways_payload_builders_make_is_accepted(config: Config) -> None:
    """The gateway's own builders (gateway.deliver.payloads), at a fractional time, every
    event kind and offer state: the console takes each one."""
    tz, at, t = config.store.timezone, START + 0.25, topics()
    state = state_for(config)
    messages = [
        (
            t.console(ConsoleLeaf.POSITIONS),
            positions_payload([(VISIT, 1.0, 2.5, 0.0, None)], at, tz),
        ),
        (t.occupancy("store"), occupancy_payload(0, at, tz)),
        (t.status(), status_payload("online", "0.1.0", at, {"inputs": 3}, tz=tz)),
    ]
    for kind in EventKind:
        event = ZoneEvent(at, kind, "store", "ibeacon:x", "c-1")
        messages.append((t.console(ConsoleLeaf.TICKER), ticker_event_payload(event, VISIT, tz)))
    shown = TickerOffer("0b7e6f0c-4a8e-4d3b-9a51-6f2d8c1e9b30", "welcome", None, VISIT)
    for offer_state in OFFER_STATES:
        payload = ticker_offer_payload(shown, offer_state, at, tz)
        messages.append((t.console(ConsoleLeaf.TICKER), payload))
    for topic, payload in messages:
        assert state.handle(topic, encode(payload)) is not None, payload
    assert state.malformed == {} and len(state.ticker) == len(EventKind) + len(OFFER_STATES)


BAD: list[tuple[str, Any]] = [
    ("positions", b"not json"),
    ("positions", [1, 2]),
    ("positions", {**POSITIONS, "v": 2}),
    ("positions", {**POSITIONS, "devices": [{"visit": "customer-42", "x": 1, "y": 1}]}),
    ("positions", {**POSITIONS, "devices": [{**POSITIONS["devices"][0], "x": float("nan")}]}),
    ("positions", {**POSITIONS, "devices": [{**POSITIONS["devices"][0], "accuracy_m": -1}]}),
    ("ticker", {**ENTER, "kind": "teleport"}),
    ("ticker", {**OFFER, "state": "<script>"}),
    ("ticker", {**OFFER, "rule": "<img src=x onerror=alert(1)>"}),
    ("ticker", {**ENTER, "at": "yesterday"}),
    ("occupancy", {"count": -1}),
    ("occupancy", {"count": "3"}),
    ("status", {"state": "dancing"}),
    ("status", {**STATUS, "degraded": "all"}),
    # hostile payloads: nesting deeper than the parser's recursion, more than the size cap,
    # invalid UTF-8, far too many dots, an endless string kept in the state
    ("positions", b"[" * 200_000),
    ("ticker", b'{"a":' * 100_000),
    ("occupancy", b"[" * 200_000),
    ("status", b"[" * 200_000),
    ("positions", b"\xff\xfe{}"),
    ("positions", {**POSITIONS, "devices": [POSITIONS["devices"][0]] * 100_000}),
    ("positions", {**POSITIONS, "pad": "x" * 2_000_000}),
    ("status", {**STATUS, "rules": {**STATUS["rules"], "loaded_at": "9" * 1_000_000}}),
]


@pytest.mark.parametrize(("kind", "payload"), BAD)
def test_a_malformed_message_is_counted_and_logged_never_raised(
    config: Config, kind: str, payload: Any, caplog: pytest.LogCaptureFixture
) -> None:
    state, t = state_for(config), topics()
    topic = {
        "positions": t.console(ConsoleLeaf.POSITIONS),
        "ticker": t.console(ConsoleLeaf.TICKER),
        "occupancy": t.occupancy("aisle-tv"),
        "status": t.status(),
    }[kind]
    raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    assert state.handle(topic, raw) is None
    assert state.malformed == {kind: 1}
    assert topic in caplog.text
    assert not state.dots and not state.ticker and not state.occupancy and state.gateway is None


def test_anchors_are_unknown_until_the_gateway_runs_and_when_it_stops(config: Config) -> None:
    state = state_for(config)
    assert state.anchor_health("node-tv") == "unknown"
    state.handle(topics().status(), dumps(STATUS))
    assert (state.anchor_health("node-tv"), state.anchor_health("node-audio")) == ("silent", "ok")
    state.handle(topics().status(), dumps({"state": "offline", "version": "1", "started_at": None}))
    assert state.anchor_health("node-audio") == "unknown" and state.rules is not None


def test_occupancy_of_a_zone_not_in_the_config_is_refused(config: Config) -> None:
    state = state_for(config)
    assert state.handle(topics().occupancy("elsewhere"), dumps({"count": 1, "at": AT})) is None
    assert state.malformed == {"occupancy": 1}


def test_the_ticker_keeps_the_last_200_lines(config: Config) -> None:
    state = state_for(config)
    for i in range(250):
        state.handle(topics().console(ConsoleLeaf.TICKER), dumps({**ENTER, "zone": f"z{i}"}))
    assert len(state.ticker) == 200 and state.ticker[-1].zone == "z249"


def test_a_lagging_browser_loses_events_counted_others_do_not() -> None:
    fanout = Fanout(queue_size=2)
    slow, fast = fanout.subscribe(), fanout.subscribe()
    for i in range(3):
        fanout.publish({"event": "ticker", "data": i})
        assert fast.get_nowait()["data"] == i
    assert slow.qsize() == 2 and fanout.dropped == 1
    fanout.unsubscribe(slow)
    fanout.publish({"event": "ticker", "data": 9})
    assert fanout.dropped == 1 and fanout.clients == 1


# --- on a real broker -------------------------------------------------------------------


def run(coro: Coroutine[Any, Any, None]) -> None:
    async def bounded() -> None:
        async with asyncio.timeout(60):
            await coro

    asyncio.run(bounded())


async def until(check: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait (without asserting how long it took) until `check()` holds."""
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.01)


def publisher(broker: Mosquitto) -> Subscriber:
    return Subscriber(broker, client_id="gateway-like").start("nothing/here")


async def publish(pub: Subscriber, topic: str, payload: bytes, retain: bool = False) -> None:
    await asyncio.to_thread(pub.publish, topic, payload, 1, retain)


async def subscribed(pub: Subscriber, state: LiveState) -> None:
    """Until the console's subscription is in place: a retained status reached it."""
    await publish(pub, topics().status(), dumps(STATUS), retain=True)
    await until(lambda: state.gateway is not None)


@pytest.fixture
def broker_config(tmp_path: Path, mosquitto: Mosquitto) -> Config:
    return console_config(tmp_path, port=mosquitto.port)


@pytest.fixture
def pub(mosquitto: Mosquitto) -> Iterator[Subscriber]:
    """A client publishing as the gateway does."""
    client = publisher(mosquitto)
    yield client
    client.stop()


def test_the_feed_follows_the_live_topics_and_survives_malformed_ones(
    broker_config: Config, pub: Subscriber
) -> None:
    t = topics()
    state, fanout = state_for(broker_config), Fanout()
    queue = fanout.subscribe()

    async def scenario() -> None:
        # retained before the console starts: the console gets them on subscribing
        await publish(pub, t.occupancy("aisle-tv"), dumps({"count": 2, "at": AT}), retain=True)
        await publish(pub, t.status(), dumps(STATUS), retain=True)
        feed = LiveFeed(broker_config, state, fanout, backoff=Backoff(0.05, 0.2))
        task = asyncio.create_task(feed.run())
        try:
            await until(lambda: state.occupancy.get("aisle-tv") == 2 and state.rules is not None)
            await publish(pub, t.console(ConsoleLeaf.POSITIONS), b"{broken")
            await publish(pub, t.console(ConsoleLeaf.POSITIONS), dumps(POSITIONS))
            await publish(pub, t.console(ConsoleLeaf.TICKER), dumps({**OFFER, "visit": "dev-1"}))
            await publish(pub, t.console(ConsoleLeaf.TICKER), dumps(OFFER))
            await until(lambda: len(state.ticker) == 1)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    run(scenario())
    assert [d.visit for d in state.dots] == [VISIT]
    assert state.malformed == {"positions": 1, "ticker": 1}
    assert state.anchor_health("node-tv") == "silent"
    events = [queue.get_nowait()["event"] for _ in range(queue.qsize())]
    assert sorted(events[:2]) == ["occupancy", "status"]
    assert events[2:] == ["positions", "ticker"]


def test_the_feed_waits_for_a_broker_that_is_not_up_yet(
    broker_config: Config, mosquitto: Mosquitto
) -> None:
    mosquitto.stop()
    state, fanout = state_for(broker_config), Fanout()
    feed = LiveFeed(broker_config, state, fanout, backoff=Backoff(0.05, 0.2))

    async def scenario() -> None:
        task = asyncio.create_task(feed.run())
        try:
            await asyncio.sleep(0.3)  # a few refused attempts
            assert not task.done() and not feed.connected
            mosquitto.start()
            await until(lambda: feed.connected)
            client = publisher(mosquitto)
            try:
                await subscribed(client, state)
                await publish(client, topics().console(ConsoleLeaf.TICKER), dumps(ENTER))
                await until(lambda: len(state.ticker) == 1)
            finally:
                client.stop()
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    run(scenario())
    assert state.ticker[0].what == "enter"


async def sse_events(lines: AsyncIterator[str]) -> AsyncIterator[tuple[str, Any]]:
    """(event, data) of an SSE stream's lines."""
    event = "message"
    async for line in lines:
        if line.startswith("event:"):
            event = line.split(":", 1)[1].strip()
        elif line.startswith("data:"):
            yield event, json.loads(line.split(":", 1)[1])
            event = "message"


@contextlib.asynccontextmanager
async def serving(console: Console, config: Config) -> AsyncIterator[str]:
    """The console on a real uvicorn, with its feed on the test's broker; its base url."""
    app = build_app(console, LiveFeed(config, console.live, console.fanout))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None))
    task = asyncio.create_task(server.serve())
    try:
        await until(lambda: server.started)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.gather(task, return_exceptions=True)


def test_the_sse_stream_sends_a_snapshot_then_follows_the_broker(
    broker_config: Config, pub: Subscriber
) -> None:
    t = topics()
    clock = ManualClock(START)
    console = make_console(broker_config, clock)
    _session, cookie = console.sessions.issue("vera", Role.VIEWER)
    headers = {"cookie": f"{SESSION_COOKIE}={cookie}"}
    got: list[tuple[str, Any]] = []

    async def scenario() -> None:
        async with (
            serving(console, broker_config) as base,
            httpx.AsyncClient(base_url=base, timeout=10) as http,
        ):
            assert (await http.get("/live")).status_code == 401
            await subscribed(pub, console.live)
            async with http.stream("GET", "/live", headers=headers) as stream:
                assert stream.headers["content-type"].startswith("text/event-stream")
                events = sse_events(stream.aiter_lines())
                got.append(await anext(events))
                await until(lambda: console.fanout.clients == 1)
                await publish(pub, t.console(ConsoleLeaf.TICKER), dumps(OFFER))
                await publish(pub, t.occupancy("aisle-tv"), dumps({"count": 7, "at": AT}))
                await publish(pub, t.console(ConsoleLeaf.POSITIONS), dumps(POSITIONS))
                got.extend([await anext(events) for _ in range(3)])
                clock.advance(broker_config.console.session_ttl)  # the session is over:
                await publish(pub, t.console(ConsoleLeaf.TICKER), dumps(ENTER))
                after = [e async for e in events]  # the stream ends, this line unsent
                assert after == []

    run(scenario())
    name, snap = got[0]
    assert name == "snapshot" and snap["status"]["anchors"]["node-tv"] == "silent"
    assert got[1] == (
        "ticker",
        {"at": AT, "type": "offer", "what": "tv-aisle-dwell", "zone": "aisle-tv",
         "state": "sent", "visit": VISIT},
    )  # fmt: skip
    assert got[2] == ("occupancy", {"zone": "aisle-tv", "count": 7})
    assert got[3][0] == "positions" and got[3][1]["devices"][0]["visit"] == VISIT


def test_a_browser_that_never_reads_holds_one_positions_event_not_a_queue_of_them() -> None:
    fanout = Fanout(queue_size=3)
    stuck = fanout.subscribe()
    fanout.publish({"event": "ticker", "data": "first"})
    for i in range(1000):
        fanout.publish({"event": "positions", "data": i})
    fanout.publish({"event": "ticker", "data": "last"})
    got = [stuck.get_nowait() for _ in range(stuck.qsize())]
    assert got == [
        {"event": "ticker", "data": "first"},
        {"event": "positions", "data": 999},
        {"event": "ticker", "data": "last"},
    ]
    assert fanout.dropped == 0


def test_the_number_of_streams_is_bounded(config: Config) -> None:
    console = make_console(config, ManualClock(START))
    console.fanout.max_clients = 1
    console.fanout.subscribe()
    _session, cookie = console.sessions.issue("vera", Role.VIEWER)
    with TestClient(build_app(console), base_url="https://testserver") as client:
        response = client.get("/live", headers={"cookie": f"{SESSION_COOKIE}={cookie}"})
    assert response.status_code == 503 and "already open" in response.json()["error"]


def test_a_stream_whose_browser_takes_nothing_is_dropped_after_its_send_timeout(
    config: Config,
) -> None:
    console = make_console(config, ManualClock(START))
    app = build_app(console)
    _session, cookie = console.sessions.issue("vera", Role.VIEWER)
    scope = {
        "type": "http",
        "method": "GET",
        "path": "/live",
        "headers": [(b"cookie", f"{SESSION_COOKIE}={cookie}".encode())],
        "query_string": b"",
        "app": app,
    }

    async def response() -> Any:
        return await live_stream(Request(scope))

    sent = asyncio.run(response())
    assert isinstance(sent, EventSourceResponse) and sent.send_timeout == SEND_TIMEOUT_S
    assert 0 < SEND_TIMEOUT_S <= 120
