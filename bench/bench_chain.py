"""The chain's collector: events/s ingested into PostgreSQL by one `rayon central` and by two
side by side, and the catch-up of a store after a 10,000-event WAN outage.

    .venv/bin/python bench/bench_chain.py [--pg URL] [--stores 8] [--events 10000]
        [--outage 10000] [--runs 3]

Ingest: `--stores` stores' batches of 500 events (the `event` body of a real zone event) are
published straight to a central Mosquitto by a test client, as fast as it is acknowledged;
`rayon central` processes (1, then 2) write them; the figure is events per second from the
first publish to the moment every store's mark covers its last event (read from PostgreSQL).
Catch-up (tests/chainlab.py): one store, its Mosquitto bridged to the centre through a WAN
proxy, its sender with the defaults (500 rows, 8 in flight), two collectors; the WAN is cut,
`--outage` events are written to the store database, the WAN is restored; the figure is the
seconds from the restore until the centre's mark covers the last event.

The database is $RAYON_TEST_POSTGRES_URL unless --pg; each run works in a schema of its own,
dropped afterwards.  Prints the median of `--runs`, with min and max.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from paho.mqtt.client import Client  # noqa: E402
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion  # noqa: E402
from sqlalchemy import create_engine, make_url, text  # noqa: E402

from gateway.central.wire import Batch, encode  # noqa: E402
from gateway.store.uplink import UplinkEntry  # noqa: E402
from gateway.topics import ChainLeaf, Topics  # noqa: E402
from tests.broker import find_mosquitto  # noqa: E402
from tests.chainlab import ChainLab  # noqa: E402

BATCH = 500
REASON = {"x": 25.1, "y": 11.4, "accuracy_m": 2.3, "anchors": ["node-tv", "node-audio", "n3"]}


@contextmanager
def schema(base: str) -> Iterator[str]:
    """A url on a fresh schema of `base`'s database, dropped afterwards."""
    name = f"rayon_bench_chain_{uuid.uuid4().hex[:10]}"
    engine = create_engine(base, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{name}"'))
    try:
        url = make_url(base).update_query_dict({"options": f"-csearch_path={name}"})
        yield url.render_as_string(hide_password=False)
    finally:
        with engine.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{name}" CASCADE'))
        engine.dispose()


def batches(store: str, events: int) -> list[bytes]:
    now = time.time()
    out = []
    for after in range(0, events, BATCH):
        rows = []
        for seq in range(after + 1, min(after + BATCH, events) + 1):
            device = f"ibeacon:{store}:1:{seq % 300}"
            body: dict[str, object] = {"at": now + seq, "kind": "dwell", "zone": "aisle-tv"}
            body |= {"device": device, "customer": None, "dwell_s": 30.0, "reason": REASON}
            rows.append(UplinkEntry(seq, "event", now + seq, None, device, body))
        out.append(encode(Batch(store, after, rows[-1].seq, tuple(rows))))
    return out


def until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not within {timeout} s")
        time.sleep(0.02)


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a live process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def ingest_run(pg: str, collectors: int, stores: int, events: int) -> tuple[float, float]:
    """Events/s written by `collectors` rayon central processes, and events per CPU second
    of the collectors (their own cost, whatever PostgreSQL and the broker take)."""
    binary = find_mosquitto()
    assert binary is not None, "mosquitto is not installed"
    with tempfile.TemporaryDirectory() as tmp, schema(pg) as url:
        lab = ChainLab(Path(tmp), url, stores=(), collectors=collectors)
        lab.start()
        try:
            payloads = [(f"s{i:03d}", batches(f"s{i:03d}", events)) for i in range(stores)]
            client = Client(CallbackAPIVersion.VERSION2, protocol=MQTTProtocolVersion.MQTTv5)
            client.max_inflight_messages_set(64)
            client.connect(lab.central.host, lab.central.port)
            client.loop_start()
            # the collectors' start-up (imports, schema) is not ingesting
            before = {name: cpu_seconds(proc.pid) for name, proc in lab.procs.items()}
            started = time.monotonic()
            sent = []
            for i in range(len(payloads[0][1])):  # the stores' batches interleaved
                for store, chunks in payloads:
                    if i < len(chunks):
                        topic = Topics("rayon", store).chain(ChainLeaf.BATCH)
                        sent.append(client.publish(topic, chunks[i], qos=1))
            for info in sent:
                info.wait_for_publish(60)

            def done() -> bool:
                marks = lab.marks()
                return all(marks.get(s, 0) >= events for s, _ in payloads)

            until(done, 600, "ingest")
            seconds = time.monotonic() - started
            cpu = sum(cpu_seconds(p.pid) - before[n] for n, p in lab.procs.items())
            client.loop_stop()
            client.disconnect()
        finally:
            lab.close()
    return stores * events / seconds, stores * events / cpu


def catch_up_run(pg: str, outage: int) -> float:
    """Seconds from the WAN's return until the centre holds an outage's events."""
    with tempfile.TemporaryDirectory() as tmp, schema(pg) as url:
        lab = ChainLab(Path(tmp), url, stores=("paris-11",), collectors=2)
        lab.start()
        try:
            site = lab.sites["paris-11"]
            site.produce(500)
            until(lambda: lab.caught_up("paris-11"), 120, "warm-up")
            site.proxy.cut()
            site.produce(outage, chunk=500)
            restored = time.monotonic()
            site.proxy.restore()
            until(lambda: lab.caught_up("paris-11"), 600, "catch-up")
            seconds = time.monotonic() - restored
            assert lab.central_events("paris-11") == site.events(), "not exactly once"
        finally:
            lab.close()
    return seconds


def spread(values: list[float], unit: str, digits: int = 0) -> str:
    med, lo, hi = statistics.median(values), min(values), max(values)
    return f"{med:,.{digits}f} {unit} (min {lo:,.{digits}f}, max {hi:,.{digits}f})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--pg", default=os.environ.get("RAYON_TEST_POSTGRES_URL"))
    ap.add_argument("--stores", type=int, default=8)
    ap.add_argument("--events", type=int, default=10_000, help="per store")
    ap.add_argument("--outage", type=int, default=10_000)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    if not args.pg:
        ap.error("give --pg postgresql+psycopg://… or set RAYON_TEST_POSTGRES_URL")
    if min(args.stores, args.events, args.outage, args.runs) < 1:
        ap.error("--stores, --events, --outage and --runs must be at least 1")
    total = args.stores * args.events
    print(f"chain collector: {args.stores} stores x {args.events:,} events, batches of {BATCH}")
    for collectors in (1, 2):
        sizes = (args.pg, collectors, args.stores, args.events)
        runs = [ingest_run(*sizes) for _ in range(args.runs)]
        rates = [rate for rate, _ in runs]
        per = [rate / collectors for rate in rates]
        print(
            f"  {collectors} collector(s): {spread(rates, 'events/s')} in all, "
            f"{spread(per, 'events/s')} per collector ({total:,} events); "
            f"{spread([cpu for _, cpu in runs], 'events per collector CPU second')}"
        )
    catch = [catch_up_run(args.pg, args.outage) for _ in range(args.runs)]
    print(f"catch-up of a {args.outage:,}-event WAN outage: {spread(catch, 's', 2)}")


if __name__ == "__main__":
    main()
