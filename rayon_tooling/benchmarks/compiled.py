"""An optional mypyc-compiled copy of the hot modules, and the end-to-end replay on it beside
pure Python (docs/performance.md: pure Python first, measured before any compiled code).

    python -m rayon_tooling.benchmarks.compiled [--seconds 20] [--runs 3]
        [--modules gateway.zones.tracker,...]

`build(dest)` copies the `gateway` package (only it) into `dest` and compiles `HOT_MODULES` there
in place with mypyc (opt level 3); the source tree, the tests and a plain `pip install` stay pure
Python.  It needs mypyc (shipped with mypy), a C compiler and the Python headers: on a Raspberry
Pi, `sudo apt install build-essential python3-dev`.  A second build of unchanged sources is
skipped (a hash of the sources, the module list and the tool versions is kept in `dest`).

`compare` replays the synthetic store of `workload` (`workload.replay_into_store`'s path: decode →
identity → locate → zones → rules → the outbox in SQLite) in fresh subprocesses, alternating
the pure tree and the compiled copy on the same seeded trace, and reports adverts per CPU second
(`time.process_time`), the median of the runs, and their ratio.  The runs must agree on every
count (adverts, fixes, events, offers), else it raises: compiled code has to behave the same.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.machinery
import importlib.util
import json
import math
import os
import random
import shlex
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TextIO

import gateway

# Chosen by measurement (median adverts per CPU second, compiled : pure, on `w.adverts(20)`):
# the per-advert path of locate, zones, decode, pipeline and the rules' per-event modules.
# An interpreted class cannot inherit from a compiled one: nothing in the package subclasses
# these (backtest hooks RuleEngine through `on_evaluation` for that reason).  Left out: the
# rules' load/explain/selftest modules (not per advert) and the store (SQLModel's metaclass).
# When a module moves, check that its hot functions are still listed: `jsonable` moved from
# deliver.payloads to gateway.wire and ran interpreted until it was added back; the grid
# estimate of the `auto` method (locate.grid) is called every few fixes since it became the
# default (docs/performance.md, "The compiled build").
HOT_MODULES: tuple[str, ...] = (
    "gateway.locate.locator",
    "gateway.locate.grid",
    "gateway.locate.rssifilter",
    "gateway.zones.geom",
    "gateway.zones.index",
    "gateway.zones.tracker",
    "gateway.zones.state",
    "gateway.decode.privacy",
    "gateway.pipeline",
    "gateway.offline.replay",
    "gateway.offline.writer",
    "gateway.identity.model",
    "gateway.events",
    "gateway.store.persist",
    "gateway.deliver.payloads",
    "gateway.wire",
    "gateway.rules.engine",
    "gateway.rules.absent",
    "gateway.rules.checks",
    "gateway.rules.codepools",
    "gateway.rules.conditions",
    "gateway.rules.context",
    "gateway.rules.decide",
    "gateway.rules.explanation",
    "gateway.rules.gates",
    "gateway.rules.ledger",
    "gateway.rules.located",
    "gateway.rules.model",
    "gateway.rules.operators",
    "gateway.rules.policy",
    "gateway.rules.timewindow",
    "gateway.rules.visits",
)
OPT_LEVEL = "3"
STAMP = "rayon-mypyc.stamp"
LOG = "rayon-mypyc-build.log"
SECONDS = 20.0  # walking time of the trace (w.adverts(20): ~76,000 adverts)
RUNS = 3
Fixed = list[float | str]  # a fix of `locator_fixes`, as JSON holds it
SETUP = """
import sys
from setuptools import setup
from mypyc.build import mypycify
setup(
    name="rayon-mypyc",
    ext_modules=mypycify(sys.argv[2:], opt_level=sys.argv[1]),
    script_args=["build_ext", "--inplace"],
)
"""


class CompileError(RuntimeError):
    """The compiled copy could not be built: the message says what failed and how to fix it."""


def default_dest() -> Path:
    """Where `rayon bench all --compiled` keeps its build: under the temporary folder."""
    return Path(tempfile.gettempdir()) / "rayon-mypyc"


def source_root() -> Path:
    """The folder that holds the `gateway` package this process runs."""
    return Path(gateway.__file__).resolve().parents[1]


def build(dest: Path, modules: Sequence[str] = HOT_MODULES) -> Path:
    """Copy `gateway` into `dest`, compile `modules` there with mypyc, return the folder to put
    first on PYTHONPATH (`dest`).  Skipped when the sources and modules are unchanged."""
    check_toolchain()
    package = source_root() / "gateway"
    digest = _digest(package, modules)
    dest = dest.resolve()
    stamp = dest / STAMP
    if stamp.is_file() and stamp.read_text("utf-8") == digest and _built(dest, modules):
        return dest
    dest.mkdir(parents=True, exist_ok=True)
    stamp.unlink(missing_ok=True)
    for stale in (dest / "gateway", dest / "build"):
        shutil.rmtree(stale, ignore_errors=True)
    for library in dest.glob("*__mypyc.*"):  # the shared library of an earlier module list
        library.unlink()
    shutil.copytree(package, dest / "gateway", ignore=shutil.ignore_patterns("__pycache__", "*.so"))
    _compile(dest, modules)
    stamp.write_text(digest, "utf-8")
    return dest


def check_toolchain() -> None:
    """Raise `CompileError` saying what to install when mypyc, a C compiler or the Python
    headers are missing."""
    for module, what in (("mypyc", "mypyc (it ships with mypy)"), ("setuptools", "setuptools")):
        if importlib.util.find_spec(module) is None:
            raise CompileError(
                f"{what} is missing: pip install 'rayon-gateway[compiled]' into this "
                "environment (mypy, setuptools and the stubs the build type-checks against)"
            )
    compiler = shlex.split(sysconfig.get_config_var("CC") or "cc")[0]
    if shutil.which(compiler) is None:
        raise CompileError(
            f"no C compiler ({compiler!r} is not on PATH): apt-get install gcc "
            "(Raspberry Pi OS: sudo apt install build-essential python3-dev)"
        )
    headers = Path(sysconfig.get_paths()["include"]) / "Python.h"
    if not headers.is_file():
        raise CompileError(
            f"the Python headers are missing ({headers}): apt-get install python3-dev"
        )


def module_path(module: str, root: Path) -> Path:
    """gateway.rules.engine → root/gateway/rules/engine.py (a package → its __init__.py)."""
    path = root.joinpath(*module.split("."))
    return path / "__init__.py" if path.is_dir() else path.with_suffix(".py")


def _digest(package: Path, modules: Sequence[str]) -> str:
    import mypy.version

    h = hashlib.sha256()
    h.update(f"{sys.version}|{mypy.version.__version__}|{OPT_LEVEL}|{','.join(modules)}".encode())
    for path in sorted(package.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".so":
            h.update(str(path.relative_to(package)).encode() + b"\0" + path.read_bytes())
    return h.hexdigest()


def _built(root: Path, modules: Sequence[str]) -> bool:
    suffix = importlib.machinery.EXTENSION_SUFFIXES[0]
    return all(module_path(m, root).with_suffix(suffix).is_file() for m in modules)


def _compile(root: Path, modules: Sequence[str]) -> None:
    missing = [m for m in modules if not module_path(m, root).is_file()]
    if missing:
        raise CompileError(f"no such module in the gateway package: {', '.join(missing)}")
    paths = [str(module_path(m, root).relative_to(root)) for m in modules]
    log = root / LOG
    with log.open("w", encoding="utf-8") as out:  # mypyc reads a pyproject.toml from the cwd:
        done = subprocess.run(  # root has none, only the copied package
            [sys.executable, "-c", SETUP, OPT_LEVEL, *paths],
            cwd=root,
            stdout=out,
            stderr=subprocess.STDOUT,
            check=False,
        )
    if done.returncode != 0 or not _built(root, modules):
        lines = log.read_text("utf-8", errors="replace").splitlines()
        errors = [line for line in lines if ": error:" in line or "Error" in line][:10]
        raise CompileError(
            f"mypyc could not compile {', '.join(modules)} (exit {done.returncode}):\n  "
            + "\n  ".join(errors or lines[-10:])
            + f"\nfull log: {log}; leave the module out of HOT_MODULES or make it type-check "
            "under mypyc (e.g. no int assigned to a float variable)"
        )


@dataclass(frozen=True, slots=True)
class Run:
    """One replay in one process: its counts, CPU and wall seconds, the compiled modules."""

    adverts: int
    fixes: int
    events: int
    offers: int
    cpu_s: float
    wall_s: float
    compiled: tuple[str, ...]

    @property
    def rate(self) -> float:
        """Adverts per CPU second."""
        return self.adverts / self.cpu_s if self.cpu_s > 0 else 0.0

    def counts(self) -> tuple[int, int, int, int]:
        """What every variant must agree on."""
        return (self.adverts, self.fixes, self.events, self.offers)


def replay_here(seconds: float, folder: Path) -> Run:
    """In this process: the synthetic store, its trace, one replay into SQLite, as
    `workload.replay_into_store` does it, timed in CPU time from the first advert to the flush."""
    from rayon_tooling.benchmarks.workload import build as build_workload
    from rayon_tooling.benchmarks.workload import timed_replay

    workload = build_workload(folder / "store")
    trace = workload.adverts(seconds)
    stats, cpu, wall = timed_replay(workload, trace, folder / "replay.db")
    return Run(stats.adverts, stats.fixes, stats.events, stats.offers, cpu, wall, compiled_here())


def compiled_here() -> tuple[str, ...]:
    """The gateway modules this process loaded from extension modules."""
    suffixes = tuple(importlib.machinery.EXTENSION_SUFFIXES)
    return tuple(
        sorted(
            name
            for name, module in list(sys.modules.items())
            if name.startswith("gateway")
            and str(getattr(module, "__file__", "")).endswith(suffixes)
        )
    )


def run_child(root: Path, seconds: float) -> Run:
    """`replay_here` in a fresh interpreter whose `gateway` is the one under `root`."""
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])
    )
    with tempfile.TemporaryDirectory(prefix="rayon-mypyc-run-") as tmp:
        done = subprocess.run(  # cwd: not the source tree, which would shadow PYTHONPATH
            [sys.executable, "-m", "rayon_tooling.benchmarks.compiled", "--child", str(seconds)],
            cwd=tmp,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
    if done.returncode != 0:
        raise RuntimeError(f"replay under {root} failed: {done.stderr.strip()[-800:]}")
    found = json.loads(done.stdout.strip().splitlines()[-1])
    return Run(**{**found, "compiled": tuple(found["compiled"])})


@dataclass(frozen=True, slots=True)
class Comparison:
    """The runs of each variant, alternated on the same trace."""

    modules: tuple[str, ...]
    pure: tuple[Run, ...]
    compiled: tuple[Run, ...]

    @property
    def ratio(self) -> float:
        """Compiled against pure, median adverts per CPU second."""
        pure = median_rate(self.pure)
        return median_rate(self.compiled) / pure if pure else 0.0


def median_rate(runs: Sequence[Run]) -> float:
    """The median of the runs' adverts per CPU second."""
    return statistics.median(r.rate for r in runs)


