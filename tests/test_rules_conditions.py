"""Conditions: every operator of docs/rules.md, fields, `any`/`not`, DST-correct time windows."""

from __future__ import annotations

from datetime import datetime
from types import MappingProxyType
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.events import EventKind, ZoneEvent
from gateway.identity.model import Customer
from gateway.rules.conditions import ConditionCompiler
from gateway.rules.context import Context, VisitInfo, all_of
from gateway.rules.located import Reader
from gateway.rules.timewindow import TimeWindow, Weekday
from tests.test_rules_support import PARIS, ZONE_NAMES, at, customer

TUESDAY_3PM = "2026-03-03T15:00:00"


def compile_if(text: str) -> Any:
    """The checker of an `if:` list written in YAML; fails the test on any diagnostic."""
    reader = Reader("r.yaml")
    node = reader.compose_text(text)
    assert node is not None
    check = all_of(ConditionCompiler(reader, ZONE_NAMES).compile_list(node, "if"))
    assert reader.diagnostics == []
    return check


def ctx(
    who: Customer,
    local: str = TUESDAY_3PM,
    zone: str | None = "aisle-tv",
    visit: VisitInfo | None = None,
) -> Context:
    event = ZoneEvent(at(local), EventKind.ENTER, zone, "phone:t", who.id)
    return Context(event, who, datetime.fromtimestamp(event.at, PARIS), visit)


def holds(text: str, who: Customer, **kw: Any) -> bool:
    return compile_if(text)(ctx(who, **kw)) is None


RICH = customer(
    segments=frozenset({"vip", "students"}),
    interests=frozenset({"tv", "audio"}),
    tier="gold",
    visits=3,
    first_name="Léa",
    last_visit=at("2026-02-01T10:00:00"),
    attributes=MappingProxyType(
        {"cart_zone": "aisle-tv", "score": 7.5, "order_ready": True, "tags": ["a", "b"]}
    ),
)

OPERATOR_CASES = [
    ("- customer.tier: {is: gold}", True),
    ("- customer.tier: {is: silver}", False),
    ("- customer.tier: {is_not: silver}", True),
    ("- customer.tier: {is_not: gold}", False),
    ("- customer.tier: {in: [silver, gold]}", True),
    ("- customer.tier: {in: [bronze]}", False),
    ("- customer.interests: {has: tv}", True),
    ("- customer.interests: {has: gaming}", False),
    ("- customer.segments: {has_any: [staff, vip]}", True),
    ("- customer.segments: {has_any: [staff]}", False),
    ("- customer.segments: {has_all: [vip, students]}", True),
    ("- customer.segments: {has_all: [vip, staff]}", False),
    ("- customer.visits: {at_least: 3}", True),
    ("- customer.visits: {at_least: 4}", False),
    ("- customer.visits: {at_most: 3}", True),
    ("- customer.visits: {at_most: 2}", False),
    ("- customer.visits: {is: 3}", True),
    ("- customer.visits: {at_least: 1, at_most: 2}", False),
    ("- customer.last_visit: {older_than: 30d}", True),  # 30 days before 3 March
    ("- customer.last_visit: {older_than: 31d}", False),
    ("- customer.last_visit: {newer_than: 31d}", True),
    ("- customer.last_visit: {newer_than: 30d}", False),
    ("- customer.first_name: {is: Léa}", True),
    ("- customer.attributes.cart_zone: {is: '{zone}'}", True),
    ("- customer.attributes.score: {at_least: 7}", True),
    ("- customer.attributes.score: {at_most: 7}", False),
    ("- customer.attributes.order_ready: {is: true}", True),
    ("- customer.attributes.order_ready: {is: 1}", False),  # a bool is not a number
    ("- customer.attributes.tags: {has: a}", True),
    ("- customer.attributes.tags: {has_all: [a, b, c]}", False),
    ("- customer.attributes.missing: {is_not: x}", True),
    ("- customer.attributes.missing: {has: x}", False),
    ("- zone: {is: aisle-tv}", True),
    ("- zone: {in: [checkout, entrance]}", False),
    ("- any: [{customer.tier: {is: silver}}, {customer.visits: {is: 3}}]", True),
    ("- any: [{customer.tier: {is: silver}}, {customer.visits: {is: 4}}]", False),
    ("- not: {customer.tier: {is: silver}}", True),
    ("- not: [{customer.tier: {is: gold}}, {customer.visits: {is: 3}}]", False),
    ("- not: [{customer.tier: {is: gold}}, {customer.visits: {is: 4}}]", True),
]


