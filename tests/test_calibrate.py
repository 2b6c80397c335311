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
    Truth,
    beacon_samples,
    fit_anchors,
    fit_log_distance,
    walk_samples,
)
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
    return Truth({d: tuple(np.array(r).T) for d, r in rows.items()})


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


def test_an_anchor_without_enough_samples_or_spread_is_named_with_what_it_lacks() -> None:
    anchors = [Anchor(k, AnchorKind.SCANNER, 0, 0) for k in ("few", "close", "none")]
    samples = Samples()
    for i in range(5):
        samples.add("few", 1.0 + i, -60.0 - i)
    for i in range(100):
        samples.add("close", 4.0 + 0.01 * i, -75.0)
    fits, short = fit_anchors(anchors, samples, Criteria(min_samples=30, min_spread=2.0))
    assert fits == []
    reasons = {s.anchor: s.reason for s in short}
    assert "5 sample(s)" in reasons["few"] and "needs at least 30" in reasons["few"]
    assert "4.0–5.0 m" in reasons["close"] and "factor of 2" in reasons["close"]
    assert "0 sample(s)" in reasons["none"]


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
    raw = yaml.safe_load((walk / "config.yaml").read_text(encoding="utf-8"))
    raw["anchors"] = [fitted.get(a["id"], a) for a in raw["anchors"]]
    pasted = walk / "pasted"
    pasted.mkdir()
    config = load_config(reference_store(pasted, anchors=raw["anchors"]))
    tv = config.anchor("node-tv")
    assert tv is not None and tv.rssi_at_1m == fitted["node-tv"]["rssi_at_1m"]
    assert 1.0 <= tv.path_loss_exponent <= 6.0


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
