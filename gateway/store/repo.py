"""`Store`: the one door to the database (customers, visits, zone events, outbox, feedback).

A synchronous API: the daemon calls it through `Store.call`, on the one database thread,
and every method opens its own session, so that other programs may use it from any
thread.  Each call that writes a batch does it in one transaction (a replay writes
thousands of rows).

The engine and sessions are in `database.py` (SQLite in WAL mode, or PostgreSQL), the offer
outbox and log in `outbox.py`; `Store` adds customers, zone events, visits, code pools, the
saved live state and feedback.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, insert, or_, update
from sqlmodel import Session, col, delete, select

from gateway.deliver.payloads import FeedbackState
from gateway.events import EventKind, Offer, ZoneEvent
from gateway.identity import Customer
from gateway.rules.codepools import Assignment
from gateway.store.database import BUSY_TIMEOUT_MS, CHUNK, rowcount
from gateway.store.outbox import MAX_PENDING, Enqueued, OfferOutbox, OfferRecord
from gateway.store.tables import (
    CodeRow,
    CustomerRow,
    FeedbackRow,
    ObservationRow,
    OfferRow,
    RuntimeRow,
    VisitRow,
    ZoneEventRow,
    customer_to_row,
    event_to_values,
    row_to_customer,
    row_to_event,
)

# The outbox's and the engine's names live in store/outbox.py and store/database.py;
# importable from here.
__all__ = [
    "BUSY_TIMEOUT_MS",
    "MAX_PENDING",
    "Enqueued",
    "FeedbackRecord",
    "OfferRecord",
    "Position",
    "Store",
    "Visit",
]


@dataclass(frozen=True, slots=True)
class Visit:
    """One store visit of a device; `ended_at` is None while it goes on."""

    device: str
    customer: str | None
    started_at: float
    ended_at: float | None


@dataclass(frozen=True, slots=True)
class Position:
    """A stored, sampled position of a consented customer's device (`observations`)."""

    at: float
    device: str
    customer: str | None
    x: float
    y: float
    accuracy_m: float


@dataclass(frozen=True, slots=True)
class FeedbackRecord:
    """One feedback message as logged: which offer, what the app said, when."""

    offer_id: str
    state: FeedbackState
    at: float


