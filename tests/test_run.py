"""`rayon run` as a real process against a real Mosquitto: inputs over MQTT, offers out.

The CRM upserts a click-and-collect customer (retained), scanner nodes report her phone at the
entrance, the app gets "your order is ready"; SIGTERM ends the daemon cleanly, offline status.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from gateway.config import load_config
from gateway.sources.trace import adv_to_json
from tests.broker import Mosquitto, Subscriber
from tests.stores import reference_store
from tests.walks import STORE_UUID, walk_adverts, zone_centre

ROOT = Path(__file__).resolve().parent.parent
BASE = "rayon/paris-11"

pytestmark = pytest.mark.mqtt


@pytest.fixture
def config_path(tmp_path: Path, mosquitto: Mosquitto) -> Path:
    return reference_store(tmp_path, port=mosquitto.port)


@pytest.fixture
def daemon(config_path: Path) -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway", "run", "-c", str(config_path)],
        cwd=ROOT,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    yield proc
    if proc.poll() is None:
        proc.kill()
        proc.communicate()


def entrance_reports(config_path: Path, now: float) -> dict[str, list[dict[str, object]]]:
    """What the scanner nodes would publish while the phone stands 8 s at the entrance."""
    config = load_config(config_path)
    x, y = zone_centre(config, "entrance")
    per_node: dict[str, list[dict[str, object]]] = defaultdict(list)
    for adv in walk_adverts(config, 1, [(x, y, 0), (x, y, 8)], now - 10):
        per_node[adv.anchor].append(adv_to_json(adv)["adv"] | {"at": adv.at})
    return per_node


def test_daemon_turns_mqtt_inputs_into_an_offer_and_stops_cleanly(
    config_path: Path, daemon: subprocess.Popen[str], subscriber: Callable[..., Subscriber]
) -> None:
    status = subscriber(f"{BASE}/gateway/status")
    status.wait(1, timeout=30)
    assert json.loads(status.messages[0].payload)["state"] == "online"
    phone = subscriber(f"{BASE}/offers/t-cc-1")
    customer = {
        "id": "c-cc-1",
        "token": "t-cc-1",
        "first_name": "Nadia",
        "visits": 5,  # a regular: no welcome offer, whatever the hour
        "devices": [f"ibeacon:{STORE_UUID}:1000:1"],
        "attributes": {"order_ready": True},
        "consent": {"instore_location": True, "marketing_push": True},
    }
    phone.publish(f"{BASE}/crm/customers/c-cc-1", json.dumps(customer).encode(), retain=True)
    for node, adverts in entrance_reports(config_path, time.time()).items():
        phone.publish(f"{BASE}/scanners/{node}/adv", json.dumps(adverts).encode(), qos=0)
    offer = json.loads(phone.wait(1, timeout=20)[0].payload)
    assert offer["rule"] == "click-collect" and offer["purpose"] == "transactional"
    assert "Nadia" in offer["body"] and phone.messages[0].expiry_s is not None
    started = time.monotonic()
    daemon.send_signal(signal.SIGTERM)
    _, err = daemon.communicate(timeout=10)
    assert daemon.returncode == 0, err
    assert time.monotonic() - started < 5.0 + 1.0, "SIGTERM must end the daemon within 5 s"
    final = status.wait(2, timeout=5)[-1]
    assert json.loads(final.payload)["state"] == "offline"
