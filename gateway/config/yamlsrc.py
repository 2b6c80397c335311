"""YAML with positions: located nodes, a collector of every problem, and the loader.

Shared by the config loader and the rules loader; the typed converters and `MapReader` that
read these nodes are in `gateway.config.yamlconv`.  The flow is always the same:

    diags = Diagnostics("config.yaml")
    root = load_yaml(path, diags)                    # None if unreadable / syntax error / empty
    store = MapReader.of(root, "", diags, allowed={"id", "name"}, required={"id"})
    if store is not None:
        name = store.opt("name", STR, "")            # missing or invalid -> default (error kept)
        port = store.req("port", int_in(1, 65535))   # missing -> error; invalid -> None
    diags.raise_if_errors()                          # ConfigError with EVERY problem found

Positions are 1-based lines and columns (PyYAML marks are 0-based; they are converted once, in
`_mark`).  Key paths read like `zones[3].enter_after`: list indices are 0-based.

Scalars keep their YAML-typed `value` (int, float, bool, None, date, str), the `raw` source
text and the resolved `tag`, so a string field given `yes` or `2026` reads back exactly what the
user wrote.  Keys are always the raw text.  Duplicate keys, non-scalar keys, unknown tags and
recursive aliases are reported as errors, never raised; a `Dialect` lets the rule files keep
their own wording of syntax errors and report duplicate keys and unbuildable values themselves.
"""

from __future__ import annotations

import difflib
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

import yaml
from yaml.constructor import SafeConstructor

from gateway.config.yamlerrors import explain
from gateway.errors import ConfigError, Diagnostic, Severity

_TAG = "tag:yaml.org,2002:"
_MAX_NODES = 100_000  # alias bombs ("billion laughs") stop here instead of eating the Pi's RAM


@dataclass(frozen=True, slots=True)
class Mark:
    """A 1-based position in the source text."""

    line: int
    col: int


@dataclass(frozen=True, slots=True)
class ScalarNode:
    """A scalar: `value` as YAML typed it, `raw` as written, `quoted` if it was in quotes.

    `tag` is the resolved YAML tag, short for the standard ones (`str`, `int`, `float`, `bool`,
    `null`, `timestamp`) and as written for others (`!custom`).
    """

    value: object
    raw: str
    mark: Mark
    quoted: bool = False
    tag: str = "str"


@dataclass(frozen=True, slots=True)
class KeyValue:
    """One entry of a mapping; `key` is the raw key text, `key_mark` where it is written."""

    key: str
    key_mark: Mark
    value: Node


@dataclass(frozen=True, slots=True)
class MapNode:
    """A mapping, entries in source order, keys unique.

    A key given again is left out of `entries` and kept in `repeats` (and reported, unless the
    `Dialect` leaves that to the reader).
    """

    entries: tuple[KeyValue, ...]
    mark: Mark
    repeats: tuple[KeyValue, ...] = ()

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


def is_null(node: Node) -> bool:
    """True for `~`, `null` or an empty value."""
    return isinstance(node, ScalarNode) and node.value is None and not node.quoted


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


def find(root: Node, path: str) -> Node | None:
    """The node at a key path such as `zones[3].enter_after` or `if[0].customer.tier` (keys
    may hold dots: the longest key that fits is taken), or None."""
    node: Node | None = root
    rest = path
    while rest and node is not None:
        if rest.startswith("["):
            end = rest.find("]")
            items = node.items if isinstance(node, SeqNode) else ()
            i = int(rest[1:end]) if end > 1 and rest[1:end].isdigit() else len(items)
            node, rest = (items[i] if i < len(items) else None), rest[end + 1 :].lstrip(".")
            continue
        entries = node.entries if isinstance(node, MapNode) else ()
        fits = [e for e in entries if rest == e.key or rest.startswith((f"{e.key}.", f"{e.key}["))]
        best = max(fits, key=lambda e: len(e.key), default=None)
        node = best.value if best is not None else None
        rest = rest[len(best.key) :].lstrip(".") if best is not None else ""
    return node


