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

import hashlib
import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, bindparam, func, insert, or_, update
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, delete, select

from gateway.events import EventKind, FeedbackState, Offer, ZoneEvent
from gateway.identity.model import Customer
from gateway.livestate import StateDelta, merge, whole
from gateway.rules.codepools import Assignment
from gateway.store.database import CHUNK, BulkInsert, dialect_insert, rowcount
from gateway.store.outbox import Enqueued, OfferOutbox
from gateway.store.tables import (
    EVENT_COLUMNS,
    CodeRow,
    CustomerRow,
    FeedbackRow,
    ObservationRow,
    OfferRow,
    OfferState,
    RuntimeRow,
    VisitRow,
    ZoneEventRow,
    customer_to_row,
    event_row,
    row_to_customer,
    row_to_event,
    table_of,
)
from gateway.store.uplink import erase_entries, event_entries, feedback_entries, journal

# The outbox's and the engine's names live in store/outbox.py and store/database.py;
__all__ = ["FeedbackRecord", "Position", "Store", "Visit"]

# Core tables of the batch writes (see `table_of`).
_EVENTS = table_of(ZoneEventRow)
_VISITS = table_of(VisitRow)
_OBSERVATIONS = table_of(ObservationRow)
_RUNTIME = table_of(RuntimeRow)
VISIT_KEY = "console.visit_key"  # runtime_state: the visit pseudonyms' key (Store.visit_key)
_CODES = table_of(CodeRow)


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
            if self.journal:  # the centre erases what it has once it reads this
                connection = session.connection()
                journal(connection, erase_entries(connection, customer_id, devices, time.time()))
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
            _write_events(session, events, self.journal)

    def commit(
        self,
        events: Sequence[ZoneEvent] = (),
        offers: Sequence[Offer] = (),
        runtime: Mapping[str, dict[str, Any] | StateDelta] | None = None,
        at: float = 0.0,
        assignments: Sequence[Assignment] = (),
        positions: Sequence[Position] = (),
    ) -> Enqueued:
        """Zone events, offers, the live state (`runtime`, key → a JSON object or its changes,
        `livestate.StateDelta`), codes handed out and sampled positions in ONE transaction, so
        that after a crash the restored state never claims an offer the outbox lacks, nor
        misses one it holds."""
        with self._session() as session:
            _write_events(session, events, self.journal)
            _write_positions(session, positions)
            result = self._enqueue(session, offers)
            self._save_runtime(session, runtime or {}, at)
            _assign_codes(session, assignments)
        self._warn_dropped(result)
        return result

    def _save_runtime(
        self, session: Session, runtime: Mapping[str, dict[str, Any] | StateDelta], at: float
    ) -> None:
        """Save each live state (key → a whole JSON document, or its changes): one row for
        the document without its split maps' entries, one per entry that changed (`livestate`);
        upserts, never reading the old values back.  A whole document, or a complete delta,
        replaces every saved entry of its key."""
        connection = session.connection()
        values: list[dict[str, Any]] = []
        gone: list[str] = []
        for key, state in runtime.items():
            delta = state if isinstance(state, StateDelta) else whole(state)
            if delta.complete:
                connection.execute(delete(_RUNTIME).where(*_parts_of(key)))
            values.append({"key": key, "value": delta.base, "updated_at": at})
            for (name, entry), value in delta.entries.items():
                part = _part_key(key, name, entry)
                if value is None:
                    gone.append(part)
                else:
                    doc = {"map": name, "key": entry, "value": value}
                    values.append({"key": part, "value": doc, "updated_at": at})
        for start in range(0, len(gone), CHUNK):
            connection.execute(
                delete(_RUNTIME).where(_RUNTIME.c.key.in_(gone[start : start + CHUNK]))
            )
        if not values:
            return
        insert_ = dialect_insert(_RUNTIME, self._engine.dialect.name)
        upsert = insert_.on_conflict_do_update(
            index_elements=[_RUNTIME.c.key],
            set_={"value": insert_.excluded.value, "updated_at": insert_.excluded.updated_at},
        )
        for start in range(0, len(values), CHUNK):
            connection.execute(upsert, values[start : start + CHUNK])

    def import_codes(self, pool: str, codes: Sequence[str]) -> int:
        """Add codes to a code pool; a code already in the pool is skipped.  Returns how
        many were new."""
        values = [{"pool": pool, "code": code} for code in dict.fromkeys(codes)]
        count = select(func.count()).where(col(CodeRow.pool) == pool)
        with self._session() as session:
            before = session.exec(count).one()
            for start in range(0, len(values), CHUNK):
                session.connection().execute(self._insert(_CODES), values[start : start + CHUNK])
            return session.exec(count).one() - before

    def codes(self) -> list[tuple[str, str, str | None, float | None]]:
        """Every code as (pool, code, customer, assigned_at), by pool and code (a stable
        order on every database: PostgreSQL returns updated rows in no set order)."""
        with self._session() as session:
            query = select(CodeRow).order_by(col(CodeRow.pool), col(CodeRow.code))
            rows = session.exec(query).all()
            return [(r.pool, r.code, r.customer, r.assigned_at) for r in rows]

    def load_runtime(self, key: str) -> dict[str, Any] | None:
        """The live state saved under `key` by `commit`, whole again, or None."""
        with self._session() as session:
            row = session.get(RuntimeRow, key)
            if row is None:
                return None
            query = sa_select(_RUNTIME.c.value).where(*_parts_of(key))
            entries = {}
            for doc in session.connection().execute(query).scalars():
                if isinstance(doc, dict) and {"map", "key", "value"} <= doc.keys():
                    entries[(str(doc["map"]), str(doc["key"]))] = doc["value"]
            return merge(row.value, entries)

    def visit_key(self, *, create: bool = False) -> bytes | None:
        """The store's key for visit pseudonyms (`gateway.ids.visit_pseudonym`): the gateway
        creates it (`create=True`, 32 random bytes, kept in `runtime_state`); the console only
        reads it, and gets None before the gateway ever ran on this database."""
        with self._session() as session:
            row = session.get(RuntimeRow, VISIT_KEY)
            if row is not None and isinstance(row.value.get("key"), str):
                return bytes.fromhex(row.value["key"])
            if not create:
                return None
            key = secrets.token_bytes(32)
            session.add(RuntimeRow(key=VISIT_KEY, value={"key": key.hex()}, updated_at=0.0))
            return key

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
        """Log the app's feedback on an offer (its first of that state; the offer is then
        `delivered`).  False (nothing stored) for an unknown offer."""
        with self._session() as session:
            row = session.get(OfferRow, offer_id)
            if row is None:
                return False
            self._log_feedback(session, [(offer_id, state, at)])
            return True

    def record_feedbacks(self, items: Sequence[tuple[str, str, FeedbackState, float]]) -> list[int]:
        """Log a batch of app feedback `(token, offer id, state, at)` in one transaction; an
        item is kept only when its offer exists and was sent to that same token.  Returns
        the indexes of the items refused (one read and one write for the whole batch, so a
        flood of feedback costs the database thread little).

        Any feedback confirms its offer: a `pending` or `sent` one becomes `delivered`, and is
        never published again.  A state an offer already has is not logged twice (an app
        answers every copy of an offer the gateway resends with `delivered`)."""
        ids = {offer_id for _, offer_id, _, _ in items}
        with self._session() as session:
            query = sa_select(col(OfferRow.id), col(OfferRow.token)).where(
                col(OfferRow.id).in_(ids)
            )
            owner = {oid: tok for oid, tok in session.execute(query)} if ids else {}
            refused = [i for i, (token, oid, _, _) in enumerate(items) if owner.get(oid) != token]
            skip = set(refused)
            kept = [(o, state, at) for i, (_, o, state, at) in enumerate(items) if i not in skip]
            self._log_feedback(session, kept)
        return refused

    def _log_feedback(
        self, session: Session, items: Sequence[tuple[str, FeedbackState, float]]
    ) -> None:
        """Insert the feedback states not yet logged for their offer, and mark those offers
        `delivered` (if `pending` or `sent`)."""
        if not items:
            return
        ids = list({oid for oid, _, _ in items})
        seen: set[tuple[str, str]] = set()
        for start in range(0, len(ids), CHUNK):
            query = sa_select(col(FeedbackRow.offer_id), col(FeedbackRow.state)).where(
                col(FeedbackRow.offer_id).in_(ids[start : start + CHUNK])
            )
            seen.update((oid, state) for oid, state in session.execute(query))
        rows = []
        for oid, state, at in items:
            if (oid, state.value) not in seen:
                seen.add((oid, state.value))
                rows.append({"offer_id": oid, "state": state.value, "at": at})
        if rows:
            session.execute(insert(FeedbackRow), rows)
            if self.journal:
                self._journal_feedback(session, rows)
        confirmed = (OfferState.PENDING.value, OfferState.SENT.value)
        for start in range(0, len(ids), CHUNK):
            session.execute(
                update(OfferRow)
                .where(col(OfferRow.id).in_(ids[start : start + CHUNK]))
                .where(col(OfferRow.state).in_(confirmed))
                .values(state=OfferState.DELIVERED.value)
            )

    def _journal_feedback(self, session: Session, rows: Sequence[dict[str, Any]]) -> None:
        """The feedback states just logged, with their offers' customers, to the journal."""
        ids = list({row["offer_id"] for row in rows})
        customers: dict[str, str] = {}
        for start in range(0, len(ids), CHUNK):
            query = sa_select(col(OfferRow.id), col(OfferRow.customer)).where(
                col(OfferRow.id).in_(ids[start : start + CHUNK])
            )
            customers.update({oid: customer for oid, customer in session.execute(query)})
        items = [(r["offer_id"], r["state"], r["at"], customers.get(r["offer_id"])) for r in rows]
        journal(session.connection(), feedback_entries(items))

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


