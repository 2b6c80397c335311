"""The uplink journal: what a store sends to the chain's centre, numbered (`uplink` table).

With `central.enabled`, the records the centre collects are written here in the same
transaction as the records themselves: zone events, closed visits, offer decisions, feedback
states and erasures (`rayon forget`).  `seq` numbers them per store; on PostgreSQL each writer
takes a transaction lock first, so that numbers are committed in the order they are drawn and
no reader ever sees seq 11 while seq 10 is still uncommitted (it would take 10 for erased).
The sender (gateway/central/sender.py) reads ranges, and trims what the centre acknowledged.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, delete, func, or_, select, text, update

from gateway.events import EventKind, Offer, ZoneEvent
from gateway.store.database import BulkInsert, Database, rowcount
from gateway.store.tables import OfferState, UplinkRow, json_text, table_of
from gateway.wire import jsonable

__all__ = [
    "JOURNAL_LOCK_KEY",
    "UplinkEntry",
    "UplinkJournal",
    "erase_entries",
    "event_entries",
    "feedback_entries",
    "journal",
    "offer_entries",
]

_UPLINK = table_of(UplinkRow)
_COLUMNS = ("kind", "at", "customer", "device", "body")
_insert = BulkInsert(_UPLINK, _COLUMNS)
JOURNAL_LOCK_KEY = 0x7261796F6E01  # serialises the journal's writers on PostgreSQL

Entry = tuple[str, float, str | None, str | None, str]  # a row in `_COLUMNS` order


@dataclass(frozen=True, slots=True)
class UplinkEntry:
    """One journal row as the sender reads it."""

    seq: int
    kind: str
    at: float
    customer: str | None
    device: str | None
    body: dict[str, Any]


def journal(connection: Connection, entries: Sequence[Entry]) -> None:
    """Append entries to the journal, in the caller's transaction."""
    if not entries:
        return
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": JOURNAL_LOCK_KEY})
    _insert(connection, entries)


def _entry(kind: str, at: float, customer: str | None, device: str | None, body: Any) -> Entry:
    return (kind, at, customer, device, json_text(body))


def event_entries(events: Iterable[ZoneEvent]) -> list[Entry]:
    """An `event` entry per zone event, and a `visit` entry per closed visit."""
    out = []
    for e in events:
        body = {
            "at": e.at,
            "kind": e.kind.value,
            "zone": e.zone,
            "device": e.device,
            "customer": e.customer,
            "dwell_s": e.dwell_s,
            "reason": jsonable(e.reason),
        }
        out.append(_entry("event", e.at, e.customer, e.device, body))
        if e.kind is EventKind.VISIT_END:
            started = e.at - (e.dwell_s or 0.0)
            visit = {"device": e.device, "customer": e.customer, "started_at": started}
            visit["ended_at"] = e.at
            out.append(_entry("visit", e.at, e.customer, e.device, visit))
    return out


_OFFER_FIELDS = ("id", "rule", "store", "zone", "customer", "created_at", "expires_at")
_OFFER_TEXT = ("title", "body", "code", "url")


def offer_entries(decided: Iterable[tuple[Offer, OfferState]]) -> list[Entry]:
    """An `offer` entry per offer decided, with the state it was stored in (never its
    delivery token: the centre has no use for it)."""
    out = []
    for offer, state in decided:
        body: dict[str, Any] = {k: getattr(offer, k) for k in (*_OFFER_FIELDS, *_OFFER_TEXT)}
        body |= {"purpose": offer.purpose.value, "holdout": offer.holdout, "state": state.value}
        out.append(_entry("offer", offer.created_at, offer.customer, None, body))
    return out


def feedback_entries(rows: Iterable[tuple[str, str, float, str | None]]) -> list[Entry]:
    """A `feedback` entry per feedback state logged: (offer id, state, at, customer)."""
    return [
        _entry("feedback", at, customer, None, {"offer": oid, "state": state, "at": at})
        for oid, state, at, customer in rows
    ]


def erase_entries(
    connection: Connection, customer: str, devices: Sequence[str], at: float
) -> list[Entry]:
    """Delete the customer's entries not yet sent (or not yet acknowledged), and return the
    `erase` entry that tells the centre to erase what it has."""
    connection.execute(delete(_UPLINK).where(_of(customer, devices)))
    body = {"customer": customer, "devices": list(devices)}
    return [_entry("erase", at, None, None, body)]


def _entries(connection: Connection, after: int, limit: int) -> list[UplinkEntry]:
    c = _UPLINK.c
    query = (
        select(c.seq, c.kind, c.at, c.customer, c.device, c.body)
        .where(c.seq > after)
        .order_by(c.seq)
        .limit(limit)
    )
    rows = connection.execute(query).all()
    return [UplinkEntry(int(s), k, float(a), cu, d, dict(b)) for s, k, a, cu, d, b in rows]


