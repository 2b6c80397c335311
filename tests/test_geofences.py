"""GPS geofences: hysteresis, the accuracy rule, the phone's own transitions."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.config.load import load_config
from gateway.config.model import Geofence, LatLon
from gateway.decode.inbound import Transition, TransitionEvent
from gateway.errors import InvalidInput
from gateway.events import EventKind, ZoneEvent
from gateway.zones.geofences import EARTH_RADIUS_M, GeofenceTracker, haversine_m

ROOT = Path(__file__).resolve().parent.parent
M_PER_DEG_LAT = math.pi / 180 * EARTH_RADIUS_M
CENTRE = LatLon(48.8592, 2.3795)
PHONE = "phone:tok-1"


def circle(enter_after: float = 0.0, exit_after: float = 0.0, radius: float = 300.0) -> Geofence:
    return Geofence(
        "approach",
        "Abords du magasin",
        center=CENTRE,
        radius_m=radius,
        enter_after=enter_after,
        exit_after=exit_after,
    )


def north(metres: float, of: LatLon = CENTRE) -> tuple[float, float]:
    """The point `metres` due north of `of` (a negative value: due south)."""
    return of.lat + metres / M_PER_DEG_LAT, of.lon


def kinds(events: list[ZoneEvent]) -> list[tuple[float, EventKind, str | None]]:
    return [(e.at, e.kind, e.zone) for e in events]


@pytest.fixture(scope="module")
def shipped() -> tuple[Geofence, ...]:
    """The reference store's geofences: a 300 m circle and the car park polygon."""
    return load_config(ROOT / "config.example.yaml").geofences


def test_haversine_along_a_meridian() -> None:
    lat, lon = north(1234.5)
    assert haversine_m(CENTRE.lat, CENTRE.lon, lat, lon) == pytest.approx(1234.5, abs=1e-6)
    assert haversine_m(0, 0, 0, 180) == pytest.approx(math.pi * EARTH_RADIUS_M)


# -- circles --------------------------------------------------------------------------------


def test_circle_enter_and_exit_with_hysteresis() -> None:
    tracker = GeofenceTracker([circle(enter_after=10, exit_after=60)])
    assert tracker.location(0, PHONE, *north(100), 10) == []
    assert tracker.tick(9.5) == []
    [enter] = tracker.tick(10)
    assert (enter.at, enter.kind, enter.zone, enter.device) == (
        10,
        EventKind.ENTER,
        "approach",
        PHONE,
    )
    assert enter.reason["source"] == "gps"
    assert enter.reason["distance_m"] == pytest.approx(100)
    assert enter.reason["inside_since"] == 0
    assert tracker.inside(PHONE) == ("approach",)
    assert tracker.location(100, PHONE, *north(-500), 10) == []
    assert tracker.location(130, PHONE, *north(800), 10) == []
    assert tracker.tick(159) == []
    [exit_] = tracker.tick(1000)
    assert (exit_.at, exit_.kind, exit_.dwell_s) == (160, EventKind.EXIT, 100)
    assert exit_.reason["outside_since"] == 100
    assert tracker.inside(PHONE) == ()


def test_without_delays_events_come_at_the_fix() -> None:
    tracker = GeofenceTracker([circle()])
    assert kinds(tracker.location(5, PHONE, *north(0), 0)) == [(5, EventKind.ENTER, "approach")]
    assert kinds(tracker.location(9, PHONE, *north(301), 0)) == [(9, EventKind.EXIT, "approach")]


def test_a_return_before_the_delay_calls_the_change_off() -> None:
    tracker = GeofenceTracker([circle(enter_after=10, exit_after=60)])
    tracker.location(0, PHONE, *north(100), 10)
    assert tracker.location(5, PHONE, *north(400), 10) == []  # left before 10 s inside
    assert tracker.tick(1000) == [] and tracker.inside(PHONE) == ()
    tracker.location(2000, PHONE, *north(0), 10)
    assert len(tracker.tick(2010)) == 1
    tracker.location(2020, PHONE, *north(400), 10)
    assert tracker.location(2050, PHONE, *north(200), 10) == []  # back before 60 s outside
    assert tracker.tick(5000) == [] and tracker.inside(PHONE) == ("approach",)


