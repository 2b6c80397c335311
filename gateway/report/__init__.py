"""`rayon report`: the store's KPIs over a period, from the database, and PNG charts.

Footfall per hour, visits, dwell per zone, the zone funnel, offers per rule with their
feedback, conversion against the holdout group with a 95 % interval (uplift) and code-pool
usage; `--format table|json|csv`, `--png DIR` for the charts.  Every figure is defined in
docs/report.md.  The database is only read.

`query.py` reads the period's rows, `kpis.py` (with `funnel.py`, `offers.py`, `stats.py`)
computes the figures without IO, `render.py` and `table.py` write them, `charts.py` draws.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TextIO

from gateway.config.commandline import config_of
from gateway.config.model import Config
from gateway.errors import InvalidInput, UsageError
from gateway.report.funnel import parse_funnel
from gateway.report.kpis import DEFAULT_GOAL_ZONE, Report, build_report
from gateway.report.period import ACCEPTED_FORMS, resolve, time_arg
from gateway.report.query import read_period
from gateway.report.render import render
from gateway.store.database import missing_sqlite_file
from gateway.store.repo import Store
from gateway.textformat import Format

__all__ = ["add_arguments", "run", "run_report"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `rayon report` (the caller adds -c/--config)."""
    period = f"{ACCEPTED_FORMS}, in the store's timezone"
    parser.add_argument(
        "--since", type=time_arg, help=f"start (default: --until − 7 days): {period}"
    )
    parser.add_argument("--until", type=time_arg, help=f"end, excluded (default: now): {period}")
    parser.add_argument("--format", choices=[f.value for f in Format], default=Format.TABLE.value)
    parser.add_argument("-o", "--output", help="write the report to this file (default stdout)")
    parser.add_argument("--png", metavar="DIR", help="also draw the charts as PNG files in DIR")
    parser.add_argument(
        "--funnel",
        help="ordered zones of the funnel, comma-separated; a step may be a pattern "
        "(default: entrance,aisle-*,checkout)",
    )
    parser.add_argument(
        "--goal-zone",
        help=f"conversion goal: entering this zone while an offer is valid (default: "
        f"{DEFAULT_GOAL_ZONE} when the config has it)",
    )


def run(args: argparse.Namespace) -> int:
    """`rayon report` with the config that -c names."""
    return run_report(config_of(args), args)


def run_report(
    config: Config, args: argparse.Namespace, *, now: float | None = None, out: TextIO | None = None
) -> int:
    """`rayon report` from the options of `add_arguments`; `now` (default the wall clock) is
    the default end of the period.  The report goes to `--output`, else `out`, else stdout."""
    report, positions = _compute(config, args, time.time() if now is None else now)
    text = render(report, Format(args.format))
    if args.output:
        _write(Path(args.output), text)
    else:
        (out or sys.stdout).write(text)
    if args.png:
        from gateway.report.charts import write_charts

        for path in write_charts(report, config.zones, positions, Path(args.png)):
            print(f"wrote {path}", file=sys.stderr)
    return 0


def _compute(
    config: Config, args: argparse.Namespace, now: float
) -> tuple[Report, tuple[tuple[float, float], ...]]:
    zone_ids = [z.id for z in config.zones]
    period = resolve(args.since, args.until, config.store.timezone, now)
    funnel = parse_funnel(args.funnel, zone_ids)
    goal = _goal_zone(args.goal_zone, zone_ids)
    store = _open_store(config.database.url)
    try:
        data = read_period(store, period, points=bool(args.png))
    finally:
        store.close()
    report = build_report(
        data,
        store=(config.store.id, config.store.name),
        zones=config.zones,
        funnel=funnel,
        goal_zone=goal,
    )
    return report, data.points


def _goal_zone(name: str | None, zone_ids: list[str]) -> str | None:
    if name is None:
        return DEFAULT_GOAL_ZONE if DEFAULT_GOAL_ZONE in zone_ids else None
    if name not in zone_ids:
        raise UsageError(
            f"--goal-zone: no zone '{name}' in the config; zones are {', '.join(zone_ids)}"
        )
    return name


def _open_store(url: str) -> Store:
    """The store, read only; a SQLite file that does not exist is not created."""
    if (db := missing_sqlite_file(url)) is not None:
        raise InvalidInput(
            f"no database at {db} (database.url of the config): nothing to report yet; "
            "run the gateway or `rayon replay` first"
        )
    return Store(url)


def _write(path: Path, text: str) -> None:
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise InvalidInput(f"--output {path}: cannot write: {exc.strerror}") from None
