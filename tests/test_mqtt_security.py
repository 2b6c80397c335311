"""The shipped broker security (deploy/mosquitto/) on a real Mosquitto: the pattern ACL file
verbatim, logins made by `rayon-mqtt`, the shipped mosquitto.conf, TLS and client certificates.

A negative ("app A got nothing") is proven without sleeping: after the forbidden message, a
message A may receive (or that the gateway may receive) is sent on the same path, and once it
has arrived the forbidden one, sent first, would have arrived before it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import os
import queue
import shutil
import subprocess
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
from paho.mqtt.client import Client
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from gateway.config.load import parse_config
from gateway.config.model import Config, LoginConfig, TlsConfig
from gateway.deliver.connect import connect_crm_link, connect_link
from gateway.deliver.mqtt import Message, MqttLink
from gateway.deliver.mqtterrors import LinkError, Refused
from gateway.errors import RuntimeFailure
from gateway.runtime.app import inbound_filters
from gateway.topics import ConsoleLeaf, Topics
from tests.broker import Mosquitto, Subscriber, free_port
from tests.stores import ROOT, reference_store

pytestmark = pytest.mark.mqtt

R = TypeVar("R")
DEPLOY = ROOT / "deploy" / "mosquitto"
ACL = DEPLOY / "acl"
SCRIPT = DEPLOY / "rayon-mqtt"
T = Topics("rayon", "paris-11")
GATEWAY = "rayon-paris-11"
TOKEN_A = "3f9c2a7d1e4b8c6a0d5f2e9b7a1c4d8e"
TOKEN_B = "b41e07c9d2f85a3e6c1b9d0a7f4e2c58"
NODE = "node-tv"
CRM_LOGIN = f"{GATEWAY}-crm"
TOOLS_LOGIN = f"{GATEWAY}-tools"
CONSOLE_LOGIN = f"{GATEWAY}-console"
LOGINS = {
    GATEWAY: "service",
    CRM_LOGIN: "service",
    TOOLS_LOGIN: "service",
    CONSOLE_LOGIN: "service",
    "rayon-backoffice": "service",
    "rayon-signage": "service",
    "rayon-analytics": "service",
    TOKEN_A: "app",
    TOKEN_B: "app",
    NODE: "node",
}
SUCCESS = "Success"
DENIED = "Not authorized"


def tool(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin")
    if found is None:
        pytest.skip(f"{name} is not installed (apt-get install mosquitto openssl); needed here")
    return found


def run(coro: Coroutine[Any, Any, R]) -> R:
    async def bounded() -> R:
        async with asyncio.timeout(30):
            return await coro

    return asyncio.run(bounded())


# --- logins, made with the shipped script --------------------------------------------------------


def rayon_mqtt(passwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "RAYON_MQTT_PASSWD": str(passwd),
        "MOSQUITTO_PASSWD": tool("mosquitto_passwd"),
    }
    return subprocess.run(
        ["sh", str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=30, check=False
    )


@dataclass(frozen=True, slots=True)
class Logins:
    """A password file and the password of each login in it."""

    passwd: Path
    passwords: dict[str, str]


def make_logins(folder: Path, logins: dict[str, str] = LOGINS) -> Logins:
    folder.mkdir(parents=True, exist_ok=True)
    passwd, passwords = folder / "passwd", {}
    for name, kind in logins.items():
        done = rayon_mqtt(passwd, "add", kind, name)
        assert done.returncode == 0, done.stderr
        passwords[name] = done.stdout.strip()
    return Logins(passwd, passwords)


def secured(mosquitto_with: Callable[..., Mosquitto], logins: Logins) -> Mosquitto:
    """A broker with the shipped ACL file, verbatim, and no anonymous access."""
    return mosquitto_with(
        "allow_anonymous false", f"password_file {logins.passwd}", f"acl_file {ACL}"
    )


# --- clients: apps, nodes and services with their own login; the gateway's real link ---------


class App(Subscriber):
    """A client logged in as `login` (an app, a node, the back office …) that records what it
    receives and the reason code of each PUBACK it gets."""

    def __init__(self, broker: Mosquitto, login: str, password: str) -> None:
        super().__init__(broker, client_id=f"{login[:16]}-{uuid.uuid4().hex[:6]}")
        self._client.username_pw_set(login, password)
        self._client.on_publish = self._on_puback
        self.pubacks: dict[int, ReasonCode] = {}

    def send(self, topic: str, payload: bytes = b"{}", retain: bool = False) -> str:
        """Publish at QoS 1; the broker's answer: "Success" when it took the message (also
        when nobody subscribed), else its reason ("Not authorized", "Packet too large" …)."""
        info = self._client.publish(topic, payload, 1, retain)
        info.wait_for_publish(5)
        code = self.pubacks[info.mid]
        return str(code) if code.is_failure else SUCCESS

    def _on_puback(self, _c: Client, _u: Any, mid: int, code: ReasonCode, _p: Any) -> None:
        self.pubacks[mid] = code


def app(broker: Mosquitto, logins: Logins, login: str, *filters: str) -> App:
    client = App(broker, login, logins.passwords[login])
    client.start(*(filters or ["nothing/here"]))
    return client


def connack(broker: Mosquitto, login: str | None, password: str | None, port: int = 0) -> str:
    """The broker's answer to a CONNECT (MQTT v5) with this login, or with none."""
    answers: list[ReasonCode] = []
    client = Client(CallbackAPIVersion.VERSION2, protocol=MQTTProtocolVersion.MQTTv5)
    client.on_connect = lambda _c, _u, _f, code, _p: answers.append(code)
    if login is not None:
        client.username_pw_set(login, password)
    client.connect(broker.host, port or broker.port)
    while not answers and client.loop(timeout=0.5) == 0:
        pass
    client.disconnect()
    return str(answers[0]) if answers else "connection closed without CONNACK"


