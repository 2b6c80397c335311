"""Resident memory with 1,000 and 5,000 tracked devices (issue 8: ≤ 100 MB at 5,000).

    python -m gateway.benchmarks.memory --devices 5000

Each size runs in a fresh interpreter, so one size's garbage and the allocator's high-water mark
do not leak into the next.  The child builds the synthetic store of `workload` (200 zones,
1,000 rules), a pipeline with N consenting customers, then feeds each of them, standing at a
random spot, `SECONDS` seconds of adverts, made and dropped on the fly (the trace is never held
in memory), until the zone tracker follows all N; then it reads VmRSS from /proc/self/status.
`baseline` is VmRSS after the imports, store and rules are loaded, before any device is fed:
the difference is what the devices' state costs.
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from gateway.benchmarks.workload import DEPTH, WIDTH, build, device_radio, heard
from gateway.identity import CustomerRegistry
from gateway.pipeline import Pipeline

SIZES = (1_000, 5_000)
TARGET_MB = 100.0
SECONDS = 3  # adverts per device and anchor before it is surely tracked


@dataclass(frozen=True, slots=True)
class MemoryRow:
    """One size: resident MB in total and before any device was fed."""

    devices: int
    tracked: int
    rss_mb: float
    baseline_mb: float

    @property
    def per_1000_mb(self) -> float:
        """What 1,000 devices' state costs: (total − baseline) per 1,000 devices."""
        return (self.rss_mb - self.baseline_mb) * 1000 / self.devices if self.devices else 0.0


def rss_mb() -> float:
    """This process's resident set, from /proc/self/status (Linux)."""
    for line in Path("/proc/self/status").read_text("ascii").splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status: resident memory is measured on Linux")


def track(devices: int, folder: Path, seed: int = 1) -> MemoryRow:
    """In this process: build the store, feed `devices` until tracked, measure."""
    workload = build(folder, devices=devices)
    registry = CustomerRegistry(workload.customers)
    pipeline = Pipeline(workload.config, workload.rules, registry)
    gc.collect()
    baseline = rss_mb()
    rng = random.Random(seed)
    spots = [(rng.uniform(0, WIDTH), rng.uniform(0, DEPTH)) for _ in workload.customers]
    radios = [device_radio(i, c) for i, c in enumerate(workload.customers)]
    for second in range(SECONDS):
        for i, ((x, y), (address, data)) in enumerate(zip(spots, radios, strict=True)):
            at = workload.start + second + i * 1e-4
            for _, advert in heard(at, x, y, address, data, rng):
                pipeline.feed(advert)
        pipeline.tick(workload.start + second + 1)
    gc.collect()
    return MemoryRow(devices, pipeline.zones.devices(), rss_mb(), baseline)


def measure(sizes: tuple[int, ...] = SIZES) -> list[MemoryRow]:
    """Each size in a fresh `python -m gateway.benchmarks.memory` subprocess."""
    rows = []
    for n in sizes:
        done = subprocess.run(
            [sys.executable, "-m", "gateway.benchmarks.memory", "--devices", str(n), "--json"],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"memory bench for {n} devices failed: {done.stderr.strip()}")
        found = json.loads(done.stdout)
        rows.append(MemoryRow(n, found["tracked"], found["rss_mb"], found["baseline_mb"]))
    return rows


def render(rows: list[MemoryRow]) -> str:
    """The table: devices, tracked, resident MB, baseline MB, MB per 1,000 devices."""
    lines = [f"{'devices':>8}  {'tracked':>8}  {'RSS MB':>8}  {'baseline':>8}  {'MB/1000':>8}"]
    lines += [
        f"{r.devices:>8,}  {r.tracked:>8,}  {r.rss_mb:>8.1f}  {r.baseline_mb:>8.1f}  "
        f"{r.per_1000_mb:>8.2f}"
        for r in rows
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """One size in this process (`--json` for the parent), or every size in subprocesses."""
    parser = argparse.ArgumentParser(prog="python -m gateway.benchmarks.memory")
    parser.add_argument("--devices", type=int, help="one size, in this process")
    parser.add_argument("--json", action="store_true", help="print the row as JSON")
    args = parser.parse_args(argv)
    if args.devices is None:
        sys.stdout.write(render(measure()))
        return 0
    with tempfile.TemporaryDirectory(prefix="rayon-bench-memory-") as tmp:
        row = track(args.devices, Path(tmp))
    if args.json:
        keys = ("tracked", "rss_mb", "baseline_mb")
        print(json.dumps({k: getattr(row, k) for k in keys}))
    else:
        sys.stdout.write(render([row]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
