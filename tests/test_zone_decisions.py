"""Zone decisions between rivals: the challenger rule, adjacency, reasons with the runner-up,
and their snapshots."""

from __future__ import annotations

import json
from collections.abc import Sequence

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.config.model import VisitsConfig, Zone
from gateway.events import EventKind, Fix, ZoneEvent
from gateway.zones.index import ZoneIndex
from gateway.zones.tracker import ZoneTracker
from tests.test_zones import box

DEV = "ibeacon:8d8c1a2e-5b3f-4c1d-9e2a-0f6b7c8d9e10:1000:1"
K = EventKind
FIX_KEYS = {"x", "y", "accuracy_m", "anchors", "runner_up"}


def zones(margin: float = 0.0) -> list[Zone]:
    """Two aisles side by side (sharing the edge x = 10), a far one, a promo over aisle a."""
    return [
        Zone("store", "Magasin", box(0, 0, 60, 20), enter_after=0.0, exit_after=30.0),
        Zone("a", "Aisle A", box(5, 5, 10, 15), 4.0, 10.0, margin_m=margin),
        Zone("b", "Aisle B", box(10, 5, 15, 15), 4.0, 10.0, margin_m=margin),
        Zone("far", "Far aisle", box(50, 5, 55, 15), 4.0, 10.0),
        Zone("promo", "Promo", box(5, 5, 8, 8), 2.0, 5.0),
    ]


def tracker(margin: float = 0.0) -> ZoneTracker:
    return ZoneTracker(zones(margin), VisitsConfig(gap=600.0, timeout=60.0), {"a": [20.0]})


def fix(t: float, x: float, y: float, acc: float = 1.5) -> Fix:
    return Fix(t, DEV, x, y, acc, ("node-1", "node-2", "node-3"))


def feed(tr: ZoneTracker, points: Sequence[tuple[float, float, float]]) -> list[ZoneEvent]:
    out: list[ZoneEvent] = []
    for t, x, y in points:
        out += tr.update(fix(t, x, y))
    return out


def steps(
    t0: float, t1: float, x: float, y: float, dt: float = 0.5
) -> list[tuple[float, float, float]]:
    n = round((t1 - t0) / dt)
    return [(t0 + k * dt, x, y) for k in range(n)]


def aisle_events(events: list[ZoneEvent]) -> list[tuple[EventKind, str | None, float]]:
    moves = (K.ENTER, K.EXIT)
    return [
        (e.kind, e.zone, e.at) for e in events if e.zone in ("a", "b", "far") and e.kind in moves
    ]


def in_a(tr: ZoneTracker, until: float = 6.0) -> list[ZoneEvent]:
    events = feed(tr, steps(0.0, until, 7.5, 10.0))
    assert tr.zones_of(DEV) == ("store", "a")
    return events


def test_rivals_are_zones_that_share_no_area() -> None:
    index = ZoneIndex(zones())
    ids = index.ids
    rivals = {ids[i]: {ids[j] for j in index.rivals[i]} for i in range(len(ids))}
    assert rivals["store"] == set()  # it contains every aisle
    assert rivals["a"] == {"b", "far"}  # promo overlaps a: both hold together
    assert rivals["promo"] == {"b", "far"}
    sliver = ZoneIndex([Zone("x", "x", box(0, 0, 5, 7)), Zone("y", "y", box(4.9, 0, 10, 7))])
    assert sliver.rivals == ((1,), (0,))  # 10 cm of drawing slop along a shared edge
    assert index.gap(ids.index("a"), ids.index("far")) == 40.0


def test_dithering_on_the_border_of_two_aisles_does_not_flap() -> None:
    tr = tracker()
    events = in_a(tr)
    # One minute on the shared edge, up to 0.9 m into b: 4 s in b, then a fix back in a.
    xs = [9.7 if k % 9 == 8 else (10.3, 10.9, 10.5, 10.7)[k % 4] for k in range(120)]
    border = [(6.0 + k * 0.5, x, 10.0) for k, x in enumerate(xs)]
    events += feed(tr, border)
    assert aisle_events(events) == [(K.ENTER, "a", 4.0)]
    assert tr.zones_of(DEV) == ("store", "a")


