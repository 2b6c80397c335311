"""The console's KPIs: `rayon report`'s figures read through the read-only History, on a
simulated morning replayed into a real SQLite database (tests/report_day.py), and the CSV."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import Any

import pytest

from gateway.config.load import load_config
from gateway.config.model import Config
from gateway.console.history import History
from gateway.console.kpis import TABLES, kpis, kpis_csv
from gateway.errors import InvalidInput
from tests.report_day import SINCE, UNTIL, Day, epoch, simulated_day

PARIS = "+01:00"


@pytest.fixture(scope="module")
def day(tmp_path_factory: pytest.TempPathFactory, mosquitto_module: Any) -> Day:
    return simulated_day(tmp_path_factory.mktemp("console-kpis"), mosquitto_module.port)


@pytest.fixture(scope="module")
def config(day: Day) -> Config:
    return load_config(day.config)


@pytest.fixture(scope="module")
def report(day: Day) -> dict[str, Any]:
    """`rayon report --format json` over the same period, through the Store."""
    return day.report_json()


@pytest.fixture(scope="module")
def history(config: Config) -> Iterator[History]:
    h = History(config.database.url)
    yield h
    h.close()


@pytest.fixture(scope="module")
def figures(config: Config, history: History) -> dict[str, Any]:
    return kpis(config, history, epoch(SINCE + PARIS), epoch(UNTIL + PARIS))


def test_the_period_and_footfall_are_the_reports(
    figures: dict[str, Any], report: dict[str, Any]
) -> None:
    assert (figures["since"], figures["until"]) == (
        "2026-03-03T09:00:00+01:00",
        "2026-03-03T12:00:00+01:00",
    )
    assert figures["footfall_hour"] == report["footfall"]
    assert figures["visits"] == report["visits"] and figures["visits"]["count"] > 10
    assert figures["footfall_day"] == [{"day": "2026-03-03", "visits": report["visits"]["count"]}]


def test_a_period_over_two_days_has_a_row_per_local_day(
    config: Config, history: History, figures: dict[str, Any]
) -> None:
    wide = kpis(config, history, epoch("2026-03-02T00:00+01:00"), epoch("2026-03-04T00:00+01:00"))
    days = wide["footfall_day"]
    assert [d["day"] for d in days] == ["2026-03-02", "2026-03-03"]
    assert days[0]["visits"] == 0 and days[1]["visits"] == figures["visits"]["count"]
    assert len(wide["footfall_hour"]) == 48


def test_dwell_per_zone_joins_reach_and_stays(
    figures: dict[str, Any], report: dict[str, Any]
) -> None:
    reach = {z["zone"]: z for z in report["zones"]}
    assert [d["zone"] for d in figures["dwell"]] == [d["zone"] for d in report["dwell"]]
    for row, stays in zip(figures["dwell"], report["dwell"], strict=True):
        assert row["visits"] == reach[row["zone"]]["visits"]
        assert (row["entries"], row["median_s"]) == (stays["entries"], stays["median_s"])
        if stays["entries"]:
            assert row["mean_s"] == pytest.approx(stays["total_s"] / stays["entries"], abs=1e-3)
        else:
            assert row["mean_s"] is None
    tv = next(d for d in figures["dwell"] if d["zone"] == "aisle-tv")
    assert tv["visits"] > 0 and tv["entries"] > 0 and tv["median_s"] > 0


def test_rules_have_the_reports_funnel_and_uplift(
    figures: dict[str, Any], report: dict[str, Any]
) -> None:
    offers = {o["rule"]: o for o in report["offers"]}
    conversion = {c["rule"]: c for c in report["conversion"]}
    assert [r["rule"] for r in figures["rules"]] == sorted(offers)
    for row in figures["rules"]:
        o, c = offers[row["rule"]], conversion[row["rule"]]
        assert (row["offers"], row["holdout"]) == (o["decided"], o["holdout"])
        assert (row["sent"], row["opened"], row["redeemed"]) == (
            o["sent"],
            o["opened"],
            o["redeemed"],
        )
        assert (row["treated"], row["conversion"]) == (c["treated"]["n"], c["treated"]["rate"])
        assert (row["control"], row["control_conversion"]) == (
            c["control"]["n"],
            c["control"]["rate"],
        )
        assert (row["uplift"], row["ci_low"], row["ci_high"]) == (
            c["uplift"],
            c["ci_low"],
            c["ci_high"],
        )
    assert any(r["holdout"] and r["uplift"] is not None for r in figures["rules"])


def test_code_pools(figures: dict[str, Any]) -> None:
    assert figures["codes"] == [
        {"pool": "tv15", "total": 10, "assigned": 3, "assigned_in_period": 2, "remaining": 7}
    ]


def test_each_table_downloads_as_csv_with_its_header(figures: dict[str, Any]) -> None:
    for table, columns in TABLES.items():
        rows = list(csv.reader(io.StringIO(kpis_csv(figures, table))))
        assert tuple(rows[0]) == columns
        assert len(rows) == 1 + len(figures[table])
    rules = list(csv.DictReader(io.StringIO(kpis_csv(figures, "rules"))))
    first = figures["rules"][0]
    assert rules[0]["rule"] == first["rule"] and rules[0]["offers"] == str(first["offers"])
    na = [r for r in figures["rules"] if r["uplift"] is None]
    for row in rules:
        if row["rule"] in {r["rule"] for r in na}:
            assert row["uplift"] == ""  # n/a is an empty cell


def test_an_unknown_table_lists_the_valid_ones(figures: dict[str, Any]) -> None:
    with pytest.raises(InvalidInput, match="footfall_day, footfall_hour, dwell, rules, codes"):
        kpis_csv(figures, "offers")


def test_a_reversed_period_is_refused(config: Config, history: History) -> None:
    with pytest.raises(InvalidInput, match="not before its end"):
        kpis(config, history, epoch(UNTIL + PARIS), epoch(SINCE + PARIS))


def test_a_csv_cell_a_spreadsheet_would_run_as_a_formula_is_quoted() -> None:
    names = ['=HYPERLINK("http://evil.example")', "+1+cmd|' /C calc'!A0", "-2+3", "@SUM(A1)"]
    report = {"dwell": [{"zone": f"z{i}", "name": n, "share": -0.25} for i, n in enumerate(names)]}
    rows = list(csv.DictReader(io.StringIO(kpis_csv(report, "dwell"))))
    assert [r["name"] for r in rows] == ["'" + n for n in names]
    assert {r["share"] for r in rows} == {"-0.25"}  # numbers stay numbers
