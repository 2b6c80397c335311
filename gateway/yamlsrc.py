"""YAML with positions: located nodes, validators and a collector of every problem.

Shared by the config loader and the rules loader.  The flow is always the same:

    diags = Diagnostics("config.yaml")
    root = load_yaml(path, diags)                    # None if unreadable / syntax error / empty
    store = MapReader.of(root, "", diags, allowed={"id", "name"}, required={"id"})
    if store is not None:
        name = store.opt("name", STR, "")            # missing or invalid -> default (error kept)
        port = store.req("port", int_in(1, 65535))   # missing -> error; invalid -> None
    diags.raise_if_errors()                          # ConfigError with EVERY problem found

Positions are 1-based lines and columns (PyYAML marks are 0-based; they are converted once, in
`_mark`).  Key paths read like `zones[3].enter_after`: list indices are 0-based.

A converter (`Conv[T]`) is a function `(node, path, diags) -> T | None`: it returns the typed
value, or records a Diagnostic at the node and returns None.  The ones here cover strings, ints,
floats, booleans, durations, enums and lists; callers write their own for domain values.

Scalars keep both their YAML-typed `value` (int, float, bool, None, date, str) and the `raw`
source text, so a string field given `yes` or `2026` reads back exactly what the user wrote.
Keys are always the raw text.  Duplicate keys, non-scalar keys, unknown tags and recursive
aliases are reported as errors, never raised.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import TypeVar

import yaml
from yaml.constructor import SafeConstructor

from gateway.errors import ConfigError, Diagnostic, Severity

T = TypeVar("T")
E = TypeVar("E", bound=Enum)

_MAX_NODES = 100_000  # alias bombs ("billion laughs") stop here instead of eating the Pi's RAM


@dataclass(frozen=True, slots=True)
class Mark:
    """A 1-based position in the source text."""

    line: int
    col: int


@dataclass(frozen=True, slots=True)
class ScalarNode:
    """A scalar: `value` as YAML typed it, `raw` as written, `quoted` if it was in quotes."""

    value: object
    raw: str
    mark: Mark
    quoted: bool = False


@dataclass(frozen=True, slots=True)
class KeyValue:
    """One entry of a mapping; `key` is the raw key text, `key_mark` where it is written."""

    key: str
    key_mark: Mark
    value: Node


@dataclass(frozen=True, slots=True)
class MapNode:
    """A mapping, entries in source order, keys unique (duplicates are reported and dropped)."""

    entries: tuple[KeyValue, ...]
    mark: Mark

    def get(self, key: str) -> KeyValue | None:
        """The entry for `key`, or None."""
        return next((e for e in self.entries if e.key == key), None)

    def keys(self) -> list[str]:
        """The keys in source order."""
        return [e.key for e in self.entries]


@dataclass(frozen=True, slots=True)
class SeqNode:
    """A sequence."""

    items: tuple[Node, ...]
    mark: Mark


Node = ScalarNode | MapNode | SeqNode
Conv = Callable[[Node, str, "Diagnostics"], T | None]


def describe(node: Node) -> str:
    """A short phrase for error messages: "a list", "a mapping", "the number 3", "'abc'"."""
    if isinstance(node, MapNode):
        return "a mapping"
    if isinstance(node, SeqNode):
        return "a list"
    if node.value is None:
        return "nothing (null)"
    if isinstance(node.value, bool):
        return f"the boolean {node.raw}"
    if isinstance(node.value, int | float):
        return f"the number {node.raw}"
    return repr(node.raw)


# ---------------------------------------------------------------------------------- diagnostics


class Diagnostics:
    """Collects every Diagnostic of one file, so they are all reported together."""

    def __init__(self, file: str) -> None:
        self.file = file
        self._items: list[Diagnostic] = []

    def add(self, mark: Mark, message: str, key_path: str = "", *, warn: bool = False) -> None:
        """Record a problem at `mark` (1-based)."""
        severity = Severity.WARNING if warn else Severity.ERROR
        self._items.append(Diagnostic(self.file, mark.line, mark.col, message, key_path, severity))

    def at(self, node: Node, message: str, key_path: str = "") -> None:
        """Record an error at the start of `node`."""
        self.add(node.mark, message, key_path)

    @property
    def items(self) -> tuple[Diagnostic, ...]:
        """Every problem so far, sorted by position."""
        return tuple(sorted(self._items, key=lambda d: (d.line, d.col)))

    @property
    def errors(self) -> tuple[Diagnostic, ...]:
        """The problems of severity error."""
        return tuple(d for d in self.items if d.severity is Severity.ERROR)

    def __len__(self) -> int:
        return len(self._items)

    def raise_if_errors(self) -> None:
        """Raise ConfigError with every diagnostic if any of them is an error."""
        if self.errors:
            raise ConfigError(self.items)


def child(path: str, key: str) -> str:
    """The key path of `key` under `path`: `zones[1]` + `name` -> `zones[1].name`."""
    return f"{path}.{key}" if path else key


def index(path: str, i: int) -> str:
    """The key path of item `i` (0-based) of the list at `path`."""
    return f"{path}[{i}]"


def did_you_mean(word: str, choices: Collection[str]) -> str:
    """` (did you mean 'x'?)` when a close name exists, else an empty string."""
    close = difflib.get_close_matches(word, sorted(choices), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


# ---------------------------------------------------------------------------------- loading


def _mark(m: yaml.Mark | None) -> Mark:
    # PyYAML marks are 0-based; every position we report is 1-based.
    return Mark(m.line + 1, m.column + 1) if m is not None else Mark(1, 1)


def load_yaml(path: Path, diags: Diagnostics) -> Node | None:
    """Read and compose `path`.  Unreadable files and syntax errors become diagnostics."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        diags.add(Mark(1, 1), f"cannot read the file: {exc}")
        return None
    return parse_yaml(text, diags)


