"""The JSON Schema of rule files for editors: valid itself, in step with the loader, accepting
every shipped file and rejecting the malformed corpus wherever one file's text can tell."""

from __future__ import annotations

import json
import re
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft7Validator, Draft202012Validator

from gateway.config.load import load_config
from gateway.config.model import Config
from gateway.config.yamlconv import parse_duration
from gateway.rules import load, policy, testspec
from gateway.rules.model import TriggerKind
from gateway.rules.operators import FIELDS
from gateway.rules.schema.export import (
    POLICY_SCHEMA_FILE,
    RULE_SCHEMA_FILE,
    policy_schema,
    rules_schema,
    write_schemas,
)
from gateway.rules.schema.parts import (
    CLOCK_PATTERN,
    DATE_PATTERN,
    DURATION_PATTERN,
    PERCENT_PATTERN,
    UNKNOWN_PLACEHOLDER_PATTERN,
)
from tests.test_rules_load import BASE, CORPUS
from tests.test_rules_support import ROOT

# Corpus cases one file's text cannot show to a JSON Schema, and why (`rayon check` catches
# them).  Each must really pass the schema, so this list stays honest.
NOT_JUDGED = {
    "bad_yaml": "not YAML at all: the editor's YAML parser reports it, before any schema",
    "duplicate_key": "parsed YAML keeps one value per key; the editor's parser flags repeats",
    "valid_reversed": "JSON Schema cannot compare two dates",
}
# Zone ids are free text when the schema is generated without the store's config.
NOT_JUDGED_WITHOUT_CONFIG = NOT_JUDGED | {
    "unknown_zone": "zone ids are free text without the config",
    "zone_condition": "zone ids are free text without the config",
    "test_unknown_zone": "zone ids are free text without the config",
}


class Yaml12Loader(yaml.SafeLoader):
    """Reads YAML as the editor does (YAML 1.2 core): `14:00`, `no`, `2026-03-02` stay text."""


_DROPPED = {f"tag:yaml.org,2002:{t}" for t in ("bool", "int", "float", "timestamp")}
Yaml12Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag not in _DROPPED]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
for _tag, _rx, _first in (
    ("bool", r"^(?:true|True|TRUE|false|False|FALSE)$", "tTfF"),
    ("int", r"^[-+]?[0-9]+$", "-+0123456789"),
    ("float", r"^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?$", "-+0123456789."),
):
    Yaml12Loader.add_implicit_resolver(f"tag:yaml.org,2002:{_tag}", re.compile(_rx), list(_first))


def yaml12(text: str) -> Any:
    """The JSON instance an editor validates for this YAML text."""
    return yaml.load(text, Yaml12Loader)


def problems(schema: dict[str, Any], instance: Any) -> list[str]:
    """Every schema error as `message at path`."""
    return [
        f"{e.message} at {e.json_path}" for e in Draft202012Validator(schema).iter_errors(instance)
    ]


@pytest.fixture(scope="module")
def config() -> Config:
    return load_config(ROOT / "config.example.yaml")


def test_the_schemas_are_valid_json_schema_2020_12(config: Config) -> None:
    for schema in (rules_schema(), rules_schema(config), policy_schema()):
        Draft202012Validator.check_schema(schema)
        Draft7Validator.check_schema(schema)  # what the VS Code YAML extension checks it with
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"


def test_every_shipped_rule_file_and_the_policy_validate(config: Config) -> None:
    files = sorted((ROOT / "rules").glob("*.yaml"))
    assert len(files) >= 6
    for path in files:
        schema = policy_schema() if path.name == "policy.yaml" else rules_schema(config)
        assert problems(schema, yaml12(path.read_text(encoding="utf-8"))) == [], path.name


def _rejected_by_loader(tmp_path: Path, text: str) -> bool:
    rules_dir = tmp_path / "rules"
    rules_dir.mkdir(exist_ok=True)
    (rules_dir / "r.yaml").write_text(text, encoding="utf-8")
    cfg = load_config(ROOT / "config.example.yaml")
    _, diagnostics = load.read_rules(rules_dir, cfg)
    return any(d.severity.value == "error" for d in diagnostics)


def _instance(text: str) -> Any:
    try:
        return yaml12(text)
    except yaml.YAMLError:
        return None  # the bad_yaml case: an editor shows the syntax error instead


@pytest.mark.parametrize(("case", "text"), [c[:2] for c in CORPUS], ids=[c[0] for c in CORPUS])
@pytest.mark.parametrize("with_config", [True, False], ids=["config", "no-config"])
def test_the_malformed_corpus_is_rejected_where_a_schema_can_tell(
    tmp_path: Path, config: Config, case: str, text: str, with_config: bool
) -> None:
    if not _rejected_by_loader(tmp_path, text):
        pytest.skip(f"{case}: the loader accepts it now (the format was extended)")
    schema = rules_schema(config if with_config else None)
    found = problems(schema, _instance(text)) if case != "bad_yaml" else []
    not_judged = NOT_JUDGED if with_config else NOT_JUDGED_WITHOUT_CONFIG
    if case in not_judged:
        assert found == [], f"{case} is listed as not judged ({not_judged[case]}) yet rejected"
    else:
        assert found, f"the schema accepts the malformed case {case}"


