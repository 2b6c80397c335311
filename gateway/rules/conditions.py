"""Rule conditions (`if:`) compiled once into predicates over an evaluation `Context`.

Every operator of DESIGN §4 is in `OPERATORS`; `FIELDS` says which operators apply to which
field.  Operators are total: a CRM attribute of an unexpected type makes the condition false,
never raises.  The operand `"{zone}"` stands for the zone of the event being evaluated; zone
operands may name a zone or a geofence of the config (one namespace).  Besides fields:
`time: {between: ["14:00", "19:00"], days: [mon]}` (see `timewindow`) and
`date: {between: ["2026-12-01", "2026-12-24"], days_of_month: [1, 15]}` (store-local calendar
date, both ends included; either key or both).  Each condition also says what it looked at
(`observe`), for `explain`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from types import MappingProxyType
from typing import Any

from gateway.events import ZoneEvent
from gateway.identity import Customer
from gateway.rules.located import Reader, all_entries
from gateway.rules.timewindow import DateRange, TimeWindow, read_dates, read_window
from gateway.yamlsrc import MapNode, Mark, Node, ScalarNode, SeqNode, did_you_mean

ZONE_PLACEHOLDER = "{zone}"


@dataclass(frozen=True, slots=True)
class VisitInfo:
    """What the engine knows of the customer's current visit."""

    started_at: float
    zones: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Context:
    """Everything a condition may look at: the event, the customer, local time, the visit."""

    event: ZoneEvent
    customer: Customer
    local: datetime
    visit: VisitInfo | None


def _nothing(ctx: Context) -> str:
    return ""


@dataclass(frozen=True, slots=True)
class Condition:
    """A compiled predicate, how it reads in a rule file, and what it looks at (for explain)."""

    text: str
    test: Callable[[Context], bool]
    observe: Callable[[Context], str] = _nothing  # e.g. "customer.interests = [audio, tv]"

    def failing(self, ctx: Context) -> str | None:
        """None when the condition holds, else the text of what failed."""
        return None if self.test(ctx) else self.text


def all_of(conditions: Sequence[Condition]) -> Callable[[Context], str | None]:
    """A checker returning the first failing condition's text, or None when all hold."""
    items = tuple(conditions)

    def check(ctx: Context) -> str | None:
        for cond in items:
            if not cond.test(ctx):
                return cond.text
        return None

    return check


# -- operators ----------------------------------------------------------------------------
class Operand(Enum):
    """What an operator's right-hand side must be."""

    VALUE = "a value"
    LIST = "a list of values"
    NUMBER = "a number"
    DURATION = "a duration"


def _number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and not math.isnan(x)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, bool) != isinstance(b, bool):
        return False
    if _number(a) and _number(b):
        return bool(a == b)
    return type(a) is type(b) and bool(a == b)


def _members(x: Any) -> Collection[Any] | None:
    return x if isinstance(x, set | frozenset | list | tuple) else None


def _has(actual: Any, expected: Any, ctx: Context) -> bool:
    items = _members(actual)
    return items is not None and any(_same(i, expected) for i in items)


def _has_any(actual: Any, expected: Any, ctx: Context) -> bool:
    return any(_has(actual, e, ctx) for e in expected)


def _has_all(actual: Any, expected: Any, ctx: Context) -> bool:
    return _members(actual) is not None and all(_has(actual, e, ctx) for e in expected)


def _age(actual: Any, ctx: Context) -> float | None:
    return ctx.event.at - float(actual) if _number(actual) and math.isfinite(actual) else None


def _older(actual: Any, expected: Any, ctx: Context) -> bool:
    age = _age(actual, ctx)
    return age is not None and age > expected


def _newer(actual: Any, expected: Any, ctx: Context) -> bool:
    age = _age(actual, ctx)
    return age is not None and age < expected


@dataclass(frozen=True, slots=True)
class Operator:
    """One operator: its operand kind and its total evaluation function."""

    operand: Operand
    apply: Callable[[Any, Any, Context], bool]


OPERATORS: Mapping[str, Operator] = MappingProxyType(
    {
        "is": Operator(Operand.VALUE, lambda a, e, c: _same(a, e)),
        "is_not": Operator(Operand.VALUE, lambda a, e, c: not _same(a, e)),
        "in": Operator(Operand.LIST, lambda a, e, c: any(_same(a, x) for x in e)),
        "has": Operator(Operand.VALUE, _has),
        "has_any": Operator(Operand.LIST, _has_any),
        "has_all": Operator(Operand.LIST, _has_all),
        "at_least": Operator(Operand.NUMBER, lambda a, e, c: _number(a) and a >= e),
        "at_most": Operator(Operand.NUMBER, lambda a, e, c: _number(a) and a <= e),
        "older_than": Operator(Operand.DURATION, _older),
        "newer_than": Operator(Operand.DURATION, _newer),
    }
)

_SET_OPS = ("has", "has_any", "has_all")
_TEXT_OPS = ("is", "is_not", "in")
_NUM_OPS = ("is", "is_not", "in", "at_least", "at_most")


