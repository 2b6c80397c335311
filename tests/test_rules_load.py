"""The rule loader: a corpus of malformed rule files with the exact diagnostics expected.

Every message names file:line:col (1-based) and the key path, with a "did you mean" where a
near name exists; loading is all-or-nothing.
"""
# The corpus keeps each expected diagnostic on one line, as `rayon check` prints it.
# ruff: noqa: E501

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.errors import ConfigError, Severity
from gateway.rules.load import load_rules, read_rules
from tests.test_rules_support import store_config

BASE = """\
id: r
name: R
purpose: commercial
when:
  enter: {zone: aisle-tv}
then:
  offer: {title: T}
limits:
  cooldown: 1h
"""

CORPUS: list[tuple[str, str, list[str]]] = [
    (
        "unknown_key",
        BASE + "prioity: 3\n",
        ["rules/r.yaml:10:1: error: unknown key 'prioity' (did you mean 'priority'?) (at prioity)"],
    ),
    (
        "unknown_zone",
        BASE.replace("zone: aisle-tv", "zone: aisle-tvs"),
        [
            "rules/r.yaml:5:17: error: unknown zone 'aisle-tvs' (did you mean 'aisle-tv'?) (at when.enter.zone)"
        ],
    ),
    (
        "bad_duration",
        BASE.replace("cooldown: 1h", "cooldown: 1x"),
        [
            "rules/r.yaml:9:13: error: bad duration '1x' (write e.g. 30s, 5m, 2h, 90d) (at limits.cooldown)"
        ],
    ),
    (
        "bad_time",
        BASE + 'if:\n  - time: {between: ["25:00", "19:00"]}\n',
        [
            'rules/r.yaml:11:22: error: bad time \'25:00\' (write "HH:MM", e.g. "14:00") (at if[0].time.between[0])'
        ],
    ),
    (
        "unknown_day",
        BASE + "if:\n  - time: {days: [mon, tues]}\n",
        [
            "rules/r.yaml:11:24: error: unknown day 'tues' (did you mean 'tue'?) (at if[0].time.days[1])"
        ],
    ),
    (
        "unknown_purpose",
        BASE.replace("purpose: commercial", "purpose: comercial"),
        [
            "rules/r.yaml:3:10: error: unknown purpose 'comercial' (did you mean 'commercial'?) (at purpose)"
        ],
    ),
    (
        "missing_then",
        BASE.replace("then:\n  offer: {title: T}\n", ""),
        ["rules/r.yaml:1:1: error: missing required key 'then'"],
    ),
    (
        "two_triggers",
        BASE.replace(
            "  enter: {zone: aisle-tv}\n", "  enter: {zone: aisle-tv}\n  exit: {zone: aisle-tv}\n"
        ),
        [
            "rules/r.yaml:5:3: error: when needs exactly one trigger of: enter, exit, dwell, visit_start, visit_end, absent (got 2) (at when)"
        ],
    ),
    (
        "absent",
        BASE.replace("  enter: {zone: aisle-tv}\n", "  absent: {zone: aisle-tv, for: 10m}\n"),
        [
            "rules/r.yaml:5:11: error: missing required key 'at' (at when.absent)",
            "rules/r.yaml:5:12: error: unknown key 'zone' (expected one of: for, at) (at when.absent.zone)",
        ],
    ),
    (
        "dwell_no_threshold",
        BASE.replace("enter: {zone: aisle-tv}", "dwell: {zone: aisle-tv}"),
        ["rules/r.yaml:5:10: error: missing required key 'at_least' (at when.dwell)"],
    ),
    (
        "unknown_placeholder",
        BASE.replace("title: T", 'title: "Bienvenue au {zone}"'),
        [
            "rules/r.yaml:7:18: error: unknown placeholder '{zone}' (did you mean '{zone_name}'?) (at then.offer.title)"
        ],
    ),
    (
        "code_without_code",
        BASE.replace("title: T", 'title: "Code {code}"'),
        [
            "rules/r.yaml:7:18: error: {code} is used but the offer sets no code nor code_pool (at then.offer.title)"
        ],
    ),
    (
        "priority_type",
        BASE + "priority: high\n",
        ["rules/r.yaml:10:11: error: expected a whole number, got a text (at priority)"],
    ),
    (
        "holdout_number",
        BASE + "holdout: 10\n",
        [
            "rules/r.yaml:10:10: error: bad percentage '10' (write e.g. 10%, between 0% and 100%) (at holdout)"
        ],
    ),
    (
        "unknown_period",
        BASE.replace("cooldown: 1h", "per_customer: {max: 1, per: weak}"),
        [
            "rules/r.yaml:9:31: error: unknown period 'weak' (did you mean 'week'?) (at limits.per_customer.per)"
        ],
    ),
    (
        "code_and_code_pool",
        BASE.replace("title: T", "title: T, code: TV15, code_pool: tv15"),
        [
            "rules/r.yaml:7:44: error: an offer has either a fixed code or a code_pool, not both (at then.offer.code_pool)"
        ],
    ),
    (
        "unknown_operator",
        BASE + "if:\n  - customer.tier: {equals: gold}\n",
        [
            "rules/r.yaml:11:21: error: unknown operator 'equals' (expected one of: is, is_not, in) (at if[0].customer.tier.equals)"
        ],
    ),
    (
        "operator_for_field",
        BASE + "if:\n  - customer.interests: {is: tv}\n",
        [
            "rules/r.yaml:11:26: error: unknown operator 'is' (expected one of: has, has_any, has_all) (at if[0].customer.interests.is)"
        ],
    ),
    (
        "bad_yaml",
        BASE.replace("offer: {title: T}", "offer: {title: T"),
        [
            "rules/r.yaml:7:10: error: not valid YAML: the '{' opened here is never closed: add '}' at its end"
        ],
    ),
    (
        "valid_reversed",
        BASE + "valid: {from: 2026-04-01, until: 2026-03-01}\n",
        [
            "rules/r.yaml:10:34: error: ends (2026-03-01) before it starts (2026-04-01) (at valid.until)"
        ],
    ),
    (
        "bad_date",
        BASE + "valid: {from: 2026-02-30}\n",
        [
            "rules/r.yaml:10:15: error: bad date '2026-02-30' (write YYYY-MM-DD, e.g. 2026-03-02) (at valid.from)"
        ],
    ),
    (
        "unknown_field",
        BASE + "if:\n  - customer.interets: {has: tv}\n",
        [
            "rules/r.yaml:11:5: error: unknown condition 'customer.interets' (did you mean 'customer.interests'?) (at if[0].customer.interets)"
        ],
    ),
    (
        "number_expected",
        BASE + "if:\n  - customer.visits: {at_least: many}\n",
        [
            "rules/r.yaml:11:33: error: expected a number, got 'many' (at if[0].customer.visits.at_least)"
        ],
    ),
    (
        "test_unknown_zone",
        BASE
        + 'tests:\n  - name: t\n    events: [{at: "2026-03-03T15:00:00", enter: aisle-tvv}]\n    expect: offer\n',
        [
            "rules/r.yaml:12:49: error: unknown zone 'aisle-tvv' (did you mean 'aisle-tv'?) (at tests[0].events[0].enter)"
        ],
    ),
    (
        "test_bad_time",
        BASE
        + 'tests:\n  - name: t\n    events: [{at: "3 March", enter: aisle-tv}]\n    expect: offer\n',
        [
            "rules/r.yaml:12:19: error: bad time '3 March' (write 2026-03-03T15:00:00) (at tests[0].events[0].at)"
        ],
    ),
    (
        "duplicate_key",
        BASE + "priority: 1\npriority: 2\n",
        ["rules/r.yaml:11:1: error: duplicate key 'priority' (at priority)"],
    ),
    ("empty", "", ["rules/r.yaml:1:1: error: the file is empty"]),
    (
        "when_list",
        BASE.replace("  enter: {zone: aisle-tv}\n", "  - enter\n"),
        ["rules/r.yaml:5:3: error: expected a mapping, got a list (at when)"],
    ),
    (
        "zone_condition",
        BASE + "if:\n  - zone: {in: [aisle-tv, caisse]}\n",
        [
            "rules/r.yaml:11:27: error: unknown zone 'caisse' (zones: store, entrance, checkout, "
            "click-collect, aisle-tv, aisle-audio, aisle-smartphones, aisle-computing, "
            "aisle-gaming, aisle-photo, aisle-appliances, aisle-accessories; "
            "geofences: store-approach, parking) (at if[0].zone.in[1])"
        ],
    ),
    ("not_a_mapping", "- id: r\n", ["rules/r.yaml:1:1: error: expected a mapping, got a list"]),
    (
        "max_zero",
        BASE.replace("cooldown: 1h", "per_customer: {max: 0, per: day}"),
        ["rules/r.yaml:9:23: error: must be at least 1, got 0 (at limits.per_customer.max)"],
    ),
    (
        "expect_typo",
        BASE
        + 'tests:\n  - name: t\n    events: [{at: "2026-03-03T15:00:00", enter: aisle-tv}]\n    expect: offers\n',
        [
            "rules/r.yaml:13:13: error: expect must be `offer`, `none`, `{offers: N}` or `{offer: {title: …}}` (at tests[0].expect)"
        ],
    ),
]


