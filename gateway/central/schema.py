"""The central PostgreSQL's schema: what `rayon central` collects, and its versions.

As the store's (gateway/store/migrations.py): one row per version in `rayon_central_schema`,
every missing step applied in ONE transaction under an advisory lock, so two collectors
starting together migrate once and a failed step leaves the old schema whole.  Each step is
SQL of its own version, never today's models.  deploy/central/schema.sql is the same schema
for a database administrator who creates it by hand (a test keeps the two equal).

- `chain_records`: every record of every store, keyed by (store, seq);
- `chain_marks`: per store, the high-water mark (`(0, hwm]` is stored or known gone) and the
  backfill requests made;
- `chain_ranges`: ranges received beyond a store's mark, waiting for the gap before them.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from sqlalchemy import Connection, Engine, inspect, text

from gateway.errors import RuntimeFailure
from gateway.store.migrations import Migration, apply_all

__all__ = ["CENTRAL_MIGRATIONS", "CENTRAL_SCHEMA_V1", "upgrade_central"]

LOCK_KEY = 0x7261796F6E02  # serialises the upgrades of the central schema

CENTRAL_SCHEMA_V1 = """
CREATE TABLE chain_records (
    store       varchar(64)      NOT NULL,
    seq         bigint           NOT NULL,
    kind        varchar(16)      NOT NULL,
    at          double precision NOT NULL,
    customer    varchar(200),
    device      varchar(200),
    body        jsonb            NOT NULL,
    received_at double precision NOT NULL,
    PRIMARY KEY (store, seq)
);
CREATE INDEX ix_chain_records_at ON chain_records (at);
CREATE INDEX ix_chain_records_customer ON chain_records (store, customer);
CREATE INDEX ix_chain_records_device ON chain_records (store, device);
CREATE TABLE chain_marks (
    store      varchar(64)      PRIMARY KEY,
    hwm        bigint           NOT NULL,
    updated_at double precision NOT NULL,
    backfills  bigint           NOT NULL DEFAULT 0
);
CREATE TABLE chain_ranges (
    store varchar(64) NOT NULL,
    lo    bigint      NOT NULL,
    hi    bigint      NOT NULL,
    seen  double precision NOT NULL,
    PRIMARY KEY (store, lo)
);
"""


def _v1(conn: Connection) -> None:
    for statement in CENTRAL_SCHEMA_V1.split(";"):
        if statement.strip():
            conn.exec_driver_sql(statement)


CENTRAL_MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "records, marks and pending ranges of every store", _v1),
)
_VERSIONS = "rayon_central_schema"


def upgrade_central(engine: Engine, steps: Sequence[Migration] = CENTRAL_MIGRATIONS) -> list[int]:
    """Create or upgrade the central schema; the versions applied.  RuntimeFailure if the
    database is not PostgreSQL, is newer than this Rayon, or a step fails."""
    if engine.dialect.name != "postgresql":
        raise RuntimeFailure(
            f"rayon central writes to PostgreSQL, not {engine.dialect.name}: give a "
            "postgresql+psycopg://user@host/db url"
        )
    with engine.connect() as conn:
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": LOCK_KEY})
        if not inspect(conn).has_table(_VERSIONS):
            conn.exec_driver_sql(
                f"CREATE TABLE {_VERSIONS} (version integer PRIMARY KEY, "
                "summary varchar(200) NOT NULL, applied_at double precision NOT NULL)"
            )
        current = conn.execute(text(f"SELECT max(version) FROM {_VERSIONS}")).scalar() or 0
        head = steps[-1].version
        if current > head:
            raise RuntimeFailure(
                f"the central schema is version {current}, newer than this Rayon's ({head}): "
                "upgrade Rayon on every collector"
            )
        todo = [m for m in steps if m.version > current]
        apply_all(conn, todo, "the central schema to version")
        for m in todo:
            conn.execute(
                text(f"INSERT INTO {_VERSIONS} VALUES (:v, :s, :t)"),
                {"v": m.version, "s": m.summary, "t": time.time()},
            )
        conn.commit()
        return [m.version for m in todo]