def test_the_accuracy_circle_must_lie_wholly_on_one_side() -> None:
    tracker = GeofenceTracker([circle(exit_after=30)])
    assert tracker.location(0, PHONE, *north(250), 60) == []  # 190..310 m: straddles
    assert tracker.tick(100) == [] and tracker.inside(PHONE) == ()
    assert len(tracker.location(110, PHONE, *north(250), 49)) == 1  # 201..299 m: inside
    assert tracker.location(120, PHONE, *north(350), 100) == []  # 250..450 m: straddles
    assert tracker.tick(1000) == [] and tracker.inside(PHONE) == ("approach",)
    tracker.location(1010, PHONE, *north(350), 40)  # 310..390 m: outside
    [exit_] = tracker.tick(1040)
    assert (exit_.kind, exit_.dwell_s, exit_.reason["acc_m"]) == (EventKind.EXIT, 900, 40)


def test_a_fix_of_unknown_accuracy_is_a_point() -> None:
    tracker = GeofenceTracker([circle()])
    [enter] = tracker.location(0, PHONE, *north(299), None)
    assert enter.reason["acc_m"] is None


def test_fixes_that_are_not_numbers_are_ignored() -> None:
    tracker = GeofenceTracker([circle()])
    lat, lon = north(0)
    for bad in ((math.nan, lat, lon, 5.0), (0, math.inf, lon, 5.0), (0, lat, lon, math.nan)):
        assert tracker.location(bad[0], PHONE, bad[1], bad[2], bad[3]) == []
    assert tracker.inside(PHONE) == ()


def test_a_late_fix_counts_as_of_the_latest_time() -> None:
    tracker = GeofenceTracker([circle()])
    tracker.tick(100)
    [enter] = tracker.location(50, PHONE, *north(0), 5)
    assert enter.at == 100


def test_devices_are_tracked_apart() -> None:
    tracker = GeofenceTracker([circle(enter_after=10)])
    tracker.location(0, "phone:a", *north(0), 5)
    tracker.location(5, "phone:b", *north(0), 5)
    assert [(e.at, e.device) for e in tracker.tick(20)] == [(10, "phone:a"), (15, "phone:b")]


# -- polygons -------------------------------------------------------------------------------


def test_the_shipped_car_park_polygon(shipped: tuple[Geofence, ...]) -> None:
    tracker = GeofenceTracker(shipped)
    car_park = LatLon(48.8598, 2.3804)  # its centre; the box is about 58 × 44 m
    events = tracker.location(0, PHONE, car_park.lat, car_park.lon, 5)
    assert kinds(events) == [(0, EventKind.ENTER, "store-approach")]  # no delay configured
    assert "distance_m" in events[0].reason
    [enter] = tracker.tick(30)  # enter_after: 30s
    assert (enter.zone, enter.at, enter.reason["inside_since"]) == ("parking", 30, 0)
    assert "distance_m" not in enter.reason
    assert tracker.location(40, PHONE, *north(100, car_park), 10) == []  # 78 m beyond the edge
    assert tracker.inside(PHONE) == ("store-approach", "parking")
    [exit_] = tracker.tick(200)  # exit_after: 2m
    assert (exit_.zone, exit_.at, exit_.dwell_s) == ("parking", 160, 40)


def test_the_accuracy_rule_on_a_polygon(shipped: tuple[Geofence, ...]) -> None:
    tracker = GeofenceTracker([f for f in shipped if f.id == "parking"])
    car_park = LatLon(48.8598, 2.3804)
    assert tracker.location(0, PHONE, car_park.lat, car_park.lon, 30) == []  # 22 m to an edge
    assert tracker.tick(100) == []
    tracker.location(200, PHONE, car_park.lat, car_park.lon, 15)
    assert len(tracker.tick(230)) == 1
    assert tracker.location(300, PHONE, *north(100, car_park), 100) == []  # straddles
    assert tracker.tick(1000) == [] and tracker.inside(PHONE) == ("parking",)


