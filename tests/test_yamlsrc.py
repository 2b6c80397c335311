"""The located YAML layer: positions, scalars, durations, converters, hostile documents."""

from __future__ import annotations

import enum

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.config.yamlconv import (
    BOOL,
    DURATION,
    STR,
    MapReader,
    enum_of,
    int_in,
    iter_items,
    list_of,
    parse_duration,
)
from gateway.config.yamlsrc import (
    Diagnostics,
    MapNode,
    ScalarNode,
    SeqNode,
    parse_yaml,
)
from gateway.errors import ConfigError


def parse(text: str) -> tuple[MapNode, Diagnostics]:
    diags = Diagnostics("f.yaml")
    node = parse_yaml(text, diags)
    assert isinstance(node, MapNode), diags.items
    return node, diags


def messages(diags: Diagnostics) -> list[str]:
    return [str(d) for d in diags.items]


def test_positions_are_one_based_for_keys_and_values() -> None:
    root, _ = parse("top:\n  list:\n    - {a: 1}\n    - b: two\n")
    top = root.get("top")
    assert top is not None and (top.key_mark.line, top.key_mark.col) == (1, 1)
    assert isinstance(top.value, MapNode)
    lst = top.value.get("list")
    assert lst is not None and (lst.key_mark.line, lst.key_mark.col) == (2, 3)
    assert isinstance(lst.value, SeqNode)
    first, second = lst.value.items
    assert (first.mark.line, first.mark.col) == (3, 7)  # the `{`
    assert isinstance(second, MapNode)
    b = second.get("b")
    assert b is not None and (b.key_mark.line, b.key_mark.col, b.value.mark.col) == (4, 7, 10)


def test_scalars_keep_value_and_source_text() -> None:
    root, _ = parse("a: yes\nb: '3'\nc: 1:30\nd: 2026-03-02\n")
    values = {e.key: e.value for e in root.entries}
    assert all(isinstance(v, ScalarNode) for v in values.values())
    a, b, c, d = (values[k] for k in "abcd")
    assert isinstance(a, ScalarNode) and (a.value, a.raw) == (True, "yes")
    assert isinstance(b, ScalarNode) and (b.value, b.quoted) == ("3", True)
    assert isinstance(c, ScalarNode) and c.raw == "1:30"  # YAML 1.1 reads 90; raw keeps it
    assert isinstance(d, ScalarNode) and d.raw == "2026-03-02"


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("5m", 300), ("2h", 7200), ("90d", 7776000), ("1h30m", 5400), ("45", 45),
     ("1.5s", 1.5), ("500ms", 0.5), ("2w", 1209600), ("3y", 94608000), (" 2m 30s ", 150)],
)  # fmt: skip
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "s", "5 minutes", "-3s", "3x", "1h-30m", "nan", "inf", "m5"])
def test_bad_durations(text: str) -> None:
    assert parse_duration(text) is None


@given(h=st.integers(0, 500), m=st.integers(0, 59), s=st.integers(0, 59))
def test_compound_durations_add_up(h: int, m: int, s: int) -> None:
    assert parse_duration(f"{h}h{m}m{s}s") == h * 3600 + m * 60 + s


class Colour(enum.StrEnum):
    RED = "red"
    GREEN = "green"


def test_reader_collects_every_problem_at_once() -> None:
    root, diags = parse("name: ok\ncount: 0\nflag: maybe\ncolour: gren\nwait: soon\nextra: 1\n")
    r = MapReader(root, "cfg", diags, ["name", "count", "flag", "colour", "wait", "size"], ["size"])
    assert r.opt("name", STR, "") == "ok"
    assert r.opt("count", int_in(1, 9), 5) == 5
    assert r.maybe("flag", BOOL) is None
    assert r.maybe("colour", enum_of(Colour)) is None
    assert r.opt("wait", DURATION, 1.0) == 1.0
    assert messages(diags) == [
        "f.yaml:1:1: error: missing required key 'size' (at cfg.size)",
        "f.yaml:2:8: error: 0 is out of range: must be between 1 and 9 (at cfg.count)",
        "f.yaml:3:7: error: expected true or false, got 'maybe' (at cfg.flag)",
        "f.yaml:4:9: error: unknown value 'gren' (did you mean 'green'?) (at cfg.colour)",
        "f.yaml:5:7: error: expected a duration such as 30s, 5m, 2h, 90d or 1h30m (a bare number"
        " is seconds), got 'soon' (at cfg.wait)",
        "f.yaml:6:1: error: unknown key 'extra'; allowed keys: name, count, flag, colour, wait, "
        "size (at cfg.extra)",
    ]
    with pytest.raises(ConfigError) as info:
        diags.raise_if_errors()
    assert len(info.value.diagnostics) == 6


def test_lists_and_items() -> None:
    root, diags = parse("xs: [1, 2, x]\nys: 3\n")
    assert MapReader(root, "", diags, ["xs", "ys"]).maybe("xs", list_of(int_in())) is None
    ys = root.get("ys")
    assert ys is not None and list(iter_items(ys.value, "ys", diags)) == []
    assert messages(diags) == [
        "f.yaml:1:12: error: expected a whole number, got 'x' (at xs[2])",
        "f.yaml:2:5: error: expected a list, got the number 3 (at ys)",
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a: 1\nb:\n  c: 2\n  c: 3\n", "f.yaml:4:3: error: duplicate key 'c' (first given on "
         "line 3): keep one (at b.c)"),
        ("a: &x [1, *x]\n", "f.yaml:1:4: error: recursive or too often repeated alias: write the "
         "value out (at a[1])"),
        ("a: !!int ''\n", "f.yaml:1:4: error: cannot read '' as tag:yaml.org,2002:int: "
         "IndexError('string index out of range') (at a)"),
        ("a: !custom x\n", "f.yaml:1:4: error: cannot read 'x': could not determine a constructor "
         "for the tag '!custom'; remove the tag or quote the value (at a)"),
        ("a: b\n? [1, 2]\n: c\n", "f.yaml:2:3: error: a key must be a plain name, not a list or "
         "mapping"),
        ("a: 1\nb: \x07\n", "f.yaml:2:4: error: invalid character: special characters are not "
         "allowed"),
    ],
)  # fmt: skip
def test_hostile_documents_become_diagnostics(text: str, expected: str) -> None:
    diags = Diagnostics("f.yaml")
    parse_yaml(text, diags)
    assert messages(diags) == [expected]


def test_alias_bomb_is_cut_short() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    diags = Diagnostics("bomb.yaml")
    parse_yaml("\n".join(lines) + "\n", diags)
    assert diags.errors and "alias" in diags.errors[0].message
