"""The sqlmodel store on a real SQLite file (and once on PostgreSQL when it runs)."""

from __future__ import annotations

import asyncio
import json
import math
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any, cast

import pytest
from sqlalchemy import update
from sqlmodel import col

from gateway.deliver.payloads import event_record
from gateway.errors import RuntimeFailure
from gateway.events import EventKind, FeedbackState, Offer, Purpose, Reason, ZoneEvent
from gateway.identity.model import Consent, Customer
from gateway.rules.codepools import Assignment
from gateway.store.outbox import Enqueued
from gateway.store.repo import Position, Store, Visit
from gateway.store.tables import EVENT_COLUMNS, OfferRow, OfferState, event_row

T0 = datetime(2026, 3, 3, 14, 0, tzinfo=UTC).timestamp()
DEVICE = "ibeacon:8d8c1a2e-5b3f-4c1d-9e2a-0f6b7c8d9e10:11:20"


def customer(cid: str = "c1", token: str = "t1", device: str = DEVICE) -> Customer:
    return Customer(
        id=cid,
        token=token,
        devices=(device,),
        consent=Consent(instore_location=True, marketing_push=True),
        first_name="Zoé",
        segments=frozenset({"family", "premium"}),
        interests=frozenset({"tv"}),
        tier="gold",
        visits=7,
        last_visit=T0 - 86400,
        attributes=MappingProxyType({"age_band": "35-44", "stores": ["paris-11"], "score": 0.5}),
    )


def offer(
    oid: str,
    at: float = T0,
    expires_in: float = 3600,
    cid: str = "c1",
    holdout: bool = False,
    purpose: Purpose = Purpose.COMMERCIAL,
) -> Offer:
    return Offer(
        id=oid,
        rule="tv-aisle-dwell",
        store="paris-11",
        zone="aisle-tv",
        customer=cid,
        token=f"tok-{cid}",
        created_at=at,
        expires_at=at + expires_in,
        title="-15 % sur les TV",
        body="Offre valable aujourd'hui au rayon TV.",
        code="TV15",
        url="rayon://offers/tv15",
        purpose=purpose,
        holdout=holdout,
    )


def event(kind: EventKind, at: float, device: str = DEVICE, cid: str | None = "c1") -> ZoneEvent:
    dwell = 30.0 if kind in (EventKind.EXIT, EventKind.VISIT_END) else None
    return ZoneEvent(at, kind, "store", device, cid, dwell, {"anchors": ["pi-tv"], "x": 1.5})


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(f"sqlite:///{tmp_path / 'rayon.db'}")
    yield s
    s.close()


def test_customers_round_trip_and_upsert_replaces(store: Store) -> None:
    original = customer()
    store.upsert_customer(original)
    assert store.load_customers() == [original]
    changed = customer(token="t1-new", device="phone:t1-new")
    store.upsert_customers([changed, customer("c2", "t2")])
    assert [c.token for c in store.load_customers()] == ["t1-new", "t2"]
    assert store.load_customers()[0].devices == ("phone:t1-new",)


def test_events_are_logged_and_maintain_visits(store: Store) -> None:
    events = [
        event(EventKind.VISIT_START, T0),
        event(EventKind.ENTER, T0 + 5),
        event(EventKind.EXIT, T0 + 35),
        event(EventKind.VISIT_END, T0 + 300),
    ]
    store.record_events(events[:2])
    assert store.visits() == [Visit(DEVICE, "c1", T0, None)]
    store.record_events(events[2:])
    assert store.events(customer="c1") == events
    assert store.visits(customer="c1") == [Visit(DEVICE, "c1", T0, T0 + 300)]


def test_visit_end_without_start_logs_a_closed_visit(store: Store) -> None:
    store.record_events([event(EventKind.VISIT_END, T0 + 100, device="phone:t9", cid=None)])
    assert store.visits(device="phone:t9") == [Visit("phone:t9", None, T0 + 70, T0 + 100)]


