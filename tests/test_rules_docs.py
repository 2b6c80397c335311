"""The marketer's guides cannot drift from the format: every ```yaml block of docs/rules.md and
docs/rules.fr.md that is a complete rule loads with the real loader against the reference store
(config.example.yaml), passes its inline tests and the editor schema; a `# rules/policy.yaml`
block loads as the policy; anything else must say `# fragment` on its first line (and still be
YAML)."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
import yaml

from gateway.config.load import load_config
from gateway.config.model import Config
from gateway.errors import Severity
from gateway.rules.schema.export import policy_schema, rules_schema
from gateway.rules.selftest import check_rules
from tests.test_rules_support import ROOT
from tests.test_ruleschema import problems, yaml12

GUIDES = ("docs/rules.md", "docs/rules.fr.md")
_BLOCK = re.compile(r"^```yaml\n(.*?)^```", re.S | re.M)
POLICY_MARK = "# rules/policy.yaml"


def blocks(guide: str) -> list[tuple[int, str]]:
    """(line, text) of every ```yaml block of a guide."""
    text = (ROOT / guide).read_text(encoding="utf-8")
    return [(text.count("\n", 0, m.start()) + 1, m[1]) for m in _BLOCK.finditer(text)]


def _is_rule(text: str) -> bool:
    return bool(re.search(r"^id:", text, re.M) and re.search(r"^when:", text, re.M))


CASES = [(g, line, text) for g in GUIDES for line, text in blocks(g)]


@pytest.fixture(scope="module")
def config() -> Config:
    return load_config(ROOT / "config.example.yaml")


def _check(config: Config, rules_dir: Path, files: dict[str, str]) -> list[str]:
    rules_dir.mkdir(exist_ok=True)
    for name, text in files.items():
        (rules_dir / name).write_text(text, encoding="utf-8")
    found = check_rules(dataclasses.replace(config, rules_dir=rules_dir))
    return [str(d) for d in found if d.severity is Severity.ERROR]


@pytest.mark.parametrize(("guide", "line", "text"), CASES, ids=[f"{g}:{n}" for g, n, _ in CASES])
def test_every_yaml_block_of_the_guides_is_right(
    tmp_path: Path, config: Config, guide: str, line: int, text: str
) -> None:
    first = text.splitlines()[0] if text else ""
    if _is_rule(text):
        assert _check(config, tmp_path / "rules", {"r.yaml": text}) == []
        assert problems(rules_schema(config), yaml12(text)) == []
    elif first.startswith(POLICY_MARK):
        assert _check(config, tmp_path / "rules", {"policy.yaml": text}) == []
        assert problems(policy_schema(), yaml12(text)) == []
    else:
        assert first.startswith("# fragment"), f"{guide}:{line}: not a rule: mark it # fragment"
        yaml.safe_load(text)


@pytest.mark.parametrize("guide", GUIDES)
def test_each_guide_shows_complete_rules_for_every_trigger_kind(guide: str) -> None:
    rules = [yaml12(t) for _, t in blocks(guide) if _is_rule(t)]
    assert len(rules) >= 3
    kinds = {k for r in rules for k in r["when"]}
    assert {"dwell", "absent", "enter"} <= kinds
    text = (ROOT / guide).read_text(encoding="utf-8")
    for trigger in ("enter", "exit", "dwell", "visit_start", "visit_end", "absent"):
        assert f"{trigger}:" in text, trigger


def test_a_broken_block_would_be_caught(tmp_path: Path, config: Config) -> None:
    _, text = next(b for b in blocks(GUIDES[0]) if _is_rule(b[1]))
    broken = text.replace("zone: aisle-tv", "zone: aisle-tvs", 1)
    assert broken != text
    assert any("aisle-tvs" in e for e in _check(config, tmp_path / "rules", {"r.yaml": broken}))
