"""Zones from the belief: fixes carrying the probability per zone (`Fix.zone_probability`) —
the enter and exit thresholds, the band between them, per-zone overrides, rivals, the reason's
probabilities, snapshots; and point fixes deciding as before."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.config.model import VisitsConfig, Zone
from gateway.deliver.payloads import event_record
from gateway.events import EventKind, Fix, ZoneEvent
from gateway.zones.tracker import ZoneTracker
from tests.test_zones import box
from tests.test_zones import tracker as point_tracker

DEV = "ibeacon:8d8c1a2e-5b3f-4c1d-9e2a-0f6b7c8d9e10:1000:7"
K = EventKind
Probs = Mapping[str, float]


def zones() -> list[Zone]:
    """Two aisles side by side (rivals), a far one, and an end-cap with thresholds of its own."""
    return [
        Zone("store", "Magasin", box(0, 0, 60, 20), enter_after=0.0, exit_after=30.0),
        Zone("a", "Aisle A", box(5, 5, 10, 15), 4.0, 10.0),
        Zone("b", "Aisle B", box(10, 5, 15, 15), 4.0, 10.0),
        Zone("far", "Far aisle", box(50, 5, 55, 15), 4.0, 10.0),
        Zone("cap", "End-cap", box(30, 5, 33, 8), 2.0, 5.0, 0.0, 0.8, 0.5),
    ]


def tracker(enter: float = 0.6, leave: float = 0.3) -> ZoneTracker:
    visits = VisitsConfig(gap=600.0, timeout=60.0)
    return ZoneTracker(zones(), visits, enter_probability=enter, exit_probability=leave)


def bfix(t: float, probs: Probs, x: float = 7.5, y: float = 10.0) -> Fix:
    """A grid's fix: its point, and its belief's probabilities, most probable first."""
    ranked = tuple(sorted(probs.items(), key=lambda kv: -kv[1]))
    return Fix(t, DEV, x, y, 2.0, ("node-1", "node-2", "node-3"), ranked)


def feed(tr: ZoneTracker, t0: float, t1: float, probs: Probs, dt: float = 0.5) -> list[ZoneEvent]:
    """A fix every `dt` from t0 (included) to t1 (excluded), all with the same belief."""
    out: list[ZoneEvent] = []
    for k in range(round((t1 - t0) / dt)):
        out += tr.update(bfix(t0 + k * dt, probs))
    return out


def moves(events: Sequence[ZoneEvent], zone: str) -> list[tuple[EventKind, float]]:
    return [(e.kind, e.at) for e in events if e.zone == zone and e.kind in (K.ENTER, K.EXIT)]


def one(events: Sequence[ZoneEvent], kind: EventKind, zone: str) -> ZoneEvent:
    (event,) = [e for e in events if e.kind is kind and e.zone == zone]
    return event


# ---------------------------------------------------------------------------------- thresholds


def test_enters_once_above_the_enter_threshold_for_enter_after() -> None:
    tr = tracker()
    assert moves(feed(tr, 0.0, 4.0, {"store": 1.0, "a": 0.7}), "a") == []
    events = tr.update(bfix(4.0, {"store": 1.0, "a": 0.7}))
    enter = one(events, K.ENTER, "a")
    assert enter.at == 4.0 and enter.reason["inside_since"] == 0.0
    assert enter.reason["probability"] == 0.7
    assert tr.zones_of(DEV) == ("store", "a")


def test_a_probability_just_below_the_enter_threshold_never_enters() -> None:
    tr = tracker()
    assert moves(feed(tr, 0.0, 60.0, {"a": 0.59}), "a") == []
    assert tr.zones_of(DEV) == ()


def test_a_dip_below_the_exit_threshold_restarts_the_enter() -> None:
    tr = tracker()
    events = feed(tr, 0.0, 3.0, {"a": 0.7})
    events += tr.update(bfix(3.0, {"a": 0.29}))
    events += feed(tr, 3.5, 10.0, {"a": 0.7})
    assert moves(events, "a") == [(K.ENTER, 7.5)]  # 4 s after 3.5, the first fix back above
    assert one(events, K.ENTER, "a").reason["inside_since"] == 3.5


def test_the_band_neither_breaks_nor_completes_a_pending_enter() -> None:
    tr = tracker()
    events = feed(tr, 0.0, 1.0, {"a": 0.7})
    events += feed(tr, 1.0, 9.0, {"a": 0.45})  # past enter_after, in the band all along
    assert moves(events, "a") == []
    events += tr.update(bfix(9.0, {"a": 0.61}))
    enter = one(events, K.ENTER, "a")
    assert enter.at == 9.0 and enter.reason["inside_since"] == 0.0
    assert enter.reason["probability"] == 0.61


def test_the_band_does_not_start_a_stay() -> None:
    tr = tracker()
    events = feed(tr, 0.0, 20.0, {"a": 0.5})
    events += feed(tr, 20.0, 23.0, {"a": 0.7})
    assert moves(events, "a") == []  # the stay began at 20, not 0
    assert moves(tr.update(bfix(24.0, {"a": 0.7})), "a") == [(K.ENTER, 24.0)]


def test_exits_once_below_the_exit_threshold_for_exit_after() -> None:
    tr = tracker()
    events = feed(tr, 0.0, 20.0, {"a": 0.9})
    events += feed(tr, 20.0, 40.0, {"a": 0.1, "b": 0.2})
    assert moves(events, "a") == [(K.ENTER, 4.0), (K.EXIT, 30.0)]
    exit_a = one(events, K.EXIT, "a")
    assert exit_a.dwell_s == 20.0 and exit_a.reason["cause"] == "left"
    assert exit_a.reason["outside_since"] == 20.0 and exit_a.reason["probability"] == 0.1
    assert exit_a.reason["runner_up"] == "b" and exit_a.reason["runner_up_probability"] == 0.2


def test_a_zone_missing_from_the_belief_has_probability_zero() -> None:
    tr = tracker()
    events = feed(tr, 0.0, 10.0, {"a": 0.9})
    events += feed(tr, 10.0, 30.0, {"store": 1.0})  # the belief left a: a is not named
    assert moves(events, "a") == [(K.ENTER, 4.0), (K.EXIT, 20.0)]
    assert one(events, K.EXIT, "a").reason["probability"] == 0.0


def test_the_band_keeps_a_device_in_and_calls_off_its_exit() -> None:
    tr = tracker()
    events = feed(tr, 0.0, 10.0, {"a": 0.9})
    events += feed(tr, 10.0, 100.0, {"a": 0.31})  # in the band for 90 s: still in a
    assert moves(events, "a") == [(K.ENTER, 4.0)]
    events += feed(tr, 100.0, 105.0, {"a": 0.2})  # exit due at 110 …
    events += tr.update(bfix(105.0, {"a": 0.4}))  # … called off by a fix in the band
    events += feed(tr, 105.5, 130.0, {"a": 0.2})
    assert moves(events, "a") == [(K.ENTER, 4.0), (K.EXIT, 115.5)]
    assert one(events, K.EXIT, "a").dwell_s == 105.5  # up to its first fix out for good


def test_the_trackers_thresholds_and_a_zones_own() -> None:
    tr = tracker(0.8, 0.4)
    events = feed(tr, 0.0, 10.0, {"a": 0.75})
    assert moves(events, "a") == []  # 0.75 is below this tracker's 0.8
    events += feed(tr, 10.0, 20.0, {"a": 0.85})
    events += feed(tr, 20.0, 40.0, {"a": 0.35})  # below 0.4: out
    assert moves(events, "a") == [(K.ENTER, 14.0), (K.EXIT, 30.0)]
    cap = tracker()  # the end-cap's own: enter 0.8, exit 0.5, whatever the tracker's
    events = feed(cap, 0.0, 10.0, {"cap": 0.75})
    assert moves(events, "cap") == []
    events += feed(cap, 10.0, 20.0, {"cap": 0.85})
    events += feed(cap, 20.0, 40.0, {"cap": 0.45})
    assert moves(events, "cap") == [(K.ENTER, 12.0), (K.EXIT, 25.0)]


def test_unknown_zones_and_values_that_are_not_numbers_count_for_nothing() -> None:
    tr = tracker()
    events = feed(tr, 0.0, 10.0, {"nowhere": 0.9, "a": math.nan})
    assert tr.zones_of(DEV) == () and moves(events, "a") == []
    events = feed(tr, 10.0, 20.0, {"a": 0.9})
    events += feed(tr, 20.0, 40.0, {"a": math.nan})  # a NaN is probability 0: out
    assert moves(events, "a") == [(K.ENTER, 14.0), (K.EXIT, 30.0)]


# ---------------------------------------------------------------------------------- rivals


def test_a_rival_takes_over_at_its_enter_threshold_once_the_incumbent_is_below_its_exit() -> None:
    tr = tracker()
    events = feed(tr, 0.0, 10.0, {"a": 0.9})
    events += feed(tr, 10.0, 30.0, {"b": 0.65, "a": 0.35})  # a in the band: still confirmed
    assert moves(events, "b") == [] and tr.zones_of(DEV) == ("a",)
    # the point is 0.2 m inside b, shallower than the challenge depth: the belief decides
    for k in range(12):
        events += tr.update(bfix(30.0 + 0.5 * k, {"b": 0.7, "a": 0.2}, x=10.2))
    # b held since 10, but counts from a's last confirmation (29.5, its last fix in the band)
    assert moves(events, "b") == [(K.ENTER, 33.5)]
    assert moves(events, "a") == [(K.ENTER, 4.0), (K.EXIT, 33.5)]
    enter_b, exit_a = one(events, K.ENTER, "b"), one(events, K.EXIT, "a")
    assert enter_b.reason["inside_since"] == 29.5
    assert enter_b.reason["probability"] == 0.7 and enter_b.reason["runner_up"] == "a"
    assert enter_b.reason["runner_up_probability"] == 0.2
    assert exit_a.reason["cause"] == "superseded" and exit_a.reason["runner_up"] == "b"
    assert exit_a.reason["probability"] == 0.2 and exit_a.reason["runner_up_probability"] == 0.7
    assert exit_a.dwell_s == 30.0  # up to a's first fix below 0.3
    assert tr.counters["zone_takeovers"] == 1


def test_a_belief_that_jumps_faster_than_walking_is_noise_for_the_far_rival() -> None:
    tr = tracker()
    feed(tr, 0.0, 10.0, {"a": 0.9})
    events = feed(tr, 10.0, 20.0, {"far": 0.9})  # 40 m from a: 20 s of walking at 2 m/s
    assert moves(events, "far") == [] and tr.counters["zone_fixes_too_fast"] == 20
    events += feed(tr, 20.0, 35.0, {"far": 0.9})  # a's exit at 20; far reachable from 29.5
    assert moves(events, "a") == [(K.EXIT, 20.0)]
    assert moves(events, "far") == [(K.ENTER, 33.5)]


def test_the_runner_up_of_a_belief_is_its_likeliest_rival() -> None:
    tr = tracker()
    events = feed(tr, 0.0, 5.0, {"store": 1.0, "a": 0.7, "far": 0.05, "b": 0.2})
    enter_a = one(events, K.ENTER, "a")
    assert enter_a.reason["runner_up"] == "b" and enter_a.reason["runner_up_probability"] == 0.2
    enter_store = one(events, K.ENTER, "store")  # the store outline has no rival
    assert enter_store.reason["runner_up"] is None
    assert "runner_up_probability" not in enter_store.reason
    assert enter_store.reason["probability"] == 1.0


def test_reasons_go_out_as_json_with_their_probabilities() -> None:
    tr = tracker()
    events = feed(tr, 0.0, 10.0, {"store": 1.0, "a": 0.7, "b": 0.25})
    events += tr.tick(200.0)
    record = json.loads(json.dumps(event_record(one(events, K.ENTER, "a"))))
    assert record["reason"]["probability"] == 0.7
    assert record["reason"]["runner_up"] == "b"
    assert record["reason"]["runner_up_probability"] == 0.25
    for e in events:  # a zone's events have the zone's probability; visits' none
        assert ("probability" in e.reason) is (e.kind not in (K.VISIT_START, K.VISIT_END)), e


# ---------------------------------------------------------------------------------- point fixes


def test_point_fixes_give_probability_one_inside_and_zero_outside() -> None:
    tr = point_tracker()
    events: list[ZoneEvent] = []
    for k in range(20):
        events += tr.update(Fix(0.5 * k, DEV, 12.0, 12.0, 1.5, ("pi-a",)))
    for k in range(20):
        events += tr.update(Fix(10.0 + 0.5 * k, DEV, 30.0, 5.0, 1.5, ("pi-a",)))
    enter, exit_ = one(events, K.ENTER, "aisle"), one(events, K.EXIT, "aisle")
    assert enter.reason["probability"] == 1.0 and exit_.reason["probability"] == 0.0
    assert exit_.reason["runner_up"] is None and "runner_up_probability" not in exit_.reason


WALK = st.lists(
    st.tuples(
        st.floats(0.1, 4.0),  # seconds since the previous fix
        st.floats(5.0, 28.0),
        st.floats(5.0, 25.0),
    ),
    min_size=1,
    max_size=60,
)


@settings(max_examples=60, deadline=None)
@given(WALK, st.floats(0.05, 1.0), st.floats(0.0, 1.0))
def test_a_belief_of_one_inside_and_zero_outside_decides_as_the_point(
    walk: list[tuple[float, float, float]], enter_p: float, share: float
) -> None:
    """Zones that overlap and have no margin: the point's polygons, written as a belief of
    1 and 0, give the same events whatever the thresholds (0 < exit ≤ enter ≤ 1)."""
    by_point = point_tracker()
    by_belief = ZoneTracker(
        by_point.index.zones,
        VisitsConfig(600.0, 60.0),
        enter_probability=enter_p,
        exit_probability=max(enter_p * share, 1e-9),
    )
    t, got, want = 0.0, [], []
    for dt, x, y in walk:
        t += dt
        inside = by_point.index.containing(x, y)
        belief = tuple((z, 1.0) for z in inside)
        want += by_point.update(Fix(t, DEV, x, y, 1.5, ("pi-a",)))
        got += by_belief.update(Fix(t, DEV, x, y, 1.5, ("pi-a",), belief))
    want += by_point.tick(t + 700.0)
    got += by_belief.tick(t + 700.0)
    assert got == want


# ---------------------------------------------------------------------------------- snapshots


def test_a_snapshot_keeps_the_beliefs_last_fix_and_its_timers() -> None:
    first = tracker()
    feed(first, 0.0, 10.0, {"a": 0.9, "b": 0.05})
    feed(first, 10.0, 12.0, {"a": 0.1, "b": 0.4})  # exit of a due at 20
    saved = json.loads(json.dumps(first.snapshot()))
    assert saved["devices"][DEV]["last"]["zone_probability"] == [["b", 0.4], ["a", 0.1]]
    second = tracker()
    second.restore(saved)
    exit_a = one(second.tick(25.0), K.EXIT, "a")
    assert exit_a.at == 20.0 and exit_a.reason["probability"] == 0.1
    assert exit_a.reason["runner_up_probability"] == 0.4


def test_an_older_snapshot_without_probabilities_restores_its_last_fix_as_a_point() -> None:
    first = tracker()
    feed(first, 0.0, 10.0, {"a": 0.9})
    feed(first, 10.0, 12.0, {"a": 0.1})
    saved = json.loads(json.dumps(first.snapshot()))
    del saved["devices"][DEV]["last"]["zone_probability"]
    second = tracker()
    second.restore(saved)
    exit_a = one(second.tick(25.0), K.EXIT, "a")
    assert exit_a.at == 20.0 and exit_a.reason["probability"] == 1.0  # (7.5, 10) is in a
    point = point_tracker()
    feed_point = [Fix(float(k), DEV, 12.0, 12.0, 1.5, ("pi-a",)) for k in range(3)]
    for f in feed_point:
        point.update(f)
    assert "zone_probability" not in point.snapshot()["devices"][DEV]["last"]
