"""`rayon bench` prints one table of every figure; the synthetic workload, the end-to-end
write path and the memory probe work on tiny sizes (no timing is asserted)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from gateway.cli.main import build_parser
from gateway.decode.privacy import PrivacyFilter
from gateway.store.repo import Store
from rayon_tooling.benchmarks import SuiteRow, memory
from rayon_tooling.benchmarks.suite import (
    HOOKS,
    hook_rows,
    render,
)
from rayon_tooling.benchmarks.workload import build, replay_into_store
from tests.stores import rayon


def test_the_workload_is_the_issue_s_store(tmp_path: Path) -> None:
    workload = build(tmp_path, rules=25, devices=12)
    config = workload.config
    assert len(config.anchors) == 10 and len(config.zones) == 200
    assert {"store", "aisle-tv", "checkout"} <= {z.id for z in config.zones}
    assert len(workload.rules.rules) == 25 and len(workload.customers) == 12
    adverts = workload.adverts(4.0, seed=3)
    assert adverts == workload.adverts(4.0, seed=3)
    assert [a.at for a in adverts] == sorted(a.at for a in adverts)
    assert {a.anchor for a in adverts} <= {a.id for a in config.anchors}
    privacy = PrivacyFilter(config.identity.proximity_uuids, ())
    heard = {privacy.identify(a) for a in adverts}
    assert heard == {(c.devices[0], -59) for c in workload.customers}


def test_end_to_end_writes_the_outbox_like_rayon_replay(tmp_path: Path) -> None:
    workload = build(tmp_path / "store", rules=10, devices=20)
    db = tmp_path / "e2e.db"
    rate = replay_into_store(workload, workload.adverts(8.0), db)
    assert rate > 0
    store = Store(f"sqlite:///{db}")
    try:
        offers = store.offer_log()
    finally:
        store.close()
    assert offers, "the generated rules fire on visit start: their offers are in the outbox"
    assert {r.offer.rule for r in offers} <= {r.id for r in workload.rules.rules}


def test_the_memory_probe_tracks_every_device(tmp_path: Path) -> None:
    row = memory.track(40, tmp_path)
    assert row.tracked == 40
    assert 0 < row.imports_mb <= row.baseline_mb <= row.rss_mb
    assert "MB/1000" in memory.render([row])


def test_a_missing_hook_says_how_to_measure_it() -> None:
    rows = hook_rows(False, (("no_such_bench", "offers/s", "rayon bench offers"),))
    assert rows == [
        SuiteRow(
            "offers/s", "not measured here", "see docs/performance.md", None, "rayon bench offers"
        )
    ]


def test_render_marks_met_missed_and_untargeted() -> None:
    text = render(
        [
            SuiteRow("a", "1", "≥ 1", True, "x"),
            SuiteRow("b", "0", "≥ 1", False, "y"),
            SuiteRow("c", "2 s", "—", None, "z"),
        ]
    )
    header, rule, *rows = text.splitlines()
    assert header.split() == ["figure", "value", "target", "met?", "command"]
    assert set(rule.replace(" ", "")) == {"-"}
    assert [r.split()[-2] for r in rows] == ["yes", "NO", "—"]


def test_rayon_bench_alone_runs_the_suite() -> None:
    args = build_parser().parse_args(["bench"])
    assert args.handler == "bench_all" and args.quick is False
    assert build_parser().parse_args(["bench", "rules"]).handler == "bench_rules"


def test_rayon_bench_all_quick_prints_every_figure_in_one_table() -> None:
    result = rayon("bench", "all", "--quick", "--runs", "1")
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert text.splitlines()[0].split() == ["figure", "value", "target", "met?", "command"]
    for figure in (
        "end to end, 30 devices, 30 rules",
        "start-up to ready",
        "rule reload: load_rules, 30 files",
        "rule reload: Pipeline.reload_rules",
        "rule cost per event, 20 : 3 rules",
        "resident memory, daemon-shaped process, 50 tracked devices",
    ):
        assert figure in text, figure
    assert "adverts/s" in text and "MB per 1,000 devices" in text
    for module, what, command in HOOKS:  # measured by its module, else said how to measure
        if importlib.util.find_spec(f"rayon_tooling.benchmarks.{module}") is None:
            assert what in text and command in text, module


def test_a_config_given_before_or_after_the_bench_action_reaches_it() -> None:
    parser = build_parser()
    for argv, config in (
        (["bench", "-c", "x.yaml", "rules"], "x.yaml"),
        (["bench", "rules", "-c", "y.yaml"], "y.yaml"),
        (["bench", "rules"], None),
    ):
        args = parser.parse_args(argv)
        assert (args.config, args.handler) == (config, "bench_rules"), argv
