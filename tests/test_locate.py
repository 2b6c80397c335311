"""Locate: the path-loss model, the RSSI filter and the position estimate."""

from __future__ import annotations

import dataclasses
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.config.model import Anchor, AnchorKind, FilterKind, PositionMethod
from gateway.events import Fix, Observation
from gateway.locate.grid import GridSettings
from gateway.locate.grid import PositionGrid as Grid
from gateway.locate.locator import (
    AUTO_GRID_WEIGHT,
    AUTO_REFRESH_S,
    Locator,
    rssi_to_distance,
    weighted_centroid,
    weighted_multilateration,
)
from gateway.locate.rssifilter import FILTERS, KalmanFilter, RssiFilter, WindowIqrFilter

DEV = "ibeacon:8d8c1a2e-5b3f-4c1d-9e2a-0f6b7c8d9e10:1000:1"
SQUARE = (
    Anchor("a", AnchorKind.SCANNER, 0.0, 0.0, rssi_at_1m=-59, path_loss_exponent=2.0),
    Anchor("b", AnchorKind.SCANNER, 20.0, 0.0, rssi_at_1m=-61, path_loss_exponent=2.5),
    Anchor("c", AnchorKind.SCANNER, 20.0, 20.0, rssi_at_1m=-59, path_loss_exponent=2.2),
    Anchor("d", AnchorKind.SCANNER, 0.0, 20.0, rssi_at_1m=-58, path_loss_exponent=3.0),
)


def rssi_at(anchor: Anchor, distance: float) -> float:
    """The inverse of the path-loss model: what the anchor hears at `distance`."""
    return anchor.rssi_at_1m - 10 * anchor.path_loss_exponent * math.log10(distance)


def test_distance_model_on_plain_values() -> None:
    assert rssi_to_distance(-59, -59, 2.0) == pytest.approx(1.0)
    assert rssi_to_distance(-79, -59, 2.0) == pytest.approx(10.0)
    assert rssi_to_distance(-81, -59, 2.2) == pytest.approx(10.0)
    assert rssi_to_distance(-89, -59, 3.0) == pytest.approx(10.0)
    assert rssi_to_distance(-20, -59, 2.0) == pytest.approx(0.3)  # clamped, not 0.01 m
    assert rssi_to_distance(-200, -59, 2.0) == pytest.approx(60.0)


def test_filter_rejects_a_single_outlier_either_way() -> None:
    f = RssiFilter()
    for _ in range(5):
        f.update(-70)
    assert f.update(-40) == pytest.approx(-70)  # a reflection spike
    assert f.update(-70) == pytest.approx(-70)
    assert f.update(-98) == pytest.approx(-70)  # a deep fade
    assert f.update(-70) == pytest.approx(-70)


def test_filter_follows_an_approach_fast_and_a_retreat_slowly() -> None:
    near, far = RssiFilter(), RssiFilter()
    for _ in range(5):
        near.update(-80)
        far.update(-60)
    for _ in range(3):
        near.update(-60)
        far.update(-80)
    assert near.value == pytest.approx(-60, abs=3.0)
    assert far.value > -75  # still believes the phone is closer than it now looks
    assert abs(near.value + 60) < abs(far.value + 80)


def test_auto_puts_one_link_on_its_anchor_and_two_between_them_nearer_the_louder() -> None:
    loc = Locator(SQUARE, min_interval_s=0.0, settle_s=0.0, method=PositionMethod.AUTO)
    one = loc.observe(Observation(100.0, DEV, "a", -80.0))
    assert one is not None and (one.x, one.y, one.anchors) == (0.0, 0.0, ("a",))
    assert one.accuracy_m >= 1.0
    two = loc.observe(Observation(100.0, DEV, "c", -65.0))  # same advert, refines the instant
    assert two is not None and set(two.anchors) == {"a", "c"}
    # on the segment a (0, 0) → c (20, 20), much nearer c: 1/d³ weights, c is 15 dB louder
    assert two.x == pytest.approx(two.y) and 18.0 < two.x < 20.0


