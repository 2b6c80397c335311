"""`Collector` (gateway/central/collector.py) in this process, on a real Mosquitto and the real
PostgreSQL: a malformed or forged batch is refused and counted, never fatal; the mark is
published (retained) after the commit, also for a batch already stored; a range received
beyond the mark makes it ask the store for the gap, once per `backfill_after`."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator

import pytest

from gateway.central.collector import Collector
from gateway.central.ingest import CentralDb
from gateway.central.wire import Batch, encode
from gateway.deliver.mqtt import MqttLink
from gateway.store.uplink import UplinkEntry
from gateway.topics import ChainLeaf, Topics
from tests.broker import Mosquitto, Subscriber

pytestmark = pytest.mark.mqtt
PARIS = Topics("rayon", "paris-11")


@pytest.fixture
def central(postgres_url: str) -> Iterator[CentralDb]:
    db = CentralDb(postgres_url)
    yield db
    db.close()


def batch(after: int, last: int) -> bytes:
    seqs = range(after + 1, last + 1)
    rows = tuple(UplinkEntry(s, "event", 1.0e9 + s, None, "d1", {"n": s}) for s in seqs)
    return encode(Batch("paris-11", after, last, rows))


def collect(broker: Mosquitto, db: CentralDb, scenario: Callable[[], object]) -> Collector:
    """Run a collector; once it is subscribed, `scenario` (blocking: publishes, waits)."""

    async def main() -> Collector:
        async with MqttLink(broker.host, broker.port, "rayon-central-test") as link:
            collector = Collector(db, link, "rayon", backfill_after=0.2, workers=1)
            task = asyncio.create_task(collector.run())
            try:
                async with asyncio.timeout(20):
                    await collector.ready.wait()
                await asyncio.to_thread(scenario)
            finally:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
            return collector

    return asyncio.run(main())


def test_bad_batches_are_refused_and_good_ones_acknowledged_after_the_commit(
    mosquitto: Mosquitto, subscriber: Callable[..., Subscriber], central: CentralDb
) -> None:
    store = subscriber(PARIS.chain(ChainLeaf.ACK))
    sender = subscriber("nothing/here")

    def scenario() -> None:
        sender.publish(PARIS.chain(ChainLeaf.BATCH), b"not json")
        forged = json.loads(batch(0, 2)) | {"store": "lyon-2"}
        sender.publish(PARIS.chain(ChainLeaf.BATCH), json.dumps(forged).encode())
        sender.publish(PARIS.chain(ChainLeaf.BATCH), batch(0, 3))
        sender.publish(PARIS.chain(ChainLeaf.BATCH), batch(0, 3))  # again: stored once
        store.wait(2, timeout=20)

    collector = collect(mosquitto, central, scenario)
    marks = [json.loads(m.payload)["hwm"] for m in store.messages]
    assert marks[:2] == [3, 3]
    late = subscriber(PARIS.chain(ChainLeaf.ACK))  # a store (re)starting reads the kept mark
    (kept,) = late.wait(1)
    assert kept.retain and json.loads(kept.payload)["hwm"] == 3
    assert (collector.counts.rejected, collector.counts.batches) == (2, 2)
    assert collector.counts.rows == 3  # the copy wrote nothing
    assert central.marks() == {"paris-11": (3, 0)}


def test_a_range_beyond_the_mark_makes_it_ask_for_the_gap(
    mosquitto: Mosquitto, subscriber: Callable[..., Subscriber], central: CentralDb
) -> None:
    store = subscriber(PARIS.chain(ChainLeaf.BACKFILL))
    sender = subscriber("nothing/here")

    def scenario() -> None:
        sender.publish(PARIS.chain(ChainLeaf.BATCH), batch(0, 5))
        sender.publish(PARIS.chain(ChainLeaf.BATCH), batch(10, 15))  # (5, 10] lost
        store.wait(1, timeout=20)
        deadline = time.monotonic() + 20  # the request is counted once it went out
        while central.marks()["paris-11"][1] < 1 and time.monotonic() < deadline:
            time.sleep(0.02)

    collector = collect(mosquitto, central, scenario)
    request = json.loads(store.messages[0].payload)
    assert (request["from"], request["to"]) == (6, 10)
    assert collector.counts.backfills >= 1 and central.marks()["paris-11"][1] >= 1
