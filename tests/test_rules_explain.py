"""`explain`: every check as a line with its value and ✓/✗, the verdict the engine would give,
no state changed; `explain_at`, `watch` and the English text."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.errors import InvalidInput
from gateway.events import EventKind, ZoneEvent
from gateway.identity.model import Customer
from gateway.rules.codepools import MemoryCodePools
from gateway.rules.engine import RuleEngine
from gateway.rules.explain import NO_TRACE, explain_at
from gateway.rules.explanation import Explanation, Section, Verdict, format_explanation
from gateway.rules.gates import in_holdout
from gateway.rules.load import load_rules
from tests.test_rules_support import at, customer, event, make_engine, rule_file, store_config

ENTER, DWELL = EventKind.ENTER, EventKind.DWELL
POLICY = (
    "quiet_hours: {between: ['21:00', '08:00']}\n"
    "pressure: {per_customer: {day: 2}}\n"
    "min_gap: 5m\nmax_offers_per_visit: 3\n"
)
FULL = rule_file(
    "tv",
    "dwell: {zone: aisle-tv, at_least: 30s}",
    "valid: {from: 2026-03-02, until: 2026-04-26}\n"
    "if:\n  - customer.interests: {has: tv}\n"
    "  - time: {between: ['14:00', '19:00']}\n"
    "limits: {per_customer: {max: 1, per: day}, cooldown: 2h, total: {max: 500}}\n"
    "priority: 10\nholdout: 10%\n",
    offer="title: TV, body: 'Code {code}', code_pool: tv15, expires_in: 3h",
)


def fan(cid: str = "c-1", **fields: object) -> Customer:
    return customer(cid, interests=frozenset({"tv", "audio"}), **fields)  # type: ignore[arg-type]


def tv_engine(tmp_path: Path, codes: tuple[str, ...] = ("A1", "A2")) -> RuleEngine:
    return make_engine(tmp_path, FULL, policy=POLICY, pools=MemoryCodePools({"tv15": codes}))


def lines(found: Explanation, rule: str = "tv") -> list[tuple[str, str, str, bool | None]]:
    explained = found.rule(rule)
    assert explained is not None
    return [(x.section.value, x.label, x.value, x.passed) for x in explained.lines]


def test_every_line_kind_with_its_value_when_the_rule_fires(tmp_path: Path) -> None:
    eng = tv_engine(tmp_path)
    found = eng.explain(event(DWELL, "2026-03-03T15:00:30", "aisle-tv", 30), fan())
    assert lines(found) == [
        ("trigger", "dwell in aisle-tv at least 30s", "dwell aisle-tv (30s)", True),
        ("consent", "marketing_push consent", "yes", True),
        ("validity", "valid 2026-03-02 → 2026-04-26", "today 2026-03-03", True),
        ("condition", "customer.interests has tv", "customer.interests = [audio, tv]", True),
        ("condition", "time between 14:00 and 19:00", "local time Tue 15:00", True),
        ("limit", "at most 1 per day per customer", "0 today", True),
        ("limit", "cooldown 2h", "no offer yet", True),
        ("limit", "campaign budget 500", "0 used", True),
        ("policy", "quiet hours between 21:00 and 08:00", "local time Tue 15:00", True),
        ("policy", "min_gap 5m", "no commercial offer yet", True),
        ("policy", "at most 3 per visit", "0 this visit", True),
        ("policy", "pressure: at most 2 commercial per day", "0 today", True),
        ("code pool", "code pool 'tv15'", "2 codes left", True),
        ("holdout", "holdout 10%", "not in the control group", True),
    ]
    assert (found.rules[0].verdict, found.rules[0].reason) == (Verdict.FIRES, "")


def test_failing_lines_and_the_verdict_after_an_offer(tmp_path: Path) -> None:
    eng = tv_engine(tmp_path, ("A1",))
    eng.on_event(event(DWELL, "2026-03-03T15:00:30", "aisle-tv", 30), fan())
    found = eng.explain(event(DWELL, "2026-03-03T15:20:30", "aisle-tv", 30), fan())
    failing = [(s, v) for s, _, v, ok in lines(found) if ok is False]
    assert failing == [
        ("trigger", "dwell aisle-tv (30s) (already fired this stay)"),
        ("limit", "1 today"),
        ("limit", "last offer 20m ago"),
    ]
    assert ("code pool", "code pool 'tv15'", "customer holds A1", True) in lines(found)
    assert found.rules[0].verdict is Verdict.NOT_TRIGGERED
    treated = next(f"c-{i}" for i in range(2, 99) if not in_holdout(f"c-{i}", "tv", 0.10))
    other = eng.explain(event(DWELL, "2026-03-03T16:00:30", "aisle-tv", 30), fan(treated))
    assert [(s, v) for s, _, v, ok in lines(other) if ok is False] == [
        ("code pool", "0 codes left")
    ]
    assert (other.rules[0].verdict, other.rules[0].reason) == (
        Verdict.BLOCKED,
        "code pool 'tv15' is exhausted",
    )


@pytest.mark.parametrize(
    ("local", "dwell", "who", "verdict", "reason"),
    [
        ("2026-03-03T15:00:20", 20, fan(), Verdict.NOT_TRIGGERED, "dwell 20s is below 30s"),
        ("2026-03-07T20:00:30", 30, fan(), Verdict.BLOCKED, "failed: time between 14:00 and 19:00"),
        (
            "2026-05-05T15:00:30",
            30,
            fan(),
            Verdict.BLOCKED,
            "no longer valid (valid until 2026-04-26)",
        ),
        (
            "2026-03-03T15:00:30",
            30,
            customer(),
            Verdict.BLOCKED,
            "failed: customer.interests has tv",
        ),
        ("2026-03-03T15:00:30", 30, fan(push=False), Verdict.BLOCKED, "no marketing_push consent"),
    ],
)
def test_the_verdict_is_the_engines_reason(
    tmp_path: Path, local: str, dwell: float, who: Customer, verdict: Verdict, reason: str
) -> None:
    eng = tv_engine(tmp_path)
    e = event(DWELL, local, "aisle-tv", dwell)
    found = eng.explain(e, who).rules[0]
    assert (found.verdict, found.reason) == (verdict, reason)
    assert eng.evaluate(e, who).reasons == {"tv": reason}


def test_quiet_hours_pressure_min_gap_and_holdout_lines(tmp_path: Path) -> None:
    other = rule_file("promo", "enter: {zone: aisle-audio}", "limits: {cooldown: 1h}\n")
    always = rule_file("ctl", "enter: {zone: checkout}", "limits: {cooldown: 1h}\nholdout: 100%\n")
    eng = make_engine(tmp_path, other, always, policy=POLICY)
    eng.on_event(event(ENTER, "2026-03-03T15:00:00", "aisle-audio"), fan())
    found = eng.explain(event(ENTER, "2026-03-03T15:02:00", "checkout"), fan())
    assert [(s, v) for s, _, v, ok in lines(found, "ctl") if ok is False] == [
        ("policy", "last commercial offer 2m ago"),
        ("holdout", "in the control group (recorded, not sent)"),
    ]
    night = eng.explain(event(ENTER, "2026-03-03T22:00:00", "checkout"), fan())
    assert (night.rules[0].verdict, night.rules[0].reason) == (
        Verdict.BLOCKED,
        "quiet hours (between 21:00 and 08:00)",
    )
    later = eng.explain(event(ENTER, "2026-03-03T16:00:00", "checkout"), fan())
    assert (later.rules[0].verdict, later.rules[0].reason) == (
        Verdict.HOLDOUT,
        "in the control group (recorded, not sent)",
    )


def test_a_transactional_rule_skips_the_policy_and_the_holdout(tmp_path: Path) -> None:
    text = rule_file("tx", "enter: {zone: entrance}", purpose="transactional")
    found = make_engine(tmp_path, text, policy=POLICY).explain(
        event(ENTER, "2026-03-03T22:00:00", "entrance"), fan()
    )
    assert [(s, ok) for s, _, _, ok in lines(found, "tx")] == [
        ("trigger", True),
        ("consent", True),
        ("validity", True),
        ("condition", None),
        ("limit", None),
        ("policy", None),
        ("holdout", None),
    ]
    assert found.rules[0].verdict is Verdict.FIRES


def test_a_lower_priority_rule_is_outranked(tmp_path: Path) -> None:
    eng = make_engine(
        tmp_path,
        rule_file("hi", extra="priority: 9\n"),
        rule_file("lo", extra="priority: 1\n"),
    )
    found = eng.explain(event(ENTER, "2026-03-03T15:00:00", "aisle-tv"), fan())
    assert [(r.rule, r.verdict, r.reason) for r in found.rules] == [
        ("hi", Verdict.FIRES, ""),
        ("lo", Verdict.OUTRANKED, "outranked by rule 'hi' (higher priority)"),
    ]
    assert [r.rule for r in eng.explain(found_event(), fan(), "lo").rules] == ["lo"]


def found_event() -> ZoneEvent:
    return event(ENTER, "2026-03-03T15:00:00", "aisle-tv")


STEPS = st.lists(
    st.tuples(
        st.sampled_from([ENTER, DWELL, EventKind.EXIT]),
        st.integers(min_value=0, max_value=6 * 3600),
        st.sampled_from([10.0, 30.0, 60.0]),
        st.sampled_from(["c-1", "c-2", "c-3"]),
    ),
    max_size=25,
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(steps=STEPS)
def test_explain_always_agrees_with_evaluate_and_changes_nothing(
    tmp_path: Path, steps: list[tuple[EventKind, int, float, str]]
) -> None:
    eng = tv_engine(tmp_path, ("A1", "A2"))
    base = at("2026-03-03T13:00:00")
    for kind, offset, dwell, cid in sorted(steps, key=lambda s: s[1]):
        e = ZoneEvent(base + offset, kind, "aisle-tv", f"phone:t-{cid}", cid, dwell)
        who = fan(cid)
        said = eng.explain(e, who).rule("tv")
        again = eng.explain(e, who).rule("tv")
        got = eng.evaluate(e, who)
        assert said == again
        if said is None:  # not a candidate: the engine did not consider the rule either
            assert got == type(got)((), {})
        elif got.offers:
            assert said.verdict in (Verdict.FIRES, Verdict.HOLDOUT)
            assert said.verdict is (Verdict.HOLDOUT if got.offers[0].holdout else Verdict.FIRES)
        else:
            assert said.reason == got.reasons["tv"]


def test_explain_at_never_invents_the_trigger(tmp_path: Path) -> None:
    eng = tv_engine(tmp_path)
    found = explain_at(
        eng.rules, store_config(tmp_path / "rules"), fan(), "tv", at("2026-03-03T15:00:00"), eng
    )
    assert found.event == "no event observed" and found.notes == (NO_TRACE,)
    tv = found.rules[0]
    assert lines(found)[0] == ("trigger", "dwell in aisle-tv at least 30s", "not observed", None)
    assert (tv.verdict, tv.reason) == (
        Verdict.IF_TRIGGERED,
        "the trigger (dwell in aisle-tv at least 30s) was not observed",
    )
    assert all(x.passed is not False for x in tv.lines)
    assert eng.pools.remaining("tv15") == 2 and eng.ledger.total("tv") == 0
    text = format_explanation(found)
    assert text.splitlines()[:2] == [
        "customer c-1 at 2026-03-03 15:00:00 +0100: no event observed",
        f"  note: {NO_TRACE}",
    ]
    assert "→ would fire if triggered: the trigger" in text and "fires" not in text
    with pytest.raises(InvalidInput, match=r"no rule 'tvv' \(did you mean 'tv'\?\)"):
        explain_at(eng.rules, store_config(tmp_path / "rules"), fan(), "tvv", 0.0)


def test_explain_at_still_says_what_blocks_the_rule(tmp_path: Path) -> None:
    eng = tv_engine(tmp_path)
    config = store_config(tmp_path / "rules")
    saturday_night = explain_at(eng.rules, config, fan(), "tv", at("2026-03-07T20:00:00"), eng)
    tv = saturday_night.rules[0]
    assert (tv.verdict, tv.reason) == (Verdict.BLOCKED, "failed: time between 14:00 and 19:00")
    eng.on_event(event(DWELL, "2026-03-03T15:00:30", "aisle-tv", 30), fan())  # the cap counts
    later = explain_at(eng.rules, config, fan(), "tv", at("2026-03-03T18:00:00"), eng).rules[0]
    assert (later.verdict, later.reason) == (
        Verdict.BLOCKED,
        "limit reached: 1 per day per customer",
    )


def test_checks_that_read_the_event_or_the_visit_are_not_observed(tmp_path: Path) -> None:
    text = rule_file(
        "z",
        "enter: {zone: aisle-tv}",
        "if:\n  - zone: {is: checkout}\n  - visit.duration: {at_least: 10m}\n"
        "  - customer.interests: {has: tv}\n"
        "limits: {per_customer: {max: 1, per: visit}}\n",
    )
    eng = make_engine(tmp_path, text, policy="max_offers_per_visit: 1\n")
    found = explain_at(
        eng.rules, store_config(tmp_path / "rules"), fan(), "z", at("2026-03-03T15:00:00"), eng
    )
    got = {(x.label, x.value, x.passed) for x in found.rules[0].lines}
    needs = "not observed (needs the event or the visit)"
    assert {
        ("zone is checkout", needs, None),
        ("visit.duration at_least 10m", needs, None),
        ("customer.interests has tv", "customer.interests = [audio, tv]", True),
        ("at most 1 per visit per customer", "not observed (needs the visit)", None),
        ("at most 1 per visit", "not observed (needs the visit)", None),
    } <= got
    assert found.rules[0].verdict is Verdict.IF_TRIGGERED


def test_explain_at_an_absent_rule_tells_whether_the_check_is_due(tmp_path: Path) -> None:
    text = rule_file("wb", "absent: {for: 60d, at: '10:00'}", "limits: {cooldown: 30d}\n")
    eng = make_engine(tmp_path, text)
    config = store_config(tmp_path / "rules")
    who = customer(last_visit=at("2026-01-01T12:00:00"))
    early = explain_at(eng.rules, config, who, "wb", at("2026-03-17T09:00:00"), eng).rules[0]
    assert (early.verdict, early.lines[0].value) == (
        Verdict.NOT_TRIGGERED,
        "local time 09:00: the check runs at 10:00",
    )
    due = explain_at(eng.rules, config, who, "wb", at("2026-03-17T10:00:00"), eng).rules[0]
    assert due.verdict is Verdict.FIRES
    assert due.lines[0].value.startswith("last visit 2026-01-01 12:00 (")
    eng.on_schedule(at("2026-03-17T10:00:00"), [who])
    done = explain_at(eng.rules, config, who, "wb", at("2026-03-17T11:00:00"), eng).rules[0]
    assert (done.verdict, done.reason) == (Verdict.NOT_TRIGGERED, "already checked today")


def test_watch_keeps_the_explanation_of_each_decision_about_the_customer(tmp_path: Path) -> None:
    eng = tv_engine(tmp_path)
    eng.watch("c-1", "tv")
    eng.on_event(event(ENTER, "2026-03-03T15:00:00", "aisle-tv"), fan())  # not a tv trigger
    eng.on_event(event(DWELL, "2026-03-03T15:00:30", "aisle-tv", 30, "c-2"), fan("c-2"))
    eng.on_event(event(DWELL, "2026-03-03T15:00:30", "aisle-tv", 30), fan())
    eng.on_event(event(DWELL, "2026-03-03T15:01:00", "aisle-tv", 60), fan())
    assert [e.rules[0].verdict for e in eng.explanations] == [Verdict.FIRES, Verdict.NOT_TRIGGERED]
    assert eng.explanations[0].rules[0].lines[-2].value == "2 codes left"  # taken before


def test_the_text_is_aligned_english_with_a_mark_per_check(tmp_path: Path) -> None:
    eng = tv_engine(tmp_path)
    found = eng.explain(event(DWELL, "2026-03-07T20:00:30", "aisle-tv", 30), fan())
    text = format_explanation(found)
    out = text.splitlines()
    assert out[0] == "customer c-1 at 2026-03-07 20:00:30 +0100: dwell aisle-tv (30s)"
    assert out[2] == "rule tv"
    checks = out[3:-1]
    assert len(checks) == 14 and all(line[2] in "✓✗·" for line in checks)
    assert [line[:4] for line in checks if line[2] == "✗"] == ["  ✗ "]
    assert "time between 14:00 and 19:00" in next(x for x in checks if x[2] == "✗")
    labels = [x.label for x in found.rules[0].lines]
    assert len({line.index(label) for line, label in zip(checks, labels, strict=True)}) == 1
    assert out[-1] == "  → blocked: failed: time between 14:00 and 19:00"


def test_the_shipped_rules_explain_for_the_reference_store() -> None:
    config = store_config()
    rules = load_rules(config.rules_dir, config)
    who = customer("c-tv-1", interests=frozenset({"tv"}), visits=3, first_name="Karim")
    when = at("2026-03-03T15:00:30")
    for rule in rules.rules:
        found = explain_at(rules, config, who, rule.id, when)
        assert [r.rule for r in found.rules] == [rule.id]
        assert Section.TRIGGER in {x.section for x in found.rules[0].lines}
    assert explain_at(rules, config, who, "tv-aisle-dwell", when).rules[0].verdict is (
        Verdict.IF_TRIGGERED
    )
    assert not in_holdout("c-tv-1", "tv-aisle-dwell", 0.10)
