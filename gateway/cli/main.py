"""`rayon` — the command line (docs/design.md §7).

Exit codes: 0 ok, 1 invalid input, 2 usage, 3 runtime failure.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from gateway import __version__
from gateway.errors import InvalidInput, RayonError
from gateway.runtime.logs import setup_logging

log = logging.getLogger("gateway")

DEFAULT_CONFIGS = (Path("config.yaml"), Path("/etc/rayon/config.yaml"))

Handler = Callable[[argparse.Namespace], int]


def resolve_config(arg: str | None) -> Path:
    """The -c path, else ./config.yaml, else /etc/rayon/config.yaml."""
    if arg:
        path = Path(arg)
        if not path.is_file():
            raise InvalidInput(f"{arg}: no such config file (pass -c PATH to the config.yaml)")
        return path
    for candidate in DEFAULT_CONFIGS:
        if candidate.is_file():
            return candidate
    raise InvalidInput(
        "no config found: pass -c PATH, or create ./config.yaml or /etc/rayon/config.yaml "
        "(start from config.example.yaml)"
    )


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "-c", "--config", help="config file (default ./config.yaml, /etc/rayon/config.yaml)"
    )
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")


def _add(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], name: str, help_: str, handler: str
) -> argparse.ArgumentParser:
    p = sub.add_parser(name, help=help_, description=help_)
    _common(p)
    p.set_defaults(handler=handler)
    return p


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rayon",
        description="Rayon: BLE beacons to aisle zones to marketers' rules to offers over MQTT.",
    )
    parser.add_argument("--version", action="version", version=f"rayon {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    run = _add(
        sub, "run", "run the gateway daemon (Bluetooth, scanner nodes, phones → offers)", "run"
    )
    run.add_argument(
        "--log-format",
        choices=("text", "json"),
        default="text",
        help="json: one object per line, for central log collection",
    )
    demo = _add(
        sub, "demo", "the simulated reference store, live, with offers as a phone sees them", "demo"
    )
    demo.add_argument("--shoppers", type=int, default=24, help="simulated shoppers (default 24)")
    demo.add_argument("--minutes", type=float, default=30.0, help="simulated minutes (default 30)")
    demo.add_argument(
        "--speed",
        type=float,
        default=30.0,
        help="how many times faster than real time (default 30)",
    )
    demo.add_argument("--seed", type=int, default=7)
    demo.add_argument(
        "--start",
        default="2026-03-03T14:45:00",
        help="simulated local start time in the store's timezone (ISO 8601)",
    )
    demo.add_argument("--quiet", action="store_true", help="no live view, only offers and summary")
    _add(sub, "check", "validate config and rules, run the rules' inline tests", "check")
    _add(
        sub,
        "doctor",
        "check the adapter, broker, database, config and clock, and say how to fix each failure",
        "doctor",
    )
    dec = sub.add_parser(
        "decode",
        help="decode advertisements: JSON Lines in, JSON Lines out",
        description="Read JSON Lines {manufacturer_data, service_data} and write "
        "one decoded beacon (or null) per line. Decodes every beacon: no privacy "
        "filter.",
    )
    dec.add_argument("input", nargs="?", default="-", help="file (default stdin)")
    dec.set_defaults(handler="decode")
    sim = _add(sub, "simulate", "write a simulated trace of shoppers walking the store", "simulate")
    sim.add_argument("--shoppers", type=int, default=20)
    sim.add_argument("--minutes", type=float, default=30.0)
    sim.add_argument("--seed", type=int, default=1)
    sim.add_argument(
        "--start",
        default="2026-03-03T15:00:00",
        help="local start time in the store's timezone (ISO 8601)",
    )
    sim.add_argument("-o", "--output", required=True, help="trace file (JSON Lines)")
    sim.add_argument("--truth", help="ground-truth file (JSON Lines)")
    sim.add_argument("--customers", help="also write a customers JSONL file for the shoppers")
    sim.add_argument(
        "--scanners-hear-beacons",
        action="store_true",
        help="the store beacons advertise and the scanners hear them (a trace for `rayon "
        "calibrate`)",
    )
    from gateway.offline.calibrate import add_arguments as calibrate_arguments

    calibrate_arguments(
        _add(
            sub,
            "calibrate",
            "fit rssi_at_1m and path_loss_exponent per anchor from a trace of store beacons "
            "heard by the scanners, or of a walk with known positions (--truth)",
            "calibrate",
        )
    )
    rep = _add(sub, "replay", "run a recorded or simulated trace through the gateway", "replay")
    rep.add_argument("trace", help="trace file (JSON Lines, docs/trace.md)")
    rep.add_argument("--dry-run", action="store_true", help="publish nothing")
    rep.add_argument("--fixes-out", help="write every position fix (JSON Lines)")
    rep.add_argument("--events-out", help="write every zone and visit event (JSON Lines)")
    rep.add_argument("--offers-out", help="write every offer (JSON Lines)")
    bt = _add(
        sub,
        "backtest",
        "what the rules would have done on a recorded or simulated trace "
        "(publishes nothing, writes nothing)",
        "backtest",
    )
    from gateway.offline.backtest.run import add_arguments as backtest_arguments

    backtest_arguments(bt)
    from gateway.report import add_arguments as report_arguments

    report_arguments(
        _add(sub, "report", "KPIs of a period from the database, and PNG charts", "report")
    )
    exp = _add(sub, "explain", "why a rule did or did not fire for a customer at a time", "explain")
    exp.add_argument("--customer", required=True, help="customer id")
    exp.add_argument("--rule", required=True, help="rule id")
    exp.add_argument(
        "--at",
        required=True,
        help="local time in the store's timezone (ISO 8601), e.g. 2026-03-03T15:00:31",
    )
    exp.add_argument("--trace", help="replay this trace up to --at and explain its last decision")
    fg = _add(
        sub,
        "forget",
        "erase everything held about a customer: database, saved live state, retained CRM record",
        "forget",
    )
    fg.add_argument("customer", help="customer id (as in the CRM)")
    fg.add_argument(
        "--offline",
        action="store_true",
        help="do not contact the broker (the gateway is stopped and no retained record exists)",
    )
    _nested_commands(sub)
    return parser


def _group(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], name: str, help_: str
) -> argparse._SubParsersAction[argparse.ArgumentParser]:
    """A command with actions of its own (`rayon codes import …`)."""
    parser = sub.add_parser(name, help=help_, description=help_)
    return parser.add_subparsers(dest=f"{name}_command", metavar="ACTION", required=True)


def _nested_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    codes = _group(sub, "codes", "manage the code pools of `code_pool:` offers")
    cimp = _add(
        codes,
        "import",
        "add codes to a pool: one per line (CSV: the first column); "
        "blank lines and # comments are skipped",
        "codes_import",
    )
    cimp.add_argument("pool")
    cimp.add_argument("file")
    firmware = _group(sub, "firmware", "ESPHome configs of the store's ESP32 nodes")
    render = _add(
        firmware,
        "render",
        "write one ESPHome config per scanner node and store "
        "beacon of the config (secrets stay in secrets.yaml)",
        "firmware_render",
    )
    render.add_argument("-o", "--output", help="folder (default: firmware/ beside config.yaml)")
    schema = _group(sub, "schema", "write JSON Schemas for editors")
    srules = _add(
        schema, "rules", "the rule and policy schemas (yaml-language-server)", "schema_rules"
    )
    srules.add_argument(
        "-o", "--output", default=".vscode", help="folder to write the schemas to (default .vscode)"
    )
    _bench_commands(_group(sub, "bench", "measure speed (prints figures, asserts nothing)"))
    _bench_by_default(sub.choices["bench"])
    customers = _group(sub, "customers", "manage the customer registry")
    _add(
        customers, "import", "import customers from JSON Lines or CSV", "customers_import"
    ).add_argument("file")


def _bench_commands(bench: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from rayon_tooling.benchmarks import accuracy as bench_accuracy
    from rayon_tooling.benchmarks import decode as bench_decode
    from rayon_tooling.benchmarks import latency as bench_latency
    from rayon_tooling.benchmarks import replay as bench_replay
    from rayon_tooling.benchmarks import rules as bench_rules
    from rayon_tooling.benchmarks import soak as bench_soak
    from rayon_tooling.benchmarks import suite as bench_suite

    bench.required = False  # `rayon bench` alone: every figure (_bench_by_default)
    for name, module, help_ in (
        ("all", bench_suite, "every performance figure in one table (also: `rayon bench`)"),
        ("rules", bench_rules, "per-event rule cost with 10, 1,000 and 10,000 rules"),
        ("replay", bench_replay, "replay throughput of a simulated trace, adverts/s"),
        ("accuracy", bench_accuracy, "zone accuracy and position error on recorded data sets"),
        ("decode", bench_decode, "decode frames/s against ibeacon-ble and beacontools"),
        ("soak", bench_soak, "24 simulated hours, 2,000 devices: memory, evictions, offers, caps"),
        ("latency", bench_latency, "advert → PUBACK latency p50/p99 and outbox offers/s"),
    ):
        b = _add(bench, name, help_, f"bench_{name}")
        for action in b._actions:  # `rayon bench -c X rules`: the group's -c/-v stand
            if action.dest in ("config", "verbose"):
                action.default = argparse.SUPPRESS
        b.description = module.__doc__
        b.formatter_class = argparse.RawDescriptionHelpFormatter
        module.add_arguments(b)


def _bench_by_default(bench: argparse.ArgumentParser) -> None:
    """`rayon bench` with no action runs `rayon bench all` with its defaults."""
    _common(bench)
    bench.set_defaults(handler="bench_all", quick=False, runs=None, seconds=None)


def _handler(name: str) -> Handler:
    from gateway.cli import commands

    fn: Handler = getattr(commands, f"cmd_{name}")
    return fn


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    setup_logging(
        getattr(args, "verbose", False),
        getattr(args, "log_format", "text"),
        under_systemd=bool(os.environ.get("JOURNAL_STREAM")),
    )
    try:
        return _handler(args.handler)(args)
    except RayonError as exc:
        print(f"rayon: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
