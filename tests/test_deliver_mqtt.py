"""MqttLink against a private Mosquitto: QoS 1 with v5 expiry, inbound queue, reconnect, LWT."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest

from gateway.config.model import TlsConfig
from gateway.deliver.mqtt import Announcement, Backoff, Message, MqttLink
from gateway.deliver.mqtterrors import LinkError
from gateway.errors import RuntimeFailure
from tests.broker import Mosquitto, Subscriber, free_port, noticed_down

pytestmark = pytest.mark.mqtt

R = TypeVar("R")
STATUS = "rayon/paris-11/gateway/status"
FAST = Backoff(initial=0.02, cap=0.2)


def run(coro: Coroutine[Any, Any, R]) -> R:
    async def bounded() -> R:
        async with asyncio.timeout(20):
            return await coro

    return asyncio.run(bounded())


def link_to(broker: Mosquitto, **kwargs: Any) -> MqttLink:
    kwargs.setdefault("backoff", FAST)
    kwargs.setdefault("timeout", 5.0)
    return MqttLink(broker.host, broker.port, "rayon-test-gw", **kwargs)


async def settle(sub: Subscriber, link: MqttLink, count: int) -> list[str]:
    """Topics the subscriber got once a marker sent after everything else arrived."""
    await link.publish("rayon/marker", b"", qos=1)
    got = await asyncio.to_thread(sub.wait, count)
    return [m.topic for m in got]


def test_publish_qos1_carries_the_v5_expiry_interval(
    mosquitto: Mosquitto, subscriber: Callable[..., Subscriber]
) -> None:
    sub = subscriber("rayon/#")

    async def main() -> None:
        async with link_to(mosquitto) as link:
            await link.publish("rayon/paris-11/offers/t1", b'{"id":"o1"}', qos=1, expiry_s=42)
            await link.publish("rayon/paris-11/events", b"{}", qos=0)

    run(main())
    first, second = sub.wait(2)
    assert (first.topic, first.payload, first.qos, first.expiry_s) == (
        "rayon/paris-11/offers/t1",
        b'{"id":"o1"}',
        1,
        42,
    )
    assert (second.topic, second.expiry_s) == ("rayon/paris-11/events", None)


def test_an_expiry_past_32_bits_is_clamped_never_raised(
    mosquitto: Mosquitto, subscriber: Callable[..., Subscriber]
) -> None:
    """MQTT v5's message expiry interval is a four-byte unsigned integer: paho raised
    struct.error past it, out of the publisher (issue 16)."""
    sub = subscriber("rayon/#")

    async def main() -> None:
        async with link_to(mosquitto) as link:
            await link.publish("rayon/paris-11/offers/t1", b"far", qos=1, expiry_s=2**40)
            await link.publish("rayon/paris-11/offers/t1", b"none", qos=1, expiry_s=-5)

    run(main())
    far, none = sub.wait(2)
    assert far.expiry_s is not None and far.expiry_s >= 2**32 - 3  # the broker held it a bit
    assert none.expiry_s == 1


def test_unreachable_broker_is_a_runtime_failure_with_a_hint() -> None:
    link = MqttLink("127.0.0.1", free_port(), "rayon-test-gw", timeout=2.0)
    with pytest.raises(RuntimeFailure, match=r"mqtt\.host and mqtt\.port"):
        run(link.connect())


def test_publish_while_down_raises_link_error(mosquitto: Mosquitto) -> None:
    async def main() -> None:
        async with link_to(mosquitto, backoff=Backoff(initial=5.0, cap=5.0)) as link:
            mosquitto.kill()
            await noticed_down(link)
            with pytest.raises(LinkError, match="not connected"):
                await link.publish("rayon/x", b"", qos=1)

    run(main())


def test_subscriptions_feed_messages_with_the_retained_flag(
    mosquitto: Mosquitto, subscriber: Callable[..., Subscriber]
) -> None:
    helper = subscriber("nothing/#")

    async def main() -> list[Message]:
        async with link_to(mosquitto) as link:
            await link.publish("rayon/paris-11/crm/customers/c1", b"kept", qos=1, retain=True)
            await link.subscribe(["rayon/paris-11/crm/customers/+", "rayon/paris-11/feedback/+"])
            helper.publish("rayon/paris-11/feedback/t1", b"live")
            stream = link.messages()
            return [await anext(stream), await anext(stream)]

    assert run(main()) == [
        Message("rayon/paris-11/crm/customers/c1", b"kept", True),
        Message("rayon/paris-11/feedback/t1", b"live", False),
    ]


def test_a_full_inbound_queue_drops_and_counts(
    mosquitto: Mosquitto, subscriber: Callable[..., Subscriber]
) -> None:
    helper = subscriber("nothing/#")

    async def main() -> tuple[int, list[bytes]]:
        async with link_to(mosquitto, queue_size=2) as link:
            await link.subscribe(["in/#"])
            for i in range(5):
                helper.publish("in/x", str(i).encode())
            while link.dropped < 3:
                await asyncio.sleep(0.01)
            stream = link.messages()
            return link.dropped, [(await anext(stream)).payload for _ in range(2)]

    assert run(main()) == (3, [b"0", b"1"])


def test_reconnects_resubscribes_and_publishes_its_birth_again(
    mosquitto: Mosquitto, subscriber: Callable[..., Subscriber]
) -> None:
    birth = Announcement(STATUS, b'{"state":"online"}')

    async def main() -> Message:
        async with link_to(mosquitto, birth=birth) as link:
            await link.subscribe(["in/#"])
            mosquitto.stop()
            await noticed_down(link)
            mosquitto.start()
            await link.wait_connected()
            sub = await asyncio.to_thread(subscriber, STATUS)  # a retained birth: it's there
            await asyncio.to_thread(sub.wait, 1)
            sub.publish("in/after", b"again")
            return await anext(link.messages())

    assert run(main()) == Message("in/after", b"again", False)


def test_the_will_is_published_when_the_link_dies_not_when_it_says_goodbye(
    mosquitto: Mosquitto, subscriber: Callable[..., Subscriber]
) -> None:
    sub = subscriber(STATUS, "rayon/marker")
    will = (STATUS, b'{"state":"offline"}')  # the (topic, payload) shorthand
    birth = Announcement(STATUS, b'{"state":"online"}')

    async def main() -> list[bytes]:
        async with link_to(mosquitto, will=will, birth=birth) as link:
            await asyncio.to_thread(sub.wait, 1)  # online
            link.abort()  # the socket dies under paho, no DISCONNECT sent
            await asyncio.to_thread(sub.wait, 2)  # offline, from the broker
            await link.wait_connected()
            await asyncio.to_thread(sub.wait, 3)  # online again
        async with link_to(mosquitto) as other:  # the goodbye above sent no will
            await settle(sub, other, 4)
        return [m.payload for m in sub.messages]

    assert run(main()) == [
        b'{"state":"online"}',
        b'{"state":"offline"}',
        b'{"state":"online"}',
        b"",  # the marker, with no offline before it
    ]


def test_backoff_is_jittered_doubling_and_capped() -> None:
    backoff = Backoff(initial=0.5, cap=30.0)
    rng = random.Random(7)
    for attempt in range(40):
        ceiling = min(30.0, 0.5 * 2**attempt)
        delays = {backoff.delay(attempt, rng) for _ in range(20)}
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(delays) > 1  # jittered


def test_missing_tls_files_are_a_runtime_failure_naming_the_setting(tmp_path: Path) -> None:
    tls = TlsConfig(ca_file=tmp_path / "no-such-ca.pem")
    link = MqttLink("127.0.0.1", free_port(), "rayon-test-gw", tls=tls)
    with pytest.raises(RuntimeFailure, match=r"no-such-ca\.pem.*mqtt\.tls"):
        run(link.connect())


def test_expiry_properties_pack_as_paho_would_and_are_reused() -> None:
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    from gateway.deliver.mqttio import ExpiryProperties

    cache = ExpiryProperties(limit=2)
    for seconds in (1, 3600, 10_800):
        fresh = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
        fresh.MessageExpiryInterval = seconds
        assert cache.get(seconds).pack() == fresh.pack()  # type: ignore[no-untyped-call]
    assert cache.get(10_800) is cache.get(10_800)
    assert cache.get(1).pack() == b"\x05\x02\x00\x00\x00\x01"  # type: ignore[no-untyped-call]
