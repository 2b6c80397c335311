"""The rules' reader on the shared located-YAML layer: one duration syntax, the rules' wording."""

from __future__ import annotations

import pytest

from gateway.config.yamlconv import DURATION, parse_duration
from gateway.config.yamlsrc import Diagnostics, MapNode, parse_yaml
from gateway.rules.located import Reader, all_entries, kind_name


def read(text: str) -> tuple[Reader, MapNode]:
    reader = Reader("r.yaml")
    root = reader.compose_text(text)
    assert isinstance(root, MapNode), reader.diagnostics
    return reader, root


def messages(reader: Reader) -> list[str]:
    return [str(d) for d in reader.diagnostics]


@pytest.mark.parametrize("text", ["30s", "5m", "2h", "90d", "1h30m", "500ms", "2w", "1y", "1.5h"])
def test_rules_and_config_read_durations_alike(text: str) -> None:
    reader, root = read(f"d: {text}\n")
    config = Diagnostics("c.yaml")
    node = parse_yaml(f"d: {text}\n", config)
    assert isinstance(node, MapNode)
    from_config = DURATION(node.entries[0].value, "d", config)
    from_rules = reader.duration(root.entries[0].value, "d")
    assert from_rules == from_config == parse_duration(text)
    assert from_rules is not None and from_rules > 0


def test_a_bad_duration_keeps_the_rules_wording() -> None:
    reader, root = read("d: soon\n")
    assert reader.duration(root.entries[0].value, "d") is None
    assert messages(reader) == [
        "r.yaml:1:4: error: bad duration 'soon' (write e.g. 30s, 5m, 2h, 90d) (at d)"
    ]


def test_repeated_keys_are_left_to_the_reader_and_named_by_it() -> None:
    reader, root = read("is: a\nis: b\n")
    assert reader.diagnostics == []  # composing the rule file did not report it
    assert reader.mapping(root, "x", ("is",), what="operator") == {"is": root.entries[0].value}
    assert messages(reader) == ["r.yaml:2:1: error: duplicate operator 'is' (at x.is)"]
    assert [e.key for e in all_entries(root)] == ["is", "is"]


def test_syntax_errors_and_empty_files_keep_the_rules_wording() -> None:
    reader = Reader("r.yaml")
    assert reader.compose_text("a: {b: 1\n") is None
    assert reader.compose_text("") is None
    assert [d.message for d in reader.diagnostics] == [
        "the file is empty",
        "not valid YAML: the '{' opened here is never closed: add '}' at its end",
    ]


def test_values_yaml_cannot_build_are_read_from_their_text() -> None:
    reader, root = read("a: 2026-02-30\nb: 017\nc: !custom x\n")
    a, b, c = (e.value for e in root.entries)
    assert reader.diagnostics == []
    assert reader.day(a, "a") is None and "bad date '2026-02-30'" in messages(reader)[0]
    assert reader.integer(b, "b") == 15  # octal in YAML 1.1, no longer a crash
    assert kind_name(c) == "a !custom"
