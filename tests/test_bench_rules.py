"""`rayon bench rules` runs on tiny sizes and prints its table (no timing is asserted)."""

from __future__ import annotations

import io
from pathlib import Path

from gateway.config.load import load_config
from gateway.rules.model import TriggerKind
from rayon_tooling.benchmarks.rules import CORE, bench_rules, filler, generate, measure
from tests.stores import ROOT, rayon

CONFIG = ROOT / "config.example.yaml"


def test_prints_a_row_per_size_and_the_ratio() -> None:
    out = io.StringIO()
    assert bench_rules(load_config(CONFIG), (3, 25), repeats=2, out=out) == 0
    lines = out.getvalue().splitlines()
    assert lines[0] == "rule engine, per event (median of 2 repetitions)"
    assert lines[1].split() == ["rules", "µs/event", "min", "max", "ratio"]
    assert [line.split()[0] for line in lines[2:4]] == ["3", "25"]
    assert lines[2].endswith("1.00×")
    assert lines[4].startswith("25 : 3 = ") and "(target ≤ 1.5×: " in lines[4]


def test_measures_every_size_with_positive_costs() -> None:
    rows = measure(load_config(CONFIG), (2, 12), repeats=1, shoppers=3)
    assert [r.rules for r in rows] == [2, 12]
    assert all(0 < r.min_us <= r.median_us <= r.max_us for r in rows)


def test_generated_rules_load_and_fillers_avoid_the_measured_zones(tmp_path: Path) -> None:
    config = load_config(CONFIG)
    rules = generate(config, 40, tmp_path / "rules")
    assert len(rules.rules) == 40
    fillers = rules.rules[len(CORE) :]
    assert fillers and all(
        r.trigger.kind in (TriggerKind.ENTER, TriggerKind.EXIT, TriggerKind.DWELL) for r in fillers
    )
    assert not {z for r in fillers for z in r.trigger.zones} & {"aisle-tv", "checkout", "store"}
    assert len(filler(config, 30)) == 30


def test_the_command_rejects_bad_sizes() -> None:
    result = rayon("bench", "rules", "-c", "config.example.yaml", "--sizes", "10,zero")
    assert result.returncode == 2
    assert "sizes are integers" in result.stderr


def test_the_command_prints_the_table() -> None:
    result = rayon(
        "bench", "rules", "-c", "config.example.yaml", "--sizes", "3,20", "--repeats", "2"
    )
    assert result.returncode == 0, result.stderr
    assert "ratio" in result.stdout
