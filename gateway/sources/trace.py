"""Trace files (DESIGN.md §6): JSON Lines, one input per line, in the order received.

    {"at": 1772550031.25, "adv": {"anchor": "pi-tv", "address": "..", "rssi": -67,
        "manufacturer_data": {"76": "0215…"}, "service_data": {}, "local_name": null}}
    {"at": 1772550032.0, "mqtt": {"topic": "rayon/paris-11/phones/t1/sightings", "payload": {…}}}

A malformed line never stops a replay: `read_trace` yields a `TraceError` for it, which
says the file, the line and what is wrong, and goes on with the next line.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from gateway.events import Advertisement


@dataclass(frozen=True, slots=True)
class MqttInput:
    """An MQTT message as the gateway received it (payload already parsed from JSON)."""

    at: float
    topic: str
    payload: Any


@dataclass(frozen=True, slots=True)
class TraceError:
    file: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: error: {self.message}"


TraceItem = Advertisement | MqttInput


def adv_to_json(adv: Advertisement) -> dict[str, Any]:
    return {
        "at": adv.at,
        "adv": {
            "anchor": adv.anchor,
            "address": adv.address,
            "rssi": adv.rssi,
            "manufacturer_data": {str(k): v.hex() for k, v in adv.manufacturer_data.items()},
            "service_data": {k: v.hex() for k, v in adv.service_data.items()},
            "local_name": adv.local_name,
        },
    }


def mqtt_to_json(msg: MqttInput) -> dict[str, Any]:
    return {"at": msg.at, "mqtt": {"topic": msg.topic, "payload": msg.payload}}


def item_to_line(item: TraceItem) -> str:
    obj = adv_to_json(item) if isinstance(item, Advertisement) else mqtt_to_json(item)
    return json.dumps(obj, separators=(",", ":"))


def write_trace(items: Iterable[TraceItem], out: IO[str]) -> int:
    """Write items as JSON Lines; return how many were written."""
    n = 0
    for item in items:
        out.write(item_to_line(item) + "\n")
        n += 1
    return n


def _hex_map(raw: Any, what: str, int_keys: bool) -> dict[Any, bytes]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise ValueError(f"'{what}' must be an object of hex strings")
    out: dict[Any, bytes] = {}
    for key, value in raw.items():
        if not isinstance(value, str):
            raise ValueError(f"'{what}.{key}' must be a hex string")
        try:
            data = bytes.fromhex(value)
        except ValueError:
            raise ValueError(f"'{what}.{key}' is not valid hex: {value[:40]!r}") from None
        if int_keys:
            try:
                out[int(key)] = data
            except ValueError:
                raise ValueError(
                    f"'{what}' key {key!r} must be a decimal company id, e.g. \"76\" for Apple"
                ) from None
        else:
            out[str(key).lower()] = data
    return out


def parse_adv(at: float, raw: Any) -> Advertisement:
    """Build an Advertisement from the `adv` object of a trace line; ValueError if malformed."""
    if not isinstance(raw, Mapping):
        raise ValueError("'adv' must be an object")
    rssi = raw.get("rssi")
    if not isinstance(rssi, int | float) or isinstance(rssi, bool):
        raise ValueError("'adv.rssi' must be a number (dBm)")
    anchor = raw.get("anchor")
    if not isinstance(anchor, str) or not anchor:
        raise ValueError("'adv.anchor' must name the anchor that heard it")
    name = raw.get("local_name")
    return Advertisement(
        at=at,
        anchor=anchor,
        address=str(raw.get("address", "")),
        rssi=int(rssi),
        manufacturer_data=_hex_map(raw.get("manufacturer_data"), "manufacturer_data", True),
        service_data=_hex_map(raw.get("service_data"), "service_data", False),
        local_name=name if isinstance(name, str) else None,
    )


def parse_line(text: str) -> TraceItem:
    """Parse one trace line; ValueError says what is wrong."""
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON: {exc.msg} at column {exc.colno}") from None
    if not isinstance(obj, dict):
        raise ValueError("a trace line must be a JSON object")
    at = obj.get("at")
    if not isinstance(at, int | float) or isinstance(at, bool):
        raise ValueError("'at' must be epoch seconds (a number)")
    if "adv" in obj:
        return parse_adv(float(at), obj["adv"])
    if "mqtt" in obj:
        msg = obj["mqtt"]
        if not isinstance(msg, Mapping) or not isinstance(msg.get("topic"), str):
            raise ValueError("'mqtt' must be an object with a 'topic' string and a 'payload'")
        return MqttInput(float(at), msg["topic"], msg.get("payload"))
    raise ValueError("a trace line needs an 'adv' or an 'mqtt' object")


def iter_trace(lines: Iterable[str], name: str) -> Iterator[TraceItem | TraceError]:
    for lineno, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        try:
            yield parse_line(text)
        except ValueError as exc:
            yield TraceError(name, lineno, str(exc))


def read_trace(path: Path) -> Iterator[TraceItem | TraceError]:
    """Yield each input of a trace file, or a TraceError for a malformed line."""
    with path.open(encoding="utf-8") as fh:
        yield from iter_trace(fh, str(path))