def test_the_centroid_method_keeps_a_device_heard_by_two_anchors_on_the_louder() -> None:
    """`locate.method: centroid` is the method of earlier versions, unchanged."""
    loc = Locator(SQUARE, min_interval_s=0.0, settle_s=0.0, method=PositionMethod.CENTROID)
    loc.observe(Observation(100.0, DEV, "a", -80.0))
    fix = loc.observe(Observation(100.0, DEV, "c", -65.0))
    assert fix is not None and (fix.x, fix.y, fix.anchors) == (20.0, 20.0, ("c",))


def test_strongest_method_is_the_loudest_fresh_anchor_whatever_else_is_heard() -> None:
    loc = Locator(SQUARE, min_interval_s=0.0, settle_s=0.0, method=PositionMethod.STRONGEST)
    for anchor, rssi in (("a", -80.0), ("b", -75.0), ("c", -65.0), ("d", -70.0)):
        fix = loc.observe(Observation(100.0, DEV, anchor, rssi))
    assert fix is not None and (fix.x, fix.y, fix.anchors) == (20.0, 20.0, ("c",))


SMALL = tuple(  # an 8 m square: the auto window (10 m around the centroid) covers its grid
    dataclasses.replace(a, x=a.x * 0.4, y=a.y * 0.4) for a in SQUARE
)


def test_auto_draws_the_centroid_towards_the_grid_from_three_links_and_is_the_centroid_below() -> (
    None
):
    links = [("a", -70.0), ("c", -62.0), ("b", -66.0), ("d", -69.0)]
    for n in (1, 2, 3, 4):
        fixes = {
            method: Locator(SMALL, method=method).observe_scan(100.0, DEV, links[:n])
            for method in (PositionMethod.AUTO, PositionMethod.GRID, PositionMethod.CENTROID)
        }
        auto, grid, centroid = (fixes[m] for m in PositionMethod if m in fixes)
        assert auto is not None and grid is not None and centroid is not None
        if n == 1:  # that anchor, as the centroid method
            assert (auto.x, auto.y, auto.anchors) == (centroid.x, centroid.y, centroid.anchors)
            continue
        if n == 2:  # between the pair, nearer the louder (c); the centroid method: on c
            a, c = SMALL[0], SMALL[2]
            assert (centroid.x, centroid.y) == (c.x, c.y)
            assert auto.x == pytest.approx(auto.y) and (a.x + c.x) / 2 < auto.x < c.x
            continue
        # the grid's first fix is from a flat prior: the estimate auto weighs
        want = (
            centroid.x + AUTO_GRID_WEIGHT * (grid.x - centroid.x),
            centroid.y + AUTO_GRID_WEIGHT * (grid.y - centroid.y),
        )
        assert math.hypot(grid.x - centroid.x, grid.y - centroid.y) > 0.5
        assert auto.x == pytest.approx(want[0], abs=1e-3)
        assert auto.y == pytest.approx(want[1], abs=1e-3)
        assert set(auto.anchors) == {a for a, _ in links[:n]}


