"""The handlers behind each `rayon` command; each returns the process exit code."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

from gateway.cli.main import resolve_config
from gateway.clock import parse_local_time
from gateway.config.load import load_config
from gateway.config.model import Config
from gateway.errors import ConfigError, InvalidInput, Severity


def _config(args: argparse.Namespace) -> Config:
    return load_config(resolve_config(args.config))


def local_time(text: str, config: Config) -> float:
    """An ISO 8601 time, local to the store unless it carries an offset, as epoch seconds."""
    try:
        return parse_local_time(text, config.store.timezone)
    except ValueError as exc:
        raise InvalidInput(str(exc)) from None


@contextlib.contextmanager
def _open_out(path: str | None) -> Iterator[TextIO | None]:
    if path is None:
        yield None
        return
    with open(path, "w", encoding="utf-8") as fh:
        yield fh


def firmware_folder(config: Config) -> Path:
    """Where `rayon firmware render` writes and `rayon check` looks: beside config.yaml."""
    return config.path.parent / "firmware"


def cmd_check(args: argparse.Namespace) -> int:
    from gateway.ops.firmware import check_firmware
    from gateway.rules.selftest import check_rules

    path = resolve_config(args.config)
    try:
        config = load_config(path)
    except ConfigError as exc:
        for d in exc.diagnostics:
            print(d)
        return 1
    diagnostics = check_rules(config) + check_firmware(config, firmware_folder(config))
    for d in diagnostics:
        print(d)
    errors = sum(d.severity is Severity.ERROR for d in diagnostics)
    warnings = len(diagnostics) - errors
    print(
        f"{path}: {'FAILED' if errors else 'ok'}: {errors} error(s), {warnings} warning(s)",
        file=sys.stderr,
    )
    return 1 if errors else 0


def cmd_decode(args: argparse.Namespace) -> int:
    from gateway.cli.decode import decode_stream

    if args.input == "-":
        bad = decode_stream(sys.stdin, sys.stdout, sys.stderr)
    else:
        with open(args.input, encoding="utf-8") as fh:
            bad = decode_stream(fh, sys.stdout, sys.stderr, name=args.input)
    return 1 if bad else 0


def cmd_simulate(args: argparse.Namespace) -> int:
    from gateway.sim.customers import demo_customers
    from gateway.sim.simulator import StoreSimulator

    config = _config(args)
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
        from gateway.identity.customers import customer_to_obj
        from gateway.offline.replay import write_jsonl

        with open(args.customers, "w", encoding="utf-8") as fh:
            for customer in demo_customers(sim.devices(), args.seed):
                write_jsonl(fh, customer_to_obj(customer))
    print(
        f"wrote {n} trace lines (adverts and phones' sightings) of {args.shoppers} shoppers "
        f"over {args.minutes:g} min to {args.output}",
        file=sys.stderr,
    )
    return 0


def cmd_calibrate(args: argparse.Namespace) -> int:
    from gateway.offline.calibrate import run_calibrate

    return run_calibrate(_config(args), args)


def cmd_replay(args: argparse.Namespace) -> int:
    from gateway.offline.replayrun import run_replay

    return run_replay(_config(args), args)


def cmd_customers_import(args: argparse.Namespace) -> int:
    from gateway.identity.customers import read_customers
    from gateway.store.repo import Store

    config = _config(args)
    customers, errors = read_customers(Path(args.file))
    for message in errors:
        print(message, file=sys.stderr)
    store = Store(config.database.url)
    try:
        for customer in customers:
            store.upsert_customer(customer)
    finally:
        store.close()
    print(f"imported {len(customers)} customer(s), {len(errors)} line(s) rejected", file=sys.stderr)
    return 1 if errors else 0


def cmd_run(args: argparse.Namespace) -> int:
    from gateway.runtime.daemon import run_daemon

    return asyncio.run(run_daemon(_config(args)))


def cmd_demo(args: argparse.Namespace) -> int:
    from gateway.sim.demo import run_demo

    return asyncio.run(run_demo(_config(args), args))


def cmd_backtest(args: argparse.Namespace) -> int:
    from gateway.offline.backtest.run import run_from_args

    return run_from_args(_config(args), args)


def cmd_report(args: argparse.Namespace) -> int:
    from gateway.report import run_report

    return run_report(_config(args), args)


def cmd_schema_rules(args: argparse.Namespace) -> int:
    from gateway.rules.schema.export import write_schemas

    try:
        config: Config | None = _config(args)
    except InvalidInput as exc:  # a schema without the config's zone ids still helps
        print(f"rayon: {exc}; writing the schemas without zone completion", file=sys.stderr)
        config = None
    for path in write_schemas(Path(args.output), config):
        print(f"wrote {path}", file=sys.stderr)
    return 0


def cmd_bench_rules(args: argparse.Namespace) -> int:
    from rayon_tooling.benchmarks.rules import bench_rules

    return bench_rules(_config(args), args.sizes, args.repeats)


def cmd_bench_replay(args: argparse.Namespace) -> int:
    from rayon_tooling.benchmarks.replay import bench_replay

    return bench_replay(_config(args), args)


def cmd_bench_latency(args: argparse.Namespace) -> int:
    from rayon_tooling.benchmarks.latency import bench_latency

    return bench_latency(args)


def cmd_bench_all(args: argparse.Namespace) -> int:
    from rayon_tooling.benchmarks.suite import bench_all

    return bench_all(args)


def cmd_bench_soak(args: argparse.Namespace) -> int:
    from rayon_tooling.benchmarks.soak import bench_soak

    return bench_soak(_config(args), args)


def cmd_bench_decode(args: argparse.Namespace) -> int:
    from rayon_tooling.benchmarks.decode import bench_decode

    return bench_decode(args.frames, args.repeats, args.seed)


def cmd_bench_accuracy(args: argparse.Namespace) -> int:
    from rayon_tooling.benchmarks.accuracy import bench_accuracy

    return bench_accuracy(args, config=_config(args) if args.simulator else None)


def cmd_explain(args: argparse.Namespace) -> int:
    from gateway.offline.explain import run_explain

    config = _config(args)
    trace = Path(args.trace) if args.trace else None
    return run_explain(config, args.customer, args.rule, local_time(args.at, config), trace)


def cmd_forget(args: argparse.Namespace) -> int:
    from gateway.ops.forget import run_forget

    return run_forget(_config(args), args.customer, broker=not args.offline)


def cmd_codes_import(args: argparse.Namespace) -> int:
    from gateway.store.repo import Store

    config = _config(args)
    try:
        lines = Path(args.file).read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise InvalidInput(f"{args.file}: {exc.strerror}") from None
    codes = [c for c in (line.split(",")[0].strip() for line in lines) if c and c[0] != "#"]
    store = Store(config.database.url)
    try:
        added = store.import_codes(args.pool, codes)
        free = sum(1 for p, _, _, at in store.codes() if p == args.pool and at is None)
    finally:
        store.close()
    print(
        f"pool {args.pool}: {added} new code(s) imported, {len(codes) - added} already there; "
        f"{free} free",
        file=sys.stderr,
    )
    return 0


def cmd_firmware_render(args: argparse.Namespace) -> int:
    from gateway.ops.firmware import render_all

    config = _config(args)
    folder = Path(args.output) if args.output else firmware_folder(config)
    for path in render_all(config, folder):
        print(f"wrote {path}", file=sys.stderr)
    print(
        f"flash each with `esphome run <file>`; secrets go in {folder / 'secrets.yaml'}",
        file=sys.stderr,
    )
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from gateway.ops.doctor import run_doctor

    return run_doctor(resolve_config(args.config), sys.stdout)
