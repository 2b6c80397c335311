"""The soak on a reduced scale (3 simulated hours, 200 devices): device state is evicted, no
offer is lost, caps hold — and the checks themselves catch a lost offer or a broken cap.
Structural assertions only: no timing, no resident-memory figure."""

from __future__ import annotations

import json
import shutil
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from gateway.cli.main import main
from gateway.config.load import load_config
from gateway.config.model import Config
from gateway.events import EventKind, MqttInput
from gateway.identity.model import CustomerRegistry
from gateway.pipeline import GEOFENCE_IDLE_S, PRUNE_EVERY_S, Pipeline
from gateway.rules.load import load_rules
from rayon_tooling.benchmarks.soak import SoakResult, run_soak, soak_customers
from rayon_tooling.benchmarks.soakcheck import check_caps, check_lost

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def config() -> Config:
    return load_config(ROOT / "config.example.yaml")


@pytest.fixture(scope="module")
def soaked(config: Config, tmp_path_factory: pytest.TempPathFactory) -> tuple[SoakResult, Path]:
    db = tmp_path_factory.mktemp("soak") / "soak.db"
    return run_soak(config, 3.0, 200, 7, db), db


def test_devices_are_tracked_while_open_and_evicted_after(soaked: tuple[SoakResult, Path]) -> None:
    result, _ = soaked
    busiest = max(result.samples, key=lambda s: s.sizes["zone_devices"])
    assert busiest.sizes["locator_devices"] > 10 and busiest.sizes["rule_visits"] > 10
    assert result.final_sizes == {
        "locator_devices": 0,
        "zone_devices": 0,
        "open_visits": 0,
        "geofence_devices": 0,
        "rule_visits": 0,
    }
    verdicts = {v.name: v for v in result.verdicts}
    assert verdicts["devices evicted after closing"].ok


def test_every_decided_offer_is_in_the_outbox(soaked: tuple[SoakResult, Path]) -> None:
    result, db = soaked
    assert result.offers > 50
    with closing(sqlite3.connect(db)) as conn:
        states = dict(conn.execute("SELECT state, COUNT(*) FROM offers GROUP BY state").fetchall())
    assert sum(states.values()) == result.offers
    assert "dropped" not in states and states.get("pending", 0) == 0  # drained hourly
    assert {v.name: v.ok for v in result.verdicts}["no offer lost"]


def test_caps_hold_and_bind(soaked: tuple[SoakResult, Path]) -> None:
    result, _ = soaked
    caps = next(v for v in result.verdicts if v.name == "caps hold")
    assert caps.ok, caps.detail
    assert "0 violation(s)" in caps.detail and "reached 0 time" not in caps.detail


def test_every_visit_row_is_closed(soaked: tuple[SoakResult, Path]) -> None:
    _, db = soaked
    with closing(sqlite3.connect(db)) as conn:
        total, open_ = conn.execute("SELECT COUNT(*), SUM(ended_at IS NULL) FROM visits").fetchone()
    assert total >= 200 and open_ == 0


def test_the_checks_catch_a_lost_offer_and_a_broken_cap(
    soaked: tuple[SoakResult, Path], config: Config, tmp_path: Path
) -> None:
    """The verdicts are not vacuous: an offer not in the table is lost; a commercial offer
    repeated a minute later breaks min_gap."""
    _, db = soaked
    assert not check_lost(db, ["never-written"]).ok
    copy = tmp_path / "tampered.db"
    shutil.copy(db, copy)
    with closing(sqlite3.connect(copy)) as conn, conn:  # closed, and committed
        names = [row[1] for row in conn.execute("PRAGMA table_info(offers)")]
        values = [
            "'forged'" if n == "id" else "created_at + 60" if n == "created_at" else n
            for n in names
        ]
        conn.execute(
            f"INSERT INTO offers ({', '.join(names)}) SELECT {', '.join(values)} FROM offers "
            "WHERE purpose = 'commercial' ORDER BY created_at LIMIT 1"
        )
    broken = check_caps(copy, load_rules(config.rules_dir, config), config.store.timezone)
    assert not broken.ok and "min_gap" in broken.detail


def test_a_silent_phone_leaves_the_geofences(config: Config) -> None:
    customer = soak_customers(config, 1, 1)[0]
    rules = load_rules(config.rules_dir, config)
    p = Pipeline(config, rules, CustomerRegistry([customer]))
    topic = f"rayon/paris-11/phones/{customer.token}/location"
    at = 1_772_550_000.0
    near = {"_type": "location", "lat": 48.8592, "lon": 2.3795, "acc": 20, "tst": int(at)}
    entered = p.feed(MqttInput(at, topic, json.dumps(near).encode()))
    assert [e.kind for e in entered.events] == [EventKind.ENTER]
    p.tick(at + GEOFENCE_IDLE_S / 2)
    assert p.state_sizes()["geofence_devices"] == 1
    p.tick(at + GEOFENCE_IDLE_S + PRUNE_EVERY_S + 1)
    assert p.state_sizes()["geofence_devices"] == 0
    assert p.counters["geofence_devices_evicted"] == 1


def test_rayon_bench_soak_prints_its_table(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "cli.db"
    code = main(
        [
            "bench",
            "soak",
            "-c",
            str(ROOT / "config.example.yaml"),
            "--hours",
            "1",
            "--devices",
            "20",
            "--db",
            str(db),
        ]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert "hour  RSS MB" in out and "ok   no offer lost" in out and db.exists()
    bad = ["bench", "soak", "-c", str(ROOT / "config.example.yaml"), "--hours", "0"]
    assert main(bad) == 2