@dataclass(frozen=True, slots=True)
class Field:
    """A field conditions can test: its getter, operators, and whether it holds zone ids."""

    get: Callable[[Context], Any]
    operators: tuple[str, ...]
    zones: bool = False
    duration: bool = False  # at_least/at_most take a duration (`5m`), not a number
    show: Callable[[Any, Context], str] | None = None  # how explain prints the value


def show_value(value: Any) -> str:
    """A field's value as explain prints it: `[audio, tv]`, `gold`, `(none)`."""
    if value is None:
        return "(none)"
    if isinstance(value, set | frozenset | list | tuple):
        return "[" + ", ".join(sorted(str(v) for v in value)) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    return f"{value:g}" if isinstance(value, float) else str(value)


def _show_instant(value: Any, ctx: Context) -> str:
    if not _number(value) or not math.isfinite(value):
        return show_value(value)
    when = datetime.fromtimestamp(value, ctx.local.tzinfo)
    return f"{when:%Y-%m-%d %H:%M} ({(ctx.event.at - value) / 86400:.1f} days ago)"


def _show_seconds(value: Any, ctx: Context) -> str:
    return f"{value:.0f}s" if _number(value) else show_value(value)


def _visit_duration(ctx: Context) -> float | None:
    return ctx.event.at - ctx.visit.started_at if ctx.visit else None


FIELDS: Mapping[str, Field] = MappingProxyType(
    {
        "customer.segments": Field(lambda c: c.customer.segments, _SET_OPS),
        "customer.interests": Field(lambda c: c.customer.interests, _SET_OPS),
        "customer.tier": Field(lambda c: c.customer.tier, _TEXT_OPS),
        "customer.first_name": Field(lambda c: c.customer.first_name, _TEXT_OPS),
        "customer.visits": Field(lambda c: c.customer.visits, _NUM_OPS),
        "customer.last_visit": Field(
            lambda c: c.customer.last_visit, ("older_than", "newer_than"), show=_show_instant
        ),
        "visit.duration": Field(
            _visit_duration, ("at_least", "at_most"), duration=True, show=_show_seconds
        ),
        "visit.zones": Field(lambda c: c.visit.zones if c.visit else frozenset(), _SET_OPS, True),
        "zone": Field(lambda c: c.event.zone, _TEXT_OPS, zones=True),
    }
)
_ATTRIBUTES = "customer.attributes."
_BLOCKS = ("any", "not", "time", "date")


def _resolve(expected: Any, ctx: Context) -> Any:
    if expected == ZONE_PLACEHOLDER:
        return ctx.event.zone
    if isinstance(expected, tuple) and ZONE_PLACEHOLDER in expected:
        return tuple(ctx.event.zone if e == ZONE_PLACEHOLDER else e for e in expected)
    return expected


def _attribute_field(key: str) -> Field:
    return Field(lambda c: c.customer.attributes.get(key), tuple(OPERATORS))