_POSITION_COLUMNS = ("at", "device", "customer", "x", "y", "accuracy_m")
_insert_positions = BulkInsert(_OBSERVATIONS, _POSITION_COLUMNS)


def _write_positions(session: Session, positions: Sequence[Position]) -> None:
    if positions:
        rows = [(p.at, p.device, p.customer, p.x, p.y, p.accuracy_m) for p in positions]
        _insert_positions(session.connection(), rows)


def _assign_codes(session: Session, assignments: Sequence[Assignment]) -> None:
    if assignments:
        statement = (
            update(_CODES)
            .where(_CODES.c.pool == bindparam("a_pool"), _CODES.c.code == bindparam("a_code"))
            .values(customer=bindparam("a_customer"), assigned_at=bindparam("a_at"))
        )
        values = [
            {"a_pool": a.pool, "a_code": a.code, "a_customer": a.customer, "a_at": a.at}
            for a in assignments
        ]
        session.connection().execute(statement, values)


_insert_events = BulkInsert(_EVENTS, EVENT_COLUMNS)
_VISIT_KINDS = frozenset({EventKind.VISIT_START, EventKind.VISIT_END})


def _write_events(session: Session, events: Sequence[ZoneEvent], uplink: bool = False) -> None:
    """Log zone events and keep the visits: `visit_start` opens a visit, `visit_end` closes
    the device's latest open one (or logs a closed one if the start was missed).  A handful
    of statements per batch, whatever its size.  `uplink`: journal them for the centre."""
    if not events:
        return
    connection = session.connection()
    _insert_events(connection, [event_row(e) for e in events])
    if uplink:
        journal(connection, event_entries(events))
    if any(e.kind in _VISIT_KINDS for e in events):
        _write_visits(connection, events)


