"""`rayon simulate`: a trace (docs/design.md §6) of simulated shoppers walking the store."""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Iterator
from typing import TextIO

from gateway.config.commandline import config_of, local_time
from gateway.identity.customers import customer_to_obj
from gateway.offline.replay import write_jsonl
from gateway.sim.customers import demo_customers
from gateway.sim.simulator import StoreSimulator


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `rayon simulate`."""
    parser.add_argument("--shoppers", type=int, default=20)
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--start",
        default="2026-03-03T15:00:00",
        help="local start time in the store's timezone (ISO 8601)",
    )
    parser.add_argument("-o", "--output", required=True, help="trace file (JSON Lines)")
    parser.add_argument("--truth", help="ground-truth file (JSON Lines)")
    parser.add_argument("--customers", help="also write a customers JSONL file for the shoppers")
    parser.add_argument(
        "--scanners-hear-beacons",
        action="store_true",
        help="the store beacons advertise and the scanners hear them (a trace for `rayon "
        "calibrate`)",
    )


def run(args: argparse.Namespace) -> int:
    """Write the trace (and the truth, the customers); 0."""
    config = config_of(args)
    sim = StoreSimulator(
        config,
        shoppers=args.shoppers,
        minutes=args.minutes,
        seed=args.seed,
        start_at=local_time(args.start, config),
        beacons_heard_by_scanners=args.scanners_hear_beacons,
    )
    with open(args.output, "w", encoding="utf-8") as trace, _open_out(args.truth) as truth:
        n = sim.write(trace, truth)
    if args.customers:
        with open(args.customers, "w", encoding="utf-8") as fh:
            for customer in demo_customers(sim.devices(), args.seed):
                write_jsonl(fh, customer_to_obj(customer))
    print(
        f"wrote {n} trace lines (adverts and phones' sightings) of {args.shoppers} shoppers "
        f"over {args.minutes:g} min to {args.output}",
        file=sys.stderr,
    )
    return 0


@contextlib.contextmanager
def _open_out(path: str | None) -> Iterator[TextIO | None]:
    if path is None:
        yield None
        return
    with open(path, "w", encoding="utf-8") as fh:
        yield fh
