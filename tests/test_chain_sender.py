"""The store's sender of its journal (gateway/central/sender.py) on a real Mosquitto, with the
centre played by a test client: ranges that cover the journal, at most `in_flight` batches
beyond the centre's mark, the mark trims the journal, a backfill request and a mark that does
not move make it send again from the database."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.central.sender import ChainSender
from gateway.config.model import CentralConfig
from gateway.deliver.mqtt import MqttLink
from gateway.store.repo import Store
from gateway.topics import ChainLeaf, Topics
from tests.broker import Mosquitto, Subscriber
from tests.chain import zone_events

pytestmark = pytest.mark.mqtt
TOPICS = Topics("rayon", "paris-11")


def batches(sub: Subscriber) -> list[dict[str, Any]]:
    return [json.loads(m.payload) for m in sub.messages if m.topic.endswith("/chain/batch")]


async def until(check: Callable[[], bool], timeout: float = 20.0) -> None:
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.02)


def ack(centre: Subscriber, hwm: int) -> None:
    payload = {"v": 1, "store": "paris-11", "hwm": hwm, "at": time.time()}
    centre.publish(TOPICS.chain(ChainLeaf.ACK), json.dumps(payload).encode(), retain=True)


def run_sender(
    broker: Mosquitto,
    store: Store,
    config: CentralConfig,
    scenario: Callable[[ChainSender], Awaitable[None]],
) -> ChainSender:
    async def main() -> ChainSender:
        async with MqttLink(broker.host, broker.port, "rayon-paris-11-chain") as link:
            sender = ChainSender(store, link, TOPICS, config)
            task = asyncio.create_task(sender.run())
            try:
                await scenario(sender)
            finally:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
            return sender

    return asyncio.run(main())


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store(f"sqlite:///{tmp_path / 'rayon.db'}", journal=True)
    yield opened
    opened.close()


def test_in_flight_is_bounded_and_the_mark_trims_and_releases(
    mosquitto: Mosquitto, subscriber: Callable[..., Subscriber], store: Store
) -> None:
    centre = subscriber(TOPICS.chain(ChainLeaf.BATCH))
    store.record_events(zone_events(50))
    seqs = [e.seq for e in store.uplink_after(0, 100)]
    config = CentralConfig(enabled=True, batch=5, in_flight=3, resend_after=3600)

    async def scenario(sender: ChainSender) -> None:
        await until(lambda: len(batches(centre)) >= 3)
        await asyncio.sleep(0.5)  # room for a fourth batch, which must not come
        assert len(batches(centre)) == 3 and sender.cursor == seqs[14]
        ack(centre, seqs[4])  # the centre committed the first batch
        await until(lambda: len(batches(centre)) >= 4)
        await until(lambda: store.uplink_count() == 45)
        while store.uplink_count():  # the centre commits what it received, and says so
            ack(centre, batches(centre)[-1]["last"])
            await asyncio.sleep(0.05)

    run_sender(mosquitto, store, config, scenario)
    sent = batches(centre)
    assert sent[0]["after"] == 0 and sent[-1]["last"] == seqs[-1]
    for earlier, later in itertools.pairwise(sent):
        assert later["after"] == earlier["last"]  # contiguous ranges, nothing skipped
    assert [r["seq"] for b in sent for r in b["rows"]] == seqs
    assert all(len(b["rows"]) <= 5 for b in sent)


def test_a_backfill_request_sends_the_journal_again_from_the_database(
    mosquitto: Mosquitto, subscriber: Callable[..., Subscriber], store: Store
) -> None:
    centre = subscriber(TOPICS.chain(ChainLeaf.BATCH))
    store.record_events(zone_events(20))
    seqs = [e.seq for e in store.uplink_after(0, 100)]
    config = CentralConfig(enabled=True, batch=10, in_flight=8, resend_after=3600)

    async def scenario(sender: ChainSender) -> None:
        await until(lambda: len(batches(centre)) >= 2)
        ack(centre, seqs[9])
        await until(lambda: sender.acked == seqs[9])
        request = {"v": 1, "store": "paris-11", "from": seqs[10], "to": seqs[19], "at": 0}
        centre.publish(TOPICS.chain(ChainLeaf.BACKFILL), json.dumps(request).encode())
        await until(lambda: len(batches(centre)) >= 3)

    sender = run_sender(mosquitto, store, config, scenario)
    again = batches(centre)[2]
    assert (again["after"], again["last"]) == (seqs[9], seqs[19])
    assert [r["seq"] for r in again["rows"]] == seqs[10:]
    assert sender.counts.backfills == 1


def test_a_mark_that_does_not_move_makes_it_send_again(
    mosquitto: Mosquitto, subscriber: Callable[..., Subscriber], store: Store
) -> None:
    centre = subscriber(TOPICS.chain(ChainLeaf.BATCH))
    store.record_events(zone_events(4))
    config = CentralConfig(enabled=True, batch=10, in_flight=1, resend_after=1.0)

    async def scenario(sender: ChainSender) -> None:
        await until(lambda: len(batches(centre)) >= 2)

    sender = run_sender(mosquitto, store, config, scenario)
    first, second = batches(centre)[:2]
    assert first == second and sender.counts.resends >= 1


def test_bad_messages_from_the_centre_are_counted_not_fatal(
    mosquitto: Mosquitto, subscriber: Callable[..., Subscriber], store: Store
) -> None:
    centre = subscriber(TOPICS.chain(ChainLeaf.BATCH))
    store.record_events(zone_events(3))
    seqs = [e.seq for e in store.uplink_after(0, 100)]
    config = CentralConfig(enabled=True, batch=10, in_flight=2, resend_after=3600)

    async def scenario(sender: ChainSender) -> None:
        await until(lambda: len(batches(centre)) >= 1)
        centre.publish(TOPICS.chain(ChainLeaf.ACK), b"not json", retain=False)
        wrong = {"v": 1, "store": "lyon-2", "hwm": 10**9, "at": 0}
        centre.publish(TOPICS.chain(ChainLeaf.ACK), json.dumps(wrong).encode(), retain=False)
        await until(lambda: sender.counts.rejected == 2)
        ack(centre, seqs[-1])
        await until(lambda: store.uplink_count() == 0)

    sender = run_sender(mosquitto, store, config, scenario)
    assert sender.acked == seqs[-1]


def test_numbers_gone_at_the_tail_are_closed_by_an_empty_range(
    mosquitto: Mosquitto, subscriber: Callable[..., Subscriber], store: Store
) -> None:
    centre = subscriber(TOPICS.chain(ChainLeaf.BATCH))
    store.record_events(zone_events(3))
    last = store.uplink_after(0, 10)[-1].seq
    store.uplink_expire(time.time())  # kept too long: gone before they were ever sent
    config = CentralConfig(enabled=True, batch=10, in_flight=2, resend_after=3600)

    async def scenario(sender: ChainSender) -> None:
        await until(lambda: len(batches(centre)) >= 1)

    run_sender(mosquitto, store, config, scenario)
    assert batches(centre)[0] == {"v": 1, "store": "paris-11", "after": 0, "last": last, "rows": []}


def test_a_replaced_database_is_sent_beyond_the_centres_mark(
    mosquitto: Mosquitto, subscriber: Callable[..., Subscriber], store: Store
) -> None:
    centre = subscriber(TOPICS.chain(ChainLeaf.BATCH))
    ack(centre, 50)  # retained: what the centre holds of the store's previous database
    store.record_events(zone_events(3))  # the new database numbers them 1, 2, 3
    config = CentralConfig(enabled=True, batch=10, in_flight=2, resend_after=3600)

    async def scenario(sender: ChainSender) -> None:
        await until(lambda: any(b["last"] > 50 for b in batches(centre)))

    sender = run_sender(mosquitto, store, config, scenario)
    last = next(b for b in batches(centre) if b["last"] > 50)
    assert (last["after"], [r["seq"] for r in last["rows"]]) == (50, [51, 52, 53])
    assert sender.counts.rebased == 3
