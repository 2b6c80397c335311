"""The `$defs` of the marketers' JSON Schemas (see `gateway.rules.schema.export`): places,
conditions,
triggers, the offer, limits and inline tests, each documented for the editor's hover help.

With a `Config`, zone operands and triggers get an enum of the store's zone and geofence ids
(with their names); without one they are free text.
"""

from __future__ import annotations

from gateway.config.model import AttributeType, Config
from gateway.rules.model import Placeholder, StepKind
from gateway.rules.operators import FIELDS, OPERATORS, ZONE_PLACEHOLDER, Field, Operand
from gateway.rules.policy import PERIOD_WORDS
from gateway.rules.schema.parts import (
    CODE_PLACEHOLDER_PATTERN,
    DATETIME_PATTERN,
    RULE_ID_PATTERN,
    SCALAR,
    Schema,
    doc,
    enum_of,
    obj,
    one_or_list,
    ref,
    scalars,
    unknown_placeholder_pattern,
)
from gateway.rules.testspec import EXPECT_FIELDS


# -- places -------------------------------------------------------------------------------
def _places(config: Config | None) -> dict[str, Schema]:
    zone: Schema = {"type": "string", "minLength": 1}
    place = dict(zone)
    if config is not None:
        names = {z.id: f"{z.name} (zone)" for z in config.zones}
        zone |= enum_of(list(names), names)
        names |= {g.id: f"{g.name} (geofence)" for g in config.geofences}
        place |= enum_of(list(names), names)
    operand = {"anyOf": [{"const": ZONE_PLACEHOLDER}, ref("place")]}
    return {
        "zone": zone | doc("A zone id of the store's config.yaml.", "aisle-tv"),
        "zones": one_or_list(ref("zone")) | doc("A zone id or a list.", "[aisle-tv, aisle-audio]"),
        "place": place | doc("A zone or geofence id of the store's config.yaml.", "parking"),
        "places": one_or_list(ref("place")) | doc("A zone or geofence id, or a list.", "parking"),
        "placeOperand": operand
        | doc('A zone or geofence id, or "{zone}" for the zone of the event.', '"{zone}"'),
    }


# -- conditions ---------------------------------------------------------------------------
def _operand(kind: Operand, field: Field) -> Schema:
    if kind is Operand.DURATION or (kind is Operand.NUMBER and field.duration):
        return ref("duration")
    if kind is Operand.NUMBER:
        return {"type": "number"}
    one = ref("placeOperand") if field.zones else {"type": SCALAR}
    if kind is Operand.VALUE:
        return one
    return {"anyOf": [one, {"type": "array", "items": one}]}


_OPERATOR_DOCS = {
    "is": "equals this value",
    "is_not": "differs from this value (or is missing)",
    "in": "is one of these values",
    "has": "the list contains this value",
    "has_any": "the list contains at least one of these values",
    "has_all": "the list contains every one of these values",
    "at_least": "is at least this number (a duration for visit.duration)",
    "at_most": "is at most this number (a duration for visit.duration)",
    "older_than": "happened longer ago than this duration",
    "newer_than": "happened less than this duration ago",
}


def _field_schema(name: str, field: Field) -> Schema:
    ops = {
        op: _operand(OPERATORS[op].operand, field) | {"description": f"{name} {_OPERATOR_DOCS[op]}"}
        for op in field.operators
    }
    example = f"{name}: {{{field.operators[0]}: …}}"
    return obj(ops, minProperties=1) | doc(
        f"Condition on {name}; operators: {', '.join(field.operators)}.", example
    )


_ATTRIBUTE_FIELD = Field(lambda c: None, tuple(OPERATORS))


