"""The MQTT 5 / 3.1.1 packet codec of the dev broker: pure functions over bytes.

Decoders take a packet's body (after the fixed header) and return typed values (`Connect`,
`Message`, `Subscription`), raising `MalformedPacket` on anything out of the specification, so
the broker closes the offending connection only; encoders build the packets the broker sends.
Topic filters are checked and matched here too.  No IO: `gateway.sim.devbroker` reads the sockets.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from enum import IntEnum
from types import MappingProxyType

Props = tuple[tuple[int, bytes], ...]
"""v5 properties as (identifier, raw encoded value) pairs, in wire order."""


class PacketType(IntEnum):
    """MQTT control packet types (the high nibble of the fixed header)."""

    CONNECT = 1
    CONNACK = 2
    PUBLISH = 3
    PUBACK = 4
    PUBREC = 5
    PUBREL = 6
    PUBCOMP = 7
    SUBSCRIBE = 8
    SUBACK = 9
    UNSUBSCRIBE = 10
    UNSUBACK = 11
    PINGREQ = 12
    PINGRESP = 13
    DISCONNECT = 14


class Reason(IntEnum):
    """The v5 reason codes this broker sends."""

    SUCCESS = 0x00
    DISCONNECT_WITH_WILL = 0x04
    NO_SUBSCRIPTION_EXISTED = 0x11
    TOPIC_FILTER_INVALID = 0x8F
    SHARED_SUBSCRIPTIONS_NOT_SUPPORTED = 0x9E


EXPIRY, ASSIGNED_CLIENT_ID, TOPIC_ALIAS, MAX_PACKET = 0x02, 0x12, 0x23, 0x27
# Value encoding of every v5 property: n>0 fixed bytes, -1 varint, -2 length-prefixed, -3 pair.
_PROP_KINDS = {0x01: 1, 0x02: 4, 0x03: -2, 0x08: -2, 0x09: -2, 0x0B: -1, 0x11: 4, 0x12: -2}
_PROP_KINDS |= {0x13: 2, 0x15: -2, 0x16: -2, 0x17: 1, 0x18: 4, 0x19: 1, 0x1A: -2, 0x1C: -2}
_PROP_KINDS |= {0x1F: -2, 0x21: 2, 0x22: 2, 0x23: 2, 0x24: 1, 0x25: 1, 0x26: -3, 0x27: 4}
_PROP_KINDS |= {0x28: 1, 0x29: 1, 0x2A: 1}
# Payload format, content type, response topic, correlation data, user properties.
_FORWARDED = frozenset({0x01, 0x03, 0x08, 0x09, 0x26})
# The fixed-header flags each packet type a client sends must carry (PUBLISH aside).
FIXED_FLAGS: Mapping[int, int] = MappingProxyType(
    {4: 0, 5: 0, 6: 2, 7: 0, 8: 2, 10: 2, 12: 0, 14: 0}
)
_PROTOCOLS = {("MQTT", 5): 5, ("MQTT", 4): 4, ("MQIsdp", 3): 4}


class MalformedPacket(Exception):
    """A client sent bytes that are not valid MQTT; only that client is disconnected."""


class ConnectRefused(MalformedPacket):
    """A CONNECT the broker answers with a refusal CONNACK (`code`) before closing."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


class _Reader:
    """A cursor over one packet's bytes; every read checks the length first."""

    __slots__ = ("_buf", "pos")

    def __init__(self, buf: bytes) -> None:
        self._buf, self.pos = buf, 0

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self._buf):
            raise MalformedPacket(f"packet truncated at byte {self.pos} (needs {n} more)")
        self.pos += n
        return self._buf[self.pos - n : self.pos]

    def since(self, start: int) -> bytes:
        return self._buf[start : self.pos]

    def u8(self) -> int:
        return self.take(1)[0]

    def u16(self) -> int:
        return int.from_bytes(self.take(2), "big")

    def varint(self) -> int:
        value = 0
        for shift in range(0, 28, 7):
            byte = self.u8()
            value |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return value
        raise MalformedPacket("variable byte integer longer than 4 bytes")

    def binary(self) -> bytes:
        return self.take(self.u16())

    def string(self) -> str:
        try:
            text = self.binary().decode("utf-8")
        except UnicodeDecodeError as exc:
            raise MalformedPacket(f"string before byte {self.pos} is not UTF-8") from exc
        if "\x00" in text:
            raise MalformedPacket(f"string before byte {self.pos} contains U+0000")
        return text

    def rest(self) -> bytes:
        return self.take(len(self._buf) - self.pos)

    @property
    def done(self) -> bool:
        return self.pos >= len(self._buf)