def parse_yaml(text: str, diags: Diagnostics) -> Node | None:
    """Compose one YAML document into located nodes; None if empty or not valid YAML."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        diags.add(_mark(exc.problem_mark or exc.context_mark), _syntax_message(exc))
        return None
    except yaml.reader.ReaderError as exc:
        diags.add(_offset_mark(text, exc.position), f"invalid character: {exc.reason}")
        return None
    except RecursionError:
        diags.add(Mark(1, 1), "invalid YAML: nested too deeply")
        return None
    if root is None:
        return None
    try:
        return _Converter(diags).convert(root, "")
    except RecursionError:
        diags.add(Mark(1, 1), "invalid YAML: nested too deeply")
        return None


def _syntax_message(exc: yaml.MarkedYAMLError) -> str:
    parts = [p for p in (exc.context, exc.problem) if p]
    message = "invalid YAML: " + (", ".join(parts) if parts else "syntax error")
    if "'\\t'" in message:
        message += "; indent with spaces, not tabs"
    return message


def _offset_mark(text: str, position: int) -> Mark:
    before = text[:position]
    return Mark(before.count("\n") + 1, position - (before.rfind("\n") + 1) + 1)


class _Converter:
    """PyYAML nodes -> located nodes, with typed scalars and checks PyYAML leaves out."""

    def __init__(self, diags: Diagnostics) -> None:
        self._diags = diags
        self._constructor = SafeConstructor()
        self._active: set[int] = set()
        self._count = 0

    def convert(self, node: yaml.Node, path: str) -> Node:
        mark = _mark(node.start_mark)
        self._count += 1
        if id(node) in self._active or self._count > _MAX_NODES:
            msg = "recursive or too often repeated alias: write the value out"
            self._diags.add(mark, msg, path)
            return ScalarNode(None, "", mark)
        self._active.add(id(node))
        try:
            if isinstance(node, yaml.MappingNode):
                return self._mapping(node, mark, path)
            if isinstance(node, yaml.SequenceNode):
                items = (self.convert(n, index(path, i)) for i, n in enumerate(node.value))
                return SeqNode(tuple(items), mark)
            return self._scalar(node, mark, path)
        finally:
            self._active.discard(id(node))

    def _scalar(self, node: yaml.Node, mark: Mark, path: str) -> ScalarNode:
        raw = str(node.value)
        quoted = isinstance(node, yaml.ScalarNode) and node.style in ("'", '"')
        try:
            value = self._constructor.construct_object(node, deep=True)
        except yaml.MarkedYAMLError as exc:
            reason = exc.problem or "unsupported tag"
            msg = f"cannot read {raw!r}: {reason}; remove the tag or quote the value"
            self._diags.add(mark, msg, path)
            return ScalarNode(None, raw, mark, quoted)
        except Exception as exc:  # PyYAML's constructors raise IndexError etc. on odd tags
            self._diags.add(mark, f"cannot read {raw!r} as {node.tag}: {exc!r}", path)
            return ScalarNode(None, raw, mark, quoted)
        return ScalarNode(value, raw, mark, quoted)

    def _mapping(self, node: yaml.MappingNode, mark: Mark, path: str) -> MapNode:
        entries: dict[str, KeyValue] = {}
        for key_node, value_node in node.value:
            key_mark = _mark(key_node.start_mark)
            if not isinstance(key_node, yaml.ScalarNode):
                msg = "a key must be a plain name, not a list or mapping"
                self._diags.add(key_mark, msg, path)
                continue
            key = str(key_node.value)
            if key in entries:
                first = entries[key].key_mark.line
                msg = f"duplicate key '{key}' (first given on line {first}): keep one"
                self._diags.add(key_mark, msg, child(path, key))
                continue
            entries[key] = KeyValue(key, key_mark, self.convert(value_node, child(path, key)))
        return MapNode(tuple(entries.values()), mark)


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


def is_null(node: Node) -> bool:
    """True for `~`, `null` or an empty value."""
    return isinstance(node, ScalarNode) and node.value is None and not node.quoted


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