def test_outbox_states_and_idempotent_enqueue(store: Store) -> None:
    assert store.enqueue_offers([offer("o2", T0 + 1), offer("o1", T0), offer("h", holdout=True)])
    assert [o.id for o in store.due_offers(10)] == ["o1", "o2"]
    assert store.mark_sent("o1", T0 + 2)
    assert store.mark_expired("o2")
    assert not store.mark_sent("o2", T0 + 3)  # expired stays expired
    assert store.enqueue_offers([offer("o1"), offer("o2"), offer("o3", T0 + 5)]) == Enqueued(1)
    sent = store.offer("o1")
    assert sent is not None and (sent.state, sent.sent_at, sent.attempts) == (
        OfferState.SENT,
        T0 + 2,
        1,
    )
    assert sent.offer == offer("o1")
    assert store.counts_by_state() == {
        OfferState.PENDING: 1,
        OfferState.SENT: 1,
        OfferState.DELIVERED: 0,
        OfferState.EXPIRED: 1,
        OfferState.HOLDOUT: 1,
        OfferState.CANCELLED: 0,
        OfferState.DROPPED: 0,
    }


def test_failed_attempts_keep_the_offer_pending(store: Store) -> None:
    store.enqueue_offers([offer("o1")])
    store.mark_failed("o1", "broker down")
    record = store.offer("o1")
    assert record is not None
    assert (record.state, record.attempts, record.last_error) == (
        OfferState.PENDING,
        1,
        "broker down",
    )
    assert [o.id for o in store.due_offers()] == ["o1"]


def test_a_replay_batch_is_one_call(store: Store) -> None:
    offers = [offer(f"o{i:05}", T0 + i) for i in range(1200)]
    assert store.enqueue_offers(offers) == Enqueued(1200)
    assert [o.id for o in store.due_offers(3)] == ["o00000", "o00001", "o00002"]
    store.record_events([event(EventKind.ENTER, T0 + i) for i in range(1200)])
    assert len(store.events()) == 1200
    assert len(store.offers(since=T0 + 100, until=T0 + 200)) == 100
    assert store.mark_sent("o00007", T0 + 9)
    assert [r.offer.id for r in store.offer_log(state=OfferState.SENT)] == ["o00007"]


def states(store: Store) -> dict[str, OfferState]:
    return {r.offer.id: r.state for r in store.offer_log()}


def test_a_full_outbox_drops_commercial_offers_and_still_queues_transactional(
    tmp_path: Path,
) -> None:
    store = Store(f"sqlite:///{tmp_path / 'bounded.db'}", max_pending=3)
    try:
        first = [offer("a", T0), offer("b", T0 + 1), offer("h", T0 + 2, holdout=True)]
        assert store.enqueue_offers(first) == Enqueued(3)
        order = offer("order", T0 + 3, purpose=Purpose.TRANSACTIONAL)
        late = [offer("c", T0 + 3), offer("d", T0 + 4), order, offer("a", T0)]
        assert store.enqueue_offers(late) == Enqueued(added=2, dropped=1)
        assert store.enqueue_offers([offer("e", T0 + 5)]) == Enqueued(added=0, dropped=1)
        assert states(store) == {
            "a": OfferState.PENDING,
            "b": OfferState.PENDING,
            "h": OfferState.HOLDOUT,
            "c": OfferState.PENDING,
            "d": OfferState.DROPPED,
            "order": OfferState.PENDING,  # over the bound: an order ready is always queued
            "e": OfferState.DROPPED,
        }
        dropped = store.offer("d")
        assert dropped is not None and dropped.last_error == "outbox full"
        assert [o.id for o in store.due_offers(10)] == ["a", "b", "c", "order"]
        assert store.mark_sent_many(["a", "b", "c"], T0 + 9) == 3
        assert store.enqueue_offers([offer("f", T0 + 6)]) == Enqueued(1)  # room again
    finally:
        store.close()


def test_redelivered_ids_within_one_batch_are_stored_once(store: Store) -> None:
    assert store.enqueue_offers([offer("o1"), offer("o1", T0 + 1)]) == Enqueued(1)
    assert [o.created_at for o in store.offers()] == [T0]


def test_cancel_pending_withdraws_only_that_customers_pending_offers(store: Store) -> None:
    mine = [offer("m1", cid="c1"), offer("m2", T0 + 1, cid="c1"), offer("m3", T0 + 2, cid="c1")]
    store.enqueue_offers([*mine, offer("o1", cid="c2")])
    store.mark_sent("m1", T0 + 5)
    assert store.cancel_pending("c1", "marketing_push consent withdrawn") == 2
    assert store.cancel_pending("c1", "again") == 0
    assert [o.id for o in store.due_offers()] == ["o1"]
    record = store.offer("m2")
    assert record is not None and record.state is OfferState.CANCELLED
    assert record.last_error == "marketing_push consent withdrawn"
    assert states(store)["m1"] is OfferState.SENT