def test_auto_keeps_the_grid_s_pull_for_a_while_and_no_belief() -> None:
    loc = Locator(SMALL, method=PositionMethod.AUTO, rssi_filter=FilterKind.RAW)
    first = [("a", -70.0), ("c", -62.0), ("b", -66.0), ("d", -69.0)]
    moved = [("a", -64.0), ("c", -62.0), ("b", -70.0), ("d", -69.0)]  # c still the loudest
    one = loc.observe_scan(100.0, DEV, first)
    soon = loc.observe_scan(100.0 + AUTO_REFRESH_S / 2, DEV, moved)
    later = loc.observe_scan(100.0 + AUTO_REFRESH_S * 2, DEV, moved)
    fresh = Locator(SMALL, method=PositionMethod.AUTO, rssi_filter=FilterKind.RAW)
    anew = fresh.observe_scan(0.0, DEV, moved)
    assert one is not None and soon is not None and later is not None and anew is not None
    assert (later.x, later.y) == pytest.approx((anew.x, anew.y))  # recomputed: as from scratch
    assert (soon.x, soon.y) != pytest.approx((anew.x, anew.y))  # the earlier pull, reused
    centroid = Locator(SMALL, rssi_filter=FilterKind.RAW)
    c1, c2 = centroid.observe_scan(100.0, DEV, first), centroid.observe_scan(101.0, DEV, moved)
    assert c1 is not None and c2 is not None  # the pull is the same vector: moved as the centroid
    assert (soon.x - one.x, soon.y - one.y) == pytest.approx((c2.x - c1.x, c2.y - c1.y))


def test_auto_recomputes_the_pull_when_the_loudest_anchor_changes() -> None:
    loc = Locator(SMALL, method=PositionMethod.AUTO, rssi_filter=FilterKind.RAW)
    first = [("a", -70.0), ("c", -62.0), ("b", -66.0), ("d", -69.0)]
    elsewhere = [("a", -60.0), ("c", -70.0), ("b", -66.0), ("d", -69.0)]  # a now the loudest
    assert loc.observe_scan(100.0, DEV, first) is not None
    soon = loc.observe_scan(100.5, DEV, elsewhere)
    anew = Locator(SMALL, method=PositionMethod.AUTO, rssi_filter=FilterKind.RAW)
    want = anew.observe_scan(0.0, DEV, elsewhere)
    assert soon is not None and want is not None
    assert (soon.x, soon.y) == pytest.approx((want.x, want.y))


def test_unknown_anchor_and_bad_values_are_ignored() -> None:
    loc = Locator(SQUARE)
    assert loc.observe(Observation(1.0, DEV, "nowhere", -60.0)) is None
    assert loc.observe(Observation(1.0, DEV, "a", math.nan)) is None
    assert loc.devices() == 0


def test_position_is_recomputed_at_most_every_min_interval() -> None:
    loc = Locator(SQUARE, min_interval_s=0.5, settle_s=0.0)
    assert loc.observe(Observation(10.0, DEV, "a", -60.0)) is not None
    assert loc.observe(Observation(10.3, DEV, "a", -60.0)) is None
    assert loc.observe(Observation(10.5, DEV, "a", -60.0)) is not None


def test_a_scan_is_located_from_all_its_beacons_at_once() -> None:
    """Mode B: one scan, one fix, from every anchor it heard (not from its first)."""
    target = (13.0, 6.0)
    loc = Locator(SQUARE, method=PositionMethod.MULTILATERATION, rssi_filter=FilterKind.RAW)
    scan = [(a.id, rssi_at(a, math.hypot(target[0] - a.x, target[1] - a.y))) for a in SQUARE]
    fix = loc.observe_scan(50.0, DEV, scan)
    assert fix is not None and fix.at == 50.0
    assert sorted(fix.anchors) == ["a", "b", "c", "d"]
    assert (fix.x, fix.y) == pytest.approx(target, abs=0.05)
    assert loc.observe_scan(51.0, DEV, [("nowhere", -60.0)]) is None


def exact_burst(at: float, target: tuple[float, float]) -> list[Observation]:
    """One advert heard by the four scanners within 6 ms, at their exact levels."""
    x, y = target
    return [
        Observation(at + i * 0.002, DEV, a.id, rssi_at(a, math.hypot(x - a.x, y - a.y)))
        for i, a in enumerate(SQUARE)
    ]


