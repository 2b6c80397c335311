"""The building blocks of the marketers' JSON Schemas (see `gateway.rules.schema.export`): the value
patterns, small constructors that keep every object closed and documented, and the scalar
definitions (durations, clock times, dates, percentages, days).

Patterns follow gateway.rules.located and gateway.config.yamlconv.parse_duration.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from gateway.rules.model import Placeholder
from gateway.rules.timewindow import DAY_WORDS, ENGLISH_DAYS, FRENCH_DAYS

Schema = dict[str, Any]

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
_NAMES = [p.value.replace(".", r"\.") for p in Placeholder]
_ANY_ATTRIBUTE = r"customer\.attributes\.[A-Za-z0-9][A-Za-z0-9_.-]*"


def unknown_placeholder_pattern(attributes: Sequence[str] | None = None) -> str:
    """A pattern matching a placeholder the loader refuses.  `{customer.attributes.NAME}` is
    accepted for any NAME, or, given the attributes declared in config.yaml (strings and
    numbers), for those only."""
    names = list(_NAMES)
    if attributes is None:
        names.append(_ANY_ATTRIBUTE)
    elif attributes:
        escaped = (a.replace(".", r"\.") for a in attributes)  # ids: [A-Za-z0-9_.-]
        names.append(r"customer\.attributes\.(?:" + "|".join(escaped) + ")")
    return r"\{(?!\s*(?:" + "|".join(names) + r")\s*\})[^{}]*\}"


UNKNOWN_PLACEHOLDER_PATTERN = unknown_placeholder_pattern()
CODE_PLACEHOLDER_PATTERN = r"\{\s*code\s*\}"

SCALAR = ["string", "number", "boolean", "null"]
_DAYS = list(DAY_WORDS)


def doc(text: str, example: str | None = None) -> Schema:
    """`description` (plain) and, with an example, `markdownDescription` showing it."""
    out: Schema = {"description": text if example is None else f"{text} Example: {example}"}
    if example is not None:
        out["markdownDescription"] = f"{text}\n\n```yaml\n{example}\n```"
    return out


def ref(name: str, text: str | None = None, example: str | None = None) -> Schema:
    out: Schema = {"$ref": f"#/$defs/{name}"}
    return out | doc(text, example) if text else out


def obj(properties: Mapping[str, Schema], required: tuple[str, ...] = (), **more: Any) -> Schema:
    """A mapping that, like the loader, refuses keys it does not know."""
    out: Schema = {"type": "object", "properties": dict(properties)}
    if required:
        out["required"] = list(required)
    return out | {"additionalProperties": False} | more


def enum_of(values: list[str], docs: Mapping[str, str]) -> Schema:
    described = [docs.get(v, v) for v in values]
    return {"enum": values, "enumDescriptions": described, "markdownEnumDescriptions": described}


# -- scalars ------------------------------------------------------------------------------
def scalars() -> dict[str, Schema]:
    return {
        "duration": {
            "anyOf": [
                {"type": "string", "pattern": DURATION_PATTERN},
                {"type": "number", "minimum": 0},
            ],
            **doc("A duration: 30s, 5m, 2h, 90d, 1h30m (a bare number is seconds).", "2h"),
        },
        "clock": {
            "type": "string",
            "pattern": CLOCK_PATTERN,
            **doc('A store-local time of day "HH:MM", quoted.', '"14:00"'),
        },
        "date": {
            "type": "string",
            "pattern": DATE_PATTERN,
            "format": "date",
            **doc("A calendar date YYYY-MM-DD (store timezone).", "2026-03-02"),
        },
        "percent": {
            "type": "string",
            "pattern": PERCENT_PATTERN,
            **doc("A percentage between 0% and 100%, with the % sign.", "10%"),
        },
        "text": {"type": ["string", "number"]},
        "day": {
            "anyOf": [
                enum_of(_DAYS, {}),
                {
                    "type": "string",
                    "pattern": "^(?:" + "|".join(_any_case(d) for d in _DAYS) + ")$",
                },
            ],
            **doc(
                "A day of the week: "
                + ", ".join(ENGLISH_DAYS)
                + ", or in French "
                + ", ".join(FRENCH_DAYS)
                + "."
            ),
        },
    }


def _any_case(word: str) -> str:
    return "".join(f"[{c.lower()}{c.upper()}]" for c in word)


def one_or_list(item: Schema) -> Schema:
    return {"anyOf": [item, {"type": "array", "items": item}]}
