"""Outbox throughput: offers/s published at QoS 1 to a private Mosquitto, PUBACKs awaited.

    .venv/bin/python bench/bench_outbox.py [--offers 5000] [--runs 5] [--window 64]

Each run writes `--offers` pending offers to a fresh SQLite store, then times one
`OutboxPublisher.drain()` on a real `MqttLink` (every offer read, published, acknowledged and
marked sent).  Starts its own broker on a free port.  Prints the median.  The logic lives in
`rayon_tooling.benchmarks.latency` (`rayon bench latency` prints this figure with the PUBACK
latency).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rayon_tooling.benchmarks.latency import offers_per_s, private_broker  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--offers", type=int, default=5000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--window", type=int, default=64)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp, private_broker(Path(tmp)) as port:
        rates = offers_per_s(port, Path(tmp), args.offers, args.runs, args.window)
    print(
        f"outbox: median {statistics.median(rates):,.0f} offers/s over {args.runs} runs of "
        f"{args.offers:,} (min {min(rates):,.0f}, max {max(rates):,.0f}), window {args.window}"
    )


if __name__ == "__main__":
    main()
