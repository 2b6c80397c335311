"""`rayon calibrate`: the fit recovers the simulator's per-anchor calibration, says what an
anchor lacks, and prints YAML that config.yaml accepts."""

from __future__ import annotations

import collections
import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from gateway.cli.main import main
from gateway.config.load import load_config
from gateway.config.model import Anchor, AnchorKind, Config
from gateway.identity.customers import customer_to_obj
from gateway.ids import ibeacon_id
from gateway.offline.calibrate import (
    AnchorFit,
    Criteria,
    Samples,
    beacon_samples,
    fit_anchors,
    fit_log_distance,
    format_yaml,
    walk_samples,
)
from gateway.offline.truth import Truth
from gateway.sim.customers import demo_customers
from gateway.sim.radio import RadioModel
from gateway.sim.simulator import StoreSimulator
from tests.stores import reference_store
from tests.test_simulator import START, UUID, small_store

# The simulated radio keeps its fading, white noise, shadowing that moves with the shopper,
# drops and sensitivity floor, and gives each anchor a calibration error of σ 4 dB; it has no
# shadowing field, body loss or per-phone offset, whose averages a fit cannot tell apart from
# the anchor's own calibration.
RADIO = RadioModel(shadow_sigma=0.0, body_share=0.0, phone_offset_sigma=0.0, anchor_offset_sigma=4)
# Tolerances: the fitted model's RSSI over 2–10 m within CURVE_DB of the true one; rssi_at_1m
# (an extrapolation) within A_DB, the exponent within N.
CURVE_DB, A_DB, N = 2.5, 2.5, 0.35


def varied_store() -> Config:
    """The small store with scanners of different exponents and a grid of 20 store beacons."""
    config = small_store()
    exponents = (2.0, 2.2, 2.4, 2.6, 2.8, 3.0, 2.3, 2.7)
    scanners = [a for a in config.anchors if a.kind is AnchorKind.SCANNER]
    scanners = [
        dataclasses.replace(a, path_loss_exponent=n)
        for a, n in zip(scanners, exponents, strict=True)
    ]
    beacons = [
        Anchor(f"b-{i}{j}", AnchorKind.BEACON, x, y, beacon=ibeacon_id(UUID, 2, 10 * i + j))
        for i, x in enumerate((2, 11, 20, 29, 38))
        for j, y in enumerate((2, 8, 15, 23))
    ]
    return dataclasses.replace(config, anchors=(*scanners, *beacons))


def truth_of(sim: StoreSimulator) -> Truth:
    rows: dict[str, list[tuple[float, float, float]]] = collections.defaultdict(list)
    for rec in sim.truth():
        rows[rec.device].append((rec.at, rec.x, rec.y))
    return Truth.of_points({d: tuple(np.array(r).T) for d, r in rows.items()})


def check_recovered(fits: list[AnchorFit], true: dict[str, Anchor]) -> None:
    assert len(fits) == 8
    ds = np.array([2.0, 5.0, 10.0])
    for f in fits:
        t = true[f.anchor.id]
        fitted = f.rssi_at_1m - 10 * f.path_loss_exponent * np.log10(ds)
        actual = t.rssi_at_1m - 10 * t.path_loss_exponent * np.log10(ds)
        assert np.abs(fitted - actual).max() <= CURVE_DB, f
        assert abs(f.rssi_at_1m - t.rssi_at_1m) <= A_DB, f
        assert abs(f.path_loss_exponent - t.path_loss_exponent) <= N, f
    offsets = [true[f.anchor.id].rssi_at_1m for f in fits]
    assert np.corrcoef([f.rssi_at_1m for f in fits], offsets)[0, 1] >= 0.9