@pytest.fixture(autouse=True)
def in_store_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run where the store's config lives: diagnostics name files relative to the working
    directory, as an editor or a terminal can open them."""
    monkeypatch.chdir(tmp_path)


def diagnose(tmp_path: Path, files: dict[str, str]) -> list[str]:
    """The diagnostics of loading `files` (name → text) as a rules directory."""
    rules_dir = tmp_path / "rules"
    rules_dir.mkdir(exist_ok=True)
    for name, text in files.items():
        (rules_dir / name).write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_rules(rules_dir, store_config(rules_dir))
    return [str(d) for d in info.value.diagnostics]


@pytest.mark.parametrize(("case", "text", "expected"), CORPUS, ids=[c[0] for c in CORPUS])
def test_malformed_rule_files_say_what_and_where(
    tmp_path: Path, case: str, text: str, expected: list[str]
) -> None:
    assert diagnose(tmp_path, {"r.yaml": text}) == expected


def test_the_base_rule_of_the_corpus_is_valid(tmp_path: Path) -> None:
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "r.yaml").write_text(BASE, encoding="utf-8")
    rules = load_rules(tmp_path / "rules", store_config(tmp_path / "rules"))
    assert [r.id for r in rules.rules] == ["r"]
    assert rules.warnings == ()


def test_every_problem_of_every_file_is_reported_at_once(tmp_path: Path) -> None:
    bad_zone = BASE.replace("zone: aisle-tv", "zone: aisle-tvs").replace("id: r", "id: a")
    got = diagnose(tmp_path, {"a.yaml": bad_zone + "prioity: 3\n", "b.yaml": BASE, "c.yaml": BASE})
    assert got == [
        "rules/a.yaml:5:17: error: unknown zone 'aisle-tvs' (did you mean 'aisle-tv'?) "
        "(at when.enter.zone)",
        "rules/a.yaml:10:1: error: unknown key 'prioity' (did you mean 'priority'?) (at prioity)",
        "rules/c.yaml:1:5: error: duplicate rule id 'r' (also in rules/b.yaml) (at id)",
    ]


def test_policy_errors_are_located_too(tmp_path: Path) -> None:
    policy = (
        'quiet_hours: {between: ["21:00"]}\npressure: {per_customer: {dya: 2}}\nmin_gap: soon\n'
    )
    got = diagnose(tmp_path, {"r.yaml": BASE, "policy.yaml": policy})
    assert got == [
        'rules/policy.yaml:1:24: error: between needs two times ["HH:MM", "HH:MM"], got 1 '
        "(at quiet_hours.between)",
        "rules/policy.yaml:2:27: error: unknown key 'dya' (did you mean 'day'?) "
        "(at pressure.per_customer.dya)",
        "rules/policy.yaml:3:10: error: bad duration 'soon' (write e.g. 30s, 5m, 2h, 90d) "
        "(at min_gap)",
    ]


def test_a_commercial_rule_without_limits_loads_with_a_warning(tmp_path: Path) -> None:
    rules_dir = tmp_path / "rules"
    rules_dir.mkdir()
    (rules_dir / "r.yaml").write_text(BASE.replace("limits:\n  cooldown: 1h\n", ""), "utf-8")
    rules = load_rules(rules_dir, store_config(rules_dir))
    assert [str(w) for w in rules.warnings] == [
        "rules/r.yaml:1:5: warning: commercial rule 'r' has no limits: add "
        "limits.per_customer or cooldown (at limits)"
    ]
    assert all(w.severity is Severity.WARNING for w in rules.warnings)


def test_a_missing_rules_directory_is_an_error(tmp_path: Path) -> None:
    rules, diagnostics = read_rules(tmp_path / "nope", store_config(tmp_path / "nope"))
    assert rules is None
    assert [str(d) for d in diagnostics] == ["nope:1:1: error: the rules directory does not exist"]


def test_the_full_format_compiles_into_typed_values(tmp_path: Path) -> None:
    text = """\
id: full
name: "Tout"
purpose: transactional
valid: {from: 2026-03-02, until: 2026-04-26}
when:
  dwell: {zone: [aisle-tv, aisle-audio], at_least: 1m30s}
if:
  - any:
      - customer.segments: {has_any: [vip, staff]}
      - not: {customer.tier: {is: bronze}}
then:
  offer: {title: "{store_name}", body: "{zone_name} {code}", code: X, url: "u", expires_in: 2h}
limits:
  per_customer: {max: 2, per: 30d}
  total: {max: 10}
priority: -3
"""
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "full.yaml").write_text(text, encoding="utf-8")
    rule = load_rules(tmp_path / "rules", store_config(tmp_path / "rules")).rules[0]
    assert (rule.trigger.zones, rule.trigger.at_least) == (("aisle-tv", "aisle-audio"), 90.0)
    assert (rule.limits.per_customer_max, rule.limits.per, rule.limits.total_max) == (2, "30d", 10)
    assert (rule.priority, rule.offer.expires_in, rule.offer.code) == (-3, 7200.0, "X")
    assert str(rule.valid_from) == "2026-03-02" and str(rule.valid_until) == "2026-04-26"
