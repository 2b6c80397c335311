"""The operators of rule conditions (DESIGN §4) and the fields they apply to.  Pure.

Operators are total: a CRM attribute of an unexpected type makes the condition false, never
raises.  The operand `"{zone}"` (`ZONE_PLACEHOLDER`) stands for the zone of the event being
evaluated.  `FIELDS` says which operators apply to which field; `show_value` and each field's
`show` say how `explain` prints what a condition looked at.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from types import MappingProxyType
from typing import Any

from gateway.rules.context import Context

ZONE_PLACEHOLDER = "{zone}"


class Operand(Enum):
    """What an operator's right-hand side must be."""

    VALUE = "a value"
    LIST = "a list of values"
    NUMBER = "a number"
    DURATION = "a duration"


def is_number(x: Any) -> bool:
    """A real number (not a boolean, not NaN)."""
    return isinstance(x, int | float) and not isinstance(x, bool) and not math.isnan(x)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, bool) != isinstance(b, bool):
        return False
    if is_number(a) and is_number(b):
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
    return ctx.event.at - float(actual) if is_number(actual) and math.isfinite(actual) else None


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
        "at_least": Operator(Operand.NUMBER, lambda a, e, c: is_number(a) and a >= e),
        "at_most": Operator(Operand.NUMBER, lambda a, e, c: is_number(a) and a <= e),
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
    if not is_number(value) or not math.isfinite(value):
        return show_value(value)
    when = datetime.fromtimestamp(value, ctx.local.tzinfo)
    return f"{when:%Y-%m-%d %H:%M} ({(ctx.event.at - value) / 86400:.1f} days ago)"


def _show_seconds(value: Any, ctx: Context) -> str:
    return f"{value:.0f}s" if is_number(value) else show_value(value)


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


def resolve(expected: Any, ctx: Context) -> Any:
    """An operand with `{zone}` replaced by the zone of the event."""
    if expected == ZONE_PLACEHOLDER:
        return ctx.event.zone
    if isinstance(expected, tuple) and ZONE_PLACEHOLDER in expected:
        return tuple(ctx.event.zone if e == ZONE_PLACEHOLDER else e for e in expected)
    return expected


def attribute_field(key: str) -> Field:
    """The field of the CRM attribute `key` (`customer.attributes.<key>`): every operator."""
    return Field(lambda c: c.customer.attributes.get(key), tuple(OPERATORS))