def compare(
    dest: Path,
    modules: Sequence[str] = HOT_MODULES,
    seconds: float = SECONDS,
    runs: int = RUNS,
) -> Comparison:
    """Build (or reuse) the compiled copy, then `runs` × (pure, compiled) child replays."""
    root = build(dest, modules)
    pure: list[Run] = []
    compiled: list[Run] = []
    for _ in range(runs):
        pure.append(run_child(source_root(), seconds))
        compiled.append(run_child(root, seconds))
    _check(pure, compiled, modules)
    return Comparison(tuple(modules), tuple(pure), tuple(compiled))


def _check(pure: Sequence[Run], compiled: Sequence[Run], modules: Sequence[str]) -> None:
    if any(r.compiled for r in pure):
        raise RuntimeError(f"the pure runs loaded compiled modules: {pure[0].compiled}")
    for run in compiled:
        if set(run.compiled) != set(modules):
            raise RuntimeError(f"compiled {sorted(modules)}, but the run loaded {run.compiled}")
    counts = {r.counts() for r in (*pure, *compiled)}
    if len(counts) != 1:
        raise RuntimeError(f"pure and compiled disagree (adverts, fixes, events, offers): {counts}")


def render(found: Comparison) -> str:
    """Both variants: median, min and max adverts per CPU second, wall rate, the ratio."""
    lines = [f"{'variant':<9}  {'adverts/s CPU':>13}  {'min':>9}  {'max':>9}  {'wall':>9}"]
    for name, runs in (("pure", found.pure), ("compiled", found.compiled)):
        rates = [r.rate for r in runs]
        wall = statistics.median(r.adverts / r.wall_s for r in runs)
        lines.append(
            f"{name:<9}  {statistics.median(rates):>13,.0f}  {min(rates):>9,.0f}  "
            f"{max(rates):>9,.0f}  {wall:>9,.0f}"
        )
    first = found.pure[0]
    lines.append(
        f"compiled / pure = {found.ratio:.2f}× (median of {len(found.pure)}; {first.adverts:,} "
        f"adverts, {first.offers:,} offers, identical counts; mypyc: {', '.join(found.modules)})"
    )
    return "\n".join(lines) + "\n"


