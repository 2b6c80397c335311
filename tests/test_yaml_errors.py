"""YAML syntax errors in a marketer's words, at the line of the mistake (config and rules).

PyYAML notices a missing colon on the next line and an unclosed quote at the end of the
file, in its own jargon; each case here says where the mistake really is and how to fix it.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.config.load import parse_config
from gateway.config.yamlsrc import Diagnostics, parse_yaml
from gateway.errors import ConfigError
from gateway.rules.load import load_rules
from tests.test_rules_support import store_config

# (case, text, "line:col: message") — the message after "invalid YAML: "
CASES = [
    (
        "tab in the indentation",
        "id: r\nwhen:\n\tenter: aisle-tv\n",
        "3:1: a tab character: YAML is indented with spaces only; replace the tab by spaces",
    ),
    (
        "a key indented more than the one above",
        "id: r\nwhen:\n  enter: aisle-tv\n   exit: b\n",
        "4:4: 'exit' is indented more than 'enter' above, which already has a value: "
        "align 'exit' with 'enter' (2 spaces)",
    ),
    (
        "a key indented to no level",
        "id: r\nthen:\n  offer:\n    title: T\n   body: B\nlimits: x\n",
        "5:4: 'body' is indented 3 spaces, which matches no line above: use 4 spaces like "
        "'title' on line 4 or 2 spaces like 'offer' on line 3",
    ),
    (
        "a key indented under a key that has its value",
        'database: {url: "sqlite:///a.db"}\n  url: "sqlite:///b.db"\n',
        "2:3: 'url' is indented more than 'database' above, which already has a value: "
        "align 'url' with 'database' (0 spaces)",
    ),
    (
        "a list item indented to no level",
        "if:\n  - a: 1\n - b: 2\n",
        "3:2: '- b' is indented 1 space, which matches no line above: use 2 spaces like '- a' "
        "on line 2 or 0 spaces like 'if' on line 1",
    ),
    (
        "an unclosed double quote",
        'id: r\nname: "TV -15 %\npurpose: commercial\nwhen: x\n',
        '2:7: the quote " opened here is never closed: end the text with "',
    ),
    (
        "an unclosed single quote",
        "id: r\nname: 'TV -15 %\npurpose: commercial\n",
        "2:7: the quote ' opened here is never closed: end the text with '",
    ),
    (
        "a missing colon, noticed on the next line",
        "id: r\nname R\npurpose: commercial\n",
        "2:5: missing ':' after 'name' (write name: R)",
    ),
    (
        "a missing colon inside a block",
        "id: r\nthen:\n  offer:\n    title T\n    body: B\n",
        "4:10: missing ':' after 'title' (write title: T)",
    ),
    (
        "no space after the colon",
        "id: r\nname:R\npurpose: commercial\n",
        "2:6: put a space after ':' (write name: R)",
    ),
    (
        "a colon inside an unquoted value",
        "id: r\ntitle: Offre: -15 %\n",
        "2:13: the value of 'title' holds ': ': put the whole value in quotes "
        '(write title: "Offre: -15 %")',
    ),
    (
        "an unclosed brace",
        "id: r\nwhen: {enter: aisle-tv\nthen: x\n",
        "2:7: the '{' opened here is never closed: add '}' at its end",
    ),
    (
        "an item missing its comma or quote",
        'if:\n  - time: {between: ["14:00, "19:00"]}\n',
        "2:31: a comma, a quote or the closing ']' is missing before this point "
        "(the '[' opens at column 21)",
    ),
    (
        "a value starting with a YAML sign",
        "id: r\ntitle: @home\n",
        "2:8: a value cannot start with '@' here: put the whole value in quotes",
    ),
    (
        "a value starting with a tag sign",
        "id: r\ntitle: !Nouveau! -20 %\n",
        "2:8: a value cannot start with '!' here: put the whole value in quotes",
    ),
    (
        "a value starting with a percent sign",
        "id: r\nbody: % de remise\n",
        "2:7: a value cannot start with '%' here: put the whole value in quotes",
    ),
    (
        "a value starting with a block sign",
        "id: r\ntitle: > 50 € offerts\n",
        "2:8: a value cannot start with '>' here: put the whole value in quotes",
    ),
    (
        "a list item after a key on the same line",
        "id: r\ntitle: - 20 %\n",
        "2:8: a '- ' cannot follow a key on the same line: start the list on the next line, "
        "indented, or put the whole value in quotes",
    ),
]
JARGON = ("token", "scalar", "<block", "<stream", "simple key", "mapping values", "flow")


def diagnose(text: str) -> list[str]:
    diags = Diagnostics("f.yaml")
    assert parse_yaml(text, diags) is None
    return [str(d) for d in diags.items]


@pytest.mark.parametrize(("case", "text", "expected"), CASES, ids=[c[0] for c in CASES])
def test_each_mistake_is_reported_where_it_is_with_its_fix(
    case: str, text: str, expected: str
) -> None:
    where, message = expected.split(": ", 1)
    assert diagnose(text) == [f"f.yaml:{where}: error: invalid YAML: {message}"]


def test_the_config_reports_the_line_of_the_missing_colon(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("store:\n  id s1\n  timezone: UTC\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        parse_config(path)
    assert [str(d) for d in info.value.diagnostics] == [
        f"{path}:2:5: error: invalid YAML: missing ':' after 'id' (write id: s1)"
    ]


def test_a_rule_file_keeps_its_wording(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "rules").mkdir()
    text = "id: r\nname: R\npurpose: commercial\nwhen:\n\tenter: aisle-tv\n"
    (tmp_path / "rules" / "r.yaml").write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_rules(tmp_path / "rules", store_config(tmp_path / "rules"))
    assert [str(d) for d in info.value.diagnostics] == [
        "rules/r.yaml:5:1: error: not valid YAML: a tab character: YAML is indented with spaces "
        "only; replace the tab by spaces"
    ]


_PIECES = ["id: r\n", "  ", "\t", ": ", ":", "'", '"', "{", "}", "[", "]", ", ", "- ", "\n", "a"]
_PIECES += ["@", "*", "&", "#", "|", ">", "title", " x", "%", "!"]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(_PIECES), max_size=30))
def test_any_broken_text_gets_a_plain_message_inside_the_text(pieces: list[str]) -> None:
    text = "".join(pieces)
    diags = Diagnostics("f.yaml")
    parse_yaml(text, diags)
    lines = max(1, len(text.splitlines()) + 1)
    for d in diags.items:
        if "invalid YAML" in d.message:
            assert not any(word in d.message for word in JARGON), d.message
            assert 1 <= d.line <= lines, (d, text)