def test_a_shallow_stay_in_the_rival_exits_normally_and_never_takes_over() -> None:
    tr = tracker()
    in_a(tr)
    events = feed(tr, steps(6.0, 30.0, 10.6, 10.0))  # 0.6 m into b: not clearly b
    # a exits after exit_after; only then do b's fixes count, for b's own enter_after.
    assert aisle_events(events) == [(K.EXIT, "a", 16.0), (K.ENTER, "b", 20.0)]
    assert events[-1].reason["runner_up"] == "a"  # 0.6 m away, within the fix's accuracy
    assert tr.counters["zone_takeovers"] == 0


def test_a_challenger_that_clearly_wins_takes_over_at_once() -> None:
    tr = tracker()
    events = in_a(tr)
    events += feed(tr, steps(6.0, 7.0, 10.5, 10.0) + steps(7.0, 20.0, 12.5, 10.0))
    # b held from 7 s (1 m in) for enter_after (4 s): enters at 11, well before a's exit_after.
    assert aisle_events(events) == [(K.ENTER, "a", 4.0), (K.EXIT, "a", 11.0), (K.ENTER, "b", 11.0)]
    exit_a, enter_b = [e for e in events if e.zone in ("a", "b") and e.at == 11.0]
    assert exit_a.dwell_s == 6.0  # first fix inside at 0, first outside at 6
    assert exit_a.reason["cause"] == "superseded" and exit_a.reason["runner_up"] == "b"
    assert enter_b.reason["runner_up"] == "a" and enter_b.reason["inside_since"] == 7.0
    assert tr.occupancy()["a"] == 0 and tr.occupancy()["b"] == 1
    assert tr.counters["zone_takeovers"] == 1


def test_the_incumbent_confirmed_again_restarts_the_challenge() -> None:
    tr = tracker(margin=1.0)  # a holds the device up to 1 m into b
    in_a(tr)
    # Deep in b (margin 1 m: 1 m deep is needed), but every 3 s a fix back in a.
    walk = [(t, 12.5 if int(t) % 3 else 9.0, 10.0) for t in (6.0 + k * 0.5 for k in range(40))]
    events = feed(tr, walk)
    assert aisle_events(events) == []
    assert tr.zones_of(DEV) == ("store", "a")


def test_a_jump_across_the_store_within_a_second_is_refused_and_counted() -> None:
    tr = tracker()
    in_a(tr)
    events = feed(tr, [(6.0, 52.5, 10.0), (6.5, 7.5, 10.0)])  # 42.5 m away, half a second later
    events += feed(tr, steps(7.0, 12.0, 7.5, 10.0))
    assert aisle_events(events) == [] and tr.counters["zone_fixes_too_fast"] == 1
    # Last in a at 11.5; 40 m from a's edge needs 20 s at 2 m/s: fixes at `far` before 31.5
    # are noise for it, even after a's exit (at 22, exit_after after the first fix out).
    events = feed(tr, steps(12.0, 40.0, 52.5, 10.0))
    assert aisle_events(events) == [(K.EXIT, "a", 22.0), (K.ENTER, "far", 35.5)]
    assert tr.counters["zone_fixes_too_fast"] == 1 + 39  # 12.0, 12.5 … 31.0


def test_the_way_out_is_remembered_over_a_restart() -> None:
    first = tracker()
    in_a(first)
    feed(first, steps(12.0, 23.0, 52.5, 10.0))  # a exits at 22: a's last fix in was 5.5
    second = tracker()
    second.restore(json.loads(json.dumps(first.snapshot())))
    assert second.zones_of(DEV) == ("store",)
    assert feed(second, [(24.0, 52.5, 10.0), (26.0, 52.5, 10.0)]) == []
    assert second.counters["zone_fixes_too_fast"] == 1  # at 24; at 26, 20.5 s had passed


