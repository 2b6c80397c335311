"""Zones and visits: hysteresis, dwell thresholds, overlaps, visits, snapshot/restore."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.config.model import Outline, VisitsConfig, Zone
from gateway.errors import InvalidInput
from gateway.events import EventKind, Fix, ZoneEvent
from gateway.zones.tracker import ZoneTracker

DEV = "ibeacon:8d8c1a2e-5b3f-4c1d-9e2a-0f6b7c8d9e10:1000:1"
K = EventKind


def box(x0: float, y0: float, x1: float, y1: float) -> Outline:
    return ((x0, y0), (x1, y0), (x1, y1), (x0, y1))


def zones(margin: float = 0.0) -> list[Zone]:
    return [
        Zone("store", "Magasin", box(0, 0, 40, 25), enter_after=0.0, exit_after=30.0),
        Zone("aisle", "Rayon", box(10, 10, 20, 20), 3.0, 5.0, margin_m=margin),
        Zone("promo", "Promo", box(15, 10, 25, 20), 2.0, 5.0),  # overlaps the aisle
    ]


def tracker(margin: float = 0.0) -> ZoneTracker:
    return ZoneTracker(zones(margin), VisitsConfig(gap=600.0, timeout=60.0))


def fix(t: float, x: float, y: float, device: str = DEV) -> Fix:
    return Fix(t, device, x, y, 1.5, ("pi-a", "pi-b"))


def feed(tr: ZoneTracker, points: Sequence[tuple[float, float, float]]) -> list[ZoneEvent]:
    out: list[ZoneEvent] = []
    for t, x, y in points:
        out += tr.update(fix(t, x, y))
    return out


def kinds(events: list[ZoneEvent], zone: str) -> list[tuple[EventKind, float]]:
    return [(e.kind, e.at) for e in events if e.zone == zone]


def test_enter_only_after_enter_after() -> None:
    tr = tracker()
    events = feed(tr, [(0, 12, 12), (1, 12, 12), (2, 12, 12)])
    assert kinds(events, "aisle") == []
    events = feed(tr, [(3, 12, 12)])
    assert kinds(events, "aisle") == [(K.ENTER, 3)]
    enter = events[0]
    assert enter.reason["inside_since"] == 0 and enter.reason["anchors"] == ["pi-a", "pi-b"]
    assert json.loads(json.dumps(dict(enter.reason))) == dict(enter.reason)
    assert enter.customer is None and tr.zones_of(DEV) == ("store", "aisle")


def test_a_short_stay_does_not_enter() -> None:
    tr = tracker()
    events = feed(tr, [(0, 12, 12), (2, 12, 12), (2.5, 5, 5), (3, 12, 12), (5, 12, 12)])
    assert kinds(events, "aisle") == []  # the excursion restarted the enter_after clock
    assert kinds(feed(tr, [(6, 12, 12)]), "aisle") == [(K.ENTER, 6)]


def test_no_flapping_at_the_border_then_exit_with_dwell() -> None:
    tr = tracker()
    events = feed(tr, [(t, 12, 12) for t in range(4)])
    # Oscillating across the border, never outside for exit_after (5 s).
    events += feed(tr, [(t, 9.5 if t % 2 else 10.5, 12) for t in range(4, 25)])
    assert kinds(events, "aisle") == [(K.ENTER, 3)]
    events = feed(tr, [(25, 5, 5), (27, 5, 5)])
    assert kinds(events, "aisle") == []
    assert tr.tick(29.9) == []
    exits = tr.tick(30.0)
    assert [(e.kind, e.zone, e.at, e.dwell_s) for e in exits] == [(K.EXIT, "aisle", 30.0, 25.0)]
    assert exits[0].reason["outside_since"] == 25 and exits[0].reason["cause"] == "left"


def test_margin_keeps_a_device_inside_near_the_border() -> None:
    tr = tracker(margin=1.0)
    feed(tr, [(t, 12, 12) for t in range(4)])
    events = feed(tr, [(t, 9.5, 12) for t in range(4, 20)])  # 0.5 m outside: within margin
    assert kinds(events, "aisle") == []
    events = feed(tr, [(t, 8.5, 12) for t in range(20, 26)])  # 1.5 m outside
    assert kinds(events, "aisle") == [(K.EXIT, 25)]
    assert tr.zones_of(DEV) == ("store",)


def test_dwell_thresholds_once_per_stay() -> None:
    tr = ZoneTracker(zones(), VisitsConfig(600.0, 60.0), {"aisle": [5.0, 10.0], "nope": [1.0]})
    events = feed(tr, [(t / 2, 12, 12) for t in range(60)])
    dwell = [(e.at, e.dwell_s) for e in events if e.kind is K.DWELL]
    assert dwell == [(5.0, 5.0), (10.0, 10.0)]
    events = feed(tr, [(t, 2, 2) for t in range(30, 40)])
    assert kinds(events, "aisle") == [(K.EXIT, 35)]
    events = feed(tr, [(t, 12, 12) for t in range(40, 60)])
    assert [e.at for e in events if e.kind is K.DWELL] == [45.0, 50.0]  # a new stay


def test_no_dwell_while_leaving_but_fires_on_return() -> None:
    tr = ZoneTracker(zones(), VisitsConfig(600.0, 60.0), {"aisle": [6.0]})
    events = feed(tr, [(t, 12, 12) for t in range(5)] + [(5, 2, 2), (7, 2, 2)])
    assert [e for e in events if e.kind is K.DWELL] == []
    events = feed(tr, [(8, 12, 12)])
    assert [(e.kind, e.at) for e in events] == [(K.DWELL, 8)]


def test_new_thresholds_apply_to_current_stays() -> None:
    tr = tracker()
    feed(tr, [(t, 12, 12) for t in range(20)])
    tr.set_dwell_thresholds({"aisle": [10.0, 40.0]})
    assert [(e.kind, e.at) for e in tr.tick(20.0)] == [(K.DWELL, 19.0)]
    assert [(e.kind, e.at) for e in tr.tick(41.0)] == [(K.DWELL, 40.0)]


def test_overlapping_zones_are_tracked_independently() -> None:
    tr = tracker()
    events = feed(tr, [(t, 17, 15) for t in range(5)])
    assert kinds(events, "aisle") == [(K.ENTER, 3)]
    assert kinds(events, "promo") == [(K.ENTER, 2)]
    events = feed(tr, [(t, 22, 15) for t in range(5, 12)])  # promo only
    assert kinds(events, "aisle") == [(K.EXIT, 10)] and kinds(events, "promo") == []
    assert tr.occupancy() == {"store": 1, "aisle": 0, "promo": 1}


def test_visit_start_end_and_reopen() -> None:
    tr = tracker()
    events = feed(tr, [(t, 12, 12) for t in range(100, 110)])
    assert [(e.kind, e.zone, e.at) for e in events if e.kind is K.VISIT_START] == [
        (K.VISIT_START, "store", 100)
    ]
    assert tr.devices() == 1
    assert tr.tick(168.9) == []
    end = tr.tick(169.0)
    assert [(e.kind, e.zone) for e in end] == [
        (K.EXIT, "store"),
        (K.EXIT, "aisle"),
        (K.VISIT_END, "store"),
    ]
    assert (
        end[-1].dwell_s == 9.0 and end[1].dwell_s == 9.0 and end[1].reason["cause"] == "visit_end"
    )
    assert tr.devices() == 0 and tr.occupancy()["aisle"] == 0
    reopened = feed(tr, [(400, 12, 12)])  # within the gap (600 s) of the end
    assert [e.kind for e in reopened] == [K.ENTER]  # store enter, no visit_start
    end2 = tr.tick(1000.0)
    assert end2[-1].kind is K.VISIT_END and end2[-1].dwell_s == 300.0
    again = feed(tr, [(1700, 12, 12)])  # more than the gap after that end
    assert [e.kind for e in again] == [K.VISIT_START, K.ENTER]


def test_snapshot_restore_continues_timers() -> None:
    thresholds = {"aisle": [8.0]}
    first = ZoneTracker(zones(), VisitsConfig(600.0, 60.0), thresholds)
    before = feed(first, [(t, 12, 12) for t in range(6)] + [(6, 22, 15)])
    saved = json.loads(json.dumps(first.snapshot()))
    second = ZoneTracker(zones(), VisitsConfig(600.0, 60.0), thresholds)
    second.restore(saved)
    assert second.zones_of(DEV) == first.zones_of(DEV) and second.occupancy() == first.occupancy()
    rest = [(7, 12, 12), *[(t, 22, 15) for t in range(8, 20)]]
    after_first = feed(first, rest) + first.tick(200)
    after_second = feed(second, rest) + second.tick(200)
    assert after_first == after_second
    assert K.VISIT_START not in [e.kind for e in after_second]
    assert [e.kind for e in before + after_second if e.zone == "aisle"] == [
        K.ENTER,
        K.DWELL,
        K.EXIT,
    ]


def test_restore_rejects_garbage_with_a_message() -> None:
    tr = tracker()
    for bad in ({"v": 99}, {"v": 1, "devices": {DEV: {"last": 3}}}):
        with pytest.raises(InvalidInput, match=r"snapshot.*start afresh"):
            tr.restore(bad)


def test_forget_is_silent() -> None:
    tr = tracker()
    feed(tr, [(t, 12, 12) for t in range(5)])
    tr.forget(DEV)
    assert tr.tick(1000) == [] and tr.devices() == 0
    assert set(tr.occupancy().values()) == {0}


points = st.lists(
    st.tuples(
        st.floats(0.0, 4.0),
        st.sampled_from([DEV, "phone:b"]),
        st.floats(-5.0, 30.0),
        st.floats(5.0, 25.0),
        st.booleans(),
    ),
    max_size=80,
)


@settings(max_examples=80, deadline=None)
@given(points, st.floats(0.0, 2.0))
def test_event_streams_are_well_formed(
    steps: list[tuple[float, str, float, float, bool]], margin: float
) -> None:
    tr = ZoneTracker(zones(margin), VisitsConfig(gap=30.0, timeout=8.0), {"aisle": [2.0, 6.0]})
    t, events = 0.0, []
    for dt, device, x, y, tick in steps:
        t += dt * 5 if tick else dt
        events += tr.tick(t) if tick else tr.update(Fix(t, device, x, y, 1.0, ("a",)))
    events += tr.tick(t + 100)
    assert [e.at for e in events] == sorted(e.at for e in events)
    state: dict[tuple[str, str | None], bool] = defaultdict(bool)
    visit: dict[str, EventKind] = {}  # the last visit event of each device
    for e in events:
        key = (e.device, e.zone)
        assert e.device in visit or e.kind is K.VISIT_START  # a visit starts everything
        if e.kind is K.ENTER:
            assert not state[key]
        if e.kind in (K.EXIT, K.DWELL):
            assert state[key] and e.dwell_s is not None and e.dwell_s >= 0
        if e.kind in (K.ENTER, K.EXIT):
            state[key] = e.kind is K.ENTER
        if e.kind is K.VISIT_START:
            assert visit.get(e.device, K.VISIT_END) is K.VISIT_END
        if e.kind is K.VISIT_END:  # a re-opened visit ends again without a new start
            assert not any(v for (d, _), v in state.items() if d == e.device)
        if e.kind in (K.VISIT_START, K.VISIT_END):
            visit[e.device] = e.kind
    assert not any(state.values()) and set(visit.values()) <= {K.VISIT_END}
    assert tr.devices() == 0 and set(tr.occupancy().values()) <= {0}
