"""The uplink journal of a store (gateway/store/uplink.py), on SQLite and PostgreSQL: every
record the centre collects is journalled with a per-store number that is never reused, only
with `central.enabled`; an erasure deletes the customer's unsent rows and journals itself."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.events import FeedbackState
from gateway.identity.model import Consent, Customer
from gateway.store.repo import Store
from gateway.store.uplink import UplinkEntry
from tests.chain import T0, offer, visit, zone_events


@pytest.fixture(params=["sqlite", "postgresql"])
def journalled(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'rayon.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
    store = Store(url, journal=True)
    yield store
    store.close()


def everything(store: Store) -> list[UplinkEntry]:
    return store.uplink_after(0, 10_000)


def test_every_kind_is_journalled_in_order_with_increasing_numbers(journalled: Store) -> None:
    store = journalled
    store.commit(events=zone_events(3), offers=[offer("o1")], at=T0)
    store.record_events(visit("ibeacon:bb:1:2", "c2", T0 + 10, 60.0))
    assert store.record_feedbacks([("tok-c1", "o1", FeedbackState.OPENED, T0 + 20)]) == []
    entries = everything(store)
    kinds = [e.kind for e in entries]
    assert kinds == ["event"] * 3 + ["offer", "event", "event", "visit", "feedback"]
    seqs = [e.seq for e in entries]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    offer_body = entries[3].body
    assert offer_body["id"] == "o1" and offer_body["state"] == "pending"
    assert "token" not in offer_body  # the delivery token never leaves the store
    assert entries[6].body["started_at"] == T0 + 10 and entries[6].body["ended_at"] == T0 + 70
    assert (entries[7].customer, entries[7].body["offer"]) == ("c1", "o1")


def test_numbers_are_never_reused_after_the_journal_is_trimmed(journalled: Store) -> None:
    store = journalled
    store.record_events(zone_events(5))
    last = everything(store)[-1].seq
    assert store.uplink_trim(last) == 5 and store.uplink_count() == 0
    store.record_events(zone_events(1, start=T0 + 100))
    (entry,) = everything(store)
    assert entry.seq > last  # a reused number would be skipped by the centre: lost


def test_an_erasure_deletes_the_unsent_rows_and_is_journalled(journalled: Store) -> None:
    store = journalled
    ana = Customer(
        id="c1", token="tok-c1", devices=("ibeacon:aa:1:2",), consent=Consent(True, True)
    )
    store.upsert_customer(ana)
    store.record_events(zone_events(4))  # the device is Ana's
    store.record_events(zone_events(2, device="ibeacon:bb:9:9"))
    store.commit(offers=[offer("o1")], at=T0)
    erased = store.erase_customer("c1")
    assert erased["zone_events"] == 4 and erased["offers"] == 1
    kinds = [(e.kind, e.device) for e in everything(store)]
    assert kinds == [("event", "ibeacon:bb:9:9")] * 2 + [("erase", None)]
    erase = everything(store)[-1]
    assert erase.body == {"customer": "c1", "devices": ["ibeacon:aa:1:2", "phone:tok-c1"]}


def test_without_central_nothing_is_journalled(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'rayon.db'}")
    try:
        store.commit(events=zone_events(3), offers=[offer("o1")], at=T0)
        store.erase_customer("c1")
        assert store.uplink_count() == 0
    finally:
        store.close()


def test_rows_the_centre_never_acknowledged_expire_after_keep(journalled: Store) -> None:
    store = journalled
    store.record_events(zone_events(3, start=T0) + zone_events(2, start=T0 + 7200))
    assert store.uplink_expire(T0 + 3600) == 3
    assert [e.at for e in everything(store)] == [T0 + 7200, T0 + 7201]


def test_a_range_closes_over_numbers_expired_or_erased_at_the_tail(journalled: Store) -> None:
    store = journalled
    assert store.uplink_range(0, 10) == ([], 0)  # nothing handed out yet
    store.record_events(zone_events(3, start=T0))
    last = everything(store)[-1].seq
    assert store.uplink_expire(T0 + 3600) == 3
    assert store.uplink_range(0, 10) == ([], last)  # the centre must not wait for them
    store.record_events(zone_events(1, start=T0 + 7200))
    entries, end = store.uplink_range(last, 10)
    assert [e.seq for e in entries] == [end] and end > last


def test_a_replaced_database_moves_its_journal_beyond_the_centres_mark(journalled: Store) -> None:
    store = journalled  # a new database: its numbers start at 1 again
    store.record_events(zone_events(3))
    assert store.uplink_rebase(100) == 3  # the centre holds 1..100 of the old one
    assert [e.seq for e in everything(store)] == [101, 102, 103]
    store.record_events(zone_events(1, start=T0 + 50))
    assert everything(store)[-1].seq == 104  # the sequence moved too
    assert store.uplink_rebase(100) == 0  # a normal restart: nothing to do
    assert [e.seq for e in everything(store)] == [101, 102, 103, 104]