def _issued(connection: Connection) -> int:
    """The last journal number handed out (0 before the first)."""
    if connection.dialect.name == "postgresql":
        name = connection.execute(text("SELECT pg_get_serial_sequence('uplink', 'seq')")).scalar()
        found = connection.execute(
            text(f"SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM {name}")
        ).scalar()
    else:  # AUTOINCREMENT keeps it in sqlite_sequence
        found = connection.execute(
            text("SELECT seq FROM sqlite_sequence WHERE name = 'uplink'")
        ).scalar()
    return int(found or 0)


def _write_lock(connection: Connection) -> None:
    """Hold the journal's writers off for the rest of the transaction."""
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": JOURNAL_LOCK_KEY})
    else:  # the transaction's first statement, as gateway/store/migrations.py takes it
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def _set_issued(connection: Connection, value: int) -> None:
    """Make the journal's next number `value + 1`."""
    if connection.dialect.name == "postgresql":
        name = connection.execute(text("SELECT pg_get_serial_sequence('uplink', 'seq')")).scalar()
        connection.execute(text("SELECT setval(CAST(:n AS regclass), :v)"), {"n": name, "v": value})
        return
    found = connection.execute(
        text("UPDATE sqlite_sequence SET seq = :v WHERE name = 'uplink'"), {"v": value}
    )
    if not rowcount(found):
        connection.execute(
            text("INSERT INTO sqlite_sequence (name, seq) VALUES ('uplink', :v)"), {"v": value}
        )


def _of(customer: str, devices: Sequence[str]) -> Any:
    condition = _UPLINK.c.customer == customer
    return or_(condition, _UPLINK.c.device.in_(devices)) if devices else condition


class UplinkJournal(Database):
    """The sender's reads and trims of the journal (one transaction each)."""

    def uplink_after(self, after: int, limit: int) -> list[UplinkEntry]:
        """At most `limit` entries with seq > `after`, in order."""
        with self._session() as session:
            return _entries(session.connection(), after, limit)

    def uplink_range(self, after: int, limit: int) -> tuple[list[UplinkEntry], int]:
        """At most `limit` entries with seq > `after`, and the end of the range they prove:
        the last entry's seq, or — when there is none — the last number ever handed out,
        every number up to which is committed or gone (erased, expired).  So a journal whose
        tail was erased still closes its range, and the centre never waits for it.

        The last number is read before the entries: a writer committing in between shows
        up as an entry.  On PostgreSQL a sequence's value is visible before its transaction
        commits, so the read first waits for the journal's writers (their lock, shared)."""
        with self._session() as session:
            connection = session.connection()
            if connection.dialect.name == "postgresql":
                lock = "SELECT pg_advisory_xact_lock_shared(:k)"
                connection.execute(text(lock), {"k": JOURNAL_LOCK_KEY})
            issued = _issued(connection)
            entries = _entries(connection, after, limit)
            return entries, entries[-1].seq if entries else issued

    def uplink_rebase(self, mark: int) -> int:
        """The centre's mark is beyond every number this journal ever handed out: the store's
        database was replaced (a new SD card, a restored backup).  Its numbers would be taken
        for ones the centre has and be skipped, so the journal's rows are moved beyond the mark
        (their order kept) and so is its sequence; the rows moved (0: nothing to do).  One write
        transaction, under the writers' lock."""
        with self._session() as session:
            connection = session.connection()
            _write_lock(connection)
            issued = _issued(connection)
            if issued >= mark:
                return 0
            moved = connection.execute(
                update(_UPLINK).values(seq=_UPLINK.c.seq + mark).where(_UPLINK.c.seq <= issued)
            )
            _set_issued(connection, mark + issued)
            return rowcount(moved)

    def uplink_trim(self, upto: int) -> int:
        """Delete the entries the centre acknowledged (seq <= `upto`); how many."""
        with self._session() as session:
            return rowcount(
                session.connection().execute(delete(_UPLINK).where(_UPLINK.c.seq <= upto))
            )

    def uplink_expire(self, before: float) -> int:
        """Delete the entries older than `before` the centre never acknowledged (`central.keep`);
        how many.  The ranges sent later say these numbers are gone."""
        with self._session() as session:
            found = session.connection().execute(delete(_UPLINK).where(_UPLINK.c.at < before))
            return rowcount(found)

    def uplink_backlog(self) -> tuple[int, float | None]:
        """Entries in the journal and the time of the oldest (None when empty): what the centre
        has not acknowledged yet (`rayon doctor`)."""
        query = select(func.count(), func.min(_UPLINK.c.at)).select_from(_UPLINK)
        with self._session() as session:
            count, oldest = session.connection().execute(query).one()
        return int(count), None if oldest is None else float(oldest)

    def uplink_count(self) -> int:
        """Entries in the journal."""
        with self._session() as session:
            return int(
                session.connection().execute(select(func.count()).select_from(_UPLINK)).scalar_one()
            )
