"""The database tables (sqlmodel) and the enums stored in them.

Times are epoch seconds (floats), like every value of the pipeline.  Lists and mappings
are JSON columns.  Enums are stored as their string values so that PostgreSQL needs no
`CREATE TYPE` and a new state is a code change, not a migration.

The tables live in their own SQLAlchemy registry, not sqlmodel's global one, so that
other tables of the process (or of tests) never end up in our `create_all`.
"""

from __future__ import annotations

import json
from dataclasses import fields
from enum import StrEnum
from types import MappingProxyType
from typing import Any, cast

from sqlalchemy import JSON, BigInteger, Column, Index, Integer, MetaData, Table
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

from gateway.events import EventKind, Offer, Purpose, Reason, ZoneEvent
from gateway.identity.model import Consent, Customer
from gateway.wire import jsonable


class OfferState(StrEnum):
    """Where an offer is (docs/data.md, "The life of an offer"): `pending` (decided) until
    published, then `sent` (the broker acknowledged it) or `expired` (its time ran out first);
    `delivered` once the app confirmed it (any feedback on it).  A `sent` offer no app
    confirmed is published again, under the same id, after every new connection to the
    broker until its `expires_at` (`OutboxPublisher.resend`).

    `holdout` offers belong to the control group (recorded, never sent); `cancelled` ones
    were withdrawn before publication; `dropped` commercial offers found the outbox full
    (recorded, never queued: see `Store.enqueue_offers`).
    """

    PENDING = "pending"
    SENT = "sent"
    DELIVERED = "delivered"
    EXPIRED = "expired"
    HOLDOUT = "holdout"
    CANCELLED = "cancelled"
    DROPPED = "dropped"


NOT_DECIDED = frozenset({OfferState.CANCELLED, OfferState.DROPPED})
"""States of offers the caps never count (withdrawn, or never queued)."""


class RayonTable(SQLModel, registry=registry()):
    """Base of Rayon's tables: a private registry, hence a private `MetaData`."""


METADATA: MetaData = RayonTable.metadata


class RuntimeRow(RayonTable, table=True):
    """Live state that must survive a restart: zone and visit timers, the rules' visit
    contexts (docs/design.md §2: dwell timers and visit state are persisted)."""

    __tablename__ = "runtime_state"

    key: str = Field(primary_key=True, max_length=64)
    value: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    updated_at: float = 0.0


class CodeRow(RayonTable, table=True):
    """An imported code of a code pool; `customer` once handed out (NULL again after the
    customer's erasure, `assigned_at` kept: a code handed out is never handed out again)."""

    __tablename__ = "codes"

    pool: str = Field(primary_key=True, max_length=64)
    code: str = Field(primary_key=True, max_length=128)
    customer: str | None = Field(default=None, index=True, max_length=128)
    assigned_at: float | None = None


class ObservationRow(RayonTable, table=True):
    """Where a consented customer's device was, sampled (at most one row per device per
    `OBSERVATION_EVERY_S`): the floor heat map of `rayon report`.  Kept
    `retention.observations` (24 h by default), erased with the customer."""

    __tablename__ = "observations"

    id: int | None = Field(default=None, primary_key=True)
    at: float = Field(index=True)
    device: str = Field(index=True, max_length=200)
    customer: str | None = Field(default=None, index=True, max_length=128)
    x: float
    y: float
    accuracy_m: float


class CustomerRow(RayonTable, table=True):
    __tablename__ = "customers"

    id: str = Field(primary_key=True, max_length=128)
    token: str = Field(index=True, max_length=128)
    devices: list[str] = Field(default_factory=list, sa_type=JSON)
    consent_instore_location: bool = False
    consent_marketing_push: bool = False
    first_name: str | None = None
    segments: list[str] = Field(default_factory=list, sa_type=JSON)
    interests: list[str] = Field(default_factory=list, sa_type=JSON)
    tier: str | None = None
    visits: int = 0
    last_visit: float | None = None
    attributes: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)


class VisitRow(RayonTable, table=True):
    __tablename__ = "visits"
    __table_args__ = (Index("ix_visits_device_open", "device", "ended_at"),)

    id: int | None = Field(default=None, primary_key=True)
    device: str = Field(max_length=200)
    customer: str | None = Field(default=None, index=True, max_length=128)
    started_at: float = Field(index=True)
    ended_at: float | None = None


class ZoneEventRow(RayonTable, table=True):
    __tablename__ = "zone_events"

    id: int | None = Field(default=None, primary_key=True)
    at: float = Field(index=True)
    kind: str = Field(max_length=16)
    zone: str | None = Field(default=None, max_length=128)
    device: str = Field(index=True, max_length=200)
    customer: str | None = Field(default=None, index=True, max_length=128)
    dwell_s: float | None = None
    reason: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)


