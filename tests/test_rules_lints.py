"""`rayon check`'s lints: rules that load but can never fire, and zones no anchor reaches.

Each is a located warning; `rayon check --strict` makes them errors, and the closing line
counts rules, tests passed and warnings.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from gateway.cli.main import main
from gateway.config.load import parse_config
from gateway.errors import Severity
from gateway.locate.reach import lint_reach, modelled_rssi, unreached_zones
from gateway.rules.lints import lint_rules
from gateway.rules.load import load_rules
from tests.stores import reference_store
from tests.test_rules_support import ROOT, store_config

TODAY = date(2026, 12, 5)
RULE = """\
id: r
name: R
purpose: PURPOSE
when:
  enter: {zone: aisle-tv}
then:
  offer: {title: T}
limits:
  cooldown: 1h
"""
QUIET = 'quiet_hours: {between: ["21:00", "08:00"]}\n'


@pytest.fixture(autouse=True)
def in_store_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


def lints(
    tmp_path: Path, more: str = "", purpose: str = "commercial", base: str = RULE, policy: str = ""
) -> list[str]:
    rules_dir = tmp_path / "rules"
    rules_dir.mkdir(exist_ok=True)
    (rules_dir / "r.yaml").write_text(base.replace("PURPOSE", purpose) + more, encoding="utf-8")
    if policy:
        (rules_dir / "policy.yaml").write_text(policy, encoding="utf-8")
    found = lint_rules(load_rules(rules_dir, store_config(rules_dir)), TODAY)
    assert all(d.severity is Severity.WARNING for d in found)
    return [str(d) for d in found]


def test_a_rule_without_problems_has_no_lint(tmp_path: Path) -> None:
    assert lints(tmp_path, "valid: {from: 2026-11-01, until: 2026-12-31}\n") == []


def test_an_ended_campaign(tmp_path: Path) -> None:
    assert lints(tmp_path, "valid: {from: 2026-03-02, until: 2026-04-26}\n") == [
        "rules/r.yaml:10:34: warning: the campaign ended on 2026-04-26 (today is 2026-12-05): "
        "rule 'r' never fires again; move valid.until or remove the rule (at valid.until)"
    ]


def test_a_campaign_not_started_yet(tmp_path: Path) -> None:
    assert lints(tmp_path, "valid: {from: 2027-01-04}\n") == [
        "rules/r.yaml:10:15: warning: the campaign starts on 2027-01-04 (today is 2026-12-05): "
        "rule 'r' does not fire before then (at valid.from)"
    ]


def test_time_windows_that_never_overlap(tmp_path: Path) -> None:
    windows = (
        'if:\n  - time: {between: ["09:00", "12:00"]}\n  - time: {between: ["14:00", "18:00"]}\n'
    )
    assert lints(tmp_path, windows) == [
        "rules/r.yaml:12:11: warning: the time windows 'between 09:00 and 12:00' and 'between "
        "14:00 and 18:00' never hold together: rule 'r' never fires (every condition of if: must "
        "hold; to accept either, put them under any:) (at if[1].time)"
    ]


def test_windows_on_different_days_never_overlap_either(tmp_path: Path) -> None:
    windows = (
        "if:\n  - customer.tier: {is: gold}\n  - time: {days: [sam]}\n  - time: {days: [mon]}\n"
    )
    (found,) = lints(tmp_path, windows)
    assert "never hold together" in found and found.endswith("(at if[2].time)")


def test_overlapping_windows_and_either_window_are_fine(tmp_path: Path) -> None:
    overlap = (
        'if:\n  - time: {between: ["09:00", "12:00"]}\n  - time: {between: ["11:00", "14:00"]}\n'
    )
    assert lints(tmp_path, overlap) == []
    either = (
        'if:\n  - any:\n      - time: {between: ["09:00", "12:00"]}\n'
        '      - time: {between: ["14:00", "18:00"]}\n'
    )
    assert lints(tmp_path, either) == []


def test_a_commercial_window_inside_the_quiet_hours(tmp_path: Path) -> None:
    late = 'if:\n  - time: {between: ["22:00", "23:30"]}\n'
    assert lints(tmp_path, late, policy=QUIET) == [
        "rules/r.yaml:11:11: warning: commercial rule 'r' can only fire between 22:00 and 23:30, "
        "inside the quiet hours (between 21:00 and 08:00): it never sends anything; change its "
        "time window (at if[0].time)"
    ]


def test_transactional_rules_and_partly_quiet_windows_are_exempt(tmp_path: Path) -> None:
    late = 'if:\n  - time: {between: ["22:00", "23:30"]}\n'
    assert lints(tmp_path, late, purpose="transactional", policy=QUIET) == []
    evening = 'if:\n  - time: {between: ["20:00", "22:00"]}\n'
    assert lints(tmp_path, evening, policy=QUIET) == []


def test_a_cap_the_cooldown_makes_unreachable(tmp_path: Path) -> None:
    base = RULE.replace("  cooldown: 1h\n", "  per_customer: {max: 5, per: day}\n  cooldown: 2d\n")
    assert lints(tmp_path, base=base) == [
        "rules/r.yaml:9:23: warning: at most 5 per day, but the 2d cooldown allows at most 1 per "
        "day: lower max to 1 or shorten the cooldown (at limits.per_customer.max)"
    ]


@pytest.mark.parametrize(
    ("cap", "cooldown"),
    [("2, per: day", "12h"), ("1, per: week", "8d"), ("9, per: lifetime", "1d"), ("3", "30d")],
)
def test_reachable_caps_are_fine(tmp_path: Path, cap: str, cooldown: str) -> None:
    limits = f"  per_customer: {{max: {cap}}}\n  cooldown: {cooldown}\n"
    assert lints(tmp_path, base=RULE.replace("  cooldown: 1h\n", limits)) == []


def test_an_offer_expiring_sooner_than_the_dwell(tmp_path: Path) -> None:
    base = RULE.replace("enter: {zone: aisle-tv}", "dwell: {zone: aisle-tv, at_least: 30m}")
    base = base.replace("offer: {title: T}", "offer: {title: T, expires_in: 10m}")
    assert lints(tmp_path, base=base) == [
        "rules/r.yaml:7:33: warning: the offer expires 10m after it is sent, sooner than the 30m "
        "the dwell trigger waits: make expires_in at least 30m (at then.offer.expires_in)"
    ]


def test_the_shipped_rules_have_no_lint_today() -> None:
    config = parse_config(ROOT / "config.example.yaml")
    assert lint_rules(load_rules(config.rules_dir, config), TODAY) == []
    assert lint_reach(config) == []


# -- zones no anchor reaches -------------------------------------------------------------------
FAR = """\
store: {id: s1, timezone: UTC}
anchors:
  - {id: a1, kind: scanner, x: 0, y: 0}
