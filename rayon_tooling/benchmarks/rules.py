"""Rule engine cost per event with 10, 1,000 and 10,000 rules, side by side in one run.

    rayon bench rules -c config.example.yaml [--sizes 10,1000,10000] [--repeats 7]

docs/design.md §2 (Rules): the engine indexes rules by (trigger, zone), so the cost of an event
must not grow with the rules that cannot match it.  Each size is a generated rule set, written
as YAML files and loaded by the real loader (`load_rules`), so the bench measures what
production loads:

- the same 10 "core" rules in every set, on the triggers and zones the measured events use
  (visit start and end, enter / dwell / exit of the TV aisle and the checkout), with interest
  and time conditions, limits and priorities like the shipped rules;
- for the bigger sets, filler rules spread over the reference store's other zones and over
  the enter / exit / dwell triggers: rules that cannot match the measured events.

The measured events are customers' walks (visit start, TV aisle, checkout, visit end) on a
weekday afternoon, fed to `RuleEngine.on_event` with real customer profiles, so offers fire,
caps count and reasons are built as in production.  Each repetition runs every size once, in
turn, on a fresh engine; the table shows the median µs/event and the ratio to the smallest
set (target ≤ 1.5× for 10,000 : 10).  Note what it does not claim: rules that share an
event's trigger and zone are candidates and each costs its conditions.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from gateway.clock import parse_local_time
from gateway.config.model import Config
from gateway.events import EventKind, ZoneEvent
from gateway.identity.model import Consent, Customer
from gateway.rules.engine import RuleEngine
from gateway.rules.load import load_rules
from gateway.rules.model import RuleSet

SIZES = (10, 1_000, 10_000)
TARGET_RATIO = 1.5
INTERESTS = ("tv", "audio", "smartphones", "computing", "gaming", "photo", "appliances")
START = "2026-03-03T14:00:00"  # a Tuesday afternoon, store time

# The core rules: (trigger YAML, condition YAML); the measured events trigger each of them.
CORE = (
    ("visit_start:", "customer.visits: {at_most: 0}"),
    ("visit_start:", "customer.tier: {in: [silver, gold]}"),
    ("enter: {zone: aisle-tv}", "customer.interests: {has: tv}"),
    ("enter: {zone: aisle-tv}", "customer.interests: {has_any: [tv, audio]}"),
    ("dwell: {zone: aisle-tv, at_least: 30s}", "customer.interests: {has: tv}"),
    ("dwell: {zone: aisle-tv, at_least: 60s}", "customer.interests: {has: audio}"),
    ("exit: {zone: aisle-tv}", "customer.interests: {has: gaming}"),
    ("enter: {zone: checkout}", "customer.tier: {in: [gold]}"),
    ("enter: {zone: checkout}", "customer.interests: {has: photo}"),
    ("exit: {zone: checkout}", "customer.visits: {at_least: 3}"),
)
CORE_ZONES = frozenset({"aisle-tv", "checkout", "store"})


@dataclass(frozen=True, slots=True)
class BenchRow:
    """One rule-set size: median, min and max µs per event over the repetitions."""

    rules: int
    median_us: float
    min_us: float
    max_us: float


def rule_yaml(index: int, trigger: str, condition: str) -> str:
    """One generated rule file."""
    return (
        f"id: gen-{index:05d}\nname: Generated rule {index}\n"
        "purpose: commercial\n"
        f"when:\n  {trigger}\n"
        f"if:\n  - {condition}\n"
        "  - time: {between: ['09:00', '20:00'], days: [mon, tue, wed, thu, fri, sat]}\n"
        f"then:\n  offer: {{title: 'Offre {index}', body: 'Au {{zone_name}}.', expires_in: 1h}}\n"
        "limits:\n  per_customer: {max: 1, per: day}\n"
        f"priority: {index % 20}\n"
    )


def filler(config: Config, count: int) -> list[tuple[str, str]]:
    """`count` (trigger, condition) pairs over the zones and triggers the events do not use."""
    zones = [z.id for z in config.zones if z.id not in CORE_ZONES]
    out = []
    for i in range(count):
        zone, interest = zones[i % len(zones)], INTERESTS[i % len(INTERESTS)]
        kind = ("enter", "exit", "dwell")[(i // len(zones)) % 3]
        extra = f", at_least: {30 + 10 * (i % 6)}s" if kind == "dwell" else ""
        out.append((f"{kind}: {{zone: {zone}{extra}}}", f"customer.interests: {{has: {interest}}}"))
    return out


def generate(config: Config, size: int, folder: Path) -> RuleSet:
    """Write `size` rules (the core first) into `folder` and load them like production."""
    folder.mkdir(parents=True, exist_ok=True)
    specs = [*CORE[:size], *filler(config, max(0, size - len(CORE)))]
    for i, (trigger, condition) in enumerate(specs):
        (folder / f"gen-{i:05d}.yaml").write_text(rule_yaml(i, trigger, condition), "utf-8")
    return load_rules(folder, config)


def customers(n: int) -> list[Customer]:
    """Profiles that make the core rules fire for some and not for others."""
    tiers = (None, "silver", "gold")
    return [
        Customer(
            id=f"c-{i:04d}",
            token=f"t{i:016x}",
            devices=(f"ibeacon:8d8c1a2e-5b3f-4c1d-9e2a-0f6b7c8d9e10:7:{i}",),
            consent=Consent(instore_location=True, marketing_push=i % 10 != 9),
            interests=frozenset({INTERESTS[i % 7], INTERESTS[(i * 3) % 7]}),
            tier=tiers[i % 3],
            visits=(0, 1, 5)[i % 3],
        )
        for i in range(n)
    ]


def walks(config: Config, people: Sequence[Customer]) -> list[tuple[ZoneEvent, Customer]]:
    """Each customer's visit, one every 20 s from START: store, TV aisle, checkout, out."""
    t0 = parse_local_time(START, config.store.timezone)
    steps = (
        (0, EventKind.VISIT_START, "store", None),
        (20, EventKind.ENTER, "aisle-tv", None),
        (52, EventKind.DWELL, "aisle-tv", 32.0),
        (85, EventKind.DWELL, "aisle-tv", 65.0),
        (90, EventKind.EXIT, "aisle-tv", 70.0),
        (150, EventKind.ENTER, "checkout", None),
        (300, EventKind.EXIT, "checkout", 150.0),
        (400, EventKind.VISIT_END, "store", 400.0),
    )
    out = []
    for k, person in enumerate(people):
        device = person.devices[0]
        for dt, kind, zone, dwell in steps:
            at = t0 + 20 * k + dt
            out.append((ZoneEvent(at, kind, zone, device, person.id, dwell), person))
    out.sort(key=lambda pair: pair[0].at)
    return out


