"""`rayon backtest --recorded`: the rules over the gateway's own recording, with the caps
and customers as they were at --since, the draft set beside the live one; nothing published,
nothing written."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from pathlib import Path
from typing import Any

import pytest

from gateway.cli.main import main
from gateway.clock import parse_local_time
from gateway.config.load import load_config
from gateway.config.model import Config
from gateway.identity.model import Consent, Customer, CustomerRegistry
from gateway.offline.backtest.compare import COMPARE_COLUMNS
from gateway.offline.backtest.recorded import Stretch, run_recorded
from gateway.offline.replay import replay
from gateway.pipeline import Output, Pipeline
from gateway.rules.load import load_rules
from gateway.store.asof import customers_at
from gateway.store.persist import persist
from gateway.store.recording import Recorder
from gateway.store.repo import Store, Visit
from tests.stores import reference_store
from tests.walks import STORE_UUID, tv_aisle_walk, walk_adverts

DAY = "2026-03-03"
TV_RULE = """id: tv
name: "TV"
purpose: commercial
when:
  dwell: {{zone: aisle-tv, at_least: 30s}}
if:
  - customer.interests: {{has: tv}}
then:
  offer: {{title: "-15 % TV", body: "Au {{zone_name}}", code: TV15, expires_in: 3h}}
limits:
  per_customer: {{max: {per_day}, per: day}}
"""
NEW_RULE = """id: checkout-new
name: "Nouveau"
purpose: commercial
when:
  enter: {zone: checkout}
then:
  offer: {title: "Merci", body: "A bientôt", expires_in: 1h}
