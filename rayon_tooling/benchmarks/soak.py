"""The soak: a simulated day of a store with thousands of returning customers, on the event clock.

    rayon bench soak -c config.example.yaml [--hours 24] [--devices 2000] [--seed 1] [--db F]

Every device is a customer who consented (the demo's profiles); their visits (`soakstream`)
become a stream of adverts with event times, run through `Pipeline` as `rayon replay` does
(a tick every event second) and written by the real `OutputWriter` / `persist` into a SQLite
file; the pipeline starts from that store (`restore`: the ledger from its offers table) and
the live state is saved every simulated hour, as the daemon does.  Every simulated hour the
outbox is drained (pending offers marked sent, as the publisher would) and the process's
resident memory (VmRSS) and the sizes of the in-memory structures are sampled.

Shoppers arrive while the store is open, from 8/24 to 21/24 of the period: 24 h run from
00:00 to 24:00 on Tuesday 2026-03-03 (open 08:00–21:00); a shorter period is that day shrunk
around 14:30.  After the last visit, time runs on until every device should be forgotten
(visit timeout, `visits.gap`, the locator's idle time).  Then it checks (`soakcheck`):
memory bounded (the last hours' RSS within `RSS_SLACK_MB` of the busy hours' peak), tracked
devices back to 0 after closing, no offer lost (every offer decided is in the outbox table,
none dropped), caps hold (recomputed from the offers and visits tables, not the ledger).
Exit 0 when all hold, 3 otherwise.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

from gateway.config.model import Config
from gateway.errors import RuntimeFailure
from gateway.events import Advertisement
from gateway.identity.model import Consent, Customer, CustomerRegistry
from gateway.offline.replay import TICK_S, flush_horizon
from gateway.offline.writer import OutputWriter
from gateway.pipeline import LOCATOR_IDLE_S, PRUNE_EVERY_S, Output, Pipeline
from gateway.rules.load import load_rules
from gateway.sim.customers import demo_customers
from gateway.store.persist import RUNTIME_KEY, load_pools
from gateway.store.repo import Store
from gateway.store.tables import NOT_DECIDED
from rayon_tooling.benchmarks import python_child, soakstream
from rayon_tooling.benchmarks.soakcheck import (
    Sample,
    Verdict,
    check_caps,
    check_evicted,
    check_lost,
    check_memory,
)

HOUR_S = 3600.0
DAY = "2026-03-03"  # a Tuesday, inside the shipped TV campaign's validity
REFERENCE = Path(__file__).resolve().parents[2] / "config.example.yaml"


@dataclass(slots=True)
class SoakResult:
    """What a soak measured and what its checks found."""

    hours: float
    devices: int
    visits: int
    adverts: int = 0
    offers: int = 0
    seconds: float = 0.0
    samples: list[Sample] = field(default_factory=list)
    final_sizes: dict[str, int] = field(default_factory=dict)
    verdicts: list[Verdict] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(v.ok for v in self.verdicts)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `rayon bench soak` (the caller adds -c/--config)."""
    parser.add_argument("--hours", type=float, default=24.0, help="simulated hours (24)")
    parser.add_argument("--devices", type=int, default=2000, help="distinct devices (2000)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--db", default=None, help="SQLite file to write (default: a temp one)")


