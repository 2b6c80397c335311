"""Geofence triggers (zones and geofences share one namespace), the `date:` condition, and
the warnings the loader gives without failing `rayon check`."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config.load import load_config
from gateway.errors import ConfigError, Severity
from gateway.events import EventKind, MqttInput
from gateway.identity.model import CustomerRegistry
from gateway.pipeline import Pipeline
from gateway.rules.engine import RuleEngine
from gateway.rules.load import load_rules, read_rules
from tests.test_rules_support import (
    ROOT,
    at,
    customer,
    event,
    make_engine,
    rule_file,
    store_config,
    write_rules,
)

ENTER, EXIT = EventKind.ENTER, EventKind.EXIT
APPROACH = "enter: {zone: store-approach}"


def fired(eng: RuleEngine, kind: EventKind, local: str, zone: str | None) -> list[str]:
    return [o.rule for o in eng.on_event(event(kind, local, zone), customer())]


def diagnose(tmp_path: Path, *rules: str, policy: str = "") -> list[str]:
    rules_dir = write_rules(tmp_path, *rules, policy=policy)
    _, diagnostics = read_rules(rules_dir, store_config(rules_dir))
    return [f"{d.severity}: {d.message}" for d in diagnostics]


# -- geofences ------------------------------------------------------------------------------
def test_a_geofence_enter_triggers_its_rules_and_names_the_geofence(tmp_path: Path) -> None:
    offer = "title: 'Bienvenue', body: 'Vous êtes aux {zone_name}', expires_in: 1h"
    eng = make_engine(tmp_path, rule_file("near", APPROACH, offer=offer), rule_file("tv"))
    [got] = eng.on_event(event(ENTER, "2026-03-03T17:40:00", "store-approach"), customer())
    assert (got.rule, got.zone, got.body) == (
        "near",
        "store-approach",
        "Vous êtes aux Abords du magasin",
    )
    assert fired(eng, EXIT, "2026-03-03T17:50:00", "store-approach") == []
    assert fired(eng, ENTER, "2026-03-03T17:55:00", "parking") == []


def test_a_geofence_event_neither_starts_nor_extends_a_visit(tmp_path: Path) -> None:
    long_visit = rule_file(
        "long", "enter: {zone: checkout}", "if: [{visit.duration: {at_least: 10m}}]\n"
    )
    eng = make_engine(tmp_path, long_visit)
    fired(eng, ENTER, "2026-03-03T17:00:00", "store-approach")  # 20 min before the visit
    fired(eng, ENTER, "2026-03-03T17:20:00", "store")  # the visit starts with the first zone
    fired(eng, ENTER, "2026-03-03T17:21:00", "aisle-tv")
    fired(eng, EXIT, "2026-03-03T17:25:00", "parking")  # GPS noise during the visit
    assert fired(eng, ENTER, "2026-03-03T17:28:00", "checkout") == []  # 8 min into the visit
    assert fired(eng, ENTER, "2026-03-03T17:31:00", "checkout") == ["long"]


def test_a_zone_condition_may_name_a_geofence(tmp_path: Path) -> None:
    text = rule_file(
        "r", "exit: {zone: [store-approach, parking]}", "if: [{zone: {is: parking}}]\n"
    )
    eng = make_engine(tmp_path, text)
    assert fired(eng, EXIT, "2026-03-03T17:40:00", "parking") == ["r"]
    assert fired(eng, EXIT, "2026-03-03T17:41:00", "store-approach") == []


@pytest.mark.parametrize(
    ("when", "message"),
    [
        (
            "enter: {zone: store-aproach}",
            "unknown zone 'store-aproach' (did you mean 'store-approach'?)",
        ),
        (
            "enter: {zone: nowhere}",
            "unknown zone 'nowhere' (zones: store, entrance, checkout, click-collect, aisle-tv, "
            "aisle-audio, aisle-smartphones, aisle-computing, aisle-gaming, aisle-photo, "
            "aisle-appliances, aisle-accessories; geofences: store-approach, parking)",
        ),
        (
            "dwell: {zone: parking, at_least: 5m}",
            "'parking' is a geofence: geofences trigger only enter and exit, not dwell",
        ),
    ],
)
def test_unknown_places_and_geofence_dwell_are_errors(
    tmp_path: Path, when: str, message: str
) -> None:
    assert diagnose(tmp_path, rule_file("r", when, "limits: {cooldown: 1h}\n")) == [
        f"error: {message}"
    ]


def test_the_pipeline_turns_a_gps_arrival_into_the_drive_to_store_offer() -> None:
    config = load_config(ROOT / "config.example.yaml")
    who = customer("c-cc", first_name="Karim", attributes={"order_ready": True})
    pipeline = Pipeline(config, load_rules(config.rules_dir, config), CustomerRegistry([who]))
    topic = f"{config.mqtt.topic_prefix}/{config.store.id}/phones/{who.token}/location"
    now = at("2026-03-03T17:40:00")
    payload = {"_type": "location", "lat": 48.8592, "lon": 2.3795, "acc": 10, "tst": int(now)}
    out = pipeline.on_mqtt(MqttInput(now, topic, payload))
    assert [(o.rule, o.zone) for o in out.offers] == [("drive-to-store", "store-approach")]


# -- date condition -------------------------------------------------------------------------
def test_the_date_condition_uses_store_local_days_both_ends_included(tmp_path: Path) -> None:
    xmas = "if: [{date: {between: ['2026-12-01', '2026-12-24']}}]\n"
    eng = make_engine(tmp_path, rule_file("xmas", extra=xmas))
    assert fired(eng, ENTER, "2026-11-30T23:59:00", "aisle-tv") == []
    assert fired(eng, ENTER, "2026-12-01T00:00:00", "aisle-tv") == ["xmas"]  # 23:00Z the day before
    assert fired(eng, ENTER, "2026-12-24T23:59:00", "aisle-tv") == ["xmas"]
    assert fired(eng, ENTER, "2026-12-25T00:00:00", "aisle-tv") == []


def test_days_of_month(tmp_path: Path) -> None:
    payday = "if: [{date: {days_of_month: [1, 15]}}]\n"
    eng = make_engine(tmp_path, rule_file("pay", extra=payday))
    assert fired(eng, ENTER, "2026-03-15T12:00:00", "aisle-tv") == ["pay"]
    assert fired(eng, ENTER, "2026-03-16T12:00:00", "aisle-tv") == []
    assert fired(eng, ENTER, "2026-04-01T12:00:00", "aisle-tv") == ["pay"]


@pytest.mark.parametrize(
    ("condition", "message"),
    [
        (
            "{between: ['2026-12-24', '2026-12-01']}",
            "ends (2026-12-01) before it starts (2026-12-24)",
        ),
        (
            "{between: ['2026-12-01']}",
            'between needs two dates ["YYYY-MM-DD", "YYYY-MM-DD"], got 1',
        ),
        (
            "{between: ['2026-12-01', 'Noël']}",
            "bad date 'Noël' (write YYYY-MM-DD, e.g. 2026-03-02)",
        ),
        ("{days_of_month: [1, 32]}", "a day of the month is 1 to 31, got 32"),
        ("{}", "a date condition needs 'between', 'days_of_month' or both"),
        ("{from: '2026-12-01'}", "unknown key 'from' (expected one of: between, days_of_month)"),
    ],
)
def test_bad_date_conditions(tmp_path: Path, condition: str, message: str) -> None:
    text = rule_file("r", extra=f"limits: {{cooldown: 1h}}\nif: [{{date: {condition}}}]\n")
    assert diagnose(tmp_path, text) == [f"error: {message}"]


def test_last_visit_older_and_newer_than_take_durations(tmp_path: Path) -> None:
    text = rule_file(
        "back", extra="if: [{customer.last_visit: {older_than: 30d, newer_than: 1 year}}]\n"
    )
    with pytest.raises(ConfigError):  # `1 year` is not a duration
        make_engine(tmp_path / "bad", text)
    eng = make_engine(tmp_path, text.replace("1 year", "365d"))
    now = at("2026-03-03T15:00:00")
    for days, expected in ((10, []), (31, ["back"]), (400, [])):
        who = customer(last_visit=now - days * 86400)
        offers = eng.on_event(event(ENTER, "2026-03-03T15:00:00", "aisle-tv"), who)
        assert [o.rule for o in offers] == expected, days
    assert fired(eng, ENTER, "2026-03-04T15:00:00", "aisle-tv") == []  # no last visit known


# -- warnings -------------------------------------------------------------------------------
def test_useful_warnings_do_not_fail_the_load(tmp_path: Path) -> None:
    quiet = "quiet_hours: {between: ['21:00', '08:00'], days: [sat, sun]}\n"
    rules = [
        rule_file("nocap"),
        rule_file("night", "absent: {for: 60d, at: '07:30'}", "limits: {cooldown: 30d}\n"),
        rule_file("daily", "absent: {for: 60d, at: '10:00'}", "limits: {total: {max: 9}}\n"),
        rule_file("control", extra="limits: {cooldown: 1h}\nholdout: 100%\n"),
    ]
    assert diagnose(tmp_path, *rules, policy=quiet) == [
        "warning: holdout 100%: every customer is in the control group, no offer is ever sent",
        "warning: absent rule 'daily' has no limits.per_customer nor cooldown: a customer who "
        "stays away gets it again every day",
        "warning: absent rule 'night' runs at 07:30, inside the quiet hours (between 21:00 and "
        "08:00 on sat, sun) on mon, sun: it sends nothing then; pick another hour",
        "warning: commercial rule 'nocap' has no limits: add limits.per_customer or cooldown",
    ]
    rules_dir = tmp_path / "rules"
    assert len(load_rules(rules_dir, store_config(rules_dir)).warnings) == 4
    assert all(
        d.severity is Severity.WARNING
        for d in load_rules(rules_dir, store_config(rules_dir)).warnings
    )