def gateway_config(
    folder: Path, broker: Mosquitto, password: str, tls: dict[str, str] | None = None, port: int = 0
) -> Config:
    """The reference store logged in as the gateway's login (password in a file)."""
    folder.mkdir(parents=True, exist_ok=True)
    secret = folder / "mqtt.secret"
    secret.write_text(password + "\n", encoding="utf-8")
    mqtt: dict[str, Any] = {"host": broker.host, "port": port or broker.port}
    mqtt |= {"username": GATEWAY, "password_file": str(secret), "topic_prefix": "rayon"}
    if tls is not None:
        mqtt["tls"] = tls
    return parse_config(reference_store(folder, mqtt=mqtt))


async def until(link: MqttLink, topic: str) -> list[tuple[str, bytes]]:
    """Everything the link receives up to and including a message on `topic`."""
    got: list[tuple[str, bytes]] = []
    async for message in link.messages():
        got.append((message.topic, message.payload))
        if message.topic == topic:
            return got
    raise AssertionError("unreachable")


async def sent(client: App, topic: str, payload: bytes = b"{}") -> str:
    return await asyncio.to_thread(client.send, topic, payload)


# --- the ACL ---------------------------------------------------------------------------------


def test_anonymous_clients_and_wrong_passwords_are_refused(
    tmp_path: Path, mosquitto_with: Callable[..., Mosquitto]
) -> None:
    logins = make_logins(tmp_path / "logins")
    broker = secured(mosquitto_with, logins)
    assert connack(broker, None, None) == DENIED
    assert connack(broker, TOKEN_A, "not-the-password") == DENIED
    assert connack(broker, "unknown-login", logins.passwords[TOKEN_A]) == DENIED
    assert connack(broker, TOKEN_A, logins.passwords[TOKEN_A]) == SUCCESS


def test_an_app_reads_only_its_own_offers(
    tmp_path: Path, mosquitto_with: Callable[..., Mosquitto]
) -> None:
    logins = make_logins(tmp_path / "logins")
    broker = secured(mosquitto_with, logins)
    # A asks for B's offers by name and for everything; the broker grants both subscriptions
    # (Mosquitto checks read rights per message delivered, not per filter)
    nosy = app(broker, logins, TOKEN_A, T.offers(TOKEN_B), "rayon/#")
    b = app(broker, logins, TOKEN_B, T.offers(TOKEN_B))
    node = app(broker, logins, NODE)
    backoffice = app(broker, logins, "rayon-backoffice")
    config = gateway_config(tmp_path / "gw", broker, logins.passwords[GATEWAY])

    async def main() -> None:
        link = await connect_link(config)
        try:
            await link.publish(T.offers(TOKEN_B), b'{"id":"for-b"}', qos=1, expiry_s=60)
            await link.publish(T.occupancy("aisle-tv"), b'{"count":3}', qos=1, retain=True)
            await link.publish(T.events(), b'{"kind":"enter"}', qos=1)
            await link.publish(T.status(), b'{"state":"online"}', qos=1, retain=True)
            assert await sent(node, T.scanner_adv(NODE)) == SUCCESS
            assert await sent(backoffice, T.crm_customer("c1"), b'{"id":"c1"}') == SUCCESS
            await link.publish(T.offers(TOKEN_A), b'{"id":"for-a"}', qos=1, expiry_s=60)
        finally:
            await link.disconnect()

    run(main())
    assert [(m.topic, m.payload) for m in nosy.wait(1)] == [(T.offers(TOKEN_A), b'{"id":"for-a"}')]
    assert [(m.topic, m.payload) for m in b.wait(1)] == [(T.offers(TOKEN_B), b'{"id":"for-b"}')]


