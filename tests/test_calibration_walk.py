"""A calibration walk (`rayon simulate --calibration-walk`) learned into a radio map
(`rayon calibrate --map-out`), the map named by `locate.radio_map`, and `rayon doctor` on it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from gateway.cli.main import main
from gateway.config.load import load_config
from gateway.errors import ConfigError, InvalidInput
from gateway.identity.model import CustomerRegistry
from gateway.locate.radiomap import RadioMap
from gateway.offline.truth import Truth
from gateway.ops.doctor import Outcome, check_radio_map
from gateway.pipeline import Pipeline
from gateway.rules.model import RuleSet
from gateway.sources.trace import TraceError, read_trace
from gateway.zones.index import ZoneIndex
from tests.stores import ROOT, reference_store


@pytest.fixture(scope="module")
def walk(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The reference store walked once by a surveyor with an iPhone (adverts and sightings),
    truth by position, and once with a tag, truth by zone."""
    folder = tmp_path_factory.mktemp("walk")
    config = str(reference_store(folder))
    argv = ["simulate", "-c", config, "--calibration-walk", "--seed", "3"]
    phone = ["--customers", str(folder / "customers.jsonl")]
    assert (
        main(
            [
                *argv,
                "-o",
                str(folder / "walk.jsonl"),
                "--truth",
                str(folder / "truth.jsonl"),
                *phone,
            ]
        )
        == 0
    )
    zoned = [
        "-o",
        str(folder / "tag.jsonl"),
        "--truth",
        str(folder / "zones.jsonl"),
        "--zone-truth",
    ]
    assert main([*argv, *zoned]) == 0
    return folder


def calibrate(
    walk: Path, *extra: str, truth: str = "truth.jsonl", trace: str = "walk.jsonl"
) -> int:
    args = ["calibrate", str(walk / trace), "-c", str(walk / "config.yaml")]
    args += ["--truth", str(walk / truth), *extra]
    return main(args)


def test_the_calibration_walk_visits_every_zone_and_is_seeded(walk: Path, tmp_path: Path) -> None:
    config = load_config(walk / "config.yaml")
    rows = [json.loads(line) for line in (walk / "truth.jsonl").read_text().splitlines()]
    xs, ys = np.array([r["x"] for r in rows]), np.array([r["y"] for r in rows])
    inside = ZoneIndex(config.zones).containing_many(xs, ys).sum(axis=1)
    # truth at 1 Hz: each zone holds the surveyor at least for the 20 s stop
    assert inside.min() >= 15, dict(zip([z.id for z in config.zones], inside.tolist(), strict=True))
    named = [json.loads(line)["zone"] for line in (walk / "zones.jsonl").read_text().splitlines()]
    # by zone, the smallest: every zone but the store's outline, which the aisles' lines cover
    assert sorted(z for z in named if z) == sorted(z.id for z in config.zones if z.id != "store")
    again = tmp_path / "again.jsonl"
    argv = ["simulate", "-c", str(walk / "config.yaml"), "--calibration-walk", "--seed", "3"]
    assert main([*argv, "-o", str(again), "--zone-truth"]) == 0
    assert again.read_bytes() == (walk / "tag.jsonl").read_bytes()


