"""A tiny embedded MQTT 5 / 3.1.1 broker, so `rayon demo` runs offline without Mosquitto.

For the demo only: no persistence, authentication, TLS, shared subscriptions, topic aliases or
will delay; credentials are accepted and ignored.  The packet codec (pure functions over bytes)
is `gateway.sim.mqttcodec`; here are the per-connection session and the broker that routes between
sessions.
Malformed input closes the offending connection only; a slow subscriber loses messages from its
own bounded queue (counted in `DevBroker.dropped`) instead of stalling everyone else.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from dataclasses import replace
from types import TracebackType

from gateway.clock import Clock, SystemClock
from gateway.sim.mqttcodec import (
    ASSIGNED_CLIENT_ID,
    FIXED_FLAGS,
    MAX_PACKET,
    Connect,
    ConnectRefused,
    MalformedPacket,
    Message,
    PacketType,
    Props,
    Reason,
    Subscription,
    decode_connect,
    decode_publish,
    decode_subscribe,
    decode_unsubscribe,
    encode_packet,
    encode_properties,
    encode_publish,
    encode_str,
    encode_u16,
    packet_id,
    refusal_code,
    topic_matches,
    valid_topic_filter,
)

log = logging.getLogger(__name__)


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
            props += ((ASSIGNED_CLIENT_ID, encode_str(conn.client_id)),)
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
        elif FIXED_FLAGS.get(kind) != flags:
            raise MalformedPacket(f"unexpected packet type {kind} with flags 0x{flags:x}")
        elif kind == PacketType.SUBSCRIBE:
            await self._on_subscribe(s, body)
        elif kind == PacketType.UNSUBSCRIBE:
            await self._on_unsubscribe(s, body)
        elif kind == PacketType.PINGREQ:
            await s.send(PacketType.PINGRESP, b"")
        elif kind == PacketType.PUBREL:
            s.qos2_received.discard(int.from_bytes(packet_id(body), "big"))
            await s.send(PacketType.PUBCOMP, packet_id(body))
        elif kind == PacketType.PUBREC:  # our QoS 2 delivery: release it
            await s.send(PacketType.PUBREL, packet_id(body), 2)
        elif kind == PacketType.DISCONNECT:
            s.clean_exit = body[:1] != bytes([Reason.DISCONNECT_WITH_WILL])
        # PUBACK and PUBCOMP end our deliveries: nothing is kept in flight, nothing to do.

    async def _on_publish(self, s: _Session, flags: int, body: bytes) -> None:
        msg, pid = decode_publish(flags, body, s.v, self._clock.now())
        if msg.qos < 2 or pid not in s.qos2_received:  # a resent QoS 2 is routed once
            self._route(msg, s)
        if msg.qos == 1:
            await s.send(PacketType.PUBACK, encode_u16(pid))
        elif msg.qos == 2:
            s.qos2_received.add(pid)
            await s.send(PacketType.PUBREC, encode_u16(pid))

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
                codes.append(refusal_code(topic_filter, s.v))
                continue
            is_new = topic_filter not in s.subs
            s.subs[topic_filter] = sub
            codes.append(sub.qos)
            if sub.retain_handling == 0 or (sub.retain_handling == 1 and is_new):
                backlog += [(msg, sub) for msg in self._retained_for(topic_filter)]
        await s.send(PacketType.SUBACK, encode_u16(pid) + (b"\x00" if s.v == 5 else b"") + codes)
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
        await s.send(PacketType.UNSUBACK, encode_u16(pid) + (b"\x00" + codes if s.v == 5 else b""))
