"""Rules in French too: day names `lun … dim` and cap periods `jour semaine mois` beside the
English ones, with "did you mean" that knows both vocabularies."""

from __future__ import annotations

from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from gateway.errors import ConfigError
from gateway.rules.load import load_rules
from gateway.rules.model import Period, RuleSet
from gateway.rules.policy import PERIOD_WORDS
from gateway.rules.schema.export import policy_schema, rules_schema
from gateway.rules.timewindow import ENGLISH_DAYS, FRENCH_DAYS, Weekday
from tests.test_rules_support import store_config

RULE = """\
id: r
name: R
purpose: commercial
when:
  enter: {zone: aisle-tv}
if:
  - time: {between: ["14:00", "19:00"], days: DAYS}
then:
  offer: {title: T}
limits:
  per_customer: {max: 1, per: PER}
"""


@pytest.fixture(autouse=True)
def in_store_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


def load(tmp_path: Path, days: str = "[mon]", per: str = "day", policy: str = "") -> RuleSet:
    rules_dir = tmp_path / "rules"
    rules_dir.mkdir(exist_ok=True)
    text = RULE.replace("DAYS", days).replace("PER", per)
    (rules_dir / "r.yaml").write_text(text, encoding="utf-8")
    if policy:
        (rules_dir / "policy.yaml").write_text(policy, encoding="utf-8")
    return load_rules(rules_dir, store_config(rules_dir))


def errors(tmp_path: Path, **kwargs: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, **kwargs)
    return [str(d) for d in info.value.diagnostics]


def window_days(rules: RuleSet) -> set[Weekday]:
    (condition,) = rules.rules[0].conditions
    assert condition.window is not None
    return set(condition.window.days)


def test_french_day_names_are_the_same_days_as_the_english_ones(tmp_path: Path) -> None:
    french = load(tmp_path, days="[lun, mar, mer, jeu, ven, sam, dim]")
    assert window_days(french) == set(Weekday)
    mixed = load(tmp_path, days="[Lun, tue, VEN]")
    assert window_days(mixed) == {Weekday.MON, Weekday.TUE, Weekday.FRI}


def test_a_typo_in_a_french_day_suggests_the_french_day(tmp_path: Path) -> None:
    assert errors(tmp_path, days="[lnu]") == [
        "rules/r.yaml:7:48: error: unknown day 'lnu' (did you mean 'lun'?) (at if[0].time.days[0])"
    ]
    assert "did you mean 'tue'?" in errors(tmp_path, days="[tues]")[0]


def test_an_unknown_day_lists_both_vocabularies(tmp_path: Path) -> None:
    (message,) = errors(tmp_path, days="[xyz]")
    both = "(use mon, tue, wed, thu, fri, sat, sun, or lun, mar, mer, jeu, ven, sam, dim)"
    assert both in message


def test_the_two_vocabularies_share_no_word() -> None:
    assert not set(ENGLISH_DAYS) & set(FRENCH_DAYS)
    assert [FRENCH_DAYS[w] for w in ("lun", "mar", "sam", "dim")] == [
        Weekday.MON,
        Weekday.TUE,
        Weekday.SAT,
        Weekday.SUN,
    ]


@pytest.mark.parametrize(
    ("word", "period"), [("jour", Period.DAY), ("semaine", Period.WEEK), ("mois", Period.D30)]
)
def test_french_cap_periods(tmp_path: Path, word: str, period: Period) -> None:
    assert load(tmp_path, per=word).rules[0].limits.per is period


def test_a_typo_in_a_french_period_suggests_it(tmp_path: Path) -> None:
    assert errors(tmp_path, per="semiane") == [
        "rules/r.yaml:11:31: error: unknown period 'semiane' (did you mean 'semaine'?) "
        "(at limits.per_customer.per)"
    ]


def test_policy_pressure_takes_french_periods(tmp_path: Path) -> None:
    rules = load(tmp_path, policy="pressure: {per_customer: {jour: 2, semaine: 5, mois: 9}}\n")
    assert rules.policy.pressure == ((Period.DAY, 2), (Period.WEEK, 5), (Period.D30, 9))


def test_one_period_in_both_languages_is_an_error(tmp_path: Path) -> None:
    got = errors(tmp_path, policy="pressure: {per_customer: {day: 2, jour: 3}}\n")
    assert got == [
        "rules/policy.yaml:1:41: error: 'jour' repeats the period day: keep one "
        "(at pressure.per_customer.jour)"
    ]


def test_the_schemas_accept_the_french_words() -> None:
    rule = {
        "id": "r",
        "name": "R",
        "purpose": "commercial",
        "when": {"enter": "aisle-tv"},
        "if": [{"time": {"days": ["lun", "Mar", "dim"]}}],
        "then": {"offer": {"title": "T"}},
        "limits": {"per_customer": {"max": 1, "per": "mois"}},
    }
    assert list(Draft202012Validator(rules_schema()).iter_errors(rule)) == []
    bad = rule | {"if": [{"time": {"days": ["lnu"]}}]}
    assert list(Draft202012Validator(rules_schema()).iter_errors(bad)) != []
    policy = {"pressure": {"per_customer": {"jour": 2, "semaine": 5}}}
    assert list(Draft202012Validator(policy_schema()).iter_errors(policy)) == []
    assert set(PERIOD_WORDS) >= {"jour", "semaine", "mois", "day", "week", "30d"}
