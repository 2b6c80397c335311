"""A private Mosquitto for tests, and a paho v5 subscriber that keeps message properties.

Each `Mosquitto` runs its own broker process on a free port of 127.0.0.1 with a config
written in a temporary folder: it never touches the system broker on 1883.  `stop()` and
`start()` restart it on the same port (a broker outage); `kill()` is a crash.  Later
suites (TLS, ACLs, faults) add config lines through `extra_config`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from paho.mqtt.client import Client, MQTTMessage
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.subscribeoptions import SubscribeOptions

from gateway.deliver.mqtt import MqttLink

STARTUP_TIMEOUT_S = 10.0


def find_mosquitto() -> Path | None:
    """The mosquitto binary: on PATH, else /usr/sbin (where Debian puts it)."""
    found = shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin")
    return Path(found) if found else None


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


class Mosquitto:
    """One private broker process; `host` and `port` are where clients connect."""

    host = "127.0.0.1"

    def __init__(self, binary: Path, workdir: Path, extra_config: Iterable[str] = ()) -> None:
        self.binary = binary
        self.workdir = workdir
        self.port = free_port(self.host)
        self.extra_config = tuple(extra_config)
        self.config_file = workdir / "mosquitto.conf"
        self.log_file = workdir / "mosquitto.log"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> None:
        """Start (or restart) on the same port; returns once the port accepts."""
        if self.running:
            return
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config_file.write_text("\n".join(self._config_lines()) + "\n")
        with self.log_file.open("ab") as log:
            self._proc = subprocess.Popen(
                [str(self.binary), "-c", str(self.config_file)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        self._wait_ready()

    def stop(self) -> None:
        """A clean shutdown (SIGTERM), waited for."""
        self._end(kill=False)

    def kill(self) -> None:
        """A crash (SIGKILL), waited for."""
        self._end(kill=True)

    def log(self) -> str:
        return self.log_file.read_text(errors="replace") if self.log_file.exists() else ""

    def _config_lines(self) -> list[str]:
        # Mosquitto refuses `per_listener_settings` after any security setting: it goes first
        first = [line for line in self.extra_config if line.startswith("per_listener_settings")]
        extra = [line for line in self.extra_config if line not in first]
        lines = [
            *first,
            f"listener {self.port} {self.host}",
            "allow_anonymous true",
            "persistence false",
            "log_dest stdout",
            "log_type error",
            "log_type warning",
            "log_type notice",
        ]
        if os.geteuid() == 0:
            lines.append("user root")  # else mosquitto drops to a user that may not exist
        return [*lines, *extra]

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            if not self.running:
                raise RuntimeError(f"mosquitto exited at startup:\n{self.log()}")
            with contextlib.suppress(OSError), socket.create_connection((self.host, self.port), 1):
                return
            time.sleep(0.01)
        self.kill()
        raise RuntimeError(f"mosquitto did not listen on {self.port}:\n{self.log()}")

    def _end(self, kill: bool) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        if kill:
            proc.kill()
        else:
            proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@dataclass(frozen=True, slots=True)
class Received:
    """A message as the subscriber got it, with the v5 properties tests assert on."""

    topic: str
    payload: bytes
    qos: int
    retain: bool
    expiry_s: int | None
    properties: dict[str, Any] = field(default_factory=dict)


class Endpoint(Protocol):
    """Where a broker listens (a `Mosquitto`, or any other on this machine)."""

    @property
    def host(self) -> str: ...

    @property
    def port(self) -> int: ...


@dataclass(frozen=True, slots=True)
class BrokerAt:
    """A broker already running on 127.0.0.1:`port` (the benchmarks' own)."""

    port: int
    host: str = "127.0.0.1"


class Subscriber:
    """A paho v5 client on its own network thread that records every message it gets."""

    def __init__(self, broker: Endpoint, client_id: str = "test-subscriber") -> None:
        self.broker = broker
        self.messages: list[Received] = []
        self._cond = threading.Condition()
        self._client = Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, protocol=MQTTProtocolVersion.MQTTv5
        )
        self._client.on_message = self._on_message
        self._client.on_subscribe = self._on_subscribe
        self._client.on_connect = self._on_connect
        self._client.reconnect_delay_set(0.05, 0.2)  # type: ignore[arg-type]
        self._wanted: list[tuple[str, SubscribeOptions]] = []
        self._subacks = 0

    def start(self, *filters: str, qos: int = 1) -> Subscriber:
        """Connect and subscribe (again after each reconnect, e.g. a broker restart);
        returns once the broker acknowledged the subscription."""
        self._wanted = [(f, SubscribeOptions(qos=qos)) for f in filters]
        self._client.connect(self.broker.host, self.broker.port)
        self._client.loop_start()
        self.wait_subscribed(1)
        return self

    def wait_subscribed(self, count: int, timeout: float = 5.0) -> None:
        """Until the broker acknowledged the subscription `count` times (once per connection)."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._subacks >= count, timeout=timeout):
                raise TimeoutError(f"no SUBACK #{count} for {self._wanted}")

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> None:
        """Publish as another client would (an app, the back office); waits for the PUBACK."""
        self._client.publish(topic, payload, qos, retain).wait_for_publish(5)

    def stop(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def wait(self, count: int, timeout: float = 5.0) -> list[Received]:
        """At least `count` messages (all received so far), or TimeoutError."""
        with self._cond:
            if not self._cond.wait_for(lambda: len(self.messages) >= count, timeout=timeout):
                got = [m.topic for m in self.messages]
                raise TimeoutError(f"wanted {count} messages within {timeout} s, got {got}")
            return list(self.messages)

    def _on_connect(self, client: Client, _u: Any, _f: Any, _code: Any, _p: Any) -> None:
        client.subscribe(self._wanted)

    def _on_subscribe(self, _c: Client, _u: Any, _mid: int, _codes: Any, _p: Any) -> None:
        with self._cond:
            self._subacks += 1
            self._cond.notify_all()

    def _on_message(self, _c: Client, _u: Any, message: MQTTMessage) -> None:
        props: dict[str, Any] = {}
        if message.properties is not None:
            props = message.properties.json()  # type: ignore[no-untyped-call]
        received = Received(
            topic=message.topic,
            payload=bytes(message.payload),
            qos=message.qos,
            retain=bool(message.retain),
            expiry_s=props.get("MessageExpiryInterval"),
            properties=props,
        )
        with self._cond:
            self.messages.append(received)
            self._cond.notify_all()


async def noticed_down(link: MqttLink, timeout: float = 10.0) -> None:
    """Wait until `link` has seen its broker go (after `Mosquitto.stop` or `kill`)."""
    async with asyncio.timeout(timeout):
        while link.connected:
            await asyncio.sleep(0.01)
