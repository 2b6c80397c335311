"""The synthetic store of the end-to-end figure of docs/performance.md: 10 anchors, 200 zones,
1,000 rules and 1,000 customers walking, as `Advertisement`s heard by the scanners.

Everything goes through the real loaders: the config is written as YAML and read by
`load_config`, the rules are written as YAML files by `rayon_tooling.benchmarks.rules.generate` (its
10 "core" rules on `store`, `aisle-tv` and `checkout`, which this store has, plus fillers over
the other zones) and read by `load_rules`.  The store is 100 m × 40 m: the outline, and 199
aisle-sized cells (5 m × 4 m) in a 20 × 10 grid, the first two named `checkout` and `aisle-tv`.
Ten scanners stand on a 5 × 2 grid.  Every customer walks at 1 m/s between random waypoints
and advertises once a second; each scanner within `HEARING_M` hears it, with the log-distance
RSSI plus Gaussian noise.  Seeded: the same arguments give the same adverts.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from gateway.clock import parse_local_time
from gateway.config.load import load_config
from gateway.config.model import Config
from gateway.events import Advertisement
from gateway.heap import tune_gc
from gateway.identity.model import Customer, CustomerRegistry
from gateway.offline.replay import ReplayStats, replay
from gateway.offline.writer import OutputWriter
from gateway.pipeline import Pipeline
from gateway.rules.model import RuleSet
from gateway.store.persist import load_pools
from gateway.store.repo import Store
from rayon_tooling.benchmarks.rules import customers, generate

UUID = "8d8c1a2e-5b3f-4c1d-9e2a-0f6b7c8d9e10"  # the proximity UUID of rules.customers()
MAJOR = 7  # ditto: devices are ibeacon:UUID:7:<index>
WIDTH, DEPTH = 100.0, 40.0
COLUMNS, ROWS = 20, 10
CELLS = COLUMNS * ROWS - 1  # + the outline = 200 zones
ANCHOR_XS, ANCHOR_YS = (10.0, 30.0, 50.0, 70.0, 90.0), (10.0, 30.0)
RSSI_AT_1M, PATH_LOSS = -59, 2.2
HEARING_M = 25.0
NOISE_DB = 3.0
WALK_M_S = 1.0
START = "2026-03-03T14:00:00"  # a Tuesday afternoon, when the generated rules apply
RULES = 1_000
DEVICES = 1_000


@dataclass(frozen=True, slots=True)
class Workload:
    """The loaded store, its rules and customers; `adverts()` makes the trace."""

    config: Config
    rules: RuleSet
    customers: list[Customer]
    start: float

    def adverts(self, seconds: float, seed: int = 1) -> list[Advertisement]:
        """Every customer walking for `seconds`, in time order (ties: device, anchor)."""
        rng = random.Random(seed)
        out: list[tuple[float, int, int, Advertisement]] = []
        for index, customer in enumerate(self.customers):
            out.extend(_walk(index, customer, self.start, seconds, rng))
        out.sort(key=lambda entry: entry[:3])
        return [entry[3] for entry in out]


def build(folder: Path, rules: int = RULES, devices: int = DEVICES) -> Workload:
    """Write the config and `rules` rule files under `folder`, load them, make `devices`
    customers.  The database is `folder/bench.db` (created by whoever opens the store)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "config.yaml"
    path.write_text(config_yaml(), "utf-8")
    config = load_config(path)
    rule_set = generate(config, rules, folder / "rules")
    return Workload(
        config, rule_set, customers(devices), parse_local_time(START, config.store.timezone)
    )


def config_yaml() -> str:
    """The synthetic store's config.yaml: anchors, the outline and the grid of cells."""
    anchors = [
        f"  - {{id: node-{i:02d}, kind: scanner, x: {x}, y: {y}, rssi_at_1m: {RSSI_AT_1M}, "
        f"path_loss_exponent: {PATH_LOSS}}}"
        for i, (x, y) in enumerate((x, y) for y in ANCHOR_YS for x in ANCHOR_XS)
    ]
    zones = [
        f"  - {{id: store, name: Magasin, polygon: [[0, 0], [{WIDTH}, 0], [{WIDTH}, {DEPTH}], "
        f"[0, {DEPTH}]], enter_after: 3s, exit_after: 60s}}"
    ]
    zones += [_cell_yaml(i) for i in range(CELLS)]
    return "\n".join(
        [
            "store: {id: bench, name: Bench store, timezone: Europe/Paris}",
            "database: {url: 'sqlite:///bench.db'}",
            "sources: {ble: false, scanner_nodes: true, phone_reports: false}",
            f"identity: {{proximity_uuids: ['{UUID}']}}",
            "anchors:",
            *anchors,
            "zones:",
            *zones,
            "visits: {gap: 30m, timeout: 5m}",
            "rules_dir: rules/",
            "",
        ]
    )