def test_a_polygon_border_point_is_inside() -> None:
    square = ((2.0, 48.0), (2.001, 48.0), (2.001, 48.001), (2.0, 48.001))
    tracker = GeofenceTracker([Geofence("sq", "Square", outline=square)])
    assert len(tracker.location(0, PHONE, 48.0005, 2.0, 0)) == 1  # on the western edge
    assert len(tracker.location(1, PHONE, 48.0005, 1.9999, 0)) == 1  # 7 m west: exit


# -- transitions ----------------------------------------------------------------------------


def test_a_transition_applies_at_once_by_id(shipped: tuple[Geofence, ...]) -> None:
    tracker = GeofenceTracker(shipped)
    [enter] = tracker.transition(10, PHONE, "parking", True, lat=48.8598, lon=2.3804)
    assert (enter.at, enter.kind, enter.zone) == (10, EventKind.ENTER, "parking")
    assert enter.reason["source"] == "transition" and enter.reason["lat"] == 48.8598
    assert tracker.transition(20, PHONE, "parking", True) == []  # already in
    [exit_] = tracker.transition(70, PHONE, "parking", False)
    assert (exit_.kind, exit_.dwell_s) == (EventKind.EXIT, 60)
    assert tracker.transition(80, PHONE, "parking", False) == []  # already out


def test_a_transition_by_name_and_from_owntracks(shipped: tuple[Geofence, ...]) -> None:
    tracker = GeofenceTracker(shipped)
    assert len(tracker.transition(0, PHONE, "  parking CLIENTS ", True)) == 1
    # the phone's own region id is unknown here, its description names the geofence
    owntracks = Transition(5.0, TransitionEvent.ENTER, rid="f7676c", desc="Abords du magasin")
    [enter] = tracker.transition(owntracks.at, PHONE, owntracks.names, owntracks.enter)
    assert enter.zone == "store-approach"
    assert tracker.inside(PHONE) == ("store-approach", "parking")


def test_ids_are_matched_before_names() -> None:
    a = Geofence("a", "b", center=CENTRE, radius_m=10)
    b = Geofence("b", "x", center=CENTRE, radius_m=10)
    tracker = GeofenceTracker([a, b])
    assert [e.zone for e in tracker.transition(0, PHONE, "b", True)] == ["b"]
    assert [e.zone for e in tracker.transition(1, PHONE, ["nope", "a"], True)] == ["a"]


def test_an_unknown_region_changes_nothing() -> None:
    tracker = GeofenceTracker([circle()])
    tracker.location(0, PHONE, *north(0), 5)
    assert tracker.transition(5, PHONE, "somewhere else", False) == []
    assert tracker.transition(5, PHONE, [], False) == []
    assert tracker.inside(PHONE) == ("approach",)


def test_a_called_off_deadline_never_settles_a_later_change() -> None:
    tracker = GeofenceTracker([circle(enter_after=10, exit_after=60)])
    tracker.location(0, PHONE, *north(0), 5)  # an enter due at 10 …
    tracker.transition(2, PHONE, "approach", True)  # … made moot by the phone
    tracker.location(5, PHONE, *north(900), 5)  # an exit due at 65
    assert tracker.tick(64) == []
    [exit_] = tracker.tick(65)
    assert (exit_.at, exit_.dwell_s) == (65, 3)


def test_a_transition_calls_off_a_pending_change() -> None:
    tracker = GeofenceTracker([circle(enter_after=10, exit_after=60)])
    tracker.location(0, PHONE, *north(0), 5)
    assert tracker.transition(3, PHONE, "approach", False) == []  # the phone says: not in
    assert tracker.tick(100) == [] and tracker.inside(PHONE) == ()
    tracker.transition(200, PHONE, "approach", True)
    tracker.location(210, PHONE, *north(900), 5)
    assert tracker.transition(220, PHONE, "approach", True) == []  # the phone says: still in
    assert tracker.tick(1000) == [] and tracker.inside(PHONE) == ("approach",)


