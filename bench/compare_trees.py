"""End-to-end replay of two or more source trees side by side, in adverts per CPU second.

    git worktree add /tmp/before <commit>
    .venv/bin/python bench/compare_trees.py /tmp/before . [--seconds 20] [--runs 3]

Each run is a fresh process with `PYTHONPATH=<tree>`, the trees alternating, on the same
seeded trace of the synthetic store (`rayon_tooling.benchmarks.workload`), through
`workload.replay_into_store` (what `rayon bench all` times) with `time.process_time` instead of
the wall clock: on a shared machine another job's load then moves every tree alike.  Prints
each run and the median per tree, and each tree's median against the first.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

CHILD = """
import importlib, sys, tempfile, time, types
from pathlib import Path


def first(*names):
    for name in names:
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        if hasattr(module, "replay_into_store"):
            return module
    raise SystemExit(f"no replay_into_store in {names}")


# where the tree keeps the timed replay: today's workload, or an older tree's suite
timed = first(
    "rayon_tooling.benchmarks.workload",
    "rayon_tooling.benchmarks.suite",
    "gateway.benchmarks.suite",
)
build = importlib.import_module(timed.__name__.rsplit(".", 1)[0] + ".workload").build
# CPU seconds however the tree times it (older trees read only perf_counter)
timed.time = types.SimpleNamespace(perf_counter=time.process_time, process_time=time.process_time)
workload = build(Path(tempfile.mkdtemp()))
trace = workload.adverts(float(sys.argv[1]))
with tempfile.TemporaryDirectory() as folder:
    print(timed.replay_into_store(workload, trace, Path(folder) / "bench.db"), len(trace))
assert timed.__file__.startswith(sys.argv[2]), f"{timed.__file__} is not in {sys.argv[2]}"
"""


def in_tree(tree: Path, code: str, *args: str) -> str:
    """Run `code` in a fresh interpreter inside source tree `tree` (`PYTHONPATH=<tree>`, and
    `-c` puts the working directory first on sys.path); its standard output, or exit naming
    the tree with the child's standard error."""
    env = {**os.environ, "PYTHONPATH": str(tree.resolve())}
    done = subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        sys.exit(f"{Path(sys.argv[0]).name}: {tree} failed:\n{done.stderr}")
    return done.stdout


def run(tree: Path, seconds: float) -> tuple[float, int]:
    rate, adverts = in_tree(tree, CHILD, str(seconds), str(tree.resolve())).split()
    return float(rate), int(adverts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("trees", nargs="+", type=Path, help="source trees (the first is the base)")
    parser.add_argument("--seconds", type=float, default=20.0, help="walking time replayed")
    parser.add_argument("--runs", type=int, default=3, help="replays per tree")
    args = parser.parse_args(argv)
    for tree in args.trees:
        if not (tree / "gateway" / "__init__.py").is_file():
            parser.error(f"{tree} holds no gateway package: give the root of a source tree")
    rates: dict[Path, list[float]] = {tree: [] for tree in args.trees}
    for k in range(args.runs):
        for tree in args.trees:
            rate, adverts = run(tree, args.seconds)
            rates[tree].append(rate)
            print(f"run {k + 1}  {tree}: {rate:,.0f} adverts per CPU second ({adverts:,} adverts)")
    base = statistics.median(rates[args.trees[0]])
    for tree, found in rates.items():
        median = statistics.median(found)
        print(f"{tree!s:40} median {median:>10,.0f}  {median / base:.2f}× the first")
    return 0


if __name__ == "__main__":
    sys.exit(main())
