"""`rayon bench` (or `rayon bench all`): every figure of docs/performance.md in one table.

    rayon bench [-c config.example.yaml] [--runs 3] [--seconds 60] [--quick]

Measured here: end-to-end replay throughput of the synthetic store (`workload`: 10 anchors,
200 zones, 1,000 rules, 1,000 walking customers) through decode → identity → locate → zones →
rules → the outbox in a SQLite file (`rayon replay`'s OutputWriter, nothing published);
start-up; rule reload; per-event rule cost against rule count (`rules`); resident memory
(`memory`).  PUBACK latency, offers/s, decode against peers and the soak come from the modules
`latency`, `decode` and `soak` when they exist (their `suite_rows(quick)`), else the row says
how to measure them.  Timings are medians; the machine is shared, so they are noisy.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from gateway.identity.model import CustomerRegistry
from gateway.pipeline import Pipeline
from gateway.rules.load import load_rules
from gateway.store.repo import Store
from rayon_tooling.benchmarks import SuiteRow, memory, rules
from rayon_tooling.benchmarks.workload import Workload, build, replay_into_store

TARGET_ADVERTS_S = 100_000
REFERENCE = Path(__file__).resolve().parents[2] / "config.example.yaml"
HOOKS = (  # (module, the rows it owns, how to run it meanwhile)
    ("latency", "PUBACK latency p50/p99; offers/s at QoS 1", "rayon bench latency"),
    ("decode", "decode speed against ibeacon-ble and beacontools", "rayon bench decode"),
    ("soak", "24 h soak, 2,000 devices", "rayon bench soak"),
)


@dataclass(frozen=True, slots=True)
class Sizes:
    """How much each figure measures: the default, or `--quick` for tests."""

    runs: int
    seconds: float
    devices: int
    rules: int
    rule_sizes: tuple[int, ...]
    memory_sizes: tuple[int, ...]


FULL = Sizes(3, 60.0, 1_000, 1_000, (10, 1_000, 10_000), memory.SIZES)
QUICK = Sizes(1, 5.0, 30, 30, (3, 20), (50,))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `rayon bench all` (the caller adds -c/--config)."""
    parser.add_argument("--quick", action="store_true", help="tiny sizes, seconds (for tests)")
    parser.add_argument("--runs", type=int, help="end-to-end runs (default 3)")
    parser.add_argument("--seconds", type=float, help="walking time simulated (default 60)")
    parser.add_argument(
        "--compiled",
        action="store_true",
        help="also replay on a mypyc-compiled copy of the hot modules (needs a C compiler)",
    )