zones:
  - {id: near, polygon: [[0, 0], [4, 0], [4, 4], [0, 4]]}
  - {id: far, polygon: [[300, 300], [304, 300], [304, 304], [300, 304]]}
"""


def test_a_zone_no_anchor_reaches(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(FAR, encoding="utf-8")
    config = parse_config(path)
    (far,) = unreached_zones(config)
    assert far.zone.id == "far" and far.rssi < -90
    assert far.rssi == pytest.approx(modelled_rssi(config.anchors[0], far.distance_m))
    assert [str(d) for d in lint_reach(config)] == [
        f"{path}:6:5: warning: zone 'far' is out of reach of every anchor: at its centre the "
        "loudest, 'a1' 427 m away, is modelled at -112 dBm, below -90 dBm; add an anchor nearer, "
        "or check the anchors' x, y and calibration (at zones[1])"
    ]


# -- the command -------------------------------------------------------------------------------
ENDED = RULE.replace("PURPOSE", "commercial") + "valid: {until: 2020-01-31}\n"


def test_check_warns_exits_0_and_counts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = reference_store(tmp_path, rules_dir="rules")
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "r.yaml").write_text(ENDED, encoding="utf-8")
    assert main(["check", "-c", str(config)]) == 0
    out, err = capsys.readouterr()
    assert "rules/r.yaml:10:16: warning: the campaign ended on 2020-01-31" in out
    assert err.strip().endswith(": ok: 1 rule(s), 0 of 0 test(s) passed, 0 error(s), 1 warning(s)")


def test_check_strict_makes_warnings_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = reference_store(tmp_path, rules_dir="rules")
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "r.yaml").write_text(ENDED, encoding="utf-8")
    assert main(["check", "-c", str(config), "--strict"]) == 1
    out, err = capsys.readouterr()
    assert "rules/r.yaml:10:16: error: the campaign ended on 2020-01-31" in out
    assert "FAILED: 1 rule(s), 0 of 0 test(s) passed, 1 error(s), 0 warning(s)" in err


def test_check_counts_the_shipped_rules_and_their_tests(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "-c", str(ROOT / "config.example.yaml"), "--strict"]) == 0
    err = capsys.readouterr().err
    assert ": ok: 7 rule(s), 31 of 31 test(s) passed, 0 error(s), 0 warning(s)" in err


def test_check_says_no_rule_was_checked_when_the_config_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("store: {id: s1, timezone: Europe/Pari}\n", encoding="utf-8")
    assert main(["check", "-c", str(path)]) == 1
    out, err = capsys.readouterr()
    assert "unknown time zone 'Europe/Pari'" in out
    assert err.strip() == f"{path}: FAILED: the config has 1 error(s): no rule checked"
