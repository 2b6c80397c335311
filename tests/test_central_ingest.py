"""The central database (gateway/central/ingest.py) on the real PostgreSQL: idempotent on
(store, seq), a mark that counts ranges (so erased or trimmed numbers never leave a gap), ranges
received early kept until the gap before them is filled, erasures applied when the mark passes
them, and retention that never moves a mark."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, text

from gateway.central.ingest import CentralDb
from gateway.central.wire import Batch, ChainPayloadError, encode, parse_batch
from gateway.store.uplink import UplinkEntry

NOW = 1_772_600_000.0


@pytest.fixture
def central(postgres_url: str) -> Iterator[CentralDb]:
    db = CentralDb(postgres_url)
    yield db
    db.close()


def row(
    seq: int, kind: str = "event", customer: str | None = None, device: str = "d1"
) -> UplinkEntry:
    return UplinkEntry(seq, kind, NOW - 100 + seq, customer, device, {"n": seq})


def batch(after: int, last: int, seqs: list[int] | None = None, store: str = "paris-11") -> Batch:
    chosen = range(after + 1, last + 1) if seqs is None else seqs
    return Batch(store, after, last, tuple(row(s) for s in chosen))


def records(url: str, store: str = "paris-11") -> list[int]:
    engine = create_engine(url)
    with engine.connect() as conn:
        found = conn.execute(
            text("SELECT seq FROM chain_records WHERE store = :s ORDER BY seq"), {"s": store}
        )
        seqs = [int(s) for (s,) in found]
    engine.dispose()
    return seqs


def test_a_batch_written_twice_is_stored_once(central: CentralDb, postgres_url: str) -> None:
    assert central.ingest(batch(0, 5), NOW).hwm == 5
    again = central.ingest(batch(0, 5), NOW)
    assert (again.hwm, again.written) == (5, 0)
    assert records(postgres_url) == [1, 2, 3, 4, 5]


def test_numbers_the_store_erased_or_trimmed_are_no_gap(central: CentralDb) -> None:
    # the range says 3 and 4 are gone: the mark passes them, nobody is asked for them
    assert central.ingest(batch(0, 6, [1, 2, 5, 6]), NOW).hwm == 6
    assert central.gaps() == []


def test_a_range_received_early_waits_for_the_gap_then_the_mark_jumps(
    central: CentralDb, postgres_url: str
) -> None:
    central.ingest(batch(0, 10), NOW)
    early = central.ingest(batch(20, 30), NOW)  # (10, 20] was lost with a collector
    assert early.hwm == 10 and early.written == 10
    (gap,) = central.gaps()
    assert (gap.store, gap.hwm, gap.lo) == ("paris-11", 10, 20)
    assert central.ingest(batch(10, 20), NOW).hwm == 30  # the backfill fills it
    assert central.gaps() == []
    assert records(postgres_url) == list(range(1, 31))


def test_stores_are_apart(central: CentralDb, postgres_url: str) -> None:
    central.ingest(batch(0, 3, store="paris-11"), NOW)
    central.ingest(batch(0, 2, store="lyon-2"), NOW)
    assert central.marks() == {"paris-11": (3, 0), "lyon-2": (2, 0)}
    assert records(postgres_url, "lyon-2") == [1, 2]


def test_an_erasure_is_applied_when_the_mark_passes_it(
    central: CentralDb, postgres_url: str
) -> None:
    ana = [UplinkEntry(s, "event", NOW, "c1" if s % 2 else None, f"d{s}", {}) for s in (1, 2, 3)]
    central.ingest(Batch("paris-11", 0, 3, tuple(ana)), NOW)
    erase = UplinkEntry(5, "erase", NOW, None, None, {"customer": "c1", "devices": ["d2"]})
    early = central.ingest(Batch("paris-11", 4, 5, (erase,)), NOW)
    assert early.erased == ()  # (3, 4] still missing: not applied yet
    done = central.ingest(batch(3, 4), NOW)
    assert done.hwm == 5 and done.erased == ((5, 3),)  # rows 1 and 3 (c1) and 2 (d2)
    assert records(postgres_url) == [4, 5]
    # a late copy of the first batch brings nothing back
    assert central.ingest(Batch("paris-11", 0, 3, tuple(ana)), NOW).written == 0
    assert records(postgres_url) == [4, 5]


def test_retention_deletes_records_not_the_mark(central: CentralDb, postgres_url: str) -> None:
    central.ingest(batch(0, 10), NOW)
    assert central.expire(NOW - 100 + 6) == 5
    assert records(postgres_url) == [6, 7, 8, 9, 10]
    assert central.ingest(batch(0, 10), NOW).written == 0 and central.gaps() == []


def test_the_wire_round_trips_and_refuses_bad_batches() -> None:
    good = batch(0, 3)
    assert parse_batch("paris-11", encode(good)) == good
    bad = {
        b"[1]": "expected a JSON object",
        b"{": "not JSON",
        json.dumps({**good.obj(), "store": "lyon-2"}).encode(): "a store sends only on its own",
        json.dumps({**good.obj(), "after": 2}).encode(): "must increase strictly within",
        json.dumps({**good.obj(), "v": 2}).encode(): "'v' must be 1",
    }
    for payload, why in bad.items():
        with pytest.raises(ChainPayloadError, match=why):
            parse_batch("paris-11", payload)


def test_an_empty_range_moves_the_mark_and_fills_a_gap(central: CentralDb) -> None:
    central.ingest(batch(0, 5), NOW)
    central.ingest(batch(8, 10), NOW)  # (5, 8] missing
    assert [g.lo for g in central.gaps()] == [8]
    assert central.ingest(Batch("paris-11", 5, 8, ()), NOW).hwm == 10  # they were erased
    assert central.gaps() == []