def test_calibrate_writes_a_map_that_loads_and_scores_it(
    walk: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "radio-map.json"
    customers = str(walk / "customers.jsonl")
    assert calibrate(walk, "--customers", customers, "--map-out", str(out)) == 0
    stdout, err = capsys.readouterr()
    assert yaml.safe_load(stdout)["anchors"]  # the anchors' YAML stays
    radio_map = RadioMap.load(out)
    config = load_config(walk / "config.yaml")
    assert radio_map.anchors == tuple(a.id for a in config.anchors)
    assert radio_map.detect is not None  # the phone's scans give detection rates
    assert not radio_map.moved(config.anchors)
    assert f"wrote the radio map {out}" in err
    line = next(x for x in err.splitlines() if "held back" in x)
    with_map = float(line.split("zone right ")[1].split(" %")[0])
    assert 50.0 <= with_map <= 100.0 and "mean error" in line and "without" in line


def test_a_survey_by_zone_makes_a_map_without_positions(
    walk: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "zones.json"
    assert calibrate(walk, "--map-out", str(out), truth="zones.jsonl", trace="tag.jsonl") == 0
    err = capsys.readouterr().err
    assert "no position (zone lines only)" in err and "held back" in err
    radio_map = RadioMap.load(out)
    assert radio_map.detect is None and sum(radio_map.samples) > 0


def test_zone_lines_hold_until_the_next_line(tmp_path: Path) -> None:
    truth = tmp_path / "truth.jsonl"
    lines = [
        {"at": 0, "device": "d", "x": 1.0, "y": 1.0},
        {"at": 2, "device": "d", "x": 3.0, "y": 1.0},
        {"at": 4, "device": "d", "zone": "b"},
        {"at": 10, "device": "d", "zone": None},
        {"at": 12, "device": "d", "x": 5.0, "y": 5.0},
    ]
    truth.write_text("".join(json.dumps(x) + "\n" for x in lines))
    got = Truth.read(truth, ["a", "b"])
    at = np.array([1.0, 3.0, 4.0, 9.9, 10.0, 12.0])
    x, _, known = got.positions("d", at)
    assert known.tolist() == [True, False, False, False, False, True]
    assert x[0] == pytest.approx(2.0) and x[5] == pytest.approx(5.0)
    assert got.zone_at("d", at).tolist() == [-1, -1, 1, 1, -1, -1]
    assert got.named_zones() == {1}


@pytest.mark.parametrize(
    ("line", "said"),
    [
        (
            '{"at": 5, "device": "d", "zone": "aisle-tvv"}',
            "unknown zone 'aisle-tvv' (did you mean 'aisle-tv'?)",
        ),
        ('{"at": 5, "device": "d", "zone": 3}', "'zone' must be a zone id of the config"),
        ('{"at": 5, "device": "d", "x": 1}', "x and y must be numbers"),
        ('{"at": 5, "device": "d", "x": 1, ', "not JSON"),
    ],
)
def test_a_bad_truth_line_is_located(
    walk: Path, tmp_path: Path, line: str, said: str, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"at": 1, "device": "d", "zone": "aisle-tv"}\n' + line + "\n")
    assert calibrate(walk, "--map-out", str(tmp_path / "m.json"), truth=str(bad)) == 1
    err = capsys.readouterr().err
    assert f"{bad}:2:" in err and said in err
    assert not (tmp_path / "m.json").exists()


def test_a_walk_that_misses_a_zone_is_refused_naming_it(
    walk: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = load_config(walk / "config.yaml")
    photo = next(z for z in config.zones if z.id == "aisle-photo").polygon
    kept = []
    for text in (walk / "truth.jsonl").read_text().splitlines():
        r = json.loads(text)
        x0, y0, x1, y1 = photo.bounds
        if not (x0 <= r["x"] <= x1 and y0 <= r["y"] <= y1):
            kept.append(text)
    partial = tmp_path / "partial.jsonl"
    partial.write_text("\n".join(kept) + "\n")
    out = tmp_path / "m.json"
    assert calibrate(walk, "--map-out", str(out), truth=str(partial)) == 1
    err = capsys.readouterr().err
    assert f"{partial}: the walk never enters 1 zone(s): aisle-photo;" in err
    assert not out.exists()
    # a zone line for it covers it (and a zone line for an aisle covers the store too)
    with partial.open("a") as fh:
        device = json.loads(kept[0])["device"]
        fh.write(json.dumps({"at": 1e10, "device": device, "zone": "aisle-photo"}) + "\n")
    assert calibrate(walk, "--map-out", str(out), truth=str(partial)) == 0
    assert out.exists()


def test_thin_zones_are_named_with_their_counts(
    walk: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = str(tmp_path / "m.json")
    assert calibrate(walk, "--map-out", out) == 0
    assert "thin zones" not in capsys.readouterr().err  # the default walk lingers enough
    assert calibrate(walk, "--map-out", out, "--min-zone-samples", "100000") == 0
    thin = next(x for x in capsys.readouterr().err.splitlines() if "thin zones" in x)
    assert "fewer than 100000 samples and 15 scans; walk there longer" in thin
    counts = {
        part.split(": ")[0]: int(part.split(": ")[1].split(" ")[0])
        for part in thin.split("longer): ")[1].split("; ")
    }
    config = load_config(walk / "config.yaml")
    assert set(counts) == {z.id for z in config.zones}  # no scans: --customers not given
    assert counts["store"] > counts["aisle-tv"] >= 15  # the store holds every sample


def _with_map(walk: Path, folder: Path, radio_map: str | None, method: str = "auto") -> Path:
    """The walk's store in `folder` with `locate.radio_map` set (None: unset)."""
    raw = yaml.safe_load((walk / "config.yaml").read_text(encoding="utf-8"))
    raw["locate"] = {"method": method} | ({"radio_map": radio_map} if radio_map else {})
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    return path


def test_a_missing_map_file_is_a_located_config_error(walk: Path, tmp_path: Path) -> None:
    path = _with_map(walk, tmp_path, "radio-map.json")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    (d,) = info.value.diagnostics
    assert d.key_path == "locate.radio_map" and d.line > 1
    assert f"no radio map at {tmp_path / 'radio-map.json'}" in d.message
    assert "--map-out radio-map.json" in d.message


def test_a_bad_map_file_stops_the_pipeline_saying_where(walk: Path, tmp_path: Path) -> None:
    (tmp_path / "radio-map.json").write_text('{"format": "rayon-radio-map/1",\n "grid": [}\n')
    config = load_config(_with_map(walk, tmp_path, "radio-map.json"))
    assert config.locate.radio_map == tmp_path / "radio-map.json"
    with pytest.raises(InvalidInput) as info:
        Pipeline(config, RuleSet(()), CustomerRegistry(()))
    said = str(info.value)
    assert said.startswith(f"{config.path}: locate.radio_map: {tmp_path / 'radio-map.json'}:2:")
    assert "--map-out" in said


def test_the_pipeline_locates_with_the_map(walk: Path, tmp_path: Path) -> None:
    assert calibrate(walk, "--map-out", str(tmp_path / "radio-map.json")) == 0
    config = load_config(_with_map(walk, tmp_path, "radio-map.json"))
    pipeline = Pipeline(config, RuleSet(()), CustomerRegistry(()))
    fixes = []
    for item in read_trace(walk / "walk.jsonl"):
        assert not isinstance(item, TraceError)
        fixes += pipeline.feed(item).fixes
    assert fixes and all(f.zone_probability is not None for f in fixes)


def test_replay_writes_each_fixs_zone_probabilities_with_a_map(walk: Path, tmp_path: Path) -> None:
    assert calibrate(walk, "--map-out", str(tmp_path / "radio-map.json")) == 0
    config = _with_map(walk, tmp_path, "radio-map.json")
    fixes, events = tmp_path / "fixes.jsonl", tmp_path / "events.jsonl"
    argv = ["replay", str(walk / "walk.jsonl"), "-c", str(config)]
    assert main([*argv, "--fixes-out", str(fixes), "--events-out", str(events)]) == 0
    lines = [json.loads(line) for line in fixes.read_text().splitlines()]
    assert lines and all("zone_probability" in line for line in lines)
    for line in lines:
        shares = list(line["zone_probability"].values())
        assert shares == sorted(shares, reverse=True)  # most probable first
        assert all(0.3 <= p <= 1.0 for p in shares)  # above the lowest exit threshold
    entered = [json.loads(e) for e in events.read_text().splitlines()]
    enters = [e for e in entered if e["kind"] == "enter"]
    assert enters and all(e["reason"]["probability"] >= 0.6 for e in enters)


def test_doctor_warns_without_a_map_or_with_moved_anchors(walk: Path, tmp_path: Path) -> None:
    none = check_radio_map(load_config(_with_map(walk, tmp_path, None)))
    assert none.outcome is Outcome.WARNED and "locate.radio_map" in none.detail
    assert "--map-out radio-map.json" in none.hint and "docs/calibration.md" in none.hint
    assert calibrate(walk, "--map-out", str(tmp_path / "radio-map.json")) == 0
    good = check_radio_map(load_config(_with_map(walk, tmp_path, "radio-map.json")))
    assert good.outcome is Outcome.OK, good
    unused = load_config(_with_map(walk, tmp_path, "radio-map.json", method="centroid"))
    idle = check_radio_map(unused)
    assert idle.outcome is Outcome.WARNED and "not used by locate.method centroid" in idle.detail
    _with_map(walk, tmp_path, "radio-map.json")
    raw = yaml.safe_load((tmp_path / "config.yaml").read_text(encoding="utf-8"))
    raw["anchors"][5]["x"] += 2.0  # node-tv moved 2 m
    raw["anchors"].append({"id": "node-new", "kind": "scanner", "x": 1.0, "y": 1.0})
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(raw, allow_unicode=True))
    moved = check_radio_map(load_config(tmp_path / "config.yaml"))
    assert moved.outcome is Outcome.WARNED
    assert (
        "older than 2 of the config's anchors: node-tv (moved 2.0 m), node-new (not in the map)"
        in moved.detail
    )
    (tmp_path / "radio-map.json").write_text("{}")
    broken = check_radio_map(load_config(tmp_path / "config.yaml"))
    assert broken.outcome is Outcome.FAILED and "not a radio map" in broken.errors[0]
    assert broken.lines()[0].startswith("✗ radio map:")


def test_the_demo_stores_map_is_made_for_the_reference_store() -> None:
    config = load_config(ROOT / "config.example.yaml")
    radio_map = RadioMap.load(ROOT / "radio-map.example.json")
    assert radio_map.anchors == tuple(a.id for a in config.anchors)
    assert not radio_map.moved(config.anchors) and radio_map.detect is not None
    assert radio_map.source == "walk.jsonl with the truth truth.jsonl"  # as `./dev radio-map`


def test_the_demo_stores_map_is_what_dev_radio_map_makes(tmp_path: Path) -> None:
    """The committed map is the one the current code makes (else: `./dev radio-map`)."""
    config = str(ROOT / "config.example.yaml")
    walk, truth, customers = (str(tmp_path / n) for n in ("walk.jsonl", "truth.jsonl", "c.jsonl"))
    argv = ["simulate", "-c", config, "--calibration-walk", "--seed", "7"]
    assert main([*argv, "--customers", customers, "-o", walk, "--truth", truth]) == 0
    made = tmp_path / "radio-map.json"
    args = ["calibrate", walk, "--truth", truth, "--customers", customers, "-c", config]
    assert main([*args, "--map-out", str(made)]) == 0
    shipped = (ROOT / "radio-map.example.json").read_bytes()
    assert made.read_bytes() == shipped, "radio-map.example.json is stale: run ./dev radio-map"
