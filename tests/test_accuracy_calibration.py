"""The accuracy benchmark's calibration parts, the kNN fingerprint baseline, the area score
and the survey arrays: synthetic parts that always run, then the real files when present."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from gateway.cli.main import main
from gateway.errors import InvalidInput
from gateway.events import Observation
from rayon_tooling.accuracy import tetam, uji
from rayon_tooling.accuracy.baselines import FLOOR_DBM, fingerprints, knn, window_means
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
from rayon_tooling.accuracy.evaluate import score, time_weights
from rayon_tooling.accuracy.survey import survey

ROOT = datasets_root()
ZONES = grid_zones((0.0, 5.0, 10.0), (0.0, 5.0), "z")


def scan(at: float, x: float, rssi: dict[str, float]) -> tuple[list[Observation], Truth]:
    """One scan at `at` on the line y = 1, and its truth."""
    obs = [Observation(at, "d", a, v) for a, v in sorted(rssi.items())]
    return obs, Truth(at, x, 1.0, "z1-1" if x < 5 else "z2-1")


def stream(scans: list[tuple[list[Observation], Truth]], unit: str = "u") -> Stream:
    return Stream("d", unit, tuple(o for obs, _ in scans for o in obs), tuple(t for _, t in scans))


# --- the area score


def test_area_weighs_each_instant_by_the_time_to_the_next() -> None:
    truth = (
        Truth(0.0, 1.0, 1.0, "z1-1"),  # 3 s until the next instant
        Truth(3.0, 6.0, 1.0, "z2-1"),  # 1 s
        Truth(4.0, 6.0, 1.0, "z2-1"),  # last: the stream's median step, 2 s
    )
    part = Part((Stream("d", "u", (), truth),))
    (weights,) = time_weights(part)
    assert list(weights) == [3.0, 1.0, 2.0]
    s = score(part, [[(1.0, 1.0), (1.0, 1.0), (6.0, 1.0)]], ZoneMap(ZONES))
    assert s.zone_accuracy == pytest.approx(2 / 3)
    assert s.area == pytest.approx((3.0 + 2.0) / 6.0)  # wrong for 1 s of 6


def test_a_one_instant_stream_counts_for_the_parts_median_step() -> None:
    long = Stream("d", "a", (), tuple(Truth(t, 1.0, 1.0, "z1-1") for t in (0.0, 2.0, 4.0)))
    single = Stream("e", "b", (), (Truth(0.0, 6.0, 1.0, "z2-1"),))
    assert [list(w) for w in time_weights(Part((long, single)))] == [[2.0, 2.0, 2.0], [2.0]]
    s = score(Part((long, single)), [[(1.0, 1.0)] * 3, [(1.0, 1.0)]], ZoneMap(ZONES))
    assert s.area == pytest.approx(6.0 / 8.0)
    alone = time_weights(Part((single,)))
    assert [list(w) for w in alone] == [[1.0]]


# --- the kNN fingerprint baseline


def calibration() -> Part:
    """Anchor a at x = 0, b at x = 10: a line survey, louder near each."""
    return Part(
        (
            stream(
                [
                    scan(2.0 * k, float(x), {"a": -40.0 - 4 * x, "b": -80.0 + 4 * x})
                    for k, x in enumerate(range(11))
                ],
                "cal",
            ),
        )
    )


def test_fingerprints_are_window_means_with_the_floor_for_silent_anchors() -> None:
    part = Part(
        (
            stream(
                [
                    scan(0.0, 1.0, {"a": -50.0}),
                    scan(2.0, 2.0, {"a": -60.0, "b": -70.0}),
                    scan(4.0, 3.0, {"c": -40.0}),
                ]
            ),
        )
    )
    refs = fingerprints(part, ["a", "b"], 0.0)
    assert refs.anchors == ("a", "b")
    assert refs.vectors.tolist() == [[-50.0, FLOOR_DBM], [-60.0, -70.0]]  # c is no anchor
    assert refs.x.tolist() == [1.0, 2.0]


def test_knn_places_the_device_at_the_mean_of_the_five_nearest_references() -> None:
    refs = fingerprints(calibration(), ["a", "b"], 0.0)
    # x = 4.4 in the survey's model: nearest references x = 4, 5, 3, 6, 2 (distances in dBm)
    means = [{"a": -57.6, "b": -62.4}]
    ((x, y),) = knn(means, refs, (0.0, 0.0))
    assert (x, y) == pytest.approx((4.0, 1.0))
    ((x1, _),) = knn(means, refs, (0.0, 0.0), k=1)
    assert x1 == pytest.approx(4.0)
    ((x2, _),) = knn(means, refs, (0.0, 0.0), k=2)
    assert x2 == pytest.approx(4.5)


def test_knn_counts_a_silent_anchor_at_the_floor_and_holds_through_silence() -> None:
    refs = fingerprints(calibration(), ["a", "b"], 0.0)
    # only a heard, loud: b at the floor (-100) is nearest x = 0 (b -80), then 1, 2, ...
    out = knn([{"a": -40.0}, {}, {"z": -50.0}], refs, (7.0, 7.0), k=3)
    assert out == [pytest.approx((1.0, 1.0))] * 3  # nothing known heard: the last estimate
    assert knn([{}], refs, (7.0, 7.0)) == [(7.0, 7.0)]  # from the start


def test_knn_references_are_per_second_windows_of_a_static_stream() -> None:
    obs = tuple(Observation(0.25 + 0.5 * k, "d", "a", -50.0 - (k % 2) * 10) for k in range(6))
    truth = tuple(Truth(float(t), 2.0, 1.0, "z1-1") for t in (1, 2, 3))
    refs = fingerprints(Part((Stream("d", "u", obs, truth),)), ["a"], 1.0)
    assert refs.vectors.tolist() == [[-55.0]] * 3  # one per second: the mean of its 2 packets


# --- the survey arrays


def test_survey_interpolates_each_observation_and_lists_the_scans() -> None:
    part = Part(
        (
            stream([scan(0.0, 0.0, {"a": -50.0}), scan(2.0, 4.0, {"a": -55.0, "b": -70.0})]),
            Stream(
                "e",
                "w",
                (Observation(1.0, "e", "b", -60.0),),
                (Truth(0.0, 0.0, 0.0, "z1-1"), Truth(2.0, 2.0, 4.0, "z1-1")),
            ),
        )
    )
    s = survey(part, ["a", "b", "c"], scans=True)
    assert s.anchors == ("a", "b", "c")
    assert s.anchor.tolist() == [0, 0, 1, 1]
    assert s.rssi.tolist() == [-50.0, -55.0, -70.0, -60.0]
    assert s.stream.tolist() == [0, 0, 0, 1]
    assert list(zip(s.x.tolist(), s.y.tolist(), strict=True)) == [
        (0.0, 1.0),
        (4.0, 1.0),
        (4.0, 1.0),
        (1.0, 2.0),  # the last halfway along its walk
    ]
    assert s.scans is not None
    assert s.scans.heard.tolist() == [
        [True, False, False],
        [True, True, False],
        [False, False, False],
        [False, False, False],
    ]
    assert s.scans.x.tolist() == [0.0, 4.0, 0.0, 2.0]
    assert survey(part).anchors == ("a", "b") and survey(part).scans is None


# --- tetam's fingerprints as static streams


def write_hst(path: Path, sensors: dict[str, list[float]]) -> Path:
    bins = [float(b) for b in range(-100, -19)]
    fingerprints = {"(2.0, 3.0, 1.85)": {s: {"e78f135624ce": h} for s, h in sensors.items()}}
    path.write_text(
        f"Bins:{bins}\nDongles:{{}}\nBeacons:{{}}\nFingerprints:{json.dumps(fingerprints)}\n"
    )
    return path


def test_a_fingerprint_becomes_a_static_stream_that_reproduces_its_histogram(
    tmp_path: Path,
) -> None:
    h1 = [0.0] * 80
    h1[30], h1[40] = 0.25, 0.75  # -70 dBm a quarter of the time, -60 the rest
    h2 = [0.0] * 80
    h2[10] = 1.0
    hst = write_hst(tmp_path / "t.hst", {"s1": h1, "s2": h2})
    zmap = ZoneMap(ZONES)
    (s,) = tetam._fingerprints(hst, "set_9", {"s1", "s2", "s3"}, zmap)
    assert s.unit == "hst/set_9:(2.0, 3.0, 1.85)"
    assert [(t.at, t.x, t.y, t.zone) for t in s.truth] == [
        (float(t), 2.0, 3.0, "z1-1") for t in range(1, tetam.HST_SECONDS + 1)
    ]
    times = [o.at for o in s.observations]
    assert times == sorted(times) and times[0] > 0 and times[-1] < tetam.HST_SECONDS
    s1 = [o.rssi for o in s.observations if o.anchor == "s1"]
    assert len(s1) == tetam.HST_SECONDS * tetam.HST_RATE_HZ
    assert sorted(set(s1)) == [-70.0, -60.0] and s1.count(-70.0) == len(s1) // 4
    assert {o.rssi for o in s.observations if o.anchor == "s2"} == {-90.0}
    per_second = [m["s1"] for m in window_means(s, 1.0)]
    assert min(per_second) >= -70.0 and max(per_second) <= -60.0
    assert len(set(per_second)) > 1  # each second draws across the histogram, not one value
    with pytest.raises(InvalidInput, match=r"t\.hst:4: receivers \['s2'\]"):
        tetam._fingerprints(hst, "set_9", {"s1"}, zmap)


def test_a_damaged_hst_file_says_what_it_needs(tmp_path: Path) -> None:
    bad = tmp_path / "bad.hst"
    bad.write_text("Bins:[-100.0, -99.0]\n")
    with pytest.raises(InvalidInput, match="needs a 'Bins:' and a 'Fingerprints:' line"):
        tetam._fingerprints(bad, "set_1", set(), ZoneMap(ZONES))


# --- UJI's campaigns


def write_uji(root: Path, area: str, rows: list[tuple[str, float, int]]) -> None:
    """rows: (fingerprint id, x, collection time in ns); two beacons, both heard."""
    data = root / "uji_ble_db" / "data"
    (data / "dep").mkdir(parents=True, exist_ok=True)
    (data / "rss").mkdir(exist_ok=True)
    (data / "dep" / f"{area}.csv").write_text("id,x,y\nB1,0.0,1.0\nB2,30.0,1.0\n")
    files = {
        "ids": [fid for fid, _, _ in rows],
        "crd": [f"{x},{x % 7 + 2.0}" for _, x, _ in rows],
        "rss": ["-60,-80" for _ in rows],
        "tms": [f"{t},{t + 5}" for _, _, t in rows],
    }
    for kind, lines in files.items():
        (data / "rss" / f"{area}_{kind}.csv").write_text("\n".join(lines) + "\n")


def lib_rows(set2_at: int, set3_at: int) -> list[tuple[str, float, int]]:
    """Two phones carried together (clocks 10^12 ns apart), sets 2 and 3 of 4 scans each."""
    rows = []
    for phone in "12":
        offset = (int(phone) - 1) * 10**12
        for point_set, x0, t0 in (("2", 20.0, set2_at), ("3", 15.0, set3_at)):
            for k in range(4):
                rows.append((f"{phone}2{point_set}0{k + 1:02d}01", x0 + k, t0 + offset + k * 10**9))
    return rows


def test_uji_lib_calibrates_on_the_earlier_campaign_and_tests_on_the_later(
    tmp_path: Path,
) -> None:
    write_uji(tmp_path, "lib", lib_rows(set2_at=10**12, set3_at=2 * 10**12))
    d = uji.load_lib(tmp_path)
    assert d.calibration.units() == {"uji-lib:1:set2", "uji-lib:2:set2"}
    assert d.calibration_test.units() == {"uji-lib:1:set3", "uji-lib:2:set3"}
    assert d.calibration_test is not d.test
    assert "point set 2 (collected first) calibrates" in d.calibration_split
    write_uji(tmp_path / "later", "lib", lib_rows(set2_at=3 * 10**12, set3_at=10**12))
    flipped = uji.load_lib(tmp_path / "later")  # set 3 collected first: it calibrates
    assert flipped.calibration.units() == {"uji-lib:1:set3", "uji-lib:2:set3"}
    assert flipped.calibration_test.units() == {"uji-lib:1:set2", "uji-lib:2:set2"}


def test_uji_phones_that_disagree_on_the_order_leave_one_campaign(tmp_path: Path) -> None:
    rows = lib_rows(set2_at=10**12, set3_at=2 * 10**12)
    rows = [(f, x, t + 5 * 10**12 if f[0] == "2" and f[2] == "2" else t) for f, x, t in rows]
    write_uji(tmp_path, "lib", rows)  # phone 2 now collected set 2 last
    d = uji.load_lib(tmp_path)
    assert d.calibration is d.train and d.calibration_test is d.test


def test_uji_with_one_campaign_calibrates_on_the_train_part(tmp_path: Path) -> None:
    rows = [
        (f"1{tx}100{k + 1:02d}01", 2.0 * k, 10**12 * int(tx) + k) for tx in "12" for k in range(4)
    ]
    write_uji(tmp_path, "geo", rows)
    d = uji.load_geo(tmp_path)
    assert d.calibration is d.train and d.calibration_test is d.test
    assert d.calibration_split.startswith("one campaign")


# --- the real files


@pytest.fixture(scope="module")
def converted() -> dict[str, Dataset]:
    if not ROOT.is_dir():
        pytest.skip(f"{ROOT} is absent: the recorded data sets are not on this machine")
    return {name: load(ROOT) for name, load in LOADERS.items()}


def test_calibration_never_shares_a_unit_or_scan_with_what_it_is_scored_on(
    converted: dict[str, Dataset],
) -> None:
    for name, d in converted.items():
        assert d.calibration.instants() > 100 and d.calibration_test.instants() > 100, name
        assert not d.calibration.units() & d.calibration_test.units(), name
    for name in ("uji-lib", "uji-geo"):  # scan sets: never the same position either
        d = converted[name]
        cal = {(t.x, t.y) for s in d.calibration.streams for t in s.truth}
        test = {(t.x, t.y) for s in d.calibration_test.streams for t in s.truth}
        assert not cal & test, name
    assert converted["kolakowski"].calibration.streams == converted["kolakowski"].train.streams
    assert converted["uci"].calibration is converted["uci"].train
    assert converted["uji-lib"].calibration_test.instants() == 1224  # set 3, the corridors


def test_tetams_calibration_is_its_126_fingerprint_positions(
    converted: dict[str, Dataset],
) -> None:
    d = converted["tetam"]
    assert len(d.calibration.streams) == 126  # 81 in set_1, 45 in set_2
    assert d.calibration.instants() == 126 * tetam.HST_SECONDS
    anchors = {a.id for a in d.anchors}
    heard = {o.anchor for s in d.calibration.streams for o in s.observations}
    assert heard == anchors  # the fingerprints' receivers are tetam.dev's Dongles
    assert d.calibration_test is d.test


def test_bench_accuracy_json_has_the_area_and_the_knn_row(
    capsys: pytest.CaptureFixture[str],
) -> None:
    if not ROOT.is_dir():
        pytest.skip(f"{ROOT} is absent")
    assert main(["bench", "accuracy", "--dataset", "uji-lib", "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    rows = {r["method"]: r for r in report["rows"]}
    knn_row = rows["kNN5 fingerprint"]
    assert knn_row["chosen"] == "trained on calibration, k 5"
    assert knn_row["test"]["instants"] == 1224  # scored on the later campaign
    assert rows["strongest anchor"]["test"]["instants"] == 876
    assert all(0.0 <= r["test"]["area"] <= 1.0 for r in report["rows"])
    assert all(  # scans 2 s apart: time and instants weigh alike
        math.isclose(r["test"]["area"], r["test"]["zone_accuracy"]) for r in report["rows"]
    )
    assert report["datasets"]["uji-lib"]["calibration_test_instants"] == 1224
    assert np.isfinite(knn_row["test"]["error_mean"])
