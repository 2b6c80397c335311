"""The learned radio map (gateway/locate/radiomap.py) and the belief the Locator keeps with it."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest

from gateway.config.model import Anchor, AnchorKind, PositionMethod, Zone
from gateway.errors import InvalidInput
from gateway.locate.grid import GridSettings, PositionGrid, grid_geometry
from gateway.locate.locator import Locator
from gateway.locate.radiomap import (
    BANDWIDTHS_M,
    FORMAT,
    GridGeometry,
    RadioMap,
    Survey,
    choose_bandwidth,
    fit_radio_map,
)

ANCHORS = (
    Anchor("a", AnchorKind.SCANNER, 0.0, 0.0, rssi_at_1m=-59, path_loss_exponent=2.0),
    Anchor("b", AnchorKind.SCANNER, 20.0, 0.0, rssi_at_1m=-59, path_loss_exponent=2.0),
    Anchor("c", AnchorKind.SCANNER, 20.0, 12.0, rssi_at_1m=-59, path_loss_exponent=2.0),
    Anchor("d", AnchorKind.SCANNER, 0.0, 12.0, rssi_at_1m=-59, path_loss_exponent=2.0),
)
WEST = Zone("west", "West", ((0.0, 0.0), (10.0, 0.0), (10.0, 12.0), (0.0, 12.0)))
EAST = Zone("east", "East", ((10.0, 0.0), (20.0, 0.0), (20.0, 12.0), (10.0, 12.0)))
DEV = "tag:1"


def truth_rssi(anchor: Anchor, x: float, y: float) -> float:
    """The 'store' of these tests: path loss, plus 8 dB more for anchor a east of x = 10 (a
    shelf the model does not know)."""
    d = max(math.hypot(x - anchor.x, y - anchor.y), 0.3)
    shelf = -8.0 if anchor.id == "a" and x > 10.0 else 0.0
    return anchor.rssi_at_1m - 10.0 * anchor.path_loss_exponent * math.log10(d) + shelf


def walk(step: float = 0.5, noise: float = 2.0, seed: int = 1) -> Survey:
    """A surveyor walking every row of the floor, every anchor heard at each step."""
    rng = np.random.default_rng(seed)
    samples = []
    for y in np.arange(0.5, 12.0, 1.0):
        for x in np.arange(0.25, 20.0, step):
            for a in ANCHORS:
                samples.append((a.id, truth_rssi(a, x, y) + rng.normal(0, noise), x, y))
    return Survey.of_points([a.id for a in ANCHORS], samples)


def geometry() -> GridGeometry:
    return grid_geometry(ANCHORS, GridSettings(), [(0.0, 0.0), (20.0, 12.0)])


def learned() -> RadioMap:
    return fit_radio_map(ANCHORS, walk(), geometry(), made_at="2026-12-05T10:00:00Z")


def test_the_map_learns_what_the_path_loss_model_misses() -> None:
    radio_map = learned()
    g = radio_map.geometry
    k = radio_map.anchors.index("a")
    east, west = (
        g.cell_of(np.array([15.0]), np.array([6.0]))[0],
        g.cell_of(np.array([5.0]), np.array([6.0]))[0],
    )
    mean = radio_map.mean[k].ravel()
    assert mean[east] == pytest.approx(truth_rssi(ANCHORS[0], 15.5, 6.5), abs=2.0)
    assert mean[west] == pytest.approx(truth_rssi(ANCHORS[0], 5.5, 6.5), abs=2.0)
    assert 1.5 <= float(radio_map.sigma_db[k]) <= 3.0  # the walk's noise, 2 dB
    assert radio_map.detect is None  # no scans, no detection rates


def test_where_the_walk_never_went_the_map_is_the_path_loss_model() -> None:
    half = walk()
    west = half.x < 8.0
    radio_map = fit_radio_map(
        ANCHORS, half.subset(west, np.zeros(0, dtype=bool)), geometry(), bandwidth_m=1.0
    )
    g, a = radio_map.geometry, ANCHORS[0]
    far = g.cell_of(np.array([17.0]), np.array([6.0]))[0]
    xs, ys = g.centres()
    cx, cy = xs[far % g.nx], ys[far // g.nx]
    model = a.rssi_at_1m - 10 * a.path_loss_exponent * math.log10(math.hypot(cx, cy))
    assert radio_map.mean[0].ravel()[far] == pytest.approx(model, abs=0.01)


def test_the_kernel_width_is_chosen_on_held_out_blocks_of_the_walk() -> None:
    smooth_store = walk(noise=6.0)
    width = choose_bandwidth(ANCHORS, smooth_store, geometry())
    assert width in BANDWIDTHS_M
    assert width > BANDWIDTHS_M[0]  # noisy samples of a smooth field: a wide kernel


def test_zone_samples_spread_over_their_zone() -> None:
    g = geometry()
    xs, ys = g.centres()
    gx, _ = np.meshgrid(xs, ys)
    east_cells = np.flatnonzero((gx.ravel() > 10.0) & (gx.ravel() < 20.0))
    rssi = truth_rssi(ANCHORS[0], 15.0, 6.0)
    n = 600  # a minute in the zone, ten adverts a second: a zone survey's weight is thin
    survey = Survey(
        anchors=("a",),
        anchor=np.zeros(n, dtype=np.int64),
        rssi=np.full(n, rssi),
        x=np.zeros(n),
        y=np.zeros(n),
        zone=np.zeros(n, dtype=np.int64),
    )
    radio_map = fit_radio_map(ANCHORS[:1], survey, g, [east_cells], bandwidth_m=1.0)
    east_mean = float(radio_map.mean[0].ravel()[east_cells].mean())
    assert east_mean == pytest.approx(rssi, abs=1.5)


def test_a_map_survives_its_file(tmp_path: Path) -> None:
    radio_map = learned()
    path = tmp_path / "radio-map.json"
    radio_map.save(path)
    again = RadioMap.load(path)
    assert again.anchors == radio_map.anchors
    assert again.geometry == radio_map.geometry
    assert np.allclose(again.mean, radio_map.mean, atol=0.051)
    assert again.made_at == "2026-12-05T10:00:00Z"
    assert again.moved(ANCHORS) == []
    moved = dataclasses.replace(ANCHORS[1], x=25.0)
    extra = Anchor("e", AnchorKind.SCANNER, 1.0, 1.0)
    assert again.moved([ANCHORS[0], moved, extra]) == ["b", "e"]


def test_a_bad_map_file_says_what_and_where(tmp_path: Path) -> None:
    path = tmp_path / "radio-map.json"
    path.write_text('{"format": "rayon-radio-map/1",\n "grid": [}')
    with pytest.raises(InvalidInput, match=r"radio-map.json:2:\d+: not JSON"):
        RadioMap.load(path)
    path.write_text(json.dumps({"format": "something else"}))
    with pytest.raises(InvalidInput, match="not a radio map"):
        RadioMap.load(path)
    obj = learned().to_json()
    obj["anchors"][0]["mean"] = obj["anchors"][0]["mean"][:-1]
    path.write_text(json.dumps(obj))
    with pytest.raises(InvalidInput, match=r"anchors\[0\]\.mean must be"):
        RadioMap.load(path)
    assert learned().to_json()["format"] == FORMAT


def test_a_belief_packs_small_and_unpacks_to_the_same_estimate() -> None:
    radio_map = learned()
    grid = PositionGrid(ANCHORS, GridSettings(), radio_map)
    samples = [(a.id, truth_rssi(a, 15.0, 6.0)) for a in ANCHORS]
    post = grid.update_likelihood(None, 0.0, 1.0, grid.log_likelihood(samples))
    packed = grid.pack(post)
    assert packed.window.dtype == np.uint8
    assert packed.window.size <= post.size / 2
    x, y, _ = grid.estimate(grid.unpack(packed))
    x0, y0, _ = grid.estimate(post)
    assert (x, y) == pytest.approx((x0, y0), abs=0.05)
    assert (x, y) == pytest.approx((15.0, 6.0), abs=1.0)


def test_with_a_map_the_locator_keeps_a_belief_and_says_each_zones_probability() -> None:
    radio_map = learned()
    locator = Locator(ANCHORS, radio_map=radio_map, zones=(WEST, EAST))
    rng = np.random.default_rng(3)
    fix = None
    for k in range(40):  # standing in the east half for 20 s, a packet per anchor per burst
        t = 100.0 + 0.5 * k
        for a in ANCHORS:
            got = locator.observe_link(t, DEV, a.id, truth_rssi(a, 15.0, 6.0) + rng.normal(0, 2))
            fix = got or fix
    assert fix is not None and fix.zone_probability is not None
    probability = dict(fix.zone_probability)
    assert probability["east"] > 0.9 > probability.get("west", 0.0)
    assert fix.zone_probability[0][0] == "east"  # most probable first
    assert math.hypot(fix.x - 15.0, fix.y - 6.0) < 1.5


def test_the_map_corrects_what_the_path_loss_model_gets_wrong() -> None:
    """East of the shelf anchor a is 8 dB quieter than the model says: without the map the
    grid puts a device at (12, 6) too far from a; with it, it stays."""
    rng = np.random.default_rng(5)
    errors = {}
    for label, radio_map in (("model", None), ("map", learned())):
        locator = Locator(ANCHORS, radio_map=radio_map, method=PositionMethod.GRID)
        fix = None
        for k in range(40):
            t = 100.0 + 0.5 * k
            for a in ANCHORS:
                rssi = truth_rssi(a, 12.0, 6.0) + rng.normal(0, 2)
                fix = locator.observe_link(t, DEV, a.id, rssi) or fix
        assert fix is not None
        errors[label] = math.hypot(fix.x - 12.0, fix.y - 6.0)
    assert errors["map"] < 1.5 < 3.0 < errors["model"]


def test_a_phones_scans_use_what_it_did_not_hear() -> None:
    """Beacon d is heard only in the west: a scan without it is evidence for the east."""
    rng = np.random.default_rng(2)
    samples, scans = [], []
    for y in np.arange(0.5, 12.0, 1.0):
        for x in np.arange(0.5, 20.0, 1.0):
            heard = {a.id for a in ANCHORS if a.id != "d" or x < 10.0}
            samples += [(a, truth_rssi(ANCHORS["abcd".index(a)], x, y)) for a in sorted(heard)]
            scans.append((float(x), float(y), frozenset(heard)))
    points = [
        (a, r + rng.normal(0, 1), x, y)
        for (a, r), (x, y, _) in zip(
            samples, [s for s in scans for _ in range(len(s[2]))], strict=True
        )
    ]
    survey = Survey.of_points([a.id for a in ANCHORS], points, scans)
    radio_map = fit_radio_map(ANCHORS, survey, geometry(), bandwidth_m=1.0)
    assert radio_map.detect is not None
    d = radio_map.anchors.index("d")
    g = radio_map.geometry
    west, east = (g.cell_of(np.array([x]), np.array([6.0]))[0] for x in (4.0, 16.0))
    assert radio_map.detect[d].ravel()[west] > 0.75 > 0.25 > radio_map.detect[d].ravel()[east]
    grid = PositionGrid(ANCHORS, GridSettings(), radio_map)
    levels = [(a.id, truth_rssi(a, 11.0, 6.0)) for a in ANCHORS[:3]]  # d not heard
    missed = (grid.log_likelihood(levels, scan=True) - grid.log_likelihood(levels)).reshape(
        grid.shape()
    )
    east, west = missed[:, grid.xs > 12.0].mean(), missed[:, grid.xs < 8.0].mean()
    assert east - west > 1.0  # not hearing d is evidence for the east, by more than e