def test_most_of_the_corpus_is_judged() -> None:
    names = {c[0] for c in CORPUS}
    assert len(names - NOT_JUDGED_WITHOUT_CONFIG.keys()) >= 0.75 * len(names)


def test_zone_ids_complete_from_the_config(config: Config) -> None:
    place = rules_schema(config)["$defs"]["place"]
    assert place["enum"] == [z.id for z in config.zones] + [g.id for g in config.geofences]
    assert rules_schema(config)["$defs"]["zone"]["enum"] == [z.id for z in config.zones]
    assert "Rayon TV (zone)" in place["markdownEnumDescriptions"]
    assert "enum" not in rules_schema()["$defs"]["place"]
    elsewhere = yaml12(BASE.replace("zone: aisle-tv", "zone: rayon-x"))
    assert problems(rules_schema(), elsewhere) == []
    assert problems(rules_schema(config), elsewhere) != []


def _properties(schema: dict[str, Any], name: str | None = None) -> set[str]:
    node = schema["$defs"][name] if name else schema
    return set(node["properties"])


def test_the_schema_knows_exactly_the_keys_the_loader_knows(config: Config) -> None:
    schema = rules_schema(config)
    assert _properties(schema) == set(load._RULE_KEYS)
    assert _properties(schema, "offer") == set(load._OFFER_KEYS)
    assert _properties(schema, "trigger") == {k.value for k in TriggerKind}
    assert _properties(schema, "inlineTest") == set(testspec._TEST_KEYS)
    customer = schema["$defs"]["inlineTest"]["properties"]["customer"]
    assert set(customer["properties"]) == set(testspec._CUSTOMER_KEYS)
    assert _properties(policy_schema()) == set(policy._KEYS)
    condition = schema["$defs"]["condition"]
    assert set(condition["properties"]) == {*FIELDS, "any", "not", "time", "date"}
    for name, field in FIELDS.items():
        assert set(condition["properties"][name]["properties"]) == set(field.operators), name


def _matches(pattern: str, text: str) -> bool:
    return re.search(pattern, text) is not None


@pytest.mark.parametrize(
    "text",
    [
        "30s",
        "5m",
        "2h",
        "90d",
        "1h30m",
        "500ms",
        "2w",
        "3y",
        "1.5h",
        "30",
        "1 h",
        "",
        "1x",
        "-5m",
        "h",
        "5 m 3",
        "m5",
        "1e3",
        "2d12h",
        "+5",
        ".5",
        "5.",
        "1e-3",
    ],
)
def test_the_duration_pattern_agrees_with_the_loader(text: str) -> None:
    assert _matches(DURATION_PATTERN, text) == (parse_duration(text) is not None)


def test_the_time_date_and_percent_patterns_agree_with_the_loader() -> None:
    clocks = [f"{h}:{m:02d}" for h in range(25) for m in (0, 59, 60)] + ["07:30", "7:5", "14h"]
    for text in clocks:
        assert _matches(CLOCK_PATTERN, text) == bool(
            re.match(r"^([01]?\d|2[0-3]):([0-5]\d)$", text)
        )
    for year in (2000, 2024, 2026, 2100):
        for month in range(1, 14):
            for day in range(0, 33):
                text = f"{year}-{month:02d}-{day:02d}"
                assert _matches(DATE_PATTERN, text) == _is_date(text), text
    for text in [
        "0%",
        "10%",
        "12.5 %",
        "100%",
        "100.0%",
        "100.5%",
        "101%",
        "10",
        "%",
        "-1%",
        "007%",
    ]:
        real = re.match(r"^(\d+(?:\.\d+)?)\s*%$", text)
        assert _matches(PERCENT_PATTERN, text) == bool(real and float(real[1]) <= 100), text


def _is_date(text: str) -> bool:
    try:
        return date.fromisoformat(text) - timedelta(0) is not None
    except ValueError:
        return False


@pytest.mark.parametrize(
    ("title", "ok"),
    [
        ("Bienvenue chez {store_name} !", True),
        ("{ customer.first_name }, {zone_name}", True),
        ("a { b } c", False),
        ("Bienvenue au {zone}", False),
        ("{{zone_name}}", True),
        ("accolade { seule", True),
    ],
)
def test_the_placeholder_check_agrees_with_the_loader(tmp_path: Path, title: str, ok: bool) -> None:
    text = BASE.replace("title: T", f"title: {json.dumps(title)}")
    assert _rejected_by_loader(tmp_path, text) is not ok
    assert (re.search(UNKNOWN_PLACEHOLDER_PATTERN, title) is None) is ok


def test_write_schemas_writes_both_files(tmp_path: Path, config: Config) -> None:
    written = write_schemas(tmp_path / ".vscode", config)
    assert [p.name for p in written] == [RULE_SCHEMA_FILE, POLICY_SCHEMA_FILE]
    assert json.loads(written[0].read_text(encoding="utf-8")) == rules_schema(config)
    assert json.loads(written[1].read_text(encoding="utf-8")) == policy_schema()
