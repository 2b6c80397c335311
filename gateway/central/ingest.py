"""`CentralDb`: the collector's writes into the central PostgreSQL, one transaction a batch.

Idempotent: a row is keyed by (store, seq) and a row at or below the store's mark is never
written again (so a batch sent twice, or late, neither doubles a record nor brings back one an
erasure deleted).  Two collectors writing one store serialise on its mark row
(`SELECT … FOR UPDATE`).  A batch whose range starts beyond the mark is stored and its range
kept in `chain_ranges`; the mark jumps over it once the gap before it is filled.  An `erase`
row is applied when the mark passes it: that store's records of the customer are deleted, and
the row keeps only the count.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.exc import SQLAlchemyError

from gateway.central.schema import upgrade_central
from gateway.central.wire import Batch
from gateway.errors import RuntimeFailure
from gateway.store.uplink import UplinkEntry

__all__ = ["CentralDb", "Gap", "Ingested"]


@dataclass(frozen=True, slots=True)
class Ingested:
    """What one batch did: the store's mark after it, rows written, erasures applied
    (seq, rows deleted)."""

    store: str
    hwm: int
    written: int
    erased: tuple[tuple[int, int], ...] = ()


@dataclass(frozen=True, slots=True)
class Gap:
    """A store whose records beyond its mark wait for `(hwm, lo]`, seen since `seen`."""

    store: str
    hwm: int
    lo: int
    seen: float


_INSERT = text(
    "INSERT INTO chain_records (store, seq, kind, at, customer, device, body, received_at) "
    "VALUES (:store, :seq, :kind, :at, :customer, :device, CAST(:body AS jsonb), :received_at) "
    # no conflict target: the key is (store, seq), or (store, seq, at) in the monthly
    # partitions of deploy/central/partitioned.sql (a row's `at` never changes)
    "ON CONFLICT DO NOTHING"
)


class CentralDb:
    """The central database at the newest schema."""

    def __init__(self, url: str) -> None:
        try:
            self._engine: Engine = create_engine(url, pool_pre_ping=True, pool_size=4)
            self.upgraded = upgrade_central(self._engine)
        except SQLAlchemyError as exc:
            raise RuntimeFailure(
                f"cannot open the central database: {exc}; check the url given to rayon "
                "central and that PostgreSQL runs"
            ) from exc

    def close(self) -> None:
        self._engine.dispose()

    def ingest(self, batch: Batch, now: float | None = None) -> Ingested:
        """Write one batch (see the module); its store's mark after it."""
        now = time.time() if now is None else now
        with self._engine.begin() as conn:
            hwm = _locked_mark(conn, batch.store, now)
            rows = [_values(batch.store, r, now) for r in batch.rows if r.seq > hwm]
            if rows:
                conn.execute(_INSERT, rows)
            if batch.last <= hwm:
                return Ingested(batch.store, hwm, 0)
            new = batch.last if batch.after <= hwm else _pending(conn, batch, now, hwm)
            new = _absorb(conn, batch.store, new)
            erased = _apply_erasures(conn, batch.store, hwm, new) if new > hwm else ()
            if new > hwm:
                conn.execute(
                    text("UPDATE chain_marks SET hwm = :h, updated_at = :t WHERE store = :s"),
                    {"h": new, "t": now, "s": batch.store},
                )
            return Ingested(batch.store, new, len(rows), erased)

    def gaps(self) -> list[Gap]:
        """Every store waiting for a range before the ones it holds beyond its mark."""
        query = text(
            "SELECT m.store, m.hwm, min(r.lo), min(r.seen) FROM chain_marks m "
            "JOIN chain_ranges r ON r.store = m.store GROUP BY m.store, m.hwm"
        )
        with self._engine.connect() as conn:
            return [Gap(s, int(h), int(lo), float(t)) for s, h, lo, t in conn.execute(query)]

    def note_backfill(self, store: str) -> None:
        """Count a backfill request made to `store`."""
        with self._engine.begin() as conn:
            conn.execute(
                text("UPDATE chain_marks SET backfills = backfills + 1 WHERE store = :s"),
                {"s": store},
            )

    def marks(self) -> dict[str, tuple[int, int]]:
        """Every store's (mark, backfill requests)."""
        with self._engine.connect() as conn:
            rows = conn.execute(text("SELECT store, hwm, backfills FROM chain_marks"))
            return {s: (int(h), int(b)) for s, h, b in rows}

    def expire(self, before: float) -> int:
        """Retention: delete the records older than `before` (the marks stay: what retention
        deleted is never asked for again); how many."""
        with self._engine.begin() as conn:
            done = conn.execute(text("DELETE FROM chain_records WHERE at < :t"), {"t": before})
            return int(done.rowcount)


