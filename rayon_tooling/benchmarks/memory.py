"""Resident memory of a gateway process with 1,000 and 5,000 tracked devices (the target of
docs/performance.md: ≤ 100 MB at 5,000).

    python -m rayon_tooling.benchmarks.memory --devices 5000

Each size runs in a fresh interpreter, so one size's garbage and the allocator's high-water mark
do not leak into the next, and that interpreter is shaped like the daemon.  It imports what the
daemon imports on a Pi with its radio on (`gateway.runtime.daemon`, `gateway.runtime.app`, the BLE
source and
bleak: the store, MQTT, the pipeline).  Another process first writes the synthetic store of
`workload` (a config.yaml, 1,000 rule files, 200 zones) and its N consenting customers into a
SQLite database (`prepare`), so that nothing of making them stays in the measured one.  It
then starts a pipeline from those files and that database as the daemon does
(`soak.start_pipeline`: customers, code pools and saved state read back, rules loaded from
their files), and feeds each customer, standing at a random spot, `SECONDS` seconds of adverts,
made and dropped on the fly (the trace is never held in memory), writing what the pipeline
decides and the live state's changes to the database every second, until the zone tracker
follows all N; then it reads VmRSS from /proc/self/status.  Not in it: the asyncio loop and the
paho client's thread and buffers (a few hundred kB with an idle broker link).

`imports` is VmRSS once the modules are loaded; `baseline` once the database is open and the
pipeline started, before any device is fed: `rss - baseline` is what the devices' state costs.
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import gateway.runtime.daemon
import gateway.sources.ble  # noqa: F401  (the daemon imports it, and bleak, with the radio on)
from gateway.clock import parse_local_time
from gateway.config.load import load_config
from gateway.locate.grid import GridSettings, grid_geometry
from gateway.locate.radiomap import Survey, fit_radio_map
from gateway.pipeline import Pipeline
from gateway.store.persist import RUNTIME_KEY
from gateway.store.repo import Store
from rayon_tooling.benchmarks import python_child
from rayon_tooling.benchmarks.soak import start_pipeline
from rayon_tooling.benchmarks.workload import DEPTH, START, WIDTH, build, device_radio, heard

SIZES = (1_000, 5_000)
TARGET_MB = 100.0
SECONDS = 3  # adverts per device and anchor before it is surely tracked


@dataclass(frozen=True, slots=True)
class MemoryRow:
    """One size: resident MB in total, once the modules were loaded, and before any device
    was fed."""

    devices: int
    tracked: int
    rss_mb: float
    imports_mb: float
    baseline_mb: float
    belief_bytes: float = 0.0  # with a radio map: the belief and pending samples per device

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


PREPARE = """
import sys
from pathlib import Path
from rayon_tooling.benchmarks.memory import prepare
prepare(Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == "map")
"""


def prepare(folder: Path, devices: int, radio_map: bool = False) -> None:
    """The synthetic store's config.yaml and rule files under `folder`, and its `devices`
    customers in `folder/rayon.db` (as the CRM topic would have written them).  With
    `radio_map`, the config names a radio map of the store (`locate.radio_map`: its cells
    over the anchors and every zone; the path-loss model's levels, as a walk that learned
    nothing would give: a map's size does not depend on what it learned)."""
    workload = build(folder, devices=devices)
    if radio_map:
        write_radio_map(folder)
    store = Store(f"sqlite:///{folder / 'rayon.db'}")
    try:
        store.upsert_customers(workload.customers)
    finally:
        store.close()


def write_radio_map(folder: Path) -> None:
    """`folder/radio-map.json` for the store of `folder/config.yaml`, named in its `locate:`."""
    config = load_config(folder / "config.yaml")
    settings = GridSettings(cell_m=config.locate.cell_m)
    corners = [corner for zone in config.zones for corner in zone.outline]
    geometry = grid_geometry(config.anchors, settings, corners)
    nothing = Survey.of_points([a.id for a in config.anchors], [])
    fit_radio_map(config.anchors, nothing, geometry, bandwidth_m=1.0).save(
        folder / "radio-map.json"
    )
    with (folder / "config.yaml").open("a", encoding="utf-8") as fh:
        fh.write("locate: {radio_map: radio-map.json}\n")


def locate_state_bytes(pipeline: Pipeline) -> float:
    """The mean size of what the Locator keeps per tracked device beyond its links: the
    packed belief (window and record) and the raw samples waiting for the next update."""
    tracks = pipeline._locator._tracks.values()  # a bench looks inside
    total = 0
    for track in tracks:
        if track.belief is not None:
            total += sys.getsizeof(track.belief) + sys.getsizeof(track.belief.cells)
        if track.pending is not None:
            total += sys.getsizeof(track.pending) + 64 * len(track.pending)
    return total / max(len(tracks), 1)


def track(devices: int, folder: Path, seed: int = 1, radio_map: bool = False) -> MemoryRow:
    """`prepare` in another process; then in this one a pipeline started from its files and
    database as the daemon starts one, `devices` fed until tracked with their outputs
    written; measure."""
    kind = "map" if radio_map else "plain"
    python_child(["-c", PREPARE, str(folder), str(devices), kind], "memory bench: making the store")
    gc.collect()
    imports = rss_mb()
    config = load_config(folder / "config.yaml")
    start = parse_local_time(START, config.store.timezone)
    store = Store(f"sqlite:///{folder / 'rayon.db'}")
    try:
        pipeline, writer = start_pipeline(config, store)
        radios = [device_radio(i, c) for i, c in enumerate(pipeline.customers.all())]
        rng = random.Random(seed)
        spots = [(rng.uniform(0, WIDTH), rng.uniform(0, DEPTH)) for _ in radios]
        gc.collect()
        baseline = rss_mb()
        for second in range(SECONDS):
            for i, ((x, y), (address, data)) in enumerate(zip(spots, radios, strict=True)):
                at = start + second + i * 1e-4
                for _, advert in heard(at, x, y, address, data, rng):
                    writer(pipeline.feed(advert))
            now = start + second + 1
            writer(pipeline.tick(now))
            writer.flush()
            store.commit(runtime={RUNTIME_KEY: pipeline.snapshot_changes()}, at=now)
        gc.collect()
        belief = locate_state_bytes(pipeline)
        return MemoryRow(devices, pipeline.zones.devices(), rss_mb(), imports, baseline, belief)
    finally:
        store.close()


def measure(sizes: tuple[int, ...] = SIZES, radio_map: bool = False) -> list[MemoryRow]:
    """Each size in a fresh `python -m rayon_tooling.benchmarks.memory` subprocess."""
    rows = []
    for n in sizes:
        child = ["-m", "rayon_tooling.benchmarks.memory", "--devices", str(n), "--json"]
        child += ["--radio-map"] if radio_map else []
        found = json.loads(python_child(child, f"memory bench for {n:,} devices"))
        rows.append(
            MemoryRow(
                n,
                found["tracked"],
                found["rss_mb"],
                found["imports_mb"],
                found["baseline_mb"],
                found["belief_bytes"],
            )
        )
    return rows


def render(rows: list[MemoryRow]) -> str:
    """The table: devices, tracked, resident MB, after the imports, before the devices, and
    MB per 1,000 devices."""
    heads = ("devices", "tracked", "RSS MB", "imports", "baseline", "MB/1000", "belief B")
    lines = ["  ".join(f"{h:>8}" for h in heads)]
    lines += [
        f"{r.devices:>8,}  {r.tracked:>8,}  {r.rss_mb:>8.1f}  {r.imports_mb:>8.1f}  "
        f"{r.baseline_mb:>8.1f}  {r.per_1000_mb:>8.2f}  {r.belief_bytes:>8.0f}"
        for r in rows
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """One size in this process (`--json` for the parent), or every size in subprocesses."""
    parser = argparse.ArgumentParser(prog="python -m rayon_tooling.benchmarks.memory")
    parser.add_argument("--devices", type=int, help="one size, in this process")
    parser.add_argument("--json", action="store_true", help="print the row as JSON")
    parser.add_argument(
        "--radio-map", action="store_true", help="the store has a radio map (a belief per device)"
    )
    args = parser.parse_args(argv)
    if args.devices is None:
        sys.stdout.write(render(measure(radio_map=args.radio_map)))
        return 0
    with tempfile.TemporaryDirectory(prefix="rayon-bench-memory-") as tmp:
        row = track(args.devices, Path(tmp), radio_map=args.radio_map)
    if args.json:
        keys = ("tracked", "rss_mb", "imports_mb", "baseline_mb", "belief_bytes")
        print(json.dumps({k: getattr(row, k) for k in keys}))
    else:
        sys.stdout.write(render([row]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
