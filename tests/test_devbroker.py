"""The demo's embedded broker, driven by real paho-mqtt clients (v5 and v3.1.1) and raw sockets."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import queue
import socket
import threading
import time
import uuid
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar

import paho.mqtt.client as mqtt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.enums import MQTTProtocolVersion as Protocol
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from gateway.clock import ManualClock
from gateway.sim.devbroker import DevBroker
from gateway.sim.mqttcodec import (
    MalformedPacket,
    decode_connect,
    decode_publish,
    decode_subscribe,
    decode_unsubscribe,
    encode_varint,
    topic_matches,
    valid_topic_filter,
)

T = TypeVar("T")

V5, V311 = Protocol.MQTTv5, Protocol.MQTTv311
WAIT = 5.0


class BrokerThread:
    """A DevBroker running on its own event loop in a background thread."""

    def __init__(self, **kwargs: Any) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.broker = DevBroker(**kwargs)

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(WAIT)

    def __enter__(self) -> DevBroker:
        self.thread.start()
        self.run(self.broker.start())
        return self.broker

    def __exit__(self, *exc: object) -> None:
        self.run(self.broker.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(WAIT)
        self.loop.close()


class Peer:
    """A paho client with its received messages in a queue."""

    def __init__(
        self, port: int, protocol: Protocol = V5, client_id: str = "", **will: Any
    ) -> None:
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id, protocol=protocol)
        self.inbox: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
        self.acks: queue.Queue[int] = queue.Queue()
        self.connack: queue.Queue[Properties | None] = queue.Queue()
        self.client.on_message = lambda _c, _u, msg: self.inbox.put(msg)
        self.client.on_subscribe = lambda _c, _u, mid, _rc, _p: self.acks.put(mid)
        self.client.on_unsubscribe = lambda _c, _u, mid, _rc, _p: self.acks.put(mid)
        self.client.on_connect = lambda _c, _u, _f, _rc, props: self.connack.put(props)
        if will:
            self.client.will_set(**will)
        self.client.connect("127.0.0.1", port, keepalive=30)
        self.port = port

    def start(self) -> Peer:
        self.client.loop_start()
        self.connack.get(timeout=WAIT)
        return self

    def subscribe(self, topic: str, qos: int = 0, **options: Any) -> None:
        if options:
            _, mid = self.client.subscribe(topic, options=SubscribeOptions(qos=qos, **options))
        else:
            _, mid = self.client.subscribe(topic, qos)
        assert self.acks.get(timeout=WAIT) == mid

    def unsubscribe(self, topic: str) -> None:
        _, mid = self.client.unsubscribe(topic)
        assert self.acks.get(timeout=WAIT) == mid

    def publish(self, topic: str, payload: bytes, qos: int = 1, **kw: Any) -> None:
        self.client.publish(topic, payload, qos, **kw).wait_for_publish(WAIT)

    def get(self) -> mqtt.MQTTMessage:
        return self.inbox.get(timeout=WAIT)

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def prop(props: Properties | None, name: str) -> Any:
    """A v5 property received by paho (paho sets them as dynamic attributes)."""
    assert props is not None
    return getattr(props, name)


@pytest.fixture(autouse=True)
def collect_garbage() -> Iterator[None]:
    """Collect after each test so a leaked socket's ResourceWarning names the test that leaked."""
    yield
    gc.collect()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(1000.0)


@pytest.fixture
def broker(clock: ManualClock) -> Iterator[DevBroker]:
    with BrokerThread(clock=clock) as running:
        yield running


@pytest.fixture
def peers(broker: DevBroker) -> Iterator[list[Peer]]:
    made: list[Peer] = []
    yield made
    for peer in made:
        peer.stop()


def connect(peers: list[Peer], port: int, protocol: Protocol = V5, **kw: Any) -> Peer:
    peer = Peer(port, protocol, **kw).start()
    peers.append(peer)
    return peer


def before_marker(sub: Peer, pub: Peer) -> list[mqtt.MQTTMessage]:
    """Everything `sub` receives before a fresh marker (needs `marker/#` subscribed)."""
    marker = f"marker/{uuid.uuid4().hex}"
    pub.publish(marker, b"", qos=1)
    got = []
    while (msg := sub.get()).topic != marker:
        got.append(msg)
    return got