def test_an_app_writes_only_its_own_feedback_and_reports(
    tmp_path: Path, mosquitto_with: Callable[..., Mosquitto]
) -> None:
    logins = make_logins(tmp_path / "logins")
    broker = secured(mosquitto_with, logins)
    a = app(broker, logins, TOKEN_A)
    config = gateway_config(tmp_path / "gw", broker, logins.passwords[GATEWAY])
    forbidden = [
        T.feedback(TOKEN_B),  # someone else's feedback
        T.phone_sightings(TOKEN_B),  # someone else's position
        T.offers(TOKEN_A),  # an offer it would forge for itself
        T.crm_customer("c1"),  # the back office's job
        T.scanner_adv(NODE),  # a scanner node's job
        T.status(),
        T.occupancy("aisle-tv"),
        T.events(),
    ]
    own = [T.phone_sightings(TOKEN_A), T.phone_transition(TOKEN_A), T.phone_location(TOKEN_A)]
    own.append(T.feedback(TOKEN_A))

    async def main() -> tuple[list[str], list[str], list[tuple[str, bytes]]]:
        link = await connect_link(config)
        try:
            await link.subscribe(inbound_filters(config, T))
            denied = [await sent(a, topic, b"forged") for topic in forbidden]
            allowed = [await sent(a, topic, b"mine") for topic in own]
            return denied, allowed, await until(link, own[-1])
        finally:
            await link.disconnect()

    denied, allowed, received = run(main())
    assert denied == [DENIED] * len(forbidden)  # Mosquitto 2.0 says so in the v5 PUBACK
    assert allowed == [SUCCESS] * len(own)
    assert received == [(topic, b"mine") for topic in own]


def test_a_node_writes_only_its_own_adverts(
    tmp_path: Path, mosquitto_with: Callable[..., Mosquitto]
) -> None:
    logins = make_logins(tmp_path / "logins")
    broker = secured(mosquitto_with, logins)
    node = app(broker, logins, NODE)
    assert node.send(T.scanner_adv("pi-entrance"), b"forged") == DENIED
    assert node.send(T.feedback(TOKEN_A)) == DENIED
    assert node.send(T.phone_sightings(NODE)) == SUCCESS  # a pattern for apps: see the README
    assert node.send(T.scanner_adv(NODE), b"mine") == SUCCESS


def test_the_gateway_gets_every_input_and_services_read_only_their_topics(
    tmp_path: Path, mosquitto_with: Callable[..., Mosquitto]
) -> None:
    logins = make_logins(tmp_path / "logins")
    broker = secured(mosquitto_with, logins)
    signage = app(broker, logins, "rayon-signage", "rayon/#")
    analytics = app(broker, logins, "rayon-analytics", "rayon/#")
    a, node = app(broker, logins, TOKEN_A), app(broker, logins, NODE)
    backoffice = app(broker, logins, "rayon-backoffice")
    config = gateway_config(tmp_path / "gw", broker, logins.passwords[GATEWAY])
    inputs = [
        (backoffice, T.crm_customer("c1")),
        (node, T.scanner_adv(NODE)),
        (a, T.phone_sightings(TOKEN_A)),
        (a, T.feedback(TOKEN_A)),
    ]

    async def main() -> list[tuple[str, bytes]]:
        link = await connect_link(config)
        try:
            await link.subscribe(inbound_filters(config, T))  # Refused if any were denied
            for topic in (T.offers(TOKEN_A), T.events(), T.occupancy("aisle-tv"), T.status()):
                await link.publish(topic, b"out", qos=1)  # Refused if denied
            # `rayon forget` clears a retained customer record with the gateway's login
            await link.publish(T.crm_customer("c9"), b"", qos=1, retain=True)
            for client, topic in inputs:
                assert await sent(client, topic, b"in") == SUCCESS
            got = await until(link, inputs[-1][1])
            await link.publish(T.status(), b"marker", qos=1)  # after every input, for signage
            return got
        finally:
            await link.disconnect()

    erased = (T.crm_customer("c9"), b"")  # the gateway hears its own erase, like any
    assert run(main()) == [erased] + [(topic, b"in") for _, topic in inputs]
    counts = [T.occupancy("aisle-tv"), T.status(), T.status()]
    assert [m.topic for m in signage.wait(3)] == counts
    assert [m.topic for m in analytics.wait(4)] == [T.events(), *counts]


def test_the_gateway_is_refused_what_it_has_no_business_doing(
    tmp_path: Path, mosquitto_with: Callable[..., Mosquitto]
) -> None:
    logins = make_logins(tmp_path / "logins")
    broker = secured(mosquitto_with, logins)
    config = gateway_config(tmp_path / "gw", broker, logins.passwords[GATEWAY])

    async def main() -> None:
        link = await connect_link(config)
        try:
            crm_other = T.crm_customer("c1").replace("/customers/", "/segments/")
            for topic in (crm_other, T.feedback(TOKEN_A), "rayon/lyon-2/offers/t"):
                with pytest.raises(Refused, match="Not authorized"):
                    await link.publish(topic, b"{}", qos=1)
        finally:
            await link.disconnect()

    run(main())


