"""`Store`: the one door to the database (customers, visits, zone events, outbox, feedback).

A synchronous API: the daemon calls it through `asyncio.to_thread`, so every method opens
its own session and the engine may be used from any thread.  Each call that writes a
batch does it in one transaction (a replay writes thousands of rows).

SQLite runs in WAL mode with `synchronous=NORMAL` and a busy timeout, so a reader (a
report) never blocks the writer (the daemon).  PostgreSQL works the same through a
`postgresql+psycopg://` url.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import CursorResult, Engine, Insert, Result, event, func, insert, or_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import StaticPool
from sqlmodel import Session, col, create_engine, delete, select

from gateway.deliver.payloads import FeedbackState
from gateway.errors import RuntimeFailure
from gateway.events import EventKind, Offer, Purpose, ZoneEvent
from gateway.identity import Customer
from gateway.rules.codepools import Assignment
from gateway.store.tables import (
    METADATA,
    CodeRow,
    CustomerRow,
    FeedbackRow,
    OfferRow,
    OfferState,
    RuntimeRow,
    VisitRow,
    ZoneEventRow,
    customer_to_row,
    event_to_values,
    offer_to_values,
    row_to_customer,
    row_to_event,
    row_to_offer,
)

log = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 5000
MAX_PENDING = 10_000
_CHUNK = 500
_DROP_REASONS = {OfferState.DROPPED: "outbox full"}


@dataclass(frozen=True, slots=True)
class Enqueued:
    """What `enqueue_offers` did: `added` new offers queued (or held out), `dropped` new
    commercial offers recorded as `dropped` because the outbox was full."""

    added: int = 0
    dropped: int = 0


@dataclass(frozen=True, slots=True)
class OfferRecord:
    """An offer as the log knows it: the offer, where it is in the outbox, its history."""

    offer: Offer
    state: OfferState
    sent_at: float | None
    attempts: int
    last_error: str | None


@dataclass(frozen=True, slots=True)
class Visit:
    """One store visit of a device; `ended_at` is None while it goes on."""

    device: str
    customer: str | None
    started_at: float
    ended_at: float | None


@dataclass(frozen=True, slots=True)
class FeedbackRecord:
    """One feedback message as logged: which offer, what the app said, when."""

    offer_id: str
    state: FeedbackState
    at: float


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    cursor.close()


def _make_engine(url: str) -> Engine:
    if not url.startswith("sqlite"):
        return create_engine(url, pool_pre_ping=True)
    in_memory = url in ("sqlite://", "sqlite:///:memory:")
    engine = create_engine(
        url,
        connect_args={"check_same_thread": False, "timeout": BUSY_TIMEOUT_MS / 1000},
        poolclass=StaticPool if in_memory else None,
    )
    event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _where(url: str) -> str:
    """The url without its password, for messages."""
    head, sep, tail = url.rpartition("@")
    if not sep or ":" not in head.split("//", 1)[-1]:
        return url
    scheme_user = head.rsplit(":", 1)[0]
    return f"{scheme_user}:***@{tail}"


class Store:
    """The database behind the gateway.  Creates its tables on first use."""

    def __init__(self, url: str, *, max_pending: int = MAX_PENDING) -> None:
        """Open `url` and create missing tables; RuntimeFailure with a hint if it cannot.

        `max_pending` bounds the outbox (see `enqueue_offers`).
        """
        self.url = url
        self.max_pending = max_pending
        try:
            self._engine = _make_engine(url)
            METADATA.create_all(self._engine)
        except (SQLAlchemyError, ImportError) as exc:
            raise RuntimeFailure(
                f"cannot open the database {_where(url)}: {exc}; check `database.url` in "
                "config.yaml, that the server runs and that the file's folder is writable"
            ) from exc

    @contextmanager
    def _session(self) -> Iterator[Session]:
        """One transaction: committed on success, rolled back on error."""
        try:
            with Session(self._engine, expire_on_commit=False) as session, session.begin():
                yield session
        except SQLAlchemyError as exc:
            raise RuntimeFailure(f"database error on {_where(self.url)}: {exc}") from exc

    def _insert(self, row_type: type[Any]) -> Insert:
        """An INSERT that skips rows whose primary key already exists."""
        if self._engine.dialect.name == "postgresql":
            return postgresql.insert(row_type).on_conflict_do_nothing()
        return sqlite.insert(row_type).on_conflict_do_nothing()

    def close(self) -> None:
        """Release every pooled connection (the WAL is checkpointed by SQLite on close)."""
        self._engine.dispose()

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
        """Erase a customer and everything about them: offers, feedback, events, visits.

        Events and visits are matched by customer id and by the customer's devices and
        phone token.  True when anything was erased.
        """
        with self._session() as session:
            row = session.get(CustomerRow, customer_id)
            devices = [*row.devices, f"phone:{row.token}"] if row is not None else []
            offer_ids = select(OfferRow.id).where(OfferRow.customer == customer_id)
            statements = [
                delete(FeedbackRow).where(col(FeedbackRow.offer_id).in_(offer_ids)),
                delete(OfferRow).where(col(OfferRow.customer) == customer_id),
                delete(ZoneEventRow).where(_of(ZoneEventRow, customer_id, devices)),
                delete(VisitRow).where(_of(VisitRow, customer_id, devices)),
                update(CodeRow).where(col(CodeRow.customer) == customer_id).values(customer=None),
            ]
            erased = sum(_rowcount(session.execute(statement)) for statement in statements)
            if row is not None:
                session.delete(row)
            return row is not None or erased > 0

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
    ) -> Enqueued:
        """Zone events, offers and the live state (`runtime`, key → JSON object) in ONE
        transaction, so that after a crash the restored state never claims an offer the
        outbox lacks, nor misses one it holds."""
        with self._session() as session:
            _write_events(session, events)
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
            for start in range(0, len(values), _CHUNK):
                session.execute(self._insert(CodeRow), values[start : start + _CHUNK])
            return session.exec(count).one() - before

    def codes(self) -> list[tuple[str, str, str | None, float | None]]:
        """Every code as (pool, code, customer, assigned_at), in import order per pool."""
        with self._session() as session:
            rows = session.exec(select(CodeRow).order_by(col(CodeRow.pool))).all()
            return [(r.pool, r.code, r.customer, r.assigned_at) for r in rows]

    def load_runtime(self, key: str) -> dict[str, Any] | None:
        """The live state saved under `key` by `commit`, or None."""
        with self._session() as session:
            row = session.get(RuntimeRow, key)
            return dict(row.value) if row is not None else None

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

    def enqueue_offers(self, offers: Sequence[Offer]) -> Enqueued:
        """Write offers to the outbox (holdout ones as `holdout`), in one transaction.

        The outbox is bounded by `max_pending` pending offers.  When it is full, a new
        commercial offer is not queued but recorded as `dropped` ("outbox full"): a promotion
        that cannot go out soon is worthless, and the log still shows it was decided.  A
        transactional offer (an order ready …) is always queued: it is rare and promised.
        Idempotent on the offer id: an id already stored is left as it is.
        """
        with self._session() as session:
            result = self._enqueue(session, offers)
        self._warn_dropped(result)
        return result

    def _enqueue(self, session: Session, offers: Sequence[Offer]) -> Enqueued:
        added = dropped = 0
        room = self.max_pending - self._pending_count(session)
        for start in range(0, len(offers), _CHUNK):
            chunk = offers[start : start + _CHUNK]
            ids = [o.id for o in chunk]
            known = set(session.exec(select(OfferRow.id).where(col(OfferRow.id).in_(ids))))
            values = []
            for offer in _unique(chunk, known):
                state, room = _admit(offer, room)
                dropped += state is OfferState.DROPPED
                values.append(offer_to_values(offer, state, _DROP_REASONS.get(state)))
            if values:
                session.execute(self._insert(OfferRow), values)
            added += len(values)
        return Enqueued(added - dropped, dropped)

    def _warn_dropped(self, result: Enqueued) -> None:
        if result.dropped:
            log.warning(
                "outbox full (%d pending): %d offer(s) dropped", self.max_pending, result.dropped
            )

    def _pending_count(self, session: Session) -> int:
        query = select(func.count()).where(col(OfferRow.state) == OfferState.PENDING.value)
        return session.exec(query).one()

    def due_offers(self, limit: int = 100) -> list[Offer]:
        """Pending offers, oldest first (expired ones too: the publisher marks them)."""
        query = (
            select(OfferRow)
            .where(OfferRow.state == OfferState.PENDING.value)
            .order_by(col(OfferRow.created_at), col(OfferRow.id))
            .limit(limit)
        )
        with self._session() as session:
            return [row_to_offer(row) for row in session.exec(query).all()]

    def mark_sent(self, offer_id: str, at: float) -> bool:
        """A pending offer was acknowledged by the broker at `at`.  False if not pending."""
        return self.mark_sent_many([offer_id], at) == 1

    def mark_sent_many(self, offer_ids: Sequence[str], at: float) -> int:
        """Pending offers acknowledged by the broker, in one transaction; how many were."""
        values = {"sent_at": at, "attempts": OfferRow.attempts + 1}
        return self._transition(offer_ids, OfferState.SENT, **values)

    def mark_expired(self, offer_id: str) -> bool:
        """A pending offer's time ran out before it could be sent; it never will be."""
        return self.mark_expired_many([offer_id]) == 1

    def mark_expired_many(self, offer_ids: Sequence[str]) -> int:
        """`mark_expired` for many offers, in one transaction; how many were pending."""
        return self._transition(offer_ids, OfferState.EXPIRED)

    def cancel_offer(self, offer_id: str, reason: str | None = None) -> bool:
        """Withdraw a pending offer (an unusable token …)."""
        return self._transition([offer_id], OfferState.CANCELLED, last_error=reason) == 1

    def cancel_pending(self, customer_id: str, reason: str) -> int:
        """Withdraw every pending offer of a customer (consent withdrawn); how many."""
        query = (
            update(OfferRow)
            .where(col(OfferRow.customer) == customer_id)
            .where(col(OfferRow.state) == OfferState.PENDING.value)
            .values(state=OfferState.CANCELLED.value, last_error=reason[:500])
        )
        with self._session() as session:
            return _rowcount(session.execute(query))

    def mark_failed(self, offer_id: str, error: str) -> None:
        """A publish attempt failed; the offer stays pending for the next drain."""
        self.mark_failed_many({offer_id: error})

    def mark_failed_many(self, errors: Mapping[str, str]) -> None:
        """`mark_failed` for many offers (id → error), in one transaction."""
        with self._session() as session:
            for offer_id, error in errors.items():
                query = (
                    update(OfferRow)
                    .where(col(OfferRow.id) == offer_id)
                    .values(attempts=OfferRow.attempts + 1, last_error=error[:500])
                )
                session.execute(query)

    def _transition(self, offer_ids: Sequence[str], state: OfferState, **values: Any) -> int:
        """Move pending offers to `state`; how many were pending."""
        changed = 0
        with self._session() as session:
            for start in range(0, len(offer_ids), _CHUNK):
                query = (
                    update(OfferRow)
                    .where(col(OfferRow.id).in_(offer_ids[start : start + _CHUNK]))
                    .where(col(OfferRow.state) == OfferState.PENDING.value)
                    .values(state=state.value, **values)
                )
                changed += _rowcount(session.execute(query))
        return changed

    def counts_by_state(self) -> dict[OfferState, int]:
        """How many offers are in each state (every state present, zero included)."""
        query = select(OfferRow.state, func.count()).group_by(col(OfferRow.state))
        with self._session() as session:
            found = {OfferState(state): n for state, n in session.exec(query).all()}
        return {state: found.get(state, 0) for state in OfferState}

    def offers(
        self,
        state: OfferState | None = None,
        customer: str | None = None,
        rule: str | None = None,
        since: float | None = None,
        until: float | None = None,
    ) -> list[Offer]:
        """Logged offers (holdout ones included), oldest first; filters as `offer_log`."""
        return [r.offer for r in self.offer_log(state, customer, rule, since, until)]

    def offer_log(
        self,
        state: OfferState | None = None,
        customer: str | None = None,
        rule: str | None = None,
        since: float | None = None,
        until: float | None = None,
    ) -> list[OfferRecord]:
        """The offer log with outbox states, oldest first; `since`/`until` bound `created_at`."""
        query = select(OfferRow).order_by(col(OfferRow.created_at), col(OfferRow.id))
        equal = ((OfferRow.state, state), (OfferRow.customer, customer), (OfferRow.rule, rule))
        for column, value in equal:
            if value is not None:
                query = query.where(col(column) == value)
        if since is not None:
            query = query.where(col(OfferRow.created_at) >= since)
        if until is not None:
            query = query.where(col(OfferRow.created_at) < until)
        with self._session() as session:
            return [_record(row) for row in session.exec(query).all()]

    def offer(self, offer_id: str) -> OfferRecord | None:
        """One offer with its outbox state, or None (e.g. to check a feedback's token)."""
        with self._session() as session:
            row = session.get(OfferRow, offer_id)
            return _record(row) if row is not None else None

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