@pytest.mark.parametrize(("sub_version", "pub_version"), [(V5, V5), (V311, V5), (V5, V311)])
@pytest.mark.parametrize(("sub_qos", "pub_qos"), [(0, 0), (1, 0), (0, 1), (1, 1), (1, 2), (2, 2)])
def test_delivery_at_the_lower_of_publish_and_subscription_qos(
    broker: DevBroker,
    peers: list[Peer],
    sub_version: Protocol,
    pub_version: Protocol,
    sub_qos: int,
    pub_qos: int,
) -> None:
    sub = connect(peers, broker.port, sub_version)
    pub = connect(peers, broker.port, pub_version)
    sub.subscribe("store/offers", sub_qos)
    for n in range(3):
        pub.publish("store/offers", f"offer {n}".encode(), pub_qos)
    got = [sub.get() for _ in range(3)]
    assert [m.payload for m in got] == [b"offer 0", b"offer 1", b"offer 2"]
    assert {m.qos for m in got} == {min(sub_qos, pub_qos)}
    assert not any(m.retain for m in got)


@pytest.mark.parametrize(
    ("topic_filter", "topic", "expected"),
    [
        ("a/b", "a/b", True),
        ("a/+", "a/b", True),
        ("a/+", "a/b/c", False),
        ("a/#", "a", True),
        ("a/#", "a/b/c", True),
        ("+/+", "/x", True),
        ("#", "$SYS/uptime", False),
        ("+/uptime", "$SYS/uptime", False),
        ("$SYS/#", "$SYS/uptime", True),
        ("a/b", "a/b/c", False),
        ("a/b/c", "a/b", False),
    ],
)
def test_topic_matches(topic_filter: str, topic: str, expected: bool) -> None:
    assert topic_matches(topic_filter, topic) is expected


@pytest.mark.parametrize(
    ("topic_filter", "expected"),
    [("a/+/c", True), ("#", True), ("a/#", True), ("a/#/c", False), ("a+", False), ("", False)],
)
def test_valid_topic_filter(topic_filter: str, expected: bool) -> None:
    assert valid_topic_filter(topic_filter) is expected


def test_wildcard_subscriptions_over_the_wire(broker: DevBroker, peers: list[Peer]) -> None:
    sub = connect(peers, broker.port)
    pub = connect(peers, broker.port, V311)
    sub.subscribe("rayon/+/offers/#", 1)
    sub.subscribe("#", 0, noLocal=True)  # no $-topics, and not its own marker-free publishes
    sub.subscribe("marker/#")
    for topic in ["rayon/p11/offers/t1", "rayon/p11/events", "$SYS/load", "rayon/p11/offers"]:
        pub.publish(topic, topic.encode())
    got = {(m.topic, m.qos) for m in before_marker(sub, pub)}
    assert got == {("rayon/p11/offers/t1", 1), ("rayon/p11/events", 0), ("rayon/p11/offers", 1)}
    sub.publish("own/echo", b"x")
    assert before_marker(sub, pub) == []


def test_unsubscribe_stops_delivery(broker: DevBroker, peers: list[Peer]) -> None:
    sub = connect(peers, broker.port)
    pub = connect(peers, broker.port)
    sub.subscribe("marker/#")
    sub.subscribe("a/#")
    pub.publish("a/x", b"heard")
    assert [m.payload for m in before_marker(sub, pub)] == [b"heard"]
    sub.unsubscribe("a/#")
    pub.publish("a/x", b"nobody listens")
    assert before_marker(sub, pub) == []


def test_invalid_and_shared_filters_are_refused_in_suback(broker: DevBroker) -> None:
    with raw_connect(broker.port) as sock:
        # SUBSCRIBE pid 7: "a/#/b" QoS 1, "$share/g/a" QoS 0, "ok/+" QoS 1
        sock.sendall(b"\x82\x1e\x00\x07\x00\x05a/#/b\x01\x00\x0a$share/g/a\x00\x00\x04ok/+\x01")
        assert sock.recv(7) == b"\x90\x05\x00\x07\x80\x80\x01"


