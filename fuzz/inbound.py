"""atheris harness: no inbound MQTT message raises out of the pipeline, on any topic.

    .venv/bin/python fuzz/inbound.py -max_total_time=60

The first byte picks the topic (CRM customer, phone sightings / location / transition,
scanner advert, ESPresense, feedback), the rest is the payload as MQTT delivers it.  The
pipeline counts and drops a bad message; feedback is refused with a reason string.
"""

from __future__ import annotations

import json

from harness import ROOT, run

from gateway.config.load import load_config
from gateway.deliver.payloads import parse_feedback
from gateway.events import MqttInput
from gateway.identity.model import CustomerRegistry
from gateway.pipeline import Pipeline
from gateway.rules.load import load_rules
from gateway.topics import Topics

CONFIG = load_config(ROOT / "config.example.yaml")
PIPELINE = Pipeline(CONFIG, load_rules(CONFIG.rules_dir, CONFIG), CustomerRegistry())
_T = Topics(CONFIG.mqtt.topic_prefix, CONFIG.store.id)
UUID = "8d8c1a2e-5b3f-4c1d-9e2a-0f6b7c8d9e10"
TOPICS = (
    _T.crm_customer("c-1"),
    _T.phone_sightings("t-1"),
    _T.phone_location("t-1"),
    _T.phone_transition("t-1"),
    _T.scanner_adv("pi-entrance"),
    f"espresense/devices/iBeacon:{UUID}-1-1/pi-entrance",
    "feedback",
)
PAYLOADS = (
    {"id": "c-1", "token": "t-1", "devices": [f"ibeacon:{UUID}:1000:1"],
     "consent": {"instore_location": True, "marketing_push": True}, "visits": 2},
    {"at": 1772550000.0, "beacons": [{"uuid": UUID, "major": 1, "minor": 1, "rssi": -70}]},
    {"_type": "location", "lat": 48.8592, "lon": 2.3795, "acc": 20, "tst": 1772550000},
    {"_type": "transition", "event": "enter", "rid": "store-approach", "tst": 1772550000},
    {"at": 1772550000.0, "address": "AA:BB", "rssi": -67, "manufacturer_data": {}},
    {"id": f"iBeacon:{UUID}-1-1", "rssi@1m": -59, "rssi": -72.5},
    {"type": "feedback", "v": 1, "offer": "o-1", "state": "opened", "at": 1772550000},
)  # fmt: skip
SEEDS = [bytes([i]) + json.dumps(p).encode() for i, p in enumerate(PAYLOADS)]


def test_one(data: bytes) -> None:
    """Deliver one fuzzed message: the pipeline returns an Output whatever it is."""
    if not data:
        return
    topic = TOPICS[data[0] % len(TOPICS)]
    if topic == "feedback":
        parse_feedback(data[1:], 1772550000.0)
    else:
        PIPELINE.on_mqtt(MqttInput(1772550000.0, topic, data[1:]))


if __name__ == "__main__":
    run("inbound", test_one, SEEDS)
