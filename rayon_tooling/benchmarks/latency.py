"""Live latency (advert → the broker's PUBACK of the offer) and outbox offers/s at QoS 1.

    rayon bench latency [--customers 200] [--offers 5000] [--runs 5] [--window 64]

Both on a private Mosquitto started here (a free port of 127.0.0.1, no persistence).

Latency: a real `Gateway` (the shipped rules, the reference config with the Pi's radio off) runs
in this process; the scanner nodes in another (`--nodes`), as they are other devices in a store.
Click-and-collect customers arrive at the entrance one every 50 ms; the nodes report each phone
live every 250 ms, and the round that has held the zone's `enter_after` completes the entry, on
which the `click-collect` rule offers "your order is ready".  The nodes stop reporting a phone
once its offer reaches them (they subscribe to the offers, as the app would).  A sample is the
time from the nodes handing that round to the broker until the gateway's link has the PUBACK of
the offer (so it includes the broker hop in), one offer per customer; both processes read the
same clock (`time.monotonic`, CLOCK_MONOTONIC: system-wide on Linux).

Offers/s: `--offers` pending offers in a fresh SQLite outbox, then one `OutboxPublisher.drain()`
(every offer read, published, acknowledged and marked sent), timed; the median of `--runs`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import math
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO
from zoneinfo import ZoneInfo

import yaml

from gateway.clock import ManualClock, SystemClock
from gateway.config.load import load_config
from gateway.config.model import AnchorKind, Config
from gateway.decode.beacons import encode_ibeacon
from gateway.deliver.mqtt import MqttLink
from gateway.deliver.outbox import OutboxPublisher
from gateway.errors import RuntimeFailure
from gateway.events import Offer, Purpose
from gateway.runtime.app import Gateway
from gateway.store.repo import Store
from gateway.topics import Topics

ROOT = Path(__file__).resolve().parents[2]
STORE_UUID = "8d8c1a2e-5b3f-4c1d-9e2a-0f6b7c8d9e10"  # config.example.yaml's proximity UUID
TARGET_P99_MS = 20.0
TARGET_OFFERS_S = 5_000
T0 = 1_772_546_400.0
ACK_TIMEOUT_S = 10.0
STEP_S = 0.25  # a phone's advert round, as the nodes report it
STAGGER_S = 0.05  # a new customer arrives at the entrance every 50 ms


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `rayon bench latency`."""
    parser.add_argument("--customers", type=int, default=200, help="latency samples")
    parser.add_argument("--offers", type=int, default=5000, help="offers per outbox run")
    parser.add_argument("--runs", type=int, default=5, help="outbox runs (median)")
    parser.add_argument("--window", type=int, default=64, help="publishes in flight")


# --- a private broker ------------------------------------------------------------------------


