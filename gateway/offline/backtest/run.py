"""`rayon backtest TRACE`: what the rules would have done over a recorded or simulated trace.

The trace goes through the same `Pipeline` and `replay` as `rayon replay --dry-run` (ticks on
the trace's clock, flushed at the end), with an engine that also keeps, for every rule that
was considered and did not fire, the engine's reason.  Nothing is published and nothing is
written to the database: customers are only read from it (or from `--customers FILE`).

Per rule the report gives the offers that would go out (holdout ones excluded), the distinct
customers reached, holdout hits (the control group: recorded, not sent), cap hits (per
customer limit, cooldown, campaign budget), policy hits (pressure, quiet hours, min_gap,
max_offers_per_visit), no push consent, the other reasons (conditions not met, validity dates,
trigger not reached, outranked, code pool exhausted) and offers by hour of the day in the
store's time.  A "why not" count is per decision: each event that triggered the rule and was
stopped for that reason counts once.  Formats: a table for people, `json` (`as_json`: its field
names are stable) and `csv` (one row per rule, `CSV_COLUMNS`, `h00`…`h23` for the hours).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path
from typing import TextIO

from gateway.config.commandline import config_of
from gateway.config.model import Config
from gateway.errors import ConfigError, InvalidInput
from gateway.identity.model import Customer
from gateway.offline.backtest.core import backtest
from gateway.offline.backtest.report import render
from gateway.offline.progress import Progress, lines_with_progress
from gateway.rules.load import load_rules
from gateway.rules.model import RuleSet
from gateway.sources.trace import iter_trace, read_trace
from gateway.textformat import Format

__all__ = ["add_arguments", "run_backtest", "run_from_args"]


# -- running ---------------------------------------------------------------------------------


def run_backtest(
    config: Config,
    trace_path: Path,
    rules_dir: Path | None,
    out: TextIO,
    fmt: Format | str = Format.TABLE,
    *,
    customers_file: Path | None = None,
    progress: bool | None = None,
    err: TextIO | None = None,
) -> int:
    """`rayon backtest`: the report on `out`; 0, or 1 (with located diagnostics on `err`)
    when the rules, the trace or the customers cannot be read.

    `rules_dir` None backtests the config's rules; `customers_file` None reads the customers
    from the config's database (read only).  `progress` None draws a bar on `err` only when
    it is a terminal and the report is not JSON.
    """
    err = err if err is not None else sys.stderr
    fmt = Format(fmt)
    directory = rules_dir if rules_dir is not None else config.rules_dir
    inputs = _inputs(config, directory, customers_file, trace_path, err)
    if inputs is None:
        return 1
    rules, customers = inputs
    show = progress if progress is not None else (err.isatty() and fmt is not Format.JSON)
    bar = Progress(trace_path.stat().st_size, err, "backtest", (1_000_000, " MB")) if show else None
    try:
        items = (
            read_trace(trace_path)  # a segment of the recording
            if trace_path.name.endswith(".gz")
            else iter_trace(lines_with_progress(trace_path, bar), str(trace_path))
        )
        result = backtest(
            config, rules, customers, items, trace=str(trace_path), rules_dir=str(directory)
        )
    finally:
        if bar is not None:
            bar.close()
    out.write(render(result, fmt))
    return 0


def _inputs(
    config: Config, rules_dir: Path, customers_file: Path | None, trace: Path, err: TextIO
) -> tuple[RuleSet, list[Customer]] | None:
    """The rules and customers, or None once what is wrong is printed on `err`."""
    try:
        rules = load_rules(rules_dir, config)
        customers = _customers(config, customers_file)
        _check_trace(trace)
    except ConfigError as exc:
        for d in exc.diagnostics:
            print(d, file=err)
        print(f"{rules_dir}: the rules do not load: nothing was backtested", file=err)
        return None
    except InvalidInput as exc:
        print(f"rayon backtest: {exc}", file=err)
        return None
    for warning in rules.warnings:
        print(warning, file=err)
    return rules, customers


def _check_trace(path: Path) -> None:
    if not path.is_file():
        raise InvalidInput(f"{path}: no such trace file (record one, or `rayon simulate -o`)")


def _customers(config: Config, path: Path | None) -> list[Customer]:
    """From `path` (JSON Lines or CSV, every line valid), else read from the database."""
    from gateway.identity.customers import read_customers

    if path is None:
        return _stored_customers(config.database.url)
    if not path.is_file():
        raise InvalidInput(f"{path}: no such customers file (JSON Lines or CSV, docs/trace.md)")
    customers, errors = read_customers(path)
    if errors:
        raise InvalidInput("\n".join(errors) + f"\n{path}: fix these lines and run again")
    return customers


def _stored_customers(url: str) -> list[Customer]:
    """Read the customers; a SQLite file that does not exist is not created."""
    from gateway.store.database import missing_sqlite_file
    from gateway.store.repo import Store

    if (db := missing_sqlite_file(url)) is not None:
        raise InvalidInput(
            f"no database at {db}: import the customers first (`rayon customers import "
            "FILE`), or backtest with `--customers FILE`"
        )
    store = Store(url)
    try:
        return store.load_customers()
    finally:
        store.close()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `rayon backtest` (the caller adds -c/--config)."""
    parser.add_argument(
        "trace", nargs="?", help="trace file (JSON Lines, docs/trace.md; .gz read too)"
    )
    parser.add_argument(
        "--recorded",
        action="store_true",
        help="replay the recording of `rayon run` instead, with the customers and caps as "
        "they were at --since; with --rules, the draft set beside the live one",
    )
    parser.add_argument("--since", help="with --recorded: from this store-local time (ISO 8601)")
    parser.add_argument("--until", help="with --recorded: up to this store-local time")
    parser.add_argument("--rules", help="backtest the draft rules of this folder instead")
    parser.add_argument(
        "--customers", help="customers from this JSON Lines or CSV file, not the database"
    )
    parser.add_argument("--format", choices=[f.value for f in Format], default=Format.TABLE.value)
    parser.add_argument("-o", "--output", help="write the report to this file (default stdout)")
    parser.add_argument(
        "--progress", action="store_true", default=None, help="draw a progress bar on stderr"
    )


