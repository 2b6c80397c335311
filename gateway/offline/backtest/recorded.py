"""`rayon backtest --recorded`: the rules over the rolling recording of `rayon run` (config
`record`), the draft set (`--rules DIR`) beside the live one.

The recording holds what the live gateway kept of consenting customers (their adverts and
their phones' sightings).  Both sets run over the same stretch, [`--since`, `--until`), from
the same start: the customers as they were at `--since` (their CRM records, with the visits
the gateway stored after `--since` taken off `visits` and `last_visit` put back to the last
one stored before it), and the caps as they were then (the ledger rebuilt from the offers
stored before `--since`).  Nothing is published and nothing is written: the database is only
read.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from gateway.config.commandline import local_time
from gateway.config.model import Config
from gateway.errors import ConfigError, InvalidInput
from gateway.events import Offer, TraceItem
from gateway.identity.model import Customer
from gateway.offline.backtest.compare import Comparison, render_comparison
from gateway.offline.backtest.core import backtest
from gateway.offline.backtest.result import BacktestResult
from gateway.rules.load import load_rules
from gateway.rules.model import RuleSet
from gateway.sources.trace import TraceError, read_trace
from gateway.store.asof import customers_at
from gateway.store.recording import first_time, last_time, overlapping, segments
from gateway.textformat import Format

DAY_S = 86400.0


@dataclass(frozen=True, slots=True)
class Stretch:
    """The part of the recording replayed: [since, until), either end open."""

    since: float | None = None
    until: float | None = None

    def holds(self, at: float) -> bool:
        return (self.since is None or at >= self.since) and (self.until is None or at < self.until)


def recorded_items(folder: Path, stretch: Stretch) -> Iterator[TraceItem | TraceError]:
    """The recorded inputs of `stretch`, in time order (bad or cut lines as TraceErrors)."""
    for path in overlapping(folder, stretch.since, stretch.until):
        for item in read_trace(path):
            if isinstance(item, TraceError) or stretch.holds(item.at):
                yield item


def stretch_of(config: Config, since: str | None, until: str | None) -> Stretch:
    """`--since`/`--until` (store-local ISO 8601 unless given an offset) as a Stretch."""
    stretch = Stretch(
        local_time(since, config) if since else None, local_time(until, config) if until else None
    )
    if stretch.since is not None and stretch.until is not None and stretch.since >= stretch.until:
        raise InvalidInput(f"--since {since} is not before --until {until}: nothing to replay")
    return stretch


def last_day(config: Config) -> Stretch | None:
    """The last 24 hours of the recording, or None when nothing is recorded."""
    end = last_time(config.record_dir)
    return None if end is None else Stretch(end - DAY_S, end + 1.0)


def state_at(config: Config, since: float | None) -> tuple[list[Customer], list[Offer]]:
    """The customers and the offers the caps count, as at `since` (now when None), read
    from the database, which must exist (it is never created here)."""
    from gateway.store.database import missing_sqlite_file
    from gateway.store.repo import Store
    from gateway.store.tables import NOT_DECIDED

    if (db := missing_sqlite_file(config.database.url)) is not None:
        raise InvalidInput(
            f"no database at {db}: a backtest on the recording takes the customers and the "
            "caps from the gateway's database; run it where `rayon run` runs (or -c its config)"
        )
    store = Store(config.database.url)
    try:
        customers = store.load_customers()
        log = store.offer_log(until=since)
        visits = store.visits() if since is not None else []
    finally:
        store.close()
    offered = [r.offer for r in log if r.state not in NOT_DECIDED]
    return (customers_at(customers, visits, since) if since is not None else customers), offered


def load_set(config: Config, folder: Path, err: TextIO) -> RuleSet | None:
    """A rule set, or None once its located errors are printed on `err`."""
    try:
        rules = load_rules(folder, config)
    except ConfigError as exc:
        for d in exc.diagnostics:
            print(d, file=err)
        print(f"{folder}: the rules do not load: nothing was backtested", file=err)
        return None
    for warning in rules.warnings:
        print(warning, file=err)
    return rules


def compare_recorded(
    config: Config, stretch: Stretch, draft_dir: Path | None, err: TextIO
) -> Comparison | None:
    """Run the live set (and the draft set) over the recording; None once what is wrong is
    printed on `err`."""
    folder = config.record_dir
    if not segments(folder):
        raise InvalidInput(
            f"nothing recorded in {folder}: `rayon run` records there while `record` is on "
            "(the default); backtest a trace file meanwhile (rayon backtest TRACE)"
        )
    if stretch.since is None:  # from the first line: the caps as they were then
        stretch = Stretch(first_time(folder), stretch.until)
    live = load_set(config, config.rules_dir, err)
    draft = load_set(config, draft_dir, err) if draft_dir is not None else None
    if live is None or (draft_dir is not None and draft is None):
        return None
    customers, offered = state_at(config, stretch.since)

    def run(rules: RuleSet, where: Path) -> BacktestResult:
        items = recorded_items(folder, stretch)
        return backtest(
            config,
            rules,
            customers,
            items,
            trace=str(folder),
            rules_dir=str(where),
            offered=offered,
        )

    return Comparison(
        recording=str(folder),
        since=stretch.since,
        until=stretch.until,
        offered_before=len(offered),
        live=run(live, config.rules_dir),
        draft=run(draft, draft_dir) if draft is not None and draft_dir is not None else None,
    )


def run_recorded(
    config: Config,
    stretch: Stretch,
    draft_dir: Path | None,
    out: TextIO,
    fmt: Format | str = Format.TABLE,
    err: TextIO | None = None,
) -> int:
    """`rayon backtest --recorded`: the comparison on `out`; 0, or 1 when the rules do not
    load (InvalidInput when there is nothing to replay)."""
    err = err if err is not None else sys.stderr
    found = compare_recorded(config, stretch, draft_dir, err)
    if found is None:
        return 1
    out.write(render_comparison(found, Format(fmt)))
    return 0
