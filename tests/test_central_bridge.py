"""`rayon bridge render`'s section in a real store Mosquitto, bridged over TLS with the store's
client certificate to a central Mosquitto that takes the certificate's CN as the login
(`use_identity_as_username`) and enforces deploy/central/mosquitto-central.acl verbatim: the
store's batches go up, the centre's answers come down, and a tampered bridge that tries to
write another store's batches gets nothing through."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from paho.mqtt.client import Client, MQTTMessage
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from gateway.central.bridge import render_bridge
from gateway.config.load import load_config
from gateway.topics import ChainLeaf, Topics
from tests.broker import Mosquitto, Subscriber, find_mosquitto, free_port
from tests.stores import ROOT
from tests.test_mqtt_security import issue, new_ca

pytestmark = pytest.mark.mqtt

CENTRAL_ACL = ROOT / "deploy" / "central" / "mosquitto-central.acl"
PARIS, LYON = Topics("rayon", "paris-11"), Topics("rayon", "lyon-2")


class TlsClient:
    """A paho v5 client logged in by its certificate, recording what it receives."""

    def __init__(self, port: int, ca: Path, cert: tuple[Path, Path], *filters: str) -> None:
        self.got: list[tuple[str, bytes]] = []
        self._cond = threading.Condition()
        self._client = Client(CallbackAPIVersion.VERSION2, protocol=MQTTProtocolVersion.MQTTv5)
        self._client.tls_set(ca_certs=str(ca), certfile=str(cert[0]), keyfile=str(cert[1]))
        self._client.on_message = self._on_message
        subscribed = threading.Event()
        self._client.on_subscribe = lambda *_: subscribed.set()
        self._client.connect("127.0.0.1", port)
        self._client.loop_start()
        self._client.subscribe([(f, 1) for f in filters])
        assert subscribed.wait(10)

    def publish(self, topic: str, payload: bytes, retain: bool = False) -> None:
        self._client.publish(topic, payload, 1, retain).wait_for_publish(10)

    def wait(self, count: int, timeout: float = 20.0) -> list[tuple[str, bytes]]:
        with self._cond:
            assert self._cond.wait_for(lambda: len(self.got) >= count, timeout), self.got
            return list(self.got)

    def stop(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def _on_message(self, _c: Client, _u: Any, message: MQTTMessage) -> None:
        with self._cond:
            self.got.append((message.topic, bytes(message.payload)))
            self._cond.notify_all()


def received(sub: Subscriber, topic: str, payload: bytes) -> None:
    """Until `sub` has received `payload` on `topic` (TimeoutError after 20 s)."""
    count = 1
    while True:
        got = sub.wait(count, timeout=20)
        if (topic, payload) in [(m.topic, m.payload) for m in got]:
            return
        count = len(got) + 1


def bridged_store(tmp_path: Path, name: str, section: str) -> Mosquitto:
    binary = find_mosquitto()
    assert binary is not None
    lines = [line for line in section.splitlines() if line and not line.startswith("#")]
    broker = Mosquitto(binary, tmp_path / name, extra_config=lines)
    broker.start()
    return broker


def test_the_rendered_bridge_carries_the_store_and_the_acl_stops_a_tampered_one(
    tmp_path: Path, mosquitto_with: Callable[..., Mosquitto]
) -> None:
    pki = tmp_path / "pki"
    pki.mkdir()
    ca = new_ca(pki, "chain-ca")
    server = issue(
        pki, "chain-ca", "central", "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth"
    )
    store_cert = issue(pki, "chain-ca", "paris-11", "extendedKeyUsage=clientAuth")
    collector_cert = issue(pki, "chain-ca", "rayon-central", "extendedKeyUsage=clientAuth")
    tls_port = free_port()
    mosquitto_with(
        "allow_anonymous false",
        f"acl_file {CENTRAL_ACL}",
        f"listener {tls_port} 127.0.0.1",
        f"cafile {ca}",
        f"certfile {server[0]}",
        f"keyfile {server[1]}",
        "require_certificate true",
        "use_identity_as_username true",
    )
    collector = TlsClient(tls_port, ca, collector_cert, "rayon/+/chain/batch")
    config_file = tmp_path / "config.yaml"
    config_file.write_text(
        "store: {id: paris-11, name: Paris 11, timezone: Europe/Paris}\n"
        f"central: {{enabled: true, bridge: {{host: 127.0.0.1, port: {tls_port}, "
        f"ca_file: {ca}, cert_file: {store_cert[0]}, key_file: {store_cert[1]}}}}}\n",
        encoding="utf-8",
    )
    section = render_bridge(load_config(config_file), restart="1 2")
    store = bridged_store(tmp_path, "store", section)
    # a Pi whose bridge was edited by hand to write lyon-2's batches with paris-11's certificate
    tampered = section.replace("rayon-central-paris-11", "rayon-central-tampered")
    tampered = tampered.replace("rayon-paris-11-bridge", "rayon-tampered-bridge")
    tampered += "topic chain/batch out 1 rayon/lyon-2/ rayon/lyon-2/\n"
    other = bridged_store(tmp_path, "tampered", tampered)
    local = Subscriber(store, client_id="store-app").start(
        "rayon/paris-11/bridge/state", PARIS.chain(ChainLeaf.ACK)
    )
    local_other = Subscriber(other, client_id="tampered-app").start("rayon/paris-11/bridge/state")
    try:
        received(local, "rayon/paris-11/bridge/state", b"1")  # the bridge is up
        received(local_other, "rayon/paris-11/bridge/state", b"1")
        local.publish(PARIS.chain(ChainLeaf.BATCH), b"paris-batch")
        assert collector.wait(1) == [(PARIS.chain(ChainLeaf.BATCH), b"paris-batch")]
        collector.publish(PARIS.chain(ChainLeaf.ACK), b"paris-mark", retain=True)
        received(local, PARIS.chain(ChainLeaf.ACK), b"paris-mark")  # the centre's answer came down
        # the forged batch first, then a legitimate one on the same bridge connection
        local_other.publish(LYON.chain(ChainLeaf.BATCH), b"forged")
        local_other.publish(PARIS.chain(ChainLeaf.BATCH), b"paris-again")
        got = collector.wait(2)
        assert got[1] == (PARIS.chain(ChainLeaf.BATCH), b"paris-again")
        assert all(topic != LYON.chain(ChainLeaf.BATCH) for topic, _ in got)
    finally:
        for client in (local, local_other, collector):
            client.stop()
        store.kill()
        other.kill()