def test_retained_message_is_sent_to_later_subscribers_until_cleared(
    broker: DevBroker, peers: list[Peer]
) -> None:
    pub = connect(peers, broker.port, V311)
    pub.publish("rayon/p11/gateway/status", b'{"state":"online"}', 1, retain=True)
    late = connect(peers, broker.port)
    late.subscribe("marker/#")
    late.subscribe("rayon/+/gateway/status", 1)
    got = late.get()
    assert (got.topic, got.payload, got.retain, got.qos) == (
        "rayon/p11/gateway/status",
        b'{"state":"online"}',
        True,
        1,
    )
    pub.publish("rayon/p11/gateway/status", b"", 1, retain=True)
    cleared = late.get()  # live subscribers see the clearing message itself
    assert (cleared.payload, cleared.retain) == (b"", False)
    later = connect(peers, broker.port, V311)
    later.subscribe("marker/#")
    later.subscribe("rayon/#", 1)
    assert before_marker(later, pub) == []


def expiry_props(seconds: int) -> Properties:
    props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
    props.MessageExpiryInterval = seconds
    props.ContentType = "application/json"
    props.UserProperty = [("offer", "o-1")]
    return props


def test_v5_properties_and_expiry_are_forwarded(broker: DevBroker, peers: list[Peer]) -> None:
    sub = connect(peers, broker.port)
    old = connect(peers, broker.port, V311)
    pub = connect(peers, broker.port)
    for peer in (sub, old):
        peer.subscribe("offers/+", 1)
    pub.publish("offers/t1", b"{}", 1, properties=expiry_props(3 * 3600))
    got = sub.get()
    assert prop(got.properties, "MessageExpiryInterval") == 3 * 3600
    assert prop(got.properties, "ContentType") == "application/json"
    assert prop(got.properties, "UserProperty") == [("offer", "o-1")]
    assert old.get().payload == b"{}"  # 3.1.1 subscriber: same message, no properties


def test_retained_expiry_is_decremented_then_dropped(
    broker: DevBroker, peers: list[Peer], clock: ManualClock
) -> None:
    pub = connect(peers, broker.port)
    pub.publish("zones/tv/occupancy", b"3", 1, retain=True, properties=expiry_props(60))
    clock.advance(25)
    sub = connect(peers, broker.port)
    sub.subscribe("marker/#")
    sub.subscribe("zones/#")
    got = sub.get()
    assert (got.payload, prop(got.properties, "MessageExpiryInterval")) == (b"3", 35)
    clock.advance(35)
    late = connect(peers, broker.port)
    late.subscribe("marker/#")
    late.subscribe("zones/#")
    assert before_marker(late, pub) == []


@pytest.mark.parametrize("protocol", [V5, V311])
def test_will_is_published_and_retained_on_abrupt_close(
    broker: DevBroker, peers: list[Peer], protocol: Protocol
) -> None:
    watcher = connect(peers, broker.port)
    watcher.subscribe("rayon/+/gateway/status", 1)
    will = {"topic": "rayon/p11/gateway/status", "payload": b"offline", "qos": 1, "retain": True}
    dying = Peer(broker.port, protocol, "gateway-p11", **will)
    while dying.connack.empty():
        dying.client.loop(0.05)
    dying.client.socket().shutdown(socket.SHUT_RDWR)  # type: ignore[union-attr]
    dying.client.loop(0.05)
    got = watcher.get()
    assert (got.topic, got.payload, got.qos) == ("rayon/p11/gateway/status", b"offline", 1)
    late = connect(peers, broker.port)
    late.subscribe("rayon/#")
    assert (late.get().payload, late.inbox.empty()) == (b"offline", True)


def test_no_will_after_a_normal_disconnect(broker: DevBroker, peers: list[Peer]) -> None:
    watcher = connect(peers, broker.port)
    watcher.subscribe("#")
    leaving = Peer(broker.port, V5, "leaving", topic="wills/leaving", payload=b"gone").start()
    leaving.stop()
    deadline = time.monotonic() + WAIT
    while "leaving" in broker.client_ids and time.monotonic() < deadline:
        time.sleep(0.01)
    assert "leaving" not in broker.client_ids
    assert before_marker(watcher, connect(peers, broker.port)) == []


def test_empty_client_id_is_assigned_one(broker: DevBroker, peers: list[Peer]) -> None:
    peer = Peer(broker.port, V5, "")
    peer.client.loop_start()
    peers.append(peer)
    assigned = prop(peer.connack.get(timeout=WAIT), "AssignedClientIdentifier")
    assert assigned in broker.client_ids


