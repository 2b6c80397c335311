"""The outbox publisher: real SQLite store, real private Mosquitto, a manual clock."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
from collections.abc import Callable, Coroutine, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import pytest

from gateway.clock import ManualClock
from gateway.deliver.mqtt import Backoff, MqttLink
from gateway.deliver.outbox import DrainResult, OutboxPublisher
from gateway.events import EventKind, FeedbackState, Offer, Purpose, ZoneEvent
from gateway.identity.model import Consent, Customer
from gateway.store.outbox import Enqueued
from gateway.store.repo import Store
from gateway.store.tables import OfferState
from gateway.topics import Topics
from tests.broker import Mosquitto, Subscriber, noticed_down

pytestmark = pytest.mark.mqtt

R = TypeVar("R")
PARIS = ZoneInfo("Europe/Paris")
T0 = datetime(2026, 3, 3, 14, 0, tzinfo=UTC).timestamp()
TOPICS = Topics("rayon", "paris-11")
OFFERS = "rayon/paris-11/offers/+"


def run(coro: Coroutine[Any, Any, R]) -> R:
    async def bounded() -> R:
        async with asyncio.timeout(20):
            return await coro

    return asyncio.run(bounded())


def offer(oid: str, created_at: float, expires_in: float, **kw: Any) -> Offer:
    fields: dict[str, Any] = {
        "id": oid,
        "rule": "tv-aisle-dwell",
        "store": "paris-11",
        "zone": "aisle-tv",
        "customer": "c1",
        "token": "tok-c1",
        "created_at": created_at,
        "expires_at": created_at + expires_in,
        "title": "-15 % sur les TV",
        "body": "Offre valable aujourd'hui au rayon TV.",
        "code": "TV15",
        "url": None,
        "purpose": Purpose.COMMERCIAL,
    }
    return Offer(**(fields | kw))


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(f"sqlite:///{tmp_path / 'rayon.db'}")
    yield s
    s.close()


def link_to(broker: Mosquitto) -> MqttLink:
    backoff = Backoff(initial=0.02, cap=0.2)
    return MqttLink(broker.host, broker.port, "rayon-outbox-test", backoff=backoff, timeout=5.0)


def state(store: Store, offer_id: str) -> OfferState:
    record = store.offer(offer_id)
    assert record is not None
    return record.state


def test_a_due_offer_is_sent_once_with_the_expiry_left_at_send_time(
    store: Store, mosquitto: Mosquitto, subscriber: Callable[..., Subscriber]
) -> None:
    sub = subscriber(OFFERS, "rayon/marker")
    clock = ManualClock(T0 + 600.4)  # the offer waited 10 minutes in the outbox
    store.enqueue_offers([offer("o1", T0, expires_in=3 * 3600)])

    async def main() -> tuple[DrainResult, DrainResult]:
        async with link_to(mosquitto) as link:
            outbox = OutboxPublisher(store, link, TOPICS, clock, PARIS)
            first, second = await outbox.drain(), await outbox.drain()
            await link.publish("rayon/marker", b"", qos=1)
            await asyncio.to_thread(sub.wait, 2)
            return first, second

    assert run(main()) == (DrainResult(sent=1), DrainResult())
    sent, marker = sub.messages
    assert marker.topic == "rayon/marker"  # nothing else came before it
    assert sent.topic == "rayon/paris-11/offers/tok-c1" and sent.qos == 1
    # whole seconds left, less the second Mosquitto may add; it may subtract one or two it held it
    left = math.floor(3 * 3600 - 600.4) - 1
    assert sent.expiry_s is not None and left - 2 <= sent.expiry_s <= left
    assert json.loads(sent.payload)["id"] == "o1"
    assert json.loads(sent.payload)["expires_at"] == "2026-03-03T18:00:00+01:00"
    record = store.offer("o1")
    assert record is not None and (record.state, record.sent_at) == (OfferState.SENT, T0 + 600.4)


def test_expired_and_holdout_offers_are_never_sent(
    store: Store, mosquitto: Mosquitto, subscriber: Callable[..., Subscriber]
) -> None:
    sub = subscriber(OFFERS, "rayon/marker")
    clock = ManualClock(T0 + 3600)
    store.enqueue_offers(
        [
            offer("late", T0, expires_in=3600),  # expires exactly now
            offer("held", T0 + 1, expires_in=7200, holdout=True),
            offer("fresh", T0 + 2, expires_in=7200),
        ]
    )

    async def main() -> DrainResult:
        async with link_to(mosquitto) as link:
            result = await OutboxPublisher(store, link, TOPICS, clock, PARIS).drain()
            await link.publish("rayon/marker", b"", qos=1)
            await asyncio.to_thread(sub.wait, 2)
            return result

    assert run(main()) == DrainResult(sent=1, expired=1)
    assert [json.loads(m.payload)["id"] for m in sub.messages[:-1]] == ["fresh"]
    assert [state(store, o) for o in ("late", "held", "fresh")] == [
        OfferState.EXPIRED,
        OfferState.HOLDOUT,
        OfferState.SENT,
    ]


def test_broker_down_keeps_offers_pending_until_it_is_back(
    store: Store, mosquitto: Mosquitto, subscriber: Callable[..., Subscriber]
) -> None:
    clock = ManualClock(T0 + 10)
    store.enqueue_offers([offer("o1", T0, 3600), offer("o2", T0 + 1, 3600)])

    async def main() -> tuple[DrainResult, DrainResult, list[str]]:
        async with link_to(mosquitto) as link:
            outbox = OutboxPublisher(store, link, TOPICS, clock, PARIS)
            mosquitto.stop()
            await noticed_down(link)
            down = await outbox.drain()
            assert [state(store, o) for o in ("o1", "o2")] == [OfferState.PENDING] * 2
            mosquitto.start()
            await link.wait_connected()
            sub = await asyncio.to_thread(subscriber, OFFERS)
            clock.advance(60)
            back = await outbox.drain()
            got = await asyncio.to_thread(sub.wait, 2)
            return down, back, [json.loads(m.payload)["id"] for m in got]

    down, back, received = run(main())
    assert received == ["o1", "o2"]
    assert (down.sent, down.failed) == (0, 2)
    assert back == DrainResult(sent=2)
    record = store.offer("o1")
    assert record is not None
    assert (record.state, record.attempts) == (OfferState.SENT, 1)  # no attempt while down


def test_a_burst_goes_out_in_windows_each_offer_once_with_its_own_expiry(
    store: Store, mosquitto: Mosquitto, subscriber: Callable[..., Subscriber]
) -> None:
    sub = subscriber(OFFERS)
    clock = ManualClock(T0 + 100.5)
    burst = [
        offer(f"o{i:03}", T0 + i, 600 + 7 * i, customer=f"c{i}", token=f"tok-{i % 40}")
        for i in range(250)
    ]
    # 1 s and 1.9 s left: the broker could hand them on after their expires_at
    expired = [offer(f"x{i}", T0 + at, 100) for i, at in enumerate((-1, 0, 0.5, 1.5, 2.4))]
    burst.append(offer("last-second", T0 + 2.6, 100))  # 2.1 s left: expiry 1 s, never 0
    store.enqueue_offers([*burst, *expired])

    async def main() -> DrainResult:
        async with link_to(mosquitto) as link:
            outbox = OutboxPublisher(store, link, TOPICS, clock, PARIS, batch=60, window=16)
            result = await outbox.drain()
            await asyncio.to_thread(sub.wait, len(burst))
            return result

    assert run(main()) == DrainResult(sent=251, expired=5, failed=0)
    got = {json.loads(m.payload)["id"]: m for m in sub.messages}
    assert sorted(got) == sorted(o.id for o in burst) and len(sub.messages) == len(burst)
    for o in burst:
        assert got[o.id].topic == f"rayon/paris-11/offers/{o.token}"
        # Mosquitto subtracts the whole seconds a message waited in it before forwarding it
        # (a loaded machine: a second or two); it never adds any.
        sent = math.floor(o.expires_at - clock.now()) - 1
        expiry = got[o.id].expiry_s
        assert expiry is not None and sent - 2 <= expiry <= sent
    assert got["last-second"].expiry_s == 1
    assert store.counts_by_state()[OfferState.SENT] == 251
    assert {state(store, o.id) for o in expired} == {OfferState.EXPIRED}


def test_run_drains_when_woken_and_stops_when_cancelled(
    store: Store, mosquitto: Mosquitto, subscriber: Callable[..., Subscriber]
) -> None:
    sub = subscriber(OFFERS)
    clock = ManualClock(T0)

    async def main() -> None:
        async with link_to(mosquitto) as link:
            wake = asyncio.Event()
            outbox = OutboxPublisher(store, link, TOPICS, clock, PARIS)
            task = asyncio.create_task(outbox.run(wake))
            await asyncio.to_thread(store.enqueue_offers, [offer("o1", T0, 3600)])
            wake.set()
            await asyncio.to_thread(sub.wait, 1)
            # the app may have it before its PUBACK reached us: wait for the batch's record
            while await store.call(state, store, "o1") is not OfferState.SENT:
                await asyncio.sleep(0.01)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

    run(main())
    assert state(store, "o1") is OfferState.SENT


@pytest.mark.parametrize("token", ["a/b", "4970123456789"])  # the probe saw offers/4970…
def test_an_unusable_token_cancels_the_offer_and_the_rest_still_go(
    store: Store, mosquitto: Mosquitto, subscriber: Callable[..., Subscriber], token: str
) -> None:
    """A token breaking the rule (imported before it, say a loyalty number) gets nothing."""
    sub = subscriber(OFFERS)
    store.enqueue_offers([offer("bad", T0, 3600, token=token), offer("ok", T0 + 1, 3600)])

    async def main() -> DrainResult:
        async with link_to(mosquitto) as link:
            result = await OutboxPublisher(store, link, TOPICS, ManualClock(T0), PARIS).drain()
            await asyncio.to_thread(sub.wait, 1)
            return result

    assert run(main()) == DrainResult(sent=1, cancelled=1)
    record = store.offer("bad")
    assert record is not None and record.state is OfferState.CANCELLED
    assert "delivery token" in (record.last_error or "")
    assert [m.topic.rsplit("/", 1)[1] for m in sub.messages] == ["tok-c1"]


def test_an_offer_no_publish_can_carry_is_cancelled_and_the_rest_still_go(
    store: Store, mosquitto: Mosquitto, subscriber: Callable[..., Subscriber]
) -> None:
    """One bad row never stops the publisher (issue 16): an expiry beyond MQTT's 32 bits is
    sent with the longest interval MQTT can carry; one no interval can express (infinite)
    cancels that offer, logged and counted, and the next offer still goes."""
    sub = subscriber(OFFERS, "rayon/marker")
    clock = ManualClock(T0 + 10)
    store.enqueue_offers(
        [
            offer("far", T0, expires_in=9e10 - T0),
            offer("never", T0 + 1, expires_in=math.inf),
            offer("fresh", T0 + 2, expires_in=3600),
        ]
    )

    async def main() -> tuple[DrainResult, int]:
        async with link_to(mosquitto) as link:
            outbox = OutboxPublisher(store, link, TOPICS, clock, PARIS)
            result = await outbox.drain()
            await link.publish("rayon/marker", b"", qos=1)
            await asyncio.to_thread(sub.wait, 3)
            return result, outbox.counters["offers_unpublishable"]

    assert run(main()) == (DrainResult(sent=2, cancelled=1), 1)
    far, fresh = sub.messages[:2]
    assert [json.loads(m.payload)["id"] for m in (far, fresh)] == ["far", "fresh"]
    assert far.expiry_s is not None and far.expiry_s >= 2**32 - 3  # the broker held it a bit
    record = store.offer("never")
    assert record is not None and record.state is OfferState.CANCELLED
    assert record.last_error is not None and "cannot be published" in record.last_error


def test_an_offer_the_broker_refuses_stays_pending_and_the_others_go(
    store: Store, tmp_path: Path, mosquitto_with: Callable[..., Mosquitto]
) -> None:
    acl = tmp_path / "acl"
    acl.write_text("topic readwrite rayon/paris-11/offers/tok-ok\n")
    broker = mosquitto_with(f"acl_file {acl}")
    sub = Subscriber(broker, "acl-sub").start(OFFERS)
    store.enqueue_offers(
        [offer("no", T0, 3600, token="tok-no"), offer("ok", T0, 3600, token="tok-ok")]
    )

    async def main() -> DrainResult:
        async with link_to(broker) as link:
            result = await OutboxPublisher(store, link, TOPICS, ManualClock(T0), PARIS).drain()
            await asyncio.to_thread(sub.wait, 1)
            return result

    try:
        assert run(main()) == DrainResult(sent=1, failed=1)
    finally:
        sub.stop()
    refused = store.offer("no")
    assert refused is not None and (refused.state, refused.attempts) == (OfferState.PENDING, 1)
    assert "refused" in (refused.last_error or "")
    assert [json.loads(m.payload)["id"] for m in sub.messages] == ["ok"]


def test_offers_committed_with_events_go_out_once_and_dropped_ones_never(
    store: Store, mosquitto: Mosquitto, subscriber: Callable[..., Subscriber]
) -> None:
    """What the daemon does: offers reach the outbox through `Store.commit`, with the events
    of the same batch, in a bounded outbox; a redelivered id is not queued twice."""
    sub = subscriber(OFFERS, "rayon/marker")
    store.max_pending = 2
    visit = ZoneEvent(T0, EventKind.VISIT_START, "store", "d1", "c1", None, {})
    order = offer("order", T0 + 3, 3600, purpose=Purpose.TRANSACTIONAL)
    first = [offer("a", T0, 3600), offer("b", T0 + 1, 3600), offer("c", T0 + 2, 3600), order]
    assert store.commit([visit], first) == Enqueued(added=3, dropped=1)
    assert store.commit(offers=[offer("a", T0 + 9, 3600), offer("d", T0 + 4, 3600)]) == (
        Enqueued(added=0, dropped=1)
    )

    async def main() -> DrainResult:
        async with link_to(mosquitto) as link:
            result = await OutboxPublisher(store, link, TOPICS, ManualClock(T0 + 5), PARIS).drain()
            await link.publish("rayon/marker", b"", qos=1)
            await asyncio.to_thread(sub.wait, 4)
            return result

    assert run(main()) == DrainResult(sent=3)
    ids = [json.loads(m.payload)["id"] for m in sub.messages if m.topic != "rayon/marker"]
    assert sorted(ids) == ["a", "b", "order"]
    assert {o: state(store, o) for o in "cd"} == {"c": OfferState.DROPPED, "d": OfferState.DROPPED}
    assert store.commit(offers=[offer("e", T0 + 6, 3600)]) == Enqueued(1)  # room again


class CountingStore(Store):
    """A real SQLite store that counts the outbox reads (`due_offers`)."""

    reads = 0

    def due_offers(self, limit: int = 100) -> list[Offer]:
        self.reads += 1
        return super().due_offers(limit)


def test_handed_offers_go_at_once_without_a_read_and_each_once(
    tmp_path: Path, mosquitto: Mosquitto, subscriber: Callable[..., Subscriber]
) -> None:
    """The daemon's path: offers committed, handed to the running publisher, woken.  They go
    without reading the outbox back; one handed and also read back by a drain (the daemon's
    last one) goes once; a holdout one never; a withdrawn one (consent) never."""
    store = CountingStore(f"sqlite:///{tmp_path / 'rayon.db'}")
    sub = subscriber(OFFERS, "rayon/marker")
    clock = ManualClock(T0 + 1)

    async def main() -> tuple[int, DrainResult, DrainResult]:
        async with link_to(mosquitto) as link:
            wake = asyncio.Event()
            outbox = OutboxPublisher(store, link, TOPICS, clock, PARIS)
            task = asyncio.create_task(outbox.run(wake))
            await asyncio.sleep(0.2)  # its first drain: nothing due
            reads = store.reads
            enqueued = await asyncio.to_thread(store.commit, offers=[offer("h1", T0, 3600)])
            assert [o.id for o in enqueued.pending] == ["h1"]
            outbox.hand(enqueued.pending)
            wake.set()
            while await asyncio.to_thread(state, store, "h1") is not OfferState.SENT:
                await asyncio.sleep(0.01)
            after_hand = store.reads - reads
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            batch = [
                offer("h2", T0, 3600),
                offer("h3", T0, 3600, holdout=True),
                offer("h4", T0, 3600, customer="c2", token="tok-c2"),
            ]
            enqueued = await asyncio.to_thread(store.commit, offers=batch)
            assert [o.id for o in enqueued.pending] == ["h2", "h4"]
            outbox.hand(enqueued.pending)
            await asyncio.to_thread(store.cancel_pending, "c2", "consent withdrawn")
            outbox.withdraw({"c2"})
            final = await outbox.drain()  # what the gateway does when it stops
            await outbox._drain_batch(list(outbox._handed.values()))  # what is left handed
            again = await outbox.drain()
            await link.publish("rayon/marker", b"", qos=1)
            await asyncio.to_thread(sub.wait, 3)
            return after_hand, final, again

    try:
        after_hand, final, again = run(main())
        assert state(store, "h4") is OfferState.CANCELLED
    finally:
        store.close()
    assert after_hand == 0  # h1 went without a read
    assert (final, again) == (DrainResult(sent=1), DrainResult())
    ids = [json.loads(m.payload)["id"] for m in sub.messages if m.topic != "rayon/marker"]
    assert ids == ["h1", "h2"]


def test_a_handed_offer_the_link_could_not_send_goes_with_a_later_drain(
    store: Store, mosquitto: Mosquitto, subscriber: Callable[..., Subscriber]
) -> None:
    clock = ManualClock(T0 + 1)

    async def main() -> tuple[OfferState, DrainResult, list[str]]:
        async with link_to(mosquitto) as link:
            outbox = OutboxPublisher(store, link, TOPICS, clock, PARIS)
            mosquitto.stop()
            await noticed_down(link)
            enqueued = await asyncio.to_thread(store.commit, offers=[offer("h1", T0, 3600)])
            outbox.hand(enqueued.pending)
            wake = asyncio.Event()
            wake.set()
            task = asyncio.create_task(outbox.run(wake))
            await asyncio.sleep(0.3)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            while_down = state(store, "h1")
            mosquitto.start()
            await link.wait_connected()
            sub = await asyncio.to_thread(subscriber, OFFERS)
            back = await outbox.drain()
            got = await asyncio.to_thread(sub.wait, 1)
            return while_down, back, [json.loads(m.payload)["id"] for m in got]

    while_down, back, received = run(main())
    assert while_down is OfferState.PENDING
    assert back == DrainResult(sent=1) and received == ["h1"]
    assert state(store, "h1") is OfferState.SENT


# --- an offer is done when its app confirms it ------------------------------------------


def customers(store: Store, *ids: str, consent: bool = True) -> None:
    store.upsert_customers(
        [Customer(id=c, token=f"tok-{c}", consent=Consent(True, consent)) for c in ids]
    )


def test_after_a_new_connection_every_unconfirmed_live_offer_goes_out_again_under_its_id(
    store: Store, mosquitto: Mosquitto, subscriber: Callable[..., Subscriber]
) -> None:
    sub = subscriber(OFFERS)
    customers(store, "c1", "c2")
    customers(store, "c3", consent=False)  # withdrew marketing_push after it was sent
    clock = ManualClock(T0 + 1)
    store.enqueue_offers(
        [
            offer("confirmed", T0, 3600, customer="c1", token="tok-c1"),
            offer("unconfirmed", T0, 3600, customer="c1", token="tok-c1"),
            offer("short", T0, 20, customer="c2", token="tok-c2"),
            offer("withdrawn", T0, 3600, customer="c3", token="tok-c3"),
        ]
    )

    async def main() -> tuple[DrainResult, DrainResult, DrainResult]:
        async with link_to(mosquitto) as link:
            outbox = OutboxPublisher(store, link, TOPICS, clock, PARIS)
            first = await outbox.drain()
            await asyncio.to_thread(sub.wait, 4)
            refused = store.record_feedbacks(
                [("tok-c1", "confirmed", FeedbackState.DELIVERED, T0 + 2)]
            )
            assert refused == []
            clock.set(T0 + 30)  # "short" expired meanwhile: sent once, never again
            link.abort()  # a broker crash, as the gateway sees it
            await noticed_down(link)
            await link.wait_connected()
            assert link.connections == 2
            return first, await outbox.resend(), await outbox.drain()

    first, resent, drained = run(main())
    assert first == DrainResult(sent=4)
    assert resent == DrainResult(sent=1) and drained == DrainResult()
    sub.wait(5)
    ids = [json.loads(m.payload)["id"] for m in sub.messages]
    assert sorted(ids) == ["confirmed", "short", "unconfirmed", "unconfirmed", "withdrawn"]
    again = sub.messages[-1]
    assert json.loads(again.payload)["id"] == "unconfirmed"
    assert again.expiry_s is not None and again.expiry_s <= 3600 - 30 - 1
    states = {oid: state(store, oid) for oid in ("confirmed", "unconfirmed", "short")}
    assert states == {
        "confirmed": OfferState.DELIVERED,
        "unconfirmed": OfferState.SENT,
        "short": OfferState.SENT,  # went out once: its log says so, expired or not
    }
    record = store.offer("unconfirmed")
    assert record is not None and (record.attempts, record.sent_at) == (2, T0 + 1)


def test_the_publisher_resends_by_itself_after_each_new_connection(
    store: Store, mosquitto: Mosquitto, subscriber: Callable[..., Subscriber]
) -> None:
    sub = subscriber(OFFERS)
    customers(store, "c1")
    clock = ManualClock(T0 + 1)
    store.enqueue_offers([offer("o1", T0, 3600, customer="c1", token="tok-c1")])

    async def main() -> None:
        async with link_to(mosquitto) as link:
            outbox = OutboxPublisher(store, link, TOPICS, clock, PARIS)
            task = asyncio.create_task(outbox.run(asyncio.Event()))
            try:
                # at start: sent once (the resend of the first connection finds nothing sent)
                await asyncio.to_thread(sub.wait, 1)
                link.abort()
                await noticed_down(link)
                await asyncio.to_thread(sub.wait, 2)  # the new connection: sent again
                store.record_feedback("o1", FeedbackState.OPENED, T0 + 5)  # implies delivered
                link.abort()
                await noticed_down(link)
                await link.wait_connected()
                await link.publish("rayon/paris-11/offers/marker", b"{}", qos=1)
                await asyncio.to_thread(sub.wait, 3)
            finally:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
            assert outbox.counters["offers_resent"] == 1

    run(main())
    topics = [m.topic.rsplit("/", 1)[1] for m in sub.messages]
    assert topics == ["tok-c1", "tok-c1", "marker"]  # confirmed: not sent a third time
    assert state(store, "o1") is OfferState.DELIVERED


def test_feedback_confirms_an_offer_once_per_state(store: Store) -> None:
    store.enqueue_offers([offer("o1", T0, 3600), offer("o2", T0, 3600)])
    store.mark_sent("o1", T0 + 1)
    items = [
        ("tok-c1", "o1", FeedbackState.DELIVERED, T0 + 2),
        ("tok-c1", "o1", FeedbackState.DELIVERED, T0 + 9),  # the answer to a resent copy
        ("tok-c1", "o2", FeedbackState.DELIVERED, T0 + 3),  # PUBACK not yet recorded
        ("tok-other", "o1", FeedbackState.OPENED, T0 + 4),  # another app: refused
    ]
    assert store.record_feedbacks(items) == [3]
    assert store.record_feedbacks(items[:1]) == []  # again, in a later batch
    assert [(f.offer_id, f.state, f.at) for f in store.feedback()] == [
        ("o1", FeedbackState.DELIVERED, T0 + 2),
        ("o2", FeedbackState.DELIVERED, T0 + 3),
    ]
    assert (state(store, "o1"), state(store, "o2")) == (OfferState.DELIVERED,) * 2
    assert not store.mark_sent("o2", T0 + 4)  # the late PUBACK does not undo the confirmation
    assert state(store, "o2") is OfferState.DELIVERED


def test_the_publisher_tells_each_offer_s_new_state_once_and_never_a_resend(
    store: Store, mosquitto: Mosquitto
) -> None:
    """`on_settled` (the console's ticker, the metrics): sent, expired, cancelled as
    recorded; an offer the link could not send stays pending and is not told."""
    clock = ManualClock(T0 + 3600)
    store.upsert_customer(Customer("c1", "tok-c1", (), Consent(True, True)))
    store.enqueue_offers(
        [
            offer("late", T0, expires_in=3600),
            offer("bad", T0 + 1, expires_in=7200, token="4970 1234"),
            offer("fresh", T0 + 2, expires_in=7200),
        ]
    )
    told: list[list[tuple[str, str]]] = []

    def settled(changes: Sequence[tuple[Offer, str]]) -> None:
        told.append([(o.id, state) for o, state in changes])

    async def main() -> DrainResult:
        async with link_to(mosquitto) as link:
            outbox = OutboxPublisher(store, link, TOPICS, clock, PARIS, on_settled=settled)
            await outbox.drain()
            return await outbox.resend()  # "fresh" again, under its id: no new state

    assert run(main()) == DrainResult(sent=1)
    assert [sorted(batch) for batch in told] == [
        [("bad", "cancelled"), ("fresh", "sent"), ("late", "expired")]
    ]