@pytest.mark.parametrize(("text", "expected"), OPERATOR_CASES)
def test_every_operator(text: str, expected: bool) -> None:
    assert holds(text, RICH) is expected


def test_a_failing_list_names_the_first_condition_that_failed() -> None:
    check = compile_if(
        "- customer.tier: {is: gold}\n- customer.interests: {has_any: [gaming, photo]}"
    )
    assert check(ctx(RICH)) == "customer.interests has_any [gaming, photo]"


def test_visit_fields() -> None:
    visit = VisitInfo(at("2026-03-03T14:50:00"), frozenset({"entrance", "aisle-audio"}))
    assert holds("- visit.duration: {at_least: 10m}", RICH, visit=visit)
    assert not holds("- visit.duration: {at_least: 11m}", RICH, visit=visit)
    assert holds("- visit.zones: {has: aisle-audio}", RICH, visit=visit)
    assert not holds("- visit.zones: {has: checkout}", RICH, visit=visit)
    assert not holds("- visit.duration: {at_most: 1h}", RICH, visit=None)


def test_older_than_is_false_for_a_customer_never_seen() -> None:
    assert not holds("- customer.last_visit: {older_than: 1d}", customer(last_visit=None))


# -- time windows ---------------------------------------------------------------------------
WEEKDAYS = "- time: {between: ['14:00', '19:00'], days: [mon, tue, wed, thu, fri]}"


@pytest.mark.parametrize(
    ("local", "expected"),
    [
        ("2026-03-03T14:00:00", True),  # start is included
        ("2026-03-03T18:59:59", True),
        ("2026-03-03T19:00:00", False),  # end is excluded
        ("2026-03-03T13:59:59", False),
        ("2026-03-07T15:00:00", False),  # Saturday
    ],
)
def test_weekday_afternoons(local: str, expected: bool) -> None:
    assert holds(WEEKDAYS, RICH, local=local) is expected


NIGHT = "- time: {between: ['22:00', '02:00'], days: [fri]}"


@pytest.mark.parametrize(
    ("local", "expected"),
    [
        ("2026-03-06T23:00:00", True),  # Friday night
        ("2026-03-07T01:30:00", True),  # Saturday 01:30 still belongs to Friday's window
        ("2026-03-07T02:00:00", False),
        ("2026-03-07T23:00:00", False),  # Saturday night
        ("2026-03-06T01:00:00", False),  # Friday 01:00 belongs to Thursday's window
        ("2026-03-06T21:59:00", False),
    ],
)
def test_a_window_crossing_midnight_belongs_to_the_day_it_starts(
    local: str, expected: bool
) -> None:
    assert holds(NIGHT, RICH, local=local) is expected


QUIET = TimeWindow(datetime(2026, 1, 1, 21).time(), datetime(2026, 1, 1, 8).time())