def raw_connect(port: int, client_id: bytes = b"raw", keepalive: int = 60) -> socket.socket:
    """A hand-assembled MQTT 3.1.1 CONNECT (clean session) and its CONNACK."""
    body = b"\x00\x04MQTT\x04\x02" + keepalive.to_bytes(2, "big")
    body += len(client_id).to_bytes(2, "big") + client_id
    sock = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
    sock.sendall(bytes([0x10, len(body)]) + body)
    assert sock.recv(4) == b"\x20\x02\x00\x00"
    return sock


def closed_by_peer(sock: socket.socket) -> bool:
    with sock:
        try:
            while chunk := sock.recv(1024):
                if chunk[0] >> 4 != 14:  # a v5 DISCONNECT may come first
                    return False
        except ConnectionResetError:
            pass
        return True


def test_resent_qos2_publish_is_delivered_once(broker: DevBroker, peers: list[Peer]) -> None:
    sub = connect(peers, broker.port)
    sub.subscribe("marker/#")
    sub.subscribe("q2", 2)
    with raw_connect(broker.port) as sock:
        # x; x again with DUP (as if its PUBREC was lost); then y reusing the released id 1
        for first_byte, payload, release in [(0x34, b"x", 0), (0x3C, b"x", 1), (0x34, b"y", 1)]:
            sock.sendall(bytes([first_byte, 7]) + b"\x00\x02q2\x00\x01" + payload)
            assert sock.recv(4) == b"\x50\x02\x00\x01"  # PUBREC
            if release:
                sock.sendall(b"\x62\x02\x00\x01")  # PUBREL
                assert sock.recv(4) == b"\x70\x02\x00\x01"  # PUBCOMP
    # No marker here: paho hands a QoS 2 message over only at PUBREL, so a later QoS 1 may overtake.
    assert [(m.payload, m.qos) for m in (sub.get(), sub.get())] == [(b"x", 2), (b"y", 2)]


def test_empty_client_id_without_clean_session_is_refused(broker: DevBroker) -> None:
    with socket.create_connection(("127.0.0.1", broker.port), timeout=WAIT) as sock:
        sock.sendall(b"\x10\x0c\x00\x04MQTT\x04\x00\x00\x3c\x00\x00")
        assert sock.recv(4) == b"\x20\x02\x00\x02"


def test_pingreq_is_answered(broker: DevBroker) -> None:
    with raw_connect(broker.port) as sock:
        sock.sendall(b"\xc0\x00")
        assert sock.recv(2) == b"\xd0\x00"


GARBAGE = [
    b"\x00\x00",  # reserved packet type 0
    b"\x30\xff\xff\xff\xff\x7f",  # remaining length over 4 bytes
    b"\x36\x05\x00\x01a\x00\x01",  # PUBLISH QoS 3
    b"\x30\x04\x00\x02\xff\xfe",  # topic is not UTF-8
    b"\x30\x05\x00\x03a/#",  # wildcard in a topic name
    b"\x80\x06\x00\x01\x00\x01a\x00",  # SUBSCRIBE with wrong fixed-header flags
    b"\x82\x02\x00\x01",  # SUBSCRIBE without a filter
    b"\x10\x0c\x00\x04MQTT\x04\x02\x00\x3c\x00\x00",  # a second CONNECT
]


@pytest.mark.parametrize("garbage", GARBAGE)
def test_malformed_packet_closes_that_client_only(
    broker: DevBroker, peers: list[Peer], garbage: bytes
) -> None:
    sub = connect(peers, broker.port, V311)
    pub = connect(peers, broker.port)
    sub.subscribe("ok")
    sock = raw_connect(broker.port)
    sock.sendall(garbage)
    assert closed_by_peer(sock)
    pub.publish("ok", b"still fine")
    assert sub.get().payload == b"still fine"


