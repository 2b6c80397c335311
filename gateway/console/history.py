"""`History`: the console's read-only door to the gateway's database.

The console never writes, and the database itself enforces it: a SQLite file is opened
read-only (a `file:…?mode=ro` URI: SQLite refuses every write), a PostgreSQL session runs
with `default_transaction_read_only=on` (PostgreSQL refuses every write).  The schema is never
created nor upgraded here (that is `rayon run`'s job, `gateway.store.migrations`): a database
that does not exist yet, or whose schema is older than this code, is refused with a hint.

Every query is a plain SELECT on `gateway.store.tables`' tables, in a transaction that is
rolled back at its end (`reading`).

SQLite in WAL mode lets a read-only reader in while the daemon writes; the console's user needs
read access to the file and to its `-wal` and `-shm` files (the daemon keeps them while it
runs), or write access to the folder when the daemon is stopped (SQLite then makes them).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from urllib.parse import quote

from sqlalchemy import Engine, func, make_url, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool
from sqlmodel import Session, create_engine

from gateway.errors import RuntimeFailure
from gateway.store.database import BUSY_TIMEOUT_MS, missing_sqlite_file, reading_session
from gateway.store.migrations import HEAD, schema_version
from gateway.store.repo import VISIT_KEY
from gateway.store.tables import OfferRow, RuntimeRow, table_of

_OFFERS = table_of(OfferRow)
_RUNTIME = table_of(RuntimeRow)
READ_ONLY_OPTION = "-c default_transaction_read_only=on"
START_FIRST = "start `rayon run` with this config first: it creates and upgrades the database"


@dataclass(frozen=True, slots=True)
class RuleActivity:
    """A rule's offers: when it last fired (any offer, ever; None: never), and its offers of
    the period asked for, per state (`gateway.store.tables.OfferState` values)."""

    rule: str
    last_fired_at: float | None
    offers: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))


class History:
    """The database of `database_url`, read-only; `close()` releases its connections."""

    def __init__(self, database_url: str) -> None:
        self.url = database_url
        self._engine = _read_only_engine(database_url)
        try:
            _check_schema(self._engine, database_url)
        except BaseException:
            self._engine.dispose()
            raise

    @property
    def engine(self) -> Engine:
        """The read-only engine (for queries of other console modules)."""
        return self._engine

    def close(self) -> None:
        """Release every connection."""
        self._engine.dispose()

    def reading(self) -> AbstractContextManager[Session]:
        """A session in one transaction, rolled back at the end (as `Store.reading`, so
        `gateway.report.query.read_period` reads through either)."""
        return reading_session(self._engine, self.url)

    def rule_activity(self, since: float, until: float) -> dict[str, RuleActivity]:
        """Per rule that ever made an offer: when it last did (holdout offers included: the
        rule fired), and its offers created in [since, until) per state."""
        offers = _OFFERS.c
        last = select(offers.rule, func.max(offers.created_at)).group_by(offers.rule)
        counts = (
            select(offers.rule, offers.state, func.count())
            .where(offers.created_at >= since, offers.created_at < until)
            .group_by(offers.rule, offers.state)
        )
        with self.reading() as session:
            fired = {rule: at for rule, at in session.execute(last)}
            per_state: dict[str, dict[str, int]] = {}
            for rule, state, n in session.execute(counts):
                per_state.setdefault(rule, {})[state] = int(n)
        return {
            rule: RuleActivity(rule, at, MappingProxyType(per_state.get(rule, {})))
            for rule, at in sorted(fired.items())
        }

    def visit_key(self) -> bytes | None:
        """The store's key of visit pseudonyms (`Store.visit_key`), None before the gateway
        ever created it."""
        query = select(_RUNTIME.c.value).where(_RUNTIME.c.key == VISIT_KEY)
        with self.reading() as session:
            value = session.execute(query).scalar()
        if isinstance(value, dict) and isinstance(value.get("key"), str):
            return bytes.fromhex(value["key"])
        return None


def _read_only_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        return _sqlite_engine(url)
    parts = make_url(url)
    given = parts.query.get("options")
    given = (given,) if isinstance(given, str) else tuple(given or ())
    options = " ".join((*given, READ_ONLY_OPTION))
    try:
        return create_engine(parts.update_query_dict({"options": options}), pool_pre_ping=True)
    except (SQLAlchemyError, ImportError) as exc:
        raise RuntimeFailure(f"cannot open the database {_where(url)}: {exc}") from exc


def _sqlite_engine(url: str) -> Engine:
    """A SQLite file opened through a `file:PATH?mode=ro` URI: SQLite refuses every write
    on it, and never creates the file."""
    if (missing := missing_sqlite_file(url)) is not None:
        raise RuntimeFailure(f"no database at {missing} (database.url): {START_FIRST}")
    database = make_url(url).database
    if not database or database == ":memory:":
        raise RuntimeFailure(f"the console reads a database file, not {url}: set database.url")
    uri = f"file:{quote(str(Path(database).resolve()))}?mode=ro"

    def connect() -> sqlite3.Connection:
        return sqlite3.connect(
            uri, uri=True, timeout=BUSY_TIMEOUT_MS / 1000, check_same_thread=False
        )

    # NullPool: no connection stays open between two reads of a mostly idle console
    return create_engine(f"sqlite:///{database}", creator=connect, poolclass=NullPool)


def _check_schema(engine: Engine, url: str) -> None:
    try:
        version = schema_version(engine)
    except SQLAlchemyError as exc:
        raise RuntimeFailure(
            f"cannot read the database {_where(url)}: {exc}; check database.url and that "
            "the console's user may read it"
        ) from exc
    if version is None:
        raise RuntimeFailure(f"the database {_where(url)} has no Rayon tables: {START_FIRST}")
    if version < HEAD:
        raise RuntimeFailure(
            f"the database {_where(url)} has schema version {version}, older than this "
            f"Rayon's ({HEAD}): {START_FIRST}"
        )
    if version > HEAD:
        raise RuntimeFailure(
            f"the database {_where(url)} has schema version {version}, newer than this "
            f"Rayon's ({HEAD}): upgrade the console's Rayon to the gateway's version"
        )


def _where(url: str) -> str:
    """The url without its password, for messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # an unparsable url has no password field to hide either
        return url.split("@")[-1]


__all__ = ["History", "RuleActivity"]
