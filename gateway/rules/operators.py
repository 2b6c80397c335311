"""The operators of rule conditions (docs/rules.md) and the fields they apply to.  Pure.

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


_COLLECTIONS = (set, frozenset, list, tuple)

# The loops below are `_same` spelled out for the common operands (a text, None, an int), so
# that the conditions evaluated on every event cost no generator and no call per item; any
# other operand takes `_same` itself.


def _members(x: Any) -> Collection[Any] | None:
    return x if isinstance(x, _COLLECTIONS) else None


def _has(actual: Any, expected: Any, ctx: Context) -> bool:
    if not isinstance(actual, _COLLECTIONS):
        return False
    if type(expected) is str:  # `_same(i, text)` of a str `i` is `i == text`
        for i in actual:
            if type(i) is str:
                if i == expected:
                    return True
            elif _same(i, expected):  # (which raises as it did on an int past 2**1024)
                return True
        return False
    return any(_same(i, expected) for i in actual)


def _has_any(actual: Any, expected: Any, ctx: Context) -> bool:
    for e in expected:  # noqa: SIM110
        if _has(actual, e, ctx):
            return True
    return False


def _has_all(actual: Any, expected: Any, ctx: Context) -> bool:
    if not isinstance(actual, _COLLECTIONS):
        return False
    for e in expected:  # noqa: SIM110
        if not _has(actual, e, ctx):
            return False
    return True


def _in(actual: Any, expected: Any, ctx: Context) -> bool:
    if type(actual) is str:  # `_same(text, x)`: `x` is a str (not a subclass) equal to it
        for x in expected:  # noqa: SIM110
            if type(x) is str and x == actual:
                return True
        return False
    if actual is None:  # `_same(None, x)`: `x` is None
        for x in expected:  # noqa: SIM110
            if x is None:
                return True
        return False
    return any(_same(actual, x) for x in expected)


# an int `is_number` accepts without a doubt: never a bool nor NaN, and small enough for
# `math.isnan` (which raises OverflowError past 2**1024, and so does `is_number` then)
_SMALL = 2**53


def _at_least(actual: Any, expected: Any, ctx: Context) -> bool:
    if type(actual) is int and -_SMALL < actual < _SMALL:
        return bool(actual >= expected)
    return is_number(actual) and actual >= expected


def _at_most(actual: Any, expected: Any, ctx: Context) -> bool:
    if type(actual) is int and -_SMALL < actual < _SMALL:
        return bool(actual <= expected)
    return is_number(actual) and actual <= expected


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
        "in": Operator(Operand.LIST, _in),
        "has": Operator(Operand.VALUE, _has),
        "has_any": Operator(Operand.LIST, _has_any),
        "has_all": Operator(Operand.LIST, _has_all),
        "at_least": Operator(Operand.NUMBER, _at_least),
        "at_most": Operator(Operand.NUMBER, _at_most),
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


def needs_zone(expected: Any) -> bool:
    """Whether the operand names `{zone}` (then `resolve` it per event, else use it as is)."""
    return bool(
        expected == ZONE_PLACEHOLDER
        or (isinstance(expected, tuple) and ZONE_PLACEHOLDER in expected)
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
