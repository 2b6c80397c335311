"""Typed reading of located YAML: `MapReader` and the converters (`Conv[T]`).

A converter is a function `(node, path, diags) -> T | None`: it returns the typed value, or
records a Diagnostic at the node (see `gateway.config.yamlsrc`) and returns None.  The ones here
cover
strings, ids, paths, booleans, ints, floats, durations, enums and lists; callers write their own
for domain values.  `parse_duration` is the one reading of durations, for config and rules alike.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Collection, Iterator
from enum import Enum
from pathlib import Path
from typing import TypeVar

from gateway.config.yamlsrc import (
    Diagnostics,
    KeyValue,
    MapNode,
    Mark,
    Node,
    ScalarNode,
    SeqNode,
    child,
    describe,
    did_you_mean,
    index,
    is_null,
)

T = TypeVar("T")
E = TypeVar("E", bound=Enum)
Conv = Callable[[Node, str, Diagnostics], T | None]

# ---------------------------------------------------------------------------------- mappings


class MapReader:
    """Reads the entries of one mapping, after checking its keys.

    Unknown keys are reported with a "did you mean"; missing required keys at the mapping.
    """

    def __init__(
        self,
        node: MapNode,
        path: str,
        diags: Diagnostics,
        allowed: Collection[str],
        required: Collection[str] = (),
    ) -> None:
        self.node = node
        self.path = path
        self.diags = diags
        for entry in node.entries:
            if entry.key not in allowed:
                self._unknown(entry, allowed)
        present = set(node.keys())
        for key in [k for k in required if k not in present]:
            diags.add(node.mark, f"missing required key '{key}'", child(path, key))

    @classmethod
    def of(
        cls,
        node: Node | None,
        path: str,
        diags: Diagnostics,
        allowed: Collection[str],
        required: Collection[str] = (),
    ) -> MapReader | None:
        """A reader if `node` is a mapping; else record "expected a mapping" and return None."""
        if node is None:
            return None
        if not isinstance(node, MapNode):
            diags.at(node, f"expected a mapping of {_keys(allowed)}, got {describe(node)}", path)
            return None
        return cls(node, path, diags, allowed, required)

    def _unknown(self, entry: KeyValue, allowed: Collection[str]) -> None:
        hint = did_you_mean(entry.key, allowed)
        fix = "" if hint else f"; allowed keys: {', '.join(allowed)}"
        self.diags.add(
            entry.key_mark, f"unknown key '{entry.key}'{hint}{fix}", child(self.path, entry.key)
        )

    def has(self, key: str) -> bool:
        """True if `key` is present (even with a null value)."""
        return self.node.get(key) is not None

    def value(self, key: str) -> Node | None:
        """The node under `key`, or None if the key is absent."""
        entry = self.node.get(key)
        return entry.value if entry is not None else None

    def key_mark(self, key: str) -> Mark:
        """Where `key` is written, or the mapping's start if absent."""
        entry = self.node.get(key)
        return entry.key_mark if entry is not None else self.node.mark

    def at(self, key: str) -> str:
        """The key path of `key` in this mapping."""
        return child(self.path, key)

    def opt(self, key: str, conv: Conv[T], default: T) -> T:
        """The converted value, or `default` if absent, null, or invalid (the error is kept)."""
        node = self.value(key)
        if node is None or is_null(node):
            return default
        result = conv(node, self.at(key), self.diags)
        return default if result is None else result

    def maybe(self, key: str, conv: Conv[T]) -> T | None:
        """The converted value, or None if absent, null or invalid."""
        node = self.value(key)
        if node is None or is_null(node):
            return None
        return conv(node, self.at(key), self.diags)

    def req(self, key: str, conv: Conv[T]) -> T | None:
        """The converted value; a null value is an error (absence is already reported)."""
        node = self.value(key)
        if node is None:
            return None
        if is_null(node):
            self.diags.at(node, f"'{key}' needs a value", self.at(key))
            return None
        return conv(node, self.at(key), self.diags)


def _keys(allowed: Collection[str]) -> str:
    shown = list(allowed)[:6]
    return "{" + ", ".join(shown) + (", …}" if len(allowed) > len(shown) else "}")


def iter_items(node: Node | None, path: str, diags: Diagnostics) -> Iterator[tuple[Node, str]]:
    """The items of a list with their key paths; a non-list is reported (null is empty)."""
    if node is None or is_null(node):
        return
    if not isinstance(node, SeqNode):
        diags.at(node, f"expected a list, got {describe(node)}", path)
        return
    for i, item in enumerate(node.items):
        yield item, index(path, i)


# ---------------------------------------------------------------------------------- scalars


def _scalar(node: Node, path: str, diags: Diagnostics, what: str) -> ScalarNode | None:
    if isinstance(node, ScalarNode):
        return node
    diags.at(node, f"expected {what}, got {describe(node)}", path)
    return None


def STR(node: Node, path: str, diags: Diagnostics) -> str | None:
    """A non-empty string: any scalar's source text (so `yes` and `2026` stay as written)."""
    s = _scalar(node, path, diags, "a string")
    if s is None:
        return None
    if is_null(s) or not s.raw.strip():
        diags.at(s, "expected a non-empty string", path)
        return None
    return s.raw


_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def ID(node: Node, path: str, diags: Diagnostics) -> str | None:
    """An id safe in MQTT topics and file names: letters, digits, `-`, `_`, `.`; up to 64."""
    text = STR(node, path, diags)
    if text is not None and not _ID.match(text):
        msg = f"invalid id '{text}': use up to 64 letters, digits, '-', '_' or '.'"
        diags.at(node, msg, path)
        return None
    return text


