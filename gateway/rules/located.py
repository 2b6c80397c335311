"""A small located-YAML reader for rule files: every value keeps its 1-based line and column.

`Reader` wraps PyYAML's composed node tree and turns nodes into typed values, collecting a
`Diagnostic` (file:line:col, key path, "did you mean") for each problem instead of raising, so
one pass reports every mistake of a file.  It does not build Python objects for a whole
document: YAML 1.1 surprises (`14:00` read as the integer 840, `no` as False) are avoided by
reading the scalar's source text where a string is expected.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable, Sequence
from datetime import date, time
from pathlib import Path
from typing import Any, TypeVar

import yaml

from gateway.errors import Diagnostic, Severity

T = TypeVar("T")
_TAG = "tag:yaml.org,2002:"
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_CLOCK = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")
_PERCENT = re.compile(r"^(\d+(?:\.\d+)?)\s*%$")


def did_you_mean(name: str, options: Iterable[str]) -> str:
    """` (did you mean 'x'?)` when a near name exists among `options`, else ``."""
    near = difflib.get_close_matches(name, list(options), n=1, cutoff=0.6)
    return f" (did you mean '{near[0]}'?)" if near else ""


def parse_duration(text: str) -> float | None:
    """Seconds of `30s`, `5m`, `2h`, `90d`, `1h30m`; None when `text` is not a duration."""
    text = text.strip()
    if not text or _DURATION.sub("", text) != "":
        return None
    return sum(float(n) * _UNIT_S[u] for n, u in _DURATION.findall(text))


def tag(node: yaml.Node) -> str:
    """The short resolved tag of a node: `str`, `int`, `map`, `seq`, …"""
    return str(node.tag).removeprefix(_TAG)


def kind_name(node: yaml.Node) -> str:
    """A marketer-friendly name of what a node holds, for "expected X, got Y" messages."""
    names = {"map": "a mapping", "seq": "a list", "null": "nothing", "str": "a text"}
    return names.get(tag(node), f"{'an' if tag(node)[0] in 'aeiou' else 'a'} {tag(node)}")


class Reader:
    """Reads one YAML file into typed values, collecting located diagnostics."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.diagnostics: list[Diagnostic] = []

    # -- reporting -------------------------------------------------------------------------
    def error(self, node: yaml.Node | None, path: str, message: str) -> None:
        """Record an error located at `node` (or at the top of the file)."""
        self._add(node, path, message, Severity.ERROR)

    def warn(self, node: yaml.Node | None, path: str, message: str) -> None:
        """Record a warning located at `node`."""
        self._add(node, path, message, Severity.WARNING)

    def _add(self, node: yaml.Node | None, path: str, message: str, severity: Severity) -> None:
        line, col = (node.start_mark.line + 1, node.start_mark.column + 1) if node else (1, 1)
        self.diagnostics.append(Diagnostic(self.file, line, col, message, path, severity))

    @property
    def ok(self) -> bool:
        """No error recorded so far."""
        return not any(d.severity is Severity.ERROR for d in self.diagnostics)

    # -- documents -------------------------------------------------------------------------
    def compose(self, path: Path) -> yaml.Node | None:
        """The node tree of the file, or None (with a diagnostic) when it is not valid YAML."""
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            self.error(None, "", f"cannot read the file: {exc}")
            return None
        return self.compose_text(text)

    def compose_text(self, text: str) -> yaml.Node | None:
        """The node tree of `text`, or None (with a diagnostic) when it is not valid YAML."""
        try:
            node = yaml.compose(text, Loader=yaml.SafeLoader)
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
            msg = f"not valid YAML: {exc.problem or exc.context}"
            self.diagnostics.append(Diagnostic(self.file, line, col, msg))
            return None
        except yaml.YAMLError as exc:
            self.error(None, "", f"not valid YAML: {exc}")
            return None
        if node is None:
            self.error(None, "", "the file is empty")
        return node

    # -- structure -------------------------------------------------------------------------
    def mapping(
        self,
        node: yaml.Node,
        path: str,
        allowed: Sequence[str],
        required: Sequence[str] = (),
        what: str = "key",
    ) -> dict[str, yaml.Node] | None:
        """The keys of a mapping node; unknown, duplicate and missing keys are errors.

        `what` names the keys in messages (`unknown operator 'x'`).
        """
        if not isinstance(node, yaml.MappingNode):
            self.error(node, path, f"expected a mapping, got {kind_name(node)}")
            return None
        out: dict[str, yaml.Node] = {}
        for key_node, value in node.value:
            key = str(key_node.value)
            sub = f"{path}.{key}" if path else key
            if key in out:
                self.error(key_node, sub, f"duplicate {what} '{key}'")
            elif key not in allowed:
                hint = did_you_mean(key, allowed) or f" (expected one of: {', '.join(allowed)})"
                self.error(key_node, sub, f"unknown {what} '{key}'{hint}")
            else:
                out[key] = value
        for key in required:
            if key not in out:
                self.error(node, path, f"missing required key '{key}'")
        return out

    def optional(
        self,
        keys: dict[str, yaml.Node] | None,
        key: str,
        path: str,
        read: Callable[[yaml.Node, str], T | None],
    ) -> T | None:
        """`read(keys[key], path.key)` when the key is present, else None."""
        if not keys or key not in keys:
            return None
        return read(keys[key], f"{path}.{key}" if path else key)

    def key_node(self, mapping: yaml.Node, key: str) -> yaml.Node:
        """The node of the key `key` in a mapping node (for errors about the key itself)."""
        for key_node, _ in mapping.value:
            if key_node.value == key:
                return key_node  # type: ignore[no-any-return]
        return mapping

    def sequence(self, node: yaml.Node, path: str, one_ok: bool = False) -> list[yaml.Node] | None:
        """The items of a list node; with `one_ok` a single scalar counts as a list of one."""
        if isinstance(node, yaml.SequenceNode):
            return list(node.value)
        if one_ok and isinstance(node, yaml.ScalarNode) and tag(node) != "null":
            return [node]
        self.error(node, path, f"expected a list, got {kind_name(node)}")
        return None

    # -- scalars ---------------------------------------------------------------------------
    def string(self, node: yaml.Node, path: str, numbers_ok: bool = False) -> str | None:
        """A text scalar (with `numbers_ok`, also a number written without quotes)."""
        accepted = ("str", "int", "float") if numbers_ok else ("str",)
        if isinstance(node, yaml.ScalarNode) and tag(node) in accepted:
            return str(node.value)
        self.error(node, path, f"expected a text, got {kind_name(node)}")
        return None

    def integer(self, node: yaml.Node, path: str, minimum: int | None = None) -> int | None:
        """An integer scalar, at least `minimum` when given."""
        if not (isinstance(node, yaml.ScalarNode) and tag(node) == "int"):
            self.error(node, path, f"expected a whole number, got {kind_name(node)}")
            return None
        value = int(str(node.value).replace("_", ""), 0)
        if minimum is not None and value < minimum:
            self.error(node, path, f"must be at least {minimum}, got {value}")
            return None
        return value

    def duration(self, node: yaml.Node, path: str) -> float | None:
        """A duration such as `30s`, `5m`, `2h`, `90d` in seconds."""
        seconds = parse_duration(str(node.value)) if isinstance(node, yaml.ScalarNode) else None
        if seconds is None:
            shown = f"'{node.value}'" if isinstance(node, yaml.ScalarNode) else kind_name(node)
            self.error(node, path, f"bad duration {shown} (write e.g. 30s, 5m, 2h, 90d)")
        return seconds

    def clock(self, node: yaml.Node, path: str) -> time | None:
        """A local time of day `HH:MM` (quoted or not)."""
        text = str(node.value) if isinstance(node, yaml.ScalarNode) else ""
        match = _CLOCK.match(text)
        if match is None:
            shown = f"'{text}'" if isinstance(node, yaml.ScalarNode) else kind_name(node)
            self.error(node, path, f'bad time {shown} (write "HH:MM", e.g. "14:00")')
            return None
        return time(int(match[1]), int(match[2]))

    def day(self, node: yaml.Node, path: str) -> date | None:
        """A calendar date `YYYY-MM-DD`."""
        try:
            return (
                date.fromisoformat(str(node.value)) if isinstance(node, yaml.ScalarNode) else None
            )
        except ValueError:
            pass
        shown = f"'{node.value}'" if isinstance(node, yaml.ScalarNode) else kind_name(node)
        self.error(node, path, f"bad date {shown} (write YYYY-MM-DD, e.g. 2026-03-02)")
        return None

    def percent(self, node: yaml.Node, path: str) -> float | None:
        """A rate written `10%`, as a fraction in [0, 1]."""
        match = _PERCENT.match(str(node.value)) if isinstance(node, yaml.ScalarNode) else None
        if match is None or float(match[1]) > 100:
            shown = f"'{node.value}'" if isinstance(node, yaml.ScalarNode) else kind_name(node)
            self.error(node, path, f"bad percentage {shown} (write e.g. 10%, between 0% and 100%)")
            return None
        return float(match[1]) / 100.0

    def plain(self, node: yaml.Node, path: str) -> Any:
        """A scalar or a list of scalars as plain Python values (operands of conditions)."""
        if isinstance(node, yaml.SequenceNode):
            items = [self.plain(item, f"{path}[{i}]") for i, item in enumerate(node.value)]
            return tuple(items)
        if not isinstance(node, yaml.ScalarNode):
            self.error(node, path, f"expected a value or a list of values, got {kind_name(node)}")
            return None
        return scalar_value(node)


def scalar_value(node: yaml.ScalarNode) -> Any:
    """The Python value of a scalar: bool, int, float, None or text (dates stay text)."""
    text, kind = str(node.value), tag(node)
    if kind == "bool":
        return text.lower() in ("yes", "true", "on", "y")
    if kind == "null":
        return None
    if kind == "int" and ":" not in text:
        return int(text.replace("_", ""), 0)
    if kind == "float":
        try:
            return float(text.replace("_", ""))
        except ValueError:
            return text
    return text