def test_the_crm_connection_reads_the_customers_and_nothing_else(
    tmp_path: Path, mosquitto_with: Callable[..., Mosquitto]
) -> None:
    """`mqtt.crm`: the gateway's second connection, with a login of its own, gets the back
    office's customer records (retained ones too) and may neither read nor write the rest."""
    logins = make_logins(tmp_path / "logins")
    broker = secured(mosquitto_with, logins)
    backoffice = app(broker, logins, "rayon-backoffice")
    node = app(broker, logins, NODE)
    secret = tmp_path / "crm.secret"
    secret.write_text(logins.passwords[CRM_LOGIN] + "\n", encoding="utf-8")
    config = gateway_config(tmp_path / "gw", broker, logins.passwords[GATEWAY])
    config = dataclasses.replace(
        config, mqtt=dataclasses.replace(config.mqtt, crm=LoginConfig(CRM_LOGIN, secret))
    )

    async def main() -> list[tuple[str, bytes]]:
        kept = await asyncio.to_thread(backoffice.send, T.crm_customer("c1"), b"kept", True)
        assert kept == SUCCESS
        link = await connect_crm_link(config)
        try:
            assert link.client_id == f"{GATEWAY}-gateway-crm"
            # granted, but Mosquitto checks read rights per message: no advert comes through
            await link.subscribe([T.crm_filter(), T.scanners_filter()])
            with pytest.raises(Refused, match="Not authorized"):
                await link.publish(T.offers(TOKEN_A), b"{}", qos=1)
            assert await sent(node, T.scanner_adv(NODE), b"not for it") == SUCCESS
            assert await sent(backoffice, T.crm_customer("c2"), b"live") == SUCCESS
            return await until(link, T.crm_customer("c2"))
        finally:
            await link.disconnect()

    assert run(main()) == [(T.crm_customer("c1"), b"kept"), (T.crm_customer("c2"), b"live")]


def test_the_console_reads_its_live_feed_the_counts_and_the_status_and_nothing_else(
    tmp_path: Path, mosquitto_with: Callable[..., Mosquitto]
) -> None:
    """`mqtt.console`: the console's login gets the gateway's console/positions and ticker, the
    zone counts and the status; never offers, events, customer records nor phone reports, and
    it may publish none of the store's topics.  No app (nor the signage) reads console/+."""
    logins = make_logins(tmp_path / "logins")
    broker = secured(mosquitto_with, logins)
    console = app(broker, logins, CONSOLE_LOGIN, "rayon/#")
    a = app(broker, logins, TOKEN_A, "rayon/#")
    signage = app(broker, logins, "rayon-signage", "rayon/#")
    gateway, backoffice = app(broker, logins, GATEWAY), app(broker, logins, "rayon-backoffice")
    hidden = [
        (gateway, T.offers(TOKEN_A)),
        (gateway, T.events()),
        (backoffice, T.crm_customer("c1")),
        (a, T.phone_sightings(TOKEN_A)),
        (a, T.feedback(TOKEN_A)),
    ]
    live = [T.console(ConsoleLeaf.POSITIONS), T.console(ConsoleLeaf.TICKER)]
    shown = [*live, T.occupancy("aisle-tv"), T.status()]
    for client, topic in hidden:
        assert client.send(topic) == SUCCESS, topic
    for topic in shown:
        assert gateway.send(topic) == SUCCESS, topic  # the gateway writes console/+
    assert gateway.send(T.offers(TOKEN_A), b"marker") == SUCCESS  # after the console's topics
    assert [m.topic for m in a.wait(2)] == [T.offers(TOKEN_A)] * 2  # no console/+ between
    assert [m.topic for m in console.wait(len(shown))] == shown  # and nothing hidden came
    assert [m.topic for m in signage.wait(2)] == shown[2:]
    for topic in [*shown, T.offers(TOKEN_A), T.events(), T.crm_customer("c1")]:
        assert console.send(topic) == DENIED, topic


# --- the login script ------------------------------------------------------------------------


def test_the_login_script_keeps_apps_nodes_and_services_apart(tmp_path: Path) -> None:
    logins = make_logins(tmp_path, {GATEWAY: "service", NODE: "node", TOKEN_A: "app"})
    before = logins.passwd.read_text()
    refused = [
        ("add", "app", GATEWAY),  # a token can never take a service login's name …
        ("add", "app", "rayon-" + TOKEN_A),
        ("add", "app", NODE),  # … nor a node's (too short for a token)
        ("add", "node", TOKEN_B),  # and a node id is never long enough to be a token
        ("add", "app", TOKEN_A),  # an existing login is not replaced
        ("add", "app", "a+b#c/d" * 4),  # MQTT wildcards and levels never make a login
        ("add", "service", "backoffice"),
        ("rotate", TOKEN_B),
    ]
    for args in refused:
        done = rayon_mqtt(logins.passwd, *args)
        assert done.returncode == 1 and done.stderr.startswith("rayon-mqtt: "), args
    assert logins.passwd.read_text() == before
    assert rayon_mqtt(logins.passwd, "remove", NODE).returncode == 0
    rotated = rayon_mqtt(logins.passwd, "rotate", TOKEN_A)
    assert rotated.returncode == 0 and rotated.stdout.strip() != logins.passwords[TOKEN_A]
    assert len(rotated.stdout.strip()) == 48 == len(logins.passwords[TOKEN_A])
    assert [line.split(":")[0] for line in logins.passwd.read_text().splitlines()] == [
        GATEWAY,
        TOKEN_A,
    ]