def did_you_mean(word: str, choices: Collection[str]) -> str:
    """` (did you mean 'x'?)` when a close name exists, else an empty string."""
    close = difflib.get_close_matches(word, sorted(choices), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


# ---------------------------------------------------------------------------------- loading


@dataclass(frozen=True, slots=True)
class Dialect:
    """What composing a document reports, and in which words.

    `syntax` starts the message of a syntax error (`explain` of `gateway.config.yamlerrors`
    gives the rest, at the line of the mistake); with `duplicates` a repeated key is an error
    (else it waits in `MapNode.repeats` for the reader); with `bad_values` a scalar PyYAML
    cannot build (an unknown tag, `2026-02-30`) is an error (else its `value` is None and its
    `tag` kept).
    """

    syntax: str = "invalid YAML"
    duplicates: bool = True
    bad_values: bool = True


CONFIG_DIALECT = Dialect()


def _mark(m: yaml.Mark | None) -> Mark:
    # PyYAML marks are 0-based; every position we report is 1-based.
    return Mark(m.line + 1, m.column + 1) if m is not None else Mark(1, 1)


def load_yaml(path: Path, diags: Diagnostics, dialect: Dialect = CONFIG_DIALECT) -> Node | None:
    """Read and compose `path`.  Unreadable files and syntax errors become diagnostics."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        diags.add(Mark(1, 1), f"cannot read the file: {exc}")
        return None
    return parse_yaml(text, diags, dialect)


def parse_yaml(text: str, diags: Diagnostics, dialect: Dialect = CONFIG_DIALECT) -> Node | None:
    """Compose one YAML document into located nodes; None if empty or not valid YAML."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        where, message = explain(exc, text)
        diags.add(Mark(where.line, where.col), f"{dialect.syntax}: {message}")
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
        return _Converter(diags, dialect).convert(root, "")
    except RecursionError:
        diags.add(Mark(1, 1), "invalid YAML: nested too deeply")
        return None


def _offset_mark(text: str, position: int) -> Mark:
    before = text[:position]
    return Mark(before.count("\n") + 1, position - (before.rfind("\n") + 1) + 1)


class _Converter:
    """PyYAML nodes -> located nodes, with typed scalars and checks PyYAML leaves out."""

    def __init__(self, diags: Diagnostics, dialect: Dialect) -> None:
        self._diags = diags
        self._dialect = dialect
        self._constructor = SafeConstructor()
        self._active: set[int] = set()
        self._count = 0

    def convert(self, node: yaml.Node, path: str) -> Node:
        mark = _mark(node.start_mark)
        self._count += 1
        if id(node) in self._active or self._count > _MAX_NODES:
            msg = "recursive or too often repeated alias: write the value out"
            self._diags.add(mark, msg, path)
            return ScalarNode(None, "", mark, tag="null")
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
        tag = str(node.tag).removeprefix(_TAG)
        try:
            value = self._constructor.construct_object(node, deep=True)
        except yaml.MarkedYAMLError as exc:
            reason = exc.problem or "unsupported tag"
            msg = f"cannot read {raw!r}: {reason}; remove the tag or quote the value"
            self._bad_value(mark, msg, path)
            return ScalarNode(None, raw, mark, quoted, tag)
        except Exception as exc:  # PyYAML's constructors raise IndexError etc. on odd tags
            self._bad_value(mark, f"cannot read {raw!r} as {node.tag}: {exc!r}", path)
            return ScalarNode(None, raw, mark, quoted, tag)
        return ScalarNode(value, raw, mark, quoted, tag)

    def _bad_value(self, mark: Mark, message: str, path: str) -> None:
        if self._dialect.bad_values:
            self._diags.add(mark, message, path)

    def _mapping(self, node: yaml.MappingNode, mark: Mark, path: str) -> MapNode:
        entries: dict[str, KeyValue] = {}
        repeats: list[KeyValue] = []
        for key_node, value_node in node.value:
            key_mark = _mark(key_node.start_mark)
            if not isinstance(key_node, yaml.ScalarNode):
                msg = "a key must be a plain name, not a list or mapping"
                self._diags.add(key_mark, msg, path)
                continue
            key = str(key_node.value)
            if key in entries and self._dialect.duplicates:
                first = entries[key].key_mark.line
                msg = f"duplicate key '{key}' (first given on line {first}): keep one"
                self._diags.add(key_mark, msg, child(path, key))
                continue
            entry = KeyValue(key, key_mark, self.convert(value_node, child(path, key)))
            if key in entries:
                repeats.append(entry)
            else:
                entries[key] = entry
        return MapNode(tuple(entries.values()), mark, tuple(repeats))
