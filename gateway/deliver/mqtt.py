"""`MqttLink`: one MQTT v5 connection (paho 2.x) bridged into asyncio, the aiomqtt way.

paho's socket is driven by the asyncio loop (`add_reader` / `add_writer` and a one-second
`loop_misc` task: `mqttio.SocketBridge`), so every paho callback runs on the loop thread and
does nothing but settle a future or fill a queue.  Only the blocking TCP/TLS connect runs in a
worker thread; the socket callbacks it fires are handed to the loop with
`call_soon_threadsafe`.

Each connection attempt uses a fresh paho client, so a message that failed on a dead
connection is never retransmitted behind the caller's back: the outbox decides what is
sent again.  A lost connection is re-established with capped, jittered backoff; the
subscriptions are renewed and the birth message (if any) published again.
"""

from __future__ import annotations

import asyncio
import logging
import random
import ssl
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from functools import partial
from types import TracebackType
from typing import Any, NamedTuple, Self

from paho.mqtt.client import Client, ConnectFlags, DisconnectFlags, MQTTMessage
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from gateway.config.model import TlsConfig
from gateway.deliver.mqtterrors import LinkError, Refused
from gateway.deliver.mqttio import ExpiryProperties, SocketBridge, set_tls, shutdown

log = logging.getLogger(__name__)

__all__ = ["Announcement", "Backoff", "Message", "MqttLink"]

_WITH_WILL = ReasonCode(PacketTypes.DISCONNECT, identifier=4)  # "Disconnect with Will Message"

_TLS_HINT = (
    "check mqtt.tls.ca_file (the CA that signed the broker's certificate, which must name "
    "mqtt.host), that mqtt.port is a TLS listener, and the clocks of both machines"
)


@dataclass(frozen=True, slots=True)
class Announcement:
    """A message the broker keeps for us: the will (sent by the broker when we die) or the
    birth (sent by us after every connect).  Retained, QoS 1 unless told otherwise."""

    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = True


@dataclass(frozen=True, slots=True)
class Backoff:
    """Reconnect delays: doubling from `initial` up to `cap`, each drawn in [d/2, d]."""

    initial: float = 0.5
    cap: float = 30.0
    factor: float = 2.0

    def delay(self, attempt: int, rng: random.Random) -> float:
        ceiling = min(self.cap, self.initial * self.factor ** min(attempt, 32))
        return ceiling / 2 + rng.uniform(0.0, ceiling / 2)


class Message(NamedTuple):
    """One inbound message; `retained` is True for a message the broker had kept."""

    topic: str
    payload: bytes
    retained: bool


