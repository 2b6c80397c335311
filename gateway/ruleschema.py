"""The JSON Schemas of the marketers' files, for editors (DESIGN §4, docs/editor-setup.md).

    rules_schema(config=None) -> dict   one rule file, `rules/<rule>.yaml`
    policy_schema() -> dict             `rules/policy.yaml`
    write_schemas(folder, config=None)  both, as `rayon-rule.schema.json` and
                                        `rayon-policy.schema.json` (`rayon schema rules -o DIR`)

JSON Schema 2020-12, written with the keywords draft-07 validators also understand (no
`prefixItems`, no `unevaluatedProperties`), because the VS Code YAML extension
(yaml-language-server) validates with draft-07 semantics.  The loader (`gateway.rules`) stays
the judge: the schema gives completion, hover help and red squiggles while typing, and
rejects what it can see in one file; what needs more (an end date before a start date, a
duplicate rule id, an unknown zone when no config was given) is left to `rayon check`.

With a `Config`, zone operands and triggers get an enum of the store's zone and geofence ids
(with their names), so the editor completes them; without one they are free text.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from gateway.config import Config
from gateway.events import Purpose
from gateway.rules.conditions import FIELDS, OPERATORS, ZONE_PLACEHOLDER, Field, Operand
from gateway.rules.model import Period, Placeholder, StepKind
from gateway.rules.testspec import EXPECT_FIELDS
from gateway.rules.timewindow import Weekday

Schema = dict[str, Any]

DIALECT = "https://json-schema.org/draft/2020-12/schema"
BASE_ID = "https://rayon.dev/schemas/rules/v1/"
RULE_SCHEMA_FILE = "rayon-rule.schema.json"
POLICY_SCHEMA_FILE = "rayon-policy.schema.json"

# Patterns follow gateway.rules.located and gateway.yamlconv.parse_duration.
DURATION_PATTERN = (
    r"^\s*(?:\d+(?:\.\d+)?\s*(?:ms|s|m|h|d|w|y)\s*)+$"
    r"|^\s*\+?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?\s*$"
)
CLOCK_PATTERN = r"^(?:[01]?\d|2[0-3]):[0-5]\d$"
# A real calendar date: 2026-02-30 is refused, 2028-02-29 accepted.
DATE_PATTERN = (
    r"^(?:\d{4}-(?:(?:0[13578]|1[02])-(?:0[1-9]|[12]\d|3[01])|(?:0[469]|11)-(?:0[1-9]|[12]\d|30)"
    r"|02-(?:0[1-9]|1\d|2[0-8]))"
    r"|(?:\d\d(?:0[48]|[2468][048]|[13579][26])|(?:[02468][048]|[13579][26])00)-02-29)$"
)
PERCENT_PATTERN = r"^(?:0*100(?:\.0+)?|0*\d{1,2}(?:\.\d+)?)\s*%$"
RULE_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
DATETIME_PATTERN = (
    r"^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}(?::\d{2}(?::\d{2}(?:\.\d+)?)?)?"
    r"(?:Z|[+-]\d{2}(?::?\d{2})?)?)?$"
)
_NAMES = "|".join(p.value.replace(".", r"\.") for p in Placeholder)
UNKNOWN_PLACEHOLDER_PATTERN = r"\{(?!\s*(?:" + _NAMES + r")\s*\})[^{}]*\}"
CODE_PLACEHOLDER_PATTERN = r"\{\s*code\s*\}"

_SCALAR = ["string", "number", "boolean", "null"]
_DAYS = [d.name.lower() for d in Weekday]


def _doc(text: str, example: str | None = None) -> Schema:
    """`description` (plain) and, with an example, `markdownDescription` showing it."""
    out: Schema = {"description": text if example is None else f"{text} Example: {example}"}
    if example is not None:
        out["markdownDescription"] = f"{text}\n\n```yaml\n{example}\n```"
    return out


def _ref(name: str, text: str | None = None, example: str | None = None) -> Schema:
    out: Schema = {"$ref": f"#/$defs/{name}"}
    return out | _doc(text, example) if text else out


def _obj(properties: Mapping[str, Schema], required: tuple[str, ...] = (), **more: Any) -> Schema:
    """A mapping that, like the loader, refuses keys it does not know."""
    out: Schema = {"type": "object", "properties": dict(properties)}
    if required:
        out["required"] = list(required)
    return out | {"additionalProperties": False} | more


def _enum(values: list[str], docs: Mapping[str, str]) -> Schema:
    described = [docs.get(v, v) for v in values]
    return {"enum": values, "enumDescriptions": described, "markdownEnumDescriptions": described}


# -- scalars ------------------------------------------------------------------------------
def _scalars() -> dict[str, Schema]:
    return {
        "duration": {
            "anyOf": [
                {"type": "string", "pattern": DURATION_PATTERN},
                {"type": "number", "minimum": 0},
            ],
            **_doc("A duration: 30s, 5m, 2h, 90d, 1h30m (a bare number is seconds).", "2h"),
        },
        "clock": {
            "type": "string",
            "pattern": CLOCK_PATTERN,
            **_doc('A store-local time of day "HH:MM", quoted.', '"14:00"'),
        },
        "date": {
            "type": "string",
            "pattern": DATE_PATTERN,
            "format": "date",
            **_doc("A calendar date YYYY-MM-DD (store timezone).", "2026-03-02"),
        },
        "percent": {
            "type": "string",
            "pattern": PERCENT_PATTERN,
            **_doc("A percentage between 0% and 100%, with the % sign.", "10%"),
        },
        "text": {"type": ["string", "number"]},
        "day": {
            "anyOf": [
                _enum(_DAYS, {}),
                {
                    "type": "string",
                    "pattern": "^(?:" + "|".join(_any_case(d) for d in _DAYS) + ")$",
                },
            ],
            **_doc("A day of the week: mon, tue, wed, thu, fri, sat, sun."),
        },
    }


def _any_case(word: str) -> str:
    return "".join(f"[{c.lower()}{c.upper()}]" for c in word)


# -- places -------------------------------------------------------------------------------
def _places(config: Config | None) -> dict[str, Schema]:
    zone: Schema = {"type": "string", "minLength": 1}
    place = dict(zone)
    if config is not None:
        names = {z.id: f"{z.name} (zone)" for z in config.zones}
        zone |= _enum(list(names), names)
        names |= {g.id: f"{g.name} (geofence)" for g in config.geofences}
        place |= _enum(list(names), names)
    operand = {"anyOf": [{"const": ZONE_PLACEHOLDER}, _ref("place")]}
    return {
        "zone": zone | _doc("A zone id of the store's config.yaml.", "aisle-tv"),
        "zones": _one_or_list(_ref("zone"))
        | _doc("A zone id or a list.", "[aisle-tv, aisle-audio]"),
        "place": place | _doc("A zone or geofence id of the store's config.yaml.", "parking"),
        "places": _one_or_list(_ref("place"))
        | _doc("A zone or geofence id, or a list.", "parking"),
        "placeOperand": operand
        | _doc('A zone or geofence id, or "{zone}" for the zone of the event.', '"{zone}"'),
    }


def _one_or_list(item: Schema) -> Schema:
    return {"anyOf": [item, {"type": "array", "items": item}]}


# -- conditions ---------------------------------------------------------------------------
def _operand(kind: Operand, field: Field) -> Schema:
    if kind is Operand.DURATION or (kind is Operand.NUMBER and field.duration):
        return _ref("duration")
    if kind is Operand.NUMBER:
        return {"type": "number"}
    one = _ref("placeOperand") if field.zones else {"type": _SCALAR}
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
    return _obj(ops, minProperties=1) | _doc(
        f"Condition on {name}; operators: {', '.join(field.operators)}.", example
    )


_ATTRIBUTE_FIELD = Field(lambda c: None, tuple(OPERATORS))


def _conditions() -> dict[str, Schema]:
    fields = {name: _field_schema(name, f) for name, f in FIELDS.items()}
    blocks = {
        "any": _ref("conditions", "At least one of these conditions holds.", "any: [...]"),
        "not": {
            "anyOf": [_ref("conditions"), _ref("condition")],
            **_doc(
                "None of these holds (a condition or a list).", "not: {customer.tier: {is: gold}}"
            ),
        },
        "time": _ref("timeWindow"),
        "date": _ref("dateRange"),
    }
    attributes = _field_schema("customer.attributes.<key>", _ATTRIBUTE_FIELD)
    condition = _obj(fields | blocks, patternProperties={r"^customer\.attributes\..+$": attributes})
    text = "One condition per key, e.g. `customer.tier: {in: [silver, gold]}`; all must hold."
    return {
        "condition": condition | _doc(text, "- customer.interests: {has: tv}"),
        "conditions": {"type": "array", "items": _ref("condition")}
        | _doc("Conditions that must all hold.", '- time: {between: ["14:00", "19:00"]}'),
        "timeWindow": _obj(
            {
                "between": {
                    "type": "array",
                    "items": _ref("clock"),
                    "minItems": 2,
                    "maxItems": 2,
                    **_doc("Start and end, store time; may cross midnight.", '["21:00", "08:00"]'),
                },
                "days": {
                    "anyOf": [_ref("day"), {"type": "array", "items": _ref("day")}],
                    **_doc("Days the window starts on.", "[mon, tue, wed, thu, fri]"),
                },
            },
            minProperties=1,
        )
        | _doc(
            "A time-of-day window, store time (DST-correct).", 'time: {between: ["14:00", "19:00"]}'
        ),
        "dateRange": _obj(
            {
                "between": {
                    "type": "array",
                    "items": _ref("date"),
                    "minItems": 2,
                    "maxItems": 2,
                    **_doc("First and last day, both included.", '["2026-12-01", "2026-12-24"]'),
                },
                "days_of_month": {
                    "anyOf": [_day_of_month(), {"type": "array", "items": _day_of_month()}],
                    **_doc("Days of the month, 1 to 31.", "[1, 15]"),
                },
            },
            minProperties=1,
        )
        | _doc("Calendar days, store time.", 'date: {between: ["2026-12-01", "2026-12-24"]}'),
    }


def _day_of_month() -> Schema:
    return {"type": "integer", "minimum": 1, "maximum": 31}


# -- when ---------------------------------------------------------------------------------
def _triggers() -> dict[str, Schema]:
    place = _ref("places", "Where: a zone or geofence id, or a list of them.", "parking")
    zone = _ref("zones", "Where: a zone id, or a list of them (geofences: enter/exit only).")
    on_zone = {"anyOf": [_ref("places"), _obj({"zone": place}, ("zone",))]}
    on_visit = {"anyOf": [{"type": "null"}, _ref("zones"), _obj({"zone": zone})]}
    threshold = _ref("duration", "How long the customer must stay (more than 0s).", "30s")
    absent = _obj(
        {
            "for": _ref("duration", "How long since the customer's last visit.", "60d"),
            "at": _ref("clock", "Store-local time of the daily check.", '"10:00"'),
        },
        ("for", "at"),
    )
    props = {
        "enter": on_zone | _doc("When the customer enters a zone.", "enter: {zone: entrance}"),
        "exit": on_zone | _doc("When the customer leaves a zone.", "exit: {zone: checkout}"),
        "dwell": _obj({"zone": zone, "at_least": threshold}, ("zone", "at_least"))
        | _doc(
            "When the customer has stayed long enough.", "dwell: {zone: aisle-tv, at_least: 30s}"
        ),
        "visit_start": on_visit | _doc("When a visit of the store begins.", "visit_start:"),
        "visit_end": on_visit | _doc("When a visit ends.", "visit_end:"),
        "absent": absent
        | _doc(
            "Daily, for customers not seen for a while (win-back).",
            'absent: {for: 60d, at: "10:00"}',
        ),
    }
    text = "The one trigger of the rule: " + ", ".join(props) + "."
    return {"trigger": _obj(props, minProperties=1, maxProperties=1) | _doc(text)}


# -- then, limits, validity ---------------------------------------------------------------
def _template(what: str, example: str) -> Schema:
    text = f"{what}; placeholders: " + ", ".join(f"{{{p.value}}}" for p in Placeholder) + "."
    unknown = {"type": "string", "pattern": UNKNOWN_PLACEHOLDER_PATTERN}
    return {"type": ["string", "number"], "not": unknown} | _doc(text, example)


def _offer() -> Schema:
    uses_code = {"type": "string", "pattern": CODE_PLACEHOLDER_PATTERN}
    props = {
        "title": _template("The notification title", 'title: "-15 % sur les TV"'),
        "body": _template("The notification text", 'body: "Code {code} au {zone_name}."'),
        "code": _ref("text", "One fixed code shown to every customer.", "code: TV15"),
        "code_pool": {"type": ["string", "number"], "pattern": RULE_ID_PATTERN}
        | _doc(
            "A pool of unique codes, one per customer (imported beforehand).", "code_pool: tv15"
        ),
        "url": {"type": "string"}
        | _doc("Where the app opens the offer.", 'url: "rayon://offers/tv15"'),
        "expires_in": _ref("duration", "How long the offer stays valid (default 1h).", "3h"),
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
    return _obj(props, ("title",), allOf=[needs_code, one_code]) | _doc(
        "The offer sent to the phone (a fixed code or a code_pool, not both)."
    )


_PERIOD_DOCS = {
    "visit": "visit: during one visit of the store",
    "day": "day: per calendar day, store time",
    "week": "week: per calendar week (Monday to Sunday), store time",
    "30d": "30d: over the last 30 days",
    "lifetime": "lifetime: ever",
}


def _limits() -> dict[str, Schema]:
    at_least_one = {"type": "integer", "minimum": 1}
    per = _enum([p.value for p in Period], _PERIOD_DOCS) | _doc("The period the cap counts over.")
    per_customer = _obj({"max": at_least_one, "per": per}, ("max",))
    text = "How often one customer may get the offer."
    return {
        "period": per,
        "limits": _obj(
            {
                "per_customer": per_customer | _doc(text, "per_customer: {max: 1, per: day}"),
                "total": _obj({"max": at_least_one}, ("max",))
                | _doc("Campaign budget: offers sent in all.", "total: {max: 500}"),
                "cooldown": _ref(
                    "duration", "Minimum time between two offers to one customer.", "2h"
                ),
            }
        )
        | _doc("Caps of this rule (commercial rules should have one).", "limits: {cooldown: 2h}"),
    }


# -- inline tests -------------------------------------------------------------------------
def _inline_tests() -> dict[str, Schema]:
    names = {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]}
    flag = {"type": "boolean"}
    customer = _obj(
        {
            **{k: _ref("text") for k in ("id", "token", "first_name", "tier")},
            "segments": names,
            "interests": names,
            "visits": {"type": "integer", "minimum": 0},
            "last_visit": {"anyOf": [{"type": "number"}, _ref("instant")]},
            "attributes": {"type": "object"},
            "consent": _obj({"instore_location": flag, "marketing_push": flag}),
        }
    ) | _doc("The test customer (consent defaults to yes).", "customer: {interests: [tv]}")
    kinds: Schema = {k.value: {"anyOf": [_ref("place"), {"type": "null"}]} for k in StepKind}
    kinds[StepKind.ABSENT_CHECK.value] = {"const": True} | _doc(
        "The daily run of absent rules at this time.", "absent_check: true"
    )
    codes = _one_or_list(_ref("text"))
    pools = {"type": "object", "additionalProperties": codes} | _doc(
        "Code pools of the test: pool id → codes.", "pools: {winback20: [WB-0001, WB-0002]}"
    )
    step = _obj({"at": _ref("instant"), **kinds}, ("at",), minProperties=2, maxProperties=2)
    value = {"anyOf": [{"type": _SCALAR}, {"type": "array", "items": {"type": _SCALAR}}]}
    expect = {
        "anyOf": [
            {"enum": ["offer", "none"]},
            _obj({"offers": {"type": "integer", "minimum": 0}}, ("offers",)),
            _obj({"offer": _obj(dict.fromkeys(EXPECT_FIELDS, value))}, ("offer",)),
        ]
    } | _doc("offer, none, {offers: N} or {offer: {title: …}}.", "expect: offer")
    test = _obj(
        {
            "name": _ref("text", "What the test shows."),
            "customer": customer,
            "pools": pools,
            "events": {"type": "array", "items": step}
            | _doc(
                "The walk, in time order.", 'events: [{at: "2026-03-03T15:00:00", enter: aisle-tv}]'
            ),
            "expect": expect,
            "expect_rule": {"type": "string"}
            | _doc("The rule expected to fire (default: this one)."),
        },
        ("name", "events", "expect"),
    )
    instant = {"type": "string", "pattern": DATETIME_PATTERN}
    return {
        "instant": instant | _doc("A store-local date and time.", '"2026-03-03T15:00:00"'),
        "inlineTest": test | _doc("An inline test run by `rayon check`."),
    }


# -- documents ----------------------------------------------------------------------------
def _defs(config: Config | None) -> Schema:
    return (
        _scalars()
        | _places(config)
        | _conditions()
        | _triggers()
        | _limits()
        | {"offer": _offer()}
        | _inline_tests()
    )


_PURPOSE_DOCS = {
    Purpose.COMMERCIAL.value: "commercial: a promotion; subject to holdout, quiet hours, pressure",
    Purpose.TRANSACTIONAL.value: "transactional: a service message; skips holdout, quiet hours, "
    "pressure (never consent)",
}


def _rule_properties() -> dict[str, Schema]:
    return {
        "id": {"type": ["string", "integer"], "pattern": RULE_ID_PATTERN}
        | _doc("Unique id of the rule: letters, digits, - _ .", "id: tv-aisle-dwell"),
        "name": _ref("text", "A readable name, shown in reports.", 'name: "TV -15 %"'),
        "purpose": _enum([p.value for p in Purpose], _PURPOSE_DOCS)
        | _doc("commercial or transactional.", "purpose: commercial"),
        "valid": _obj({"from": _ref("date"), "until": _ref("date")})
        | _doc(
            "The campaign dates, both included.", "valid: {from: 2026-03-02, until: 2026-04-26}"
        ),
        "when": _ref("trigger"),
        "if": _ref("conditions"),
        "then": _obj({"offer": _ref("offer")}, ("offer",)) | _doc("What to send."),
        "limits": _ref("limits"),
        "priority": {"type": "integer"}
        | _doc("Higher wins when several rules match one event (default 0).", "priority: 10"),
        "holdout": _ref("percent", "Control group: offers recorded, not sent.", "holdout: 10%"),
        "tests": {"type": "array", "items": _ref("inlineTest")}
        | _doc("Inline tests, run by `rayon check`."),
    }


def rules_schema(config: Config | None = None) -> Schema:
    """The JSON Schema of one rule file; with `config`, zone ids complete from its zones."""
    return {
        "$schema": DIALECT,
        "$id": f"{BASE_ID}rule.json",
        "title": "Rayon rule",
        **_doc("One marketing rule of rules/ (one rule per file). See docs/rules.md."),
        "type": "object",
        "properties": _rule_properties(),
        "required": ["id", "name", "purpose", "when", "then"],
        "additionalProperties": False,
        "$defs": _defs(config),
    }


def policy_schema() -> Schema:
    """The JSON Schema of `rules/policy.yaml` (store-wide pressure on commercial offers)."""
    at_least_one = {"type": "integer", "minimum": 1}
    caps = _obj({p.value: at_least_one for p in Period})
    props = {
        "quiet_hours": _ref(
            "timeWindow", "No commercial offer then.", 'quiet_hours: {between: ["21:00", "08:00"]}'
        ),
        "pressure": _obj({"per_customer": caps | _doc("Offers per period.")}, ("per_customer",))
        | _doc(
            "Commercial offers one customer may get, all rules.",
            "pressure: {per_customer: {day: 2, week: 5}}",
        ),
        "holdout": _ref(
            "percent", "Default control group of rules without their own.", "holdout: 5%"
        ),
        "max_offers_per_visit": at_least_one
        | _doc("Commercial offers per visit.", "max_offers_per_visit: 3"),
        "min_gap": _ref(
            "duration", "Time between two commercial offers to one customer.", "min_gap: 5m"
        ),
        "max_offers_per_event": at_least_one
        | _doc(
            "Offers one event may produce, highest priority first (default 1).",
            "max_offers_per_event: 1",
        ),
    }
    return {
        "$schema": DIALECT,
        "$id": f"{BASE_ID}policy.json",
        "title": "Rayon policy",
        **_doc("rules/policy.yaml: store-wide marketing pressure. See docs/rules.md."),
        "type": "object",
        "properties": props,
        "additionalProperties": False,
        "$defs": _defs(None),
    }


def write_schemas(folder: Path, config: Config | None = None) -> list[Path]:
    """Write both schemas into `folder` (created if needed); return the files written."""
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for name, schema in (
        (RULE_SCHEMA_FILE, rules_schema(config)),
        (POLICY_SCHEMA_FILE, policy_schema()),
    ):
        path = folder / name
        path.write_text(json.dumps(schema, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        out.append(path)
    return out