def test_the_acl_rendered_for_another_store_is_that_store_s(
    tmp_path: Path, mosquitto_with: Callable[..., Mosquitto]
) -> None:
    rendered = rayon_mqtt(tmp_path / "unused", "acl", "lyon-2")
    assert rendered.returncode == 0 and "paris-11" not in rendered.stdout
    acl = tmp_path / "acl"
    acl.write_text(rendered.stdout)
    logins = make_logins(tmp_path / "logins", {"rayon-lyon-2": "service", TOKEN_A: "app"})
    broker = mosquitto_with(
        "allow_anonymous false", f"password_file {logins.passwd}", f"acl_file {acl}"
    )
    gateway = app(broker, logins, "rayon-lyon-2")
    assert gateway.send(f"rayon/lyon-2/offers/{TOKEN_A}") == SUCCESS
    assert gateway.send(T.offers(TOKEN_A)) == DENIED  # paris-11's


# --- TLS: a CA, the broker's certificate, a client certificate -------------------------------


@dataclass(frozen=True, slots=True)
class Pki:
    """PEM files made with openssl: `ca` signed `server` (127.0.0.1, localhost) and `client`;
    `stranger` is another CA, which signed none of them."""

    ca: Path
    server: tuple[Path, Path]
    client: tuple[Path, Path]
    stranger: Path