def test_a_scanner_burst_gives_one_fix_once_settled_from_all_its_links() -> None:
    """A tag advertising every 0.455 s: one fix per burst, of that burst's levels only,
    emitted at the next burst's first packet (or by `settle`): the burst option (issue 19.2)."""
    loc = Locator(
        SQUARE,
        method=PositionMethod.MULTILATERATION,
        rssi_filter=FilterKind.RAW,
        min_interval_s=0.3,
        settle_s=0.08,
    )
    targets = [(5.0 + 0.5 * k, 8.0) for k in range(9)]  # walking at 1.1 m/s
    fixes = []
    for k, target in enumerate(targets):
        for obs in exact_burst(100.0 + 0.455 * k, target):
            fix = loc.observe(obs)
            if fix is not None:
                fixes.append(fix)
    assert len(fixes) == len(targets) - 1  # the last burst is still open
    for k, fix in enumerate(fixes):
        assert fix.at == pytest.approx(100.0 + 0.455 * k + 0.006)  # its last packet
        assert sorted(fix.anchors) == ["a", "b", "c", "d"]
        assert (fix.x, fix.y) == pytest.approx(targets[k], abs=0.05)
    assert loc.settle(100.0 + 0.455 * 8 + 0.05) == []  # not settled yet
    last = loc.settle(100.0 + 0.455 * 8 + 0.1)  # a tick in the silence after it
    assert len(last) == 1 and (last[0].x, last[0].y) == pytest.approx(targets[-1], abs=0.05)
    assert loc.settle(200.0) == []  # each burst once


def test_the_speed_gate_is_not_anchored_on_a_one_anchor_fix() -> None:
    """A first fix from one anchor is that anchor's position, a guess: no gate from it."""
    loc = Locator(SQUARE, rssi_filter=FilterKind.RAW)
    loc.observe(Observation(0.0, DEV, "a", -60.0))
    for obs in exact_burst(0.5, (10.0, 10.0)):
        loc.observe(obs)
    fix = loc.locate(DEV, 0.506)
    assert fix is not None and len(fix.anchors) == 4
    assert (fix.x, fix.y) == pytest.approx((10.0, 10.0), abs=0.5)  # not 1 cm from (0, 0)


@pytest.mark.parametrize("power", [None, 2.0])
def test_the_centroid_weighs_by_inverse_cube_distance_or_the_power_given(
    power: float | None,
) -> None:
    """1/d³ by default (1/d² costs the simulator, docs/accuracy.md); 1/d² as an option."""
    target = (4.0, 7.0)
    if power is None:
        loc = Locator(SQUARE, rssi_filter=FilterKind.RAW, method=PositionMethod.CENTROID)
    else:
        loc = Locator(
            SQUARE, rssi_filter=FilterKind.RAW, centroid_power=power, method=PositionMethod.CENTROID
        )
    dist = [math.hypot(target[0] - a.x, target[1] - a.y) for a in SQUARE]
    for a, d in zip(SQUARE, dist, strict=True):
        loc.observe(Observation(50.0, DEV, a.id, rssi_at(a, d)))
    fix = loc.locate(DEV, 50.0)
    pts = [(a.x, a.y) for a in SQUARE]
    assert fix is not None
    expected = weighted_centroid(pts, dist, power=3.0 if power is None else power)
    assert (fix.x, fix.y) == pytest.approx(expected, abs=1e-6)
    other = weighted_centroid(pts, dist, power=2.0 if power is None else 3.0)
    assert (fix.x, fix.y) != pytest.approx(other, abs=1e-3)


def test_multilateration_on_exact_distances_recovers_the_point() -> None:
    target = (7.0, 12.5)
    pts = [(a.x, a.y) for a in SQUARE]
    dist = [math.hypot(target[0] - x, target[1] - y) for x, y in pts]
    x, y, rms = weighted_multilateration(pts, dist)
    assert (x, y) == pytest.approx(target, abs=1e-3)
    assert rms == pytest.approx(0.0, abs=1e-3)


