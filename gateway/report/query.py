"""Reading one period's rows from the database, in one read-only transaction.

The report never writes: it reads through `reading()` — a `Store`'s, or the console's
read-only `History`'s — whose transaction is rolled back, so it can run next to the daemon
(SQLite in WAL mode: readers do not block the writer).
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol

from sqlmodel import Session, col, select

from gateway.events import EventKind, FeedbackState
from gateway.report.period import Period
from gateway.report.rows import (
    Enter,
    Feedback,
    LoggedOffer,
    PoolCode,
    ReportData,
    Stay,
    VisitRecord,
)
from gateway.store.tables import (
    CodeRow,
    FeedbackRow,
    ObservationRow,
    OfferRow,
    OfferState,
    VisitRow,
    ZoneEventRow,
)


class Readable(Protocol):
    """Where the rows are read: `Store` or the console's `History`."""

    def reading(self) -> AbstractContextManager[Session]:
        """A session in one transaction, rolled back at its end."""
        ...


def read_period(store: Readable, period: Period, *, points: bool = False) -> ReportData:
    """The rows of `period` (see `ReportData`); the sampled positions only when `points`."""
    with store.reading() as session:
        visits = _visits(session, period)
        offers = _offers(session, period)
        horizon = _horizon(period, visits, offers)
        return ReportData(
            period=period,
            visits=visits,
            enters=_enters(session, period.since, horizon),
            stays=_stays(session, period),
            offers=offers,
            feedback=_feedback(session, period),
            codes=_codes(session),
            points=_points(session, period) if points else (),
        )


def _in(column: Any, period: Period) -> Any:
    return (col(column) >= period.since) & (col(column) < period.until)


def _visits(session: Session, period: Period) -> tuple[VisitRecord, ...]:
    query = select(VisitRow).where(_in(VisitRow.started_at, period))
    rows = session.exec(query.order_by(col(VisitRow.started_at), col(VisitRow.id))).all()
    return tuple(VisitRecord(r.device, r.customer, r.started_at, r.ended_at) for r in rows)


def _offers(session: Session, period: Period) -> tuple[LoggedOffer, ...]:
    query = select(OfferRow).where(_in(OfferRow.created_at, period))
    rows = session.exec(query.order_by(col(OfferRow.created_at), col(OfferRow.id))).all()
    return tuple(
        LoggedOffer(
            r.id, r.rule, r.customer, r.created_at, r.expires_at, r.holdout, OfferState(r.state)
        )
        for r in rows
    )


def _horizon(period: Period, visits: Sequence[VisitRecord], offers: Sequence[LoggedOffer]) -> float:
    """Until when enter events matter: the end of the period, of its last visit, or of the
    last offer's life, whichever is latest."""
    ends = [v.ended_at for v in visits if v.ended_at is not None]
    return max([period.until, *ends, *(o.expires_at for o in offers)])


def _enters(session: Session, since: float, until: float) -> tuple[Enter, ...]:
    query = (
        select(ZoneEventRow.at, ZoneEventRow.zone, ZoneEventRow.device, ZoneEventRow.customer)
        .where(col(ZoneEventRow.kind) == EventKind.ENTER.value)
        .where(col(ZoneEventRow.at) >= since, col(ZoneEventRow.at) <= until)
        .order_by(col(ZoneEventRow.at), col(ZoneEventRow.id))
    )
    rows = session.exec(query).all()
    return tuple(Enter(at, zone, device, customer) for at, zone, device, customer in rows if zone)


def _stays(session: Session, period: Period) -> tuple[Stay, ...]:
    query = (
        select(ZoneEventRow.at, ZoneEventRow.zone, ZoneEventRow.device, ZoneEventRow.dwell_s)
        .where(col(ZoneEventRow.kind) == EventKind.EXIT.value)
        .where(_in(ZoneEventRow.at, period))
        .order_by(col(ZoneEventRow.at), col(ZoneEventRow.id))
    )
    rows = session.exec(query).all()
    return tuple(
        Stay(at, zone, device, dwell_s or 0.0) for at, zone, device, dwell_s in rows if zone
    )


def _feedback(session: Session, period: Period) -> tuple[Feedback, ...]:
    offers = select(OfferRow.id).where(_in(OfferRow.created_at, period))
    query = (
        select(FeedbackRow)
        .where(col(FeedbackRow.offer_id).in_(offers))
        .order_by(col(FeedbackRow.at), col(FeedbackRow.id))
    )
    rows = session.exec(query).all()
    return tuple(Feedback(r.offer_id, FeedbackState(r.state), r.at) for r in rows)


def _codes(session: Session) -> tuple[PoolCode, ...]:
    rows = session.exec(select(CodeRow.pool, CodeRow.assigned_at).order_by(col(CodeRow.pool)))
    return tuple(PoolCode(pool, at) for pool, at in rows.all())


def _points(session: Session, period: Period) -> tuple[tuple[float, float], ...]:
    query = select(ObservationRow.x, ObservationRow.y).where(_in(ObservationRow.at, period))
    return tuple((x, y) for x, y in session.exec(query).all())