def bench_all(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Measure every figure, print one table; always 0 (benchmarks assert nothing)."""
    quick = bool(getattr(args, "quick", False))
    sizes = QUICK if quick else FULL
    sizes = dataclasses.replace(
        sizes,
        runs=getattr(args, "runs", None) or sizes.runs,
        seconds=getattr(args, "seconds", None) or sizes.seconds,
    )
    config_path = Path(args.config) if getattr(args, "config", None) else REFERENCE
    write = (out or sys.stdout).write
    with tempfile.TemporaryDirectory(prefix="rayon-bench-") as tmp:
        workload = build(Path(tmp) / "store", sizes.rules, sizes.devices)
        rows = [
            end_to_end(workload, sizes, Path(tmp)),
            *(compiled_rows(sizes) if getattr(args, "compiled", False) else []),
            startup(config_path, Path(tmp)),
            *reload(workload, sizes),
            rule_cost(workload, sizes),
            *memory_rows(sizes),
            *hook_rows(quick),
        ]
    write(render(rows))
    return 0


def end_to_end(workload: Workload, sizes: Sizes, folder: Path) -> SuiteRow:
    """Median adverts/s of `runs` replays into a fresh SQLite store each (flush included)."""
    trace = workload.adverts(sizes.seconds)
    rates = [replay_into_store(workload, trace, folder / f"e2e-{i}.db") for i in range(sizes.runs)]
    median = statistics.median(rates)
    return SuiteRow(
        f"end to end, {len(workload.customers):,} devices, {len(workload.rules.rules):,} rules",
        f"{median:,.0f} adverts/s (min {min(rates):,.0f}, max {max(rates):,.0f}; "
        f"{len(trace):,} adverts)",
        f"≥ {TARGET_ADVERTS_S:,}",
        median >= TARGET_ADVERTS_S,
        "rayon bench all --runs 3",
    )


def compiled_rows(sizes: Sizes) -> list[SuiteRow]:
    """The end-to-end replay of the same trace, pure and mypyc-compiled, each run in a fresh
    process, alternated (`compiled.compare`; 1,000 devices and rules whatever the sizes)."""
    from rayon_tooling.benchmarks import compiled

    name = "end to end, mypyc-compiled : pure, adverts per CPU second"
    try:
        found = compiled.compare(compiled.default_dest(), seconds=sizes.seconds, runs=sizes.runs)
    except compiled.CompileError as error:
        why = str(error).splitlines()[0]
        return [SuiteRow(name, f"not measured: {why}", "—", None, "rayon bench all --compiled")]
    fast, pure = compiled.median_rate(found.compiled), compiled.median_rate(found.pure)
    return [
        SuiteRow(
            name,
            f"{fast:,.0f} : {pure:,.0f} = {found.ratio:.2f}× ({len(found.modules)} modules)",
            f"≥ {TARGET_ADVERTS_S:,}",
            fast >= TARGET_ADVERTS_S,
            "rayon bench all --compiled (python -m rayon_tooling.benchmarks.compiled)",
        )
    ]


STARTUP_PROBE = """
import sys
from pathlib import Path
from rayon_tooling.benchmarks.suite import ready
ready(Path(sys.argv[1]), sys.argv[2])
print("ready", flush=True)
"""


def ready(config_path: Path, url: str) -> None:
    """What `rayon run` does before it listens, minus the MQTT connection: load and check the
    config and the rules, open the database (schema checked, upgraded if needed), build the
    gateway and its pipeline and restore the saved live state and the offers into the caps."""
    import gateway.runtime.daemon  # noqa: F401  (what `rayon run` imports counts too)
    from gateway.config.load import load_config
    from gateway.config.model import DatabaseConfig
    from gateway.store.tables import NOT_DECIDED

    config = dataclasses.replace(load_config(config_path), database=DatabaseConfig(url))
    store = Store(config.database.url)
    try:
        pipeline = Pipeline(
            config, load_rules(config.rules_dir, config), CustomerRegistry(store.load_customers())
        )
        offered = [r.offer for r in store.offer_log() if r.state not in NOT_DECIDED]
        pipeline.restore(store.load_runtime("pipeline"), offered)
    finally:
        store.close()


def startup(config_path: Path, folder: Path, runs: int = 3) -> SuiteRow:
    """Median wall time from spawning a Python process to its "ready" line."""
    url = f"sqlite:///{folder / 'startup.db'}"
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-c", STARTUP_PROBE, str(config_path), url],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0 or "ready" not in done.stdout:
            raise RuntimeError(f"start-up probe failed: {done.stderr.strip()[-500:]}")
        times.append(time.perf_counter() - started)
    return SuiteRow(
        f"start-up to ready ({config_path.name}, MQTT excluded)",
        f"{statistics.median(times):.2f} s (min {min(times):.2f}, max {max(times):.2f})",
        "—",
        None,
        "rayon bench all",
    )


def reload(workload: Workload, sizes: Sizes, repeats: int = 5) -> list[SuiteRow]:
    """load_rules of the generated folder, and Pipeline.reload_rules of the loaded set."""
    folder = workload.config.path.parent / "rules"
    loads, swaps = [], []
    pipeline = Pipeline(workload.config, workload.rules, CustomerRegistry(workload.customers))
    for _ in range(repeats):
        loads.append(_timed(lambda: load_rules(folder, workload.config)))
        swaps.append(_timed(lambda: pipeline.reload_rules(workload.rules)))
    n = len(workload.rules.rules)
    return [
        _ms_row(f"rule reload: load_rules, {n:,} files", loads, "rayon bench all"),
        _ms_row(f"rule reload: Pipeline.reload_rules, {n:,} rules", swaps, "rayon bench all"),
    ]


def _timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def _ms_row(name: str, samples: list[float], command: str) -> SuiteRow:
    ms = [s * 1000 for s in samples]
    value = f"{statistics.median(ms):,.1f} ms (min {min(ms):,.1f}, max {max(ms):,.1f})"
    return SuiteRow(name, value, "—", None, command)


def rule_cost(workload: Workload, sizes: Sizes) -> SuiteRow:
    """`rayon bench rules` on the synthetic store's zones: smallest against largest set."""
    found = rules.measure(workload.config, sizes.rule_sizes, repeats=5 if sizes is FULL else 1)
    first, last = found[0], found[-1]
    ratio = last.median_us / first.median_us if first.median_us else 0.0
    return SuiteRow(
        f"rule cost per event, {last.rules:,} : {first.rules:,} rules",
        f"{last.median_us:.1f} µs : {first.median_us:.1f} µs = {ratio:.2f}×",
        f"≤ {rules.TARGET_RATIO}×",
        ratio <= rules.TARGET_RATIO,
        "rayon bench all (reference store: rayon bench rules)",
    )


def memory_rows(sizes: Sizes) -> list[SuiteRow]:
    """Resident memory per size, each in a fresh subprocess."""
    return [
        SuiteRow(
            f"resident memory, daemon-shaped process, {row.devices:,} tracked devices",
            f"{row.rss_mb:.1f} MB (imports {row.imports_mb:.1f} MB; "
            f"{row.per_1000_mb:.1f} MB per 1,000 devices)",
            f"≤ {memory.TARGET_MB:.0f} MB at 5,000",
            row.rss_mb <= memory.TARGET_MB if row.devices >= 5_000 else None,
            f"python -m rayon_tooling.benchmarks.memory --devices {row.devices}",
        )
        for row in memory.measure(sizes.memory_sizes)
    ]


def hook_rows(quick: bool, hooks: Sequence[tuple[str, str, str]] = HOOKS) -> list[SuiteRow]:
    """The other helpers' figures when their module is there, else how to get them."""
    rows: list[SuiteRow] = []
    for name, what, command in hooks:
        try:
            module = importlib.import_module(f"rayon_tooling.benchmarks.{name}")
        except ImportError:
            rows.append(
                SuiteRow(what, "not measured here", "see docs/performance.md", None, command)
            )
            continue
        rows.extend(module.suite_rows(quick))
    return rows


def render(rows: Sequence[SuiteRow]) -> str:
    """One table: figure, value, target, met?, command to reproduce."""
    verdict = {True: "yes", False: "NO", None: "—"}
    cells = [("figure", "value", "target", "met?", "command")]
    cells += [(r.name, r.value, r.target, verdict[r.met], r.command) for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(5)]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines) + "\n"