def _of(row_type: type[ZoneEventRow] | type[VisitRow], customer: str, devices: list[str]) -> Any:
    """Rows of a customer: by customer id, or by one of their devices."""
    return or_(col(row_type.customer) == customer, col(row_type.device).in_(devices))


def _unique(offers: Sequence[Offer], known: set[str]) -> list[Offer]:
    """The offers whose id is neither stored nor repeated earlier in the batch."""
    seen = set(known)
    fresh = []
    for offer in offers:
        if offer.id not in seen:
            seen.add(offer.id)
            fresh.append(offer)
    return fresh


def _admit(offer: Offer, room: int) -> tuple[OfferState, int]:
    """The state of a new offer in an outbox with `room` pending places left, and the room
    after it: a commercial offer is dropped when there is none, a transactional never."""
    if offer.holdout:
        return OfferState.HOLDOUT, room
    if offer.purpose is Purpose.COMMERCIAL and room <= 0:
        return OfferState.DROPPED, room
    return OfferState.PENDING, room - 1


def _write_events(session: Session, events: Sequence[ZoneEvent]) -> None:
    for start in range(0, len(events), _CHUNK):
        chunk = events[start : start + _CHUNK]
        session.execute(insert(ZoneEventRow), [event_to_values(e) for e in chunk])
    for zone_event in events:
        if zone_event.kind is EventKind.VISIT_START:
            session.add(_visit_started(zone_event))
        elif zone_event.kind is EventKind.VISIT_END:
            _close_visit(session, zone_event)


def _rowcount(result: Result[Any]) -> int:
    """Rows matched by an UPDATE or DELETE (every DML result is a CursorResult)."""
    return cast(CursorResult[Any], result).rowcount


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


def _record(row: OfferRow) -> OfferRecord:
    return OfferRecord(
        offer=row_to_offer(row),
        state=OfferState(row.state),
        sent_at=row.sent_at,
        attempts=row.attempts,
        last_error=row.last_error,
    )