def run(args: argparse.Namespace) -> int:
    """`rayon backtest` with the config that -c names."""
    return run_from_args(config_of(args), args)


def _usage(args: argparse.Namespace) -> str | None:
    """What is wrong with the combination of options, or None."""
    if args.recorded and args.trace:
        return "give a trace file or --recorded, not both"
    if not args.recorded and not args.trace:
        return "give a trace file (rayon backtest TRACE) or --recorded (the gateway's recording)"
    if not args.recorded and (args.since or args.until):
        return "--since and --until choose a stretch of the recording: add --recorded"
    if args.recorded and args.customers:
        return "--recorded takes the customers from the database, as they were at --since"
    return None


def run_from_args(config: Config, args: argparse.Namespace) -> int:
    """`rayon backtest` from the options of `add_arguments`."""
    from gateway.offline.backtest.recorded import run_recorded, stretch_of

    if (problem := _usage(args)) is not None:
        print(f"rayon backtest: {problem}", file=sys.stderr)
        return 2
    rules = Path(args.rules) if args.rules else None
    customers = Path(args.customers) if args.customers else None
    with contextlib.ExitStack() as stack:
        out = stack.enter_context(open(args.output, "w", encoding="utf-8")) if args.output else None
        if args.recorded:
            stretch = stretch_of(config, args.since, args.until)
            return run_recorded(config, stretch, rules, out or sys.stdout, args.format)
        return run_backtest(
            config, Path(args.trace), rules, out or sys.stdout, args.format,
            customers_file=customers, progress=args.progress,
        )  # fmt: skip
