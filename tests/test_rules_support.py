"""Shared helpers of the rules tests: the reference store's Config, built directly, and events.

(No tests here: the other `test_rules_*` modules import these helpers.)
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from gateway.config.model import (
    Config,
    DatabaseConfig,
    Geofence,
    IdentityConfig,
    LatLon,
    MqttConfig,
    RetentionConfig,
    SourcesConfig,
    StoreConfig,
    VisitsConfig,
    Zone,
)
from gateway.events import EventKind, ZoneEvent
from gateway.identity.model import Consent, Customer
from gateway.rules.codepools import CodePools
from gateway.rules.engine import RuleEngine
from gateway.rules.load import load_rules

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
GEOFENCES = (
    Geofence("store-approach", "Abords du magasin", center=LatLon(48.8592, 2.3795), radius_m=300),
    Geofence("parking", "Parking clients", center=LatLon(48.8598, 2.3804), radius_m=40),
)


def store_config(rules_dir: Path = ROOT / "rules") -> Config:
    """The reference store paris-11: its twelve zones (placeholder polygons), two geofences."""
    zones = tuple(
        Zone(zid, name, ((i, 0), (i + 1, 0), (i + 1, 1), (i, 1)))
        for i, (zid, name) in enumerate(ZONE_NAMES.items())
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
        geofences=GEOFENCES,
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


def rule_file(
    rule_id: str, when: str = "enter: {zone: aisle-tv}", extra: str = "", **kw: str
) -> str:
    """A rule file: trigger `when`, extra top-level YAML, `offer` keys (default title/body)."""
    offer = kw.get("offer", f"title: 'T {rule_id}', body: 'B', expires_in: 1h")
    purpose = kw.get("purpose", "commercial")
    return (
        f"id: {rule_id}\nname: {rule_id}\npurpose: {purpose}\nwhen: {{{when}}}\n"
        f"then: {{offer: {{{offer}}}}}\n{extra}"
    )


def write_rules(tmp_path: Path, *rules: str, policy: str = "") -> Path:
    """A rules directory holding `rules` (named after their ids) and a policy."""
    rules_dir = tmp_path / "rules"
    rules_dir.mkdir(parents=True, exist_ok=True)
    for text in rules:
        name = text.split("\n", 1)[0].removeprefix("id: ")
        (rules_dir / f"{name}.yaml").write_text(text, encoding="utf-8")
    if policy:
        (rules_dir / "policy.yaml").write_text(policy, encoding="utf-8")
    return rules_dir


def make_engine(
    tmp_path: Path, *rules: str, policy: str = "", pools: CodePools | None = None
) -> RuleEngine:
    """An engine over `rules` for the reference store."""
    rules_dir = write_rules(tmp_path, *rules, policy=policy)
    config = store_config(rules_dir)
    return RuleEngine(load_rules(rules_dir, config), config, pools=pools)