def test_repair_offers_cancels_the_pending_offers_no_publish_can_carry(any_store: Store) -> None:
    """A store poisoned by a clock ahead (issue 16): pending offers created after the clock,
    or expiring past MQTT's 32-bit expiry interval, are cancelled saying why; the rest, and
    offers no longer pending, are left as they are."""
    store = any_store
    now = T0 + 60
    store.enqueue_offers(
        [
            offer("fine", T0),
            offer("soon", now + 30),  # within MAX_AHEAD_S: a clock a little fast
            offer("ahead", now + 86_400),
            offer("far", T0, expires_in=9e10 - T0),
            offer("sent-ahead", now + 86_400, cid="c2"),
        ]
    )
    store.mark_sent("sent-ahead", now)
    repaired = store.repair_offers(now, 30.0)
    assert sorted(o.id for o in repaired) == ["ahead", "far"]
    assert all(o.reason.startswith("repaired at start-up") for o in repaired)
    assert [o.id for o in store.due_offers()] == ["fine", "soon"]
    assert states(store)["ahead"] is OfferState.CANCELLED
    assert states(store)["sent-ahead"] is OfferState.SENT
    record = store.offer("far")
    assert record is not None and record.last_error is not None
    assert "MQTT's message expiry" in record.last_error
    assert store.repair_offers(now, 30.0) == []


def test_a_pending_row_that_is_no_offer_is_cancelled_not_fatal(any_store: Store) -> None:
    store = any_store
    store.enqueue_offers([offer("bad", T0), offer("good", T0 + 1)])
    with store.reading() as session:
        session.execute(update(OfferRow).where(col(OfferRow.id) == "bad").values(purpose="x"))
        session.commit()
    assert [o.id for o in store.due_offers()] == ["good"]
    assert store.counts_by_state()[OfferState.CANCELLED] == 1  # the bad row, once
    assert [o.id for o in store.due_offers()] == ["good"]


def test_batch_marks_touch_pending_offers_only(store: Store) -> None:
    store.enqueue_offers([offer(f"o{i:04}", T0 + i) for i in range(1100)])
    assert store.mark_expired("o0000")
    assert store.mark_sent_many([f"o{i:04}" for i in range(1100)], T0 + 2000) == 1099
    assert store.mark_expired_many(["o0001", "nope"]) == 0
    store.mark_failed_many({"o0002": "late ack", "nope": "x"})
    record = store.offer("o0002")
    assert record is not None
    assert (record.state, record.attempts, record.last_error) == (OfferState.SENT, 2, "late ack")
    assert store.counts_by_state()[OfferState.SENT] == 1099


def test_feedback_is_recorded_for_known_offers_only(store: Store) -> None:
    store.enqueue_offers([offer("o1")])
    assert store.record_feedback("o1", FeedbackState.OPENED, T0 + 60)
    assert not store.record_feedback("nope", FeedbackState.OPENED, T0 + 60)
    assert [(f.offer_id, f.state) for f in store.feedback()] == [("o1", FeedbackState.OPENED)]


def test_delete_customer_leaves_nothing_behind(store: Store) -> None:
    for cid, token, device in (("c1", "t1", DEVICE), ("c2", "t2", "phone:t2")):
        store.upsert_customer(customer(cid, token, device))
        store.record_events([event(EventKind.VISIT_START, T0, device, cid)])
        store.enqueue_offers([offer(f"{cid}-o", cid=cid)])
        store.record_feedback(f"{cid}-o", FeedbackState.DELIVERED, T0)
    # an event of c1's beacon before it was bound to them, and their phone token
    store.record_events([event(EventKind.ENTER, T0, DEVICE, None)])
    store.record_events([event(EventKind.ENTER, T0, "phone:t1", None)])

    assert store.delete_customer("c1")

    assert [c.id for c in store.load_customers()] == ["c2"]
    assert {e.customer for e in store.events()} == {"c2"}
    assert [v.customer for v in store.visits()] == ["c2"]
    assert [o.id for o in store.offers()] == ["c2-o"]
    assert [f.offer_id for f in store.feedback()] == ["c2-o"]
    assert not store.delete_customer("c1")


