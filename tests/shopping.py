"""Two customers' Tuesday-afternoon visits, replayed through the real pipeline into a store's
database (for the console's visit traces).

Both walk in, stay 40 s in the TV aisle, pay at the checkout and leave.  Inès (gold tier, a
first name, a loyalty number among her CRM attributes) is offered the TV deal and the loyalty
reminder; Bruno was already offered the TV deal an hour before, which the pipeline and the
database both know, so only the loyalty reminder is his.  The gateway's visit key is created
as `rayon run` creates it.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.clock import parse_local_time
from gateway.config.load import load_config
from gateway.config.model import Config
from gateway.events import Offer, Purpose
from gateway.identity.model import Customer, CustomerRegistry
from gateway.offline.replay import replay
from gateway.pipeline import Output, Pipeline
from gateway.rules.load import load_rules
from gateway.store.repo import Store
from tests.stores import ROOT, reference_store
from tests.walks import STORE_UUID, Leg, customer_of, walk_adverts, zone_centre

TUESDAY_3PM = "2026-03-03T15:00:00"
LOYALTY_NUMBER = "4970123456789"


def shopper(cid: str, token: str, minor: int, first_name: str) -> Customer:
    return customer_of(
        {
            "id": cid,
            "token": token,
            "devices": [f"ibeacon:{STORE_UUID}:1000:{minor}"],
            "first_name": first_name,
            "interests": ["tv"],
            "tier": "gold",
            "visits": 4,
            "attributes": {"loyalty_number": LOYALTY_NUMBER, "age_band": "35-44"},
            "consent": {"instore_location": True, "marketing_push": True},
        },
    )


INES = shopper("c-ines-0007", "tok-Zq8rP2xW", 7, "Inès")
BRUNO = shopper("c-bruno-0008", "tok-Hh3kL9vQ", 8, "Bruno")


@dataclass(frozen=True, slots=True)
class Shop:
    """The store's config (its SQLite database holds the visits), the start of the walks,
    the offer Bruno had before, and every offer the replay decided."""

    config: Config
    start: float
    earlier: Offer
    offers: tuple[Offer, ...]


def tv_and_checkout(config: Config) -> list[Leg]:
    """Entrance, 40 s in the TV aisle, 20 s at the checkout, out through the entrance."""
    ex, ey = zone_centre(config, "entrance")
    tx, ty = zone_centre(config, "aisle-tv")
    cx, cy = zone_centre(config, "checkout")
    return [(ex, ey, 0), (ex, ey, 5), (tx, ty, 12), (tx, ty, 40), (cx, cy, 12), (cx, cy, 20),
            (ex, ey, 8)]  # fmt: skip


def earlier_offer(customer: Customer, at: float) -> Offer:
    """The TV deal as the gateway decided it for `customer` at `at` (sent since)."""
    return Offer(
        id="o-earlier",
        rule="tv-aisle-dwell",
        store="paris-11",
        zone="aisle-tv",
        customer=customer.id,
        token=customer.token,
        created_at=at,
        expires_at=at + 3 * 3600,
        title="-15 % sur les TV",
        body="Offre valable aujourd'hui.",
        code="TV15",
        url="rayon://offers/tv15",
        purpose=Purpose.COMMERCIAL,
    )


def shop(
    folder: Path, extra_rules: Mapping[str, str] | None = None, database_url: str | None = None
) -> Shop:
    """Write both visits into a new database in `folder`, or at `database_url` (see the
    module's docstring); the shipped rules run, with `extra_rules` (file name → text) beside
    them."""
    rules = folder / "rules"
    shutil.copytree(ROOT / "rules", rules)
    for name, text in (extra_rules or {}).items():
        (rules / name).write_text(text, encoding="utf-8")
    database: dict[str, Any] = {"database": {"url": database_url}} if database_url else {}
    config = load_config(reference_store(folder, rules_dir="rules", **database))
    start = parse_local_time(TUESDAY_3PM, config.store.timezone)
    earlier = earlier_offer(BRUNO, start - 3600)
    pipeline = Pipeline(
        config, load_rules(config.rules_dir, config), CustomerRegistry([INES, BRUNO])
    )
    pipeline.restore(None, [earlier])
    legs = tv_and_checkout(config)
    adverts = [a for minor in (7, 8) for a in walk_adverts(config, minor, legs, start + minor)]
    adverts.sort(key=lambda a: a.at)
    out = Output()
    replay(pipeline, adverts, out.extend)
    store = Store(config.database.url)
    try:
        store.upsert_customers([INES, BRUNO])
        store.commit(offers=[earlier])
        assert store.mark_sent(earlier.id, earlier.created_at + 1)
        store.commit(out.events, out.offers)
        assert store.visit_key(create=True) is not None
    finally:
        store.close()
    return Shop(config, start, earlier, tuple(out.offers))
