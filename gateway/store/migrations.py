"""Schema versions: a new database is created at the newest, an older one is upgraded in
place and keeps its data.

The version lives in the `rayon_schema` table, one row per migration applied.  A database
made before migrations existed (Rayon 0.1) has Rayon's tables but no `rayon_schema`: it is
version 1.  `upgrade` runs, in ONE transaction that holds the database's write lock (SQLite
`BEGIN IMMEDIATE`, a PostgreSQL advisory lock), the version check and every missing step,
so a crash leaves the old schema whole and two processes starting together migrate once.
Before upgrading a SQLite file it writes a copy beside it (`rayon.db.v1.bak`).

A migration describes its tables as they were at that version (its own `MetaData`), never
through today's models, so that replaying it on an old database stays right after the
models move on.  `tests/test_migrations.py` checks that an upgraded 0.1 database has the
same schema as a new one.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable, Sequence
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import (
    JSON,
    Column,
    Connection,
    Engine,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    inspect,
    select,
    text,
)
from sqlalchemy.engine import make_url

from gateway.errors import RuntimeFailure
from gateway.store.tables import METADATA, SEQ_TYPE

log = logging.getLogger(__name__)

SCHEMA = Table(
    "rayon_schema",
    MetaData(),
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("summary", String(200), nullable=False),
    Column("applied_at", Float, nullable=False),
)
"""One row per schema version the database went through."""

PRE_MIGRATIONS_TABLE = "offers"  # present in every Rayon 0.1 database
PG_LOCK_KEY = 0x7261796F6E  # "rayon": the advisory lock that serialises upgrades


@dataclass(frozen=True, slots=True)
class Migration:
    """Brings a database from `version - 1` to `version`."""

    version: int
    summary: str
    apply: Callable[[Connection], None]


def _v2_observations_and_retention_indexes(conn: Connection) -> None:
    md = MetaData()
    observations = Table(
        "observations",
        md,
        Column("id", Integer, primary_key=True),
        Column("at", Float, nullable=False),
        Column("device", String(200), nullable=False),
        Column("customer", String(128)),
        Column("x", Float, nullable=False),
        Column("y", Float, nullable=False),
        Column("accuracy_m", Float, nullable=False),
    )
    observations.create(conn)
    for column in ("at", "device", "customer"):
        Index(f"ix_observations_{column}", observations.c[column]).create(conn)
    # The retention job deletes by age: each table it trims needs an index on its time.
    for table, column in (("visits", "started_at"), ("offers", "created_at"), ("feedback", "at")):
        conn.execute(text(f"CREATE INDEX ix_{table}_{column} ON {table} ({column})"))


def _v3_delivered_offers(conn: Connection) -> None:
    # An offer is done when its app confirms it, not when the broker acknowledged it: the
    # sent offers some feedback already confirmed are `delivered`; the others stay `sent`,
    # and the gateway publishes those still live again after its next broker connection.
    conn.execute(
        text(
            "UPDATE offers SET state = 'delivered' WHERE state = 'sent' "
            "AND id IN (SELECT offer_id FROM feedback)"
        )
    )
    conn.execute(text("CREATE INDEX ix_offers_state_expires_at ON offers (state, expires_at)"))


def _v4_uplink_journal(conn: Connection) -> None:
    # The journal of the chain's store-and-forward: filled only with `central.enabled`.
    md = MetaData()
    uplink = Table(
        "uplink",
        md,
        Column("seq", SEQ_TYPE, primary_key=True, autoincrement=True),
        Column("kind", String(16), nullable=False),
        Column("at", Float, nullable=False),
        Column("customer", String(128)),
        Column("device", String(200)),
        Column("body", JSON, nullable=False),
        sqlite_autoincrement=True,
    )
    uplink.create(conn)
    for column in ("at", "customer", "device"):
        Index(f"ix_uplink_{column}", uplink.c[column]).create(conn)


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "Rayon 0.1: customers, visits, events, offers, feedback, codes", lambda c: None),
    Migration(
        2,
        "observations (sampled positions) and time indexes for the retention job",
        _v2_observations_and_retention_indexes,
    ),
    Migration(
        3,
        "offers confirmed by their app are `delivered`; an index to find the unconfirmed",
        _v3_delivered_offers,
    ),
    Migration(
        4,
        "uplink: the numbered journal a store sends to the chain's centre",
        _v4_uplink_journal,
    ),
)
HEAD = MIGRATIONS[-1].version


def upgrade(engine: Engine, migrations: Sequence[Migration] = MIGRATIONS) -> list[int]:
    """Create or upgrade the schema of `engine`'s database; the versions applied.

    RuntimeFailure if the database is newer than this Rayon or a step fails (then nothing
    of the upgrade is kept).
    """
    head = migrations[-1].version
    backed_up = False
    while True:
        with engine.connect() as conn:
            _lock(conn)
            current = _version(conn)
            if current is None:
                METADATA.create_all(conn)
                SCHEMA.create(conn)
                _stamp(conn, migrations)
                conn.commit()
                return [m.version for m in migrations]
            if current > head:
                raise RuntimeFailure(
                    f"the database's schema is version {current}, newer than this Rayon's "
                    f"({head}): upgrade Rayon, or point `database.url` at another database"
                )
            todo = [m for m in migrations if m.version > current]
            if not todo:
                return []
            if not backed_up and engine.dialect.name == "sqlite":
                conn.rollback()  # the copy needs a consistent file: no lock held meanwhile
                backed_up = True
                _backup(engine, current)
                continue  # look again: another process may have upgraded meanwhile
            if not _has_table(conn, SCHEMA.name):  # a 0.1 database: record what it was
                SCHEMA.create(conn)
                _stamp(conn, [m for m in migrations if m.version <= current])
            apply_all(conn, todo, "the database to schema version")
            _stamp(conn, todo)
            conn.commit()
            log.info(
                "database schema upgraded from version %d to %d (%s)",
                current,
                head,
                "; ".join(m.summary for m in todo),
            )
            return [m.version for m in todo]


def apply_all(conn: Connection, todo: Sequence[Migration], what: str) -> None:
    """Apply `todo` in order in `conn`'s transaction; at the first failure roll it all back and
    raise RuntimeFailure "upgrading <what> <version> (<summary>) failed, nothing was changed"
    (the store's schema here, the chain's central schema in gateway.central.schema)."""
    for m in todo:
        try:
            m.apply(conn)
        except Exception as exc:
            conn.rollback()
            raise RuntimeFailure(
                f"upgrading {what} {m.version} ({m.summary}) failed, nothing was changed: {exc}"
            ) from exc


def schema_version(engine: Engine) -> int | None:
    """The database's schema version (1 for a 0.1 database), None when it has no tables."""
    with engine.connect() as conn:
        return _version(conn)