class Store(OfferOutbox):
    """The database behind the gateway.  Creates its tables on first use.

    `Store(url, max_pending=…)`: see `Database` for the url, `OfferOutbox` for the outbox.
    """

    # --- customers --------------------------------------------------------------------

    def upsert_customer(self, customer: Customer) -> None:
        """Insert or replace one customer (the CRM topic)."""
        self.upsert_customers([customer])

    def upsert_customers(self, customers: Sequence[Customer]) -> None:
        """Insert or replace customers, all in one transaction (an import)."""
        with self._session() as session:
            for customer in customers:
                session.merge(customer_to_row(customer))

    def load_customers(self) -> list[Customer]:
        """Every customer, by id (fills the identity registry at start-up)."""
        with self._session() as session:
            rows = session.exec(select(CustomerRow).order_by(col(CustomerRow.id))).all()
            return [row_to_customer(row) for row in rows]

    def delete_customer(self, customer_id: str) -> bool:
        """Erase a customer and everything about them (see `erase_customer`).  True when
        anything was erased."""
        return any(self.erase_customer(customer_id).values())

    def erase_customer(self, customer_id: str) -> dict[str, int]:
        """Erase a customer and everything about them: offers, feedback, events, visits,
        positions, and the link of the codes they were given (a code handed out stays
        spent).  Events, visits and positions are matched by customer id and by the
        customer's devices and phone token.  Rows erased per table, in one transaction."""
        with self._session() as session:
            row = session.get(CustomerRow, customer_id)
            devices = list(row_to_customer(row).device_ids) if row is not None else []
            offer_ids = select(OfferRow.id).where(OfferRow.customer == customer_id)
            statements = {
                "feedback": delete(FeedbackRow).where(col(FeedbackRow.offer_id).in_(offer_ids)),
                "offers": delete(OfferRow).where(col(OfferRow.customer) == customer_id),
                "zone_events": delete(ZoneEventRow).where(_of(ZoneEventRow, customer_id, devices)),
                "visits": delete(VisitRow).where(_of(VisitRow, customer_id, devices)),
                "observations": delete(ObservationRow).where(
                    _of(ObservationRow, customer_id, devices)
                ),
                "codes": update(CodeRow)
                .where(col(CodeRow.customer) == customer_id)
                .values(customer=None),
            }
            erased = {name: rowcount(session.execute(st)) for name, st in statements.items()}
            erased["customers"] = 0
            if row is not None:
                session.delete(row)
                erased["customers"] = 1
            return erased

    def customer(self, customer_id: str) -> Customer | None:
        """One customer by id."""
        with self._session() as session:
            row = session.get(CustomerRow, customer_id)
            return row_to_customer(row) if row is not None else None

    # --- zone events and visits -------------------------------------------------------

    def record_events(self, events: Sequence[ZoneEvent]) -> None:
        """Append zone events; `visit_start` opens a visit, `visit_end` closes it."""
        with self._session() as session:
            _write_events(session, events)

    def commit(
        self,
        events: Sequence[ZoneEvent] = (),
        offers: Sequence[Offer] = (),
        runtime: Mapping[str, dict[str, Any]] | None = None,
        at: float = 0.0,
        assignments: Sequence[Assignment] = (),
        positions: Sequence[Position] = (),
    ) -> Enqueued:
        """Zone events, offers, the live state (`runtime`, key → JSON object), codes handed
        out and sampled positions in ONE transaction, so that after a crash the restored
        state never claims an offer the outbox lacks, nor misses one it holds."""
        with self._session() as session:
            _write_events(session, events)
            _write_positions(session, positions)
            result = self._enqueue(session, offers)
            for key, value in (runtime or {}).items():
                session.merge(RuntimeRow(key=key, value=value, updated_at=at))
            for a in assignments:
                statement = update(CodeRow).where(
                    col(CodeRow.pool) == a.pool, col(CodeRow.code) == a.code
                )
                session.execute(statement.values(customer=a.customer, assigned_at=a.at))
        self._warn_dropped(result)
        return result

    def import_codes(self, pool: str, codes: Sequence[str]) -> int:
        """Add codes to a code pool; a code already in the pool is skipped.  Returns how
        many were new."""
        values = [{"pool": pool, "code": code} for code in dict.fromkeys(codes)]
        count = select(func.count()).where(col(CodeRow.pool) == pool)
        with self._session() as session:
            before = session.exec(count).one()
            for start in range(0, len(values), CHUNK):
                session.execute(self._insert(CodeRow), values[start : start + CHUNK])
            return session.exec(count).one() - before

    def codes(self) -> list[tuple[str, str, str | None, float | None]]:
        """Every code as (pool, code, customer, assigned_at), by pool and code (a stable
        order on every database: PostgreSQL returns updated rows in no set order)."""
        with self._session() as session:
            query = select(CodeRow).order_by(col(CodeRow.pool), col(CodeRow.code))
            rows = session.exec(query).all()
            return [(r.pool, r.code, r.customer, r.assigned_at) for r in rows]

    def load_runtime(self, key: str) -> dict[str, Any] | None:
        """The live state saved under `key` by `commit`, or None."""
        with self._session() as session:
            row = session.get(RuntimeRow, key)
            return dict(row.value) if row is not None else None

    def positions(self, customer: str | None = None) -> list[Position]:
        """Stored positions in time order, optionally of one customer."""
        query = select(ObservationRow).order_by(col(ObservationRow.at), col(ObservationRow.id))
        if customer is not None:
            query = query.where(ObservationRow.customer == customer)
        with self._session() as session:
            return [
                Position(r.at, r.device, r.customer, r.x, r.y, r.accuracy_m)
                for r in session.exec(query).all()
            ]

    def events(self, customer: str | None = None, device: str | None = None) -> list[ZoneEvent]:
        """Recorded zone events in time order, optionally of one customer or device."""
        query = select(ZoneEventRow).order_by(col(ZoneEventRow.at), col(ZoneEventRow.id))
        if customer is not None:
            query = query.where(ZoneEventRow.customer == customer)
        if device is not None:
            query = query.where(ZoneEventRow.device == device)
        with self._session() as session:
            return [row_to_event(row) for row in session.exec(query).all()]

    def visits(self, customer: str | None = None, device: str | None = None) -> list[Visit]:
        """Visits in start order, optionally of one customer or device."""
        query = select(VisitRow).order_by(col(VisitRow.started_at), col(VisitRow.id))
        if customer is not None:
            query = query.where(VisitRow.customer == customer)
        if device is not None:
            query = query.where(VisitRow.device == device)
        with self._session() as session:
            rows = session.exec(query).all()
            return [Visit(r.device, r.customer, r.started_at, r.ended_at) for r in rows]

    # --- the outbox -------------------------------------------------------------------

    # --- feedback ---------------------------------------------------------------------

    def record_feedback(self, offer_id: str, state: FeedbackState, at: float) -> bool:
        """Log the app's feedback on an offer.  False (nothing stored) for an unknown offer."""
        with self._session() as session:
            if session.get(OfferRow, offer_id) is None:
                return False
            session.add(FeedbackRow(offer_id=offer_id, state=state.value, at=at))
            return True

    def feedback(self, offer_id: str | None = None) -> list[FeedbackRecord]:
        """Logged feedback in time order, optionally of one offer (for the KPIs)."""
        query = select(FeedbackRow).order_by(col(FeedbackRow.at), col(FeedbackRow.id))
        if offer_id is not None:
            query = query.where(FeedbackRow.offer_id == offer_id)
        with self._session() as session:
            rows = session.exec(query).all()
            return [FeedbackRecord(r.offer_id, FeedbackState(r.state), r.at) for r in rows]