def encode_varint(n: int) -> bytes:
    """Encode a variable byte integer (0 … 268,435,455)."""
    out = bytearray()
    while True:
        n, digit = n >> 7, n & 0x7F
        out.append(digit | (0x80 if n else 0))
        if not n:
            return bytes(out)


def packet_id(body: bytes) -> bytes:
    """The two-byte packet identifier that starts `body`."""
    if len(body) < 2:
        raise MalformedPacket("packet identifier missing")
    return body[:2]


def refusal_code(topic_filter: str, version: int) -> int:
    """The SUBACK code refusing `topic_filter` (shared subscriptions are not supported)."""
    if version != 5:
        return 0x80
    shared = topic_filter.startswith("$share/")
    return Reason.SHARED_SUBSCRIPTIONS_NOT_SUPPORTED if shared else Reason.TOPIC_FILTER_INVALID


def encode_u16(n: int) -> bytes:
    """A two-byte big-endian integer."""
    return n.to_bytes(2, "big")


def encode_str(text: str) -> bytes:
    """A UTF-8 string with its two-byte length prefix."""
    raw = text.encode("utf-8")
    return encode_u16(len(raw)) + raw


def encode_packet(kind: PacketType, body: bytes, flags: int = 0) -> bytes:
    """Frame `body` with the fixed header."""
    return bytes([kind << 4 | flags]) + encode_varint(len(body)) + body


def read_properties(r: _Reader) -> Props:
    """Parse a v5 property block, keeping each raw value so it can be forwarded verbatim."""
    block, props = _Reader(r.take(r.varint())), []
    while not block.done:
        pid = block.varint()
        kind = _PROP_KINDS.get(pid)
        if kind is None:
            raise MalformedPacket(f"unknown v5 property identifier 0x{pid:02x}")
        start = block.pos
        if kind > 0:
            block.take(kind)
        elif kind == -1:
            block.varint()
        else:
            for _ in range(-1 - kind):
                block.binary()
        props.append((pid, block.since(start)))
    return tuple(props)


def encode_properties(props: Props) -> bytes:
    """Encode a v5 property block."""
    body = b"".join(bytes([pid]) + raw for pid, raw in props)
    return encode_varint(len(body)) + body


def _prop_int(props: Props, pid: int) -> int | None:
    return next((int.from_bytes(raw, "big") for p, raw in props if p == pid), None)


def valid_topic_filter(topic_filter: str) -> bool:
    """True if `+` and `#` each fill a whole level and `#` comes last."""
    levels = topic_filter.split("/")
    last = len(levels) - 1
    bad = any(
        ("#" in lv and (lv != "#" or i != last)) or ("+" in lv and lv != "+")
        for i, lv in enumerate(levels)
    )
    return bool(topic_filter) and not bad


def topic_matches(topic_filter: str, topic: str) -> bool:
    """True if `topic` matches `topic_filter`; wildcards never match a first `$` level."""
    if topic.startswith("$") and topic_filter[:1] in ("+", "#"):
        return False
    flevels, tlevels = topic_filter.split("/"), topic.split("/")
    for i, level in enumerate(flevels):
        if level == "#":
            return True
        if i >= len(tlevels) or level not in ("+", tlevels[i]):
            return False
    return len(flevels) == len(tlevels)


@dataclass(frozen=True, slots=True)
class Message:
    """An application message as held by the broker."""

    topic: str
    payload: bytes
    qos: int
    retain: bool
    properties: Props = ()  # forwarded v5 properties, expiry excluded
    expiry: int | None = None  # v5 Message Expiry Interval as received, seconds
    received_at: float = 0.0  # clock time the expiry counts from

    def remaining(self, now: float) -> int | None:
        """Seconds of life left (≤ 0 once expired), or None if it never expires."""
        if self.expiry is None:
            return None
        return math.ceil(self.expiry - (now - self.received_at))


@dataclass(frozen=True, slots=True)
class Subscription:
    """One topic filter's options (v3.1.1 only sets `qos`)."""

    qos: int
    no_local: bool = False
    retain_as_published: bool = False
    retain_handling: int = 0


@dataclass(frozen=True, slots=True)
class Connect:
    """What a CONNECT packet asked for."""

    client_id: str
    version: int
    keepalive: int
    will: Message | None
    max_packet: int | None