def bench_soak(config: Config, args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Run the soak, print the hourly table and the checks; 0 if they all hold, else 3."""
    write = (out or sys.stdout).write
    if args.hours <= 0 or args.devices <= 0:
        print("rayon bench soak: --hours and --devices must be positive", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="rayon-soak-") as tmp:
        db = Path(args.db) if args.db else Path(tmp) / "soak.db"
        result = run_soak(config, args.hours, args.devices, args.seed, db)
    write(render(result))
    return 0 if result.ok else 3


def run_soak(config: Config, hours: float, devices: int, seed: int, db: Path) -> SoakResult:
    """The whole soak into the SQLite file `db` (created if missing); see the module doc."""
    start, opens, closes = _period(config, hours)
    visits = soakstream.plan_visits(config, devices, opens, closes, seed)
    customers = soak_customers(config, devices, seed)
    result = SoakResult(hours, devices, len(visits))
    store = Store(f"sqlite:///{db}")
    try:
        store.upsert_customers(customers)
        pipeline, writer = start_pipeline(config, store)
        ticker = _Ticker(pipeline, writer, store, start)
        began = time.perf_counter()
        stream = soakstream.adverts(config, visits, seed)
        _drive(ticker, stream, _end(config, start, hours, visits), result)
        result.seconds = time.perf_counter() - began
        result.final_sizes = pipeline.state_sizes()
        _restart_check(config, store, pipeline)
        result.verdicts = [
            check_memory(result.samples),
            check_evicted(result.final_sizes),
            check_lost(db, ticker.decided),
            check_caps(db, pipeline.engine.rules, config.store.timezone),
        ]
    finally:
        store.close()
    return result


def soak_customers(config: Config, devices: int, seed: int) -> list[Customer]:
    """The demo's customer profiles for the soak's devices, every one with both consents."""
    ids = soakstream.device_ids(config, devices)
    both = Consent(instore_location=True, marketing_push=True)
    return [dataclasses.replace(c, consent=both) for c in demo_customers(ids, seed)]


def _period(config: Config, hours: float) -> tuple[float, float, float]:
    """(start, opens, closes) in epoch seconds: see the module docstring."""
    day = datetime.fromisoformat(DAY).replace(tzinfo=config.store.timezone)
    start = (day + timedelta(hours=14.5 - hours * 14.5 / 24)).timestamp()
    return start, start + hours * HOUR_S * 8 / 24, start + hours * HOUR_S * 21 / 24


def start_pipeline(config: Config, store: Store) -> tuple[Pipeline, OutputWriter]:
    """A pipeline as the daemon starts one: customers, pools, saved state and ledger."""
    pools = load_pools(store)
    registry = CustomerRegistry(store.load_customers())
    pipeline = Pipeline(config, load_rules(config.rules_dir, config), registry, pools=pools)
    offered = [r.offer for r in store.offer_log() if r.state not in NOT_DECIDED]
    pipeline.restore(store.load_runtime(RUNTIME_KEY), offered)
    writer = OutputWriter(config, store, {}, pools, registry.by_device)
    return pipeline, writer


class _Ticker:
    """The event clock of the soak: a pipeline tick every second, and at each simulated
    hour: pending outputs written, the live state saved, the outbox drained, a sample."""

    def __init__(
        self, pipeline: Pipeline, writer: OutputWriter, store: Store, start: float
    ) -> None:
        self.pipeline, self.writer, self.store = pipeline, writer, store
        self.next_tick, self.hour_at = start + TICK_S, start + HOUR_S
        self.decided: list[str] = []  # ids of every offer the pipeline decided
        self.samples: list[Sample] = []
        self.adverts = 0

    def feed(self, adv: Advertisement) -> None:
        self.run_to(adv.at)
        self.sink(self.pipeline.feed(adv))
        self.adverts += 1

    def run_to(self, at: float) -> None:
        """Every tick due by `at` (inclusive), and the hours they complete."""
        while at >= self.next_tick:
            self.sink(self.pipeline.tick(self.next_tick))
            self.next_tick += TICK_S
            if self.next_tick > self.hour_at:
                self.hour(self.hour_at)
                self.hour_at += HOUR_S

    def sink(self, out: Output) -> None:
        if out:
            self.decided.extend(o.id for o in out.offers)
            self.writer(out)

    def hour(self, at: float) -> None:
        self.writer.flush()
        self.store.commit(runtime={RUNTIME_KEY: self.pipeline.snapshot_changes()}, at=at)
        _drain(self.store, at)
        sizes = self.pipeline.state_sizes()
        count = sum(self.store.counts_by_state().values())
        self.samples.append(Sample(len(self.samples) + 1, rss_mb(), sizes, self.adverts, count))


def _drive(
    ticker: _Ticker, stream: Iterable[Advertisement], end: float, result: SoakResult
) -> None:
    """Feed the stream up to `end`, let time run on to it, then take the last sample."""
    for adv in _until(stream, end):
        ticker.feed(adv)
    ticker.run_to(end)
    if ticker.hour_at - HOUR_S < end:  # the last, partial hour
        ticker.hour(end)
    result.adverts, result.offers = ticker.adverts, len(ticker.decided)
    result.samples = ticker.samples


def _end(config: Config, start: float, hours: float, visits: Sequence[soakstream.Visit]) -> float:
    """When every device is surely forgotten: the period's end, or later if a visit runs
    past it, plus the visit timeout, exits, the zone tracker's gap and the locator's idle
    time (a pruning round included)."""
    last = max((v.end for v in visits), default=start)
    after = flush_horizon(config) + config.visits.gap + PRUNE_EVERY_S + LOCATOR_IDLE_S
    return max(start + hours * HOUR_S, last + after)


def _until(stream: Iterable[Advertisement], end: float) -> Iterator[Advertisement]:
    for adv in stream:
        if adv.at > end:
            return
        yield adv


def _drain(store: Store, at: float) -> None:
    """Mark every pending offer sent, as the publisher would with the broker up."""
    while due := store.due_offers(limit=1000):
        store.mark_sent_many([o.id for o in due], at)


def _restart_check(config: Config, store: Store, pipeline: Pipeline) -> None:
    """A restart from what the soak saved, as the daemon saves it (the changes since the
    last save), must restore the very state it left (InvalidInput or RuntimeFailure if not)."""
    store.commit(runtime={RUNTIME_KEY: pipeline.snapshot_changes()})
    restarted, _ = start_pipeline(config, store)
    if json.dumps(restarted.snapshot(), sort_keys=True) != json.dumps(
        pipeline.snapshot(), sort_keys=True
    ):
        raise RuntimeFailure("soak: the state restored after the restart is not the one saved")


def rss_mb() -> float:
    """This process's resident memory (VmRSS) in MB; 0 where /proc is not available."""
    try:
        for line in Path("/proc/self/status").read_text(encoding="ascii").splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def render(result: SoakResult) -> str:
    """The hourly table, then one line per check."""
    lines = [
        f"soak: {result.hours:g} simulated h, {result.devices:,} devices, {result.visits:,} "
        f"visits, {result.adverts:,} adverts, {result.offers:,} offers decided, "
        f"{result.seconds:.0f} s of wall time",
        f"{'hour':>4} {'RSS MB':>7} {'adverts':>10} {'offers':>7}  in-memory sizes",
    ]
    for s in result.samples:
        sizes = " ".join(f"{k}={v}" for k, v in s.sizes.items())
        lines.append(f"{s.hour:>4} {s.rss_mb:>7.1f} {s.adverts:>10,} {s.offers:>7,}  {sizes}")
    lines.append("after closing: " + " ".join(f"{k}={v}" for k, v in result.final_sizes.items()))
    lines.extend(f"{'ok  ' if v.ok else 'FAIL'} {v.name}: {v.detail}" for v in result.verdicts)
    return "\n".join(lines) + "\n"


SUITE_CHILD = """
import dataclasses, json, sys, tempfile
from pathlib import Path
from rayon_tooling.benchmarks.soak import REFERENCE, run_soak
from gateway.config.load import load_config
with tempfile.TemporaryDirectory(prefix="rayon-soak-") as tmp:
    result = run_soak(load_config(REFERENCE), float(sys.argv[1]), int(sys.argv[2]), 1,
                      Path(tmp) / "soak.db")
print(json.dumps([dataclasses.asdict(v) for v in result.verdicts]))
"""


def suite_rows(quick: bool) -> list[Any]:
    """Rows for `rayon bench`'s table: the soak on the reference store (quick: 2 h, 100
    devices; else the full day, 2,000 devices), in a fresh interpreter, so that the memory
    it samples is its own and not that of the benchmarks run before it."""
    hours, devices = (2.0, 100) if quick else (24.0, 2000)
    found = python_child(["-c", SUITE_CHILD, str(hours), str(devices)], "soak")
    verdicts = [Verdict(**v) for v in json.loads(found)]
    command = "rayon bench soak -c config.example.yaml" + (" --hours 2 --devices 100" * quick)
    rows = [
        (f"soak {hours:g} h, {devices:,} devices: {v.name}", v.detail, v.target, v.ok, command)
        for v in verdicts
    ]
    return _as_rows(rows)


def _as_rows(rows: list[tuple[str, str, str, bool, str]]) -> list[Any]:
    try:
        from rayon_tooling.benchmarks import SuiteRow
    except ImportError:
        keys = ("name", "value", "target", "met", "command")
        return [dict(zip(keys, row, strict=True)) for row in rows]
    return [SuiteRow(*row) for row in rows]