def _of(
    row_type: type[ZoneEventRow] | type[VisitRow] | type[ObservationRow],
    customer: str,
    devices: list[str],
) -> Any:
    """Rows of a customer: by customer id, or by one of their devices."""
    return or_(col(row_type.customer) == customer, col(row_type.device).in_(devices))


def _write_positions(session: Session, positions: Sequence[Position]) -> None:
    for start in range(0, len(positions), CHUNK):
        values = [dataclasses.asdict(p) for p in positions[start : start + CHUNK]]
        session.execute(insert(ObservationRow), values)


def _write_events(session: Session, events: Sequence[ZoneEvent]) -> None:
    for start in range(0, len(events), CHUNK):
        chunk = events[start : start + CHUNK]
        session.execute(insert(ZoneEventRow), [event_to_values(e) for e in chunk])
    for zone_event in events:
        if zone_event.kind is EventKind.VISIT_START:
            session.add(_visit_started(zone_event))
        elif zone_event.kind is EventKind.VISIT_END:
            _close_visit(session, zone_event)


def _visit_started(zone_event: ZoneEvent) -> VisitRow:
    return VisitRow(
        device=zone_event.device, customer=zone_event.customer, started_at=zone_event.at
    )


def _close_visit(session: Session, zone_event: ZoneEvent) -> None:
    """Close the device's latest open visit, or log a closed one if the start was missed."""
    query = (
        select(VisitRow)
        .where(VisitRow.device == zone_event.device, col(VisitRow.ended_at).is_(None))
        .order_by(col(VisitRow.started_at).desc())
        .limit(1)
    )
    visit = session.exec(query).first()
    if visit is None:
        started = zone_event.at - (zone_event.dwell_s or 0.0)
        visit = _visit_started(zone_event)
        visit.started_at = started
    visit.ended_at = zone_event.at
    session.add(visit)
