"""What the report reads from the database, as plain values (`query.py` fills them, `kpis.py`
computes on them): the KPI code never sees a session, so it is tested on hand-made rows."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.events import FeedbackState
from gateway.report.period import Period
from gateway.store.tables import OfferState


@dataclass(frozen=True, slots=True)
class VisitRecord:
    """A visit of a tracked device; `ended_at` None while it goes on."""

    device: str
    customer: str | None
    started_at: float
    ended_at: float | None = None


@dataclass(frozen=True, slots=True)
class Enter:
    """An `enter` zone event: the device came into `zone` at `at`."""

    at: float
    zone: str
    device: str
    customer: str | None = None


@dataclass(frozen=True, slots=True)
class Stay:
    """An `exit` zone event: a finished stay of `dwell_s` seconds in `zone`, ended at `at`."""

    at: float
    zone: str
    device: str
    dwell_s: float


@dataclass(frozen=True, slots=True)
class LoggedOffer:
    """An offer of the log: its rule, customer, life span and where it is in the outbox."""

    id: str
    rule: str
    customer: str
    created_at: float
    expires_at: float
    holdout: bool
    state: OfferState


@dataclass(frozen=True, slots=True)
class Feedback:
    """One feedback message of the app on an offer."""

    offer_id: str
    state: FeedbackState
    at: float


@dataclass(frozen=True, slots=True)
class PoolCode:
    """A code of a code pool, with when it was handed out (None: still free)."""

    pool: str
    assigned_at: float | None = None


@dataclass(frozen=True, slots=True)
class ReportData:
    """The rows of one period.

    `visits` started in the period; `enters` are the enter events from the period's start
    until every visit and offer of it is over (the funnel follows a visit to its end, the
    conversion an offer to its expiry); `stays` are the exits in the period; `offers` were
    created in it, `feedback` is every message about them (whenever it came); `codes` are every
    code of every pool; `points` the sampled positions (x, y) in the period, for the heat map.
    """

    period: Period
    visits: tuple[VisitRecord, ...] = ()
    enters: tuple[Enter, ...] = ()
    stays: tuple[Stay, ...] = ()
    offers: tuple[LoggedOffer, ...] = ()
    feedback: tuple[Feedback, ...] = ()
    codes: tuple[PoolCode, ...] = ()
    points: tuple[tuple[float, float], ...] = ()
