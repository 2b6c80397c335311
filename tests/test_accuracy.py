"""The accuracy benchmark: converters on the real data sets, metrics, splits, the command."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from gateway.cli.main import main
from gateway.config.model import Anchor, AnchorKind, FilterKind, PositionMethod
from gateway.events import Observation
from rayon_tooling.accuracy.baselines import centroid, strongest_anchor, window_means
from rayon_tooling.accuracy.catalog import LOADERS
from rayon_tooling.accuracy.datasets import (
    Dataset,
    Part,
    Stream,
    Truth,
    ZoneMap,
    datasets_root,
    grid_zones,
)
from rayon_tooling.accuracy.evaluate import (
    FRESH_S,
    SIGMA_SCALES,
    balanced_accuracy,
    candidates,
    percentile,
    score,
)
from rayon_tooling.accuracy.fit import fit_path_loss, fit_sigma

ROOT = datasets_root()
needs_data = pytest.mark.skipif(
    not ROOT.is_dir(), reason=f"{ROOT} is absent: the recorded data sets are not on this machine"
)
ZONES = grid_zones((0.0, 5.0, 10.0), (0.0, 5.0), "z")


@pytest.fixture(scope="module")
def converted() -> dict[str, Dataset]:
    if not ROOT.is_dir():
        pytest.skip(f"{ROOT} is absent")
    return {name: load(ROOT) for name, load in LOADERS.items()}


def test_balanced_accuracy_weighs_every_zone_alike() -> None:
    true = ["a"] * 8 + ["b"] * 2
    predicted = ["a"] * 8 + ["a", "b"]
    assert balanced_accuracy(true, predicted) == pytest.approx((1.0 + 0.5) / 2)
    assert balanced_accuracy(["a", "b"], ["b", "a"]) == 0.0


def test_percentiles_interpolate_between_order_statistics() -> None:
    values = [4.0, 1.0, 3.0, 2.0]
    assert percentile(values, 50) == pytest.approx(2.5)
    assert percentile(values, 90) == pytest.approx(3.7)
    assert math.isnan(percentile([], 50))


def test_zone_map_takes_the_containing_zone_else_the_nearest() -> None:
    zmap = ZoneMap(ZONES)
    assert zmap.zone_of(2.0, 2.0) == "z1-1"
    assert zmap.zone_of(7.0, 4.0) == "z2-1"
    assert zmap.zone_of(12.0, 1.0) == "z2-1"  # outside every zone: the nearest


def test_score_on_a_hand_made_stream() -> None:
    truth = (
        Truth(0.0, 1.0, 1.0, "z1-1"),
        Truth(1.0, 6.0, 1.0, "z2-1"),
        Truth(2.0, 6.0, 1.0, "z2-1"),
    )
    part = Part((Stream("d", "u", (), truth),))
    s = score(part, [[(1.0, 2.0), (6.0, 4.0), (3.0, 1.0)]], ZoneMap(ZONES))
    assert s.instants == 3
    assert s.zone_accuracy == pytest.approx(2 / 3)
    assert s.area == pytest.approx(2 / 3)  # evenly spaced instants: the same share of time
    assert s.balanced_accuracy == pytest.approx((1.0 + 0.5) / 2)
    assert (s.error_mean, s.error_median) == pytest.approx((7 / 3, 3.0))  # errors 1, 3, 3


def test_baselines_look_only_at_the_instant_window() -> None:
    a = Anchor("a", AnchorKind.SCANNER, 0.0, 0.0, rssi_at_1m=-60, path_loss_exponent=2.0)
    b = Anchor("b", AnchorKind.SCANNER, 10.0, 0.0, rssi_at_1m=-60, path_loss_exponent=2.0)
    obs = (
        Observation(0.0, "d", "a", -50.0),
        Observation(1.0, "d", "b", -60.0),
        Observation(1.0, "d", "a", -80.0),
    )
    stream = Stream("d", "u", obs, (Truth(0.0, 0, 0, "z1-1"), Truth(1.0, 0, 0, "z1-1")))
    means = window_means(stream, 0.0)
    assert means == [{"a": -50.0}, {"b": -60.0, "a": -80.0}]
    anchors = {"a": a, "b": b}
    assert strongest_anchor(means, anchors, (5.0, 5.0)) == [(0.0, 0.0), (10.0, 0.0)]
    x, _ = centroid(means, anchors, (5.0, 5.0), 2.0)[1]
    assert x == pytest.approx(10.0 * 100 / 101)  # b at 1 m, a at 10 m: weights 1 and 1/100


def test_path_loss_fit_recovers_a_known_model() -> None:
    a = Anchor("a", AnchorKind.SCANNER, 0.0, 0.0)
    obs, truth = [], []
    for k in range(60):
        d = 1.0 + k * 0.25
        obs.append(Observation(float(k), "d", "a", -55.0 - 10 * 2.7 * math.log10(d)))
        truth.append(Truth(float(k), d, 0.0, "z1-1"))
    (fitted,) = fit_path_loss([a], Part((Stream("d", "u", tuple(obs), tuple(truth)),)))
    assert (fitted.rssi_at_1m, fitted.path_loss_exponent) == pytest.approx((-55.0, 2.7))


def test_sigma_fit_measures_the_spread_around_the_fitted_model() -> None:
    a = Anchor("a", AnchorKind.SCANNER, 0.0, 0.0)
    obs, truth = [], []
    for k in range(80):
        d = 1.0 + (k // 2) * 0.25  # each distance twice, 4 dB above and below the model
        noise = 4.0 if k % 2 else -4.0
        obs.append(Observation(float(k), "d", "a", -55.0 - 27 * math.log10(d) + noise))
        truth.append(Truth(float(k), d, 0.0, "z1-1"))
    train = Part((Stream("d", "u", tuple(obs), tuple(truth)),))
    assert fit_sigma(fit_path_loss([a], train), train) == pytest.approx(4.0, abs=0.01)
    assert fit_sigma([a], Part(())) == 6.0  # nothing to fit: the default


def test_grid_candidates_scale_the_fitted_sigma_and_try_each_freshness() -> None:
    grid = [s for s in candidates(FilterKind.RAW, 5.0) if s.method is PositionMethod.GRID]
    assert {s.grid.sigma_db for s in grid} == {5.0 * k for k in SIGMA_SCALES}
    assert {s.fresh_s for s in grid} == set(FRESH_S)
    assert {s.grid.use_map for s in grid} == {False, True}
    assert "grid σ 5.0 dB" in " ".join(s.describe() for s in grid)
    assert {s.grid.walls for s in grid} == {()}


def test_with_walls_every_grid_candidate_is_tried_with_and_without_them() -> None:
    walls = (((5.0, -1.0), (5.0, 6.0)),)
    plain = [s for s in candidates(FilterKind.RAW, 5.0) if s.method is PositionMethod.GRID]
    grid = [s for s in candidates(FilterKind.RAW, 5.0, walls) if s.method is PositionMethod.GRID]
    assert len(grid) == 2 * len(plain)
    assert {s.grid.walls for s in grid} == {(), walls}
    assert sum("walls" in s.describe() for s in grid) == len(plain)


@needs_data
def test_converters_read_the_real_files(converted: dict[str, Dataset]) -> None:
    expected_anchors = {"tetam": 12, "kolakowski": 6, "uci": 13, "uji-lib": 24, "uji-geo": 66}
    for name, dataset in converted.items():
        assert len(dataset.anchors) == expected_anchors[name]
        assert bool(dataset.walls) == (name == "kolakowski")  # layout.csv: one polyline
        zone_ids = {z.id for z in dataset.zones}
        for part in (dataset.train, dataset.test):
            assert part.instants() > 100
            for stream in part.streams:
                times = [o.at for o in stream.observations]
                assert times == sorted(times)
                assert all(o.rssi < 0 and o.device == stream.device for o in stream.observations)
                assert {t.zone for t in stream.truth} <= zone_ids
    tetam_rssi = [o.rssi for s in converted["tetam"].test.streams for o in s.observations]
    assert max(tetam_rssi) < 0  # the +42 dBm glitch is dropped


@needs_data
def test_splits_never_share_a_track_day_or_position(converted: dict[str, Dataset]) -> None:
    for name, dataset in converted.items():
        assert not dataset.train.units() & dataset.test.units(), name
    for name in ("uji-lib", "uji-geo"):
        dataset = converted[name]
        train = {(t.x, t.y) for s in dataset.train.streams for t in s.truth}
        test = {(t.x, t.y) for s in dataset.test.streams for t in s.truth}
        assert not train & test, name


@needs_data
def test_bench_accuracy_prints_one_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "accuracy", "--dataset", "tetam"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["data", "set", "method"]
    methods = [line[12:36].strip() for line in lines[2:] if line.startswith("tetam ")]
    assert methods[:2] == ["strongest anchor", "weighted centroid"]
    assert "rayon kalman" in methods and "rayon default" in methods
    assert methods[-2:] == ["kNN5 fingerprint", "rayon + calibration walk"]
    assert "area" in lines[0].split()
    assert "train / 253 test instants" in out
    assert "tetam: calibration 1260 / 253 test instants" in out


def test_bench_accuracy_skips_a_missing_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = [
        "bench",
        "accuracy",
        "--dataset",
        "uci",
        "--datasets",
        str(tmp_path),
        "--format",
        "json",
    ]
    assert main(args) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["rows"] == [] and "missing" in report["skipped"]["uci"]


def test_bench_accuracy_scores_the_simulated_store_per_seed_and_their_median(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = str(Path(__file__).resolve().parent.parent / "config.example.yaml")
    args = ["bench", "accuracy", "-c", config, "--datasets", str(tmp_path), "--dataset", "uci"]
    assert main([*args, "--simulator", "--seeds", "4", "--format", "json"]) == 0
    run, walked = json.loads(capsys.readouterr().out)["simulator"]
    assert run["seed"] == 4 and run["shoppers"] == 50 and run["score"]["dwell_seconds"] > 0
    assert 0.0 <= run["score"]["dwell_correct"] <= 1.0
    # the same shoppers again, located with a map walked in seed 4's store: other decisions
    assert (run["label"], walked["label"]) == ("defaults", "calibration walk")
    assert walked["score"]["dwell_seconds"] == run["score"]["dwell_seconds"]
    assert walked["score"]["enters"] != run["score"]["enters"]
    assert main([*args, "--simulator", "--seeds", "4"]) == 0
    out = capsys.readouterr().out
    assert "simulator (defaults): 50 shoppers × 30 min, seed 4" in out
    assert "simulator (calibration walk): 50 shoppers × 30 min, seed 4" in out
    assert "simulator (defaults), median of 1 seeds: dwell time in the correct zone" in out
    assert "simulator (calibration walk), median of 1 seeds: dwell time" in out
    assert main([*args, "--simulator", "--seeds", "four"]) == 2
    assert "--seeds 'four'" in capsys.readouterr().err
