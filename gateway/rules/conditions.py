"""Rule conditions (`if:`) compiled once into predicates over an evaluation `Context`.

Every operator of docs/rules.md is in `OPERATORS`; `FIELDS` says which operators apply to which
field.  Operators are total: a CRM attribute of an unexpected type makes the condition false,
never raises.  The operand `"{zone}"` stands for the zone of the event being evaluated; zone
operands may name a zone or a geofence of the config (one namespace).  Besides fields:
`time: {between: ["14:00", "19:00"], days: [mon]}` (see `timewindow`) and
`date: {between: ["2026-12-01", "2026-12-24"], days_of_month: [1, 15]}` (store-local calendar
date, both ends included; either key or both).  Each condition also says what it looked at
(`observe`), for `explain`.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from typing import Any

from gateway.config.yamlsrc import MapNode, Mark, Node, ScalarNode, SeqNode, did_you_mean
from gateway.rules.context import Condition, Context
from gateway.rules.located import Reader, all_entries
from gateway.rules.operators import (
    FIELDS,
    OPERATORS,
    ZONE_PLACEHOLDER,
    Field,
    Operand,
    attribute_field,
    is_number,
    needs_zone,
    resolve,
    show_value,
)
from gateway.rules.timewindow import DateRange, TimeWindow, read_dates, read_window

__all__ = ["ConditionCompiler", "unknown_place"]

_ATTRIBUTES = "customer.attributes."
_BLOCKS = ("any", "not", "time", "date")


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
            field = attribute_field(name.removeprefix(_ATTRIBUTES))
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
        return Condition(
            text,
            lambda ctx: any(p.test(ctx) for p in parts),
            _observe_all(parts),
            needs_event=_needs_event(parts),
        )

    def _not(self, node: Node, path: str) -> Condition | None:
        is_list = isinstance(node, SeqNode)
        parts = self.compile_list(node, path) if is_list else self.compile_item(node, path)
        if not parts:
            return None
        text = "not (" + "; ".join(p.text for p in parts) + ")"
        return Condition(
            text,
            lambda ctx: not all(p.test(ctx) for p in parts),
            _observe_all(parts),
            needs_event=_needs_event(parts),
        )

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
        if len(tests) == 1:
            return tests[0]
        return Condition(
            text,
            lambda c: all(t.test(c) for t in tests),
            tests[0].observe,
            needs_event=_needs_event(tests),
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
            return apply(get(ctx), resolve(operand, ctx), ctx)

        def test_fixed(ctx: Context) -> bool:  # no `{zone}`: `resolve` would return `operand`
            return apply(get(ctx), operand, ctx)

        def observe(ctx: Context) -> str:
            value = get(ctx)
            return f"{name} = {show(value, ctx) if show else show_value(value)}"

        fixed = not needs_zone(operand)
        event = not fixed or name in _EVENT_FIELDS
        text = f"{name} {op} {_show(node)}"
        return Condition(text, test_fixed if fixed else test, observe, needs_event=event)

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
        elif kind is Operand.NUMBER and not is_number(value):
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


_EVENT_FIELDS = frozenset(("zone", "visit.duration", "visit.zones"))


def _needs_event(parts: Sequence[Condition]) -> bool:
    return any(p.needs_event for p in parts)


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
        window,
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
