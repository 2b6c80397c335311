"""`rayon bench [ACTION]`: the benchmarks as actions of the `rayon bench` command.

The product's command table names this module by a string (`gateway.cli.commands`), so it is
imported only when `rayon bench …` is parsed; each benchmark's own module is imported only when
its action is parsed or run.
"""

from __future__ import annotations

import argparse
import importlib

from gateway.cli.registry import Command, add_commands
from gateway.config.commandline import config_of

_HERE = __name__
BENCHMARKS: tuple[Command, ...] = tuple(
    Command(name, help_, _HERE, arguments=f"add_{name}_arguments", run=f"run_{name}")
    for name, help_ in (
        ("all", "every figure in one table (also: `rayon bench`)"),
        ("rules", "per-event rule cost with 10, 1,000 and 10,000 rules"),
        ("replay", "replay throughput of a simulated trace, adverts/s"),
        ("accuracy", "zone accuracy and position error on recorded data sets"),
        ("decode", "decode frames/s against ibeacon-ble and beacontools"),
        ("soak", "24 simulated hours, 2,000 devices: memory, evictions, offers, caps"),
        ("latency", "advert → PUBACK latency p50/p99 and outbox offers/s"),
    )
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The actions of `rayon bench`; with none, `rayon bench all` with its defaults."""
    add_commands(parser, BENCHMARKS, required=False)
    parser.set_defaults(handler="bench_all", entry=BENCHMARKS[0], quick=False, runs=None)
    parser.set_defaults(seconds=None)


def _benchmark_options(parser: argparse.ArgumentParser, name: str) -> None:
    """The options of the benchmark `name`, and its module's docstring as the description."""
    module = importlib.import_module(f"rayon_tooling.benchmarks.{name}")
    parser.description = module.__doc__
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    module.add_arguments(parser)


def add_all_arguments(parser: argparse.ArgumentParser) -> None:
    """`rayon bench all`."""
    _benchmark_options(parser, "suite")


def run_all(args: argparse.Namespace) -> int:
    """`rayon bench all`: every figure in one table."""
    from rayon_tooling.benchmarks.suite import bench_all

    return bench_all(args)


def add_rules_arguments(parser: argparse.ArgumentParser) -> None:
    """`rayon bench rules`."""
    _benchmark_options(parser, "rules")


def run_rules(args: argparse.Namespace) -> int:
    """`rayon bench rules`: the rule engine's cost per event."""
    from rayon_tooling.benchmarks.rules import bench_rules

    return bench_rules(config_of(args), args.sizes, args.repeats)


def add_replay_arguments(parser: argparse.ArgumentParser) -> None:
    """`rayon bench replay`."""
    _benchmark_options(parser, "replay")


def run_replay(args: argparse.Namespace) -> int:
    """`rayon bench replay`: the replay throughput."""
    from rayon_tooling.benchmarks.replay import bench_replay

    return bench_replay(config_of(args), args)


def add_accuracy_arguments(parser: argparse.ArgumentParser) -> None:
    """`rayon bench accuracy`."""
    _benchmark_options(parser, "accuracy")


def run_accuracy(args: argparse.Namespace) -> int:
    """`rayon bench accuracy`: zone accuracy and position error (the config: --simulator)."""
    from rayon_tooling.benchmarks.accuracy import bench_accuracy

    return bench_accuracy(args, config=config_of(args) if args.simulator else None)


def add_decode_arguments(parser: argparse.ArgumentParser) -> None:
    """`rayon bench decode`."""
    _benchmark_options(parser, "decode")


def run_decode(args: argparse.Namespace) -> int:
    """`rayon bench decode`: frames/s against the peer parsers."""
    from rayon_tooling.benchmarks.decode import bench_decode

    return bench_decode(args.frames, args.repeats, args.seed)


def add_soak_arguments(parser: argparse.ArgumentParser) -> None:
    """`rayon bench soak`."""
    _benchmark_options(parser, "soak")


def run_soak(args: argparse.Namespace) -> int:
    """`rayon bench soak`: simulated hours of many devices."""
    from rayon_tooling.benchmarks.soak import bench_soak

    return bench_soak(config_of(args), args)


def add_latency_arguments(parser: argparse.ArgumentParser) -> None:
    """`rayon bench latency`."""
    _benchmark_options(parser, "latency")


def run_latency(args: argparse.Namespace) -> int:
    """`rayon bench latency`: advert → PUBACK latency and outbox throughput."""
    from rayon_tooling.benchmarks.latency import bench_latency

    return bench_latency(args)
