"""The rule engine: triggers, caps, policy, holdout, priority, consent, offers."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.errors import InvalidInput
from gateway.events import EventKind, Offer, Purpose, ZoneEvent
from gateway.rules.engine import RuleEngine
from gateway.rules.gates import in_holdout
from gateway.rules.ledger import Ledger
from gateway.rules.load import load_rules
from tests.test_rules_support import ZONE_NAMES, customer, event, store_config, write_rules

ENTER, EXIT, DWELL = EventKind.ENTER, EventKind.EXIT, EventKind.DWELL
VISIT_START, VISIT_END = EventKind.VISIT_START, EventKind.VISIT_END


def rule(
    rule_id: str,
    when: str = "enter: {zone: aisle-tv}",
    extra: str = "",
    purpose: str = "commercial",
) -> str:
    """A rule file with the given trigger and extra top-level YAML."""
    return (
        f"id: {rule_id}\nname: {rule_id}\npurpose: {purpose}\nwhen: {{{when}}}\n"
        f"then: {{offer: {{title: 'T {rule_id}', body: 'B', expires_in: 1h}}}}\n{extra}"
    )


def engine(tmp_path: Path, *rules: str, policy: str = "") -> RuleEngine:
    config = store_config(write_rules(tmp_path, *rules, policy=policy))
    return RuleEngine(load_rules(config.rules_dir, config), config)


def fired(
    eng: RuleEngine,
    kind: EventKind,
    local: str,
    zone: str | None,
    cid: str = "c-1",
    dwell_s: float | None = None,
    **fields: Any,
) -> list[str]:
    offers = eng.on_event(event(kind, local, zone, dwell_s, cid), customer(cid, **fields))
    return [o.rule for o in offers]


# -- triggers and index ---------------------------------------------------------------------
def test_dwell_thresholds_per_zone(tmp_path: Path) -> None:
    eng = engine(
        tmp_path,
        rule("a", "dwell: {zone: aisle-tv, at_least: 30s}"),
        rule("b", "dwell: {zone: [aisle-tv, aisle-audio], at_least: 2m}"),
        rule("c", "enter: {zone: checkout}"),
    )
    assert eng.dwell_thresholds() == {"aisle-tv": (30.0, 120.0), "aisle-audio": (120.0,)}


def test_an_event_only_costs_the_rules_that_can_match_it(tmp_path: Path) -> None:
    others = [
        rule(f"r{i}", f"enter: {{zone: {z}}}") for i, z in enumerate(ZONE_NAMES) if z != "aisle-tv"
    ]
    eng = engine(
        tmp_path,
        *others,
        rule("tv", extra="if: [{customer.tier: {is: gold}}]"),
        rule("visit", "visit_start: {}"),
    )
    result = eng.evaluate(event(ENTER, "2026-03-03T15:00:00", "aisle-tv"), customer())
    assert result.offers == ()
    assert set(result.reasons) == {"tv"}


def test_a_dwell_rule_fires_once_per_stay_and_again_after_a_new_enter(tmp_path: Path) -> None:
    eng = engine(tmp_path, rule("d", "dwell: {zone: aisle-tv, at_least: 30s}"))
    assert fired(eng, DWELL, "2026-03-03T15:00:20", "aisle-tv", dwell_s=20) == []
    assert fired(eng, DWELL, "2026-03-03T15:00:30", "aisle-tv", dwell_s=30) == ["d"]
    assert fired(eng, DWELL, "2026-03-03T15:01:00", "aisle-tv", dwell_s=60) == []
    fired(eng, EXIT, "2026-03-03T15:02:00", "aisle-tv")
    fired(eng, ENTER, "2026-03-03T15:10:00", "aisle-tv")
    assert fired(eng, DWELL, "2026-03-03T15:10:30", "aisle-tv", dwell_s=30) == ["d"]


def test_visit_end_trigger_and_validity_dates(tmp_path: Path) -> None:
    eng = engine(
        tmp_path, rule("bye", "visit_end: {}", "valid: {from: 2026-03-02, until: 2026-03-03}")
    )
    assert fired(eng, VISIT_END, "2026-03-03T23:59:00", "store") == ["bye"]
    assert fired(eng, VISIT_END, "2026-03-04T00:01:00", "store") == []
    assert fired(eng, VISIT_END, "2026-03-01T12:00:00", "store") == []


# -- offers ---------------------------------------------------------------------------------
def test_the_offer_is_filled_from_the_event_the_rule_and_the_store(tmp_path: Path) -> None:
    text = rule("o").replace(
        "{title: 'T o', body: 'B', expires_in: 1h}",
        "{title: 'Bonjour {customer.first_name} !', body: '{zone_name} à {store_name}: {code}',"
        " code: TV15, url: 'rayon://x', expires_in: 3h}",
    )
    eng = engine(tmp_path, text)
    e = event(ENTER, "2026-03-03T15:00:00", "aisle-tv")
    [offer] = eng.on_event(e, customer(first_name="Léa"))
    assert offer == Offer(
        id=offer.id,
        rule="o",
        store="paris-11",
        zone="aisle-tv",
        customer="c-1",
        token="t-c-1",
        created_at=e.at,
        expires_at=e.at + 3 * 3600,
        title="Bonjour Léa !",
        body="Rayon TV à Rayon Paris 11: TV15",
        code="TV15",
        url="rayon://x",
        purpose=Purpose.COMMERCIAL,
        holdout=False,
    )
    assert uuid.UUID(offer.id).version == 5
    [again] = engine(tmp_path / "other", text).on_event(e, customer(first_name="Léa"))
    assert again.id == offer.id
    [later] = engine(tmp_path / "third", text).on_event(
        event(ENTER, "2026-03-03T15:00:01", "aisle-tv"), customer()
    )
    assert later.id != offer.id and later.title == "Bonjour !"


# -- per-customer limits, cooldown, budget --------------------------------------------------
def test_once_a_day_counts_days_in_the_store_timezone(tmp_path: Path) -> None:
    eng = engine(tmp_path, rule("d", extra="limits: {per_customer: {max: 1, per: day}}"))
    # 23:30 and 00:30 Paris are the same UTC day (22:30 and 23:30 UTC) but two store days.
    assert fired(eng, ENTER, "2026-03-03T23:30:00", "aisle-tv") == ["d"]
    assert fired(eng, ENTER, "2026-03-03T23:50:00", "aisle-tv") == []
    assert fired(eng, ENTER, "2026-03-04T00:30:00", "aisle-tv") == ["d"]


def test_per_week_starts_on_monday_local(tmp_path: Path) -> None:
    eng = engine(tmp_path, rule("w", extra="limits: {per_customer: {max: 1, per: week}}"))
    assert fired(eng, ENTER, "2026-03-08T20:00:00", "aisle-tv") == ["w"]  # Sunday
    assert fired(eng, ENTER, "2026-03-09T09:00:00", "aisle-tv") == ["w"]  # Monday
    assert fired(eng, ENTER, "2026-03-15T20:00:00", "aisle-tv") == []


def test_once_per_visit(tmp_path: Path) -> None:
    eng = engine(tmp_path, rule("v", extra="limits: {per_customer: {max: 1, per: visit}}"))
    fired(eng, VISIT_START, "2026-03-03T10:00:00", "store")
    assert fired(eng, ENTER, "2026-03-03T10:01:00", "aisle-tv") == ["v"]
    assert fired(eng, ENTER, "2026-03-03T10:09:00", "aisle-tv") == []
    fired(eng, VISIT_END, "2026-03-03T10:20:00", "store")
    fired(eng, VISIT_START, "2026-03-03T16:00:00", "store")
    assert fired(eng, ENTER, "2026-03-03T16:01:00", "aisle-tv") == ["v"]


def test_cooldown(tmp_path: Path) -> None:
    eng = engine(tmp_path, rule("c", extra="limits: {cooldown: 2h}"))
    assert fired(eng, ENTER, "2026-03-03T10:00:00", "aisle-tv") == ["c"]
    result = eng.evaluate(event(ENTER, "2026-03-03T11:59:00", "aisle-tv"), customer())
    assert result.offers == () and result.reasons["c"].startswith("cooldown")
    assert fired(eng, ENTER, "2026-03-03T12:00:00", "aisle-tv") == ["c"]
    assert fired(eng, ENTER, "2026-03-03T12:00:00", "aisle-tv", cid="c-2") == ["c"]


def test_total_budget(tmp_path: Path) -> None:
    eng = engine(tmp_path, rule("t", extra="limits: {total: {max: 2}}"))
    got = [fired(eng, ENTER, "2026-03-03T10:00:00", "aisle-tv", cid=f"c-{i}") for i in range(4)]
    assert got == [["t"], ["t"], [], []]


# -- policy ---------------------------------------------------------------------------------
def test_pressure_caps_commercial_offers_across_rules(tmp_path: Path) -> None:
    rules = [
        rule(f"r-{z}", f"enter: {{zone: {z}}}") for z in ("aisle-tv", "aisle-audio", "aisle-photo")
    ]
    rules.append(rule("tx", "enter: {zone: checkout}", purpose="transactional"))
    eng = engine(tmp_path, *rules, policy="pressure: {per_customer: {day: 2}}\n")
    assert fired(eng, ENTER, "2026-03-03T10:00:00", "aisle-tv") == ["r-aisle-tv"]
    assert fired(eng, ENTER, "2026-03-03T10:05:00", "aisle-audio") == ["r-aisle-audio"]
    result = eng.evaluate(event(ENTER, "2026-03-03T10:10:00", "aisle-photo"), customer())
    assert result.reasons == {"r-aisle-photo": "pressure: 2 commercial offers per day reached"}
    assert fired(eng, ENTER, "2026-03-03T10:15:00", "checkout") == ["tx"]
    assert fired(eng, ENTER, "2026-03-04T10:00:00", "aisle-photo") == ["r-aisle-photo"]


def test_quiet_hours_block_commercial_rules_only(tmp_path: Path) -> None:
    eng = engine(
        tmp_path,
        rule("promo", "enter: {zone: entrance}"),
        rule("ready", "enter: {zone: entrance}", purpose="transactional"),
        policy="quiet_hours: {between: ['21:00', '08:00']}\nmax_offers_per_event: 2\n",
    )
    assert fired(eng, ENTER, "2026-03-03T21:30:00", "entrance") == ["ready"]
    assert fired(eng, ENTER, "2026-03-04T07:59:00", "entrance") == ["ready"]
    assert sorted(fired(eng, ENTER, "2026-03-04T08:00:00", "entrance")) == ["promo", "ready"]


def test_min_gap_and_max_offers_per_visit(tmp_path: Path) -> None:
    rules = [
        rule(f"r-{z}", f"enter: {{zone: {z}}}") for z in ("aisle-tv", "aisle-audio", "aisle-photo")
    ]
    eng = engine(tmp_path, *rules, policy="min_gap: 10m\nmax_offers_per_visit: 2\n")
    fired(eng, VISIT_START, "2026-03-03T10:00:00", "store")
    assert fired(eng, ENTER, "2026-03-03T10:00:00", "aisle-tv") == ["r-aisle-tv"]
    assert fired(eng, ENTER, "2026-03-03T10:09:00", "aisle-audio") == []  # min_gap
    assert fired(eng, ENTER, "2026-03-03T10:11:00", "aisle-audio") == ["r-aisle-audio"]
    assert fired(eng, ENTER, "2026-03-03T10:30:00", "aisle-photo") == []  # 2 this visit
    fired(eng, VISIT_START, "2026-03-03T17:00:00", "store")
    assert fired(eng, ENTER, "2026-03-03T17:01:00", "aisle-photo") == ["r-aisle-photo"]


# -- priority, consent, holdout -------------------------------------------------------------
def test_the_highest_priority_wins(tmp_path: Path) -> None:
    eng = engine(
        tmp_path,
        rule("low", extra="priority: 1\n"),
        rule("high", extra="priority: 7\n"),
        rule("mid", extra="priority: 3\nif: [{customer.tier: {is: gold}}]\n"),
    )
    result = eng.evaluate(event(ENTER, "2026-03-03T10:00:00", "aisle-tv"), customer(tier="gold"))
    assert [o.rule for o in result.offers] == ["high"]
    assert result.reasons == {
        "mid": "outranked by rule 'high' (higher priority)",
        "low": "outranked by rule 'high' (higher priority)",
    }
    # the winner failing its conditions lets the next one fire
    assert fired(eng, ENTER, "2026-03-03T10:00:00", "aisle-tv", cid="c-2", tier="gold") == ["high"]
    assert fired(eng, ENTER, "2026-03-03T10:00:00", "aisle-tv", cid="c-3") == ["high"]


def test_without_push_consent_nothing_happens_not_even_a_holdout(tmp_path: Path) -> None:
    eng = engine(
        tmp_path,
        rule("p", extra="holdout: 100%\n"),
        rule("t", purpose="transactional", extra="priority: 5\n"),
    )
    e = event(ENTER, "2026-03-03T10:00:00", "aisle-tv")
    assert eng.on_event(e, customer(push=False)) == []
    assert eng.ledger.total("p") == 0 and eng.ledger.total("t") == 0


def test_holdout_is_deterministic_and_near_its_rate() -> None:
    ids = [f"customer-{i}" for i in range(4000)]
    held = [c for c in ids if in_holdout(c, "tv-aisle-dwell", 0.10)]
    assert held == [c for c in ids if in_holdout(c, "tv-aisle-dwell", 0.10)]
    assert 0.085 < len(held) / len(ids) < 0.115
    other_rule = {c for c in ids if in_holdout(c, "welcome", 0.10)}
    assert len(other_rule & set(held)) < len(held) / 3  # independent draws per rule
    assert not any(in_holdout(c, "r", 0.0) for c in ids[:100])
    assert all(in_holdout(c, "r", 1.0) for c in ids[:100])


def test_a_holdout_offer_is_returned_flagged_and_counts_against_caps(tmp_path: Path) -> None:
    eng = engine(
        tmp_path, rule("h", extra="holdout: 10%\nlimits: {per_customer: {max: 1, per: day}}\n")
    )
    ids = [f"c-{i}" for i in range(60)]
    held = next(c for c in ids if in_holdout(c, "h", 0.10))
    treated = next(c for c in ids if not in_holdout(c, "h", 0.10))
    for cid, flag in ((held, True), (treated, False)):
        [offer] = eng.on_event(
            event(ENTER, "2026-03-03T10:00:00", "aisle-tv", None, cid), customer(cid)
        )
        assert offer.holdout is flag
        assert fired(eng, ENTER, "2026-03-03T11:00:00", "aisle-tv", cid=cid) == []


def test_the_policy_holdout_applies_unless_the_rule_sets_its_own(tmp_path: Path) -> None:
    eng = engine(
        tmp_path,
        rule("own", extra="holdout: 0%\npriority: 1\n"),
        rule("default", "enter: {zone: checkout}"),
        rule("tx", "enter: {zone: entrance}", purpose="transactional"),
        policy="holdout: 100%\n",
    )
    [own] = eng.on_event(event(ENTER, "2026-03-03T10:00:00", "aisle-tv"), customer())
    [default] = eng.on_event(event(ENTER, "2026-03-03T11:00:00", "checkout"), customer())
    [tx] = eng.on_event(event(ENTER, "2026-03-03T12:00:00", "entrance"), customer())
    assert (own.holdout, default.holdout, tx.holdout) == (False, True, False)


def test_reloading_rules_keeps_the_ledger(tmp_path: Path) -> None:
    text = rule("d", extra="limits: {per_customer: {max: 1, per: day}}")
    eng = engine(tmp_path, text)
    assert fired(eng, ENTER, "2026-03-03T10:00:00", "aisle-tv") == ["d"]
    reloaded = eng.with_rules(engine(tmp_path / "b", text).rules)
    assert fired(reloaded, ENTER, "2026-03-03T11:00:00", "aisle-tv") == []
    assert isinstance(reloaded.ledger, Ledger) and reloaded.ledger is eng.ledger


# -- robustness -----------------------------------------------------------------------------
EVENTS = st.tuples(
    st.sampled_from(list(EventKind)),
    st.sampled_from([*ZONE_NAMES, None]),
    st.floats(allow_nan=True, allow_infinity=True) | st.floats(1.7e9, 1.8e9),
    st.none() | st.floats(allow_nan=True),
)
CUSTOMERS = st.builds(
    lambda tier, visits, attrs, interests: customer(
        tier=tier, visits=visits, attributes=MappingProxyType(attrs), interests=frozenset(interests)
    ),
    st.none() | st.text(max_size=4),
    st.integers(),
    st.dictionaries(
        st.sampled_from(["cart_zone", "order_ready", "x"]),
        st.none()
        | st.booleans()
        | st.integers()
        | st.floats()
        | st.text(max_size=12)
        | st.lists(st.text(max_size=3), max_size=2),
        max_size=3,
    ),
    st.lists(st.sampled_from(["tv", "audio", "x"]), max_size=3),
)


SHIPPED_CONFIG = store_config()
SHIPPED = load_rules(SHIPPED_CONFIG.rules_dir, SHIPPED_CONFIG)


@settings(max_examples=150, deadline=None)
@given(events=st.lists(EVENTS, max_size=8), who=CUSTOMERS)
def test_random_events_and_customers_never_make_the_engine_raise(
    events: list[tuple[EventKind, str | None, float, float | None]], who: object
) -> None:
    eng = RuleEngine(SHIPPED, SHIPPED_CONFIG)
    for kind, zone, t, dwell in events:
        for offer in eng.on_event(ZoneEvent(t, kind, zone, "phone:x", "c-1", dwell), who):  # type: ignore[arg-type]
            assert offer.created_at == t and offer.expires_at > t


def test_a_restored_engine_continues_the_visit_and_its_caps() -> None:
    """After a restart (snapshot → restore, ledger seeded with what was offered), a customer
    still in the same visit does not get a per-visit offer twice."""
    config = store_config()
    rules = load_rules(config.rules_dir, config)
    first = RuleEngine(rules, config)
    fan = customer("c-cc", attributes={"order_ready": True}, visits=3)
    assert (
        first.on_event(
            event(EventKind.VISIT_START, "2026-03-03T11:00:00", "store", customer="c-cc"), fan
        )
        == []
    )
    offers = first.on_event(
        event(EventKind.ENTER, "2026-03-03T11:00:05", "entrance", customer="c-cc"), fan
    )
    assert [o.rule for o in offers] == ["click-collect"]
    ledger = Ledger()
    for offer in offers:
        ledger.record(offer)
    second = RuleEngine(rules, config, ledger)
    second.restore(json.loads(json.dumps(first.snapshot())))
    again = event(EventKind.ENTER, "2026-03-03T11:03:00", "entrance", customer="c-cc")
    assert second.on_event(again, fan) == []
    fresh = RuleEngine(rules, config, ledger)  # without the visit context, the cap is lost
    assert [o.rule for o in fresh.on_event(again, fan)] == ["click-collect"]


def test_a_corrupt_engine_snapshot_is_invalid_input() -> None:
    config = store_config()
    engine = RuleEngine(load_rules(config.rules_dir, config), config)
    with pytest.raises(InvalidInput):
        engine.restore({"c-1": {"started_at": "x"}})