def locator_fixes(method: str = "centroid", seconds: int = 30, seed: int = 1) -> list[Fixed]:
    """A seeded walk past the workload's anchors through `Locator` with `method` (a
    `PositionMethod` value): each fix as [at, x, y, accuracy, anchors]; the test compares pure
    and compiled on it."""
    from gateway.config.model import Anchor, AnchorKind, PositionMethod
    from gateway.locate.locator import Locator
    from rayon_tooling.benchmarks.workload import ANCHOR_POINTS, HEARING_M, PATH_LOSS, RSSI_AT_1M

    anchors = [
        Anchor(
            f"a{k}", AnchorKind.SCANNER, x, y, rssi_at_1m=RSSI_AT_1M, path_loss_exponent=PATH_LOSS
        )
        for k, (x, y) in enumerate(ANCHOR_POINTS)
    ]
    rng = random.Random(seed)
    locator, x, y = Locator(anchors, method=PositionMethod(method)), 40.0, 20.0
    out: list[Fixed] = []
    for step in range(seconds * 4):
        at = step / 4
        x, y = x + rng.uniform(-0.5, 0.5), y + rng.uniform(-0.5, 0.5)  # 3–4 anchors hear it
        for anchor in anchors:
            d = max(0.5, math.hypot(x - anchor.x, y - anchor.y))
            if d <= HEARING_M:
                rssi = RSSI_AT_1M - 10 * PATH_LOSS * math.log10(d) + rng.gauss(0, 3.0)
                fix = locator.observe_link(at, "dev", anchor.id, rssi)
                if fix is not None:
                    out.append([fix.at, fix.x, fix.y, fix.accuracy_m, ",".join(fix.anchors)])
    return out


