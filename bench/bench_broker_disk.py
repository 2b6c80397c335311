"""What the shipped Mosquitto persistence writes to disk, per offer and per day.

    .venv/bin/python bench/bench_broker_disk.py [--customers 0,1000,5000] [--offers 200]

For each store size (retained CRM customers), a private Mosquitto with the persistence lines
of deploy/mosquitto/mosquitto.conf (`autosave_interval`, `autosave_on_changes`, the queue
limits) holds that many retained customer records (~0.4 KB of JSON each, like the CRM's), one
app online and 20 apps offline with persistent sessions.  Then `--offers` offers (~0.6 KB) go
out one at a time, each PUBACK awaited (a live store's pace: offers come one by one), half to
the online app, half queued for offline ones; then as many QoS 1 feedback messages, and as
many QoS 0 sightings, to a persistent gateway session.  Mosquitto's own write counter
(`wchar` of /proc/PID/io: the bytes it handed to write(), what the SD card receives before its
own write amplification) is read around each phase, with the number of saves in its log.

Prints, per size: the size of `mosquitto.db`, saves and bytes written per offer, per feedback
and per sighting, and what idling 3 s writes.  Linux only (/proc).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from paho.mqtt.client import Client  # noqa: E402
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion  # noqa: E402
from paho.mqtt.packettypes import PacketTypes  # noqa: E402
from paho.mqtt.properties import Properties  # noqa: E402

from tests.broker import find_mosquitto, free_port  # noqa: E402

SHIPPED = ROOT / "deploy" / "mosquitto" / "mosquitto.conf"
KEPT = ("autosave_interval", "autosave_on_changes", "max_queued_messages", "max_queued_bytes")
BASE = "rayon/paris-11"
OFFLINE_APPS = 20


def shipped_persistence() -> list[str]:
    """The persistence and queue lines of the shipped mosquitto.conf, as shipped."""
    lines = SHIPPED.read_text(encoding="utf-8").splitlines()
    return [line for line in lines if line.split(" ", 1)[0] in KEPT]


@dataclass(frozen=True, slots=True)
class Phase:
    """What one phase made Mosquitto write: `n` messages, `saves` full saves, `written` bytes."""

    n: int
    saves: int
    written: int

    def per(self) -> str:
        n = max(self.n, 1)
        return f"{self.saves / n:5.2f} {self.written / n / 1024:9.1f}"


class Broker:
    """A private Mosquitto with the shipped persistence, its write counter and its saves."""

    def __init__(self, folder: Path) -> None:
        binary = find_mosquitto()
        if binary is None:
            raise SystemExit("mosquitto is not installed: apt-get install mosquitto")
        self.port, self.folder = free_port(), folder
        self.log = folder / "mosquitto.log"
        conf = folder / "mosquitto.conf"
        lines = [f"listener {self.port} 127.0.0.1", "allow_anonymous true", "persistence true"]
        lines += [f"persistence_location {folder}/", "log_dest stdout", "log_type all"]
        lines += ["user root"] if os.geteuid() == 0 else []
        conf.write_text("\n".join([*lines, *shipped_persistence()]) + "\n")
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen([str(binary), "-c", str(conf)], stdout=out, stderr=out)
        time.sleep(0.3)

    def written(self) -> int:
        io = Path(f"/proc/{self.proc.pid}/io").read_text()
        found = re.search(r"^wchar: (\d+)$", io, re.M)
        return int(found.group(1)) if found else 0

    def saves(self) -> int:
        return self.log.read_text(errors="replace").count("Saving in-memory database")

    def settled(self) -> tuple[int, int]:
        """Saves and bytes written once the broker has stopped saving (for 0.5 s)."""
        last = (self.saves(), self.written())
        while True:
            time.sleep(0.5)
            now = (self.saves(), self.written())
            if now == last:
                return now
            last = now

    @contextmanager
    def phase(self, n: int, out: list[Phase]) -> Iterator[None]:
        saves, written = self.settled()  # what came before is saved
        yield
        after = self.settled()  # with the last message's save
        out.append(Phase(n, after[0] - saves, after[1] - written))

    def db_size(self) -> int:
        db = self.folder / "mosquitto.db"
        return db.stat().st_size if db.exists() else 0

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait(10)


def client(port: int, client_id: str, *, session: bool = False) -> Client:
    v5 = MQTTProtocolVersion.MQTTv5
    c = Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=v5)
    props = None
    if session:
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = 3600
    c.connect("127.0.0.1", port, clean_start=not session, properties=props)
    c.loop_start()
    return c


def subscribed(port: int, client_id: str, topic: str) -> Client:
    c = client(port, client_id, session=True)
    done = threading.Event()
    c.on_subscribe = lambda *_a: done.set()
    c.subscribe(topic, 1)
    if not done.wait(5):
        raise SystemExit(f"no SUBACK for {client_id}")
    return c


def customer(i: int) -> bytes:
    return json.dumps(
        {
            "id": f"c-{i:05}",
            "token": f"tok{i:05}-x9Qm2LrT7bWc4Ze8",
            "devices": [f"ibeacon:8d8c1a2e-5b3f-4c1d-9e2a-0f6b7c8d9e10:1:{i}"],
            "consent": {"instore_location": True, "marketing_push": True},
            "first_name": "Nadia",
            "segments": ["loyal", "family"],
            "interests": ["tv", "audio", "gaming"],
            "tier": "gold",
            "visits": 12,
            "last_visit": 1772550000,
            "attributes": {"city": "Paris", "store": "paris-11"},
        }
    ).encode()


def offer(i: int) -> bytes:
    return json.dumps(
        {
            "type": "offer",
            "v": 1,
            "id": f"5f0c2a8e-6b1d-5c3e-9a47-{i:012}",
            "rule": "tv-aisle-dwell",
            "store": "paris-11",
            "zone": "aisle-tv",
            "created_at": "2026-03-03T15:00:40+01:00",
            "expires_at": "2026-03-03T18:00:40+01:00",
            "title": "-15 % sur les TV",
            "body": "Offre valable aujourd'hui au Rayon TV. Montrez ce code en caisse.",
            "code": "TV15",
            "url": "rayon://offers/tv15",
            "purpose": "commercial",
        }
    ).encode()


def one_size(folder: Path, customers: int, n: int) -> tuple[int, list[Phase]]:
    """The database's size and the phases: offers one by one, feedback, sightings, idle, and
    a burst (whose `written` is offers/s, acknowledged, followed by its phase)."""
    broker = Broker(folder)
    phases: list[Phase] = []
    try:
        pub = client(broker.port, "rayon-bench-gateway")
        for i in range(customers):
            pub.publish(f"{BASE}/crm/customers/c-{i:05}", customer(i), 1, retain=True)
        pub.publish(f"{BASE}/marker", b"", 1).wait_for_publish(30)
        gateway = subscribed(broker.port, "rayon-paris-11-gateway", f"{BASE}/feedback/+")
        online = subscribed(broker.port, "online-app", f"{BASE}/offers/online")
        for k in range(OFFLINE_APPS):
            subscribed(broker.port, f"offline-{k}", f"{BASE}/offers/offline-{k}").disconnect()
        props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
        props.MessageExpiryInterval = 3 * 3600
        with broker.phase(n, phases):
            for i in range(n):
                to = "online" if i % 2 else f"offline-{i % OFFLINE_APPS}"
                pub.publish(f"{BASE}/offers/{to}", offer(i), 1, properties=props).wait_for_publish(
                    10
                )
        app = client(broker.port, "app-sender")
        with broker.phase(n, phases):
            for i in range(n):
                fb = {"type": "feedback", "v": 1, "offer": f"o{i}", "state": "delivered", "at": 1}
                app.publish(f"{BASE}/feedback/online", json.dumps(fb).encode(), 1).wait_for_publish(
                    10
                )
        with broker.phase(n, phases):
            for i in range(n):
                sighting = {"at": 1772550000 + i, "beacons": [{"uuid": "8d8c", "rssi": -70}]}
                app.publish(f"{BASE}/phones/online/sightings", json.dumps(sighting).encode(), 0)
            app.publish(f"{BASE}/marker", b"", 1).wait_for_publish(10)
        with broker.phase(0, phases):
            time.sleep(3)
        size = broker.db_size()
        started = time.monotonic()
        with broker.phase(n, phases):  # a burst: every offer in flight at once, all queued
            infos = [
                pub.publish(
                    f"{BASE}/offers/offline-{i % OFFLINE_APPS}", offer(i), 1, properties=props
                )
                for i in range(n)
            ]
            for info in infos:
                info.wait_for_publish(60)
            phases.append(Phase(n, 0, int(n / (time.monotonic() - started))))
        for c in (pub, gateway, online, app):
            c.loop_stop()
    finally:
        broker.stop()
    return size, phases


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--customers", default="0,1000,5000", help="retained customers, per run")
    ap.add_argument("--offers", type=int, default=200)
    args = ap.parse_args()
    sizes = [int(s) for s in args.customers.split(",")]
    print(f"shipped: {'; '.join(shipped_persistence())}")
    print(
        "customers  db KiB | per offer: saves  KiB | per feedback: saves  KiB "
        "| per sighting: saves  KiB | idle 3 s: saves KiB | burst: offers/s saves/offer"
    )
    for customers in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            size, phases = one_size(Path(tmp), customers, args.offers)
        offers, feedback, sightings, idle, rate, burst = phases
        print(
            f"{customers:9,} {size / 1024:7.0f} | {offers.per():>22} | {feedback.per():>22} "
            f"| {sightings.per():>22} | {idle.saves:5} {idle.written / 1024:6.0f} "
            f"| {rate.written:14,} {burst.saves / max(burst.n, 1):11.2f}"
        )


if __name__ == "__main__":
    main()
