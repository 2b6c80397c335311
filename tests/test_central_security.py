"""The chain's brokers, secured, on a real Mosquitto: the central ACL
(deploy/central/mosquitto-central.acl, verbatim) confines each store's login to its own
`rayon/<store>/chain/…` topics; the store's shipped ACL lets the gateway's login send its
journal and read the centre's answers, and nobody else; the daemon's sender (`chain_sender`,
what `rayon run` starts with `central.enabled`) sends the journal under the gateway's login.

A negative ("store A got nothing of B") is proven without sleeping, as in
tests/test_mqtt_security.py: a message A may receive is sent after the forbidden one on the
same path; once it arrived, the forbidden one would have arrived before it.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from gateway.config.load import parse_config
from gateway.runtime.daemon import chain_sender
from gateway.store.repo import Store
from gateway.topics import ChainLeaf, Topics
from tests.broker import Mosquitto
from tests.chain import zone_events
from tests.stores import ROOT
from tests.test_mqtt_security import (
    ACL,
    DENIED,
    GATEWAY,
    SUCCESS,
    TOKEN_A,
    App,
    Logins,
    app,
    gateway_config,
    make_logins,
    secured,
    tool,
)

pytestmark = pytest.mark.mqtt

CENTRAL_ACL = ROOT / "deploy" / "central" / "mosquitto-central.acl"
PARIS, LYON = Topics("rayon", "paris-11"), Topics("rayon", "lyon-2")


def central_logins(folder: Path) -> Logins:
    folder.mkdir(parents=True, exist_ok=True)
    passwd = folder / "passwd"
    passwords = {name: f"secret-{name}" for name in ("paris-11", "lyon-2", "rayon-central")}
    for name, password in passwords.items():
        args = [tool("mosquitto_passwd"), "-b", *(["-c"] if not passwd.exists() else [])]
        subprocess.run([*args, str(passwd), name, password], check=True, timeout=30)
    return Logins(passwd, passwords)


def login(broker: Mosquitto, logins: Logins, name: str, *filters: str) -> App:
    client = App(broker, name, logins.passwords[name])
    client.start(*(filters or ["nothing/here"]))
    return client


def test_the_central_acl_confines_each_store_to_its_own_topics(
    tmp_path: Path, mosquitto_with: Callable[..., Mosquitto]
) -> None:
    logins = central_logins(tmp_path / "logins")
    broker = mosquitto_with(
        "allow_anonymous false", f"password_file {logins.passwd}", f"acl_file {CENTRAL_ACL}"
    )
    collector = login(broker, logins, "rayon-central", "rayon/+/chain/batch")
    paris = login(broker, logins, "paris-11", PARIS.chain(ChainLeaf.ACK), LYON.chain(ChainLeaf.ACK))
    lyon = login(broker, logins, "lyon-2")
    try:
        assert paris.send(PARIS.chain(ChainLeaf.BATCH), b"paris") == SUCCESS
        # a tampered Pi cannot forge another store's records, nor answer for the centre
        assert paris.send(LYON.chain(ChainLeaf.BATCH), b"forged") == DENIED
        assert paris.send(PARIS.chain(ChainLeaf.ACK), b"{}") == DENIED
        assert lyon.send(LYON.chain(ChainLeaf.BATCH), b"lyon") == SUCCESS
        got = [m.payload for m in collector.wait(2)]
        assert got == [b"paris", b"lyon"]
        # nor read another store's answers: lyon's mark first, then paris's own
        assert collector.send(LYON.chain(ChainLeaf.ACK), b"lyon-mark") == SUCCESS
        assert collector.send(PARIS.chain(ChainLeaf.ACK), b"paris-mark") == SUCCESS
        assert [m.payload for m in paris.wait(1)] == [b"paris-mark"]
    finally:
        for client in (collector, paris, lyon):
            client.stop()


def test_the_store_acl_lets_the_gateway_send_its_journal_and_nobody_else(
    tmp_path: Path, mosquitto_with: Callable[..., Mosquitto]
) -> None:
    logins = make_logins(tmp_path / "logins")
    broker = secured(mosquitto_with, logins)
    gateway = app(broker, logins, GATEWAY, PARIS.chain(ChainLeaf.BACKFILL))
    phone = app(broker, logins, TOKEN_A)
    try:
        assert gateway.send(PARIS.chain(ChainLeaf.BATCH)) == SUCCESS
        assert phone.send(PARIS.chain(ChainLeaf.BATCH)) == DENIED
        assert phone.send(PARIS.chain(ChainLeaf.BACKFILL), b"fake") == DENIED
        assert "chain" in ACL.read_text(encoding="utf-8")
    finally:
        gateway.stop()
        phone.stop()


def test_rayon_run_sends_the_journal_under_the_gateways_login(
    tmp_path: Path, mosquitto_with: Callable[..., Mosquitto]
) -> None:
    logins = make_logins(tmp_path / "logins")
    broker = secured(mosquitto_with, logins)
    base = gateway_config(tmp_path / "gw", broker, logins.passwords[GATEWAY])
    raw = yaml.safe_load(base.path.read_text(encoding="utf-8"))
    raw["central"] = {"enabled": True, "batch": 10}
    base.path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    config = parse_config(base.path)
    store = Store(config.database.url, journal=config.central.enabled)
    reader = app(broker, logins, GATEWAY, PARIS.chain(ChainLeaf.BATCH))
    try:
        store.record_events(zone_events(25))

        async def main() -> None:
            async with chain_sender(config, store):
                await asyncio.to_thread(reader.wait, 3, 20.0)

        asyncio.run(main())
        sent = [json.loads(m.payload) for m in reader.messages]
        assert [(b["after"], len(b["rows"])) for b in sent[:3]] == [(0, 10), (10, 10), (20, 5)]
    finally:
        reader.stop()
        store.close()