@contextlib.contextmanager
def private_broker(folder: Path) -> Iterator[int]:
    """A Mosquitto on a free port of 127.0.0.1 for the duration; yields the port."""
    binary = shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin")
    if binary is None:
        raise RuntimeFailure("mosquitto is not installed: apt-get install mosquitto")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    conf = folder / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
    with (folder / "mosquitto.log").open("wb") as log:
        proc = subprocess.Popen([binary, "-c", str(conf)], stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait_port(port, proc)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeFailure(f"mosquitto exited at start ({proc.returncode}): see its log")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeFailure(f"mosquitto did not listen on 127.0.0.1:{port} within {timeout:g} s")


# --- offers/s ------------------------------------------------------------------------------


def bench_offers(n: int) -> list[Offer]:
    """`n` pending commercial offers for 500 customers, an hour to live."""
    return [
        Offer(
            id=f"o{i:06}",
            rule="tv-aisle-dwell",
            store="paris-11",
            zone="aisle-tv",
            customer=f"c{i % 500}",
            token=f"tok-{i % 500}",
            created_at=T0 + i * 0.001,
            expires_at=T0 + 3600,
            title="-15 % sur les TV",
            body="Offre valable aujourd'hui au rayon TV.",
            code="TV15",
            url=None,
            purpose=Purpose.COMMERCIAL,
        )
        for i in range(n)
    ]


async def publish_rate(port: int, folder: Path, n: int, window: int) -> float:
    """Offers/s of one drain of `n` offers through a fresh outbox in `folder`."""
    store = Store(f"sqlite:///{folder / 'outbox.db'}", max_pending=n)
    store.enqueue_offers(bench_offers(n))
    try:
        async with MqttLink("127.0.0.1", port, f"bench-{folder.name}") as link:
            topics = Topics("rayon", "paris-11")
            clock = ManualClock(T0)
            outbox = OutboxPublisher(store, link, topics, clock, ZoneInfo("UTC"), window=window)
            started = time.perf_counter()
            result = await outbox.drain()
            elapsed = time.perf_counter() - started
    finally:
        store.close()
    if result.sent != n:
        raise RuntimeFailure(f"outbox benchmark: {result} instead of {n} sent")
    return n / elapsed


def offers_per_s(port: int, folder: Path, n: int, runs: int, window: int) -> list[float]:
    """`runs` drains of `n` offers, each in its own outbox and event loop."""
    rates = []
    for run in range(runs):
        where = folder / f"outbox{run}"
        where.mkdir()
        rates.append(asyncio.run(publish_rate(port, where, n, window)))
    return rates


# --- latency -------------------------------------------------------------------------------


class TimedLink(MqttLink):
    """The gateway's link, noting when each offer's PUBACK came back (`time.monotonic`)."""

    def __init__(self, *args: Any, offers_prefix: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._prefix = offers_prefix
        self.acked: dict[str, float] = {}
        self.arrived = asyncio.Event()

    async def publish(
        self,
        topic: str,
        payload: bytes,
        qos: int = 0,
        retain: bool = False,
        expiry_s: int | None = None,
    ) -> None:
        await super().publish(topic, payload, qos, retain, expiry_s)
        if topic.startswith(self._prefix):
            self.acked[topic[len(self._prefix) :]] = time.monotonic()
            self.arrived.set()


def write_config(folder: Path, port: int) -> Config:
    """The reference store (config.example.yaml) on the private broker, the radio off."""
    raw = yaml.safe_load((ROOT / "config.example.yaml").read_text(encoding="utf-8"))
    raw["mqtt"] = {"host": "127.0.0.1", "port": port, "topic_prefix": "rayon"}
    raw["database"] = {"url": f"sqlite:///{folder / 'rayon.db'}"}
    raw["rules_dir"] = str(ROOT / "rules")
    raw["sources"]["ble"] = False
    raw.pop("metrics", None)
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    return load_config(path)


def customer(i: int) -> dict[str, object]:
    """A click-and-collect customer whose order is ready; phone minor `i`."""
    return {
        "id": f"c-lat-{i}",
        "token": f"t-lat-{i}",
        "visits": 5,
        "devices": [f"ibeacon:{STORE_UUID}:1000:{i}"],
        "attributes": {"order_ready": True},
        "consent": {"instore_location": True, "marketing_push": True},
    }


@dataclass(frozen=True, slots=True)
class Entrance:
    """Where the scanner nodes hear a phone standing at the entrance, and how loud."""

    rssi: dict[str, int]  # scanner id → dBm
    enter_after: float

    @classmethod
    def of(cls, config: Config, hearing_dbm: float = -92) -> Entrance:
        zone = config.zone("entrance")
        if zone is None:
            raise RuntimeFailure("the latency benchmark needs the reference store's entrance")
        point = zone.polygon.representative_point()
        rssi = {}
        for a in config.anchors:
            if a.kind is AnchorKind.SCANNER:
                d = max(math.hypot(a.x - point.x, a.y - point.y), 0.3)
                level = round(a.rssi_at_1m - 10 * a.path_loss_exponent * math.log10(d))
                if level >= hearing_dbm:
                    rssi[a.id] = level
        return cls(rssi, zone.enter_after)

    def reports(self, minor: int, times: Sequence[float]) -> dict[str, bytes]:
        """One `scanners/<node>/adv` payload per node: the phone heard at each of `times`."""
        frame = encode_ibeacon(STORE_UUID, 1000, minor, -59).hex()
        mac = f"c0:ff:ee:01:{minor >> 8:02x}:{minor & 255:02x}"
        return {
            node: json.dumps(
                [
                    {"at": at, "address": mac, "rssi": level, "manufacturer_data": {"76": frame}}
                    for at in times
                ]
            ).encode()
            for node, level in self.rssi.items()
        }


async def _gateway(config: Config, link: TimedLink) -> tuple[Gateway, asyncio.Event, Any]:
    store = Store(config.database.url)
    gateway = await Gateway.start(config, store=store, link=link, clock=SystemClock())
    stop = asyncio.Event()
    task = asyncio.create_task(gateway.run(stop), name="gateway")
    return gateway, stop, task


async def _load_customers(crm: MqttLink, gateway: Gateway, topics: Topics, n: int) -> None:
    for i in range(1, n + 1):
        body = json.dumps(customer(i)).encode()
        await crm.publish(f"{topics.base}/crm/customers/c-lat-{i}", body, qos=1, retain=True)
    async with asyncio.timeout(30):
        while len(gateway.pipeline.customers) < n:
            await asyncio.sleep(0.02)


async def _one_customer(
    nodes: MqttLink, offered: set[str], entrance: Entrance, topics: Topics, minor: int
) -> float:
    """When (`time.monotonic`) the nodes handed the round completing the entry to the broker.

    The nodes report the phone every STEP_S, live (`at` = now); the round whose time is
    `enter_after` past the first one's completes the entry.  Rounds go on (as a real phone
    keeps advertising) until the offer reaches the nodes' subscription.
    """
    token, first, completing = f"t-lat-{minor}", time.time(), None
    async with asyncio.timeout(ACK_TIMEOUT_S):
        while token not in offered:
            now = time.time()
            sent = time.monotonic()
            for node, body in entrance.reports(minor, [now]).items():
                await nodes.publish(f"{topics.base}/scanners/{node}/adv", body, qos=0)
            if completing is None and now - first >= entrance.enter_after:
                completing = sent
            await asyncio.sleep(STEP_S)
    if completing is None:  # an offer before the entry could complete: a stale track
        raise RuntimeFailure(f"customer {minor} got an offer before entering the entrance")
    return completing


async def run_nodes(config: Config, n: int) -> dict[str, float]:
    """The scanner nodes (`--nodes`): customers 1..n arrive every STAGGER_S; token → when
    the round completing its entry was handed to the broker."""
    topics = Topics(config.mqtt.topic_prefix, config.store.id)
    prefix = f"{topics.base}/offers/"
    entrance, offered = Entrance.of(config), set[str]()
    async with MqttLink(config.mqtt.host, config.mqtt.port, "bench-nodes") as nodes:
        await nodes.subscribe([f"{prefix}+"])

        async def listen() -> None:
            async for message in nodes.messages():
                offered.add(message.topic.removeprefix(prefix))

        listener = asyncio.create_task(listen(), name="offers")
        try:
            customers = []
            for i in range(1, n + 1):
                one = _one_customer(nodes, offered, entrance, topics, i)
                customers.append(asyncio.create_task(one, name=f"customer-{i}"))
                await asyncio.sleep(STAGGER_S)
            done = await asyncio.gather(*customers)
        finally:
            listener.cancel()
    return {f"t-lat-{i}": at for i, at in enumerate(done, start=1)}


async def _nodes_process(config: Config, n: int) -> dict[str, float]:
    """Run `run_nodes` in a child process; its JSON answer, or RuntimeFailure with why not."""
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "rayon_tooling.benchmarks.latency",
        "--nodes",
        str(config.path),
        "--customers",
        str(n),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await child.communicate()
    finally:  # cancelled (Ctrl-C, the gateway failed): the nodes must not outlive the bench
        if child.returncode is None:
            child.kill()
            await child.wait()
    if child.returncode != 0:
        tail = err.decode(errors="replace").strip().splitlines()[-1:] or ["(no output)"]
        raise RuntimeFailure(f"the scanner nodes' process failed ({child.returncode}): {tail[0]}")
    found: dict[str, float] = json.loads(out)
    return found


async def measure_latency(config: Config, n: int) -> list[float]:
    """`n` samples (seconds) of advert → PUBACK through a running gateway."""
    topics = Topics(config.mqtt.topic_prefix, config.store.id)
    host, port = config.mqtt.host, config.mqtt.port
    link = TimedLink(host, port, "bench-gateway", offers_prefix=f"{topics.base}/offers/")
    async with link, MqttLink(host, port, "bench-crm") as crm:
        gateway, stop, task = await _gateway(config, link)
        try:
            await _load_customers(crm, gateway, topics, n)
            completing = await _nodes_process(config, n)
            missing = sorted(set(completing) - set(link.acked))
            if missing:
                raise RuntimeFailure(
                    f"the nodes saw offers the gateway has no PUBACK for: {missing[:3]}"
                )
            return [link.acked[token] - at for token, at in completing.items()]
        except RuntimeFailure as exc:
            raise RuntimeFailure(f"{exc}; gateway counters: {gateway.counters()}") from exc
        finally:
            stop.set()
            await task
            gateway.store.close()


# --- report --------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """The nearest-rank `q` percentile (0 < q ≤ 100)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


@dataclass(frozen=True, slots=True)
class Figures:
    """What one `measure` found: latency samples (s) and outbox rates (offers/s)."""

    latencies: list[float]
    rates: list[float]
    offers: int
    window: int


def measure(customers: int, offers: int, runs: int, window: int) -> Figures:
    """Both benchmarks on one private broker."""
    with (
        tempfile.TemporaryDirectory(prefix="rayon-latency-") as tmp,
        private_broker(Path(tmp)) as port,
    ):
        config = write_config(Path(tmp), port)
        latencies = asyncio.run(measure_latency(config, customers))
        rates = offers_per_s(port, Path(tmp), offers, runs, window)
    return Figures(latencies, rates, offers, window)


def latency_text(f: Figures) -> str:
    ms = [x * 1000 for x in f.latencies]
    return (
        f"p50 {percentile(ms, 50):.1f} ms, p99 {percentile(ms, 99):.1f} ms "
        f"(max {max(ms):.1f}; {len(ms)} offers)"
    )


def rate_text(f: Figures) -> str:
    r = f.rates
    return (
        f"{statistics.median(r):,.0f} offers/s (min {min(r):,.0f}, max {max(r):,.0f}; "
        f"{len(r)} runs of {f.offers:,}, window {f.window})"
    )


def bench_latency(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Print both figures; always 0 (a failure to measure raises RuntimeFailure)."""
    write = (out or sys.stdout).write
    f = measure(args.customers, args.offers, args.runs, args.window)
    write(f"advert → PUBACK: {latency_text(f)}; target p99 ≤ {TARGET_P99_MS:g} ms\n")
    write(f"outbox at QoS 1: {rate_text(f)}; target ≥ {TARGET_OFFERS_S:,}\n")
    return 0


def suite_rows(quick: bool) -> list[Any]:
    """The two rows of `rayon bench`'s table (helper E's `SuiteRow`)."""
    from rayon_tooling.benchmarks import SuiteRow

    quiet = logging.getLogger("gateway")  # the live gateway's INFO lines would bury the table
    level = quiet.level
    quiet.setLevel(max(level, logging.WARNING))
    try:
        f = measure(20, 300, 1, 64) if quick else measure(200, 5000, 5, 64)
    finally:
        quiet.setLevel(level)
    ms = [x * 1000 for x in f.latencies]
    p99, rate = percentile(ms, 99), statistics.median(f.rates)
    return [
        SuiteRow(
            "advert → PUBACK latency (live gateway, Mosquitto)",
            latency_text(f),
            f"p99 ≤ {TARGET_P99_MS:g} ms",
            p99 <= TARGET_P99_MS,
            "rayon bench latency",
        ),
        SuiteRow(
            "offers published at QoS 1",
            rate_text(f),
            f"≥ {TARGET_OFFERS_S:,} offers/s",
            rate >= TARGET_OFFERS_S,
            "rayon bench latency",
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    add_arguments(parser)
    parser.add_argument("--nodes", type=Path, help=argparse.SUPPRESS)  # the child: CONFIG
    args = parser.parse_args()
    if args.nodes is None:
        sys.exit(bench_latency(args))
    try:
        found = asyncio.run(run_nodes(load_config(args.nodes), args.customers))
    except TimeoutError:
        sys.exit(f"no offer reached the scanner nodes within {ACK_TIMEOUT_S:g} s of an entry")
    sys.stdout.write(json.dumps(found))


if __name__ == "__main__":
    main()
