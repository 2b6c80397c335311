"""paho's sockets driven by the asyncio loop, the aiomqtt way (see `gateway.deliver.mqtt`).

`SocketBridge` registers each paho socket with the loop's selector (`add_reader` /
`add_writer`) and runs a one-second `loop_misc` task for it, so every paho callback runs on
the loop thread.  The blocking TCP/TLS connect runs in a worker thread; the socket callbacks
it fires are handed to the loop with `call_soon_threadsafe`.

`ExpiryProperties` hands out the v5 PUBLISH properties of each message expiry interval, built
and packed once: paho rebuilds and re-packs a `Properties` by scanning all 27 property names
with string operations, which was a fifth of the outbox's publish cost.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Callable
from typing import Any

from paho.mqtt.client import Client
from paho.mqtt.enums import MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from gateway.config.model import TlsConfig
from gateway.deliver.mqtterrors import LinkError


class SocketBridge:
    """The sockets of the paho clients of one link, on the running loop.

    `is_current(client)` says whether a client is still the one the link uses: a connect
    that lands after the link gave up on it has its connection cut at once.
    """

    def __init__(self, is_current: Callable[[Client], bool]) -> None:
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._is_current = is_current
        self._misc: dict[int, asyncio.Task[None]] = {}

    def wire(self, client: Client) -> None:
        """Route the socket events of `client` to the loop's selector."""
        client.on_socket_open = self._on_socket_open
        client.on_socket_close = self._on_socket_close
        client.on_socket_register_write = self._on_register_write
        client.on_socket_unregister_write = self._on_unregister_write

    def _soon(self, callback: Callable[..., None], *args: Any) -> None:
        if threading.get_ident() == self._loop_thread:
            callback(*args)
        else:
            self._loop.call_soon_threadsafe(callback, *args)

    def _on_socket_open(self, client: Client, _u: Any, sock: Any) -> None:
        no_delay(sock)
        self._soon(self._attach, client, sock.fileno())

    def _on_socket_close(self, _c: Client, _u: Any, sock: Any) -> None:
        self._soon(self._detach, sock.fileno())

    def _on_register_write(self, client: Client, _u: Any, sock: Any) -> None:
        self._soon(self._loop.add_writer, sock.fileno(), client.loop_write)

    def _on_unregister_write(self, _c: Client, _u: Any, sock: Any) -> None:
        self._soon(self._unwrite, sock.fileno())

    def _attach(self, client: Client, fd: int) -> None:
        self._loop.add_reader(fd, _read, client)
        if not self._is_current(client):  # a connect that finished after we gave up on it
            shutdown(client)
        self._misc[fd] = self._loop.create_task(_misc_loop(client), name=f"mqtt-misc-{fd}")

    def _unwrite(self, fd: int) -> None:
        self._loop.remove_writer(fd)

    def _detach(self, fd: int) -> None:
        self._loop.remove_reader(fd)
        self._loop.remove_writer(fd)
        task = self._misc.pop(fd, None)
        if task is not None:
            task.cancel()


class _PackedProperties(Properties):
    """PUBLISH properties with only a message expiry interval, packed once.

    Shared by every message with the same interval, so never changed after `__init__`;
    paho only reads them (`pack`), and a fresh client per connection never resends them.
    """

    def __init__(self, expiry_s: int) -> None:
        super().__init__(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
        self.MessageExpiryInterval = expiry_s
        object.__setattr__(self, "_packed", super().pack())  # type: ignore[no-untyped-call]

    def pack(self) -> bytes:
        packed: bytes = object.__getattribute__(self, "_packed")
        return packed


class ExpiryProperties:
    """The PUBLISH properties of each expiry interval (seconds), built on first use.

    Offers expire within hours, so the intervals in use are a few thousand at most;
    past `limit` the cache starts over rather than grow.
    """

    def __init__(self, limit: int = 20_000) -> None:
        self._limit = limit
        self._cache: dict[int, Properties] = {}

    def get(self, expiry_s: int) -> Properties:
        """Properties carrying `expiry_s` (≥ 1) as the message expiry interval."""
        found = self._cache.get(expiry_s)
        if found is None:
            if len(self._cache) >= self._limit:
                self._cache.clear()
            found = self._cache[expiry_s] = _PackedProperties(expiry_s)
        return found


def _read(client: Client) -> None:
    """Read what arrived; a TLS socket may hold decrypted bytes the selector cannot see."""
    client.loop_read()
    sock = client.socket()
    quick_ack(sock)
    while sock is not None and getattr(sock, "pending", lambda: 0)() > 0:
        client.loop_read()
        sock = client.socket()


async def _misc_loop(client: Client) -> None:
    """Keepalive pings and the dead-peer check, once a second."""
    while client.loop_misc() == MQTTErrorCode.MQTT_ERR_SUCCESS:
        await asyncio.sleep(1.0)


def no_delay(sock: Any) -> None:
    """Send each MQTT packet at once (TCP_NODELAY), as paho does not.

    With Nagle's algorithm on, a PUBLISH written while an earlier one is unacknowledged
    waits for the peer's (delayed) TCP ACK: QoS 1 publishes then crawl, and an offer's
    PUBACK can come tens of milliseconds late.
    """
    if isinstance(sock, socket.socket) and sock.family in (socket.AF_INET, socket.AF_INET6):
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def quick_ack(sock: Any) -> None:
    """Acknowledge what we just read at once (Linux TCP_QUICKACK, re-armed after each read).

    Mosquitto keeps Nagle's algorithm on by default (`set_tcp_nodelay false`): it holds each
    small PUBACK until the previous one is acknowledged, and our delayed ACK then paces QoS 1
    publishes at a few thousand a second.  Elsewhere this does nothing.
    """
    option = getattr(socket, "TCP_QUICKACK", None)
    if option is not None and isinstance(sock, socket.socket):
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, option, 1)


def shutdown(client: Client) -> None:
    """Cut the TCP connection under paho's feet; paho sees EOF and reports the loss."""
    sock = client.socket()
    if isinstance(sock, socket.socket):  # ssl.SSLSocket included
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


def set_tls(client: Client, tls: TlsConfig) -> None:
    """Load the CA, client certificate and key of `tls` into `client`; LinkError if not."""
    files = [str(p) if p is not None else None for p in (tls.ca_file, tls.cert_file, tls.key_file)]
    try:
        client.tls_set(ca_certs=files[0], certfile=files[1], keyfile=files[2])
    except (OSError, ValueError) as exc:
        raise LinkError(
            f"cannot load the TLS files {[f for f in files if f]}: {exc}; check mqtt.tls in "
            "config.yaml (PEM files readable by the rayon user)"
        ) from exc
