"""`rayon schema config`: the JSON Schema of config.yaml accepts the reference store, names
every section the loader reads, and underlines a bad `record` the way `rayon check` does."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from gateway.cli.main import main
from gateway.config.load import load_config
from gateway.config.schema import CONFIG_SCHEMA_FILE, config_schema
from gateway.errors import ConfigError
from tests.stores import ROOT, reference_store

EXAMPLE = ROOT / "config.example.yaml"


def _errors(doc: Any) -> list[str]:
    validator = jsonschema.Draft7Validator(config_schema())
    return [e.message for e in validator.iter_errors(doc)]


def test_the_schema_is_valid_draft_07_and_accepts_the_reference_store() -> None:
    jsonschema.Draft7Validator.check_schema(config_schema())
    assert _errors(yaml.safe_load(EXAMPLE.read_text("utf-8"))) == []


def test_it_names_every_section_the_loader_reads(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(reference_store(tmp_path, zzz=1))
    allowed = re.search(r"allowed keys: ([a-z_, ]+)", str(caught.value))
    assert allowed is not None
    assert set(config_schema()["properties"]) == {k.strip() for k in allowed.group(1).split(",")}


@pytest.mark.parametrize(
    "record",
    [{"max_size": "lots"}, {"retention": "a day"}, {"keep": "1d"}, "yes please"],
)
def test_a_bad_record_section_is_underlined(record: object) -> None:
    doc = yaml.safe_load(EXAMPLE.read_text("utf-8"))
    doc["record"] = record
    assert _errors(doc)


@pytest.mark.parametrize("record", [False, True, {"max_size": "2GB", "segment": "30m"}])
def test_good_record_sections_pass(record: object) -> None:
    doc = yaml.safe_load(EXAMPLE.read_text("utf-8"))
    doc["record"] = record
    assert _errors(doc) == []


def test_the_command_writes_it(tmp_path: Path) -> None:
    assert main(["schema", "config", "-c", str(EXAMPLE), "-o", str(tmp_path)]) == 0
    assert json.loads((tmp_path / CONFIG_SCHEMA_FILE).read_text("utf-8")) == config_schema()


@pytest.mark.parametrize(
    "console",
    [
        {"listen": "localhost"},
        {"listn": "127.0.0.1:8080"},
        {"tls": {"cert_file": "c.pem"}},
        {"floor_plan": {"origin": [0, 0]}},
        {"session_ttl": "a day"},
    ],
)
def test_a_bad_console_section_is_underlined(console: object) -> None:
    doc = yaml.safe_load(EXAMPLE.read_text("utf-8"))
    doc["console"] = console
    assert _errors(doc)


def test_a_full_console_section_and_its_mqtt_login_pass() -> None:
    doc = yaml.safe_load(EXAMPLE.read_text("utf-8"))
    doc["console"] = {
        "listen": "[::1]:8443",
        "users_file": "console-users",
        "secret_file": "session.key",
        "audit_log": "audit.log",
        "session_ttl": "8h",
        "tls": {"cert_file": "c.pem", "key_file": "c.key"},
        "floor_plan": {"image": "plan.png", "origin": [0, 25], "metres_per_pixel": 0.02},
    }
    doc["mqtt"]["console"] = {"username": "rayon-paris-11-console", "password_file": "s"}
    assert _errors(doc) == []
    doc["mqtt"]["console"] = {"password_file": "s"}
    assert _errors(doc)