def _write_visits(connection: Connection, events: Sequence[ZoneEvent]) -> None:
    """Replay the batch's visit events in order against the open visits: those stored (the
    devices' that end one here) and those opened earlier in the batch.  A visit opened and
    closed in the batch is inserted closed; a stored one is closed by id."""
    ending = {e.device for e in events if e.kind is EventKind.VISIT_END}
    open_visits = _stored_open_visits(connection, ending)
    new: list[dict[str, Any]] = []  # rows to insert, in event order
    closed: list[dict[str, Any]] = []  # stored visits to close
    for e in events:
        if e.kind is EventKind.VISIT_START:
            row = {"device": e.device, "customer": e.customer, "started_at": e.at, "ended_at": None}
            new.append(row)
            open_visits.setdefault(e.device, []).append(_Open(e.at, len(new), row))
        elif e.kind is EventKind.VISIT_END:
            candidates = open_visits.get(e.device)
            if not candidates:  # the start was missed: log a closed visit
                started = e.at - (e.dwell_s or 0.0)
                new.append(
                    {
                        "device": e.device,
                        "customer": e.customer,
                        "started_at": started,
                        "ended_at": e.at,
                    }
                )
                continue
            latest = max(candidates, key=_Open.key)
            candidates.remove(latest)
            if latest.row is not None:
                latest.row["ended_at"] = e.at
            else:
                closed.append({"visit_id": latest.order, "ended": e.at})
    if new:
        connection.execute(insert(_VISITS), new)
    if closed:
        close = (
            update(_VISITS)
            .where(_VISITS.c.id == bindparam("visit_id"))
            .values(ended_at=bindparam("ended"))
        )
        connection.execute(close, closed)


