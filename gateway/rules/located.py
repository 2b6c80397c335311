"""The rule files' reader: typed values from located YAML, in the rules' own words.

Built on the shared layer (`gateway.config.yamlsrc` for nodes and diagnostics, `parse_duration` from
`gateway.config.yamlconv`).  `Reader` turns the nodes of one rule file into typed values,
collecting a
`Diagnostic` (file:line:col, key path, "did you mean") for each problem instead of raising, so
one pass reports every mistake of a file.  Its messages are the rules' own (`expected a text,
got a list`, `bad duration '1x' (write e.g. 30s, 5m, 2h, 90d)`, `duplicate operator 'is'`), so
`RULES_DIALECT` leaves duplicate keys and unbuildable scalars to it.  YAML 1.1 surprises (`14:00`
read as the integer 840, `no` as False) are avoided by reading the scalar's source text where a
string is expected.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import date, time
from pathlib import Path
from typing import Any, TypeVar

from gateway.config.yamlconv import parse_duration
from gateway.config.yamlsrc import (
    Diagnostics,
    Dialect,
    KeyValue,
    MapNode,
    Mark,
    Node,
    ScalarNode,
    SeqNode,
    did_you_mean,
    load_yaml,
    parse_yaml,
)
from gateway.errors import Diagnostic

T = TypeVar("T")
_CLOCK = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")
_PERCENT = re.compile(r"^(\d+(?:\.\d+)?)\s*%$")


RULES_DIALECT = Dialect(syntax="not valid YAML", duplicates=False, bad_values=False)


def tag(node: Node) -> str:
    """The short resolved tag of a node: `str`, `int`, `map`, `seq`, …"""
    if isinstance(node, MapNode):
        return "map"
    return "seq" if isinstance(node, SeqNode) else node.tag


def kind_name(node: Node) -> str:
    """A marketer-friendly name of what a node holds, for "expected X, got Y" messages."""
    names = {"map": "a mapping", "seq": "a list", "null": "nothing", "str": "a text"}
    kind = tag(node)
    return names.get(kind, f"{'an' if kind[:1] in tuple('aeiou') else 'a'} {kind}")


def all_entries(node: MapNode) -> list[KeyValue]:
    """Every entry in source order, a repeated key included (free-form mappings keep them)."""
    return sorted((*node.entries, *node.repeats), key=lambda e: (e.key_mark.line, e.key_mark.col))


def _shown(node: Node) -> str:
    return f"'{node.raw}'" if isinstance(node, ScalarNode) else kind_name(node)


class Reader:
    """Reads one YAML file into typed values, collecting located diagnostics."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.diags = Diagnostics(file)

    # -- reporting -------------------------------------------------------------------------
    @property
    def diagnostics(self) -> list[Diagnostic]:
        """Every problem so far, sorted by position."""
        return list(self.diags.items)

    def error(self, at: Node | Mark | None, path: str, message: str) -> None:
        """Record an error located at a node or mark (or at the top of the file)."""
        self.diags.add(_mark(at), message, path)

    def warn(self, at: Node | Mark | None, path: str, message: str) -> None:
        """Record a warning located at a node or mark."""
        self.diags.add(_mark(at), message, path, warn=True)

    # -- documents -------------------------------------------------------------------------
    def compose(self, path: Path) -> Node | None:
        """The node tree of the file, or None (with a diagnostic) when it is not valid YAML."""
        before = len(self.diags)
        return self._non_empty(load_yaml(path, self.diags, RULES_DIALECT), before)

    def compose_text(self, text: str) -> Node | None:
        """The node tree of `text`, or None (with a diagnostic) when it is not valid YAML."""
        before = len(self.diags)
        return self._non_empty(parse_yaml(text, self.diags, RULES_DIALECT), before)

    def _non_empty(self, root: Node | None, before: int) -> Node | None:
        if root is None and len(self.diags) == before:
            self.error(None, "", "the file is empty")
        return root

    # -- structure -------------------------------------------------------------------------
    def mapping(
        self,
        node: Node,
        path: str,
        allowed: Sequence[str],
        required: Sequence[str] = (),
        what: str = "key",
    ) -> dict[str, Node] | None:
        """The keys of a mapping node; unknown, duplicate and missing keys are errors.

        `what` names the keys in messages (`unknown operator 'x'`).
        """
        if not isinstance(node, MapNode):
            self.error(node, path, f"expected a mapping, got {kind_name(node)}")
            return None
        out: dict[str, Node] = {}
        for entry in (*node.entries, *node.repeats):
            self._key(entry, path, allowed, what, out)
        for key in required:
            if key not in out:
                self.error(node, path, f"missing required key '{key}'")
        return out

    def _key(
        self, entry: KeyValue, path: str, allowed: Sequence[str], what: str, out: dict[str, Node]
    ) -> None:
        sub = f"{path}.{entry.key}" if path else entry.key
        if entry.key in out:
            self.error(entry.key_mark, sub, f"duplicate {what} '{entry.key}'")
        elif entry.key not in allowed:
            hint = did_you_mean(entry.key, allowed) or f" (expected one of: {', '.join(allowed)})"
            self.error(entry.key_mark, sub, f"unknown {what} '{entry.key}'{hint}")
        else:
            out[entry.key] = entry.value

    def optional(
        self,
        keys: dict[str, Node] | None,
        key: str,
        path: str,
        read: Callable[[Node, str], T | None],
    ) -> T | None:
        """`read(keys[key], path.key)` when the key is present, else None."""
        if not keys or key not in keys:
            return None
        return read(keys[key], f"{path}.{key}" if path else key)

    def key_mark(self, mapping: Node, key: str) -> Mark:
        """Where the key `key` of a mapping node is written (for errors about the key itself)."""
        entry = mapping.get(key) if isinstance(mapping, MapNode) else None
        return entry.key_mark if entry is not None else mapping.mark

    def sequence(self, node: Node, path: str, one_ok: bool = False) -> list[Node] | None:
        """The items of a list node; with `one_ok` a single scalar counts as a list of one."""
        if isinstance(node, SeqNode):
            return list(node.items)
        if one_ok and isinstance(node, ScalarNode) and node.tag != "null":
            return [node]
        self.error(node, path, f"expected a list, got {kind_name(node)}")
        return None

    # -- scalars ---------------------------------------------------------------------------
    def string(self, node: Node, path: str, numbers_ok: bool = False) -> str | None:
        """A text scalar (with `numbers_ok`, also a number written without quotes)."""
        accepted = ("str", "int", "float") if numbers_ok else ("str",)
        if isinstance(node, ScalarNode) and node.tag in accepted:
            return node.raw
        self.error(node, path, f"expected a text, got {kind_name(node)}")
        return None

    def integer(self, node: Node, path: str, minimum: int | None = None) -> int | None:
        """An integer scalar, at least `minimum` when given."""
        value = node.value if isinstance(node, ScalarNode) and node.tag == "int" else None
        if not isinstance(value, int):
            self.error(node, path, f"expected a whole number, got {kind_name(node)}")
            return None
        if minimum is not None and value < minimum:
            self.error(node, path, f"must be at least {minimum}, got {value}")
            return None
        return value

    def duration(self, node: Node, path: str) -> float | None:
        """A duration such as `30s`, `5m`, `2h`, `90d` in seconds."""
        seconds = parse_duration(node.raw) if isinstance(node, ScalarNode) else None
        if seconds is None:
            self.error(node, path, f"bad duration {_shown(node)} (write e.g. 30s, 5m, 2h, 90d)")
        return seconds

    def clock(self, node: Node, path: str) -> time | None:
        """A local time of day `HH:MM` (quoted or not)."""
        match = _CLOCK.match(node.raw) if isinstance(node, ScalarNode) else None
        if match is None:
            self.error(node, path, f'bad time {_shown(node)} (write "HH:MM", e.g. "14:00")')
            return None
        return time(int(match[1]), int(match[2]))

    def day(self, node: Node, path: str) -> date | None:
        """A calendar date `YYYY-MM-DD`."""
        try:
            return date.fromisoformat(node.raw) if isinstance(node, ScalarNode) else None
        except ValueError:
            pass
        self.error(node, path, f"bad date {_shown(node)} (write YYYY-MM-DD, e.g. 2026-03-02)")
        return None

    def percent(self, node: Node, path: str) -> float | None:
        """A rate written `10%`, as a fraction in [0, 1]."""
        match = _PERCENT.match(node.raw) if isinstance(node, ScalarNode) else None
        if match is None or float(match[1]) > 100:
            msg = f"bad percentage {_shown(node)} (write e.g. 10%, between 0% and 100%)"
            self.error(node, path, msg)
            return None
        return float(match[1]) / 100.0

    def plain(self, node: Node, path: str) -> Any:
        """A scalar or a list of scalars as plain Python values (operands of conditions)."""
        if isinstance(node, SeqNode):
            return tuple(self.plain(item, f"{path}[{i}]") for i, item in enumerate(node.items))
        if not isinstance(node, ScalarNode):
            self.error(node, path, f"expected a value or a list of values, got {kind_name(node)}")
            return None
        return scalar_value(node)


def _mark(at: Node | Mark | None) -> Mark:
    if at is None:
        return Mark(1, 1)
    return at if isinstance(at, Mark) else at.mark


def scalar_value(node: ScalarNode) -> Any:
    """The Python value of a scalar: bool, int, float, None or text (dates stay text)."""
    text, kind = node.raw, node.tag
    if kind == "bool":
        return text.lower() in ("yes", "true", "on", "y")
    if kind == "null":
        return None
    if kind == "int" and ":" not in text:
        return node.value
    if kind == "float":
        try:
            return float(text.replace("_", ""))
        except ValueError:
            return text
    return text