def _locked_mark(conn: Connection, store: str, now: float) -> int:
    conn.execute(
        text(
            "INSERT INTO chain_marks (store, hwm, updated_at) VALUES (:s, 0, :t) "
            "ON CONFLICT (store) DO NOTHING"
        ),
        {"s": store, "t": now},
    )
    found = conn.execute(
        text("SELECT hwm FROM chain_marks WHERE store = :s FOR UPDATE"), {"s": store}
    )
    return int(found.scalar_one())


def _values(store: str, row: UplinkEntry, now: float) -> dict[str, Any]:
    return {
        "store": store,
        "seq": row.seq,
        "kind": row.kind,
        "at": row.at,
        "customer": row.customer,
        "device": row.device,
        "body": json.dumps(row.body),
        "received_at": now,
    }


def _pending(conn: Connection, batch: Batch, now: float, hwm: int) -> int:
    """Keep the range of a batch that starts beyond the mark; the mark stays."""
    conn.execute(
        text(
            "INSERT INTO chain_ranges (store, lo, hi, seen) VALUES (:s, :lo, :hi, :t) "
            "ON CONFLICT (store, lo) DO UPDATE SET hi = GREATEST(chain_ranges.hi, EXCLUDED.hi)"
        ),
        {"s": batch.store, "lo": batch.after, "hi": batch.last, "t": now},
    )
    return hwm


def _absorb(conn: Connection, store: str, hwm: int) -> int:
    """Move the mark over the kept ranges that now touch it, and forget them."""
    while True:
        found = (
            conn.execute(
                text("DELETE FROM chain_ranges WHERE store = :s AND lo <= :h RETURNING hi"),
                {"s": store, "h": hwm},
            )
            .scalars()
            .all()
        )
        if not found:
            return hwm
        hwm = max(hwm, *(int(h) for h in found))


def _apply_erasures(
    conn: Connection, store: str, old: int, new: int
) -> tuple[tuple[int, int], ...]:
    """Apply the `erase` rows the mark just passed, in order."""
    found = conn.execute(
        text(
            "SELECT seq, body FROM chain_records WHERE store = :s AND kind = 'erase' "
            "AND seq > :old AND seq <= :new ORDER BY seq"
        ),
        {"s": store, "old": old, "new": new},
    ).all()
    done = []
    for seq, body in found:
        customer = body.get("customer")
        devices = [d for d in body.get("devices", []) if isinstance(d, str)]
        if not isinstance(customer, str):
            continue  # already applied (the count alone is kept)
        deleted = conn.execute(
            text(
                "DELETE FROM chain_records WHERE store = :s AND seq < :e AND kind <> 'erase' "
                "AND (customer = :c OR device = ANY(:d))"
            ),
            {"s": store, "e": seq, "c": customer, "d": devices},
        ).rowcount
        conn.execute(
            text(
                "UPDATE chain_records SET body = CAST(:b AS jsonb), customer = NULL "
                "WHERE store = :s AND seq = :e"
            ),
            {"b": f'{{"rows": {int(deleted)}}}', "s": store, "e": seq},
        )
        done.append((int(seq), int(deleted)))
    return tuple(done)