def test_locator_multilaterates_exact_rssi() -> None:
    target = (13.0, 6.0)
    loc = Locator(SQUARE, min_interval_s=0.0, settle_s=0.0, method=PositionMethod.MULTILATERATION)
    fix = None
    for a in SQUARE:
        d = math.hypot(target[0] - a.x, target[1] - a.y)
        fix = loc.observe(Observation(50.0, DEV, a.id, rssi_at(a, d)))
    assert fix is not None
    assert (fix.x, fix.y) == pytest.approx(target, abs=0.05)
    assert sorted(fix.anchors) == ["a", "b", "c", "d"]
    assert fix.accuracy_m == pytest.approx(0.5)  # the floor: the ranges agree exactly


def test_centroid_leans_towards_the_nearest_anchors() -> None:
    pts = [(0.0, 0.0), (10.0, 0.0), (0.0, 10.0)]
    assert weighted_centroid(pts, [5.0, 5.0, 5.0]) == pytest.approx((10 / 3, 10 / 3))
    x, y = weighted_centroid(pts, [1.0, 9.0, 9.0], power=3.0)
    assert math.hypot(x, y) < 0.1


def test_speed_gate_clamps_a_jump() -> None:
    loc = Locator(
        SQUARE,
        min_interval_s=0.0,
        settle_s=0.0,
        rssi_filter=FilterKind.RAW,
        method=PositionMethod.CENTROID,
    )
    first = None
    for obs in exact_burst(0.0, (3.0, 3.0)):
        first = loc.observe(obs)
    # 0.5 s later the levels say (17, 17), 19.8 m away: at most 1 m of that jump is believed.
    second = None
    for obs in exact_burst(0.5, (17.0, 17.0)):
        second = loc.observe(obs)
    assert first is not None and second is not None
    assert math.hypot(second.x - first.x, second.y - first.y) == pytest.approx(1.0, abs=0.05)
    assert second.accuracy_m > 10.0


def test_forget_starts_the_device_afresh() -> None:
    loc = Locator(SQUARE, min_interval_s=0.0, settle_s=0.0)
    loc.observe(Observation(0.0, DEV, "a", -60.0))
    loc.forget(DEV)
    fix = loc.observe(Observation(0.1, DEV, "c", -60.0))
    assert fix is not None and (fix.x, fix.y) == (20.0, 20.0)  # no speed gate from the past


def test_a_stale_link_restarts_from_its_next_sample() -> None:
    loc = Locator(SQUARE, min_interval_s=0.0, settle_s=0.0, fresh_s=4.0)
    for t in range(5):
        loc.observe(Observation(float(t), DEV, "a", -90.0))
    loc.observe(Observation(20.0, DEV, "a", -60.0))
    loc.observe(Observation(20.0, DEV, "b", -70.0))
    fix = loc.observe(Observation(20.0, DEV, "b", -70.0))
    # -60 believed at once, not blended with the -90s: the pair's centroid sits by a, not b
    assert fix is not None and fix.anchors == ("a", "b") and fix.x < 5.0


def test_prune_drops_idle_devices() -> None:
    loc = Locator(SQUARE)
    loc.observe(Observation(0.0, DEV, "a", -60.0))
    loc.observe(Observation(100.0, "phone:t2", "a", -60.0))
    assert loc.prune(now=120.0, idle_s=60.0) == 1
    assert loc.devices() == 1


observations = st.lists(
    st.tuples(
        st.floats(0.0, 5.0),
        st.sampled_from(["a", "b", "c", "d", "x"]),
        st.floats(-110.0, -20.0),
        st.sampled_from([DEV, "phone:t"]),
    ),
    max_size=60,
)


@settings(max_examples=60, deadline=None)
@given(observations, st.sampled_from(list(PositionMethod)))
def test_fixes_stay_finite_and_near_the_anchors(
    steps: list[tuple[float, str, float, str]], method: PositionMethod
) -> None:
    loc = Locator(SQUARE, method=method)
    t, fixes = 0.0, []
    for dt, anchor, rssi, device in steps:
        t += dt
        fix = loc.observe(Observation(t, device, anchor, rssi))
        if fix is not None:
            fixes.append(fix)
    for fix in fixes:
        assert isinstance(fix, Fix)
        assert -3.0 <= fix.x <= 23.0 and -3.0 <= fix.y <= 23.0
        assert math.isfinite(fix.accuracy_m) and fix.accuracy_m > 0
        assert fix.anchors and all(a in "abcd" for a in fix.anchors)