def _conditions() -> dict[str, Schema]:
    fields = {name: _field_schema(name, f) for name, f in FIELDS.items()}
    blocks = {
        "any": ref("conditions", "At least one of these conditions holds.", "any: [...]"),
        "not": {
            "anyOf": [ref("conditions"), ref("condition")],
            **doc(
                "None of these holds (a condition or a list).", "not: {customer.tier: {is: gold}}"
            ),
        },
        "time": ref("timeWindow"),
        "date": ref("dateRange"),
    }
    attributes = _field_schema("customer.attributes.<key>", _ATTRIBUTE_FIELD)
    condition = obj(fields | blocks, patternProperties={r"^customer\.attributes\..+$": attributes})
    text = "One condition per key, e.g. `customer.tier: {in: [silver, gold]}`; all must hold."
    return {
        "condition": condition | doc(text, "- customer.interests: {has: tv}"),
        "conditions": {"type": "array", "items": ref("condition")}
        | doc("Conditions that must all hold.", '- time: {between: ["14:00", "19:00"]}'),
        "timeWindow": obj(
            {
                "between": {
                    "type": "array",
                    "items": ref("clock"),
                    "minItems": 2,
                    "maxItems": 2,
                    **doc("Start and end, store time; may cross midnight.", '["21:00", "08:00"]'),
                },
                "days": {
                    "anyOf": [ref("day"), {"type": "array", "items": ref("day")}],
                    **doc("Days the window starts on.", "[mon, tue, wed, thu, fri]"),
                },
            },
            minProperties=1,
        )
        | doc(
            "A time-of-day window, store time (DST-correct).", 'time: {between: ["14:00", "19:00"]}'
        ),
        "dateRange": obj(
            {
                "between": {
                    "type": "array",
                    "items": ref("date"),
                    "minItems": 2,
                    "maxItems": 2,
                    **doc("First and last day, both included.", '["2026-12-01", "2026-12-24"]'),
                },
                "days_of_month": {
                    "anyOf": [_day_of_month(), {"type": "array", "items": _day_of_month()}],
                    **doc("Days of the month, 1 to 31.", "[1, 15]"),
                },
            },
            minProperties=1,
        )
        | doc("Calendar days, store time.", 'date: {between: ["2026-12-01", "2026-12-24"]}'),
    }


def _day_of_month() -> Schema:
    return {"type": "integer", "minimum": 1, "maximum": 31}


# -- when ---------------------------------------------------------------------------------
def _triggers() -> dict[str, Schema]:
    place = ref("places", "Where: a zone or geofence id, or a list of them.", "parking")
    zone = ref("zones", "Where: a zone id, or a list of them (geofences: enter/exit only).")
    on_zone = {"anyOf": [ref("places"), obj({"zone": place}, ("zone",))]}
    on_visit = {"anyOf": [{"type": "null"}, ref("zones"), obj({"zone": zone})]}
    threshold = ref("duration", "How long the customer must stay (more than 0s).", "30s")
    absent = obj(
        {
            "for": ref("duration", "How long since the customer's last visit.", "60d"),
            "at": ref("clock", "Store-local time of the daily check.", '"10:00"'),
        },
        ("for", "at"),
    )
    props = {
        "enter": on_zone | doc("When the customer enters a zone.", "enter: {zone: entrance}"),
        "exit": on_zone | doc("When the customer leaves a zone.", "exit: {zone: checkout}"),
        "dwell": obj({"zone": zone, "at_least": threshold}, ("zone", "at_least"))
        | doc(
            "When the customer has stayed long enough.", "dwell: {zone: aisle-tv, at_least: 30s}"
        ),
        "visit_start": on_visit | doc("When a visit of the store begins.", "visit_start:"),
        "visit_end": on_visit | doc("When a visit ends.", "visit_end:"),
        "absent": absent
        | doc(
            "Daily, for customers not seen for a while (win-back).",
            'absent: {for: 60d, at: "10:00"}',
        ),
    }
    text = "The one trigger of the rule: " + ", ".join(props) + "."
    return {"trigger": obj(props, minProperties=1, maxProperties=1) | doc(text)}


# -- then, limits, validity ---------------------------------------------------------------
def _template(what: str, example: str, attributes: list[str] | None) -> Schema:
    names = [f"{{{p.value}}}" for p in Placeholder]
    names += [f"{{customer.attributes.{a}}}" for a in attributes or ()]
    if attributes is None:
        names.append("{customer.attributes.NAME} (declared in config.yaml)")
    text = f"{what}; placeholders: " + ", ".join(names) + "."
    unknown = {"type": "string", "pattern": unknown_placeholder_pattern(attributes)}
    return {"type": ["string", "number"], "not": unknown} | doc(text, example)


def _shown_attributes(config: Config | None) -> list[str] | None:
    """The attributes an offer text may cite: those config.yaml declares as strings or
    numbers (None without a config: any)."""
    if config is None:
        return None
    declared = config.customers.attributes
    return [name for name, kind in declared.items() if kind is not AttributeType.BOOLEAN]


def _offer(config: Config | None) -> Schema:
    uses_code = {"type": "string", "pattern": CODE_PLACEHOLDER_PATTERN}
    shown = _shown_attributes(config)
    props = {
        "title": _template("The notification title", 'title: "-15 % sur les TV"', shown),
        "body": _template("The notification text", 'body: "Code {code} au {zone_name}."', shown),
        "code": ref("text", "One fixed code shown to every customer.", "code: TV15"),
        "code_pool": {"type": ["string", "number"], "pattern": RULE_ID_PATTERN}
        | doc("A pool of unique codes, one per customer (imported beforehand).", "code_pool: tv15"),
        "url": {"type": "string"}
        | doc("Where the app opens the offer.", 'url: "rayon://offers/tv15"'),
        "expires_in": ref("duration", "How long the offer stays valid (default 1h).", "3h"),
    }
    needs_code = {
        "if": {
            "anyOf": [
                {"required": ["title"], "properties": {"title": uses_code}},
                {"required": ["body"], "properties": {"body": uses_code}},
            ]
        },
        "then": {"anyOf": [{"required": ["code"]}, {"required": ["code_pool"]}]},
    }
    one_code = {"not": {"required": ["code", "code_pool"]}}
    return obj(props, ("title",), allOf=[needs_code, one_code]) | doc(
        "The offer sent to the phone (a fixed code or a code_pool, not both)."
    )