def test_huber_fit_recovers_a_line_despite_outliers() -> None:
    rng = np.random.default_rng(0)
    d = rng.uniform(0.5, 15.0, 2000)
    rssi = -61.0 - 27.0 * np.log10(d) + rng.normal(0.0, 2.0, len(d))
    rssi[::10] += 25.0  # reflections: one sample in ten far too loud
    a, n, rms = fit_log_distance(d.tolist(), rssi.tolist())
    assert a == pytest.approx(-61.0, abs=0.5) and n == pytest.approx(2.7, abs=0.05)
    assert rms > 5.0  # the RMS reports the outliers honestly


def test_a_walk_with_known_positions_recovers_each_scanners_calibration() -> None:
    config = varied_store()
    sim = StoreSimulator(config, 24, 20, seed=1, start_at=START, radio=RADIO, sightings=False)
    samples = walk_samples(config, sim.items(), truth_of(sim), height_m=1.3)
    scanners = [a for a in config.anchors if a.kind is AnchorKind.SCANNER]
    fits, short = fit_anchors(scanners, samples, Criteria())
    assert short == []
    check_recovered(fits, {a.id: a for a in sim.true_anchors()})


def test_store_beacons_heard_by_the_scanners_recover_their_calibration() -> None:
    config = varied_store()
    sim = StoreSimulator(
        config, 0, 10, seed=1, start_at=START, radio=RADIO, beacons_heard_by_scanners=True
    )
    samples = beacon_samples(config, sim.items())
    assert set(samples.by_anchor) == {a.id for a in config.anchors if a.kind.value == "scanner"}
    scanners = [a for a in config.anchors if a.kind is AnchorKind.SCANNER]
    fits, short = fit_anchors(scanners, samples, Criteria())
    assert short == []
    check_recovered(fits, {a.id: a for a in sim.true_anchors()})


def test_without_a_pool_an_anchor_short_of_samples_or_spread_is_named_with_what_it_lacks() -> None:
    anchors = [Anchor(k, AnchorKind.SCANNER, 0, 0) for k in ("few", "close", "none")]
    samples = Samples()
    for i in range(5):
        samples.add("few", 1.0 + i, -60.0 - i)
    for i in range(100):
        samples.add("close", 4.0 + 0.01 * i, -75.0)
    fits, short = fit_anchors(anchors, samples, Criteria(min_samples=30, min_spread=2.0))
    assert fits == []  # the pool is flat (exponent 0.00): nothing to lend
    reasons = {s.anchor: s.reason for s in short}
    assert "5 sample(s), fewer than 30" in reasons["few"] and "no pooled fit" in reasons["few"]
    assert "4.0–5.0 m" in reasons["close"] and "factor of 2" in reasons["close"]
    assert "0 sample(s)" in reasons["none"]


