"""Parsing of a rule's inline `tests:` (run by `rayon check`, see `selftest`).

```yaml
tests:
  - name: "30 s on a Tuesday afternoon fires"
    customer: {interests: [tv]}            # identity.Customer fields; consent defaults to yes
    events: [{at: "2026-03-03T15:00:00", enter: aisle-tv},
             {at: "2026-03-03T15:00:31", still_in: aisle-tv}]
    expect: offer                          # offer | none | {offer: {title: …, code: …}}
    expect_rule: tv-aisle-dwell            # optional, defaults to the rule holding the test
```
Times without an offset are local times of the store timezone.  An event is one of `enter`,
`exit`, `still_in`, `visit_start`, `visit_end` (each naming a zone or a geofence, e.g.
`{at: …, enter: store-approach}`) or `absent_check: true`, the daily run of `absent` rules at
that time (`RuleEngine.on_schedule`) for the test's customer, whose `last_visit` (a time, or
epoch seconds) and the visits of the test's own events say when they were last seen:

```yaml
  - name: "away 75 days: the win-back goes out at 10:00"
    customer: {last_visit: "2026-01-01T12:00:00"}
    pools: {winback20: [WB-0001, WB-0002]}   # code pools of the test: pool id → codes
    events: [{at: "2026-03-17T10:00:00", absent_check: true}]
    expect: {offer: {code: WB-0001}}
```
`pools:` seeds the in-memory code pools of the test's engine (a rule's `code_pool` without
them is an exhausted pool).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType
from typing import Any
from zoneinfo import ZoneInfo

from gateway.config.yamlsrc import MapNode, Node, ScalarNode
from gateway.identity.model import Consent, Customer
from gateway.rules.conditions import unknown_place
from gateway.rules.located import Reader, all_entries, scalar_value, tag
from gateway.rules.model import InlineTest, Step, StepKind

_TEST_KEYS = ("name", "customer", "pools", "events", "expect", "expect_rule")
_CUSTOMER_KEYS = (
    "id",
    "token",
    "first_name",
    "segments",
    "interests",
    "tier",
    "visits",
    "last_visit",
    "attributes",
    "consent",
)
_STEP_KINDS = [k.value for k in StepKind]
EXPECT_FIELDS = ("title", "body", "code", "url", "zone", "purpose", "holdout")
TEST_CUSTOMER_ID = "test-customer"


class InlineTestReader:
    """Reads the `tests:` of one rule file against the store's timezone and zones."""

    def __init__(
        self,
        reader: Reader,
        tz: ZoneInfo,
        zone_ids: Collection[str],
        fences: Collection[str] = (),
    ) -> None:
        self.reader = reader
        self.tz = tz
        self.zone_ids = zone_ids  # zones and geofences
        self.fences = fences

    def read_all(self, node: Node, path: str) -> tuple[InlineTest, ...]:
        """Every test of the list; invalid ones are reported and left out."""
        out = []
        for i, item in enumerate(self.reader.sequence(node, path) or ()):
            test = self.read_one(item, f"{path}[{i}]")
            if test is not None:
                out.append(test)
        return tuple(out)

    def read_one(self, node: Node, path: str) -> InlineTest | None:
        """One test, or None when it is invalid."""
        keys = self.reader.mapping(node, path, _TEST_KEYS, required=("name", "events", "expect"))
        if keys is None or not {"name", "events", "expect"} <= keys.keys():
            return None
        before = len(self.reader.diagnostics)
        name = self.reader.string(keys["name"], f"{path}.name", numbers_ok=True)
        customer = self._customer(keys.get("customer"), f"{path}.customer")
        steps = self._steps(keys["events"], f"{path}.events")
        expect = self._expect(keys["expect"], f"{path}.expect")
        rule = keys.get("expect_rule")
        expect_rule = self.reader.string(rule, f"{path}.expect_rule") if rule else None
        pools = self._pools(keys.get("pools"), f"{path}.pools")
        if len(self.reader.diagnostics) > before or name is None or expect is None:
            return None
        line, col = node.mark.line, node.mark.col
        return InlineTest(
            name,
            line,
            col,
            customer,
            steps,
            expect.offer,
            expect.fields,
            expect_rule,
            expect.count,
            pools,
        )

    def _pools(self, node: Node | None, path: str) -> dict[str, tuple[str, ...]]:
        if node is None:
            return {}
        if not isinstance(node, MapNode):
            self.reader.error(node, path, "expected a mapping of pool ids to lists of codes")
            return {}
        out = {}
        for entry in all_entries(node):
            items = self.reader.sequence(entry.value, f"{path}.{entry.key}", one_ok=True) or []
            codes = (self.reader.string(i, f"{path}.{entry.key}", numbers_ok=True) for i in items)
            out[entry.key] = tuple(c for c in codes if c is not None)
        return out

    # -- customer --------------------------------------------------------------------------
    def _customer(self, node: Node | None, path: str) -> Customer:
        keys = self.reader.mapping(node, path, _CUSTOMER_KEYS) if node is not None else {}
        keys = keys or {}
        r = self.reader
        text = {
            k: r.string(keys[k], f"{path}.{k}", True)
            for k in ("id", "token", "first_name", "tier")
            if k in keys
        }
        return Customer(
            id=text.get("id") or TEST_CUSTOMER_ID,
            token=text.get("token") or f"token-{text.get('id') or TEST_CUSTOMER_ID}",
            consent=self._consent(keys.get("consent"), f"{path}.consent"),
            first_name=text.get("first_name"),
            segments=self._names(keys.get("segments"), f"{path}.segments"),
            interests=self._names(keys.get("interests"), f"{path}.interests"),
            tier=text.get("tier"),
            visits=r.optional(keys, "visits", path, lambda n, p: r.integer(n, p, 0)) or 0,
            last_visit=self._last_visit(keys.get("last_visit"), f"{path}.last_visit"),
            attributes=self._attributes(keys.get("attributes"), f"{path}.attributes"),
        )

    def _consent(self, node: Node | None, path: str) -> Consent:
        if node is None:
            return Consent(instore_location=True, marketing_push=True)
        keys = self.reader.mapping(node, path, ("instore_location", "marketing_push")) or {}
        flags = {k: self._flag(v, f"{path}.{k}") for k, v in keys.items()}
        return Consent(flags.get("instore_location", True), flags.get("marketing_push", True))

    def _flag(self, node: Node, path: str) -> bool:
        if isinstance(node, ScalarNode) and tag(node) == "bool":
            return bool(scalar_value(node))
        self.reader.error(node, path, "expected true or false")
        return True

    def _names(self, node: Node | None, path: str) -> frozenset[str]:
        items = self.reader.sequence(node, path, one_ok=True) if node is not None else []
        return frozenset(i.raw for i in items or () if isinstance(i, ScalarNode))

    def _last_visit(self, node: Node | None, path: str) -> float | None:
        if node is None:
            return None
        if isinstance(node, ScalarNode) and tag(node) in ("int", "float"):
            return float(scalar_value(node))
        return self._time(node, path)

    def _attributes(self, node: Node | None, path: str) -> MappingProxyType[str, Any]:
        if node is None:
            return MappingProxyType({})
        if not isinstance(node, MapNode):
            self.reader.error(node, path, "expected a mapping of attribute names to values")
            return MappingProxyType({})
        entries = all_entries(node)
        out = {e.key: self.reader.plain(e.value, f"{path}.{e.key}") for e in entries}
        return MappingProxyType(out)

    # -- events and expectations -----------------------------------------------------------
    def _steps(self, node: Node, path: str) -> tuple[Step, ...]:
        out = []
        for i, item in enumerate(self.reader.sequence(node, path) or ()):
            step = self._step(item, f"{path}[{i}]")
            if step is not None:
                out.append(step)
        for prev, (i, step) in zip(out, enumerate(out[1:], 1), strict=False):
            if step.at < prev.at:
                self.reader.error(node, f"{path}[{i}]", "events must be in time order")
        return tuple(out)

    def _step(self, node: Node, path: str) -> Step | None:
        keys = self.reader.mapping(node, path, ("at", *_STEP_KINDS), required=("at",))
        if keys is None or "at" not in keys:
            return None
        kinds = [k for k in keys if k != "at"]
        if len(kinds) != 1:
            self.reader.error(
                node, path, f"an event needs exactly one of: {', '.join(_STEP_KINDS)}"
            )
            return None
        at = self._time(keys["at"], f"{path}.at")
        kind = StepKind(kinds[0])
        value, where = keys[kinds[0]], f"{path}.{kinds[0]}"
        if kind is StepKind.ABSENT_CHECK:
            if not (isinstance(value, ScalarNode) and scalar_value(value) is True):
                self.reader.error(value, where, "write `absent_check: true`")
            zone = None
        else:
            zone = self._zone(value, where)
        return Step(at, kind, zone) if at is not None else None

    def _zone(self, node: Node, path: str) -> str | None:
        if isinstance(node, ScalarNode) and tag(node) == "null":
            return None
        zone = self.reader.string(node, path)
        if zone is not None and zone not in self.zone_ids:
            self.reader.error(node, path, unknown_place(zone, self.zone_ids, self.fences))
        return zone

    def _time(self, node: Node, path: str) -> float | None:
        text = node.raw if isinstance(node, ScalarNode) else ""
        try:
            when = datetime.fromisoformat(text.replace(" ", "T", 1))
        except ValueError:
            self.reader.error(node, path, f"bad time '{text}' (write 2026-03-03T15:00:00)")
            return None
        return (when if when.tzinfo else when.replace(tzinfo=self.tz)).timestamp()

    def _expect(self, node: Node, path: str) -> _Expect | None:
        if isinstance(node, ScalarNode) and node.raw in ("offer", "none"):
            return _Expect(node.raw == "offer", {}, None)
        if not isinstance(node, MapNode):
            self.reader.error(node, path, _EXPECT_HELP)
            return None
        keys = self.reader.mapping(node, path, ("offer", "offers"))
        if not keys or len(keys) != 1:
            if keys is not None:
                self.reader.error(node, path, _EXPECT_HELP)
            return None
        if "offers" in keys:
            count = self.reader.integer(keys["offers"], f"{path}.offers", minimum=0)
            return _Expect(bool(count), {}, count) if count is not None else None
        fields = self.reader.mapping(keys["offer"], f"{path}.offer", EXPECT_FIELDS)
        if fields is None:
            return None
        plain = {k: self.reader.plain(v, f"{path}.offer.{k}") for k, v in fields.items()}
        return _Expect(True, plain, None)


@dataclass(frozen=True, slots=True)
class _Expect:
    offer: bool
    fields: dict[str, Any]
    count: int | None


_EXPECT_HELP = "expect must be `offer`, `none`, `{offers: N}` or `{offer: {title: …}}`"
