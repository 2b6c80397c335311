"""Hostile input against a live gateway, repeated: the figures behind tests/test_hostile.py.

    .venv/bin/python bench/bench_hostile.py [--runs 5] [--rate 10000] [--seconds 3]
                                           [--spoofed 30000]

Each run starts a private Mosquitto and `rayon run` (the reference store, its own SQLite file),
then:
1. **flood**: one app publishes feedback on its own topic at `--rate` messages a second for
   `--seconds` (QoS 0, as fast as paho sends), while the back office withdraws push consent from
   30 customers (retained, QoS 1). Reported: feedback sent, withdrawals applied (of 30), offers
   the withdrawn customers then got when they walked in (must be 0), the control customer's
   offer, and the gateway's own count of feedback dropped and rejected.
2. **invented ids**: one scanner node reports `--spoofed` device ids with the store's UUID, 400
   a message. Reported: the daemon's resident memory after, devices tracked, shed by the cap.
Prints one line per run and the medians.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


from rayon_tooling.benchmarks.latency import private_broker  # noqa: E402
from tests.broker import BrokerAt, Subscriber, free_port  # noqa: E402
from tests.hostile import (  # noqa: E402
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
from tests.stores import reference_store  # noqa: E402
from tests.walks import click_collect_customer  # noqa: E402

WITHDRAWN = 30


@dataclass(frozen=True, slots=True)
class Run:
    sent: int
    applied: int
    offers_to_withdrawn: int
    control_offer: bool
    dropped: float
    rejected: float
    rss_mb: float
    tracked: float
    shed: float


def one_run(folder: Path, port: int, args: argparse.Namespace) -> Run:
    metrics_port = free_port()
    config = reference_store(folder, port=port, metrics={"listen": f"127.0.0.1:{metrics_port}"})
    db = folder / "rayon.db"
    daemon = subprocess.Popen(
        [sys.executable, "-m", "gateway", "run", "-c", str(config)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    office = Subscriber(BrokerAt(port), "bench-office").start(f"{BASE}/offers/+")
    try:
        wait_for(lambda: _up(metrics_port), 30, "the gateway's metrics")
        control = click_collect_customer("c-ok", "t-ok", 99)
        people = [customer(i) for i in range(WITHDRAWN)]
        for c in [control, *people]:
            office.publish(f"{BASE}/crm/customers/{c['id']}", json.dumps(c).encode(), retain=True)
        wait_for(lambda: len(consents(db)) == WITHDRAWN + 1, 30, "the customers stored")
        sent: list[int] = []
        topic = f"{BASE}/feedback/t-flood"
        flooding = threading.Thread(target=flood, args=(port, topic, args.rate, args.seconds, sent))
        flooding.start()
        time.sleep(min(0.5, args.seconds / 4))
        for c in people:
            withdrawn = c | {"consent": {"instore_location": True, "marketing_push": False}}
            office.publish(f"{BASE}/crm/customers/{c['id']}", json.dumps(withdrawn).encode(), True)
            time.sleep(args.seconds / 2 / WITHDRAWN)
        flooding.join()
        ids = {str(c["id"]) for c in people}

        def applied() -> int:
            return sum(not push for cid, push in consents(db).items() if cid in ids)

        with contextlib.suppress(AssertionError):  # how many were: a figure of the run
            wait_for(lambda: applied() == WITHDRAWN, 30, "the withdrawals")
        for node, bodies in scanner_batches(
            config, [99, *range(100, 100 + WITHDRAWN)], time.time()
        ).items():
            for body in bodies:
                office.publish(f"{BASE}/scanners/{node}/adv", body, qos=1)
        mine = f"{BASE}/offers/t-ok"
        with contextlib.suppress(AssertionError):
            wait_for(lambda: any(m.topic == mine for m in office.messages), 30, "its offer")
        time.sleep(2.0)
        control_offer = any(m.topic == mine for m in office.messages)
        to_withdrawn = sum(m.topic != mine for m in office.messages)
        fb = {"class": "feedback"}
        dropped = metric(metrics_port, "inbound_messages_total", **fb, outcome="dropped")
        rejected = metric(metrics_port, "inbound_messages_total", **fb, outcome="rejected")
        now = time.time()
        for start in range(0, args.spoofed, 400):
            count = min(400, args.spoofed - start)
            office.publish(
                f"{BASE}/scanners/pi-entrance/adv", invented_adverts(start, count, now), qos=1
            )
        expected_shed = max(0, args.spoofed - 5_000)
        with contextlib.suppress(AssertionError):
            wait_for(
                lambda: metric(metrics_port, "devices_shed_total") >= expected_shed, 60, "sheds"
            )
        return Run(
            sent=sent[0],
            applied=applied(),
            offers_to_withdrawn=to_withdrawn,
            control_offer=control_offer,
            dropped=dropped,
            rejected=rejected,
            rss_mb=rss_mb(daemon.pid),
            tracked=metric(metrics_port, "tracked_devices", of="tracked"),
            shed=metric(metrics_port, "devices_shed_total"),
        )
    finally:
        office.stop()
        daemon.terminate()
        daemon.wait(timeout=15)


def _up(port: int) -> bool:
    try:
        metric(port, "inputs_total")
    except OSError:
        return False
    return True


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--rate", type=float, default=10_000)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--spoofed", type=int, default=30_000)
    args = ap.parse_args()
    runs: list[Run] = []
    print(
        f"flood {args.rate:,.0f} feedback/s for {args.seconds:g} s with {WITHDRAWN} consent "
        f"withdrawals; then {args.spoofed:,} invented device ids (cap 5,000)"
    )
    print(
        "run      sent  applied  offers→withdrawn  control  fb dropped  fb rejected"
        "    RSS MB  tracked     shed"
    )
    for i in range(args.runs):
        with tempfile.TemporaryDirectory() as tmp, private_broker(Path(tmp)) as port:
            r = one_run(Path(tmp), port, args)
        runs.append(r)
        print(
            f"{i + 1:>3} {r.sent:>9,} {r.applied:>5}/{WITHDRAWN} {r.offers_to_withdrawn:>17} "
            f"{'yes' if r.control_offer else 'NO':>8} {r.dropped:>11,.0f} {r.rejected:>12,.0f} "
            f"{r.rss_mb:>9.1f} {r.tracked:>8,.0f} {r.shed:>8,.0f}"
        )
    med = statistics.median
    print(
        f"median: {med(r.sent for r in runs):,.0f} sent, "
        f"{sum(r.applied for r in runs)}/{WITHDRAWN * len(runs)} withdrawals applied, "
        f"{sum(r.offers_to_withdrawn for r in runs)} offers to withdrawn customers, "
        f"RSS {med(r.rss_mb for r in runs):.1f} MB (min {min(r.rss_mb for r in runs):.1f}, "
        f"max {max(r.rss_mb for r in runs):.1f}), shed {med(r.shed for r in runs):,.0f}"
    )


if __name__ == "__main__":
    main()
