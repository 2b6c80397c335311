"""`rayon` as a user runs it: exit codes, located errors, the JSON Lines of docs/trace.md."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from gateway.clock import parse_local_time
from gateway.config.load import load_config
from gateway.decode.beacons import encode_ibeacon
from tests.stores import rayon, reference_store
from tests.walks import tv_aisle_walk, walk_adverts, write_walk

ROOT = Path(__file__).resolve().parent.parent
STORE_UUID = "8d8c1a2e-5b3f-4c1d-9e2a-0f6b7c8d9e10"


@pytest.fixture
def store(tmp_path: Path) -> Path:
    """A copy of the reference store with its own database and a copy of the shipped rules."""
    shutil.copytree(ROOT / "rules", tmp_path / "rules")
    return reference_store(tmp_path, rules_dir="rules", database={"url": "sqlite:///rayon.db"})


def test_check_passes_on_the_reference_store() -> None:
    result = rayon("check", "-c", "config.example.yaml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 error(s)" in result.stderr


def test_check_reports_a_misspelt_zone_with_its_place(store: Path) -> None:
    rule = store.parent / "rules" / "tv-aisle-dwell.yaml"  # not under the cwd: absolute
    text = rule.read_text(encoding="utf-8")
    rule.write_text(text.replace("zone: aisle-tv", "zone: aisle-tvs", 1), encoding="utf-8")
    line = next(i for i, t in enumerate(rule.read_text().splitlines(), 1) if "aisle-tvs" in t)
    result = rayon("check", "-c", str(store))
    assert result.returncode == 1
    errors = [ln for ln in result.stdout.splitlines() if ": error: " in ln]
    assert any(
        ln.startswith(f"{rule}:{line}:")
        and "unknown zone 'aisle-tvs'" in ln
        and "did you mean 'aisle-tv'" in ln
        for ln in errors
    ), result.stdout


def test_check_reports_config_errors_and_exits_1(store: Path) -> None:
    store.write_text(store.read_text().replace("timezone: Europe/Paris", "timezone: Europe/Pari"))
    result = rayon("check", "-c", str(store))
    assert result.returncode == 1
    assert f"{store}:" in result.stdout and "Europe/Pari" in result.stdout


def test_missing_config_is_invalid_input(tmp_path: Path) -> None:
    result = rayon("check", cwd=tmp_path)
    assert result.returncode == 1 and "config.yaml" in result.stderr


def test_usage_error_exits_2() -> None:
    assert rayon("replay").returncode == 2
    assert rayon("no-such-command").returncode == 2


def test_decode_writes_one_line_per_input_line() -> None:
    ibeacon = encode_ibeacon(STORE_UUID, 11, 20, -59).hex()
    lines = [
        json.dumps({"manufacturer_data": {"76": ibeacon}, "rssi": -60}),
        json.dumps({"manufacturer_data": {"76": "1005031c0b1f4d"}}),
        "not json",
        json.dumps({"service_data": {}}),
    ]
    result = rayon("decode", stdin="\n".join(lines) + "\n")
    assert result.returncode == 1  # one bad line, reported, alignment kept
    out = [json.loads(line) for line in result.stdout.splitlines()]
    assert out[0] == {
        "kind": "ibeacon",
        "id": f"ibeacon:{STORE_UUID}:11:20",
        "uuid": STORE_UUID,
        "major": 11,
        "minor": 20,
        "tx_power": -59,
    }
    assert out[1:] == [None, None, None]
    assert "<stdin>:3: error:" in result.stderr


def test_simulate_then_replay_writes_the_design_outputs(store: Path, tmp_path: Path) -> None:
    trace, truth, customers = (tmp_path / n for n in ("t.jsonl", "truth.jsonl", "c.jsonl"))
    sim = rayon(
        "simulate",
        "-c",
        str(store),
        "--shoppers",
        "6",
        "--minutes",
        "8",
        "--seed",
        "3",
        "-o",
        str(trace),
        "--truth",
        str(truth),
        "--customers",
        str(customers),
    )
    assert sim.returncode == 0, sim.stderr
    assert rayon("customers", "import", str(customers), "-c", str(store)).returncode == 0
    outs = {k: tmp_path / f"{k}.jsonl" for k in ("fixes", "events", "offers")}
    result = rayon(
        "replay",
        str(trace),
        "-c",
        str(store),
        "--dry-run",
        *(a for k, p in outs.items() for a in (f"--{k}-out", str(p))),
    )
    assert result.returncode == 0, result.stderr
    assert "adverts/s" in result.stderr
    fixes = [json.loads(x) for x in outs["fixes"].read_text().splitlines()]
    events = [json.loads(x) for x in outs["events"].read_text().splitlines()]
    assert fixes and set(fixes[0]) == {"at", "device", "x", "y", "accuracy_m", "anchors", "zones"}
    assert events and all(
        set(e) == {"at", "kind", "zone", "device", "customer", "dwell_s", "reason"} for e in events
    )
    assert {e["kind"] for e in events} >= {"visit_start", "enter", "exit", "visit_end"}
    truth_rows = [json.loads(x) for x in truth.read_text().splitlines()]
    assert set(truth_rows[0]) == {"at", "device", "x", "y", "zones"}
    for offer in (json.loads(x) for x in outs["offers"].read_text().splitlines()):
        assert offer["type"] == "offer" and offer["token"]


def test_replay_reports_bad_trace_lines_and_goes_on(store: Path, tmp_path: Path) -> None:
    trace = tmp_path / "bad.jsonl"
    good = {
        "at": 1.0,
        "adv": {
            "anchor": "node-tv",
            "address": "x",
            "rssi": -60,
            "manufacturer_data": {"76": "00"},
        },
    }
    trace.write_text("{oops\n" + json.dumps(good) + '\n{"at": 2}\n', encoding="utf-8")
    result = rayon("replay", str(trace), "-c", str(store), "--dry-run")
    assert result.returncode == 0, result.stderr
    assert f"{trace}:1: error: not JSON" in result.stderr
    assert f"{trace}:3: error:" in result.stderr
    assert "2 bad line(s)" in result.stderr


def test_customers_import_keeps_good_lines_and_reports_bad_ones(
    store: Path, tmp_path: Path
) -> None:
    src = tmp_path / "customers.jsonl"
    src.write_text(
        json.dumps({"id": "c-1", "token": "t-1", "devices": [f"{STORE_UUID}_1_2"]})
        + "\n"
        + json.dumps({"id": "c-2"})
        + "\n",
        encoding="utf-8",
    )
    result = rayon("customers", "import", str(src), "-c", str(store))
    assert result.returncode == 1
    assert f"{src}:2:" in result.stderr and "imported 1 customer(s)" in result.stderr


def import_tv_fan(store: Path, tmp_path: Path) -> None:
    src = tmp_path / "fan.jsonl"
    fan = {
        "id": "c-tv-1",
        "token": "t-tv-1",
        "devices": [f"ibeacon:{STORE_UUID}:1000:1"],
        "consent": {"instore_location": True, "marketing_push": True},
        "interests": ["tv"],
        "visits": 3,
    }
    src.write_text(json.dumps(fan) + "\n", encoding="utf-8")
    assert rayon("customers", "import", str(src), "-c", str(store)).returncode == 0


def test_explain_says_why_a_rule_fires_or_not(store: Path, tmp_path: Path) -> None:
    import_tv_fan(store, tmp_path)
    args = ("explain", "-c", str(store), "--customer", "c-tv-1", "--rule", "tv-aisle-dwell")
    tuesday = rayon(*args, "--at", "2026-03-03T15:00:31")
    assert tuesday.returncode == 0, tuesday.stderr
    assert "tv-aisle-dwell" in tuesday.stdout and "→ would fire if triggered" in tuesday.stdout
    assert "note: no trace given" in tuesday.stdout and "not observed" in tuesday.stdout
    saturday = rayon(*args, "--at", "2026-03-07T15:00:31")
    assert saturday.returncode == 0, saturday.stderr
    assert "fires" not in saturday.stdout and "✗" in saturday.stdout
    typo = rayon(
        "explain",
        "-c",
        str(store),
        "--customer",
        "c-tv-1",
        "--rule",
        "tv-aisle-dwel",
        "--at",
        "2026-03-03T15:00:31",
    )
    assert typo.returncode == 1 and "did you mean 'tv-aisle-dwell'" in typo.stderr
    nobody = rayon(
        "explain",
        "-c",
        str(store),
        "--customer",
        "c-nobody",
        "--rule",
        "tv-aisle-dwell",
        "--at",
        "2026-03-03T15:00:31",
    )
    assert nobody.returncode == 1 and "c-nobody" in nobody.stderr


def test_codes_import_counts_new_and_known_codes(store: Path, tmp_path: Path) -> None:
    codes = tmp_path / "codes.csv"
    codes.write_text("# winback codes\nWB-1,batch 7\nWB-2\n\nWB-1\n", encoding="utf-8")
    first = rayon("codes", "import", "winback20", str(codes), "-c", str(store))
    assert first.returncode == 0, first.stderr
    assert "2 new code(s) imported, 1 already there; 2 free" in first.stderr
    again = rayon("codes", "import", "winback20", str(codes), "-c", str(store))
    assert "0 new code(s) imported, 3 already there; 2 free" in again.stderr


def test_backtest_and_schema_commands(store: Path, tmp_path: Path) -> None:
    trace = tmp_path / "t.jsonl"
    sim = rayon(
        "simulate",
        "-c",
        str(store),
        "--shoppers",
        "4",
        "--minutes",
        "5",
        "-o",
        str(trace),
        "--customers",
        str(tmp_path / "c.jsonl"),
    )
    assert sim.returncode == 0, sim.stderr
    result = rayon(
        "backtest",
        str(trace),
        "-c",
        str(store),
        "--customers",
        str(tmp_path / "c.jsonl"),
        "--format",
        "json",
    )
    assert result.returncode == 0, result.stderr
    assert {r["rule"] for r in json.loads(result.stdout)["rules"]} >= {"tv-aisle-dwell"}
    out = tmp_path / "vscode"
    schema = rayon("schema", "rules", "-c", str(store), "-o", str(out))
    assert schema.returncode == 0, schema.stderr
    written = json.loads((out / "rayon-rule.schema.json").read_text(encoding="utf-8"))
    assert "aisle-tv" in json.dumps(written)


def test_firmware_render_then_check_catches_a_node_that_disagrees(store: Path) -> None:
    rendered = rayon("firmware", "render", "-c", str(store))
    assert rendered.returncode == 0, rendered.stderr
    beacon = store.parent / "firmware" / "beacon-03.yaml"
    assert beacon.is_file() and (store.parent / "firmware" / "node-tv.yaml").is_file()
    assert rayon("check", "-c", str(store)).returncode == 0
    text = beacon.read_text(encoding="utf-8")
    beacon.write_text(text.replace('beacon_minor: "3"', 'beacon_minor: "33"'), encoding="utf-8")
    result = rayon("check", "-c", str(store))
    assert result.returncode == 1
    assert any(
        line.startswith(f"{beacon}:") and "minor" in line for line in result.stdout.splitlines()
    ), result.stdout


def test_explain_with_a_trace_explains_the_decision_it_made(store: Path, tmp_path: Path) -> None:
    import_tv_fan(store, tmp_path)
    config = load_config(store)
    start = parse_local_time("2026-03-03T15:00:00", config.store.timezone)
    write_walk(
        tmp_path / "walk.jsonl", walk_adverts(config, 1, tv_aisle_walk(config, start), start)
    )
    result = rayon(
        "explain",
        "-c",
        str(store),
        "--customer",
        "c-tv-1",
        "--rule",
        "tv-aisle-dwell",
        "--at",
        "2026-03-03T15:02:00",
        "--trace",
        str(tmp_path / "walk.jsonl"),
    )
    assert result.returncode == 0, result.stderr
    assert "fires" in result.stdout and "no decision" not in result.stderr
    before = rayon(
        "explain",
        "-c",
        str(store),
        "--customer",
        "c-tv-1",
        "--rule",
        "tv-aisle-dwell",
        "--at",
        "2026-03-03T14:59:00",
        "--trace",
        str(tmp_path / "walk.jsonl"),
    )
    assert before.returncode == 0, before.stderr
    assert "has no decision about c-tv-1 and tv-aisle-dwell" in before.stdout
    assert "not observed" in before.stdout and "fires" not in before.stdout
    assert before.stderr == ""


def _line_col(path: Path, needle: str, skip: int = 0) -> str:
    """`line:col` (1-based, as diagnostics print it) of the first `needle` in `path`, moved
    `skip` characters right."""
    for number, text in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if needle in text:
            return f"{number}:{text.index(needle) + 1 + skip}"
    raise AssertionError(f"{needle!r} not in {path}")


def _check(config: Path, capsys: pytest.CaptureFixture[str]) -> list[str]:
    from gateway.cli.main import main

    assert main(["check", "-c", str(config)]) == 1
    return [ln for ln in capsys.readouterr().out.splitlines() if ": error: " in ln]


def test_check_refuses_a_database_it_cannot_use(
    store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = store.read_text(encoding="utf-8").replace("sqlite:///rayon.db", "mysql://u:pw@db/rayon")
    store.write_text(text, encoding="utf-8")
    (error,) = _check(store, capsys)
    where = _line_col(store, "mysql://")
    assert error.startswith(f"{store}:{where}: error: 'mysql' databases are not supported")
    assert "sqlite:///" in error and "postgresql+psycopg://" in error
    assert error.endswith("(at database.url)")
    assert "pw" not in error  # the url may carry a password


def test_check_says_rules_dir_is_a_file_at_its_key(
    store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (store.parent / "rules.yaml").write_text("id: r\n", encoding="utf-8")
    text = store.read_text(encoding="utf-8").replace("rules_dir: rules", "rules_dir: rules.yaml")
    store.write_text(text, encoding="utf-8")
    (error,) = _check(store, capsys)
    assert error.startswith(f"{store}:{_line_col(store, 'rules.yaml')}: error: ")
    assert "is a file, not a folder" in error and "(at rules_dir)" in error


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("expires_in: 3h", "expires_in: 0s", "an offer must stay valid from 1s to 365d"),
        ("expires_in: 3h", "expires_in: 400d", "an offer must stay valid from 1s to 365d"),
        ("zone: aisle-tv", "zone: []", "names no zone"),
    ],
)
def test_check_refuses_an_expiry_mqtt_cannot_carry_and_a_trigger_without_zone(
    store: Path, capsys: pytest.CaptureFixture[str], old: str, new: str, expected: str
) -> None:
    rule = store.parent / "rules" / "tv-aisle-dwell.yaml"
    text = rule.read_text(encoding="utf-8")
    assert old in text
    rule.write_text(text.replace(old, new, 1), encoding="utf-8")
    errors = _check(store, capsys)
    where = _line_col(rule, new, skip=new.index(": ") + 2)  # the value
    assert any(e.startswith(f"{rule}:{where}: error: {expected}") for e in errors), errors
