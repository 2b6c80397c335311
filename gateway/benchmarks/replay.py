"""Replay throughput: a simulated 30-minute, 50-shopper trace through the whole pipeline.

    .venv/bin/python bench/bench_replay.py [--shoppers 50] [--minutes 30] [--runs 5]

decode → identity → locate → zones → rules, in one process on one core, with the reference
store's config and shipped rules, every shopper a consenting customer; nothing is written or
published (the sink discards), so this measures the pure pipeline.  Prints the median of the runs.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from gateway.clock import parse_local_time
from gateway.config import load_config
from gateway.demo import demo_customers
from gateway.identity import CustomerRegistry
from gateway.pipeline import Output, Pipeline
from gateway.replay import replay
from gateway.rules import load_rules
from gateway.sources.simulator import StoreSimulator

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--shoppers", type=int, default=50)
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    config = load_config(ROOT / "config.example.yaml")
    rules = load_rules(config.rules_dir, config)
    start = parse_local_time("2026-03-03T15:00:00", config.store.timezone)
    t0 = time.perf_counter()
    sim = StoreSimulator(config, args.shoppers, args.minutes, args.seed, start)
    trace = list(sim.adverts())
    customers = demo_customers(sim.devices(), args.seed)
    print(
        f"simulated {len(trace):,} adverts of {args.shoppers} shoppers over {args.minutes:g} min "
        f"in {time.perf_counter() - t0:.2f} s"
    )
    rates, offers = [], 0
    for _ in range(args.runs):
        pipeline = Pipeline(config, rules, CustomerRegistry(customers))
        collected: list[Output] = []
        stats = replay(pipeline, trace, collected.append)
        rates.append(stats.adverts_per_s)
        offers = stats.offers
    print(
        f"replay: median {statistics.median(rates):,.0f} adverts/s over {args.runs} runs "
        f"(min {min(rates):,.0f}, max {max(rates):,.0f}); {offers} offers per run"
    )


if __name__ == "__main__":
    main()