def _check_topic_name(topic: str) -> str:
    if not topic or "+" in topic or "#" in topic:
        raise MalformedPacket(f"invalid topic name {topic!r}: must be non-empty, no wildcards")
    return topic


def decode_connect(body: bytes) -> Connect:
    """Parse a CONNECT body; raise ConnectRefused for an unsupported protocol."""
    r = _Reader(body)
    version = _PROTOCOLS.get((r.string(), r.u8()))
    if version is None:
        raise ConnectRefused("unsupported protocol name or level", 0x01)
    flags, keepalive = r.u8(), r.u16()
    if flags & 0x01 or (flags >> 3 & 3) == 3 or (not flags & 0x04 and flags & 0x38):
        raise MalformedPacket(f"invalid CONNECT flags 0x{flags:02x}")
    props = read_properties(r) if version == 5 else ()
    client_id, will = r.string(), None
    if not client_id and version == 4 and not flags & 0x02:
        raise ConnectRefused("an empty client id needs a clean session", 0x02)
    if flags & 0x04:
        wprops = read_properties(r) if version == 5 else ()
        topic, payload = _check_topic_name(r.string()), r.binary()
        kept = tuple(p for p in wprops if p[0] in _FORWARDED)
        will = Message(topic, payload, flags >> 3 & 3, bool(flags & 0x20), kept)
        will = replace(will, expiry=_prop_int(wprops, EXPIRY))
    for present in (flags & 0x80, flags & 0x40):  # username, password: ignored
        if present:
            r.binary()
    if not r.done:
        raise MalformedPacket("trailing bytes after CONNECT payload")
    return Connect(client_id, version, keepalive, will, _prop_int(props, MAX_PACKET))


def decode_publish(flags: int, body: bytes, version: int, now: float) -> tuple[Message, int]:
    """Parse a PUBLISH into the message and its packet id (0 for QoS 0)."""
    qos, r = flags >> 1 & 3, _Reader(body)
    if qos == 3:
        raise MalformedPacket("PUBLISH with QoS 3")
    topic = _check_topic_name(r.string())
    pid = r.u16() if qos else 0
    if qos and not pid:
        raise MalformedPacket("PUBLISH with packet identifier 0")
    props = read_properties(r) if version == 5 else ()
    if _prop_int(props, TOPIC_ALIAS) is not None:
        raise MalformedPacket("topic aliases are not supported (CONNACK allows none)")
    kept = tuple(p for p in props if p[0] in _FORWARDED)
    expiry = _prop_int(props, EXPIRY)
    return Message(topic, r.rest(), qos, bool(flags & 1), kept, expiry, now), pid


def encode_publish(
    msg: Message, qos: int, retain: bool, pid: int, version: int, now: float
) -> bytes | None:
    """Encode `msg` for one subscriber, with the expiry left; None if it has expired."""
    props, left = msg.properties, msg.remaining(now)
    if left is not None:
        if left <= 0:
            return None
        props = ((EXPIRY, left.to_bytes(4, "big")), *props)
    head = encode_str(msg.topic) + (encode_u16(pid) if qos else b"")
    head += encode_properties(props) if version == 5 else b""
    return encode_packet(PacketType.PUBLISH, head + msg.payload, qos << 1 | int(retain))


def decode_subscribe(body: bytes, version: int) -> tuple[int, list[tuple[str, Subscription]]]:
    """Parse a SUBSCRIBE into its packet id and (filter, options) requests."""
    reserved = 0xC0 if version == 5 else 0xFC
    pid, requests = _filters(body, version, options=True)
    for _, opts in requests:
        if opts & reserved or opts & 3 == 3 or opts >> 4 & 3 == 3:
            raise MalformedPacket(f"invalid subscription options 0x{opts:02x}")
    return pid, [
        (f, Subscription(o & 3, bool(o & 4), bool(o & 8), o >> 4 & 3)) for f, o in requests
    ]


def decode_unsubscribe(body: bytes, version: int) -> tuple[int, list[str]]:
    """Parse an UNSUBSCRIBE into its packet id and topic filters."""
    pid, requests = _filters(body, version, options=False)
    return pid, [topic_filter for topic_filter, _ in requests]


def _filters(body: bytes, version: int, options: bool) -> tuple[int, list[tuple[str, int]]]:
    r = _Reader(body)
    pid, found = r.u16(), []
    if version == 5:
        read_properties(r)
    while not r.done:
        found.append((r.string(), r.u8() if options else 0))
    if not found:
        raise MalformedPacket("(UN)SUBSCRIBE without any topic filter")
    return pid, found
