"""The database (sqlmodel): customers, visits, zone events, the offer outbox and feedback.

`Store(url)` with a `sqlite:///…` or `postgresql+psycopg://…` url.  Offers are written
with `enqueue_offers` before any publish; the outbox publisher reads `due_offers`.
"""

from __future__ import annotations

from gateway.store.outbox import OfferRecord
from gateway.store.repo import FeedbackRecord, Store, Visit
from gateway.store.tables import OfferState

__all__ = ["FeedbackRecord", "OfferRecord", "OfferState", "Store", "Visit"]
