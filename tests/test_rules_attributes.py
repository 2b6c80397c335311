"""`{customer.attributes.NAME}` in offer texts: declared in config.yaml
(`customers.attributes`), checked when the rules load, filled from the CRM record, and an
offer citing an attribute the customer lacks is not sent (counted, with its reason in
explain and backtest)."""

from __future__ import annotations

import re
import shutil
from dataclasses import replace
from pathlib import Path
from types import MappingProxyType

import pytest
from jsonschema import Draft202012Validator

from gateway.clock import parse_local_time
from gateway.config.load import load_config, parse_config
from gateway.config.model import AttributeType, Config, CustomersConfig
from gateway.errors import ConfigError
from gateway.events import EventKind
from gateway.offline.backtest.core import backtest
from gateway.offline.backtest.report import as_json, render_table
from gateway.offline.backtest.result import Cause, classify
from gateway.rules.checks import attribute_failure
from gateway.rules.engine import RuleEngine
from gateway.rules.explanation import Section, Verdict
from gateway.rules.gates import attribute_line, first_failure
from gateway.rules.load import load_rules
from gateway.rules.schema.export import rules_schema
from gateway.rules.schema.parts import unknown_placeholder_pattern
from tests.stores import reference_store
from tests.test_rules_support import (
    ROOT,
    customer,
    event,
    rule_file,
    store_config,
    write_rules,
)
from tests.walks import STORE_UUID, walk_adverts, zone_centre

DECLARED = {"order_id": AttributeType.STRING, "locker": AttributeType.NUMBER}
DECLARED["order_ready"] = AttributeType.BOOLEAN
NEEDS = "the offer text needs customer.attributes."
COLLECT = rule_file(
    "collect",
    purpose="transactional",
    offer="title: 'Commande {customer.attributes.order_id}', "
    "body: 'Casier {customer.attributes.locker}, {store_name}'",
)


@pytest.fixture(autouse=True)
def in_store_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


def config_for(rules_dir: Path, declared: dict[str, AttributeType] = DECLARED) -> Config:
    return replace(
        store_config(rules_dir), customers=CustomersConfig(MappingProxyType(dict(declared)))
    )


def engine(tmp_path: Path, *rules: str) -> RuleEngine:
    rules_dir = write_rules(tmp_path, *rules)
    config = config_for(rules_dir)
    return RuleEngine(load_rules(rules_dir, config), config)


def load_errors(
    tmp_path: Path, offer: str, declared: dict[str, AttributeType] = DECLARED
) -> list[str]:
    rules_dir = write_rules(tmp_path, rule_file("r", offer=offer, purpose="transactional"))
    with pytest.raises(ConfigError) as info:
        load_rules(rules_dir, config_for(rules_dir, declared))
    return [d.message for d in info.value.diagnostics]


