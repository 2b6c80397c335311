"""Shared helpers of the rules tests: the reference store's Config, built directly, and events.

(No tests here: the other `test_rules_*` modules import these helpers.)
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from shapely.geometry import box

from gateway.config import (
    Config,
    DatabaseConfig,
    IdentityConfig,
    MqttConfig,
    RetentionConfig,
    SourcesConfig,
    StoreConfig,
    VisitsConfig,
    Zone,
)
from gateway.events import EventKind, ZoneEvent
from gateway.identity import Consent, Customer

ROOT = Path(__file__).resolve().parent.parent
PARIS = ZoneInfo("Europe/Paris")
ZONE_NAMES = {
    "store": "Magasin",
    "entrance": "Entrée",
    "checkout": "Caisses",
    "click-collect": "Retrait click & collect",
    "aisle-tv": "Rayon TV",
    "aisle-audio": "Rayon Audio & Hi-Fi",
    "aisle-smartphones": "Rayon Smartphones",
    "aisle-computing": "Rayon Informatique",
    "aisle-gaming": "Rayon Jeux vidéo",
    "aisle-photo": "Rayon Photo",
    "aisle-appliances": "Rayon Électroménager",
    "aisle-accessories": "Rayon Accessoires",
}


def store_config(rules_dir: Path = ROOT / "rules") -> Config:
    """The reference store paris-11 with its twelve zones (polygons are placeholders)."""
    zones = tuple(
        Zone(zid, name, box(i, 0, i + 1, 1)) for i, (zid, name) in enumerate(ZONE_NAMES.items())
    )
    return Config(
        path=rules_dir.parent / "config.yaml",
        store=StoreConfig("paris-11", "Rayon Paris 11", PARIS),
        mqtt=MqttConfig(),
        database=DatabaseConfig("sqlite://"),
        sources=SourcesConfig(),
        identity=IdentityConfig(),
        anchors=(),
        zones=zones,
        geofences=(),
        visits=VisitsConfig(),
        retention=RetentionConfig(),
        rules_dir=rules_dir,
    )


def at(local: str) -> float:
    """Epoch seconds of a Paris local time `2026-03-03T15:00:00`."""
    return datetime.fromisoformat(local).replace(tzinfo=PARIS).timestamp()


def event(
    kind: EventKind,
    local: str,
    zone: str | None,
    dwell_s: float | None = None,
    customer: str = "c-1",
) -> ZoneEvent:
    """A zone event of `customer`'s phone at a Paris local time."""
    return ZoneEvent(at(local), kind, zone, f"phone:t-{customer}", customer, dwell_s)


def customer(cid: str = "c-1", push: bool = True, **fields: Any) -> Customer:
    """A consenting customer (push consent unless `push=False`) with the given CRM fields."""
    return Customer(id=cid, token=f"t-{cid}", consent=Consent(True, push), **fields)
