"""Retention cost: how fast the job deletes, and how long one batch holds the database.

    .venv/bin/python bench/bench_retention.py [--rows 500000] [--runs 3]

Each run fills a fresh SQLite file with `--rows` sampled positions and `--rows / 10` zone
events (half of each past the retention periods), then runs the daemon's job step by step
(`purge_step`, 5,000 rows per table per step, one transaction each) until nothing is left
to delete.  Prints the median rows deleted per second and the longest step: while a step
runs, the daemon's database thread does nothing else, so the longest step bounds how late
a batch of offers can be written because of retention.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gateway.config.model import RetentionConfig  # noqa: E402
from gateway.events import EventKind, ZoneEvent  # noqa: E402
from gateway.store.repo import Position, Store  # noqa: E402
from gateway.store.retention import BATCH, Cutoffs, Purged, purge_step  # noqa: E402

NOW = 1_772_546_400.0
RETENTION = RetentionConfig()  # 24 h, 90 d, 3 y


def fill(store: Store, rows: int) -> None:
    """`rows` positions over the last 48 h and `rows // 10` exits over the last 180 days."""
    chunk = 50_000
    for start in range(0, rows, chunk):
        positions = [
            Position(NOW - 172_800 * i / rows, f"ibeacon:d:{i % 500}", f"c{i % 500}", 1, 2, 3)
            for i in range(start, min(rows, start + chunk))
        ]
        store.commit(positions=positions)
    events = rows // 10
    store.record_events(
        [
            ZoneEvent(
                NOW - 180 * 86400 * i / events,
                EventKind.EXIT,
                "aisle-tv",
                f"ibeacon:d:{i % 500}",
                f"c{i % 500}",
                30.0,
                {},
            )
            for i in range(events)
        ]
    )


def run_once(rows: int) -> tuple[float, float, int]:
    """(rows deleted per second, longest step in ms, rows deleted)."""
    with tempfile.TemporaryDirectory() as folder:
        store = Store(f"sqlite:///{Path(folder) / 'rayon.db'}")
        try:
            fill(store, rows)
            cutoffs = Cutoffs.at(RETENTION, NOW)
            total, longest = Purged(), 0.0
            started = time.perf_counter()
            while True:
                t0 = time.perf_counter()
                step = purge_step(store, cutoffs)
                longest = max(longest, time.perf_counter() - t0)
                total.add(step)
                if not step.full(BATCH):
                    break
            elapsed = time.perf_counter() - started
        finally:
            store.close()
    return total.total / elapsed, longest * 1000, total.total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=500_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    results = [run_once(args.rows) for _ in range(args.runs)]
    speeds = [r[0] for r in results]
    steps = [r[1] for r in results]
    print(f"retention on SQLite: {results[0][2]:,} rows deleted per run, {args.runs} runs")
    print(
        f"  deleted/s  median {statistics.median(speeds):>10,.0f}  "
        f"min {min(speeds):,.0f}  max {max(speeds):,.0f}"
    )
    print(
        f"  longest step (ms, {BATCH:,} rows per table)  median {statistics.median(steps):.1f}  "
        f"min {min(steps):.1f}  max {max(steps):.1f}"
    )


if __name__ == "__main__":
    main()
