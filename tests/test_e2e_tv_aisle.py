"""End to end: the TV-aisle walk replayed through `rayon replay` against a real Mosquitto.

A customer interested in TV enters on a Tuesday at 15:00 Paris time and spends 40 s in the TV
aisle: the phone, subscribed to his token's topic, gets exactly one offer with the docs/mqtt.md
fields and an MQTT v5 expiry.  The same walk on a Saturday, or without push consent, gets none.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from gateway.clock import parse_local_time
from gateway.config.load import load_config
from tests.broker import Subscriber
from tests.stores import rayon, reference_store
from tests.walks import STORE_UUID, tv_aisle_walk, walk_adverts, write_walk

ROOT = Path(__file__).resolve().parent.parent
OFFER_FIELDS = {
    "type",
    "v",
    "id",
    "rule",
    "store",
    "zone",
    "created_at",
    "expires_at",
    "title",
    "body",
    "code",
    "url",
    "purpose",
}
TUESDAY = "2026-03-03T15:00:00"
SATURDAY = "2026-03-07T15:00:00"

pytestmark = pytest.mark.mqtt


def settle(phone: Subscriber, quiet_s: float = 1.0) -> None:
    """Wait until no message has arrived for `quiet_s` (QoS 1 deliveries may be in flight)."""
    seen, deadline = -1, time.monotonic() + 10
    while seen != len(phone.messages) and time.monotonic() < deadline:
        seen = len(phone.messages)
        time.sleep(quiet_s)


@pytest.fixture
def phone(subscriber: Callable[..., Subscriber]) -> Subscriber:
    """The TV fan's app, subscribed to his token's offers before anything is replayed."""
    return subscriber("rayon/paris-11/offers/t-tv-1")


def walk(tmp_path: Path, port: int, when: str, push: bool) -> Path:
    config_path = reference_store(tmp_path, port=port)
    config = load_config(config_path)
    customer = {
        "id": "c-tv-1",
        "token": "t-tv-1",
        "devices": [f"ibeacon:{STORE_UUID}:1000:1"],
        "consent": {"instore_location": True, "marketing_push": push},
        "first_name": "Karim",
        "interests": ["tv"],
        "visits": 3,
    }
    (tmp_path / "customers.jsonl").write_text(json.dumps(customer) + "\n", encoding="utf-8")
    imported = rayon(
        "customers", "import", str(tmp_path / "customers.jsonl"), "-c", str(config_path)
    )
    assert imported.returncode == 0, imported.stderr
    start = parse_local_time(when, config.store.timezone)
    adverts = walk_adverts(config, 1, tv_aisle_walk(config, start), start)
    write_walk(tmp_path / "trace.jsonl", adverts)
    return config_path


def replay(tmp_path: Path, config_path: Path) -> subprocess.CompletedProcess[str]:
    result = rayon(
        "replay",
        str(tmp_path / "trace.jsonl"),
        "-c",
        str(config_path),
        "--events-out",
        str(tmp_path / "events.jsonl"),
        "--offers-out",
        str(tmp_path / "offers.jsonl"),
        "--publish",
    )
    assert result.returncode == 0, result.stderr
    return result


def test_tuesday_afternoon_tv_fan_gets_exactly_one_offer(
    tmp_path: Path, mosquitto: Any, phone: Subscriber
) -> None:
    config_path = walk(tmp_path, mosquitto.port, TUESDAY, push=True)
    replay(tmp_path, config_path)
    settle(phone)
    assert len(phone.messages) == 1, phone.messages
    offer = json.loads(phone.messages[0].payload)
    assert set(offer) == OFFER_FIELDS
    assert offer["type"] == "offer" and offer["v"] == 1
    assert offer["rule"] == "tv-aisle-dwell" and offer["zone"] == "aisle-tv"
    assert offer["store"] == "paris-11" and offer["purpose"] == "commercial"
    assert offer["created_at"].startswith("2026-03-03T15:0") and offer["created_at"].endswith(
        "+01:00"
    )
    expiry = phone.messages[0].expiry_s
    assert expiry is not None and 0 < expiry <= 3 * 3600
    written = [json.loads(line) for line in (tmp_path / "offers.jsonl").read_text().splitlines()]
    assert [o["id"] for o in written] == [offer["id"]] and written[0]["token"] == "t-tv-1"
    kinds = [
        json.loads(line)["kind"] for line in (tmp_path / "events.jsonl").read_text().splitlines()
    ]
    assert {"visit_start", "enter", "dwell", "exit", "visit_end"} <= set(kinds)


def test_saturday_walk_gets_no_offer(tmp_path: Path, mosquitto: Any, phone: Subscriber) -> None:
    config_path = walk(tmp_path, mosquitto.port, SATURDAY, push=True)
    replay(tmp_path, config_path)
    settle(phone)
    assert phone.messages == []


def test_no_push_consent_gets_no_offer(tmp_path: Path, mosquitto: Any, phone: Subscriber) -> None:
    config_path = walk(tmp_path, mosquitto.port, TUESDAY, push=False)
    replay(tmp_path, config_path)
    settle(phone)
    assert phone.messages == []
    dwell = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    assert any(e["kind"] == "dwell" and e["zone"] == "aisle-tv" for e in dwell)