@pytest.mark.parametrize("kind", [FilterKind.KALMAN, FilterKind.WINDOW_IQR, FilterKind.MEDIAN_EMA])
def test_every_filter_rejects_a_single_outlier(kind: FilterKind) -> None:
    f = FILTERS[kind]()
    f.reset(-70.0, 0.0)
    for k in range(1, 6):
        f.update(-70.0, k * 0.5)
    assert f.update(-40.0, 3.0) == pytest.approx(-70.0, abs=1.0)  # a reflection spike
    assert f.update(-70.0, 3.5) == pytest.approx(-70.0, abs=1.0)
    assert f.update(-98.0, 4.0) == pytest.approx(-70.0, abs=1.0)  # a deep fade
    assert f.update(-70.0, 4.5) == pytest.approx(-70.0, abs=1.0)


@pytest.mark.parametrize("kind", [FilterKind.KALMAN, FilterKind.WINDOW_IQR, FilterKind.MEDIAN_EMA])
def test_every_filter_follows_a_step_within_four_samples(kind: FilterKind) -> None:
    f = FILTERS[kind]()
    f.reset(-80.0, 0.0)
    for k in range(1, 6):
        f.update(-80.0, k * 0.5)
    values = [f.update(-60.0, 3.0 + k * 0.5) for k in range(6)]
    assert values[0] < -75.0  # the first sample of a step is not believed outright
    assert values[3] == pytest.approx(-60.0, abs=3.0)


def test_kalman_believes_an_approach_faster_than_a_retreat() -> None:
    rise, fall = KalmanFilter(), KalmanFilter()
    rise.reset(-75.0, 0.0)
    fall.reset(-75.0, 0.0)
    for k in range(1, 4):  # a change inside the gate: a walk, not an outlier
        rise.update(-68.0, k * 0.5)
        fall.update(-82.0, k * 0.5)
    assert rise.value + 75.0 > -75.0 - fall.value > 0.0


def test_window_iqr_forgets_samples_older_than_its_window() -> None:
    f = WindowIqrFilter(window_s=3.0)
    f.reset(-90.0, 0.0)
    f.update(-90.0, 1.0)
    assert f.update(-60.0, 10.0) == -60.0  # the -90s are 9 s old: gone, not outvoting it


def test_locate_uses_every_sample_of_an_instant() -> None:
    target = (13.0, 6.0)
    loc = Locator(SQUARE, method=PositionMethod.MULTILATERATION, rssi_filter=FilterKind.RAW)
    for a in SQUARE:
        d = math.hypot(target[0] - a.x, target[1] - a.y)
        loc.observe(Observation(50.0, DEV, a.id, rssi_at(a, d)))  # observe fixes on the 1st
    fix = loc.locate(DEV, 50.0)
    assert fix is not None and (fix.x, fix.y) == pytest.approx(target, abs=0.05)
    assert loc.locate(DEV, 60.0) is None  # nothing fresh ten seconds later
    assert loc.locate("phone:nobody", 50.0) is None


def test_a_filter_factory_configures_every_link() -> None:
    made: list[KalmanFilter] = []

    def factory() -> KalmanFilter:
        made.append(KalmanFilter(q=1.0))
        return made[-1]

    loc = Locator(SQUARE, rssi_filter=factory)
    loc.observe(Observation(0.0, DEV, "a", -60.0))
    loc.observe(Observation(0.0, DEV, "b", -70.0))
    assert len(made) == 2 and made[0].value == -60.0


