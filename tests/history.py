"""A store's database with two customers' history in it (for forget and retention tests).

Both walk the reference store's TV aisle on a Tuesday afternoon through the real pipeline:
zone events, visits, offers, sampled positions and the saved live state (taken while they
are still inside) are written as the daemon writes them; one offer gets feedback and one
code of a pool is handed to each customer.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import MetaData, create_engine, select

from gateway.clock import parse_local_time
from gateway.config.model import Config
from gateway.events import FeedbackState
from gateway.identity.model import Customer, CustomerRegistry
from gateway.offline.replay import replay
from gateway.pipeline import Output, Pipeline
from gateway.rules.codepools import Assignment
from gateway.rules.load import load_rules
from gateway.store.persist import RUNTIME_KEY, PositionSampler
from gateway.store.repo import Store
from tests.walks import STORE_UUID, customer_of, tv_aisle_walk, walk_adverts

TUESDAY_3PM = "2026-03-03T15:00:00"


def fan(cid: str, token: str, minor: int) -> Customer:
    """A TV fan with the store app, who consented to everything."""
    return customer_of(
        {
            "id": cid,
            "token": token,
            "devices": [f"ibeacon:{STORE_UUID}:1000:{minor}"],
            "interests": ["tv"],
            "visits": 4,
            "consent": {"instore_location": True, "marketing_push": True},
        },
    )


CUSTOMERS = (fan("c1", "tok-one", 1), fan("c2", "tok-two", 2))


def fill(store: Store, config: Config) -> None:
    """Write both customers' history into `store` (see the module's docstring)."""
    store.upsert_customers(list(CUSTOMERS))
    registry = CustomerRegistry(CUSTOMERS)
    pipeline = Pipeline(config, load_rules(config.rules_dir, config), registry)
    start = parse_local_time(TUESDAY_3PM, config.store.timezone)
    adverts = [
        adv
        for minor in (1, 2)
        for adv in walk_adverts(config, minor, tv_aisle_walk(config, start), start)
    ]
    adverts.sort(key=lambda a: a.at)
    out = Output()
    replay(pipeline, adverts[: len(adverts) * 3 // 4], out.extend, flush=False)  # still inside
    sampler = PositionSampler()
    positions = sampler.sample(out.fixes, registry.by_device)
    runtime = {RUNTIME_KEY: pipeline.snapshot()}
    store.commit(out.events, out.offers, runtime, start, (), positions)
    offers = [o for o in out.offers if not o.holdout]
    assert {o.customer for o in offers} == {"c1", "c2"}, "both fans must be offered the TV deal"
    for offer in offers:
        store.mark_sent(offer.id, offer.created_at + 1)
        store.record_feedback(offer.id, FeedbackState.OPENED, offer.created_at + 60)
    store.import_codes("tv15", ["A1", "A2", "A3"])
    store.commit(
        assignments=[Assignment("tv15", "A1", "c1", start), Assignment("tv15", "A2", "c2", start)]
    )


def dump(url: str) -> str:
    """Every row of every table of the database, as text to search."""
    engine = create_engine(url)
    metadata = MetaData()
    metadata.reflect(engine)
    rows: list[dict[str, Any]] = []
    with engine.connect() as conn:
        for table in metadata.sorted_tables:
            rows += [{"table": table.name, **r._asdict()} for r in conn.execute(select(table))]
    engine.dispose()
    return json.dumps(rows, default=str)


def traces_of(customer: Customer) -> list[str]:
    """The strings that would betray a customer in a dump: id, token, devices."""
    return [f'"{customer.id}"', customer.token, *customer.device_ids]
