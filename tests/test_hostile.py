"""One app, with only its own topics, must not take the store down: `rayon run` as a real
process against a real Mosquitto, fed what an adversarial probe sent it.

- a flood of feedback on one app's topic while the CRM withdraws consent: every withdrawal
  is applied and those customers get nothing;
- 30,000 invented device ids from one scanner node: the tracked-device cap sheds and counts;
- the gateway dies on an error: `gateway/status` says `offline` all the same.

The repeated runs that give the figures are bench/bench_hostile.py.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import threading
import time
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

import pytest

from tests.broker import Mosquitto, Subscriber, free_port
from tests.hostile import (
    BASE,
    consents,
    customer,
    flood,
    invented_adverts,
    metric,
    rss_mb,
    scanner_batches,
    wait_for,
)
from tests.stores import reference_store
from tests.test_run import daemon
from tests.walks import click_collect_customer

WITHDRAWN = 30

pytestmark = pytest.mark.mqtt
__all__ = ["daemon"]  # test_run's fixture, on this module's config_path


@pytest.fixture
def metrics_port() -> int:
    return free_port()


@pytest.fixture
def config_path(tmp_path: Path, mosquitto: Mosquitto, metrics_port: int) -> Path:
    metrics = {"listen": f"127.0.0.1:{metrics_port}"}
    return reference_store(tmp_path, port=mosquitto.port, metrics=metrics)


def online(subscriber: Callable[..., Subscriber]) -> Subscriber:
    status = subscriber(f"{BASE}/gateway/status")
    assert json.loads(status.wait(1, timeout=30)[0].payload)["state"] == "online"
    return status


def test_a_feedback_flood_never_loses_a_consent_withdrawal(
    config_path: Path,
    daemon: subprocess.Popen[str],
    subscriber: Callable[..., Subscriber],
    mosquitto: Mosquitto,
    metrics_port: int,
) -> None:
    status = online(subscriber)
    office = subscriber(f"{BASE}/offers/+")
    db = config_path.parent / "rayon.db"
    control = click_collect_customer("c-ok", "t-ok", 99)
    people = [customer(i) for i in range(WITHDRAWN)]
    for c in [control, *people]:
        office.publish(f"{BASE}/crm/customers/{c['id']}", json.dumps(c).encode(), retain=True)
    wait_for(lambda: len(consents(db)) == WITHDRAWN + 1, 20, "the CRM's customers stored")

    sent: list[int] = []
    flooding = threading.Thread(
        target=flood, args=(mosquitto.port, f"{BASE}/feedback/t-flood", 10_000, 3.0, sent)
    )
    flooding.start()
    time.sleep(0.5)
    for c in people:  # withdrawn during the flood, as the back office does: retained, QoS 1
        withdrawn = c | {"consent": {"instore_location": True, "marketing_push": False}}
        office.publish(f"{BASE}/crm/customers/{c['id']}", json.dumps(withdrawn).encode(), True)
        time.sleep(2.0 / WITHDRAWN)
    flooding.join()
    assert daemon.poll() is None, "the flood stopped the gateway"

    withdrawn_ids = {str(c["id"]) for c in people}

    def applied() -> int:
        return sum(not push for cid, push in consents(db).items() if cid in withdrawn_ids)

    wait_for(lambda: applied() == WITHDRAWN, 30, f"{WITHDRAWN} withdrawals applied")

    minors = [99, *(100 + i for i in range(WITHDRAWN))]
    for node, bodies in scanner_batches(config_path, minors, time.time()).items():
        for body in bodies:
            office.publish(f"{BASE}/scanners/{node}/adv", body, qos=1)
    office.wait(1, timeout=30)  # the control customer's offer, decided after all the others
    office.publish("rayon/marker", b"")
    time.sleep(2.0)
    got = [m.topic for m in office.messages]
    assert got == [f"{BASE}/offers/t-ok"], got
    dropped = metric(
        metrics_port, "inbound_messages_total", **{"class": "feedback", "outcome": "dropped"}
    )
    rejected = metric(
        metrics_port, "inbound_messages_total", **{"class": "feedback", "outcome": "rejected"}
    )
    print(f"\nflood: {sent[0]} feedback in 3 s; {dropped:.0f} dropped, {rejected:.0f} rejected")
    assert status.messages  # still there; the suite's other tests read the payload


def test_invented_device_ids_are_shed_at_the_cap_and_counted(
    config_path: Path,
    daemon: subprocess.Popen[str],
    subscriber: Callable[..., Subscriber],
    metrics_port: int,
) -> None:
    online(subscriber)
    node = subscriber(f"{BASE}/offers/t-ok")
    control = click_collect_customer("c-ok", "t-ok", 99)
    node.publish(f"{BASE}/crm/customers/c-ok", json.dumps(control).encode(), retain=True)
    now = time.time()
    spoofed = 30_000
    for start in range(0, spoofed, 400):  # one node, 400 invented ids a message (< 64 kB)
        node.publish(f"{BASE}/scanners/pi-entrance/adv", invented_adverts(start, 400, now), qos=1)
    wait_for(
        lambda: metric(metrics_port, "devices_shed_total") >= spoofed - 5_000,
        30,
        "the cap's sheds counted",
    )
    assert metric(metrics_port, "tracked_devices", of="tracked") <= 5_000
    assert metric(metrics_port, "tracked_devices", of="max") == 5_000
    assert daemon.poll() is None
    print(f"\n{spoofed} invented ids: RSS {rss_mb(daemon.pid):.1f} MB")
    for n, bodies in scanner_batches(config_path, [99], time.time()).items():
        for body in bodies:
            node.publish(f"{BASE}/scanners/{n}/adv", body, qos=1)
    assert json.loads(node.wait(1, timeout=20)[0].payload)["rule"] == "click-collect"


def test_a_gateway_that_dies_on_an_error_says_offline(
    config_path: Path, daemon: subprocess.Popen[str], subscriber: Callable[..., Subscriber]
) -> None:
    """The database breaks under it (here a table dropped; on a Pi, a full disk): the writer
    fails, the gateway exits non-zero, and the retained status is `offline`, not the
    `online` of its last minute."""
    status = online(subscriber)
    node = subscriber("rayon/marker")
    db = config_path.parent / "rayon.db"
    shopper = click_collect_customer("c-5", "t-5", 5)
    node.publish(f"{BASE}/crm/customers/c-5", json.dumps(shopper).encode(), retain=True)
    wait_for(lambda: len(consents(db)) == 1, 20, "the customer stored")
    with closing(sqlite3.connect(db)) as conn, conn:  # closed, and committed
        conn.execute("DROP TABLE zone_events")
        conn.execute("DROP TABLE runtime_state")  # so the last write, at exit, fails too
    for n, bodies in scanner_batches(config_path, [5], time.time()).items():
        for body in bodies:
            node.publish(f"{BASE}/scanners/{n}/adv", body, qos=1)
    _, err = daemon.communicate(timeout=30)
    assert daemon.returncode != 0, err
    last = status.wait(2, timeout=10)[-1]
    assert json.loads(last.payload)["state"] == "offline", [m.payload for m in status.messages]
    # the retained message a newcomer reads says so too
    late = subscriber(f"{BASE}/gateway/status")
    assert json.loads(late.wait(1, timeout=10)[0].payload)["state"] == "offline"