"""
FAN = Customer(
    id="c-tv-1",
    token="t-tv-1",
    devices=(f"ibeacon:{STORE_UUID}:1000:1",),
    consent=Consent(instore_location=True, marketing_push=True),
    interests=frozenset({"tv"}),
    visits=3,
)


def _at(config: Config, hhmm: str) -> float:
    return parse_local_time(f"{DAY}T{hhmm}:00", config.store.timezone)


def _walk(config: Config, hhmm: str) -> list[Any]:
    start = _at(config, hhmm)
    return walk_adverts(config, 1, tv_aisle_walk(config, start), start)


@pytest.fixture
def recorded(tmp_path: Path) -> Config:
    return make_recorded(tmp_path)


def make_recorded(tmp_path: Path, database_url: str | None = None) -> Config:
    """The TV fan got the live rule's offer at 14:00 (stored), then walked to the TV aisle
    again at 15:00 (recorded); the draft allows two a day and adds a checkout rule."""
    for folder, per_day, extra in (("live", 1, False), ("draft", 2, True)):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "tv.yaml").write_text(TV_RULE.format(per_day=per_day), "utf-8")
        if extra:
            (tmp_path / folder / "checkout-new.yaml").write_text(NEW_RULE, "utf-8")
    db: dict[str, Any] = {"database": {"url": database_url}} if database_url else {}
    config = load_config(reference_store(tmp_path, rules_dir="live", **db))
    store = Store(config.database.url)
    store.upsert_customers([FAN])
    pipeline = Pipeline(config, load_rules(config.rules_dir, config), CustomerRegistry([FAN]))
    earlier = Output()
    replay(pipeline, _walk(config, "14:00"), earlier.extend)
    assert [o.rule for o in earlier.offers] == ["tv"]
    persist(store, earlier)
    store.close()
    live = Pipeline(config, load_rules(config.rules_dir, config), CustomerRegistry([FAN]))
    recorder = Recorder(config.record_dir, config.record)
    live.keep = recorder.keep
    replay(live, _walk(config, "15:00"), lambda _: None)
    recorder.flush(recorder.take())
    return config


def _compare(config: Config, since: str, fmt: str = "json") -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    stretch = Stretch(_at(config, since), None)
    code = run_recorded(config, stretch, config.path.parent / "draft", out, fmt, err)
    return code, out.getvalue(), err.getvalue()


def _digest(folder: Path) -> str:
    files = sorted(p for p in folder.rglob("*") if p.is_file() and "draft" not in p.parts)
    return hashlib.sha256(b"".join(p.read_bytes() for p in files)).hexdigest()


def test_the_caps_are_as_at_since_and_the_draft_sits_beside_the_live_set(
    recorded: Config,
) -> None:
    before = _digest(recorded.path.parent)
    code, out, err = _compare(recorded, "14:30")
    assert code == 0, err
    report = json.loads(out)
    tv = next(r for r in report["rules"] if r["rule"] == "tv")
    assert tv["live"]["offers"] == 0 and "per-customer limit 1" in tv["live"]["top_reasons"]
    assert tv["draft"]["offers"] == 1 and tv["delta_offers"] == 1
    assert tv["draft"]["by_hour"][15] == 1
    new = next(r for r in report["rules"] if r["rule"] == "checkout-new")
    assert new["live"] is None and new["draft"]["offers"] == 0
    assert "never triggered" in new["draft"]["top_reasons"]
    assert report["offers_before_since"] == 1
    assert report["live"]["v"] == 1 and report["draft"]["rules_dir"].endswith("draft")
    assert _digest(recorded.path.parent) == before  # nothing written


def test_the_caps_as_at_since_on_postgresql(tmp_path: Path, postgres_url: str) -> None:
    config = make_recorded(tmp_path, postgres_url)
    for since, live, before in (("14:30", 0, 1), ("13:00", 1, 0)):
        code, out, err = _compare(config, since)
        assert code == 0, err
        report = json.loads(out)
        tv = next(r for r in report["rules"] if r["rule"] == "tv")
        assert (tv["live"]["offers"], report["offers_before_since"]) == (live, before)


def test_since_before_the_stored_offer_leaves_it_out_of_the_caps(recorded: Config) -> None:
    code, out, err = _compare(recorded, "13:00")
    assert code == 0, err
    tv = next(r for r in json.loads(out)["rules"] if r["rule"] == "tv")
    assert tv["live"]["offers"] == 1 and json.loads(out)["offers_before_since"] == 0


def test_without_since_the_caps_are_those_before_the_first_recorded_line(
    recorded: Config,
) -> None:
    out, err = io.StringIO(), io.StringIO()
    assert run_recorded(recorded, Stretch(), recorded.path.parent / "draft", out, "json", err) == 0
    report = json.loads(out.getvalue())
    assert report["offers_before_since"] == 1  # the 14:00 offer, not the ones of the stretch
    assert report["since"].startswith("2026-03-03T15:00")


def test_table_and_csv_show_both_sets(recorded: Config) -> None:
    code, out, _ = _compare(recorded, "14:30", "table")
    assert code == 0
    tv_row = next(line for line in out.splitlines() if line.startswith("tv "))
    assert tv_row.split() == ["tv", "0", "1", "+1", "0", "1"]
    assert "checkout-new (new)" in out and "tv            live:  per-customer limit 1" in out
    assert "nothing was published and nothing was written" in out
    code, out, _ = _compare(recorded, "14:30", "csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert tuple(rows[0]) == COMPARE_COLUMNS
    tv = next(r for r in rows if r["rule"] == "tv")
    assert (tv["live_offers"], tv["draft_offers"], tv["delta_offers"]) == ("0", "1", "1")


def test_the_command_line(recorded: Config, capsys: pytest.CaptureFixture[str]) -> None:
    c = str(recorded.path)
    draft = str(recorded.path.parent / "draft")
    since = f"{DAY}T14:30"
    assert main(["backtest", "-c", c, "--recorded", "--since", since, "--rules", draft]) == 0
    assert "tv " in capsys.readouterr().out
    assert main(["backtest", "-c", c, "--recorded", "trace.jsonl"]) == 2
    assert "not both" in capsys.readouterr().err
    assert main(["backtest", "-c", c, "--since", since, "t.jsonl"]) == 2
    assert "add --recorded" in capsys.readouterr().err
    assert main(["backtest", "-c", c, "--recorded", "--since", since, "--until", since]) == 1
    assert "is not before --until" in capsys.readouterr().err
    assert main(["backtest", "-c", c, "--recorded", "--since", "yesterday"]) == 1
    assert "yesterday" in capsys.readouterr().err


def test_nothing_recorded_says_where_and_what_to_do(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = load_config(reference_store(tmp_path))
    assert main(["backtest", "-c", str(config.path), "--recorded"]) == 1
    err = capsys.readouterr().err
    assert f"nothing recorded in {tmp_path / 'recording'}" in err and "rayon run" in err


def test_customers_are_taken_back_to_since() -> None:
    since = 1_000_000.0
    fan = Customer("c1", "t1", visits=5, last_visit=since + 50)
    visits = [
        Visit("d", "c1", since - 900, since - 600),
        Visit("d", "c1", since + 10, since + 50),
        Visit("d", "c2", since + 10, None),
    ]
    (then,) = customers_at([fan], visits, since)
    assert (then.visits, then.last_visit) == (4, since - 600)