# -- config.yaml ---------------------------------------------------------------------------
def test_config_declares_the_attributes(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(
        "store: {id: s1, timezone: UTC}\n"
        "customers:\n  attributes: {order_id: string, locker: number, order_ready: boolean}\n",
        encoding="utf-8",
    )
    assert dict(parse_config(path).customers.attributes) == DECLARED


def test_a_bad_declaration_is_located(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(
        "store: {id: s1, timezone: UTC}\ncustomers:\n  attributes: {order_id: strng}\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as info:
        parse_config(path)
    assert [str(d) for d in info.value.diagnostics] == [
        f"{path}:3:26: error: unknown value 'strng' (did you mean 'string'?) "
        "(at customers.attributes.order_id)"
    ]


def test_the_reference_store_declares_the_click_and_collect_attributes() -> None:
    config = parse_config(Path(__file__).resolve().parent.parent / "config.example.yaml")
    assert config.customers.attributes["order_id"] is AttributeType.STRING


# -- the rules -----------------------------------------------------------------------------
def test_an_undeclared_attribute_is_an_error_with_a_hint(tmp_path: Path) -> None:
    assert load_errors(tmp_path, "title: 'Commande {customer.attributes.order}'") == [
        "attribute 'order' is not declared in config.yaml (did you mean 'order_id'?): add it "
        "under customers.attributes (e.g. order: string)"
    ]
    assert load_errors(tmp_path, "title: '{customer.attributes.x}'", {}) == [
        "attribute 'x' is not declared in config.yaml: add it under customers.attributes "
        "(e.g. x: string)"
    ]


def test_a_boolean_attribute_cannot_be_shown(tmp_path: Path) -> None:
    assert load_errors(tmp_path, "title: 'Prête : {customer.attributes.order_ready}'") == [
        "attribute 'order_ready' is a boolean: an offer text shows strings and numbers only"
    ]


def test_the_offer_is_filled_from_the_crm_record(tmp_path: Path) -> None:
    eng = engine(tmp_path, COLLECT)
    who = customer(attributes=MappingProxyType({"order_id": "A-1234", "locker": 12}))
    (offer,) = eng.on_event(event(EventKind.ENTER, "2026-03-03T11:00:00", "aisle-tv"), who)
    assert (offer.title, offer.body) == ("Commande A-1234", "Casier 12, Rayon Paris 11")


@pytest.mark.parametrize(
    ("attributes", "reason"),
    [
        (
            {"locker": 12},
            "the offer text needs customer.attributes.order_id, which the customer lacks",
        ),
        (
            {"order_id": "  ", "locker": 12},
            "the offer text needs customer.attributes.order_id, which the customer lacks",
        ),
        (
            {"order_id": "A-1", "locker": "B2"},
            "the offer text needs customer.attributes.locker, which is not a number",
        ),
        (
            {"order_id": ["A", "B"], "locker": 1},
            "the offer text needs customer.attributes.order_id, which is not a string",
        ),
    ],
)
def test_an_offer_citing_an_attribute_the_customer_lacks_is_not_sent(
    tmp_path: Path, attributes: dict[str, object], reason: str
) -> None:
    eng = engine(tmp_path, COLLECT)
    who = customer(attributes=MappingProxyType(attributes))
    found = eng.evaluate(event(EventKind.ENTER, "2026-03-03T11:00:00", "aisle-tv"), who)
    assert found.offers == () and found.reasons == {"collect": reason}
    assert eng.attribute_missing == {"collect": 1}
    assert classify(reason) is Cause.ATTRIBUTES
    explained = eng.explain(event(EventKind.ENTER, "2026-03-03T11:00:00", "aisle-tv"), who)
    rule = explained.rules[0]
    assert (rule.verdict, rule.reason) == (Verdict.BLOCKED, reason)
    (line,) = [x for x in rule.lines if x.section is Section.ATTRIBUTES]
    assert line.label == "customer.attributes: order_id, locker" and line.passed is False
    assert first_failure([line]) == attribute_failure(eng.rules.rules[0], who, DECLARED)


def test_the_explain_line_shows_the_values(tmp_path: Path) -> None:
    eng = engine(tmp_path, COLLECT)
    rule = eng.rules.rules[0]
    who = customer(attributes=MappingProxyType({"order_id": "A-1", "locker": 3.5}))
    line = attribute_line(rule, who, DECLARED)
    assert line is not None
    assert (line.value, line.passed) == ("order_id = A-1; locker = 3.5", True)
    assert attribute_failure(rule, who, DECLARED) is None


ORDER = COLLECT.replace("id: collect", "id: order").replace("aisle-tv", "click-collect")


def test_the_backtest_counts_the_offers_it_held_back(tmp_path: Path) -> None:
    rules_dir = tmp_path / "rules"
    shutil.copytree(ROOT / "rules", rules_dir)
    (rules_dir / "order.yaml").write_text(ORDER, encoding="utf-8")
    config = load_config(reference_store(tmp_path, rules_dir="rules"))
    start = parse_local_time("2026-03-03T11:00:00", config.store.timezone)
    (ex, ey), (cx, cy) = zone_centre(config, "entrance"), zone_centre(config, "click-collect")
    legs = [(ex, ey, 0.0), (ex, ey, 5.0), (cx, cy, 12.0), (cx, cy, 60.0), (ex, ey, 12.0)]
    device = f"ibeacon:{STORE_UUID}:1000:2"
    who = replace(customer("c-cc", attributes={"order_id": "CC-1"}), devices=(device,))
    items = walk_adverts(config, 2, legs, start)
    result = backtest(config, load_rules(config.rules_dir, config), [who], items)
    order = next(r for r in result.rules if r.rule == "order")
    assert (order.offers, order.causes[Cause.ATTRIBUTES]) == (0, 1)
    (reported,) = [r for r in as_json(result)["rules"] if r["rule"] == "order"]
    assert reported["not_met"]["attributes"] == 1
    table = render_table(result)
    assert "no-attr" in table.splitlines()[4] and "no-attr: the customer lacks" in table


# -- the editor's schema -------------------------------------------------------------------
def test_the_schema_completes_the_declared_attributes_only(tmp_path: Path) -> None:
    config = config_for(tmp_path)
    rule = {
        "id": "r",
        "name": "R",
        "purpose": "transactional",
        "when": {"enter": "aisle-tv"},
        "then": {"offer": {"title": "Commande {customer.attributes.order_id}"}},
    }
    assert list(Draft202012Validator(rules_schema(config)).iter_errors(rule)) == []
    for bad in ("{customer.attributes.nope}", "{customer.attributes.order_ready}"):
        other = rule | {"then": {"offer": {"title": bad}}}
        assert list(Draft202012Validator(rules_schema(config)).iter_errors(other)) != []
        assert list(Draft202012Validator(rules_schema()).iter_errors(other)) == []  # no config
    assert re.search(unknown_placeholder_pattern([]), "{customer.attributes.x}")
