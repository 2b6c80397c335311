"""Shared fixtures: a private Mosquitto, a v5 subscriber on it, a PostgreSQL schema, a store
on either database."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings
from sqlalchemy.engine import make_url

from gateway.store.repo import Store
from tests.broker import Mosquitto, Subscriber, find_mosquitto
from tests.browser import chromium_path, no_browser

# CI explores the same examples every run, so that main stays green for a reason and a failure
# reproduces; a developer's runs draw new examples each time and find what CI would not.
settings.register_profile("ci", derandomize=True, print_blob=True)
settings.load_profile("ci" if os.environ.get("CI") else "default")

# The PostgreSQL tests run against the server this url names (`./dev test` sets it to the
# machine's local server when unset); they skip, saying why, when it is unset or unreachable.
POSTGRES_ENV = "RAYON_TEST_POSTGRES_URL"


def _broker(workdir: Path) -> Iterator[Mosquitto]:
    binary = find_mosquitto()
    if binary is None:
        pytest.skip("mosquitto is not installed (apt-get install mosquitto); needs a real broker")
    broker = Mosquitto(binary, workdir)
    broker.start()
    try:
        yield broker
    finally:
        broker.kill()


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    """A private broker for this test, on a free port of 127.0.0.1, killed at teardown."""
    yield from _broker(tmp_path / "mosquitto")


@pytest.fixture(scope="module")
def mosquitto_module(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    """One private broker shared by a module's tests (do not stop it in a test)."""
    yield from _broker(tmp_path_factory.mktemp("mosquitto"))


@pytest.fixture
def mosquitto_with(tmp_path: Path) -> Iterator[Callable[..., Mosquitto]]:
    """`mosquitto_with("acl_file /x", …)`: a private broker with extra config lines (ACLs,
    TLS listeners …), started, killed at teardown."""
    brokers: list[Mosquitto] = []

    def make(*config_lines: str) -> Mosquitto:
        binary = find_mosquitto()
        if binary is None:
            pytest.skip("mosquitto is not installed (apt-get install mosquitto)")
        broker = Mosquitto(binary, tmp_path / f"mosquitto-{len(brokers)}", config_lines)
        brokers.append(broker)
        broker.start()
        return broker

    yield make
    for broker in brokers:
        broker.kill()


@pytest.fixture
def subscriber(mosquitto: Mosquitto) -> Iterator[Callable[..., Subscriber]]:
    """`subscriber("rayon/#")`: a started v5 subscriber on the test's broker."""
    started: list[Subscriber] = []

    def make(*filters: str, qos: int = 1) -> Subscriber:
        sub = Subscriber(mosquitto, client_id=f"sub-{uuid.uuid4().hex[:8]}").start(
            *filters, qos=qos
        )
        started.append(sub)
        return sub

    yield make
    for sub in started:
        sub.stop()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A url on a fresh schema of the PostgreSQL database named by $RAYON_TEST_POSTGRES_URL
    (a SQLAlchemy url, `postgresql+psycopg://user@host:port/db`), dropped afterwards."""
    url = os.environ.get(POSTGRES_ENV)
    if not url:
        pytest.skip(f"{POSTGRES_ENV} is not set (./dev test sets it to the local server)")
    psycopg = pytest.importorskip("psycopg", reason="psycopg is not installed")
    parts = make_url(url)
    conninfo = parts.set(drivername="postgresql").render_as_string(hide_password=False)
    try:
        admin = psycopg.connect(conninfo, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL unreachable at {parts.host}:{parts.port} ({POSTGRES_ENV}): {exc}")
    schema = f"rayon_test_{uuid.uuid4().hex[:12]}"
    with admin:
        admin.execute(f'CREATE SCHEMA "{schema}"')
        try:
            yield parts.update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(
                hide_password=False
            )
        finally:
            admin.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture(params=["sqlite", "postgresql"])
def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """A store on SQLite, then on PostgreSQL (skipped when it does not run)."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'rayon.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
    s = Store(url)
    yield s
    s.close()


@pytest.fixture(scope="session")
def chromium_binary() -> Path:
    """The Chromium binary, for tests that start it themselves (a bench script); skipped with
    the reason when it is missing, failed instead under CI=true (tests/browser.py)."""
    binary = chromium_path()
    if binary is None:
        no_browser("Chromium is not installed (apt-get install chromium)")
    assert binary is not None
    return binary


@pytest.fixture(scope="module")
def chromium(chromium_binary: Path) -> Iterator[Any]:
    """A headless Chromium (Playwright's Browser) for one module's browser tests.  Module
    scope, not session: Playwright's sync API runs an event loop in this thread while it is
    open, and every later test's `asyncio.run` would find it running."""
    binary = chromium_binary
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        no_browser("playwright is not installed (pip install -e '.[test]')")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(binary), args=["--no-sandbox"])
        try:
            yield browser
        finally:
            browser.close()
