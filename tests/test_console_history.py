"""The console's read-only history: rule activity and the visit key from a database the
product's Store wrote, on SQLite and PostgreSQL; writes refused by the database itself; a
database that is missing or too old refused with a hint to start `rayon run`."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from gateway.console.history import History, RuleActivity
from gateway.errors import RuntimeFailure
from gateway.events import Offer
from gateway.store.migrations import schema_version
from gateway.store.repo import Store
from tests import chain

T0 = datetime(2026, 3, 3, 14, 0, tzinfo=UTC).timestamp()


def offer(oid: str, rule: str, at: float, holdout: bool = False) -> Offer:
    return replace(chain.offer(oid, at=at), rule=rule, holdout=holdout)


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database url on SQLite, then on PostgreSQL (skipped when it does not run)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'rayon.db'}"
    found: str = request.getfixturevalue("postgres_url")
    return found


@pytest.fixture
def written(url: str) -> Iterator[tuple[str, bytes]]:
    """The database at `url` with offers of two rules and the visit key, as the gateway
    writes them; (url, key)."""
    store = Store(url)
    try:
        store.commit(
            offers=[
                offer("o1", "tv-aisle-dwell", T0 - 86400),  # yesterday
                offer("o2", "tv-aisle-dwell", T0 + 60),
                offer("o3", "tv-aisle-dwell", T0 + 120, holdout=True),
                offer("o4", "tv-aisle-dwell", T0 + 180),
                offer("o5", "welcome", T0 - 7200),
            ]
        )
        assert store.mark_sent("o2", T0 + 61) and store.mark_sent("o1", T0 - 86399)
        key = store.visit_key(create=True)
        assert key is not None
    finally:
        store.close()
    yield url, key


def test_rule_activity_counts_the_period_and_dates_the_last_fire(
    written: tuple[str, bytes],
) -> None:
    url, key = written
    history = History(url)
    try:
        found = history.rule_activity(T0, T0 + 3600)
        assert found["tv-aisle-dwell"] == RuleActivity(
            "tv-aisle-dwell", T0 + 180, {"sent": 1, "holdout": 1, "pending": 1}
        )
        assert dict(found["tv-aisle-dwell"].offers) == {"sent": 1, "holdout": 1, "pending": 1}
        assert found["welcome"].last_fired_at == T0 - 7200
        assert dict(found["welcome"].offers) == {}  # fired, not in the period
        yesterday = history.rule_activity(T0 - 86400, T0)
        assert dict(yesterday["tv-aisle-dwell"].offers) == {"sent": 1}
        assert history.visit_key() == key
    finally:
        history.close()


def test_no_visit_key_before_the_gateway_made_one(url: str) -> None:
    Store(url).close()
    history = History(url)
    try:
        assert history.visit_key() is None
        assert history.rule_activity(0.0, T0) == {}
    finally:
        history.close()


def test_the_database_refuses_a_write_through_history(written: tuple[str, bytes]) -> None:
    url, _ = written
    history = History(url)
    try:
        with pytest.raises(RuntimeFailure, match=r"(?i)read.?only"), history.reading() as s:
            s.execute(text("UPDATE offers SET state = 'cancelled'"))
            s.commit()
        with pytest.raises(RuntimeFailure, match=r"(?i)read.?only"), history.reading() as s:
            s.execute(text("CREATE TABLE console_was_here (x INTEGER)"))
            s.commit()
        assert history.rule_activity(T0, T0 + 3600)["tv-aisle-dwell"].offers["sent"] == 1
    finally:
        history.close()
    store = Store(url)
    try:
        assert {r.state for r in store.offer_log()} >= {"sent", "pending", "holdout"}
    finally:
        store.close()


def test_a_missing_sqlite_file_is_refused_and_not_created(tmp_path: Path) -> None:
    path = tmp_path / "rayon.db"
    with pytest.raises(RuntimeFailure, match=r"no database at .*rayon\.db.*`rayon run`"):
        History(f"sqlite:///{path}")
    assert not path.exists()


def test_a_database_without_tables_is_refused_and_left_empty(url: str) -> None:
    if url.startswith("sqlite"):
        with closing(sqlite3.connect(url.removeprefix("sqlite:///"))) as conn:
            conn.execute("PRAGMA user_version = 0")  # an empty file SQLite accepts
    with pytest.raises(RuntimeFailure, match=r"no Rayon tables.*`rayon run`"):
        History(url)
    store = Store(url)  # it is still empty: the store creates every table now
    try:
        assert store.upgraded[0] == 1
    finally:
        store.close()


def test_an_older_schema_is_refused_and_not_upgraded(url: str) -> None:
    Store(url).close()
    engine = create_engine(url)
    with engine.begin() as conn:  # as a Rayon of schema version 1 left it
        conn.execute(text("DELETE FROM rayon_schema WHERE version > 1"))
    engine.dispose()
    with pytest.raises(RuntimeFailure, match=r"schema version 1, older .*`rayon run`"):
        History(url)
    engine = create_engine(url)
    try:
        assert schema_version(engine) == 1  # left as it was: upgrading is the gateway's job
    finally:
        engine.dispose()


def test_a_password_is_never_in_a_message() -> None:
    pytest.importorskip("psycopg", reason="psycopg is not installed")
    with pytest.raises(RuntimeFailure) as caught:
        History("postgresql+psycopg://nobody:hunter2@127.0.0.1:1/rayon")  # nothing listens
    assert "hunter2" not in str(caught.value) and "nobody:***@127.0.0.1:1" in str(caught.value)
