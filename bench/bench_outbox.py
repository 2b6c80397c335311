"""Outbox throughput: offers/s published at QoS 1 to a private Mosquitto, PUBACKs awaited.

    .venv/bin/python bench/bench_outbox.py [--offers 5000] [--runs 5] [--window 64]

Each run writes `--offers` pending offers to a fresh SQLite store, then times one
`OutboxPublisher.drain()` on a real `MqttLink` (every offer read, published, acknowledged and
marked sent).  Starts its own broker on a free port, like the tests.  Prints the median.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gateway.clock import ManualClock  # noqa: E402
from gateway.deliver.mqtt import MqttLink  # noqa: E402
from gateway.deliver.outbox import OutboxPublisher  # noqa: E402
from gateway.deliver.topics import Topics  # noqa: E402
from gateway.events import Offer, Purpose  # noqa: E402
from gateway.store import Store  # noqa: E402
from tests.broker import Mosquitto, find_mosquitto  # noqa: E402

T0 = 1_772_546_400.0


def offers(n: int) -> list[Offer]:
    return [
        Offer(
            id=f"o{i:06}",
            rule="tv-aisle-dwell",
            store="paris-11",
            zone="aisle-tv",
            customer=f"c{i % 500}",
            token=f"tok-{i % 500}",
            created_at=T0 + i * 0.001,
            expires_at=T0 + 3600,
            title="-15 % sur les TV",
            body="Offre valable aujourd'hui au rayon TV.",
            code="TV15",
            url=None,
            purpose=Purpose.COMMERCIAL,
        )
        for i in range(n)
    ]


async def one_run(broker: Mosquitto, folder: Path, n: int, window: int) -> float:
    store = Store(f"sqlite:///{folder / 'rayon.db'}", max_pending=n)
    store.enqueue_offers(offers(n))
    try:
        async with MqttLink(broker.host, broker.port, f"bench-{folder.name}") as link:
            outbox = OutboxPublisher(
                store,
                link,
                Topics("rayon", "paris-11"),
                ManualClock(T0),
                ZoneInfo("UTC"),
                window=window,
            )
            t0 = time.perf_counter()
            result = await outbox.drain()
            elapsed = time.perf_counter() - t0
    finally:
        store.close()
    assert result.sent == n, result
    return n / elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--offers", type=int, default=5000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--window", type=int, default=64)
    args = ap.parse_args()
    binary = find_mosquitto()
    if binary is None:
        sys.exit("mosquitto is not installed (apt-get install mosquitto)")
    with tempfile.TemporaryDirectory() as tmp:
        broker = Mosquitto(binary, Path(tmp) / "mosquitto")
        broker.start()
        try:
            rates = []
            for run in range(args.runs):
                folder = Path(tmp) / f"run{run}"
                folder.mkdir()
                rates.append(asyncio.run(one_run(broker, folder, args.offers, args.window)))
        finally:
            broker.kill()
    print(
        f"outbox: median {statistics.median(rates):,.0f} offers/s over {args.runs} runs of "
        f"{args.offers:,} (min {min(rates):,.0f}, max {max(rates):,.0f}), window {args.window}"
    )


if __name__ == "__main__":
    main()
