"""Retention (config `retention`): what is older than its class's period is deleted.

Observations (sampled positions) are kept hours, zone events and visits days, offers and
their feedback years.  A code handed out with an offer that is deleted loses its link to
the customer but stays spent.  Deletes go in bounded batches (`purge_step`), each in its
own transaction, so that the daemon's database thread interleaves its own writes between
them instead of waiting for a million-row delete.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, fields

from sqlmodel import Session, col, delete, select, update

from gateway.config.model import RetentionConfig
from gateway.errors import RuntimeFailure
from gateway.store.database import rowcount
from gateway.store.repo import Store
from gateway.store.tables import (
    CodeRow,
    FeedbackRow,
    ObservationRow,
    OfferRow,
    OfferState,
    VisitRow,
    ZoneEventRow,
)

log = logging.getLogger(__name__)

BATCH = 5000  # rows per table per step
RETENTION_EVERY_S = 3600.0


@dataclass(frozen=True, slots=True)
class Cutoffs:
    """Everything older than these times (epoch seconds) goes."""

    observations: float
    events: float
    offers: float

    @classmethod
    def at(cls, retention: RetentionConfig, now: float) -> Cutoffs:
        return cls(now - retention.observations, now - retention.events, now - retention.offers)


@dataclass(slots=True)
class Purged:
    """Rows deleted (codes: unlinked from their customer), per table."""

    observations: int = 0
    zone_events: int = 0
    visits: int = 0
    offers: int = 0
    feedback: int = 0
    codes_unlinked: int = 0

    def add(self, other: Purged) -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    @property
    def total(self) -> int:
        return sum(getattr(self, f.name) for f in fields(self))

    def full(self, batch: int) -> bool:
        """Whether a step hit its batch size somewhere: more may be left."""
        return any(getattr(self, f.name) >= batch for f in fields(self))

    def __str__(self) -> str:
        parts = [f"{getattr(self, f.name)} {f.name}" for f in fields(self)]
        return ", ".join(p.replace("_", " ") for p in parts if not p.startswith("0 "))


def purge_step(store: Store, cutoffs: Cutoffs, batch: int = BATCH) -> Purged:
    """Delete at most `batch` rows of each kind that retention no longer allows."""
    with store._session() as session:
        return Purged(
            observations=_delete_oldest(
                session, ObservationRow, ObservationRow.at, cutoffs.observations, batch
            ),
            zone_events=_delete_oldest(
                session, ZoneEventRow, ZoneEventRow.at, cutoffs.events, batch
            ),
            visits=_delete_visits(session, cutoffs.events, batch),
            **_delete_offers(session, cutoffs.offers, batch),
        )


def purge(store: Store, cutoffs: Cutoffs, batch: int = BATCH) -> Purged:
    """Apply retention completely (step after step until nothing is left)."""
    total = Purged()
    while True:
        step = purge_step(store, cutoffs, batch)
        total.add(step)
        if not step.full(batch):
            return total


def _delete_oldest(
    session: Session,
    table: type[ObservationRow] | type[ZoneEventRow],
    at: float,
    cutoff: float,
    batch: int,
) -> int:
    oldest = select(table.id).where(col(at) < cutoff).limit(batch)
    return rowcount(session.execute(delete(table).where(col(table.id).in_(oldest))))


def _delete_visits(session: Session, cutoff: float, batch: int) -> int:
    """Visits that ended before the cutoff, and open ones that started before it (a visit
    left open that long is a remnant, not a visit going on)."""
    ended = col(VisitRow.ended_at)
    old = select(VisitRow.id).where(
        (ended < cutoff) | (ended.is_(None) & (col(VisitRow.started_at) < cutoff))
    )
    statement = delete(VisitRow).where(col(VisitRow.id).in_(old.limit(batch)))
    return rowcount(session.execute(statement))


def _delete_offers(session: Session, cutoff: float, batch: int) -> dict[str, int]:
    """Offers created before the cutoff (never one still pending) with their feedback."""
    ids = session.exec(
        select(OfferRow.id)
        .where(col(OfferRow.created_at) < cutoff, col(OfferRow.state) != OfferState.PENDING)
        .limit(batch)
    ).all()
    feedback = offers = 0
    if ids:
        feedback = rowcount(
            session.execute(delete(FeedbackRow).where(col(FeedbackRow.offer_id).in_(ids)))
        )
        offers = rowcount(session.execute(delete(OfferRow).where(col(OfferRow.id).in_(ids))))
    unlink = (
        update(CodeRow)
        .where(col(CodeRow.assigned_at) < cutoff, col(CodeRow.customer).is_not(None))
        .values(customer=None)
    )
    codes = rowcount(session.execute(unlink))
    return {"offers": offers, "feedback": feedback, "codes_unlinked": codes}


async def run_retention(
    store: Store,
    retention: Callable[[], RetentionConfig],
    now: Callable[[], float],
    on_purged: Callable[[Purged], None],
    every_s: float = RETENTION_EVERY_S,
) -> None:
    """The daemon's retention job: at start, then every `every_s`, apply the retention in
    force (`retention()`: a reload may change it) as of `now()`.  A failure is logged and
    retried next time; it never stops the gateway."""
    while True:
        try:
            cutoffs = Cutoffs.at(retention(), now())
            total = Purged()
            while True:
                step = await store.call(purge_step, store, cutoffs)
                total.add(step)
                if not step.full(BATCH):
                    break
            if total.total:
                log.info("retention: deleted %s", total)
            on_purged(total)
        except RuntimeFailure as exc:
            log.error("retention job failed (retried in %.0f s): %s", every_s, exc)
        await asyncio.sleep(every_s)
