"""A tiny embedded MQTT 5 / 3.1.1 broker, so `rayon demo` runs offline without Mosquitto.

For the demo only: no persistence, authentication, TLS, shared subscriptions, topic aliases or
will delay; credentials are accepted and ignored.  The packet codec (pure functions over bytes)
comes first, then the per-connection session, then the broker that routes between sessions.
Malformed input closes the offending connection only; a slow subscriber loses messages from its
own bounded queue (counted in `DevBroker.dropped`) instead of stalling everyone else.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
from dataclasses import dataclass, replace
from enum import IntEnum
from types import TracebackType

from gateway.clock import Clock, SystemClock

log = logging.getLogger(__name__)

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
_FIXED_FLAGS = {4: 0, 5: 0, 6: 2, 7: 0, 8: 2, 10: 2, 12: 0, 14: 0}
_PROTOCOLS = {("MQTT", 5): 5, ("MQTT", 4): 4, ("MQIsdp", 3): 4}


# --- Packet codec: pure functions over bytes ----------------------------------------------------


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


def _pid(body: bytes) -> bytes:
    if len(body) < 2:
        raise MalformedPacket("packet identifier missing")
    return body[:2]


def _refusal(topic_filter: str, version: int) -> int:
    if version != 5:
        return 0x80
    shared = topic_filter.startswith("$share/")
    return Reason.SHARED_SUBSCRIPTIONS_NOT_SUPPORTED if shared else Reason.TOPIC_FILTER_INVALID


def _u16(n: int) -> bytes:
    return n.to_bytes(2, "big")


def _str(text: str) -> bytes:
    raw = text.encode("utf-8")
    return _u16(len(raw)) + raw


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
    head = _str(msg.topic) + (_u16(pid) if qos else b"")
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


async def read_packet(reader: asyncio.StreamReader, limit: int) -> tuple[int, bytes]:
    """Read one packet: (fixed header byte, body). Raises MalformedPacket past `limit` bytes."""
    header, length = (await reader.readexactly(1))[0], 0
    for shift in range(0, 28, 7):
        byte = (await reader.readexactly(1))[0]
        length |= (byte & 0x7F) << shift
        if not byte & 0x80:
            break
    else:
        raise MalformedPacket("remaining length longer than 4 bytes")
    if length > limit:
        raise MalformedPacket(f"packet of {length} bytes exceeds the {limit}-byte limit")
    return header, await reader.readexactly(length)


# --- Sessions and routing --------------------------------------------------------------------


async def _close(writer: asyncio.StreamWriter) -> None:
    """Close gracefully (flushing a refusal or farewell), or abort a peer that stopped reading."""
    writer.close()
    try:
        async with asyncio.timeout(1):
            await writer.wait_closed()
    except (TimeoutError, ConnectionError):
        pass
    finally:
        writer.transport.abort()  # a no-op once closed; drops a peer that stopped reading


class _Session:
    """One connected client: its subscriptions and its bounded send queue."""

    def __init__(self, conn: Connect, writer: asyncio.StreamWriter, queue_size: int) -> None:
        self.conn, self.writer = conn, writer
        self.subs: dict[str, Subscription] = {}
        self.queue: asyncio.Queue[bytes] = asyncio.Queue(queue_size)
        self.qos2_received: set[int] = set()
        self.clean_exit = False
        self._pids = itertools.cycle(range(1, 65536))

    def match(self, topic: str) -> Subscription | None:
        """The highest-QoS subscription matching `topic` (one delivery per client)."""
        found = [sub for f, sub in self.subs.items() if topic_matches(f, topic)]
        return max(found, key=lambda sub: sub.qos, default=None)

    def deliver(self, msg: Message, sub: Subscription, retain: bool, now: float) -> bool:
        """Queue `msg` without waiting; False if it was dropped (queue full or too big)."""
        qos = min(msg.qos, sub.qos)
        packet = encode_publish(msg, qos, retain, next(self._pids) if qos else 0, self.v, now)
        if packet is None:
            return True  # expired in flight: dropping it is the contract, not a loss
        if self.conn.max_packet is not None and len(packet) > self.conn.max_packet:
            return False
        try:
            self.queue.put_nowait(packet)
        except asyncio.QueueFull:
            return False
        return True

    @property
    def v(self) -> int:
        return self.conn.version

    async def send(self, kind: PacketType, body: bytes, flags: int = 0) -> None:
        """Queue a control packet, waiting for room (only this client's reader waits)."""
        await self.queue.put(encode_packet(kind, body, flags))

    async def pump(self) -> None:
        """Write queued packets to the socket until cancelled or the peer goes away."""
        try:
            while True:
                self.writer.write(await self.queue.get())
                await self.writer.drain()
        except ConnectionError:
            self.writer.transport.abort()


class DevBroker:
    """An in-process MQTT broker for the offline demo (`async with DevBroker() as b:`)."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        clock: Clock | None = None,
        queue_size: int = 1000,
        max_packet_size: int = 1 << 20,
    ) -> None:
        self.host, self._port = host, port
        self._clock: Clock = clock or SystemClock()
        self._queue_size, self._max_packet = queue_size, max_packet_size
        self._sessions: dict[str, _Session] = {}
        self._retained: dict[str, Message] = {}
        self._tasks: dict[asyncio.Task[None], asyncio.StreamWriter] = {}
        self._server: asyncio.Server | None = None
        self._ids = itertools.count(1)
        self._dropped = 0

    @property
    def port(self) -> int:
        """The bound port (the real one once started, when 0 was asked)."""
        return self._port

    @property
    def dropped(self) -> int:
        """Deliveries dropped because a subscriber's send queue was full."""
        return self._dropped

    @property
    def client_ids(self) -> frozenset[str]:
        """Client ids of the connected clients."""
        return frozenset(self._sessions)

    async def start(self) -> None:
        """Bind and start accepting clients."""
        self._server = await asyncio.start_server(self._accept, self.host, self._port)
        self._port = self._server.sockets[0].getsockname()[1]
        log.info("dev MQTT broker listening on %s:%d", self.host, self._port)

    async def stop(self) -> None:
        """Disconnect every client and stop listening (wills are not published)."""
        if self._server is None:
            return
        server, self._server = self._server, None
        server.close()
        tasks = dict(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for writer in tasks.values():  # a task cancelled before its first step never closed it
            writer.transport.abort()
        await server.wait_closed()
        await asyncio.sleep(0)  # let aborted transports finish closing their sockets

    async def __aenter__(self) -> DevBroker:
        await self.start()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.create_task(self._connection(reader, writer), name="devbroker-client")
        self._tasks[task] = writer
        task.add_done_callback(lambda done: self._tasks.pop(done, None))

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        try:
            async with asyncio.timeout(10):
                header, body = await read_packet(reader, self._max_packet)
            if header != PacketType.CONNECT << 4:
                raise MalformedPacket(f"first packet is type {header >> 4}, not CONNECT")
            await self._session(decode_connect(body), reader, writer)
        except ConnectRefused as exc:
            writer.write(encode_packet(PacketType.CONNACK, bytes([0, exc.code])))
            log.warning("dev broker: refused %s: %s", peer, exc)
        except (MalformedPacket, TimeoutError, ConnectionError, asyncio.IncompleteReadError) as e:
            log.warning("dev broker: closing %s before CONNECT completed: %r", peer, e)
        except Exception:  # a broker bug must cost one client, never the broker
            log.exception("dev broker: internal error serving %s", peer)
        finally:
            await _close(writer)

    async def _session(
        self, conn: Connect, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        assigned = not conn.client_id
        if assigned:
            conn = replace(conn, client_id=f"devbroker-{next(self._ids)}")
        session = _Session(conn, writer, self._queue_size)
        if (old := self._sessions.get(conn.client_id)) is not None:
            old.writer.transport.abort()
        self._sessions[conn.client_id] = session
        pump = asyncio.create_task(session.pump(), name=f"devbroker-pump-{conn.client_id}")
        try:
            await session.send(PacketType.CONNACK, self._connack(conn, assigned))
            await self._serve(session, reader)
        finally:
            if self._sessions.get(conn.client_id) is session:
                del self._sessions[conn.client_id]
            pump.cancel()
            await asyncio.gather(pump, return_exceptions=True)
            if conn.will is not None and not session.clean_exit and self._server is not None:
                self._route(replace(conn.will, received_at=self._clock.now()), None)

    def _connack(self, conn: Connect, assigned: bool) -> bytes:
        if conn.version != 5:
            return b"\x00\x00"
        props: Props = ((0x29, b"\x00"), (0x2A, b"\x00"))  # no sub ids, no shared subs
        props += ((MAX_PACKET, self._max_packet.to_bytes(4, "big")),)
        if assigned:
            props += ((ASSIGNED_CLIENT_ID, _str(conn.client_id)),)
        return b"\x00\x00" + encode_properties(props)

    async def _serve(self, session: _Session, reader: asyncio.StreamReader) -> None:
        """Read and handle packets until DISCONNECT, EOF, timeout or a malformed packet."""
        patience = session.conn.keepalive * 1.5 or None
        try:
            while not session.clean_exit:
                async with asyncio.timeout(patience):
                    header, body = await read_packet(reader, self._max_packet)
                await self._handle(session, header >> 4, header & 0x0F, body)
        except MalformedPacket as exc:
            log.warning("dev broker: malformed packet from %s: %s", session.conn.client_id, exc)
        except TimeoutError:
            log.warning("dev broker: keepalive timeout for %s", session.conn.client_id)
        except (ConnectionError, asyncio.IncompleteReadError):
            log.info("dev broker: %s went away without DISCONNECT", session.conn.client_id)

    async def _handle(self, s: _Session, kind: int, flags: int, body: bytes) -> None:
        if kind == PacketType.PUBLISH:
            await self._on_publish(s, flags, body)
        elif _FIXED_FLAGS.get(kind) != flags:
            raise MalformedPacket(f"unexpected packet type {kind} with flags 0x{flags:x}")
        elif kind == PacketType.SUBSCRIBE:
            await self._on_subscribe(s, body)
        elif kind == PacketType.UNSUBSCRIBE:
            await self._on_unsubscribe(s, body)
        elif kind == PacketType.PINGREQ:
            await s.send(PacketType.PINGRESP, b"")
        elif kind == PacketType.PUBREL:
            s.qos2_received.discard(int.from_bytes(_pid(body), "big"))
            await s.send(PacketType.PUBCOMP, _pid(body))
        elif kind == PacketType.PUBREC:  # our QoS 2 delivery: release it
            await s.send(PacketType.PUBREL, _pid(body), 2)
        elif kind == PacketType.DISCONNECT:
            s.clean_exit = body[:1] != bytes([Reason.DISCONNECT_WITH_WILL])
        # PUBACK and PUBCOMP end our deliveries: nothing is kept in flight, nothing to do.

    async def _on_publish(self, s: _Session, flags: int, body: bytes) -> None:
        msg, pid = decode_publish(flags, body, s.v, self._clock.now())
        if msg.qos < 2 or pid not in s.qos2_received:  # a resent QoS 2 is routed once
            self._route(msg, s)
        if msg.qos == 1:
            await s.send(PacketType.PUBACK, _u16(pid))
        elif msg.qos == 2:
            s.qos2_received.add(pid)
            await s.send(PacketType.PUBREC, _u16(pid))

    def _route(self, msg: Message, origin: _Session | None) -> None:
        now = self._clock.now()
        if msg.retain and msg.payload:
            self._retained[msg.topic] = msg
        elif msg.retain:
            self._retained.pop(msg.topic, None)
        for session in list(self._sessions.values()):
            sub = session.match(msg.topic)
            if sub is None or (sub.no_local and session is origin):
                continue
            self._count(session.deliver(msg, sub, msg.retain and sub.retain_as_published, now))

    def _count(self, delivered: bool) -> None:
        if not delivered:
            self._dropped += 1
            log.warning("dev broker: subscriber too slow, dropped a message (%d)", self._dropped)

    async def _on_subscribe(self, s: _Session, body: bytes) -> None:
        pid, requests = decode_subscribe(body, s.v)
        codes, backlog = bytearray(), []
        for topic_filter, sub in requests:
            if topic_filter.startswith("$share/") or not valid_topic_filter(topic_filter):
                codes.append(_refusal(topic_filter, s.v))
                continue
            is_new = topic_filter not in s.subs
            s.subs[topic_filter] = sub
            codes.append(sub.qos)
            if sub.retain_handling == 0 or (sub.retain_handling == 1 and is_new):
                backlog += [(msg, sub) for msg in self._retained_for(topic_filter)]
        await s.send(PacketType.SUBACK, _u16(pid) + (b"\x00" if s.v == 5 else b"") + codes)
        for msg, sub in backlog:
            self._count(s.deliver(msg, sub, True, self._clock.now()))

    def _retained_for(self, topic_filter: str) -> list[Message]:
        now = self._clock.now()
        for topic, msg in list(self._retained.items()):
            left = msg.remaining(now)
            if left is not None and left <= 0:
                del self._retained[topic]
        return [m for t, m in self._retained.items() if topic_matches(topic_filter, t)]

    async def _on_unsubscribe(self, s: _Session, body: bytes) -> None:
        pid, filters = decode_unsubscribe(body, s.v)
        codes = bytes(
            Reason.SUCCESS if s.subs.pop(f, None) else Reason.NO_SUBSCRIPTION_EXISTED
            for f in filters
        )
        await s.send(PacketType.UNSUBACK, _u16(pid) + (b"\x00" + codes if s.v == 5 else b""))