def test_every_event_says_where_with_the_runner_up() -> None:
    tr = tracker()
    events = in_a(tr, until=25.0)
    events += feed(tr, steps(25.0, 40.0, 12.5, 10.0)) + tr.tick(200.0)
    assert {e.kind for e in events} == set(K)
    for e in events:
        assert e.reason.keys() >= FIX_KEYS, e
        assert json.loads(json.dumps(dict(e.reason))) == dict(e.reason)
    reasons = {(e.kind, e.zone): e.reason for e in events}
    assert reasons[(K.DWELL, "a")]["runner_up"] is None  # b is 2.5 m away, accuracy 1.5 m
    assert reasons[(K.DWELL, "a")]["threshold_s"] == 20.0
    assert reasons[(K.ENTER, "a")]["runner_up"] is None  # b is 2.5 m away
    assert reasons[(K.EXIT, "a")]["runner_up"] == "b"  # superseded by b
    assert reasons[(K.VISIT_END, "store")]["timeout_s"] == 60.0
    near_b = feed(tracker(), steps(0.0, 6.0, 9.0, 10.0))  # 1 m from b, accuracy 1.5 m
    assert [e.reason["runner_up"] for e in near_b if e.kind is K.ENTER and e.zone == "a"] == ["b"]


def test_snapshots_carry_a_challenge_over_a_restart() -> None:
    first = tracker()
    in_a(first)
    feed(first, steps(6.0, 9.0, 12.5, 10.0))  # b's challenge is 3 s old
    second = tracker()
    second.restore(json.loads(json.dumps(first.snapshot())))
    rest = steps(9.0, 30.0, 12.5, 10.0)
    after_first, after_second = feed(first, rest) + first.tick(300), feed(second, rest)
    after_second += second.tick(300)
    assert after_first == after_second
    assert aisle_events(after_second)[:2] == [(K.EXIT, "a", 10.0), (K.ENTER, "b", 10.0)]


def test_a_snapshot_saved_before_last_in_existed_restores() -> None:
    first = tracker()
    in_a(first)
    saved = json.loads(json.dumps(first.snapshot()))
    for stay in saved["devices"][DEV]["stays"].values():
        del stay["last_in"]
    second = tracker()
    second.restore(saved)
    assert second.zones_of(DEV) == ("store", "a")
    events = feed(second, [(6.0, 52.5, 10.0)])  # last confirmed in a at its last fix (5.5)
    assert events == [] and second.counters["zone_fixes_too_fast"] == 1


points = st.lists(
    st.tuples(st.floats(0.0, 3.0), st.floats(3.0, 17.0), st.floats(4.0, 16.0), st.booleans()),
    max_size=80,
)


@settings(max_examples=80, deadline=None)
@given(points, st.floats(0.0, 1.5))
def test_a_device_is_never_in_two_rivals(
    walk: list[tuple[float, float, float, bool]], margin: float
) -> None:
    tr = ZoneTracker(zones(margin), VisitsConfig(gap=30.0, timeout=8.0))
    t, events = 0.0, []
    for dt, x, y, tick in walk:
        t += dt
        events += tr.tick(t) if tick else tr.update(fix(t, x, y))
        held = set(tr.zones_of(DEV))
        assert not {"a", "b"} <= held and not {"b", "promo"} <= held
    events += tr.tick(t + 100)
    assert [e.at for e in events] == sorted(e.at for e in events)
    inside: dict[str | None, bool] = {}
    for e in events:
        if e.kind in (K.ENTER, K.EXIT):
            assert inside.get(e.zone, False) is (e.kind is K.EXIT)
            inside[e.zone] = e.kind is K.ENTER
    assert not any(inside.values()) and tr.devices() == 0