@pytest.mark.parametrize(
    "first",
    [
        b"GET / HTTP/1.1\r\nHost: localhost:1883\r\nUser-Agent: curl/8.5\r\nAccept: */*\r\n\r\n",
        b"\x10\x10\x00\x04MQTT\x05\x02\x00\x3c\x02\x7f\x00\x00\x01a",  # unknown v5 property
        b"\x10\x0c\x00\x04MQTT\x04\x03\x00\x3c\x00\x00",  # reserved CONNECT flag
    ],
)
def test_garbage_instead_of_connect_is_closed(broker: DevBroker, first: bytes) -> None:
    sock = socket.create_connection(("127.0.0.1", broker.port), timeout=WAIT)
    sock.sendall(first)
    assert closed_by_peer(sock)


def test_unsupported_protocol_level_is_refused(broker: DevBroker) -> None:
    with socket.create_connection(("127.0.0.1", broker.port), timeout=WAIT) as sock:
        sock.sendall(b"\x10\x0c\x00\x04MQTT\x07\x02\x00\x3c\x00\x00")
        assert sock.recv(4) == b"\x20\x02\x00\x01"


def test_keepalive_timeout_closes_and_publishes_the_will(
    broker: DevBroker, peers: list[Peer]
) -> None:
    watcher = connect(peers, broker.port)
    watcher.subscribe("wills/#")
    body = b"\x00\x04MQTT\x04\x06\x00\x01\x00\x04mute\x00\x0awills/mute\x00\x03bye"
    sock = socket.create_connection(("127.0.0.1", broker.port), timeout=WAIT)
    sock.sendall(bytes([0x10, len(body)]) + body)
    assert sock.recv(4) == b"\x20\x02\x00\x00"
    assert closed_by_peer(sock)  # silent for more than 1.5 × 1 s
    assert watcher.get().payload == b"bye"


def test_slow_subscriber_loses_messages_without_stalling_others() -> None:
    with BrokerThread(queue_size=4) as broker:
        stalled = socket.socket()
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stalled.connect(("127.0.0.1", broker.port))
        stalled.settimeout(WAIT)
        stalled.sendall(b"\x10\x0f\x00\x04MQTT\x04\x02\x00\x3c\x00\x03raw")
        assert stalled.recv(4) == b"\x20\x02\x00\x00"
        stalled.sendall(b"\x82\x06\x00\x01\x00\x01#\x00")  # subscribe to everything
        assert stalled.recv(5) == b"\x90\x03\x00\x01\x00"
        fast, pub = Peer(broker.port).start(), Peer(broker.port).start()
        fast.subscribe("bulk", 1)
        for n in range(200):
            pub.publish("bulk", n.to_bytes(2, "big") * 16384)
        assert [int.from_bytes(fast.get().payload[:2], "big") for _ in range(200)] == list(
            range(200)
        )
        assert broker.dropped > 0
        for peer in (fast, pub):
            peer.stop()
        stalled.close()


def test_varint_round_trip_boundaries() -> None:
    for n, wire in [
        (0, b"\x00"),
        (127, b"\x7f"),
        (128, b"\x80\x01"),
        (268435455, b"\xff" * 3 + b"\x7f"),
    ]:
        assert encode_varint(n) == wire


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64), st.integers(0, 15), st.sampled_from([4, 5]))
def test_decoders_only_raise_malformed_packet(body: bytes, flags: int, version: int) -> None:
    for decode in (
        lambda: decode_connect(body),
        lambda: decode_publish(flags, body, version, 0.0),
        lambda: decode_subscribe(body, version),
        lambda: decode_unsubscribe(body, version),
    ):
        with contextlib.suppress(MalformedPacket):
            decode()


def test_v5_disconnect_with_will_message_publishes_the_will(
    broker: DevBroker, peers: list[Peer]
) -> None:
    watcher = connect(peers, broker.port)
    watcher.subscribe("wills/#")
    leaving = Peer(broker.port, V5, "leaving", topic="wills/leaving", payload=b"gone").start()
    leaving.client.disconnect(ReasonCode(PacketTypes.DISCONNECT, "Disconnect with will message"))
    leaving.client.loop_stop()
    assert watcher.get().payload == b"gone"


def test_stop_disconnects_connected_clients() -> None:
    with BrokerThread() as broker:
        sock = raw_connect(broker.port)
        sock.sendall(b"\x82\x06\x00\x01\x00\x01#\x00")
        assert sock.recv(5) == b"\x90\x03\x00\x01\x00"
    assert closed_by_peer(sock)
