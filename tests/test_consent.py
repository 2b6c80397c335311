"""Consent per purpose, withdrawn through the CRM topic in the middle of a visit: it takes
effect with that message, through the same pipeline and database writes as the daemon."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.clock import parse_local_time
from gateway.config.load import load_config
from gateway.config.model import Config
from gateway.events import Advertisement, MqttInput
from gateway.identity.customers import customer_to_obj
from gateway.identity.model import Customer, CustomerRegistry
from gateway.pipeline import Output, Pipeline
from gateway.rules.load import load_rules
from gateway.store.persist import PositionSampler, persist
from gateway.store.repo import Store
from gateway.store.tables import OfferState
from tests.stores import ROOT
from tests.test_pipeline import fan
from tests.walks import tv_aisle_walk, walk_adverts

TOPIC = "rayon/paris-11/crm/customers/c-tv-1"


@pytest.fixture(scope="module")
def config() -> Config:
    return load_config(ROOT / "config.example.yaml")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(f"sqlite:///{tmp_path / 'rayon.db'}")
    yield s
    s.close()


class Daemon:
    """The daemon's path without its tasks: pipeline, then persist, per input."""

    def __init__(self, config: Config, store: Store, customer: Customer) -> None:
        rules = load_rules(config.rules_dir, config)
        self.pipeline = Pipeline(config, rules, CustomerRegistry([customer]))
        self.store = store
        self.sampler = PositionSampler()
        store.upsert_customer(customer)

    def feed(self, items: list[Advertisement] | list[MqttInput]) -> Output:
        out = Output()
        for item in items:
            step = self.pipeline.feed(item)
            step.extend(self.pipeline.tick(item.at))
            out.extend(step)
            positions = self.sampler.sample(step.fixes, self.pipeline.customers.by_device)
            persist(self.store, step, positions=positions)
        return out


def walk(config: Config) -> tuple[list[Advertisement], list[Advertisement]]:
    """The TV-aisle walk on a Tuesday afternoon, cut once the dwell offer is decided."""
    start = parse_local_time("2026-03-03T15:00:00", config.store.timezone)
    adverts = walk_adverts(config, 1, tv_aisle_walk(config, start, stay_s=60), start)
    cut = next(i for i, a in enumerate(adverts) if a.at > start + 5 + 12 + 40)
    return adverts[:cut], adverts[cut:]


def crm(at: float, customer: Customer) -> list[MqttInput]:
    return [MqttInput(at, TOPIC, customer_to_obj(customer))]


def test_withdrawn_push_consent_cancels_the_queued_offer_and_no_other_comes(
    config: Config, store: Store
) -> None:
    daemon = Daemon(config, store, fan())
    before, after = walk(config)
    assert [o.rule for o in daemon.feed(before).offers] == ["tv-aisle-dwell"]
    (queued,) = store.due_offers(10)  # in the outbox, not published yet

    daemon.feed(crm(before[-1].at, fan(push=False)))

    assert store.due_offers(10) == []  # nothing left for the publisher to send
    (record,) = store.offer_log()
    assert record.offer.id == queued.id and record.state is OfferState.CANCELLED
    assert record.last_error == "marketing_push consent withdrawn"
    rest = daemon.feed(after)
    assert rest.events and not rest.offers  # still located (that consent stands), never offered
    assert store.events(customer="c-tv-1")[-1].at >= after[0].at


def test_withdrawn_location_consent_ends_the_track_at_once(config: Config, store: Store) -> None:
    daemon = Daemon(config, store, fan())
    before, after = walk(config)
    daemon.feed(before)
    assert daemon.pipeline.zones.devices() == 1 and store.positions()
    stored_events = len(store.events())

    daemon.feed(crm(before[-1].at, fan(instore=False)))

    assert daemon.pipeline.zones.devices() == 0  # forgotten with that message
    rest = daemon.feed(after)
    assert not rest.fixes and not rest.events and not rest.offers
    assert daemon.pipeline.counters["observations_without_consent"] == len(after)
    assert len(store.events()) == stored_events  # nothing new; the past ages out (retention)
    assert max(p.at for p in store.positions()) < after[0].at


def test_a_device_bound_to_no_customer_leaves_no_row(config: Config, store: Store) -> None:
    stranger = Daemon(config, store, fan())
    stranger.pipeline.customers.remove("c-tv-1")  # the app is installed, the CRM never synced
    before, after = walk(config)
    out = stranger.feed(before + after)
    assert out.events and all(e.customer is None for e in out.events)  # occupancy counts them
    assert store.events() == [] and store.visits() == [] and store.positions() == []