def grid_locator() -> Locator:
    """A Locator on the probabilistic grid with raw RSSI, so each test sees the model alone."""
    return Locator(
        SQUARE,
        min_interval_s=0.0,
        method=PositionMethod.GRID,
        rssi_filter=FilterKind.RAW,
        grid=GridSettings(sigma_db=3.0, cell_m=0.5),
    )


def hear(loc: Locator, at: float, where: tuple[float, float]) -> Fix | None:
    """Every anchor hears the device at `where` with the exact model RSSI at time `at`."""
    for a in SQUARE:
        loc.observe(
            Observation(at, DEV, a.id, rssi_at(a, math.hypot(where[0] - a.x, where[1] - a.y)))
        )
    return loc.locate(DEV, at)


def test_grid_finds_a_still_device_and_grows_surer() -> None:
    loc = grid_locator()
    first = hear(loc, 0.0, (13.0, 6.0))
    fixes = [hear(loc, float(t), (13.0, 6.0)) for t in range(1, 6)]
    last = fixes[-1]
    assert first is not None and last is not None
    assert (last.x, last.y) == pytest.approx((13.0, 6.0), abs=0.5)
    assert last.accuracy_m < first.accuracy_m  # evidence accumulates over time
    assert sorted(last.anchors) == ["a", "b", "c", "d"]


def test_grid_motion_model_holds_back_a_jump_then_follows() -> None:
    loc = grid_locator()
    for t in range(10):
        hear(loc, float(t), (5.0, 5.0))
    jumped = hear(loc, 9.5, (15.0, 15.0))  # 14 m in 0.5 s: not a walk
    assert jumped is not None
    assert math.hypot(jumped.x - 5.0, jumped.y - 5.0) < 10.0
    later = [hear(loc, 9.5 + t, (15.0, 15.0)) for t in range(1, 9)][-1]
    assert later is not None and (later.x, later.y) == pytest.approx((15.0, 15.0), abs=1.0)


def test_grid_after_a_long_silence_trusts_the_links_alone() -> None:
    loc, fresh = grid_locator(), grid_locator()
    hear(loc, 0.0, (3.0, 3.0))
    moved = hear(loc, 600.0, (17.0, 12.0))  # ten minutes: the prior is flat again
    alone = hear(fresh, 600.0, (17.0, 12.0))
    assert moved is not None and alone is not None
    assert (moved.x, moved.y) == pytest.approx((alone.x, alone.y), abs=1e-6)


def test_grid_memory_is_bounded_per_device() -> None:
    far = (*SQUARE, Anchor("e", AnchorKind.SCANNER, 1000.0, 800.0))
    rows, cols = Grid(far, GridSettings(cell_m=0.5, max_cells=2000)).shape()
    assert rows * cols <= 2000  # the cells grew instead
    rows, cols = Grid(SQUARE, GridSettings(cell_m=0.5, max_cells=4096)).shape()
    assert (rows, cols) == (48, 48)  # 20 m + 2 × 2 m margin in 0.5 m cells


def test_grid_with_one_link_stays_on_its_ring_and_says_it_is_unsure() -> None:
    loc = grid_locator()
    loc.observe(Observation(0.0, DEV, "a", rssi_at(SQUARE[0], 6.0)))
    fix = loc.locate(DEV, 0.0)
    assert fix is not None and fix.anchors == ("a",)
    assert fix.accuracy_m > 3.0  # a ring of 6 m around "a": the mean alone says little


def test_bursts_never_settled_do_not_pile_up() -> None:
    """A caller that only asks `locate` (never `settle`) keeps the burst queue bounded."""
    loc = Locator(SQUARE, min_interval_s=0.3, settle_s=0.08)
    for k in range(2000):
        loc.observe(Observation(k * 0.5, DEV, "a", -60.0))
        loc.locate(DEV, k * 0.5 + 0.01)
    assert len(loc._bursts) <= 4 * loc.devices() + 65