def _lock(conn: Connection) -> None:
    """Take the database's write lock for the rest of the transaction."""
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql("BEGIN IMMEDIATE")
    elif conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": PG_LOCK_KEY})


def _has_table(conn: Connection, name: str) -> bool:
    return inspect(conn).has_table(name)


def _version(conn: Connection) -> int | None:
    if _has_table(conn, SCHEMA.name):
        found = conn.execute(select(SCHEMA.c.version).order_by(SCHEMA.c.version.desc()))
        latest = found.scalar()
        return int(latest) if latest is not None else 1
    return 1 if _has_table(conn, PRE_MIGRATIONS_TABLE) else None


def _stamp(conn: Connection, done: Sequence[Migration]) -> None:
    now = time.time()
    conn.execute(
        SCHEMA.insert(),
        [{"version": m.version, "summary": m.summary, "applied_at": now} for m in done],
    )


def _backup(engine: Engine, version: int) -> Path | None:
    """Copy a SQLite database file before upgrading it (the backup API: a consistent copy
    even if a reader has it open).  None for an in-memory database."""
    database = make_url(str(engine.url)).database
    if not database or database == ":memory:":
        return None
    source = Path(database)
    target = source.with_name(f"{source.name}.v{version}.bak")
    # closing(): a sqlite3 connection's own `with` ends its transaction, it does not close it
    with closing(sqlite3.connect(source)) as src, closing(sqlite3.connect(target)) as dst:
        src.backup(dst)
    log.info("copied the database to %s before upgrading its schema", target)
    return target