def time_once(
    rules: RuleSet, config: Config, events: Sequence[tuple[ZoneEvent, Customer]]
) -> float:
    """µs per event of one pass over `events` on a fresh engine."""
    engine = RuleEngine(rules, config)
    started = time.perf_counter()
    for event, customer in events:
        engine.on_event(event, customer)
    return (time.perf_counter() - started) * 1e6 / len(events)


def measure(
    config: Config, sizes: Sequence[int] = SIZES, repeats: int = 7, shoppers: int = 60
) -> list[BenchRow]:
    """Every size timed once per repetition, in turn, so that drift hits them alike."""
    events = walks(config, customers(shoppers))
    with tempfile.TemporaryDirectory(prefix="rayon-bench-rules-") as tmp:
        sets = [generate(config, n, Path(tmp) / str(n)) for n in sizes]
    samples: list[list[float]] = [[] for _ in sizes]
    for _ in range(repeats):
        for rules, found in zip(sets, samples, strict=True):
            found.append(time_once(rules, config, events))
    return [
        BenchRow(n, statistics.median(s), min(s), max(s))
        for n, s in zip(sizes, samples, strict=True)
    ]


def render(rows: Sequence[BenchRow], repeats: int) -> str:
    """The table: µs/event per size and the ratio to the smallest set."""
    base = rows[0].median_us if rows else 0.0
    lines = [
        f"rule engine, per event (median of {repeats} repetitions)",
        f"{'rules':>7}  {'µs/event':>9}  {'min':>8}  {'max':>8}  {'ratio':>7}",
    ]
    for row in rows:
        ratio = row.median_us / base if base else 0.0
        lines.append(
            f"{row.rules:>7,}  {row.median_us:>9.2f}  {row.min_us:>8.2f}  {row.max_us:>8.2f}  "
            f"{ratio:>6.2f}×"
        )
    if len(rows) > 1 and base:
        ratio = rows[-1].median_us / base
        verdict = "met" if ratio <= TARGET_RATIO else "MISSED"
        lines.append(
            f"{rows[-1].rules:,} : {rows[0].rules:,} = {ratio:.2f}× "
            f"(target ≤ {TARGET_RATIO}×: {verdict})"
        )
    return "\n".join(lines) + "\n"


def bench_rules(
    config: Config, sizes: Sequence[int] = SIZES, repeats: int = 7, out: TextIO | None = None
) -> int:
    """`rayon bench rules`: measure and print the table on `out` (stdout); always 0."""
    rows = measure(config, sizes, repeats)
    (out or sys.stdout).write(render(rows, repeats))
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `rayon bench rules` (the caller adds -c/--config)."""
    parser.add_argument(
        "--sizes",
        type=_sizes,
        default=SIZES,
        help="rule-set sizes, comma separated (default 10,1000,10000)",
    )
    parser.add_argument("--repeats", type=int, default=7, help="repetitions (default 7)")


def _sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: sizes are integers, e.g. 10,1000") from None
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: every size must be at least 1")
    return sizes
