"""Status, occupancy and the events stream, as signage and analytics receive them."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from zoneinfo import ZoneInfo

import pytest

from gateway.clock import ManualClock
from gateway.deliver.announce import OCCUPANCY_MIN_INTERVAL_S, Announcer
from gateway.deliver.mqtt import MqttLink
from gateway.events import EventKind, ZoneEvent
from gateway.topics import Topics
from tests.broker import Mosquitto, Subscriber

BASE = "rayon/paris-11"
PARIS = ZoneInfo("Europe/Paris")

pytestmark = pytest.mark.mqtt


def run(mosquitto: Mosquitto, script: Callable[[Announcer, ManualClock], Awaitable[None]]) -> None:
    async def main() -> None:
        link = MqttLink(mosquitto.host, mosquitto.port, "announcer-test")
        await link.connect()
        clock = ManualClock(1_772_550_000.0)
        announcer = Announcer(
            link, Topics("rayon", "paris-11"), clock, PARIS, clock.now(), ["store", "aisle-tv"]
        )
        try:
            await script(announcer, clock)
        finally:
            await link.disconnect()

    asyncio.run(main())


def test_occupancy_only_on_change_and_at_most_once_per_interval(
    mosquitto: Mosquitto, subscriber: Callable[..., Subscriber]
) -> None:
    signage = subscriber(f"{BASE}/zones/aisle-tv/occupancy")

    async def script(a: Announcer, clock: ManualClock) -> None:
        await a.occupancy({"aisle-tv": 2})  # first: published
        await a.occupancy({"aisle-tv": 2})  # unchanged: not published
        clock.advance(1)
        await a.occupancy({"aisle-tv": 3})  # changed, too soon: held back
        clock.advance(OCCUPANCY_MIN_INTERVAL_S)
        await a.occupancy({"aisle-tv": 3})  # the held-back change goes out now

    run(mosquitto, script)
    got = signage.wait(2)
    assert [json.loads(m.payload)["count"] for m in got] == [2, 3]
    assert all(m.retain is False for m in got)  # live delivery; retained for late subscribers:
    late = subscriber(f"{BASE}/zones/aisle-tv/occupancy")
    (retained,) = late.wait(1)
    assert retained.retain and json.loads(retained.payload)["count"] == 3
    assert json.loads(retained.payload)["at"].endswith("+01:00")


def test_events_stream_and_retained_status(
    mosquitto: Mosquitto, subscriber: Callable[..., Subscriber]
) -> None:
    analytics = subscriber(f"{BASE}/events")
    event = ZoneEvent(
        1_772_550_031.0, EventKind.ENTER, "aisle-tv", "ibeacon:x:1:2", "c-1", None, {"x": 1.0}
    )

    async def script(a: Announcer, clock: ManualClock) -> None:
        await a.events([event])
        await a.status("online", {"inputs": 7})

    run(mosquitto, script)
    (got,) = analytics.wait(1)
    body = json.loads(got.payload)
    assert body["kind"] == "enter" and body["zone"] == "aisle-tv" and body["customer"] == "c-1"
    status = subscriber(f"{BASE}/gateway/status")
    (st,) = status.wait(1)
    assert st.retain and json.loads(st.payload)["counters"] == {"inputs": 7}