def main(argv: list[str] | None = None, out: TextIO | None = None) -> int:
    """Build, compare and print; `--child SECONDS` is one replay in this process (JSON)."""
    parser = argparse.ArgumentParser(prog="python -m rayon_tooling.benchmarks.compiled")
    parser.add_argument("--seconds", type=float, default=SECONDS, help="walking time replayed")
    parser.add_argument("--runs", type=int, default=RUNS, help="replays of each variant")
    parser.add_argument("--dest", type=Path, default=default_dest(), help="build folder")
    parser.add_argument("--modules", help="comma-separated modules to compile (HOT_MODULES)")
    parser.add_argument("--build-only", action="store_true", help="build, print the folder")
    parser.add_argument("--child", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    write = (out or sys.stdout).write
    if args.child is not None:
        with tempfile.TemporaryDirectory(prefix="rayon-mypyc-replay-") as tmp:
            run = replay_here(args.child, Path(tmp))
        write(json.dumps(asdict(run)) + "\n")
        return 0
    modules = tuple(args.modules.split(",")) if args.modules else HOT_MODULES
    try:
        if args.build_only:
            write(f"{build(args.dest, modules)}\n")
            return 0
        write(render(compare(args.dest, modules, args.seconds, args.runs)))
    except CompileError as error:
        sys.stderr.write(f"error: {error}\n")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