# -- compiling ----------------------------------------------------------------------------
class ConditionCompiler:
    """Compiles `if:` lists for one rule file, checking zone ids against the config."""

    def __init__(
        self, reader: Reader, zone_ids: Collection[str], fences: Collection[str] = ()
    ) -> None:
        self.reader = reader
        self.zone_ids = zone_ids  # zones and geofences (one namespace)
        self.fences = fences

    def compile_list(self, node: Node, path: str) -> list[Condition]:
        """Conditions of a list of `- field: {op: value}` items (all must hold)."""
        items = self.reader.sequence(node, path)
        out: list[Condition] = []
        for i, item in enumerate(items or ()):
            out.extend(self.compile_item(item, f"{path}[{i}]"))
        return out

    def compile_item(self, node: Node, path: str) -> list[Condition]:
        """Conditions of one mapping item (each key is one condition)."""
        if not isinstance(node, MapNode):
            self.reader.error(
                node, path, "expected a condition such as `customer.tier: {is: gold}`"
            )
            return []
        out = []
        for entry in all_entries(node):
            cond = self._compile_key(entry.key, entry.key_mark, entry.value, f"{path}.{entry.key}")
            if cond is not None:
                out.append(cond)
        return out

    def _compile_key(self, name: str, key: Mark, value: Node, path: str) -> Condition | None:
        if name == "any":
            return self._any(value, path)
        if name == "not":
            return self._not(value, path)
        if name == "time":
            window = read_window(self.reader, value, path)
            return _time_condition(window) if window else None
        if name == "date":
            dates = read_dates(self.reader, value, path)
            return _date_condition(dates) if dates else None
        field = FIELDS.get(name)
        if field is None and name.startswith(_ATTRIBUTES) and len(name) > len(_ATTRIBUTES):
            field = _attribute_field(name.removeprefix(_ATTRIBUTES))
        if field is None:
            known = [*FIELDS, *_BLOCKS, "customer.attributes.<key>"]
            hint = did_you_mean(name, known) or f" (expected one of: {', '.join(known)})"
            self.reader.error(key, path, f"unknown condition '{name}'{hint}")
            return None
        return self._field(name, field, value, path)

    def _any(self, node: Node, path: str) -> Condition | None:
        parts = self.compile_list(node, path)
        if not parts:
            return None
        text = "any of (" + "; ".join(p.text for p in parts) + ")"
        return Condition(text, lambda ctx: any(p.test(ctx) for p in parts), _observe_all(parts))

    def _not(self, node: Node, path: str) -> Condition | None:
        is_list = isinstance(node, SeqNode)
        parts = self.compile_list(node, path) if is_list else self.compile_item(node, path)
        if not parts:
            return None
        text = "not (" + "; ".join(p.text for p in parts) + ")"
        return Condition(text, lambda ctx: not all(p.test(ctx) for p in parts), _observe_all(parts))

    def _field(self, name: str, field: Field, node: Node, path: str) -> Condition | None:
        ops = self.reader.mapping(node, path, field.operators, what="operator")
        if not ops:
            if isinstance(node, MapNode) and not node.entries:
                expected = ", ".join(field.operators)
                self.reader.error(node, path, f"'{name}' needs an operator ({expected})")
            return None
        parts = [self._operation(name, field, op, n, f"{path}.{op}") for op, n in ops.items()]
        if any(p is None for p in parts):
            return None
        tests = tuple(p for p in parts if p is not None)
        text = " and ".join(t.text for t in tests)
        return (
            tests[0]
            if len(tests) == 1
            else Condition(text, lambda c: all(t.test(c) for t in tests), tests[0].observe)
        )

    def _operation(
        self, name: str, field: Field, op: str, node: Node, path: str
    ) -> Condition | None:
        operator = OPERATORS[op]
        operand = self._operand(operator.operand, field, node, path)
        if operand is None:
            return None
        get, apply, show = field.get, operator.apply, field.show

        def test(ctx: Context) -> bool:
            return apply(get(ctx), _resolve(operand, ctx), ctx)

        def observe(ctx: Context) -> str:
            value = get(ctx)
            return f"{name} = {show(value, ctx) if show else show_value(value)}"

        return Condition(f"{name} {op} {_show(node)}", test, observe)

    def _operand(self, kind: Operand, field: Field, node: Node, path: str) -> Any:
        reader = self.reader
        if kind is Operand.DURATION or (kind is Operand.NUMBER and field.duration):
            return reader.duration(node, path)
        value = reader.plain(node, path)
        if kind is Operand.LIST and not isinstance(value, tuple):
            value = (value,) if value is not None else None
        elif kind is Operand.VALUE and isinstance(value, tuple):
            reader.error(node, path, "expected one value, got a list (use `in` or `has_any`)")
            return None
        elif kind is Operand.NUMBER and not _number(value):
            reader.error(node, path, f"expected a number, got '{_show(node)}'")
            return None
        if value is not None and field.zones and not self._zones_known(node, path):
            return None
        return value

    def _zones_known(self, node: Node, path: str) -> bool:
        nodes = node.items if isinstance(node, SeqNode) else (node,)
        ok = True
        for i, item in enumerate(nodes):
            zone = item.raw if isinstance(item, ScalarNode) else ""
            if zone != ZONE_PLACEHOLDER and zone not in self.zone_ids:
                where = f"{path}[{i}]" if isinstance(node, SeqNode) else path
                self.reader.error(item, where, unknown_place(zone, self.zone_ids, self.fences))
                ok = False
        return ok


def unknown_place(name: str, known: Collection[str], fences: Collection[str] = ()) -> str:
    """The error for a name that is neither a zone nor a geofence (`known` holds both, and
    `fences` says which are geofences): a "did you mean", else the lists of both."""
    hint = did_you_mean(name, known)
    if not hint:
        zones = [k for k in known if k not in fences]
        hint = f" (zones: {', '.join(zones)}" + (
            f"; geofences: {', '.join(fences)})" if fences else ")"
        )
    return f"unknown zone '{name}'{hint}"


def _observe_all(parts: Sequence[Condition]) -> Callable[[Context], str]:
    def observe(ctx: Context) -> str:
        seen = dict.fromkeys(p.observe(ctx) for p in parts)
        return "; ".join(s for s in seen if s)

    return observe


def _time_condition(window: TimeWindow) -> Condition:
    return Condition(
        f"time {window.describe()}",
        lambda ctx: window.contains(ctx.local),
        lambda ctx: f"local time {ctx.local:%a %H:%M}",
    )


def _date_condition(dates: DateRange) -> Condition:
    return Condition(
        f"date {dates.describe()}",
        lambda ctx: dates.contains(ctx.local.date()),
        lambda ctx: f"local date {ctx.local:%Y-%m-%d}",
    )


def _show(node: Node) -> str:
    if isinstance(node, SeqNode):
        return "[" + ", ".join(_show(n) for n in node.items) + "]"
    return node.raw if isinstance(node, ScalarNode) else "…"
