"""`rayon simulate`: a trace (docs/design.md §6) of simulated shoppers walking the store, or with
`--calibration-walk` one surveyor walking through every zone (docs/calibration.md): mode A, a
tag the scanners hear; with `--customers`, an iPhone of the store app that also reports the
store beacons it hears (mode B), its token in the customers file."""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Iterator
from typing import TextIO

import numpy as np

from gateway.config.commandline import config_of, local_time
from gateway.config.model import Config
from gateway.errors import UsageError
from gateway.identity.customers import customer_to_obj
from gateway.offline.replay import write_jsonl
from gateway.sim.customers import demo_customers
from gateway.sim.simulator import PhoneModel, StoreSimulator
from gateway.sim.survey import survey_route, zone_truth


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
    parser.add_argument(
        "--calibration-walk",
        action="store_true",
        help="one surveyor through every zone, ~20 s in each (a walk for `rayon calibrate "
        "--map-out`); a tag, or with --customers an iPhone also reporting sightings; "
        "--shoppers and --minutes are ignored",
    )
    parser.add_argument(
        "--zone-truth",
        action="store_true",
        help="with --calibration-walk: write the truth as zone lines {at, device, zone}, as a "
        "surveyor noting zone by zone would",
    )


def run(args: argparse.Namespace) -> int:
    """Write the trace (and the truth, the customers); 0."""
    config = config_of(args)
    if args.zone_truth and not args.calibration_walk:
        raise UsageError("--zone-truth goes with --calibration-walk")
    if args.calibration_walk:
        return _calibration_walk(config, args)
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
    _write_customers(sim, args)
    print(
        f"wrote {n} trace lines (adverts and phones' sightings) of {args.shoppers} shoppers "
        f"over {args.minutes:g} min to {args.output}",
        file=sys.stderr,
    )
    return 0


def _calibration_walk(config: Config, args: argparse.Namespace) -> int:
    """One surveyor through every zone: a tag, or with --customers an iPhone (mode A + B)."""
    route = survey_route(config.zones, np.random.default_rng([args.seed % 2**64, 11]))
    phone = bool(args.customers)
    start = local_time(args.start, config)
    sim = StoreSimulator(
        config,
        shoppers=1,
        minutes=route.seconds() / 60.0,
        seed=args.seed,
        start_at=start,
        phones=PhoneModel(ios_share=1.0 if phone else 0.0),
        sightings=phone,
        beacons_heard_by_scanners=args.scanners_hear_beacons,
        paths=[route.path],
    )
    with open(args.output, "w", encoding="utf-8") as trace, _open_out(args.truth) as truth:
        n = sim.write(trace, None if args.zone_truth else truth)
        if truth is not None and args.zone_truth:
            for line in zone_truth(route, sim.devices()[0], start):
                write_jsonl(truth, line)
    _write_customers(sim, args)
    kind = "an iPhone (adverts and sightings)" if phone else "a tag"
    print(
        f"wrote {n} trace lines of a calibration walk with {kind} through "
        f"{len(route.stops)} zones over {route.seconds() / 60:.1f} min to {args.output}",
        file=sys.stderr,
    )
    return 0


def _write_customers(sim: StoreSimulator, args: argparse.Namespace) -> None:
    if args.customers:
        with open(args.customers, "w", encoding="utf-8") as fh:
            for customer in demo_customers(sim.devices(), args.seed):
                write_jsonl(fh, customer_to_obj(customer))


@contextlib.contextmanager
def _open_out(path: str | None) -> Iterator[TextIO | None]:
    if path is None:
        yield None
        return
    with open(path, "w", encoding="utf-8") as fh:
        yield fh
