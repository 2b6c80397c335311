"""`rayon backtest`: the rules over a trace, counted per rule, nothing published or stored."""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
import shutil
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from gateway.clock import parse_local_time
from gateway.config.load import load_config
from gateway.config.model import Config
from gateway.identity.customers import customer_to_obj, read_customers
from gateway.identity.model import Consent, Customer, CustomerRegistry
from gateway.offline.backtest.core import backtest
from gateway.offline.backtest.report import CSV_COLUMNS, as_json
from gateway.offline.backtest.result import HOURS, BacktestResult, Cause, classify
from gateway.offline.backtest.run import run_backtest
from gateway.offline.replay import replay
from gateway.pipeline import Output, Pipeline
from gateway.rules.gates import in_holdout
from gateway.rules.load import load_rules
from gateway.sim.customers import demo_customers
from gateway.sim.simulator import StoreSimulator
from gateway.sources.trace import read_trace, write_trace
from gateway.store.repo import Store
from tests.broker import Subscriber
from tests.stores import ROOT, reference_store
from tests.walks import STORE_UUID, tv_aisle_walk, walk_adverts

TUESDAY = "2026-03-03T15:00:00"
RULE_FIELDS = {
    "rule",
    "name",
    "purpose",
    "offers",
    "customers",
    "holdout",
    "caps",
    "policy",
    "no_consent",
    "not_met",
    "top_reasons",
    "by_hour",
}


