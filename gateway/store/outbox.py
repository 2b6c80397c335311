"""The offer outbox and log in the database: queue offers (bounded), move them through their
states (pending → sent → delivered, expired, cancelled) and read the log back.

`OfferOutbox` is the part of `Store` that the outbox publisher and the reports use.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, update
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from gateway.events import Offer, Purpose
from gateway.store.database import CHUNK, BulkInsert, rowcount
from gateway.store.tables import (
    OFFER_COLUMNS,
    CustomerRow,
    OfferRow,
    OfferState,
    offer_row,
    row_to_offer,
    table_of,
)
from gateway.store.uplink import UplinkJournal, journal, offer_entries
from gateway.wire import MAX_EXPIRY_S

log = logging.getLogger(__name__)

MAX_PENDING = 10_000
_DROP_REASONS = {OfferState.DROPPED: "outbox full"}
_OFFERS = table_of(OfferRow)
_insert_offers = BulkInsert(_OFFERS, OFFER_COLUMNS, skip_existing=True)


@dataclass(frozen=True, slots=True)
class Enqueued:
    """What `enqueue_offers` did: `added` new offers queued (or held out), `dropped` new
    commercial offers recorded as `dropped` because the outbox was full; `pending`, the new
    offers queued to be sent (for `OutboxPublisher.hand`); `decided`, each new offer with the
    state it was recorded in (`pending`, `holdout`, `dropped`: the console's ticker, the
    metrics).  An offer already stored is in none of them."""

    added: int = 0
    dropped: int = 0
    pending: tuple[Offer, ...] = field(default=(), compare=False)
    decided: tuple[tuple[Offer, OfferState], ...] = field(default=(), compare=False)


@dataclass(frozen=True, slots=True)
class RepairedOffer:
    """A pending offer `repair_offers` cancelled, and why."""

    id: str
    customer: str
    reason: str


@dataclass(frozen=True, slots=True)
class OfferRecord:
    """An offer as the log knows it: the offer, where it is in the outbox, its history."""

    offer: Offer
    state: OfferState
    sent_at: float | None
    attempts: int
    last_error: str | None


class OfferOutbox(UplinkJournal):
    """Offers in the database: the bounded outbox, its transitions and the offer log."""

    def __init__(self, url: str, *, max_pending: int = MAX_PENDING, journal: bool = False) -> None:
        """Open `url` (see `Database`); `max_pending` bounds the outbox (`enqueue_offers`);
        `journal`: write the records the chain's centre collects to the uplink journal too
        (`central.enabled`, gateway/store/uplink.py)."""
        self.max_pending = max_pending
        self.journal = journal
        super().__init__(url)

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
        if not offers:
            return Enqueued()
        connection = session.connection()  # Core statements: no ORM work per row
        ids = list(dict.fromkeys(o.id for o in offers))
        known: set[str] = set()
        for start in range(0, len(ids), CHUNK):
            query = sa_select(_OFFERS.c.id).where(_OFFERS.c.id.in_(ids[start : start + CHUNK]))
            known.update(connection.execute(query).scalars())
        room = self.max_pending - self._pending_count(session)
        values = []
        decided = []
        dropped = 0
        pending = []
        for offer in _unique(offers, known):
            state, room = _admit(offer, room)
            dropped += state is OfferState.DROPPED
            if state is OfferState.PENDING:
                pending.append(offer)
            values.append(offer_row(offer, state, _DROP_REASONS.get(state)))
            decided.append((offer, state))
        if values:
            _insert_offers(connection, values)
            if self.journal:
                journal(connection, offer_entries(decided))
        return Enqueued(len(values) - dropped, dropped, tuple(pending), tuple(decided))

    def _warn_dropped(self, result: Enqueued) -> None:
        if result.dropped:
            log.warning(
                "outbox full (%d pending): %d offer(s) dropped", self.max_pending, result.dropped
            )

    def _pending_count(self, session: Session) -> int:
        query = sa_select(func.count()).where(_OFFERS.c.state == OfferState.PENDING.value)
        return session.connection().execute(query).scalar_one()

    def due_offers(self, limit: int = 100) -> list[Offer]:
        """Pending offers, oldest first (expired ones too: the publisher marks them).

        A row that is not an offer any more (a purpose this version does not know …) is
        cancelled, saying why, rather than stop every offer behind it."""
        query = (
            select(OfferRow)
            .where(OfferRow.state == OfferState.PENDING.value)
            .order_by(col(OfferRow.created_at), col(OfferRow.id))
            .limit(limit)
        )
        with self._session() as session:
            found, unreadable = [], {}
            for row in session.exec(query).all():
                try:
                    found.append(row_to_offer(row))
                except (ValueError, TypeError) as exc:
                    unreadable[row.id] = f"not a readable offer, cancelled: {exc}"
            for offer_id, reason in unreadable.items():
                log.error("outbox: offer %s %s", offer_id, reason)
                session.execute(_cancel([offer_id], reason))
        return found

    def unconfirmed_offers(
        self, now: float, after: tuple[float, str] | None = None, limit: int = 100
    ) -> list[Offer]:
        """Sent offers that no app confirmed and whose `expires_at` is after `now`, by
        (`expires_at`, id) beyond `after`: the offers to publish again after a new broker
        connection.  Only for a customer still known with `marketing_push` consent: an
        offer of a customer who withdrew it or was erased is never sent again."""
        query = (
            select(OfferRow)
            .join(CustomerRow, col(CustomerRow.id) == col(OfferRow.customer))
            .where(OfferRow.state == OfferState.SENT.value)
            .where(col(OfferRow.expires_at) > now)
            .where(col(CustomerRow.consent_marketing_push))
            .order_by(col(OfferRow.expires_at), col(OfferRow.id))
            .limit(limit)
        )
        if after is not None:
            expires_at, offer_id = after
            query = query.where(
                (col(OfferRow.expires_at) > expires_at)
                | ((col(OfferRow.expires_at) == expires_at) & (col(OfferRow.id) > offer_id))
            )
        with self._session() as session:
            found = []
            for row in session.exec(query).all():
                try:
                    found.append(row_to_offer(row))
                except (ValueError, TypeError) as exc:  # not sent again; its log stays
                    log.error("outbox: sent offer %s is not readable, not resent: %s", row.id, exc)
            return found

    def mark_resent_many(self, offer_ids: Sequence[str]) -> int:
        """Sent offers the broker acknowledged again (a resend): one more attempt each; how
        many were still `sent` (not confirmed meanwhile)."""
        return self._update_in(offer_ids, OfferState.SENT, attempts=OfferRow.attempts + 1)

    def repair_offers(self, now: float, ahead: float) -> list[RepairedOffer]:
        """Cancel the pending offers no publish can carry: created more than `ahead` seconds
        after `now` (decided on a clock pushed ahead), or expiring more than MAX_EXPIRY_S
        after `now` (MQTT cannot encode that expiry).  For the gateway's start-up: a store
        poisoned before the live window existed must not crash or block the outbox."""
        query = (
            select(OfferRow)
            .where(OfferRow.state == OfferState.PENDING.value)
            .where(
                (col(OfferRow.created_at) > now + ahead)
                | (col(OfferRow.expires_at) > now + MAX_EXPIRY_S)
            )
        )
        with self._session() as session:
            rows = session.exec(query).all()
            repaired = [RepairedOffer(r.id, r.customer, _unsendable(r, now)) for r in rows]
            for offer in repaired:
                session.execute(_cancel([offer.id], offer.reason))
        return repaired

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
            return rowcount(session.execute(query))

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
        return self._update_in(offer_ids, OfferState.PENDING, state=state.value, **values)

    def _update_in(self, offer_ids: Sequence[str], current: OfferState, **values: Any) -> int:
        """Set `values` on those of `offer_ids` still in state `current`; how many were."""
        changed = 0
        with self._session() as session:
            for start in range(0, len(offer_ids), CHUNK):
                query = (
                    update(OfferRow)
                    .where(col(OfferRow.id).in_(offer_ids[start : start + CHUNK]))
                    .where(col(OfferRow.state) == current.value)
                    .values(**values)
                )
                changed += rowcount(session.execute(query))
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


def _cancel(offer_ids: Sequence[str], reason: str) -> Any:
    """The update that cancels these offers if still pending, saying why."""
    return (
        update(OfferRow)
        .where(col(OfferRow.id).in_(offer_ids))
        .where(col(OfferRow.state) == OfferState.PENDING.value)
        .values(state=OfferState.CANCELLED.value, last_error=reason[:500])
    )


def _unsendable(row: OfferRow, now: float) -> str:
    """Why `repair_offers` cancels this row, for its `last_error` and the log."""
    if row.created_at > now:
        return (
            f"repaired at start-up: created {row.created_at - now:.0f} s after the gateway's "
            "clock (a device's clock was ahead)"
        )
    return (
        f"repaired at start-up: expires {row.expires_at - now:.0f} s from now, beyond what "
        f"MQTT's message expiry can carry ({MAX_EXPIRY_S} s)"
    )


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


def _record(row: OfferRow) -> OfferRecord:
    return OfferRecord(
        offer=row_to_offer(row),
        state=OfferState(row.state),
        sent_at=row.sent_at,
        attempts=row.attempts,
        last_error=row.last_error,
    )
