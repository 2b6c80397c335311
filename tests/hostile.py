"""What an adversarial app and node send a live gateway, for tests/test_hostile.py and
bench/bench_hostile.py: a flood of feedback, scanner batches of phones at the entrance,
invented device ids; and how to read the daemon's figures back (its /metrics, its database)."""

from __future__ import annotations

import json
import re
import sqlite3
import time
from collections import defaultdict
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from urllib.request import urlopen

from paho.mqtt.client import Client
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from gateway.config.load import load_config
from gateway.decode.adverts import adv_to_json
from gateway.decode.beacons import encode_ibeacon
from tests.walks import STORE_UUID, click_collect_customer, walk_adverts, zone_centre

BASE = "rayon/paris-11"


def scrape(port: int) -> str:
    with urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
        text: str = reply.read().decode()
        return text


def metric(port: int, name: str, **labels: str) -> float:
    """One sample of the daemon's /metrics (0 when absent)."""
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    pattern = (
        rf"^rayon_{name}(?:\{{{re.escape(want)}\}})? (\S+)$" if want else rf"^rayon_{name} (\S+)$"
    )
    found = re.search(pattern, scrape(port), re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def consents(db: Path) -> dict[str, bool]:
    """customer id → marketing_push, as the daemon stored them."""
    with closing(sqlite3.connect(db)) as conn:
        rows = conn.execute("SELECT id, consent_marketing_push FROM customers").fetchall()
    return {cid: bool(push) for cid, push in rows}


def customer(i: int) -> dict[str, object]:
    return click_collect_customer(f"c-w-{i}", f"t-w-{i}", 100 + i)


def flood(port: int, topic: str, rate: float, seconds: float, sent: list[int]) -> None:
    """One app's flood: QoS 0 feedback for an offer it never got, `rate` a second."""
    client = Client(
        CallbackAPIVersion.VERSION2, "flooding-app", protocol=MQTTProtocolVersion.MQTTv5
    )
    client.connect("127.0.0.1", port)
    client.loop_start()
    body = json.dumps({"type": "feedback", "v": 1, "offer": "x" * 36, "state": "opened"}).encode()
    start = time.monotonic()
    n = 0
    while (elapsed := time.monotonic() - start) < seconds:
        if n < elapsed * rate:
            client.publish(topic, body, qos=0)
            n += 1
        else:
            time.sleep(0.0005)
    sent.append(n)
    client.loop_stop()
    client.disconnect()


def scanner_batches(config_path: Path, minors: list[int], now: float) -> dict[str, list[bytes]]:
    """The scanner nodes' messages (≤ 200 adverts each) while phones `minors` stand 8 s at
    the entrance from `now` on."""
    config = load_config(config_path)
    x, y = zone_centre(config, "entrance")
    per_node: dict[str, list[dict[str, object]]] = defaultdict(list)
    for minor in minors:
        for adv in walk_adverts(config, minor, [(x, y, 0), (x, y, 8)], now):
            per_node[adv.anchor].append(adv_to_json(adv)["adv"] | {"at": adv.at})
    return {
        node: [json.dumps(advs[i : i + 200]).encode() for i in range(0, len(advs), 200)]
        for node, advs in per_node.items()
    }


def invented_adverts(start: int, count: int, at: float) -> bytes:
    """One scanner message of `count` adverts, each from a device id made up for the flood
    (the store's UUID, minors from `start`)."""
    adverts = [
        {
            "at": at,
            "address": f"02:00:00:{i >> 16 & 255:02x}:{i >> 8 & 255:02x}:{i & 255:02x}",
            "rssi": -70,
            "manufacturer_data": {"76": encode_ibeacon(STORE_UUID, 7, i, -59).hex()},
        }
        for i in range(start, start + count)
    ]
    return json.dumps(adverts).encode()


def rss_mb(pid: int) -> float:
    """Resident memory of a live process, MB."""
    found = re.search(r"VmRSS:\s+(\d+)", Path(f"/proc/{pid}/status").read_text())
    return int(found.group(1)) / 1024 if found else 0.0