@pytest.mark.parametrize(
    ("utc", "expected"),
    [
        # 29 March 2026: Paris goes from UTC+1 to UTC+2 at 01:00 UTC.
        ("2026-03-29T05:30:00+00:00", True),  # 07:30 CEST: still quiet
        ("2026-03-29T06:30:00+00:00", False),  # 08:30 CEST (07:30 if the offset were +1)
        ("2026-03-29T19:30:00+00:00", True),  # 21:30 CEST
        # 25 October 2026: back from UTC+2 to UTC+1 at 01:00 UTC.
        ("2026-10-25T06:30:00+00:00", True),  # 07:30 CET (08:30 if the offset were still +2)
        ("2026-10-25T07:30:00+00:00", False),  # 08:30 CET
        ("2026-10-24T06:30:00+00:00", False),  # the day before: 08:30 CEST
    ],
)
def test_quiet_hours_follow_the_wall_clock_across_dst(utc: str, expected: bool) -> None:
    local = datetime.fromisoformat(utc).astimezone(PARIS)
    assert QUIET.contains(local) is expected


def test_both_occurrences_of_the_repeated_hour_are_in_a_window() -> None:
    window = TimeWindow(
        datetime(2026, 1, 1, 2).time(), datetime(2026, 1, 1, 3).time(), frozenset({Weekday.SUN})
    )
    first = datetime.fromisoformat("2026-10-25T00:30:00+00:00").astimezone(PARIS)  # 02:30 CEST
    second = datetime.fromisoformat("2026-10-25T01:30:00+00:00").astimezone(PARIS)  # 02:30 CET
    after = datetime.fromisoformat("2026-10-25T02:00:00+00:00").astimezone(PARIS)  # 03:00 CET
    assert (first.fold, second.fold) == (0, 1)
    assert window.contains(first) and window.contains(second) and not window.contains(after)


def test_a_window_over_the_spring_gap_covers_the_hours_on_both_sides() -> None:
    window = TimeWindow(datetime(2026, 1, 1, 1).time(), datetime(2026, 1, 1, 4).time())
    before = datetime.fromisoformat("2026-03-29T00:30:00+00:00").astimezone(PARIS)  # 01:30 CET
    after = datetime.fromisoformat("2026-03-29T01:30:00+00:00").astimezone(PARIS)  # 03:30 CEST
    late = datetime.fromisoformat("2026-03-29T02:00:00+00:00").astimezone(PARIS)  # 04:00 CEST
    assert window.contains(before) and window.contains(after) and not window.contains(late)


# -- untrusted CRM values -------------------------------------------------------------------
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=8,
)
EVERY_OPERATOR = "\n".join(
    [
        "- customer.attributes.x: {is: a}",
        "- any: [{customer.attributes.x: {is_not: 1}}, {customer.attributes.x: {in: [1, a]}}]",
        "- any: [{customer.attributes.x: {has: a}}, {customer.attributes.x: {has_any: [1, a]}}]",
        "- any: [{customer.attributes.x: {has_all: [a]}}, {customer.attributes.x: {at_least: 1}}]",
        "- any: [{customer.attributes.x: {at_most: 2}}, {customer.attributes.x: {older_than: 1d}}]",
        "- not: {customer.attributes.x: {newer_than: 1h}}",
        "- customer.attributes.x: {is: '{zone}'}",
    ]
)


@given(value=JSON_VALUES, tier=st.none() | st.text(max_size=5), visits=st.integers())
def test_random_crm_values_never_make_a_condition_raise(
    value: Any, tier: str | None, visits: int
) -> None:
    check = compile_if(EVERY_OPERATOR + "\n- customer.tier: {in: [gold]}")
    who = customer(tier=tier, visits=visits, attributes=MappingProxyType({"x": value}))
    result = check(ctx(who))
    assert result is None or isinstance(result, str)


IS_A = compile_if("- customer.attributes.x: {is: a}")
AT_LEAST_1 = compile_if("- customer.attributes.x: {at_least: 1}")


@given(value=JSON_VALUES)
def test_is_and_at_least_agree_with_their_definition(value: Any) -> None:
    who = customer(attributes=MappingProxyType({"x": value}))
    number = isinstance(value, int | float) and not isinstance(value, bool)
    assert (IS_A(ctx(who)) is None) is (isinstance(value, str) and value == "a")
    assert (AT_LEAST_1(ctx(who)) is None) is (number and value >= 1)