def test_sqlite_runs_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "wal.db"
    Store(f"sqlite:///{path}").close()
    with closing(sqlite3.connect(path)) as db:
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_usable_from_worker_threads(store: Store) -> None:
    async def main() -> list[str]:
        await asyncio.gather(
            *(asyncio.to_thread(store.enqueue_offers, [offer(f"o{i}", T0 + i)]) for i in range(8))
        )
        due = await asyncio.to_thread(store.due_offers, 100)
        return [o.id for o in due]

    assert asyncio.run(main()) == [f"o{i}" for i in range(8)]


def test_unusable_database_is_a_runtime_failure_with_a_hint(tmp_path: Path) -> None:
    with pytest.raises(RuntimeFailure, match=r"database\.url"):
        Store(f"sqlite:///{tmp_path / 'missing-dir' / 'rayon.db'}")


def test_postgresql(postgres_url: str) -> None:
    store = Store(postgres_url)
    try:
        store.upsert_customer(customer())
        assert store.load_customers() == [customer()]
        assert store.enqueue_offers([offer("o1"), offer("h", holdout=True)]) == Enqueued(2)
        assert store.enqueue_offers([offer("o1")]) == Enqueued(0)
        assert store.mark_sent("o1", T0 + 1)
        store.enqueue_offers([offer("o2", T0 + 2), offer("o3", T0 + 3)])
        assert store.cancel_pending("c1", "consent withdrawn") == 2
        store.record_events([event(EventKind.VISIT_START, T0), event(EventKind.VISIT_END, T0 + 9)])
        assert store.visits() == [Visit(DEVICE, "c1", T0, T0 + 9)]
        assert store.counts_by_state()[OfferState.SENT] == 1
        assert store.delete_customer("c1")
        assert store.offers() == [] and store.events() == [] and store.visits() == []
    finally:
        store.close()


def test_one_batch_replays_visit_events_in_their_order(any_store: Store) -> None:
    store = any_store
    store.record_events(
        [event(EventKind.VISIT_START, T0, "d1"), event(EventKind.VISIT_START, T0 + 1, "d2")]
    )
    batch = [
        event(EventKind.VISIT_END, T0 + 100, "d1"),  # closes the stored visit
        event(EventKind.VISIT_START, T0 + 110, "d1"),
        event(EventKind.ENTER, T0 + 115, "d1"),
        event(EventKind.VISIT_END, T0 + 150, "d1"),  # closes the one opened just above
        event(EventKind.VISIT_START, T0 + 160, "d1"),  # stays open
        event(EventKind.VISIT_END, T0 + 200, "d3", cid="c3"),  # start missed: dwell 30 s
    ]
    assert store.commit(batch) == Enqueued()
    assert store.visits() == [
        Visit("d1", "c1", T0, T0 + 100),
        Visit("d2", "c1", T0 + 1, None),
        Visit("d1", "c1", T0 + 110, T0 + 150),
        Visit("d1", "c1", T0 + 160, None),
        Visit("d3", "c3", T0 + 170, T0 + 200),
    ]
    assert store.events(device="d1") == [event(EventKind.VISIT_START, T0, "d1"), *batch[:5]]
    store.record_events([event(EventKind.VISIT_END, T0 + 300, "d1")])
    assert store.visits(device="d1")[-1] == Visit("d1", "c1", T0 + 160, T0 + 300)


def test_visit_ends_close_the_latest_open_visit_first(any_store: Store) -> None:
    store = any_store
    starts = [event(EventKind.VISIT_START, T0 + t, "d1") for t in (0, 10)]  # an end was lost
    store.record_events(starts)
    store.record_events([event(EventKind.VISIT_END, T0 + t, "d1") for t in (20, 30, 40)])
    assert store.visits() == [
        Visit("d1", "c1", T0, T0 + 30),
        Visit("d1", "c1", T0 + 10, T0 + 20),
        Visit("d1", "c1", T0 + 10, T0 + 40),  # none open left: logged closed (dwell 30 s)
    ]
    # on a tie, the visit opened first is the one closed, stored or in the batch
    store.record_events([event(EventKind.VISIT_START, T0, "d2")])
    store.record_events([event(EventKind.VISIT_START, T0, "d2")])
    store.record_events([event(EventKind.VISIT_END, T0 + 50, "d2")])
    store.record_events(
        [event(EventKind.VISIT_START, T0, "d2"), event(EventKind.VISIT_END, T0 + 60, "d2")]
    )
    assert [v.ended_at for v in store.visits(device="d2")] == [T0 + 50, T0 + 60, None]