class MqttLink:
    """An MQTT v5 client connection with reconnect, usable as `async with`.

    `publish` at QoS 1 returns once the broker's PUBACK arrived and raises LinkError when
    the link is down, the connection dropped first, or the broker refused the message.
    `connections` counts the connections made: the outbox publishes its unconfirmed offers
    again after each new one, as a broker that crashed may have lost what it acknowledged.
    Inbound messages of the `subscribe`d filters are read from `messages()`; when the
    reader lags behind `queue_size` messages, new ones are dropped and counted in `dropped`
    (`queue_size=0`: never dropped, for the CRM's consent-bearing records).
    `session_expiry_s` asks for a persistent session (clean start off) kept that long after
    we disconnect; it needs a client id that stays the same across restarts.
    `will` (published by the broker if we vanish) and `birth` (published by us after every
    connect) are typically the offline and online `gateway/status` payloads; `tls` is the
    config's CA / client certificate / key files.
    """

    def __init__(
        self,
        host: str,
        port: int,
        client_id: str,
        *,
        username: str | None = None,
        password: str | None = None,
        tls: TlsConfig | None = None,
        keepalive: int = 30,
        will: Announcement | tuple[str, bytes] | None = None,
        birth: Announcement | tuple[str, bytes] | None = None,
        queue_size: int = 1000,
        backoff: Backoff | None = None,
        timeout: float = 10.0,
        rng: random.Random | None = None,
        session_expiry_s: int | None = None,
    ) -> None:
        self.host, self.port, self.client_id = host, port, client_id
        self._session_expiry_s = session_expiry_s
        self._auth = (username, password)
        self._tls, self._keepalive = tls, keepalive
        self._will, self._birth = _announcement(will), _announcement(birth)
        self._backoff = backoff or Backoff()
        self._timeout = timeout
        self._rng = rng or random.Random()
        self._queue: asyncio.Queue[Message] = asyncio.Queue(queue_size)
        self._subscriptions: dict[str, int] = {}
        self._acks: dict[int, asyncio.Future[Any]] = {}
        self._expiry = ExpiryProperties()
        self._connack: asyncio.Future[ReasonCode] | None = None
        self._client: Client | None = None
        self._connected = asyncio.Event()
        self._lost = asyncio.Event()
        self._supervisor: asyncio.Task[None] | None = None
        self._closing = False
        self.dropped = 0
        self.connections = 0  # connections made so far: a new one means a new broker session

    # --- public API ---------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        """True while connected, subscribed and announced (the birth was acknowledged)."""
        return self._connected.is_set()

    async def wait_connected(self) -> None:
        """Until `connected` (after a reconnect, for instance)."""
        await self._connected.wait()

    async def connect(self) -> None:
        """Connect once (LinkError with a hint when that fails), then keep reconnecting."""
        self._loop = asyncio.get_running_loop()
        self._sockets = SocketBridge(lambda client: client is self._client)
        self._closing = False
        await self._connect_once()
        self._supervisor = asyncio.create_task(self._supervise(), name="mqtt-reconnect")

    async def publish(
        self,
        topic: str,
        payload: bytes,
        qos: int = 0,
        retain: bool = False,
        expiry_s: int | None = None,
    ) -> None:
        """Publish; at QoS ≥ 1 wait for the broker's acknowledgement.

        `expiry_s` sets the MQTT v5 message expiry interval (at least 1 s): the broker
        drops the message, instead of delivering it late, once it has waited that long.
        """
        await self._publish(self._current(), topic, payload, qos, retain, expiry_s)

    async def subscribe(self, filters: Sequence[str], qos: int = 1) -> None:
        """Subscribe now and after every reconnect.  LinkError if the broker refuses, or if
        the link is down (the filters are still renewed at the next reconnect)."""
        for topic_filter in filters:
            self._subscriptions[topic_filter] = qos
        await self._subscribe(self._current(), {f: qos for f in filters})

    async def messages(self) -> AsyncIterator[Message]:
        """Inbound messages, forever (until the task reading them is cancelled)."""
        while True:
            yield await self._queue.get()

    def abort(self) -> None:
        """Drop the connection without DISCONNECT, as a crash would: the broker publishes
        the will, and the link reconnects.  For fault tests and a stuck connection."""
        if self._client is not None:
            shutdown(self._client)

    async def disconnect(self, *, with_will: bool = False) -> None:
        """Say goodbye to the broker and stop reconnecting.  The broker drops the will on a
        clean goodbye; `with_will` (a gateway exiting on an error) asks it to publish the
        will all the same (MQTT v5 reason code 0x04), so a dead gateway never looks alive
        even when it could not say so itself."""
        self._closing = True
        if self._supervisor is not None:
            self._supervisor.cancel()
            await asyncio.gather(self._supervisor, return_exceptions=True)
        client = self._client
        if client is not None and self.connected:
            reason = _WITH_WILL if with_will and self._will is not None else None
            client.disconnect(reasoncode=reason)
            try:
                async with asyncio.timeout(self._timeout):
                    await self._lost.wait()
            except TimeoutError:
                shutdown(client)
        self._client = None
        self._connected.clear()

    async def __aenter__(self) -> Self:
        await self.connect()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.disconnect()

    # --- connecting ---------------------------------------------------------------------

    async def _connect_once(self) -> None:
        client = self._new_client()
        self._client, self._connack = client, self._loop.create_future()
        self._lost.clear()
        try:
            await self._open(client, self._connack)
            if self._subscriptions:
                await self._subscribe(client, dict(self._subscriptions))
            if self._birth is not None:
                b = self._birth
                await self._publish(client, b.topic, b.payload, b.qos, b.retain, None)
        except BaseException:
            self._connected.clear()
            self._client = None  # a connect still running in its thread is cut when it lands
            shutdown(client)
            raise
        self.connections += 1
        self._connected.set()
        log.info("MQTT link up: %s:%s as %s", self.host, self.port, self.client_id)

    async def _open(self, client: Client, connack: asyncio.Future[ReasonCode]) -> None:
        where = f"the MQTT broker at {self.host}:{self.port}"
        connect = partial(
            client.connect, self.host, self.port, self._keepalive, **self._session_args()
        )
        try:
            async with asyncio.timeout(self._timeout):
                await self._loop.run_in_executor(None, connect)
                code = await connack
        except ssl.SSLError as exc:  # an OSError, but the host and port are right
            raise LinkError(f"TLS handshake with {where} failed: {exc}; {_TLS_HINT}") from exc
        except (OSError, TimeoutError, ValueError, LinkError) as exc:
            reason = str(exc) or type(exc).__name__
            raise LinkError(
                f"cannot reach {where}: {reason}; {self._unreachable_hint(exc)}"
            ) from exc
        if code.is_failure:
            raise LinkError(
                f"{where} refused the connection: {code}; check mqtt.username, "
                "mqtt.password_file and the broker's ACL for this client"
            )

    def _session_args(self) -> dict[str, Any]:
        """A persistent session when asked: the broker keeps our subscriptions and queues
        QoS 1 messages (feedback, CRM, transitions) while we restart."""
        if self._session_expiry_s is None:
            return {}
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = self._session_expiry_s
        return {"clean_start": False, "properties": props}

    def _unreachable_hint(self, exc: BaseException) -> str:
        if self._tls is not None and isinstance(exc, LinkError):
            # TLS 1.3: a broker that rejects our certificate hangs up after the handshake
            return (
                "the broker hung up before answering: check that it trusts the client "
                "certificate of mqtt.tls.cert_file and key_file, and that mqtt.port is its "
                "TLS listener"
            )
        return (
            "check mqtt.host and mqtt.port in config.yaml, that the broker runs and that "
            "the network lets you through"
        )

    def _new_client(self) -> Client:
        client = Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            protocol=MQTTProtocolVersion.MQTTv5,
        )
        client.connect_timeout = self._timeout
        if self._auth[0] is not None:
            client.username_pw_set(*self._auth)
        if self._tls is not None:
            set_tls(client, self._tls)
        if self._will is not None:
            w = self._will
            client.will_set(w.topic, w.payload, w.qos, w.retain)
        self._wire(client)
        return client

    async def _supervise(self) -> None:
        while not self._closing:
            await self._lost.wait()
            await self._reconnect()

    async def _reconnect(self) -> None:
        attempt = 0
        while not self._closing:
            delay = self._backoff.delay(attempt, self._rng)
            log.warning("MQTT link to %s:%s down; retrying in %.1f s", self.host, self.port, delay)
            await asyncio.sleep(delay)
            try:
                await self._connect_once()
                return
            except LinkError as exc:
                log.warning("MQTT reconnect failed: %s", exc)
                attempt += 1

    async def _publish(
        self,
        client: Client,
        topic: str,
        payload: bytes,
        qos: int,
        retain: bool,
        expiry_s: int | None,
    ) -> None:
        properties = None
        if expiry_s is not None:  # v5's expiry interval is a four-byte unsigned integer:
            # paho raises struct.error past it, so clamp to [1 s, 2**32 - 1 s]
            properties = self._expiry.get(int(min(max(expiry_s, 1), 0xFFFF_FFFF)))
        info = client.publish(topic, payload, qos, retain, properties)
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            raise LinkError(f"cannot publish on {topic}: {info.rc.name}")
        if qos > 0:
            code = await self._wait_ack(info.mid, f"PUBACK for {topic}")
            if isinstance(code, ReasonCode) and code.is_failure:
                raise Refused(f"the broker refused the message on {topic}: {code}")

    async def _subscribe(self, client: Client, filters: dict[str, int]) -> None:
        wanted = [(f, SubscribeOptions(qos=q)) for f, q in filters.items()]
        rc, mid = client.subscribe(wanted)
        if rc != MQTTErrorCode.MQTT_ERR_SUCCESS or mid is None:
            raise LinkError(f"cannot subscribe to {', '.join(filters)}: {rc.name}")
        codes = await self._wait_ack(mid, "SUBACK")
        refused = [f for f, c in zip(filters, codes, strict=False) if c.is_failure]
        if refused:
            raise Refused(f"the broker refused the subscription to {', '.join(refused)}")

    def _current(self) -> Client:
        if self._client is None or not self.connected:
            raise LinkError(f"not connected to the MQTT broker at {self.host}:{self.port}")
        return self._client

    async def _wait_ack(self, mid: int, what: str) -> Any:
        future: asyncio.Future[Any] = self._loop.create_future()
        self._acks[mid] = future
        try:
            async with asyncio.timeout(self._timeout):
                return await future
        except TimeoutError as exc:
            raise LinkError(f"no {what} from the broker within {self._timeout:g} s") from exc
        finally:
            self._acks.pop(mid, None)

    # --- paho callbacks: they only settle futures and fill the queue ----------------------

    def _wire(self, client: Client) -> None:
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_ack
        client.on_subscribe = self._on_ack
        client.on_message = self._on_message
        self._sockets.wire(client)

    def _on_connect(
        self, client: Client, _u: Any, _f: ConnectFlags, code: ReasonCode, _p: Any
    ) -> None:
        if client is self._client and self._connack is not None and not self._connack.done():
            self._connack.set_result(code)

    def _on_disconnect(
        self, client: Client, _u: Any, _f: DisconnectFlags, code: ReasonCode, _p: Any
    ) -> None:
        if client is not self._client:
            return
        error = LinkError(f"connection to {self.host}:{self.port} lost ({code})")
        if self._connack is not None and not self._connack.done():
            self._connack.set_exception(error)
        for future in self._acks.values():
            if not future.done():
                future.set_exception(error)
        self._connected.clear()
        self._lost.set()

    def _on_ack(self, _c: Client, _u: Any, mid: int, codes: Any, _p: Any) -> None:
        future = self._acks.get(mid)
        if future is not None and not future.done():
            future.set_result(codes)

    def _on_message(self, _c: Client, _u: Any, message: MQTTMessage) -> None:
        try:
            self._queue.put_nowait(Message(message.topic, bytes(message.payload), message.retain))
        except asyncio.QueueFull:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                log.warning("inbound MQTT queue full: %d messages dropped", self.dropped)


def _announcement(value: Announcement | tuple[str, bytes] | None) -> Announcement | None:
    """`(topic, payload)` is shorthand for a retained QoS 1 announcement."""
    if value is None or isinstance(value, Announcement):
        return value
    return Announcement(*value)
