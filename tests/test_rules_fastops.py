"""The shortcuts of the engine's hot path against the plain code they replace (kept here as
the reference): condition operators, time windows, cap periods, offer ids and texts, the
visit context.  Property tests: same value, or the same exception, on any input."""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping
from datetime import UTC, datetime, time
from typing import Any
from uuid import uuid5
from zoneinfo import ZoneInfo

from hypothesis import example, given
from hypothesis import strategies as st

from gateway.events import EventKind, ZoneEvent
from gateway.identity.model import Customer
from gateway.rules.context import Context
from gateway.rules.decide import OFFER_NAMESPACE, offer_id
from gateway.rules.model import Period, Placeholder, Template
from gateway.rules.operators import OPERATORS, is_number, needs_zone, resolve
from gateway.rules.policy import PeriodStarts, period_start
from gateway.rules.timewindow import TimeWindow, Weekday
from gateway.rules.visits import advance, visit_info

PARIS = ZoneInfo("Europe/Paris")
CTX = Context(
    ZoneEvent(1_772_550_000.0, EventKind.ENTER, "aisle-tv", "dev"),
    Customer("c", "t"),
    datetime.fromtimestamp(1_772_550_000.0, PARIS),
    None,
)


# -- the reference: the operators as they were written before the shortcuts --------------------
def _same(a: Any, b: Any) -> bool:
    if isinstance(a, bool) != isinstance(b, bool):
        return False
    if is_number(a) and is_number(b):
        return bool(a == b)
    return type(a) is type(b) and bool(a == b)


def _members(x: Any) -> Collection[Any] | None:
    return x if isinstance(x, set | frozenset | list | tuple) else None


def _has(actual: Any, expected: Any) -> bool:
    items = _members(actual)
    return items is not None and any(_same(i, expected) for i in items)


REFERENCE: Mapping[str, Callable[[Any, Any], bool]] = {
    "is": _same,
    "is_not": lambda a, e: not _same(a, e),
    "in": lambda a, e: any(_same(a, x) for x in e),
    "has": _has,
    "has_any": lambda a, e: any(_has(a, x) for x in e),
    "has_all": lambda a, e: _members(a) is not None and all(_has(a, x) for x in e),
    "at_least": lambda a, e: is_number(a) and a >= e,
    "at_most": lambda a, e: is_number(a) and a <= e,
}


class Text(str):
    """A str subclass: `_same` tells it from a str."""


scalars = st.one_of(
    st.sampled_from(["tv", "audio", "gold", "", "{zone}", Text("tv"), Text("gold")]),
    st.none(),
    st.booleans(),
    st.integers(-3, 3),
    st.sampled_from([2**53, -(2**53), 2**60, 10**400, -(10**400)]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, 1.0, 2.5, -0.0]),
)
values = st.one_of(
    scalars,
    st.frozensets(scalars, max_size=4),
    st.lists(scalars, max_size=4),
    st.tuples(scalars, scalars),
)


def _outcome(check: Callable[[], bool]) -> Any:
    try:
        return check()
    except Exception as exc:
        return type(exc)


@given(st.sampled_from(sorted(REFERENCE)), values, values)
@example("has", frozenset({"tv", "audio"}), "tv")
@example("has", frozenset({Text("tv")}), "tv")
@example("has", frozenset({10**400}), "tv")
@example("has", ["tv", 10**400], "tv")
@example("has", [10**400, "tv"], "tv")
@example("in", "gold", ("silver", "gold"))
@example("in", Text("gold"), ("silver", "gold"))
@example("in", None, ("silver", None))
@example("at_least", 10**400, 3)
@example("at_most", True, 3)
def test_operators_give_what_the_plain_ones_give(op: str, actual: Any, expected: Any) -> None:
    if op in ("in", "has_any", "has_all"):
        expected = expected if isinstance(expected, tuple) else (expected,)
    if op in ("at_least", "at_most") and type(expected) not in (int, float):
        expected = 1  # a number, as the loader makes sure
    fast = _outcome(lambda: OPERATORS[op].apply(actual, expected, CTX))
    assert fast == _outcome(lambda: REFERENCE[op](actual, expected))


@given(values)
def test_an_operand_without_zone_resolves_to_itself(operand: Any) -> None:
    if not needs_zone(operand):
        assert resolve(operand, CTX) is operand


# -- time windows and cap periods -----------------------------------------------------------
def _contains(window: TimeWindow, local: datetime) -> bool:
    t, day = local.time().replace(tzinfo=None), local.weekday()
    if window.start is not None and window.end is not None:
        if window.start < window.end:
            if not window.start <= t < window.end:
                return False
        elif t < window.end:
            day = (day - 1) % 7
        elif t < window.start:
            return False
    return not window.days or Weekday(day) in window.days


