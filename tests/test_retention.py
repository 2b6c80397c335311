"""Retention: each class of data is kept exactly as long as config.retention says, in batches,
by the daemon's periodic job, and never an offer still waiting to be sent."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.config.load import load_config
from gateway.config.model import RetentionConfig
from gateway.errors import RuntimeFailure
from gateway.events import EventKind, FeedbackState
from gateway.rules.codepools import Assignment
from gateway.store.repo import Position, Store
from gateway.store.retention import Cutoffs, Purged, purge, purge_step, run_retention
from gateway.store.tables import OfferState
from tests.broker import Mosquitto
from tests.history import dump, fill
from tests.stores import reference_store
from tests.test_run import start_daemon, stop_daemon
from tests.test_store import DEVICE, T0, customer, event, offer

HOUR, DAY = 3600.0, 86400.0
RETENTION = RetentionConfig(observations=24 * HOUR, events=90 * DAY, offers=3 * 365 * DAY)
NOW = T0 + 4 * 365 * DAY  # everything of T0 is past every limit; what is "recent" is not


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    url = (
        f"sqlite:///{tmp_path / 'rayon.db'}"
        if request.param == "sqlite"
        else request.getfixturevalue("postgres_url")
    )
    s = Store(url)
    yield s
    s.close()


def position(at: float, cid: str = "c1") -> Position:
    return Position(at, DEVICE, cid, 3.0, 4.0, 1.5)


def just(limit: float) -> tuple[float, float]:
    """Times one minute past the limit (to delete) and one minute within it (to keep)."""
    return NOW - limit - 60, NOW - limit + 60


def test_each_class_is_kept_exactly_its_period(store: Store) -> None:
    store.upsert_customer(customer())
    old_obs, new_obs = just(RETENTION.observations)
    old_ev, new_ev = just(RETENTION.events)
    old_of, new_of = just(RETENTION.offers)
    store.commit(positions=[position(old_obs), position(new_obs)])
    store.record_events(
        [
            event(EventKind.VISIT_START, old_ev - 600),
            event(EventKind.EXIT, old_ev),
            event(EventKind.VISIT_END, old_ev),
            event(EventKind.VISIT_START, new_ev),
            event(EventKind.EXIT, new_ev + 30),
        ]
    )
    store.enqueue_offers([offer("old", old_of), offer("new", new_of), offer("late", old_of)])
    store.mark_sent("old", old_of + 1)
    store.mark_sent("new", new_of + 1)
    store.record_feedback("old", FeedbackState.REDEEMED, old_of + 99)
    store.record_feedback("new", FeedbackState.OPENED, new_of + 99)
    store.import_codes("tv15", ["A", "B"])
    store.commit(
        assignments=[Assignment("tv15", "A", "c1", old_of), Assignment("tv15", "B", "c1", new_of)]
    )

    purged = purge(store, Cutoffs.at(RETENTION, NOW))

    assert purged == Purged(
        observations=1, zone_events=3, visits=1, offers=1, feedback=1, codes_unlinked=1
    )
    assert [p.at for p in store.positions()] == [new_obs]
    assert [(e.kind, e.at) for e in store.events()] == [
        (EventKind.VISIT_START, new_ev),
        (EventKind.EXIT, new_ev + 30),
    ]
    assert [v.started_at for v in store.visits()] == [new_ev]  # the open, recent visit stays
    # "late" is still pending (never sent): retention never takes it from the outbox
    assert {r.offer.id: r.state for r in store.offer_log()} == {
        "new": OfferState.DELIVERED,  # its app's feedback confirmed it
        "late": OfferState.PENDING,
    }
    assert [f.offer_id for f in store.feedback()] == ["new"]
    assert store.codes() == [("tv15", "A", None, old_of), ("tv15", "B", "c1", new_of)]
    assert store.load_customers() == [customer()]  # the CRM's, not retention's
    assert purge(store, Cutoffs.at(RETENTION, NOW)) == Purged()  # nothing more to do


def test_a_visit_left_open_past_the_events_period_goes(store: Store) -> None:
    old, _ = just(RETENTION.events)
    store.record_events([event(EventKind.VISIT_START, old)])
    assert purge(store, Cutoffs.at(RETENTION, NOW)).visits == 1
    assert store.visits() == []


def test_deletes_go_in_bounded_batches(store: Store) -> None:
    old, _ = just(RETENTION.observations)
    store.commit(positions=[position(old - i) for i in range(10)])
    cutoffs = Cutoffs.at(RETENTION, NOW)
    assert purge_step(store, cutoffs, batch=4).observations == 4
    assert len(store.positions()) == 6
    assert purge(store, cutoffs, batch=4).observations == 6
    assert store.positions() == []


def test_the_job_runs_at_once_then_periodically_and_survives_a_failure(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = Store(f"sqlite:///{tmp_path / 'rayon.db'}")
    old, _ = just(RETENTION.observations)
    store.commit(positions=[position(old)])
    runs: list[Purged] = []
    calls = [0]

    def retention() -> RetentionConfig:
        calls[0] += 1
        if calls[0] == 2:  # the second run fails (a broken database, say)
            raise_failure()
        return RETENTION

    async def main() -> None:
        job = asyncio.create_task(
            run_retention(store, retention, lambda: NOW, runs.append, every_s=0.05)
        )
        added = False
        while len(runs) < 2:
            if runs and not added:  # one more old row for the runs after the first
                store.commit(positions=[position(old + 1)])
                added = True
            await asyncio.sleep(0.01)
        job.cancel()

    with caplog.at_level(logging.INFO, logger="gateway.store.retention"):
        asyncio.run(asyncio.wait_for(main(), 10))
    store.close()
    assert [r.observations for r in runs] == [1, 1] and calls[0] == 3
    assert "retention job failed" in caplog.text and "deleted 1 observations" in caplog.text


def raise_failure() -> None:
    raise RuntimeFailure("database error on sqlite:///x: disk I/O error")


@pytest.mark.mqtt
def test_rayon_run_applies_the_configured_retention(tmp_path: Path, mosquitto: Mosquitto) -> None:
    config_path = reference_store(
        tmp_path,
        port=mosquitto.port,
        retention={"observations": "1h", "events": "1d", "offers": "2d"},
    )
    config = load_config(config_path)
    store = Store(config.database.url)
    fill(store, config)  # March 2026: older than every period here
    store.close()
    assert '"zone_events"' in dump(config.database.url)
    daemon = start_daemon(config_path)
    try:
        deadline = time.monotonic() + 20
        while any(f'"table": "{t}"' in dump(config.database.url) for t in PURGED_TABLES):
            assert time.monotonic() < deadline, "retention did not run"
            time.sleep(0.2)
    finally:
        err = stop_daemon(daemon)
    assert "retention: deleted" in err
    left = dump(config.database.url)
    assert '"table": "customers"' in left and '"table": "codes"' in left


PURGED_TABLES = ("observations", "zone_events", "visits", "offers", "feedback")