# -- forget, reasons, config ----------------------------------------------------------------


def test_forget_drops_stays_and_pending_changes() -> None:
    tracker = GeofenceTracker([circle(), circle(enter_after=50, radius=400)])
    tracker.location(0, PHONE, *north(350), 5)  # in the 400 m circle only, pending
    tracker.transition(1, PHONE, "approach", True)
    tracker.forget(PHONE)
    assert tracker.inside(PHONE) == ()
    assert tracker.tick(1000) == []
    tracker.forget("phone:never-seen")


def test_reasons_are_json() -> None:
    tracker = GeofenceTracker([circle(exit_after=5)])
    events = tracker.location(0, PHONE, *north(0), 5)
    events += tracker.location(10, PHONE, *north(900), 5)
    events += tracker.tick(20)
    events += tracker.transition(30, PHONE, "approach", True, lat=math.nan, acc_m=3)
    assert len(events) == 3
    for event in events:
        json.dumps(dict(event.reason), allow_nan=False)
    assert events[-1].reason["lat"] is None


def test_a_geofence_needs_a_shape() -> None:
    with pytest.raises(InvalidInput, match="geofence 'empty' needs a polygon or a circle"):
        GeofenceTracker([Geofence("empty", "Empty")])


# -- properties -----------------------------------------------------------------------------

SQUARE = ((2.3780, 48.8585), (2.3790, 48.8585), (2.3790, 48.8592), (2.3780, 48.8592))
FENCES = [circle(enter_after=20, exit_after=40), Geofence("sq", "Square", outline=SQUARE)]
DEVICES = st.sampled_from(["phone:a", "phone:b"])


@dataclass(frozen=True)
class Op:
    """One input to the tracker: `kind` location | transition | tick | forget."""

    kind: str
    wait: float = 0.0
    device: str = ""
    north_m: float = 0.0
    acc_m: float | None = None
    region: str = ""
    enter: bool = False

    def apply(self, tracker: GeofenceTracker, now: float) -> list[ZoneEvent]:
        if self.kind == "location":
            lat, lon = north(self.north_m)
            return tracker.location(now, self.device, lat, lon - 0.001, self.acc_m)
        if self.kind == "transition":
            return tracker.transition(now, self.device, self.region, self.enter)
        if self.kind == "forget":
            tracker.forget(self.device)
            return []
        return tracker.tick(now)


OPS = st.lists(
    st.one_of(
        st.builds(
            Op,
            kind=st.just("location"),
            wait=st.floats(0, 60),
            device=DEVICES,
            north_m=st.floats(-900, 900),
            acc_m=st.none() | st.floats(0, 200),
        ),
        st.builds(
            Op,
            kind=st.just("transition"),
            wait=st.floats(0, 60),
            device=DEVICES,
            region=st.sampled_from(["approach", "Square", "unknown"]),
            enter=st.booleans(),
        ),
        st.builds(Op, kind=st.just("tick"), wait=st.floats(0, 120)),
        st.builds(Op, kind=st.just("forget"), device=DEVICES),
    ),
    max_size=40,
)


@given(OPS)
def test_enter_and_exit_alternate_per_device_and_geofence(ops: list[Op]) -> None:
    tracker = GeofenceTracker(FENCES)
    now, events = 0.0, []
    last: dict[tuple[str, str | None], EventKind] = {}
    for op in ops:
        now += op.wait
        got = op.apply(tracker, now)
        if op.kind == "forget":
            last = {k: v for k, v in last.items() if k[0] != op.device}
        for event in got:
            key = (event.device, event.zone)
            expected = EventKind.EXIT if last.get(key) is EventKind.ENTER else EventKind.ENTER
            assert event.kind is expected
            last[key] = event.kind
        events += got
    assert [e.at for e in events] == sorted(e.at for e in events)
    for device in ("phone:a", "phone:b"):
        inside = {z for (d, z), kind in last.items() if d == device and kind is EventKind.ENTER}
        assert set(tracker.inside(device)) == inside