times = st.times().map(lambda t: t.replace(second=0, microsecond=0)) | st.times()


@given(
    st.one_of(st.none(), times),
    times,
    st.frozensets(st.sampled_from(list(Weekday))),
    st.floats(1.7e9, 1.9e9),
)
@example(time(21, 0), time(8, 0), frozenset({Weekday.FRI}), 1_772_900_000.0)
def test_time_windows_contain_what_they_did(
    start: time | None, end: time, days: frozenset[Weekday], at: float
) -> None:
    window = TimeWindow(start, end if start is not None and start != end else None, days)
    local = datetime.fromtimestamp(at, PARIS)
    assert window.contains(local) == _contains(window, local)


ZONES = ["Europe/Paris", "America/Havana", "Australia/Lord_Howe", "America/Sao_Paulo", "UTC"]


@given(
    st.sampled_from(ZONES),
    st.sampled_from(list(Period)),
    st.floats(1.6e9, 1.9e9),
    st.one_of(st.none(), st.floats(1.6e9, 1.9e9)),
)
def test_cap_periods_start_where_they_did(
    zone: str, period: Period, at: float, visit_start: float | None
) -> None:
    tz = ZoneInfo(zone)
    starts = PeriodStarts(tz)
    for _ in range(2):  # the second time from memory
        local = datetime.fromtimestamp(at, tz)
        assert starts.start(period, at, local, visit_start) == period_start(
            period, at, tz, visit_start
        )


def test_cap_periods_across_dst_changes_hour_by_hour() -> None:
    for zone in ZONES:
        tz = ZoneInfo(zone)
        starts = PeriodStarts(tz)
        begin = datetime(2026, 3, 1, tzinfo=UTC).timestamp()
        for hour in range(0, 24 * 400, 5):  # a year and more, every 5 hours
            at = begin + hour * 3600.0 + 0.5
            local = datetime.fromtimestamp(at, tz)
            for period in (Period.DAY, Period.WEEK):
                assert starts.start(period, at, local, None) == period_start(period, at, tz, None)


# -- the offer ------------------------------------------------------------------------------
ids = st.text(min_size=0, max_size=20)


@given(ids, ids, st.floats(allow_nan=True, allow_infinity=True))
@example("tv-aisle-dwell", "c-0001", 1_772_550_031.0)
def test_offer_ids_are_the_uuid5_they_were(rule: str, customer: str, at: float) -> None:
    expected = str(uuid5(OFFER_NAMESPACE, f"{rule}|{customer}|{at!r}"))
    assert offer_id(rule, customer, at) == expected


_SPACES = re.compile(r" {2,}")


def _fill(template: Template, values: Mapping[Placeholder, str]) -> str:
    out = "".join(
        values.get(p, "") if isinstance(p, Placeholder) else str(p) for p in template.parts
    )
    return _SPACES.sub(" ", out).replace(" ,", ",").strip()


parts = st.lists(
    st.one_of(st.sampled_from(list(Placeholder)), st.text(alphabet=" ,ab{}é\t", max_size=6)),
    max_size=6,
)
fills = st.dictionaries(st.sampled_from(list(Placeholder)), st.text(alphabet=" ,xy", max_size=4))


@given(parts, fills)
@example(["Bonjour ", Placeholder.FIRST_NAME, " , ici"], {})
@example(["zone_name", Placeholder.ZONE_NAME], {Placeholder.ZONE_NAME: "TV"})
def test_offer_texts_are_filled_as_they_were(
    parts: list[str | Placeholder], values: dict[Placeholder, str]
) -> None:
    template = Template(tuple(parts))
    assert template.fill(values) == _fill(template, values)


# -- the visit context ------------------------------------------------------------------------
def test_the_visit_seen_by_conditions_follows_the_zones_entered() -> None:
    t0 = 1_772_550_000.0
    visit = advance(None, ZoneEvent(t0, EventKind.VISIT_START, "store", "d"), 1800, False)
    assert visit is not None and visit_info(visit).zones == frozenset()
    assert visit_info(visit) is visit_info(visit)  # built once
    for n, zone in enumerate(["aisle-tv", "aisle-tv", "checkout"]):
        event = ZoneEvent(t0 + 10 * n, EventKind.ENTER, zone, "d")
        assert advance(visit, event, 1800, False) is visit
        assert visit_info(visit).zones == frozenset(visit.zones)
        assert visit_info(visit).started_at == visit.started_at
    later = advance(visit, ZoneEvent(t0 + 7200, EventKind.ENTER, "entrance", "d"), 1800, False)
    assert later is not visit and later is not None
    assert visit_info(later).zones == {"entrance"} and visit_info(later).started_at == t0 + 7200