def walk_of(a1m: float, n: float, d: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """RSSIs at distances `d` under the model, with 3 dB of Gaussian noise."""
    out: np.ndarray = a1m - 10.0 * n * np.log10(d) + rng.normal(0.0, 3.0, len(d))
    return out


def test_an_anchor_with_few_samples_or_a_narrow_range_takes_the_pooled_fit_shrunk() -> None:
    rng = np.random.default_rng(4)
    samples = Samples()
    for aid, a1m in (("a", -60.0), ("b", -64.0)):
        d = rng.uniform(0.5, 12.0, 400)
        for dist, r in zip(d, walk_of(a1m, 2.0, d, rng), strict=True):
            samples.add(aid, float(dist), float(r))
    few = np.array([2.0, 3.0, 4.0, 5.0, 5.0])
    for dist, r in zip(few, -70.0 - 20.0 * np.log10(few), strict=True):
        samples.add("few", float(dist), float(r))
    close = rng.uniform(4.0, 5.0, 100)
    for dist, r in zip(close, walk_of(-56.0, 2.0, close, rng), strict=True):
        samples.add("close", float(dist), float(r))
    names = ("a", "b", "few", "close", "none")
    anchors = [Anchor(k, AnchorKind.SCANNER, 0, 0) for k in names]
    fits, short = fit_anchors(anchors, samples, Criteria(min_samples=30, min_spread=2.0))
    got = {f.anchor.id: f for f in fits}
    assert [s.anchor for s in short] == ["none"] and "0 sample(s)" in short[0].reason
    assert got["a"].pooled == "" and got["b"].pooled == ""
    pool_n = got["few"].path_loss_exponent
    assert pool_n == got["close"].path_loss_exponent == pytest.approx(2.0, abs=0.15)
    assert "5 sample(s), fewer than 30" in got["few"].pooled
    assert got["few"].pooled.endswith("for a fit of its own, record longer near it")
    assert "4.0–5.0 m" in got["close"].pooled
    # rssi_at_1m: its own level, shrunk towards the pool's (~ -62) by m / (m + 10)
    assert got["few"].rssi_at_1m == pytest.approx((5 * -70.0 + 10 * -62.0) / 15, abs=1.0)
    assert got["close"].rssi_at_1m == pytest.approx((100 * -56.0 + 10 * -62.0) / 110, abs=1.0)
    text = format_yaml(fits, short, "a test")
    pooled = "  # pooled (all anchors' exponent, rssi_at_1m shrunk towards theirs): "
    assert pooled + "5 sample(s), fewer than 30; for a fit of its own, record" in text
    assert yaml.safe_load(text)["anchors"][2]["id"] == "few"


def test_a_walled_rooms_shallow_exponent_is_accepted() -> None:
    rng = np.random.default_rng(2)
    samples = Samples()
    d = rng.uniform(0.5, 12.0, 300)
    for dist, r in zip(d, walk_of(-62.0, 0.3, d, rng), strict=True):
        samples.add("w", float(dist), float(r))
    fits, short = fit_anchors([Anchor("w", AnchorKind.SCANNER, 0, 0)], samples, Criteria())
    assert short == [] and fits[0].pooled == ""
    assert fits[0].path_loss_exponent == pytest.approx(0.3, abs=0.1)


def test_a_ceiling_receiver_near_its_floor_with_reflections_is_fitted_close_to_truth() -> None:
    """A receiver 2.5 m up, distances on the floor plan, nothing heard under -78 dBm and one
    advert in twenty reflected 15 dB louder: the old refit trimmed of the distances near the
    floor kept only the near samples, where the height flattens the curve (n -0.01,
    refused); the robust fit of all of them follows the true curve."""
    rng = np.random.default_rng(0)
    d = 12.0 * np.sqrt(rng.random(1500)) + 0.3  # a walk: more time far than near
    r = -55.0 - 20.0 * np.log10(np.hypot(d, 2.5)) + rng.normal(0.0, 4.0, len(d))
    heard = r > -78.0
    d, r = d[heard], r[heard]
    r[rng.random(len(d)) < 0.05] += 15.0
    samples = Samples()
    for dist, rssi in zip(d, r, strict=True):
        samples.add("ceiling", float(dist), float(rssi))
    anchor = Anchor("ceiling", AnchorKind.SCANNER, 0, 0)
    fits, short = fit_anchors([anchor], samples, Criteria())
    assert short == [] and fits[0].pooled == ""
    ds = np.linspace(2.0, 10.0, 9)
    fitted = fits[0].rssi_at_1m - 10.0 * fits[0].path_loss_exponent * np.log10(ds)
    assert np.abs(fitted - (-55.0 - 20.0 * np.log10(np.hypot(ds, 2.5)))).max() <= CURVE_DB


def test_mislabelled_far_samples_do_not_drag_the_slope() -> None:
    """Three in five of the samples beyond 9 m carry the RSSI of a device standing by the
    anchor (a truth file out of step): least squares gives n 0.85, Huber alone gave 1.52,
    for a true 2.0."""
    rng = np.random.default_rng(0)
    d = rng.uniform(0.5, 12.0, 600)
    r = walk_of(-55.0, 2.0, d, rng)
    bad = (d > 9.0) & (rng.random(len(d)) < 0.6)
    r[bad] = -55.0 + rng.normal(0.0, 3.0, int(bad.sum()))
    a, n, _ = fit_log_distance(d.tolist(), r.tolist())
    assert n == pytest.approx(2.0, abs=0.2) and a == pytest.approx(-55.0, abs=1.5)


@pytest.fixture(scope="module")
def walk(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The reference store, and a simulated walk: trace, truth and customers files."""
    folder = tmp_path_factory.mktemp("calibrate")
    config = load_config(reference_store(folder))
    sim = StoreSimulator(config, 12, 10, seed=3, start_at=START)
    with (folder / "trace.jsonl").open("w") as trace, (folder / "truth.jsonl").open("w") as truth:
        sim.write(trace, truth)
    people = demo_customers(sim.devices(), 3)
    lines = [json.dumps(customer_to_obj(c)) for c in people]
    (folder / "customers.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


def test_the_cli_prints_yaml_that_config_yaml_accepts(
    walk: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["calibrate", str(walk / "trace.jsonl"), "-c", str(walk / "config.yaml")]
    args += ["--truth", str(walk / "truth.jsonl"), "--customers", str(walk / "customers.jsonl")]
    assert main(args) == 0
    out = capsys.readouterr().out
    fitted = {a["id"]: a for a in yaml.safe_load(out)["anchors"]}
    assert {"pi-entrance", "node-tv"} <= set(fitted)
    assert any(a["kind"] == "beacon" for a in fitted.values())  # from the phones' sightings
    assert "RMS" in out and " samples, " in out
    # calibrate fits exponents from 0.2, and the config accepts every one of them as pasted
    assert all(a["path_loss_exponent"] >= 0.2 for a in fitted.values())
    raw = yaml.safe_load((walk / "config.yaml").read_text(encoding="utf-8"))
    raw["anchors"] = [fitted.get(a["id"], a) for a in raw["anchors"]]
    pasted = walk / "pasted"
    pasted.mkdir()
    config = load_config(reference_store(pasted, anchors=raw["anchors"]))
    tv = config.anchor("node-tv")
    assert tv is not None and tv.rssi_at_1m == fitted["node-tv"]["rssi_at_1m"]
    assert 0.2 <= tv.path_loss_exponent <= 6.0


def test_without_store_beacons_heard_the_cli_says_so_and_exits_1(
    walk: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["calibrate", str(walk / "trace.jsonl"), "-c", str(walk / "config.yaml")])
    assert code == 1
    err = capsys.readouterr().err
    assert "no store beacon" in err and "--truth" in err


def test_a_bad_truth_file_is_refused_with_its_line(
    walk: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = walk / "bad-truth.jsonl"
    bad.write_text('{"at": 1, "device": "d", "x": 1, "y": 2, "zones": []}\n{"at": 2}\n')
    args = ["calibrate", str(walk / "trace.jsonl"), "-c", str(walk / "config.yaml")]
    assert main([*args, "--truth", str(bad)]) == 1
    assert f"{bad}:2:" in capsys.readouterr().err
    assert main([*args, "--min-samples", "1"]) == 1
    assert "--min-samples must be ≥ 2" in capsys.readouterr().err


def test_rayon_simulate_makes_a_trace_rayon_calibrate_fits(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = reference_store(tmp_path)
    trace = tmp_path / "beacons.jsonl"
    argv = ["simulate", "-c", str(config), "--shoppers", "1", "--minutes", "5"]
    assert main([*argv, "--scanners-hear-beacons", "-o", str(trace)]) == 0
    assert "trace lines" in capsys.readouterr().err
    assert main(["calibrate", str(trace), "-c", str(config)]) == 0
    out, err = capsys.readouterr()
    fitted = yaml.safe_load(out)["anchors"]
    scanners = {a.id for a in load_config(config).anchors if a.kind is AnchorKind.SCANNER}
    assert fitted and {a["id"] for a in fitted} <= scanners
    unfitted = {line.split(": ")[2] for line in err.splitlines() if "not fitted" in line}
    assert {a["id"] for a in fitted} | unfitted == scanners  # every scanner: fitted, or why not
