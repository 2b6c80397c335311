"""`locate.enter_probability` / `exit_probability` and a zone's own: read, checked with
file:line:col and key path, in the JSON schema, and handed by the pipeline to the tracker."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from gateway.config.load import load_config, parse_config
from gateway.config.model import Config, LocateConfig
from gateway.config.schema import config_schema
from gateway.errors import ConfigError
from gateway.events import EventKind, Fix
from gateway.identity.model import CustomerRegistry
from gateway.pipeline import Pipeline
from gateway.rules.load import load_rules

ROOT = Path(__file__).resolve().parent.parent
STORE = "store: {id: s1, timezone: UTC}\n"
SQUARE = "[[0, 0], [4, 0], [4, 4], [0, 4]]"


def parse(tmp_path: Path, text: str) -> Config:
    path = tmp_path / "config.yaml"
    path.write_text(STORE + text, encoding="utf-8")
    return parse_config(path)


def problems(tmp_path: Path, text: str) -> list[str]:
    """Each error as "line:col: message (at path)", the file name left out."""
    with pytest.raises(ConfigError) as info:
        parse(tmp_path, text)
    prefix = f"{tmp_path / 'config.yaml'}:"
    return [str(d).removeprefix(prefix) for d in info.value.diagnostics]


def test_defaults_and_values_read(tmp_path: Path) -> None:
    config = parse(tmp_path, f"zones:\n  - {{id: a, polygon: {SQUARE}}}\n")
    assert (config.locate.enter_probability, config.locate.exit_probability) == (0.6, 0.3)
    assert (config.zones[0].enter_probability, config.zones[0].exit_probability) == (None, None)
    config = parse(
        tmp_path,
        "locate: {enter_probability: 0.7, exit_probability: 0.7}\n"
        f"zones:\n  - {{id: a, polygon: {SQUARE}, enter_probability: 0.9}}\n"
        f"  - {{id: b, polygon: {SQUARE}, exit_probability: 0.2}}\n"
        f"  - {{id: c, polygon: {SQUARE}, enter_probability: 1, exit_probability: 0.01}}\n",
    )
    assert config.locate == LocateConfig(enter_probability=0.7, exit_probability=0.7)
    own = [(z.enter_probability, z.exit_probability) for z in config.zones]
    assert own == [(0.9, None), (None, 0.2), (1.0, 0.01)]


BAD = [
    (
        "locate: exit above enter",
        "locate: {enter_probability: 0.5, exit_probability: 0.7}\n",
        ["2:52: error: exit_probability 0.7 is above the enter probability 0.5: a device must "
         "leave a zone below the probability it enters it at; lower exit_probability or raise "
         "enter_probability (at locate.exit_probability)"],
    ),
    (
        "locate: enter below the default exit",
        "locate:\n  enter_probability: 0.25\n",
        ["3:22: error: enter_probability 0.25 is below the exit probability 0.3 (the default): "
         "a device must leave a zone below the probability it enters it at; raise "
         "enter_probability or set a lower exit_probability (at locate.enter_probability)"],
    ),
    (
        "locate: zero and above one",
        "locate: {enter_probability: 1.5, exit_probability: 0}\n",
        ["2:29: error: 1.5 is out of range: must be above 0 and at most 1 "
         "(at locate.enter_probability)",
         "2:52: error: 0.0 is out of range: must be above 0 and at most 1 "
         "(at locate.exit_probability)"],
    ),
    (
        "locate: not a number",
        "locate: {enter_probability: high}\n",
        ["2:29: error: expected a number, got 'high' (at locate.enter_probability)"],
    ),
    (
        "a zone's enter below locate's exit",
        "locate: {exit_probability: 0.4}\n"
        f"zones:\n  - {{id: a, polygon: {SQUARE}, enter_probability: 0.35}}\n",
        ["4:75: error: enter_probability 0.35 is below the exit probability 0.4 "
         "(locate.exit_probability): a device must leave a zone below the probability it enters "
         "it at; raise enter_probability or set a lower exit_probability "
         "(at zones[0].enter_probability)"],
    ),
    (
        "a zone's exit above locate's enter",
        f"zones:\n  - id: a\n    polygon: {SQUARE}\n    exit_probability: 0.65\n",
        ["5:23: error: exit_probability 0.65 is above the enter probability 0.6 "
         "(locate.enter_probability): a device must leave a zone below the probability it "
         "enters it at; lower exit_probability or raise enter_probability "
         "(at zones[0].exit_probability)"],
    ),
    (
        "a zone's own pair",
        f"zones:\n  - {{id: a, polygon: {SQUARE}, enter_probability: 0.4, exit_probability: 0.5}}"
        "\n",
        ["3:98: error: exit_probability 0.5 is above the enter probability 0.4: a device must "
         "leave a zone below the probability it enters it at; lower exit_probability or raise "
         "enter_probability (at zones[0].exit_probability)"],
    ),
    (
        "a zone's probability misspelt",
        f"zones:\n  - {{id: a, polygon: {SQUARE}, enter_probabilty: 0.7}}\n",
        ["3:56: error: unknown key 'enter_probabilty' (did you mean 'enter_probability'?) "
         "(at zones[0].enter_probabilty)"],
    ),
]  # fmt: skip


@pytest.mark.parametrize(("name", "text", "expected"), BAD, ids=[b[0] for b in BAD])
def test_bad_probabilities_are_located(
    tmp_path: Path, name: str, text: str, expected: list[str]
) -> None:
    assert problems(tmp_path, text) == expected


def _schema_errors(doc: Any) -> list[str]:
    validator = jsonschema.Draft7Validator(config_schema())
    return [e.message for e in validator.iter_errors(doc)]


def test_the_schema_knows_the_keys_and_their_bounds() -> None:
    store = {"store": {"id": "s1", "timezone": "UTC"}}
    zone = {"id": "a", "polygon": [[0, 0], [4, 0], [4, 4]], "enter_probability": 0.8}
    good = {**store, "locate": {"enter_probability": 0.7, "exit_probability": 0.2}}
    assert _schema_errors({**good, "zones": [{**zone, "exit_probability": 0.5}]}) == []
    assert _schema_errors({**store, "locate": {"exit_probability": 0}}) != []
    assert _schema_errors({**store, "zones": [{**zone, "enter_probability": 1.2}]}) != []


def _pipeline(config: Config) -> Pipeline:
    return Pipeline(config, load_rules(config.rules_dir, config), CustomerRegistry(()))


def test_the_pipeline_gives_the_tracker_locates_thresholds() -> None:
    example = load_config(ROOT / "config.example.yaml")
    strict = dataclasses.replace(
        example, locate=LocateConfig(enter_probability=0.9, exit_probability=0.5)
    )
    device = "ibeacon:8d8c1a2e-5b3f-4c1d-9e2a-0f6b7c8d9e10:1000:9"
    belief = (("aisle-tv", 0.8), ("aisle-audio", 0.1))
    entered = []
    for config in (example, strict):
        zones = _pipeline(config).zones
        events = []
        for k in range(20):
            events += zones.update(Fix(1000.0 + k, device, 15.0, 6.5, 2.0, ("n",), belief))
        entered.append([e.zone for e in events if e.kind is EventKind.ENTER])
    assert entered == [["aisle-tv"], []]  # 0.8 is above 0.6, below 0.9