def _cell_yaml(index: int) -> str:
    width, depth = WIDTH / COLUMNS, DEPTH / ROWS
    x0, y0 = (index % COLUMNS) * width, (index // COLUMNS) * depth
    x1, y1 = x0 + width, y0 + depth
    zone_id = {0: "checkout", 1: "aisle-tv"}.get(index, f"aisle-{index:03d}")
    return (
        f"  - {{id: {zone_id}, name: 'Cell {index}', "
        f"polygon: [[{x0}, {y0}], [{x1}, {y0}], [{x1}, {y1}], [{x0}, {y1}]], "
        "enter_after: 2s, exit_after: 10s}"
    )


def ibeacon_data(minor: int) -> dict[int, bytes]:
    """The manufacturer data of an iBeacon ibeacon:UUID:MAJOR:minor (Apple, tx -59 dBm)."""
    payload = (
        b"\x02\x15"
        + bytes.fromhex(UUID.replace("-", ""))
        + MAJOR.to_bytes(2, "big")
        + minor.to_bytes(2, "big")
        + RSSI_AT_1M.to_bytes(1, "big", signed=True)
    )
    return {0x004C: payload}


def _walk(
    index: int, customer: Customer, start: float, seconds: float, rng: random.Random
) -> Iterator[tuple[float, int, int, Advertisement]]:
    address, data = device_radio(index, customer)  # one mapping per device, shared
    for t, x, y in _positions(seconds, rng):
        at = round(start + t, 3)
        for k, adv in heard(at, x, y, address, data, rng):
            yield at, index, k, adv


def device_radio(index: int, customer: Customer) -> tuple[str, dict[int, bytes]]:
    """(address, manufacturer data) of a customer's iBeacon."""
    minor = int(customer.devices[0].rsplit(":", 1)[1])
    return f"C0:00:00:00:{index >> 8 & 0xFF:02X}:{index & 0xFF:02X}", ibeacon_data(minor)


def heard(
    at: float, x: float, y: float, address: str, data: dict[int, bytes], rng: random.Random
) -> Iterator[tuple[int, Advertisement]]:
    """(anchor index, advert) for each scanner within `HEARING_M` of (x, y)."""
    for k, (ax, ay) in enumerate(_anchor_points()):
        distance = max(0.5, math.hypot(x - ax, y - ay))
        if distance > HEARING_M:
            continue
        rssi = RSSI_AT_1M - 10 * PATH_LOSS * math.log10(distance) + rng.gauss(0, NOISE_DB)
        yield k, Advertisement(at, f"node-{k:02d}", address, round(rssi), data)


def _positions(seconds: float, rng: random.Random) -> Iterator[tuple[float, float, float]]:
    """One position a second along straight legs between random waypoints."""
    x, y = rng.uniform(0, WIDTH), rng.uniform(0, DEPTH)
    goal = (rng.uniform(0, WIDTH), rng.uniform(0, DEPTH))
    t = rng.uniform(0, 1)  # devices do not all advertise on the same instant
    while t < seconds:
        yield t, x, y
        dx, dy = goal[0] - x, goal[1] - y
        left = math.hypot(dx, dy)
        if left <= WALK_M_S:
            x, y = goal
            goal = (rng.uniform(0, WIDTH), rng.uniform(0, DEPTH))
        else:
            x, y = x + dx / left * WALK_M_S, y + dy / left * WALK_M_S
        t += 1.0


def _anchor_points() -> Sequence[tuple[float, float]]:
    return ANCHOR_POINTS


ANCHOR_POINTS = tuple((x, y) for y in ANCHOR_YS for x in ANCHOR_XS)


def replay_into_store(workload: Workload, trace: Sequence[Advertisement], db: Path) -> float:
    """One replay as `rayon replay --publish` does it, minus the publish: adverts/s."""
    stats, _, wall = timed_replay(workload, trace, db)
    return stats.adverts / wall


def timed_replay(
    workload: Workload, trace: Sequence[Advertisement], db: Path
) -> tuple[ReplayStats, float, float]:
    """`replay_into_store`'s replay: its stats, and the CPU and wall seconds from the first
    advert to the end of the final flush (the customers are written before)."""
    tune_gc()
    store = Store(f"sqlite:///{db}")
    try:
        store.upsert_customers(workload.customers)
        pools = load_pools(store)
        registry = CustomerRegistry(workload.customers)
        pipeline = Pipeline(workload.config, workload.rules, registry, pools=pools)
        writer = OutputWriter(workload.config, store, {}, pools, registry.by_device)
        cpu, wall = time.process_time(), time.perf_counter()
        stats = replay(pipeline, trace, writer)
        writer.flush()
        return stats, time.process_time() - cpu, time.perf_counter() - wall
    finally:
        store.close()
