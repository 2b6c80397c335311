"""Trace files (docs/trace.md): JSON Lines, one input per line, in the order received.

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

from gateway.decode.adverts import adv_to_json, parse_adv
from gateway.events import Advertisement, MqttInput, TraceItem


@dataclass(frozen=True, slots=True)
class TraceError:
    file: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: error: {self.message}"


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


def iter_trace(lines: Iterable[str], name: str, first: int = 1) -> Iterator[TraceItem | TraceError]:
    for lineno, text in enumerate(lines, start=first):
        if not text.strip():
            continue
        try:
            yield parse_line(text)
        except ValueError as exc:
            yield TraceError(name, lineno, str(exc))


def read_trace(path: Path) -> Iterator[TraceItem | TraceError]:
    """Yield each input of a trace file (gzip-compressed when its name ends in `.gz`, as the
    recording's segments), or a TraceError for a malformed line."""
    if path.name.endswith(".gz"):
        yield from read_gzip_trace(path)
        return
    with path.open(encoding="utf-8") as fh:
        yield from iter_trace(fh, str(path))


def read_gzip_trace(path: Path) -> Iterator[TraceItem | TraceError]:
    """A gzip-compressed trace; a file cut short (a gateway stopped mid-write) is read up
    to the cut, which is reported as one TraceError."""
    import gzip
    import zlib

    n = 0
    try:
        with gzip.open(path, "rt", encoding="utf-8", errors="replace") as fh:
            for n, text in enumerate(fh, start=1):
                if text.strip():
                    yield from iter_trace([text], str(path), n)
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        why = "is cut short" if isinstance(exc, EOFError) else f"is not valid gzip ({exc})"
        yield TraceError(str(path), n + 1, f"the compressed file {why}: read up to here")