def openssl(folder: Path, *args: str) -> None:
    done = subprocess.run(
        [tool("openssl"), *args], cwd=folder, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr


def new_ca(folder: Path, name: str) -> Path:
    openssl(
        folder, "req", "-x509", "-nodes", "-days", "2", "-subj", f"/CN={name}",
        "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
        "-keyout", f"{name}.key", "-out", f"{name}.crt",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
    )  # fmt: skip
    return folder / f"{name}.crt"


def issue(folder: Path, ca: str, name: str, extensions: str) -> tuple[Path, Path]:
    (folder / f"{name}.ext").write_text(f"basicConstraints=CA:FALSE\n{extensions}\n")
    openssl(
        folder, "req", "-new", "-nodes", "-subj", f"/CN={name}",
        "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
        "-keyout", f"{name}.key", "-out", f"{name}.csr",
    )  # fmt: skip
    openssl(
        folder, "x509", "-req", "-in", f"{name}.csr", "-days", "2", "-set_serial", "0x1",
        "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key", "-extfile", f"{name}.ext", "-out", f"{name}.crt",
    )  # fmt: skip
    return folder / f"{name}.crt", folder / f"{name}.key"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    folder = tmp_path_factory.mktemp("pki")
    ca = new_ca(folder, "rayon-ca")
    server = issue(
        folder, "rayon-ca", "rayon-broker",
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth",
    )  # fmt: skip
    client = issue(folder, "rayon-ca", "rayon-paris-11", "extendedKeyUsage=clientAuth")
    return Pki(ca, server, client, new_ca(folder, "stranger-ca"))


def tls_broker(
    mosquitto_with: Callable[..., Mosquitto], logins: Logins, pki: Pki
) -> tuple[Mosquitto, int]:
    """The shipped ACL, and a TLS listener that requires a client certificate from our CA."""
    port = free_port()
    broker = mosquitto_with(
        "allow_anonymous false",
        f"password_file {logins.passwd}",
        f"acl_file {ACL}",
        f"listener {port} 127.0.0.1",
        f"cafile {pki.ca}",
        f"certfile {pki.server[0]}",
        f"keyfile {pki.server[1]}",
        "require_certificate true",
    )
    return broker, port


def gateway_tls(pki: Pki, ca: Path | None = None) -> dict[str, str]:
    cert, key = pki.client
    return {"ca_file": str(ca or pki.ca), "cert_file": str(cert), "key_file": str(key)}


def test_the_gateway_connects_with_tls_a_client_certificate_and_its_password(
    tmp_path: Path, mosquitto_with: Callable[..., Mosquitto], pki: Pki
) -> None:
    logins = make_logins(tmp_path / "logins")
    broker, port = tls_broker(mosquitto_with, logins, pki)
    a = app(broker, logins, TOKEN_A, T.offers(TOKEN_A))
    config = gateway_config(
        tmp_path / "gw", broker, logins.passwords[GATEWAY], gateway_tls(pki), port
    )

    async def main() -> None:
        link = await connect_link(config)
        try:
            await link.publish(T.offers(TOKEN_A), b'{"id":"tls"}', qos=1, expiry_s=60)
        finally:
            await link.disconnect()

    run(main())
    assert [(m.topic, m.payload) for m in a.wait(1)] == [(T.offers(TOKEN_A), b'{"id":"tls"}')]


def test_a_wrong_password_is_a_runtime_failure_naming_the_login(
    tmp_path: Path, mosquitto_with: Callable[..., Mosquitto], pki: Pki
) -> None:
    logins = make_logins(tmp_path / "logins")
    broker, port = tls_broker(mosquitto_with, logins, pki)
    config = gateway_config(tmp_path / "gw", broker, "not-the-password", gateway_tls(pki), port)
    hint = r"refused the connection: Not authorized; check mqtt\.username, mqtt\.password_file"
    with pytest.raises(RuntimeFailure, match=hint):
        run(connect_link(config))


@pytest.mark.filterwarnings("ignore:unclosed <ssl.SSLSocket:ResourceWarning")
def test_an_untrusted_broker_certificate_is_a_runtime_failure_naming_tls(
    tmp_path: Path, mosquitto_with: Callable[..., Mosquitto], pki: Pki
) -> None:
    logins = make_logins(tmp_path / "logins")
    broker, port = tls_broker(mosquitto_with, logins, pki)
    tls = gateway_tls(pki, ca=pki.stranger)
    config = gateway_config(tmp_path / "gw", broker, logins.passwords[GATEWAY], tls, port)
    hint = r"TLS handshake.*certificate verify failed.*check mqtt\.tls\.ca_file"
    with pytest.raises(RuntimeFailure, match=hint):
        run(connect_link(config))
    # paho 2.2 leaves the socket of a failed handshake unclosed (Client._ssl_wrap_socket does
    # not close it when do_handshake raises): let it go here, not in a later test
    gc.collect()


def test_without_its_client_certificate_the_gateway_is_refused(
    tmp_path: Path, mosquitto_with: Callable[..., Mosquitto], pki: Pki
) -> None:
    logins = make_logins(tmp_path / "logins")
    broker, port = tls_broker(mosquitto_with, logins, pki)
    tls = {"ca_file": str(pki.ca)}
    config = gateway_config(tmp_path / "gw", broker, logins.passwords[GATEWAY], tls, port)
    hint = r"hung up before answering: check that it trusts the client certificate of mqtt\.tls"
    with pytest.raises(RuntimeFailure, match=hint):
        run(connect_link(config))


# --- the shipped mosquitto.conf --------------------------------------------------------------


def shipped_config(logins: Logins, pki: Pki, state: Path) -> tuple[list[str], dict[int, int]]:
    """deploy/mosquitto/mosquitto.conf as shipped, but listening on free ports of 127.0.0.1
    (shipped port → test port) and with its /etc and /var files in the test's folders."""
    files = {
        "/etc/mosquitto/rayon/passwd": logins.passwd,
        "/etc/mosquitto/rayon/acl": ACL,
        "/etc/mosquitto/certs/rayon-broker.crt": pki.server[0],
        "/etc/mosquitto/certs/rayon-broker.key": pki.server[1],
        "/var/lib/mosquitto/": state,
    }
    state.mkdir(parents=True, exist_ok=True)
    lines, ports = [], {}
    for line in (DEPLOY / "mosquitto.conf").read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        if line.startswith("listener "):
            shipped = int(line.split()[1])
            ports[shipped] = free_port()
            line = f"listener {ports[shipped]} 127.0.0.1"
        for path, local in files.items():
            line = line.replace(path, f"{local}/" if path.endswith("/") else str(local))
        lines.append(line)
    assert not [line for line in lines if "/etc/" in line or "/var/" in line]
    assert set(ports) == {1883, 8883}
    return lines, ports


def app_over_tls(port: int, logins: Logins, login: str, pki: Pki) -> MqttLink:
    """A phone on the store LAN: TLS trusting the store's CA, its login, no certificate."""
    return MqttLink(
        "127.0.0.1",
        port,
        f"app-{uuid.uuid4().hex[:6]}",
        username=login,
        password=logins.passwords.get(login),
        tls=TlsConfig(ca_file=pki.ca),
        timeout=5.0,
    )


def test_the_shipped_config_serves_apps_over_tls_and_refuses_strangers(
    tmp_path: Path, mosquitto_with: Callable[..., Mosquitto], pki: Pki
) -> None:
    logins = make_logins(tmp_path / "logins")
    lines, ports = shipped_config(logins, pki, tmp_path / "state")
    broker = mosquitto_with(*lines)
    assert connack(broker, None, None, port=ports[1883]) == DENIED
    config = gateway_config(tmp_path / "gw", broker, logins.passwords[GATEWAY], port=ports[1883])

    async def main() -> list[Message]:
        with pytest.raises(RuntimeFailure, match="Not authorized"):
            await app_over_tls(ports[8883], logins, "anonymous", pki).connect()
        gateway = await connect_link(config)
        async with app_over_tls(ports[8883], logins, TOKEN_A, pki) as a:
            await a.subscribe([T.offers(TOKEN_A)])
            await gateway.subscribe(inbound_filters(config, T))
            # over message_size_limit: Mosquitto 2.0.11 drops it and answers PUBACK 0x95, a
            # code MQTT 5 does not allow in a PUBACK, which paho takes for a protocol error
            # and hangs up (a Refused from a broker that answers by the book)
            with pytest.raises(LinkError):
                await a.publish(T.feedback(TOKEN_A), b"x" * 65537, qos=1)
            await a.wait_connected()
            await a.publish(T.feedback(TOKEN_A), b"x" * 65536, qos=1)
            await gateway.publish(T.offers(TOKEN_A), b'{"id":"lan"}', qos=1, expiry_s=60)
            got = [await anext(gateway.messages()), await anext(a.messages())]
        await gateway.disconnect()
        return got

    assert run(main()) == [
        Message(T.feedback(TOKEN_A), b"x" * 65536, False),
        Message(T.offers(TOKEN_A), b'{"id":"lan"}', False),
    ]


def test_the_shipped_config_keeps_retained_customers_across_a_restart(
    tmp_path: Path, mosquitto_with: Callable[..., Mosquitto], pki: Pki
) -> None:
    logins = make_logins(tmp_path / "logins")
    lines, ports = shipped_config(logins, pki, tmp_path / "state")
    broker = mosquitto_with(*lines)
    backoffice = app(broker, logins, "rayon-backoffice")
    assert backoffice.send(T.crm_customer("c1"), b'{"id":"c1"}', retain=True) == SUCCESS
    backoffice.stop()
    broker.stop()
    broker.start()
    config = gateway_config(tmp_path / "gw", broker, logins.passwords[GATEWAY], port=ports[1883])

    async def main() -> Message:
        link = await connect_link(config)
        try:
            await link.subscribe([T.crm_filter()])
            return await anext(link.messages())
        finally:
            await link.disconnect()

    assert run(main()) == Message(T.crm_customer("c1"), b'{"id":"c1"}', True)


# --- sessions: an app's client id is its login on the LAN listener -----------------------------


class Phone:
    """A store app on the LAN listener (TLS, its login) with a persistent session, driven by
    hand: it connects once, never reconnects by itself, and records what happens to it."""

    def __init__(self, port: int, pki: Pki, logins: Logins, login: str, client_id: str) -> None:
        self.port, self.messages = port, queue.Queue[tuple[str, bytes]]()
        self.connacks: queue.Queue[tuple[bool, str]] = queue.Queue()
        self.disconnects: queue.Queue[str] = queue.Queue()
        self.subacks: queue.Queue[int] = queue.Queue()
        c = Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, protocol=MQTTProtocolVersion.MQTTv5
        )
        c.username_pw_set(login, logins.passwords[login])
        c.tls_set(ca_certs=str(pki.ca))
        c.on_connect = lambda _c, _u, f, code, _p: self.connacks.put((f.session_present, str(code)))
        c.on_disconnect = lambda _c, _u, _f, code, _p: self.disconnects.put(str(code))
        c.on_message = lambda _c, _u, m: self.messages.put((m.topic, bytes(m.payload)))
        c.on_subscribe = lambda _c, _u, mid, _codes, _p: self.subacks.put(mid)
        self.client = c

    def connect(self, *, clean_start: bool = False) -> bool:
        """Connect with a 7-day session (or a clean one); whether the broker had a session."""
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = 7 * 24 * 3600
        self.client.connect("127.0.0.1", self.port, clean_start=clean_start, properties=props)
        self.client.loop_start()
        present, code = self.connacks.get(timeout=10)
        assert code == SUCCESS, code
        return present

    def subscribe(self, topic: str) -> None:
        _rc, mid = self.client.subscribe(topic, 1)
        assert self.subacks.get(timeout=10) == mid

    def next_message(self) -> tuple[str, bytes]:
        return self.messages.get(timeout=10)

    def leave(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def shipped_broker(
    tmp_path: Path, mosquitto_with: Callable[..., Mosquitto], pki: Pki
) -> tuple[Logins, Mosquitto, dict[int, int], Config]:
    logins = make_logins(tmp_path / "logins")
    lines, ports = shipped_config(logins, pki, tmp_path / "state")
    broker = mosquitto_with(*lines)
    config = gateway_config(tmp_path / "gw", broker, logins.passwords[GATEWAY], port=ports[1883])
    return logins, broker, ports, config


def test_an_app_cannot_receive_resume_or_wipe_another_apps_session(
    tmp_path: Path, mosquitto_with: Callable[..., Mosquitto], pki: Pki
) -> None:
    logins, _broker, ports, config = shipped_broker(tmp_path, mosquitto_with, pki)
    lan = ports[8883]
    b = Phone(lan, pki, logins, TOKEN_B, f"rayon-app-{TOKEN_B}")
    assert not b.connect()
    b.subscribe(T.offers(TOKEN_B))
    b.leave()

    async def main() -> int:
        gateway = await connect_link(config, persistent=True)
        try:
            await gateway.publish(T.offers(TOKEN_B), b'{"id":"for-b"}', qos=1, expiry_s=600)
            # A, with its own password, sends B's client id (as the app would build it), then
            # B's token as client id asking for a clean start, then the gateway's client id
            for client_id, clean in [
                (f"rayon-app-{TOKEN_B}", False),
                (TOKEN_B, True),
                (f"rayon-{config.store.id}-gateway", True),
            ]:
                a = Phone(lan, pki, logins, TOKEN_A, client_id)
                assert not await asyncio.to_thread(a.connect, clean_start=clean) or not clean
                await asyncio.to_thread(a.subscribe, f"rayon/{config.store.id}/offers/#")
                await gateway.publish(T.offers(TOKEN_A), b'{"id":"for-a"}', qos=1, expiry_s=600)
                # B's offer, queued first, would have come before A's own
                assert await asyncio.to_thread(a.next_message) == (
                    T.offers(TOKEN_A),
                    b'{"id":"for-a"}',
                )
                await asyncio.to_thread(a.leave)
            await gateway.publish(T.status(), b"{}", qos=1, retain=True)  # still the gateway's
            return gateway.connections
        finally:
            await gateway.disconnect()

    assert run(main()) == 1  # the gateway's session was never taken over
    b = Phone(lan, pki, logins, TOKEN_B, f"rayon-app-{TOKEN_B}")
    assert b.connect()  # B's session is whole, and its queued offer waits for it
    assert b.next_message() == (T.offers(TOKEN_B), b'{"id":"for-b"}')
    b.leave()


def test_two_phones_sharing_a_token_share_one_session_the_last_one_connected_holds_it(
    tmp_path: Path, mosquitto_with: Callable[..., Mosquitto], pki: Pki
) -> None:
    logins, _broker, ports, config = shipped_broker(tmp_path, mosquitto_with, pki)
    first = Phone(ports[8883], pki, logins, TOKEN_A, "phone-1")
    assert not first.connect()
    first.subscribe(T.offers(TOKEN_A))
    second = Phone(ports[8883], pki, logins, TOKEN_A, "phone-2")
    assert second.connect()  # the same session: the token's, with the first phone's subscription
    first.disconnects.get(timeout=10)  # the broker hung up on the first phone

    async def main() -> None:
        gateway = await connect_link(config)
        try:
            await gateway.publish(T.offers(TOKEN_A), b'{"id":"o1"}', qos=1, expiry_s=600)
        finally:
            await gateway.disconnect()

    run(main())
    assert second.next_message() == (T.offers(TOKEN_A), b'{"id":"o1"}')
    second.leave()
    first.leave()
    assert first.messages.empty()  # each offer reaches the phone connected at the time


def test_the_tools_never_take_over_the_daemons_sessions(
    tmp_path: Path, mosquitto_with: Callable[..., Mosquitto], pki: Pki
) -> None:
    _logins, _broker, _ports, config = shipped_broker(tmp_path, mosquitto_with, pki)

    async def main() -> tuple[int, int, set[str]]:
        daemon = await connect_link(config, persistent=True)
        crm = await connect_crm_link(config)
        ids = set()
        try:
            # as each tool connects (gateway/ops, gateway/offline/replayrun.py, gateway/cli/demo.py)
            for tool_name, will in (("forget", False), ("doctor", False), ("replay", False)):
                link = await connect_link(config, client_suffix=tool_name, will=will)
                ids.add(link.client_id)
                await link.disconnect()
            for tool_name in ("demo",):
                link = await connect_link(config, client_suffix=tool_name)
                ids.add(link.client_id)
                await link.disconnect()
            # had a tool taken over a session, the broker would have closed that connection
            await daemon.publish(T.status(), b"{}", qos=1, retain=True)
            await crm.subscribe([T.crm_filter()])
            return daemon.connections, crm.connections, ids
        finally:
            await crm.disconnect()
            await daemon.disconnect()

    daemon, crm, ids = run(main())
    assert (daemon, crm) == (1, 1)
    assert len(ids) == 4 and not ids & {"rayon-paris-11-gateway", "rayon-paris-11-gateway-crm"}


def test_the_tools_log_in_as_themselves_erase_send_offers_and_nothing_more(
    tmp_path: Path, mosquitto_with: Callable[..., Mosquitto], pki: Pki
) -> None:
    """`mqtt.tools`: forget, replay, doctor and demo connect with the tools' login (the
    gateway's password file is gone, so no other login could connect); the shipped ACL lets
    them erase a customer record and send offers, and refuses them the daemon's and apps' topics."""
    logins, _broker, _ports, gateway = shipped_broker(tmp_path, mosquitto_with, pki)
    secret = tmp_path / "tools.secret"
    secret.write_text(logins.passwords[TOOLS_LOGIN] + "\n", encoding="utf-8")
    tools = LoginConfig(TOOLS_LOGIN, secret)
    mqtt = dataclasses.replace(gateway.mqtt, tools=tools, password_file=tmp_path / "gone")
    config = dataclasses.replace(gateway, mqtt=mqtt)

    async def main() -> tuple[str, int]:
        daemon = await connect_link(gateway, persistent=True)
        link = await connect_link(config, client_suffix="forget", will=False)
        try:
            await link.publish(T.crm_customer("c9"), b"", qos=1, retain=True)  # rayon forget
            await link.publish(T.offers(TOKEN_A), b"{}", qos=1)  # rayon replay --publish
            for topic in (T.events(), T.status(), T.feedback(TOKEN_A)):  # the daemon's, an app's
                with pytest.raises(Refused, match="Not authorized"):
                    await link.publish(topic, b"{}", qos=1)
            await daemon.publish(T.status(), b"{}", qos=1)  # the daemon's session is its own
            return link.client_id, daemon.connections
        finally:
            await link.disconnect()
            await daemon.disconnect()

    client_id, daemon_connections = run(main())
    assert client_id.startswith("rayon-paris-11-forget-") and daemon_connections == 1
    with pytest.raises(RuntimeFailure, match=r"mqtt\.password_file"):  # the daemon: its login
        run(connect_link(config, persistent=True))
