"""`rayon run` as a real process against a real Mosquitto: inputs over MQTT, offers out.

The CRM upserts a click-and-collect customer (retained), scanner nodes report her phone at the
entrance, the app gets "your order is ready"; SIGTERM ends the daemon cleanly, offline status.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.config.load import load_config
from gateway.decode.adverts import adv_to_json
from gateway.store.repo import Store
from tests.broker import Mosquitto, Subscriber
from tests.stores import rayon, reference_store
from tests.walks import click_collect_customer, walk_adverts, zone_centre

ROOT = Path(__file__).resolve().parent.parent
BASE = "rayon/paris-11"

pytestmark = pytest.mark.mqtt


@pytest.fixture
def config_path(tmp_path: Path, mosquitto: Mosquitto) -> Path:
    return reference_store(tmp_path, port=mosquitto.port)


def start_daemon(config_path: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "gateway", "run", "-c", str(config_path)],
        cwd=ROOT,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def stop_daemon(proc: subprocess.Popen[str]) -> str:
    """SIGTERM; the daemon must exit 0 within 5 s.  Returns its stderr."""
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    assert time.monotonic() - started < 5.0 + 1.0, "SIGTERM must end the daemon within 5 s"
    return err


@pytest.fixture
def daemon(config_path: Path) -> Iterator[subprocess.Popen[str]]:
    proc = start_daemon(config_path)
    yield proc
    if proc.poll() is None:
        proc.kill()
        proc.communicate()


def entrance_reports(config_path: Path, now: float) -> dict[str, list[dict[str, object]]]:
    """What the scanner nodes would publish while the phone stands 8 s at the entrance, from
    `now` on (sent at once: the gateway takes data older than its last tick as of that tick)."""
    config = load_config(config_path)
    x, y = zone_centre(config, "entrance")
    per_node: dict[str, list[dict[str, object]]] = defaultdict(list)
    for adv in walk_adverts(config, 1, [(x, y, 0), (x, y, 8)], now):
        per_node[adv.anchor].append(adv_to_json(adv)["adv"] | {"at": adv.at})
    return per_node


def test_daemon_turns_mqtt_inputs_into_an_offer_and_stops_cleanly(
    config_path: Path, daemon: subprocess.Popen[str], subscriber: Callable[..., Subscriber]
) -> None:
    status = subscriber(f"{BASE}/gateway/status")
    status.wait(1, timeout=30)
    assert json.loads(status.messages[0].payload)["state"] == "online"
    phone = subscriber(f"{BASE}/offers/t-cc-1")
    customer = click_collect_customer("c-cc-1", "t-cc-1", 1, "Nadia")
    phone.publish(f"{BASE}/crm/customers/c-cc-1", json.dumps(customer).encode(), retain=True)
    for node, adverts in entrance_reports(config_path, time.time()).items():
        phone.publish(f"{BASE}/scanners/{node}/adv", json.dumps(adverts).encode(), qos=0)
    offer = json.loads(phone.wait(1, timeout=20)[0].payload)
    assert offer["rule"] == "click-collect" and offer["purpose"] == "transactional"
    assert "Nadia" in offer["body"] and phone.messages[0].expiry_s is not None
    stop_daemon(daemon)
    final = status.wait(2, timeout=5)[-1]
    assert json.loads(final.payload)["state"] == "offline"
    # Feedback sent while the gateway is down waits in its persistent session at the broker.
    ack = {"type": "feedback", "v": 1, "offer": offer["id"], "state": "redeemed", "at": time.time()}
    phone.publish(f"{BASE}/feedback/t-cc-1", json.dumps(ack).encode())
    again = start_daemon(config_path)
    try:
        status.wait(3, timeout=30)
        store = Store(f"sqlite:///{config_path.parent / 'rayon.db'}")
        try:
            deadline = time.monotonic() + 10
            while not store.feedback(offer["id"]) and time.monotonic() < deadline:
                time.sleep(0.2)
            assert [f.state for f in store.feedback(offer["id"])] == ["redeemed"]
        finally:
            store.close()
    finally:
        stop_daemon(again)


def test_rules_reload_on_change_and_sighup_is_all_or_nothing(
    tmp_path: Path, mosquitto: Mosquitto, subscriber: Callable[..., Subscriber]
) -> None:
    shutil.copytree(ROOT / "rules", tmp_path / "rules")
    config_path = reference_store(tmp_path, port=mosquitto.port, rules_dir="rules")
    rule = tmp_path / "rules" / "click-collect.yaml"
    good = rule.read_text(encoding="utf-8")
    status = subscriber(f"{BASE}/gateway/status")
    proc = start_daemon(config_path)
    try:
        first = json.loads(status.wait(1, timeout=30)[0].payload)
        assert first["rules"]["error"] is None and first["rules"]["count"] >= 5
        rule.write_text(good.replace("zone: entrance", "zone: entrancee"), encoding="utf-8")
        broken = wait_status(status, lambda s: s["rules"]["error"] is not None)
        assert broken["state"] == "online" and "entrancee" in broken["rules"]["error"]
        assert "did you mean 'entrance'" in broken["rules"]["error"]
        rule.write_text(good.replace("Votre commande vous attend", "Commande prête !"), "utf-8")
        proc.send_signal(signal.SIGHUP)
        wait_status(status, lambda s: s["rules"]["error"] is None)
        phone = subscriber(f"{BASE}/offers/t-cc-1")
        customer = click_collect_customer("c-cc-1", "t-cc-1", 1)
        phone.publish(f"{BASE}/crm/customers/c-cc-1", json.dumps(customer).encode(), retain=True)
        for node, adverts in entrance_reports(config_path, time.time()).items():
            phone.publish(f"{BASE}/scanners/{node}/adv", json.dumps(adverts).encode(), qos=0)
        assert json.loads(phone.wait(1, timeout=20)[0].payload)["title"] == "Commande prête !"
    finally:
        stop_daemon(proc)


def wait_status(status: Subscriber, ok: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """The first status message, from now on, for which `ok` holds."""
    seen, deadline = len(status.messages), time.monotonic() + 15
    while time.monotonic() < deadline:
        for message in status.wait(seen + 1, timeout=15)[seen:]:
            seen += 1
            body: dict[str, Any] = json.loads(message.payload)
            if ok(body):
                return body
    raise AssertionError("no such status")


def test_a_bad_config_fails_fast_with_its_place(tmp_path: Path) -> None:
    config_path = reference_store(tmp_path, port=1)
    text = config_path.read_text(encoding="utf-8")
    config_path.write_text(
        text.replace("timezone: Europe/Paris", "timezone: Europe/Pariss"), encoding="utf-8"
    )
    line = next(i for i, t in enumerate(config_path.read_text().splitlines(), 1) if "Pariss" in t)
    started = time.monotonic()
    result = rayon("run", "-c", str(config_path), timeout=30)
    assert result.returncode == 1 and time.monotonic() - started < 10
    assert f"{config_path}:{line}:" in result.stderr and "Europe/Pariss" in result.stderr
