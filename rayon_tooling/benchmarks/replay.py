"""Replay throughput: a simulated trace through the whole pipeline, on one core.

    rayon bench replay -c config.example.yaml [--shoppers 50] [--minutes 30] [--runs 5]

decode → identity → locate → zones → rules with the config's anchors, zones and rules, every
shopper a consenting customer (the demo's profiles); nothing is written or published (the sink
discards), so this measures the pure pipeline.  Prints the median of the runs.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from typing import TextIO

from gateway.clock import parse_local_time
from gateway.config.model import Config
from gateway.identity.model import CustomerRegistry
from gateway.offline.replay import replay
from gateway.pipeline import Output, Pipeline
from gateway.rules.load import load_rules
from gateway.sim.customers import demo_customers
from gateway.sim.simulator import StoreSimulator


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `rayon bench replay` (the caller adds -c/--config)."""
    parser.add_argument("--shoppers", type=int, default=50)
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=1)


def bench_replay(config: Config, args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Simulate once, replay `runs` times, print adverts/s (median, min, max); always 0."""
    write = (out or sys.stdout).write
    rules = load_rules(config.rules_dir, config)
    start = parse_local_time("2026-03-03T15:00:00", config.store.timezone)
    t0 = time.perf_counter()
    sim = StoreSimulator(config, args.shoppers, args.minutes, args.seed, start)
    trace = list(sim.adverts())
    customers = demo_customers(sim.devices(), args.seed)
    write(
        f"simulated {len(trace):,} adverts of {args.shoppers} shoppers over "
        f"{args.minutes:g} min in {time.perf_counter() - t0:.2f} s\n"
    )
    rates, offers = [], 0
    for _ in range(args.runs):
        pipeline = Pipeline(config, rules, CustomerRegistry(customers))
        collected: list[Output] = []
        stats = replay(pipeline, trace, collected.append)
        rates.append(stats.adverts_per_s)
        offers = stats.offers
    write(
        f"replay: median {statistics.median(rates):,.0f} adverts/s over {args.runs} runs "
        f"(min {min(rates):,.0f}, max {max(rates):,.0f}); {offers} offers per run\n"
    )
    return 0