def path_under(base: Path) -> Conv[Path]:
    """A converter to a path; a relative one is taken relative to `base` (the file's folder)."""

    def conv(node: Node, path: str, diags: Diagnostics) -> Path | None:
        text = STR(node, path, diags)
        return None if text is None else base / Path(text)

    return conv


def BOOL(node: Node, path: str, diags: Diagnostics) -> bool | None:
    """`true` or `false` (YAML 1.1 `yes`/`no`/`on`/`off` too)."""
    s = _scalar(node, path, diags, "true or false")
    if s is None:
        return None
    if isinstance(s.value, bool) and not s.quoted:
        return s.value
    diags.at(s, f"expected true or false, got {describe(s)}", path)
    return None


def int_in(lo: int | None = None, hi: int | None = None) -> Conv[int]:
    """A converter to a whole number within [lo, hi]."""

    def conv(node: Node, path: str, diags: Diagnostics) -> int | None:
        s = _scalar(node, path, diags, "a whole number")
        if s is None:
            return None
        if s.quoted or isinstance(s.value, bool) or not isinstance(s.value, int):
            diags.at(s, f"expected a whole number, got {describe(s)}", path)
            return None
        return _bounded(s.value, lo, hi, s, path, diags)

    return conv


def float_in(lo: float | None = None, hi: float | None = None) -> Conv[float]:
    """A converter to a finite number within [lo, hi]."""

    def conv(node: Node, path: str, diags: Diagnostics) -> float | None:
        s = _scalar(node, path, diags, "a number")
        if s is None:
            return None
        if not is_number(s):
            diags.at(s, f"expected a number, got {describe(s)}", path)
            return None
        return _bounded(float(s.value), lo, hi, s, path, diags)  # type: ignore[arg-type]

    return conv


N = TypeVar("N", int, float)


def is_number(s: ScalarNode) -> bool:
    """True for an unquoted finite int or float (booleans are not numbers here)."""
    v = s.value
    if s.quoted or isinstance(v, bool) or not isinstance(v, int | float):
        return False
    return math.isfinite(v)


def _bounded(v: N, lo: N | None, hi: N | None, s: Node, path: str, diags: Diagnostics) -> N | None:
    if (lo is not None and v < lo) or (hi is not None and v > hi):
        rng = f"between {lo} and {hi}" if lo is not None and hi is not None else ""
        rng = rng or (f"at least {lo}" if lo is not None else f"at most {hi}")
        diags.at(s, f"{v} is out of range: must be {rng}", path)
        return None
    return v


INT = int_in()
FLOAT = float_in()


def PROBABILITY(node: Node, path: str, diags: Diagnostics) -> float | None:
    """A probability above 0 and at most 1 (a threshold on a belief)."""
    p = FLOAT(node, path, diags)
    if p is not None and not 0.0 < p <= 1.0:
        diags.at(node, f"{p} is out of range: must be above 0 and at most 1", path)
        return None
    return p


# ---------------------------------------------------------------------------------- durations

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_UNITS["y"] = 365 * 86400.0
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w|y)")
_DURATION = re.compile(r"^(?:\d+(?:\.\d+)?(?:ms|s|m|h|d|w|y))+$")
_DURATION_HELP = "a duration such as 30s, 5m, 2h, 90d or 1h30m (a bare number is seconds)"


def parse_duration(text: str) -> float | None:
    """Seconds in `30s`, `5m`, `2h`, `90d`, `1h30m`, `500ms`, `2w`, `3y`, or a bare number."""
    t = text.strip().replace(" ", "")
    try:
        value = float(t)
    except ValueError:
        if not _DURATION.match(t):
            return None
        return sum(float(n) * _UNITS[u] for n, u in _PART.findall(t))
    return value if math.isfinite(value) and value >= 0 else None


def duration_in(lo: float = 0.0, hi: float | None = None) -> Conv[float]:
    """A converter to float seconds within [lo, hi]."""

    def conv(node: Node, path: str, diags: Diagnostics) -> float | None:
        s = _scalar(node, path, diags, _DURATION_HELP)
        if s is None:
            return None
        if is_number(s):
            seconds: float | None = float(s.value)  # type: ignore[arg-type]
        else:
            seconds = None if is_null(s) else parse_duration(s.raw)
        if seconds is None:
            diags.at(s, f"expected {_DURATION_HELP}, got {describe(s)}", path)
            return None
        return _bounded(seconds, lo, hi, s, path, diags)

    return conv


DURATION = duration_in()

# ---------------------------------------------------------------------------------- compound


def enum_of(kind: type[E]) -> Conv[E]:
    """A converter to a member of `kind` by its value, with "did you mean"."""
    names = [str(m.value) for m in kind]

    def conv(node: Node, path: str, diags: Diagnostics) -> E | None:
        text = STR(node, path, diags)
        if text is None:
            return None
        for member in kind:
            if str(member.value) == text:
                return member
        hint = did_you_mean(text, names) or f"; expected one of {', '.join(names)}"
        diags.at(node, f"unknown value '{text}'{hint}", path)
        return None

    return conv


def list_of(conv: Conv[T], min_len: int = 0) -> Conv[list[T]]:
    """A converter to a list whose items all convert; None if the list or any item is bad."""

    def conv_list(node: Node, path: str, diags: Diagnostics) -> list[T] | None:
        if not isinstance(node, SeqNode):
            diags.at(node, f"expected a list, got {describe(node)}", path)
            return None
        if len(node.items) < min_len:
            diags.at(node, f"expected at least {min_len} items, got {len(node.items)}", path)
            return None
        out = [conv(item, index(path, i), diags) for i, item in enumerate(node.items)]
        return [v for v in out if v is not None] if all(v is not None for v in out) else None

    return conv_list
