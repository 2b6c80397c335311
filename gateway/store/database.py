"""`Database`: the engine, sessions and inserts that every part of `Store` builds on.

SQLite runs in WAL mode with `synchronous=NORMAL` and a busy timeout, so a reader (a
report) never blocks the writer (the daemon).  PostgreSQL works the same through a
`postgresql+psycopg://` url.
"""

from __future__ import annotations

import asyncio
import functools
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any, ParamSpec, TypeVar, cast

from sqlalchemy import (
    Connection,
    CursorResult,
    Dialect,
    Engine,
    Insert,
    Result,
    Table,
    bindparam,
    event,
    make_url,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import StaticPool
from sqlmodel import Session, create_engine

from gateway.errors import RuntimeFailure
from gateway.store.migrations import upgrade

P = ParamSpec("P")
T = TypeVar("T")

BUSY_TIMEOUT_MS = 5000
CHUNK = 500  # rows per statement in a batch write


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        _switch_to_wal(cursor)
        cursor.execute("PRAGMA synchronous=NORMAL")
    finally:
        cursor.close()


def _switch_to_wal(cursor: sqlite3.Cursor) -> None:
    """`PRAGMA journal_mode=WAL`, retried while another connection holds the lock.

    Switching a file (a new one, or one in rollback-journal mode) to WAL writes its header:
    the connection first reads the header, then needs the write lock.  When another
    connection is doing the same at that moment, SQLite answers SQLITE_BUSY at once, without
    waiting the busy timeout (waiting while holding a read lock could deadlock), so processes
    that open one new database together (the daemon and `rayon report`, or four threads in
    tests/test_migrations.py) failed now and then with "database is locked".  Once the file
    is in WAL mode (it stays so) the statement changes nothing and takes no write lock.
    """
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL").fetchall()
            return
        except sqlite3.OperationalError as exc:
            busy = exc.sqlite_errorcode & 0xFF == sqlite3.SQLITE_BUSY
            if not busy or time.monotonic() >= deadline:
                raise
        time.sleep(0.002)


def _make_engine(url: str) -> Engine:
    if not url.startswith("sqlite"):
        return create_engine(url, pool_pre_ping=True)
    in_memory = url in ("sqlite://", "sqlite:///:memory:")
    engine = create_engine(
        url,
        connect_args={"check_same_thread": False, "timeout": BUSY_TIMEOUT_MS / 1000},
        poolclass=StaticPool if in_memory else None,
    )
    event.listen(engine, "connect", _sqlite_pragmas)
    return engine


@contextmanager
def reading_session(engine: Engine, url: str) -> Iterator[Session]:
    """One transaction on `engine` (whose URL is `url`, named in errors), rolled back at the
    end: what is read through it is never written (`Database.reading`, the console's
    `History.reading`)."""
    try:
        with Session(engine, expire_on_commit=False) as session:
            yield session
            session.rollback()
    except SQLAlchemyError as exc:
        raise RuntimeFailure(f"database error on {_where(url)}: {exc}") from exc


def _where(url: str) -> str:
    """The url without its password, for messages."""
    head, sep, tail = url.rpartition("@")
    if not sep or ":" not in head.split("//", 1)[-1]:
        return url
    scheme_user = head.rsplit(":", 1)[0]
    return f"{scheme_user}:***@{tail}"


def missing_sqlite_file(url: str) -> str | None:
    """The file of a SQLite url when it does not exist (a reader should say so rather than
    create an empty database), else None."""
    if not url.startswith("sqlite"):
        return None
    db = make_url(url).database
    return db if db and db != ":memory:" and not Path(db).is_file() else None


def rowcount(result: Result[Any]) -> int:
    """Rows matched by an UPDATE or DELETE (every DML result is a CursorResult)."""
    return cast(CursorResult[Any], result).rowcount


def dialect_insert(table: Table, dialect: str) -> postgresql.Insert | sqlite.Insert:
    """An INSERT into `table` in the dialect's own construct, which has the ON CONFLICT
    clauses: PostgreSQL's, else SQLite's (the two databases Rayon runs on)."""
    return postgresql.insert(table) if dialect == "postgresql" else sqlite.insert(table)


class BulkInsert:
    """An INSERT of many rows through the driver's own executemany.

    The statement is compiled once per dialect; rows are tuples in `columns` order, their JSON
    columns already encoded (`tables.json_text`).  SQLAlchemy's per-row parameter processing cost
    more than SQLite's own insert (the events, offers and positions of `rayon replay`: 17 →
    ~10 µs per zone event); the rows written are the same.  `skip_existing`: a row whose
    primary key is already stored is skipped (ON CONFLICT DO NOTHING).
    """

    def __init__(self, table: Table, columns: Sequence[str], *, skip_existing: bool = False):
        self.table, self.columns, self.skip_existing = table, tuple(columns), skip_existing
        self._sql: dict[str, tuple[str, bool]] = {}

    def __call__(self, connection: Connection, rows: Sequence[tuple[Any, ...]]) -> None:
        if not rows:
            return
        dialect = connection.dialect
        found = self._sql.get(dialect.name)
        if found is None:
            found = self._sql[dialect.name] = self._compile(dialect)
        sql, positional = found
        if positional:
            connection.exec_driver_sql(sql, list(rows))
        else:
            columns = self.columns
            connection.exec_driver_sql(sql, [dict(zip(columns, row, strict=True)) for row in rows])

    def _compile(self, dialect: Dialect) -> tuple[str, bool]:
        if dialect.name not in ("postgresql", "sqlite"):
            raise RuntimeFailure(f"no bulk insert for the {dialect.name} dialect")
        values: dict[str, Any] = {name: bindparam(name) for name in self.columns}
        statement = dialect_insert(self.table, dialect.name).values(values)
        if self.skip_existing:
            statement = statement.on_conflict_do_nothing()
        compiled = statement.compile(dialect=dialect)
        if compiled.positional and tuple(compiled.positiontup or ()) != self.columns:
            raise RuntimeFailure(f"bulk insert into {self.table.name}: unexpected parameter order")
        return compiled.string, bool(compiled.positional)


class Database:
    """An open database at the newest schema; one transaction per `_session`."""

    def __init__(self, url: str) -> None:
        """Open `url`, creating or upgrading its schema (`upgraded`: the versions applied);
        RuntimeFailure with a hint if it cannot."""
        self.url = url
        engine: Engine | None = None
        try:
            engine = self._engine = _make_engine(url)
            self.upgraded = upgrade(engine)
            # The daemon's one database thread: writes never race each other for SQLite's
            # lock, and the event loop never waits on the disk.
            self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rayon-db")
        except BaseException as exc:
            if engine is not None:
                engine.dispose()  # a database that did not open keeps no connection open
            if isinstance(exc, SQLAlchemyError | ImportError):
                raise RuntimeFailure(
                    f"cannot open the database {_where(url)}: {exc}; check `database.url` in "
                    "config.yaml, that the server runs and that the file's folder is writable"
                ) from exc
            raise

    async def call(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run `fn(*args, **kwargs)` (a database call) on the database thread, off the
        event loop; every call of the daemon goes through here, one at a time, in order."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._worker, functools.partial(fn, *args, **kwargs))

    @contextmanager
    def _session(self) -> Iterator[Session]:
        """One transaction: committed on success, rolled back on error."""
        try:
            with Session(self._engine, expire_on_commit=False) as session, session.begin():
                yield session
        except SQLAlchemyError as exc:
            raise RuntimeFailure(f"database error on {_where(self.url)}: {exc}") from exc

    def reading(self) -> AbstractContextManager[Session]:
        """A session for queries of other modules (reports): one transaction, rolled
        back at the end, so nothing read through it can be written by mistake."""
        return reading_session(self._engine, self.url)

    def _insert(self, table: Table) -> Insert:
        """A Core INSERT into `table` that skips rows whose primary key already exists."""
        return dialect_insert(table, self._engine.dialect.name).on_conflict_do_nothing()

    def close(self) -> None:
        """Finish queued calls, then release every pooled connection (the WAL is
        checkpointed by SQLite on close)."""
        self._worker.shutdown(wait=True)
        self._engine.dispose()
