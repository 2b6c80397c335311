"""The JSON Schemas of the marketers' files, for editors (docs/rules.md, docs/editor-setup.md).

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
from pathlib import Path

from gateway.config.model import Config
from gateway.events import Purpose
from gateway.rules.policy import PERIOD_WORDS
from gateway.rules.schema.defs import defs
from gateway.rules.schema.parts import (
    RULE_ID_PATTERN,
    Schema,
    doc,
    enum_of,
    obj,
    ref,
)

__all__ = [
    "BASE_ID",
    "DIALECT",
    "POLICY_SCHEMA_FILE",
    "RULE_SCHEMA_FILE",
    "policy_schema",
    "rules_schema",
    "write_schemas",
]

DIALECT = "https://json-schema.org/draft/2020-12/schema"
BASE_ID = "https://rayon.dev/schemas/rules/v1/"
RULE_SCHEMA_FILE = "rayon-rule.schema.json"
POLICY_SCHEMA_FILE = "rayon-policy.schema.json"


_PURPOSE_DOCS = {
    Purpose.COMMERCIAL.value: "commercial: a promotion; subject to holdout, quiet hours, pressure",
    Purpose.TRANSACTIONAL.value: "transactional: a service message; skips holdout, quiet hours, "
    "pressure (never consent)",
}


def _rule_properties() -> dict[str, Schema]:
    return {
        "id": {"type": ["string", "integer"], "pattern": RULE_ID_PATTERN}
        | doc("Unique id of the rule: letters, digits, - _ .", "id: tv-aisle-dwell"),
        "name": ref("text", "A readable name, shown in reports.", 'name: "TV -15 %"'),
        "purpose": enum_of([p.value for p in Purpose], _PURPOSE_DOCS)
        | doc("commercial or transactional.", "purpose: commercial"),
        "valid": obj({"from": ref("date"), "until": ref("date")})
        | doc("The campaign dates, both included.", "valid: {from: 2026-03-02, until: 2026-12-31}"),
        "when": ref("trigger"),
        "if": ref("conditions"),
        "then": obj({"offer": ref("offer")}, ("offer",)) | doc("What to send."),
        "limits": ref("limits"),
        "priority": {"type": "integer"}
        | doc("Higher wins when several rules match one event (default 0).", "priority: 10"),
        "holdout": ref("percent", "Control group: offers recorded, not sent.", "holdout: 10%"),
        "tests": {"type": "array", "items": ref("inlineTest")}
        | doc("Inline tests, run by `rayon check`."),
    }


def rules_schema(config: Config | None = None) -> Schema:
    """The JSON Schema of one rule file; with `config`, zone ids complete from its zones."""
    return {
        "$schema": DIALECT,
        "$id": f"{BASE_ID}rule.json",
        "title": "Rayon rule",
        **doc("One marketing rule of rules/ (one rule per file). See docs/rules.md."),
        "type": "object",
        "properties": _rule_properties(),
        "required": ["id", "name", "purpose", "when", "then"],
        "additionalProperties": False,
        "$defs": defs(config),
    }


def policy_schema() -> Schema:
    """The JSON Schema of `rules/policy.yaml` (store-wide pressure on commercial offers)."""
    at_least_one = {"type": "integer", "minimum": 1}
    caps = obj(dict.fromkeys(PERIOD_WORDS, at_least_one))
    props = {
        "quiet_hours": ref(
            "timeWindow", "No commercial offer then.", 'quiet_hours: {between: ["21:00", "08:00"]}'
        ),
        "pressure": obj({"per_customer": caps | doc("Offers per period.")}, ("per_customer",))
        | doc(
            "Commercial offers one customer may get, all rules.",
            "pressure: {per_customer: {day: 2, week: 5}}",
        ),
        "holdout": ref(
            "percent", "Default control group of rules without their own.", "holdout: 5%"
        ),
        "max_offers_per_visit": at_least_one
        | doc("Commercial offers per visit.", "max_offers_per_visit: 3"),
        "min_gap": ref(
            "duration", "Time between two commercial offers to one customer.", "min_gap: 5m"
        ),
        "max_offers_per_event": at_least_one
        | doc(
            "Offers one event may produce, highest priority first (default 1).",
            "max_offers_per_event: 1",
        ),
    }
    return {
        "$schema": DIALECT,
        "$id": f"{BASE_ID}policy.json",
        "title": "Rayon policy",
        **doc("rules/policy.yaml: store-wide marketing pressure. See docs/rules.md."),
        "type": "object",
        "properties": props,
        "additionalProperties": False,
        "$defs": defs(None),
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