class OfferRow(RayonTable, table=True):
    """The outbox and the offer log in one table: `state` says which."""

    __tablename__ = "offers"
    __table_args__ = (
        Index("ix_offers_state_created_at", "state", "created_at"),
        # the unconfirmed offers still live, read again after each new broker connection
        Index("ix_offers_state_expires_at", "state", "expires_at"),
    )

    id: str = Field(primary_key=True, max_length=128)
    rule: str = Field(index=True, max_length=128)
    store: str = Field(max_length=128)
    zone: str | None = Field(default=None, max_length=128)
    customer: str = Field(index=True, max_length=128)
    token: str = Field(max_length=128)
    created_at: float = Field(index=True)
    expires_at: float
    title: str
    body: str
    code: str | None = None
    url: str | None = None
    purpose: str = Field(max_length=16)
    holdout: bool = False
    state: str = Field(max_length=16)
    sent_at: float | None = None
    attempts: int = 0
    last_error: str | None = None


class FeedbackRow(RayonTable, table=True):
    __tablename__ = "feedback"

    id: int | None = Field(default=None, primary_key=True)
    offer_id: str = Field(index=True, max_length=128)
    state: str = Field(max_length=16)
    at: float = Field(index=True)


# SQLite's rowid only becomes AUTOINCREMENT on a column typed exactly INTEGER.
SEQ_TYPE = BigInteger().with_variant(Integer(), "sqlite")


class UplinkRow(RayonTable, table=True):
    """The journal sent to the chain's centre (`central.enabled`, docs/mqtt.md, "The chain"):
    one row per record, numbered by `seq`, strictly increasing and never reused (SQLite
    AUTOINCREMENT: a trimmed journal does not hand out its last numbers again).  Deleted once
    the centre's mark covers it (`gateway/central/sender.py`)."""

    __tablename__ = "uplink"
    __table_args__ = {"sqlite_autoincrement": True}

    seq: int | None = Field(
        default=None, sa_column=Column(SEQ_TYPE, primary_key=True, autoincrement=True)
    )
    kind: str = Field(max_length=16)
    at: float = Field(index=True)
    customer: str | None = Field(default=None, index=True, max_length=128)
    device: str | None = Field(default=None, index=True, max_length=200)
    body: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)


def table_of(row_type: type[RayonTable]) -> Table:
    """The Core table of a row type: bulk writes go through it (one executemany), not
    through the ORM, whose per-row bookkeeping costs more than the write itself."""
    return METADATA.tables[str(row_type.__tablename__)]


# --- conversions between rows and the pipeline's values ------------------------------


def customer_to_row(customer: Customer) -> CustomerRow:
    return CustomerRow(
        id=customer.id,
        token=customer.token,
        devices=list(customer.devices),
        consent_instore_location=customer.consent.instore_location,
        consent_marketing_push=customer.consent.marketing_push,
        first_name=customer.first_name,
        segments=sorted(customer.segments),
        interests=sorted(customer.interests),
        tier=customer.tier,
        visits=customer.visits,
        last_visit=customer.last_visit,
        attributes=jsonable(customer.attributes),
    )


def row_to_customer(row: CustomerRow) -> Customer:
    return Customer(
        id=row.id,
        token=row.token,
        devices=tuple(row.devices),
        consent=Consent(row.consent_instore_location, row.consent_marketing_push),
        first_name=row.first_name,
        segments=frozenset(row.segments),
        interests=frozenset(row.interests),
        tier=row.tier,
        visits=row.visits,
        last_visit=row.last_visit,
        attributes=MappingProxyType(dict(row.attributes)),
    )


def json_text(value: Any) -> str:
    """A JSON column's value as SQLAlchemy's `JSON` type writes it (`json.dumps`), for rows
    written past its bind processing (`BulkInsert`)."""
    return json.dumps(value)


EVENT_COLUMNS = ("at", "kind", "zone", "device", "customer", "dwell_s", "reason")


def event_row(event: ZoneEvent) -> tuple[Any, ...]:
    """A zone_events row for `BulkInsert`, in `EVENT_COLUMNS` order: `event_record`'s values,
    the reason as JSON text."""
    reason = json_text(jsonable(event.reason))
    kind = event.kind.value
    return (event.at, kind, event.zone, event.device, event.customer, event.dwell_s, reason)


def row_to_event(row: ZoneEventRow) -> ZoneEvent:
    return ZoneEvent(
        at=row.at,
        kind=EventKind(row.kind),
        zone=row.zone,
        device=row.device,
        customer=row.customer,
        dwell_s=row.dwell_s,
        reason=cast(Reason, dict(row.reason)),  # as `event_row` wrote it
    )


def offer_row(
    offer: Offer, state: OfferState | None = None, error: str | None = None
) -> tuple[Any, ...]:
    """A new outbox row for `BulkInsert`, in `OFFER_COLUMNS` order: `pending` unless told
    (`holdout` offers never are), no attempt yet."""
    default = OfferState.HOLDOUT if offer.holdout else OfferState.PENDING
    values = [getattr(offer, name) for name in _OFFER_FIELDS]
    values[_PURPOSE] = offer.purpose.value
    return (*values, (state or default).value, 0, error)


def row_to_offer(row: OfferRow) -> Offer:
    values = {name: getattr(row, name) for name in _OFFER_FIELDS}
    values["purpose"] = Purpose(row.purpose)
    return Offer(**values)


_OFFER_FIELDS = tuple(f.name for f in fields(Offer))
_PURPOSE = _OFFER_FIELDS.index("purpose")
OFFER_COLUMNS = (*_OFFER_FIELDS, "state", "attempts", "last_error")