def test_commit_writes_runtime_codes_and_positions(any_store: Store) -> None:
    store = any_store
    store.import_codes("tv", ["A", "B", "C"])
    positions = [Position(T0 + i, "d1", "c1", 1.5 * i, 2, 3.25) for i in range(3)]
    given = [Assignment("tv", "A", "c1", T0), Assignment("tv", "C", "c2", T0 + 1)]
    result = store.commit(
        [event(EventKind.ENTER, T0, "d1")],
        [offer("o1")],
        {"pipeline": {"zones": {"d1": ["aisle-tv"]}}, "other": {"n": 1}},
        T0,
        given,
        positions,
    )
    assert result == Enqueued(1)
    assert store.positions("c1") == positions
    assert store.codes() == [
        ("tv", "A", "c1", T0),
        ("tv", "B", None, None),
        ("tv", "C", "c2", T0 + 1),
    ]
    assert store.load_runtime("pipeline") == {"zones": {"d1": ["aisle-tv"]}}
    store.commit(runtime={"pipeline": {"zones": {}}}, at=T0 + 5)  # replaces that key only
    assert store.load_runtime("pipeline") == {"zones": {}}
    assert store.load_runtime("other") == {"n": 1}
    assert store.load_runtime("nope") is None


def test_a_bounded_batch_larger_than_a_chunk_admits_each_id_once(any_store: Store) -> None:
    store = any_store
    store.max_pending = 600
    assert store.enqueue_offers([offer("o0000")]) == Enqueued(1)
    batch = [offer(f"o{i:04}", T0 + i) for i in range(1200)]
    batch.append(offer("o0700", T0 + 5000))  # redelivered, chunks apart
    assert store.commit(offers=batch) == Enqueued(added=599, dropped=600)
    counts = store.counts_by_state()
    assert (counts[OfferState.PENDING], counts[OfferState.DROPPED]) == (600, 600)
    assert [o.id for o in store.due_offers(1000)][-1] == "o0599"
    record = store.offer("o0700")
    assert record is not None and record.offer.created_at == T0 + 700


def test_an_event_row_is_its_record_with_the_reason_as_json() -> None:
    reason: dict[Any, Any] = {
        "x": 1.5,
        "anchors": ["node-1", "node-2"],
        "far": math.inf,
        3: (1, None),
    }
    e = ZoneEvent(T0, EventKind.EXIT, "aisle-tv", "d1", "c1", 12.25, cast(Reason, reason))
    record = event_record(e)
    assert dict(zip(EVENT_COLUMNS, event_row(e), strict=True)) == {
        **record,
        "reason": json.dumps(record["reason"]),
    }
    assert json.loads(event_row(e)[-1]) == {
        "x": 1.5,
        "anchors": ["node-1", "node-2"],
        "far": None,
        "3": [1, None],
    }


def test_the_offers_to_resend_are_the_sent_live_unconfirmed_ones_of_consenting_customers(
    any_store: Store,
) -> None:
    store = any_store
    quiet = Customer(id="c2", token="tok-c2", consent=Consent(True, False))  # marketing_push off
    store.upsert_customers([customer(token="tok-c1"), quiet])
    store.enqueue_offers(
        [
            offer("o1", expires_in=100),
            offer("o2", expires_in=100),  # expires with o1: the id breaks the tie
            offer("o3", expires_in=200),
            offer("gone", expires_in=50),  # expired by `now`
            offer("quiet", expires_in=300, cid="c2"),
            offer("confirmed", expires_in=300),
            offer("pending", expires_in=300),
        ]
    )
    sent = ["o1", "o2", "o3", "gone", "quiet", "confirmed"]
    for oid in sent:
        assert store.mark_sent(oid, T0 + 1)
    assert store.record_feedbacks([("tok-c1", "confirmed", FeedbackState.OPENED, T0 + 5)]) == []
    now = T0 + 60
    first = store.unconfirmed_offers(now, limit=2)
    assert [o.id for o in first] == ["o1", "o2"]
    rest = store.unconfirmed_offers(now, (first[-1].expires_at, first[-1].id), limit=2)
    assert [o.id for o in rest] == ["o3"] and rest[0] == offer("o3", expires_in=200)
    assert store.mark_resent_many(["o1", "confirmed", "pending"]) == 1  # only a sent one
    states = {r.offer.id: (r.state, r.attempts) for r in store.offer_log()}
    assert states["o1"] == (OfferState.SENT, 2)
    assert states["confirmed"] == (OfferState.DELIVERED, 1)
    assert states["pending"] == (OfferState.PENDING, 0)