@pytest.fixture(scope="module")
def store_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The reference store, a simulated 12-minute trace of 14 shoppers, and their customers."""
    folder = tmp_path_factory.mktemp("backtest")
    config = load_config(reference_store(folder))
    sim = StoreSimulator(config, 14, 12.0, 3, parse_local_time(TUESDAY, config.store.timezone))
    with (folder / "trace.jsonl").open("w", encoding="utf-8") as fh:
        write_trace(sim.adverts(), fh)
    people = demo_customers(sim.devices(), 3)
    people[0] = dataclasses.replace(people[0], consent=Consent(True, marketing_push=False))
    lines = [json.dumps(customer_to_obj(c)) for c in people]
    (folder / "customers.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def report(store_dir: Path) -> dict[str, Any]:
    """The JSON report of the simulated trace (computed once for the module)."""
    return _json(store_dir)


def _config(folder: Path) -> Config:
    return load_config(folder / "config.yaml")


def _run(folder: Path, fmt: str = "json", **kw: Any) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = run_backtest(
        _config(folder), folder / "trace.jsonl", kw.pop("rules", None), out, fmt, err=err, **kw
    )
    return code, out.getvalue(), err.getvalue()


def _json(folder: Path, **kw: Any) -> dict[str, Any]:
    code, out, err = _run(folder, customers_file=folder / "customers.jsonl", **kw)
    assert code == 0, err
    report: dict[str, Any] = json.loads(out)
    return report


def _rules(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["rule"]: r for r in report["rules"]}


def _replayed_offers(folder: Path) -> list[Any]:
    """What `rayon replay --dry-run --offers-out` writes: the sent (non-holdout) offers."""
    config = _config(folder)
    customers, errors = read_customers(folder / "customers.jsonl")
    assert not errors
    pipeline = Pipeline(config, load_rules(config.rules_dir, config), CustomerRegistry(customers))
    outs: list[Output] = []
    replay(pipeline, read_trace(folder / "trace.jsonl"), outs.append)
    return [o for out in outs for o in out.offers]


def test_counts_per_rule_agree_with_a_dry_run_replay(
    store_dir: Path, report: dict[str, Any]
) -> None:
    offers = _replayed_offers(store_dir)
    sent = [o for o in offers if not o.holdout]
    assert sent, "the simulated trace should make some offers"
    rules = _rules(report)
    assert {r: v["offers"] for r, v in rules.items() if v["offers"]} == Counter(
        o.rule for o in sent
    )
    for rule, found in rules.items():
        assert found["customers"] == len({o.customer for o in sent if o.rule == rule})
        assert found["holdout"] == sum(o.holdout and o.rule == rule for o in offers)
    assert report["totals"]["offers"] == len(sent)
    assert report["totals"]["customers"] == len({o.customer for o in sent})


def test_every_rule_is_listed_and_by_hour_sums_to_the_offers(
    store_dir: Path, report: dict[str, Any]
) -> None:
    config = _config(store_dir)
    assert {r["rule"] for r in report["rules"]} == {
        r.id for r in load_rules(config.rules_dir, config).rules
    }
    for rule in report["rules"]:
        assert len(rule["by_hour"]) == HOURS
        assert sum(rule["by_hour"]) == rule["offers"]
    totals = report["totals"]
    assert sum(totals["by_hour"]) == totals["offers"]
    assert totals["by_hour"][15] == totals["offers"]  # 15:00–15:12, store time


def test_json_has_the_documented_fields(report: dict[str, Any]) -> None:
    assert report["v"] == 1
    assert {"trace", "rules_dir", "timezone", "first_at", "last_at", "inputs"} <= set(report)
    assert report["timezone"] == "Europe/Paris"
    assert report["first_at"].startswith("2026-03-03T15:00") and report["first_at"][-6:] == "+01:00"
    assert report["customers_known"] == 14 and report["bad_lines"] == 0
    assert set(report["totals"]) == RULE_FIELDS - {"rule", "name", "purpose", "top_reasons"}
    for rule in report["rules"]:
        assert set(rule) == RULE_FIELDS
        assert set(rule["caps"]) == {"per_customer", "cooldown", "total"}
        assert set(rule["policy"]) == {"pressure", "quiet_hours", "min_gap", "max_per_visit"}
        assert rule["purpose"] in ("commercial", "transactional")


def test_every_reason_of_the_engine_has_a_known_cause(report: dict[str, Any]) -> None:
    totals = report["totals"]
    assert totals["not_met"]["other"] == 0
    assert totals["no_consent"] > 0  # the first shopper refused push
    assert totals["not_met"]["conditions"] > 0


def test_csv_has_one_row_per_rule(store_dir: Path, report: dict[str, Any]) -> None:
    code, out, err = _run(store_dir, "csv", customers_file=store_dir / "customers.jsonl")
    assert code == 0, err
    rows = list(csv.DictReader(io.StringIO(out)))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert [r["rule"] for r in rows] == [r["rule"] for r in report["rules"]]
    for row, rule in zip(rows, report["rules"], strict=True):
        assert int(row["offers"]) == rule["offers"]
        assert int(row["no_consent"]) == rule["no_consent"]
        assert int(row["caps.per_customer"]) == rule["caps"]["per_customer"]
        assert sum(int(row[f"h{h:02d}"]) for h in range(HOURS)) == rule["offers"]


def test_table_shows_each_rule_and_the_hours(store_dir: Path, report: dict[str, Any]) -> None:
    code, out, err = _run(store_dir, "table", customers_file=store_dir / "customers.jsonl")
    assert code == 0, err
    lines = out.splitlines()
    for rule in report["rules"]:
        row = next(line for line in lines if line.startswith(rule["rule"] + " "))
        assert row.split()[1:4] == [str(rule[k]) for k in ("offers", "customers", "holdout")]
    total = next(line for line in lines if line.startswith("total "))
    assert total.split()[1] == str(report["totals"]["offers"])
    assert f"  15:00  {report['totals']['offers']:>6}  █" in out
    assert err == ""  # no progress bar: stderr is not a terminal


def test_table_says_why_each_rule_did_not_fire(store_dir: Path, report: dict[str, Any]) -> None:
    code, out, err = _run(store_dir, "table", customers_file=store_dir / "customers.jsonl")
    assert code == 0, err
    section = out.split("why each rule did not fire")[1].split("offers by hour")[0]
    rows = {line.split()[0]: line for line in section.splitlines()[1:] if line.strip()}
    assert set(rows) == {r["rule"] for r in report["rules"]}
    for rule in report["rules"]:
        if rule["top_reasons"]:
            top = rule["top_reasons"][0]
            assert f"{top['label']} {top['count']}" in rows[rule["rule"]]
        elif not rule["offers"] and not rule["holdout"]:
            assert "never triggered" in rows[rule["rule"]]
    assert "conditions not met" in section and "no push consent" in section
    assert any("never triggered" in row for row in rows.values())


def test_progress_bar_only_on_request(store_dir: Path) -> None:
    code, out, err = _run(store_dir, customers_file=store_dir / "customers.jsonl", progress=True)
    assert code == 0
    assert "100 %" in err and "backtest [" in err
    assert json.loads(out)["v"] == 1  # the JSON is untouched


# -- scripted walks -----------------------------------------------------------------------


def _tv_fan(folder: Path, config: Config, starts: list[str]) -> None:
    """The TV fan walks to the TV aisle at each of `starts` (local times)."""
    fan = Customer(
        id="c-tv-1",
        token="t-tv-1",
        devices=(f"ibeacon:{STORE_UUID}:1000:1",),
        consent=Consent(instore_location=True, marketing_push=True),
        interests=frozenset({"tv"}),
        visits=3,
    )
    (folder / "customers.jsonl").write_text(json.dumps(customer_to_obj(fan)) + "\n", "utf-8")
    adverts = []
    for when in starts:
        start = parse_local_time(when, config.store.timezone)
        adverts += walk_adverts(config, 1, tv_aisle_walk(config, start), start)
    with (folder / "trace.jsonl").open("w", encoding="utf-8") as fh:
        write_trace(sorted(adverts, key=lambda a: a.at), fh)


def test_a_walk_repeated_the_same_day_hits_the_cap(tmp_path: Path) -> None:
    config = load_config(reference_store(tmp_path))
    assert not in_holdout("c-tv-1", "tv-aisle-dwell", 0.10)  # so the first walk is sent
    _tv_fan(tmp_path, config, [TUESDAY, "2026-03-03T15:40:00"])
    tv = _rules(_json(tmp_path))["tv-aisle-dwell"]
    assert tv["offers"] == 1 and tv["customers"] == 1
    assert tv["caps"]["per_customer"] == 1
    assert tv["by_hour"][15] == 1


def test_a_draft_rule_with_full_holdout_only_records(tmp_path: Path) -> None:
    config = load_config(reference_store(tmp_path))
    _tv_fan(tmp_path, config, [TUESDAY])
    draft = tmp_path / "draft"
    shutil.copytree(ROOT / "rules", draft)
    tv_file = draft / "tv-aisle-dwell.yaml"
    tv_file.write_text(tv_file.read_text("utf-8").replace("holdout: 10%", "holdout: 100%"), "utf-8")
    report = _json(tmp_path, rules=draft)
    tv = _rules(report)["tv-aisle-dwell"]
    assert (tv["offers"], tv["holdout"], tv["customers"]) == (0, 1, 0)
    assert report["rules_dir"] == str(draft)
    assert _rules(_json(tmp_path))["tv-aisle-dwell"]["offers"] == 1  # the live rules send it


def test_rules_that_do_not_load_exit_1_with_located_errors(tmp_path: Path) -> None:
    config = load_config(reference_store(tmp_path))
    _tv_fan(tmp_path, config, [TUESDAY])
    draft = tmp_path / "draft"
    shutil.copytree(ROOT / "rules", draft)
    tv_file = draft / "tv-aisle-dwell.yaml"
    tv_file.write_text(tv_file.read_text("utf-8").replace("aisle-tv,", "aisle-tvs,"), "utf-8")
    code, out, err = _run(tmp_path, rules=draft, customers_file=tmp_path / "customers.jsonl")
    assert code == 1 and out == ""
    line = (
        tv_file.read_text("utf-8").splitlines().index("  dwell: {zone: aisle-tvs, at_least: 30s}")
    )
    assert f"tv-aisle-dwell.yaml:{line + 1}:17: error: unknown zone 'aisle-tvs'" in err
    assert "nothing was backtested" in err


def test_a_missing_trace_or_customers_file_says_what_to_do(tmp_path: Path) -> None:
    config_path = reference_store(tmp_path)
    code, _, err = _run(tmp_path, customers_file=tmp_path / "nope.jsonl")
    assert code == 1 and "nope.jsonl: no such customers file" in err
    (tmp_path / "customers.jsonl").write_text("{}\n", "utf-8")
    code, _, err = _run(tmp_path, customers_file=tmp_path / "customers.jsonl")
    assert code == 1 and "customers.jsonl:1: error: 'id'" in err
    _tv_fan(tmp_path, load_config(config_path), [TUESDAY])
    (tmp_path / "trace.jsonl").unlink()
    code, _, err = _run(tmp_path, customers_file=tmp_path / "customers.jsonl")
    assert code == 1 and "trace.jsonl: no such trace file" in err
    code, _, err = _run(tmp_path)
    assert code == 1 and "no database at" in err and "--customers" in err
    assert not (config_path.parent / "rayon.db").exists()  # not created by the attempt


def _digest(folder: Path) -> dict[str, str]:
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.iterdir())
        if p.name.startswith("rayon.db")
    }


def test_customers_from_the_database_which_stays_unchanged(
    tmp_path: Path, mosquitto: Any, subscriber: Callable[..., Subscriber]
) -> None:
    config = load_config(reference_store(tmp_path, port=mosquitto.port))
    _tv_fan(tmp_path, config, [TUESDAY])
    customers, _ = read_customers(tmp_path / "customers.jsonl")
    store = Store(config.database.url)
    store.upsert_customers(customers)
    store.close()
    before = _digest(tmp_path)
    watcher = subscriber("rayon/#")
    code, out, err = _run(tmp_path)
    assert code == 0, err
    assert json.loads(out)["totals"]["offers"] == 1  # the customer came from the database
    assert _digest(tmp_path) == before
    watcher.publish("rayon/probe", b"after the backtest")
    assert [m.topic for m in watcher.wait(1)] == ["rayon/probe"]  # nothing before it


# -- pure parts ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reason", "cause"),
    [
        ("no marketing_push consent", Cause.NO_CONSENT),
        ("limit reached: 1 per day per customer", Cause.CAP_PER_CUSTOMER),
        ("cooldown: last offer 60s ago, cooldown 7200s", Cause.CAP_COOLDOWN),
        ("campaign budget used: total 500", Cause.CAP_TOTAL),
        ("pressure: 2 commercial offers per day reached", Cause.POLICY_PRESSURE),
        ("quiet hours (21:00 → 08:00)", Cause.POLICY_QUIET_HOURS),
        ("min_gap: last commercial offer 10s ago (< 300s)", Cause.POLICY_MIN_GAP),
        ("max_offers_per_visit 3 reached", Cause.POLICY_MAX_PER_VISIT),
        ("failed: customer.interests has tv", Cause.CONDITIONS),
        ("no longer valid (valid until 2026-04-26)", Cause.VALIDITY),
        ("dwell 12s is below 30s", Cause.TRIGGER),
        ("outranked by rule 'welcome' (higher priority)", Cause.OUTRANKED),
        ("code pool 'tv15' is exhausted", Cause.CODE_POOL),
        ("something new", Cause.OTHER),
    ],
)
def test_classify(reason: str, cause: Cause) -> None:
    assert classify(reason) is cause


def test_an_empty_trace_reports_zeros(tmp_path: Path) -> None:
    config = load_config(reference_store(tmp_path))
    result = backtest(config, load_rules(config.rules_dir, config), [], [])
    assert isinstance(result, BacktestResult)
    assert result.offers == 0 and result.first_at is None
    report = as_json(result)
    assert report["first_at"] is None and sum(report["totals"]["by_hour"]) == 0
