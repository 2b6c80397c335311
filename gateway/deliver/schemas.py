"""The JSON Schemas of the MQTT contract (docs/mqtt.md), shipped in the package.

    gateway/data/mqtt/<name>.json            one JSON Schema 2020-12 per payload
    gateway/data/mqtt/examples/<name>.json   one valid example of each

`schema("offer")` returns the schema as a dict, `names()` lists what exists.  Read-only
files, read on demand: the gateway itself does not validate with them at runtime (the
parsers in `gateway.deliver.payloads`, `gateway.identity.customers` and the pipeline do), so
`jsonschema` stays a test dependency.
"""

from __future__ import annotations

import json
from importlib.resources import files
from importlib.resources.abc import Traversable
from typing import Any

BASE_ID = "https://rayon.dev/schemas/mqtt/v1/"


def _folder() -> Traversable:
    return files("gateway").joinpath("data", "mqtt")


def names() -> list[str]:
    """The payload names that have a schema, sorted (`customer`, `event`, `feedback` …)."""
    return sorted(
        entry.name.removesuffix(".json")
        for entry in _folder().iterdir()
        if entry.is_file() and entry.name.endswith(".json")
    )


def _read(folder: Traversable, name: str, what: str) -> Any:
    if name not in names():
        raise KeyError(f"no MQTT {what} named {name!r}; known: {', '.join(names())}")
    return json.loads(folder.joinpath(f"{name}.json").read_text(encoding="utf-8"))


def schema(name: str) -> dict[str, Any]:
    """The JSON Schema of payload `name`; KeyError naming the known ones if there is none."""
    loaded: dict[str, Any] = _read(_folder(), name, "schema")
    return loaded


def example(name: str) -> Any:
    """The shipped example message of payload `name` (an object, or a list for `scanner_adv`)."""
    return _read(_folder().joinpath("examples"), name, "example")


def schema_id(name: str) -> str:
    """The `$id` a schema of this version carries: `https://rayon.dev/schemas/mqtt/v1/<name>.json`."""
    return f"{BASE_ID}{name}.json"