@dataclass(frozen=True, slots=True, eq=False)
class _Open:
    """An open visit while a batch is written: stored (`row` None, `order` its id) or new
    in the batch (`row` to insert, `order` its place in the batch)."""

    started_at: float
    order: int
    row: dict[str, Any] | None = None

    def key(self) -> tuple[float, bool, int]:
        """The latest start wins; on a tie, the one opened first (stored ones by id, then
        the batch's in order)."""
        return (self.started_at, self.row is None, -self.order)


def _stored_open_visits(connection: Connection, devices: set[str]) -> dict[str, list[_Open]]:
    """The stored open visits of `devices`, per device."""
    found: dict[str, list[_Open]] = {}
    ordered = sorted(devices)
    for start in range(0, len(ordered), CHUNK):
        query = sa_select(_VISITS.c.id, _VISITS.c.device, _VISITS.c.started_at).where(
            _VISITS.c.ended_at.is_(None), _VISITS.c.device.in_(ordered[start : start + CHUNK])
        )
        for visit_id, device, started_at in connection.execute(query):
            found.setdefault(device, []).append(_Open(started_at, visit_id))
    return found


RUNTIME_KEY_MAX = 31  # a part's row key is the state's key, "/" and 32 hex digits: ≤ 64


def _part_key(key: str, name: str, entry: str) -> str:
    """The row of one entry of a split map (`livestate`): the entry's own key (a device id,
    a customer id) may be longer than the column, so the row key is a digest of it; the
    row's value holds the key itself."""
    digest = hashlib.sha1(f"{name}\0{entry}".encode(), usedforsecurity=False).hexdigest()
    return f"{key}/{digest[:32]}"


def _parts_of(key: str) -> tuple[Any, ...]:
    """WHERE clauses of the rows of `key`'s entries: keys from "key/" up to "key0" ("0"
    follows "/"), a range the primary key's index serves."""
    if "/" in key or len(key) > RUNTIME_KEY_MAX:
        raise ValueError(
            f"a live state key has no '/' and at most {RUNTIME_KEY_MAX} characters: {key!r}"
        )
    return (_RUNTIME.c.key > f"{key}/", _RUNTIME.c.key < f"{key}0")
