"""The rules page's states: the shipped rules at chosen store-local times, and a refused set
with the loader's located errors."""

from __future__ import annotations

import dataclasses
import shutil
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from gateway.config.load import load_config
from gateway.config.model import Config
from gateway.console.rulestate import RuleStatus, rule_states
from gateway.rules.load import load_rules
from tests.stores import ROOT, reference_store

PARIS = ZoneInfo("Europe/Paris")


def at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=PARIS).timestamp()


@pytest.fixture(scope="module")
def config() -> Config:
    return load_config(ROOT / "config.example.yaml")


def states(config: Config, when: str) -> dict[str, tuple[str, str]]:
    view = rule_states(config, at(when))
    assert view.errors == ()
    return {r.id: (r.state, r.detail) for r in view.rules}


def test_every_shipped_rule_is_listed_with_its_file_and_purpose(config: Config) -> None:
    view = rule_states(config, at("2026-03-03T15:00"))
    shipped = load_rules(config.rules_dir, config)
    assert [r.id for r in view.rules] == [r.id for r in shipped.rules]
    tv = next(r for r in view.rules if r.id == "tv-aisle-dwell")
    assert tv.name == "TV -15 % — rayon TV, après-midi en semaine"
    assert (tv.purpose, Path(tv.file).name) == ("commercial", "tv-aisle-dwell.yaml")
    assert {r.purpose for r in view.rules} == {"commercial", "transactional"}


def test_a_weekday_afternoon_rule_is_active_in_its_window(config: Config) -> None:
    state, detail = states(config, "2026-03-03T15:00")["tv-aisle-dwell"]  # a Tuesday
    assert state == "active" and isinstance(state, RuleStatus)
    assert detail == "valid until 2026-12-31; between 14:00 and 19:00 on mon, tue, wed, thu, fri"


def test_outside_its_window_it_is_scheduled_with_its_next_opening(config: Config) -> None:
    state, detail = states(config, "2026-03-03T10:30")["tv-aisle-dwell"]
    assert state == "scheduled"
    assert detail.endswith("opens Tue 2026-03-03 14:00")
    state, detail = states(config, "2026-03-07T15:00")["tv-aisle-dwell"]  # a Saturday
    assert state == "scheduled" and detail.endswith("opens Mon 2026-03-09 14:00")


def test_before_and_after_the_campaign(config: Config) -> None:
    assert states(config, "2026-03-01T15:00")["tv-aisle-dwell"] == (
        "scheduled",
        "the campaign starts on 2026-03-02",
    )
    assert states(config, "2027-01-05T15:00")["tv-aisle-dwell"] == (
        "ended",
        "the campaign ended on 2026-12-31",
    )
    # its last day, after hours: no opening before the campaign ends
    state, detail = states(config, "2026-12-31T20:00")["tv-aisle-dwell"]
    assert state == "scheduled" and "does not open within a week" in detail


def test_a_rule_without_dates_or_windows_is_always_active(config: Config) -> None:
    for when in ("2020-01-01T03:00", "2026-03-03T15:00", "2031-07-14T23:59"):
        assert states(config, when)["checkout-loyalty"] == ("active", "no end date")


def test_a_time_window_follows_the_store_clock_across_dst(config: Config) -> None:
    # 29 March 2026, 02:00 → 03:00 in Paris: the Monday window still opens at 14:00 local
    state, detail = states(config, "2026-03-28T20:00")["tv-aisle-dwell"]
    assert state == "scheduled" and detail.endswith("opens Mon 2026-03-30 14:00")


def test_a_refused_set_has_no_rules_and_the_loaders_located_errors(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    shutil.copytree(ROOT / "rules", rules)
    tv = rules / "tv-aisle-dwell.yaml"
    tv.write_text(
        tv.read_text(encoding="utf-8").replace("zone: aisle-tv", "zone: aisle-tvv"),
        encoding="utf-8",
    )
    (rules / "broken.yaml").write_text("id: broken\nwhen: [unclosed\n", encoding="utf-8")
    config = load_config(reference_store(tmp_path, rules_dir="rules"))
    view = rule_states(config, at("2026-03-03T15:00"))
    assert view.rules == ()
    assert len(view.errors) >= 2
    assert any(e.startswith(f"{rules / 'broken.yaml'}:2:") for e in view.errors)
    tv_error = next(e for e in view.errors if "tv-aisle-dwell.yaml:" in e)
    file_, line, col, rest = tv_error.split(":", 3)
    assert file_.endswith("tv-aisle-dwell.yaml") and (int(line), int(col)) == (
        6,
        17,
    )  # `  dwell: {zone: aisle-tvv`
    assert rest.startswith(" error: ") and "aisle-tvv" in rest and "aisle-tv" in rest


def test_a_missing_rules_directory_is_an_error(config: Config, tmp_path: Path) -> None:
    view = rule_states(dataclasses.replace(config, rules_dir=tmp_path / "nope"), 0.0)
    assert view.rules == () and len(view.errors) == 1
    assert "nope:1:1: error: the rules directory does not exist" in view.errors[0]
