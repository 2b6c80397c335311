"""The shipped rules/ of the reference store: they load, their inline tests pass, and the
walk of the end-to-end test (c-tv-1 in the TV aisle) gets exactly the TV offer."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from gateway.config.load import load_config
from gateway.errors import Severity
from gateway.events import EventKind
from gateway.rules.engine import RuleEngine
from gateway.rules.gates import in_holdout
from gateway.rules.load import load_rules
from gateway.rules.selftest import check_rules, steps_to_events
from tests.test_rules_support import ROOT, at, customer, event, store_config

SHIPPED = {
    "welcome",
    "click-collect",
    "tv-aisle-dwell",
    "abandoned-cart",
    "checkout-loyalty",
    "win-back",
    "drive-to-store",
}


def test_the_shipped_rules_load_and_every_inline_test_passes() -> None:
    config = store_config()
    assert check_rules(config) == []
    rules = load_rules(config.rules_dir, config)
    assert {r.id for r in rules.rules} == SHIPPED
    assert rules.policy.pressure == (("day", 2), ("week", 5))
    for rule in rules.rules:
        assert len(rule.tests) >= 3, rule.id
        assert any(not t.expect_offer for t in rule.tests), f"{rule.id} has no negative test"


def test_the_shipped_rules_match_the_reference_config() -> None:
    config = load_config(ROOT / "config.example.yaml")
    assert [d for d in check_rules(config) if d.severity is Severity.ERROR] == []


def tv_walk(day: str) -> list[tuple[EventKind, str, str | None, float | None]]:
    return [
        (EventKind.VISIT_START, f"{day}T14:59:40", "store", None),
        (EventKind.ENTER, f"{day}T14:59:40", "store", None),
        (EventKind.ENTER, f"{day}T14:59:42", "entrance", None),
        (EventKind.EXIT, f"{day}T14:59:52", "entrance", 10.0),
        (EventKind.ENTER, f"{day}T15:00:00", "aisle-tv", None),
        (EventKind.DWELL, f"{day}T15:00:30", "aisle-tv", 30.0),
        (EventKind.EXIT, f"{day}T15:00:40", "aisle-tv", 40.0),
    ]


@pytest.mark.parametrize(
    ("day", "expected"), [("2026-03-03", ["tv-aisle-dwell"]), ("2026-03-07", [])]
)
def test_the_end_to_end_tv_customer(day: str, expected: list[str]) -> None:
    config = store_config()
    eng = RuleEngine(load_rules(config.rules_dir, config), config)
    assert eng.dwell_thresholds() == {"aisle-tv": (30.0,)}
    who = customer("c-tv-1", interests=frozenset({"tv"}), visits=3, first_name="Karim")
    offers = [
        o
        for kind, local, zone, dwell in tv_walk(day)
        for o in eng.on_event(event(kind, local, zone, dwell, "c-tv-1"), who)
    ]
    assert [o.rule for o in offers] == expected
    assert not any(o.holdout for o in offers)
    assert not in_holdout("c-tv-1", "tv-aisle-dwell", 0.10)


def test_a_failing_inline_test_is_reported_at_its_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # diagnostics name files relative to the working directory
    shutil.copytree(ROOT / "rules", tmp_path / "rules")
    tv = tmp_path / "rules" / "tv-aisle-dwell.yaml"
    text = tv.read_text(encoding="utf-8")
    tv.write_text(text.replace('["14:00", "19:00"]', '["16:00", "19:00"]'), encoding="utf-8")
    line = text.splitlines().index('  - name: "30 s on a Tuesday afternoon fires"') + 1
    got = [str(d) for d in check_rules(store_config(tmp_path / "rules"))]
    assert got == [
        f"rules/tv-aisle-dwell.yaml:{line}:5: error: test '30 s on a Tuesday afternoon fires' "
        "expected an offer, got none (failed: time between 16:00 and 19:00 on mon, tue, wed, "
        "thu, fri) (at tests[0])"
    ]


def test_still_in_emits_the_dwell_events_crossed_since_the_enter(tmp_path: Path) -> None:
    config = store_config()
    rules = load_rules(config.rules_dir, config)
    test = next(t for t in rules.rules if t.id == "tv-aisle-dwell").tests[0]
    events = [
        e
        for e in steps_to_events(test, {"aisle-tv": (10.0, 30.0, 60.0)})
        if not isinstance(e, float)
    ]
    assert [(e.kind, e.at - at("2026-03-03T15:00:00"), e.dwell_s) for e in events] == [
        (EventKind.ENTER, 0.0, None),
        (EventKind.DWELL, 10.0, 10.0),
        (EventKind.DWELL, 30.0, 30.0),
    ]


def test_an_unknown_expect_rule_is_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # diagnostics name files relative to the working directory
    shutil.copytree(ROOT / "rules", tmp_path / "rules")
    extra = """\
  - name: "a typo in expect_rule"
    customer: {tier: gold}
    events: [{at: "2026-03-05T18:00:00", enter: checkout}]
    expect: offer
    expect_rule: checkout-loyalti
"""
    loyalty = tmp_path / "rules" / "checkout-loyalty.yaml"
    lines = loyalty.read_text(encoding="utf-8").splitlines()
    loyalty.write_text("\n".join(lines) + "\n" + extra, encoding="utf-8")
    got = [str(d) for d in check_rules(store_config(tmp_path / "rules"))]
    assert got == [
        f"rules/checkout-loyalty.yaml:{len(lines) + 1}:5: error: test 'a typo in expect_rule': "
        "expect_rule 'checkout-loyalti' is not a rule (did you mean 'checkout-loyalty'?) "
        "(at tests[3])"
    ]