_PERIOD_DOCS = {
    "visit": "visit: during one visit of the store",
    "day": "day: per calendar day, store time",
    "week": "week: per calendar week (Monday to Sunday), store time",
    "30d": "30d: over the last 30 days",
    "lifetime": "lifetime: ever",
    "jour": "jour: day, in French",
    "semaine": "semaine: week, in French",
    "mois": "mois: 30d (the last 30 days), in French",
}


def _limits() -> dict[str, Schema]:
    at_least_one = {"type": "integer", "minimum": 1}
    per = enum_of(list(PERIOD_WORDS), _PERIOD_DOCS) | doc("The period the cap counts over.")
    per_customer = obj({"max": at_least_one, "per": per}, ("max",))
    text = "How often one customer may get the offer."
    return {
        "period": per,
        "limits": obj(
            {
                "per_customer": per_customer | doc(text, "per_customer: {max: 1, per: day}"),
                "total": obj({"max": at_least_one}, ("max",))
                | doc("Campaign budget: offers sent in all.", "total: {max: 500}"),
                "cooldown": ref(
                    "duration", "Minimum time between two offers to one customer.", "2h"
                ),
            }
        )
        | doc("Caps of this rule (commercial rules should have one).", "limits: {cooldown: 2h}"),
    }


# -- inline tests -------------------------------------------------------------------------
def _inline_tests() -> dict[str, Schema]:
    names = {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]}
    flag = {"type": "boolean"}
    customer = obj(
        {
            **{k: ref("text") for k in ("id", "token", "first_name", "tier")},
            "segments": names,
            "interests": names,
            "visits": {"type": "integer", "minimum": 0},
            "last_visit": {"anyOf": [{"type": "number"}, ref("instant")]},
            "attributes": {"type": "object"},
            "consent": obj({"instore_location": flag, "marketing_push": flag}),
        }
    ) | doc("The test customer (consent defaults to yes).", "customer: {interests: [tv]}")
    kinds: Schema = {k.value: {"anyOf": [ref("place"), {"type": "null"}]} for k in StepKind}
    kinds[StepKind.ABSENT_CHECK.value] = {"const": True} | doc(
        "The daily run of absent rules at this time.", "absent_check: true"
    )
    codes = one_or_list(ref("text"))
    pools = {"type": "object", "additionalProperties": codes} | doc(
        "Code pools of the test: pool id → codes.", "pools: {winback20: [WB-0001, WB-0002]}"
    )
    step = obj({"at": ref("instant"), **kinds}, ("at",), minProperties=2, maxProperties=2)
    value = {"anyOf": [{"type": SCALAR}, {"type": "array", "items": {"type": SCALAR}}]}
    expect = {
        "anyOf": [
            {"enum": ["offer", "none"]},
            obj({"offers": {"type": "integer", "minimum": 0}}, ("offers",)),
            obj({"offer": obj(dict.fromkeys(EXPECT_FIELDS, value))}, ("offer",)),
        ]
    } | doc("offer, none, {offers: N} or {offer: {title: …}}.", "expect: offer")
    test = obj(
        {
            "name": ref("text", "What the test shows."),
            "customer": customer,
            "pools": pools,
            "events": {"type": "array", "items": step}
            | doc(
                "The walk, in time order.", 'events: [{at: "2026-03-03T15:00:00", enter: aisle-tv}]'
            ),
            "expect": expect,
            "expect_rule": {"type": "string"}
            | doc("The rule expected to fire (default: this one)."),
        },
        ("name", "events", "expect"),
    )
    instant = {"type": "string", "pattern": DATETIME_PATTERN}
    return {
        "instant": instant | doc("A store-local date and time.", '"2026-03-03T15:00:00"'),
        "inlineTest": test | doc("An inline test run by `rayon check`."),
    }


def defs(config: Config | None) -> Schema:
    """Every definition the rule and policy schemas refer to (`#/$defs/<name>`)."""
    return (
        scalars()
        | _places(config)
        | _conditions()
        | _triggers()
        | _limits()
        | {"offer": _offer(config)}
        | _inline_tests()
    )
