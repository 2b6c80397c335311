"""The console's live messages (docs/mqtt.md) checked and parsed into values.

Each parser takes the decoded JSON object of one message and returns typed values, or raises
`Malformed` saying what is wrong; nothing here logs or keeps state.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

MAX_DOTS = 5000
# 5000 dots of ~110 bytes each fit; anything larger is refused before it is parsed
MAX_PAYLOAD = 1_000_000
VISIT = re.compile(r"v-[0-9a-f]{12}")
_NAME = re.compile(r"[A-Za-z0-9_.:~-]{1,128}")  # a zone, rule or offer id
ZONE_KINDS = frozenset({"enter", "exit", "dwell", "visit_start", "visit_end"})
OFFER_STATES = frozenset(
    {"pending", "sent", "holdout", "dropped", "cancelled", "expired", "delivered"}
)


class Malformed(ValueError):
    """A live message that is not what docs/mqtt.md says (the reason is the message)."""


@dataclass(frozen=True, slots=True)
class Dot:
    """One consenting, tracked device on the map: its visit pseudonym, where, how sure."""

    visit: str
    x: float
    y: float
    accuracy_m: float
    zone: str | None


@dataclass(frozen=True, slots=True)
class TickerLine:
    """One zone event (`what` = its kind) or offer decision (`what` = its rule)."""

    at: str
    type: str
    what: str
    zone: str | None
    state: str | None
    visit: str


@dataclass(frozen=True, slots=True)
class RulesStatus:
    """The gateway's last rule reload, from `gateway/status` `rules`."""

    loaded_at: str | None
    count: int | None
    error: str | None


def parse_json(payload: bytes) -> Mapping[str, Any]:
    """The JSON object of a payload (at most MAX_PAYLOAD bytes)."""
    if len(payload) > MAX_PAYLOAD:
        raise Malformed(f"{len(payload)} bytes, more than the {MAX_PAYLOAD} a message may have")
    try:
        data = json.loads(payload)
    except (ValueError, UnicodeDecodeError) as exc:
        raise Malformed(f"not JSON ({exc})") from None
    except RecursionError:  # [[[[… deeper than the parser goes: would end the feed's task
        raise Malformed("not JSON (nested too deeply)") from None
    if not isinstance(data, dict):
        raise Malformed("not a JSON object")
    return data


def at_of(data: Mapping[str, Any]) -> str:
    """The message's `at`, an ISO 8601 time (kept as the gateway wrote it)."""
    at = data.get("at")
    if not isinstance(at, str) or len(at) > 40:
        raise Malformed("'at' must be an ISO 8601 time")
    try:
        datetime.fromisoformat(at)
    except ValueError:
        raise Malformed(f"'at' {at[:40]!r} is not an ISO 8601 time") from None
    return at


def _typed(data: Mapping[str, Any], wanted: str) -> None:
    if data.get("type") != wanted or data.get("v") != 1:
        raise Malformed(f"expected type {wanted!r} version 1")


def _visit(data: Mapping[str, Any]) -> str:
    visit = data.get("visit")
    if not isinstance(visit, str) or not VISIT.fullmatch(visit):
        raise Malformed("'visit' must be a pseudonym v-<12 hex digits>")
    return visit


def _name(data: Mapping[str, Any], key: str, *, optional: bool = False) -> str | None:
    value = data.get(key)
    if value is None and optional:
        return None
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise Malformed(f"'{key}' must be an id of letters, digits, '-', '_', '.'")
    return value


def _number(data: Mapping[str, Any], key: str) -> float:
    value = data.get(key)
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        raise Malformed(f"'{key}' must be a finite number")
    return float(value)


def dots_of(data: Mapping[str, Any]) -> tuple[Dot, ...]:
    """The devices of a `console/positions` message."""
    _typed(data, "positions")
    devices = data.get("devices")
    if not isinstance(devices, list) or len(devices) > MAX_DOTS:
        raise Malformed(f"'devices' must be a list of at most {MAX_DOTS} devices")
    return tuple(_dot(d) for d in devices)


def _dot(item: object) -> Dot:
    if not isinstance(item, dict):
        raise Malformed("each device must be an object")
    accuracy = _number(item, "accuracy_m")
    if accuracy < 0:
        raise Malformed("'accuracy_m' must not be negative")
    x, y = _number(item, "x"), _number(item, "y")
    return Dot(_visit(item), x, y, accuracy, _name(item, "zone", optional=True))


def ticker_line(data: Mapping[str, Any]) -> TickerLine:
    """A `console/ticker` message: a zone event or an offer decision."""
    at, visit, zone = at_of(data), _visit(data), _name(data, "zone", optional=True)
    if data.get("type") == "zone_event":
        _typed(data, "zone_event")
        kind = data.get("kind")
        if kind not in ZONE_KINDS:
            raise Malformed(f"'kind' must be one of {', '.join(sorted(ZONE_KINDS))}")
        return TickerLine(at, "zone_event", str(kind), zone, None, visit)
    _typed(data, "offer")
    state = data.get("state")
    if state not in OFFER_STATES:
        raise Malformed(f"'state' must be one of {', '.join(sorted(OFFER_STATES))}")
    _name(data, "offer")
    rule = _name(data, "rule")
    return TickerLine(at, "offer", str(rule), zone, str(state), visit)


def rules_of(value: object) -> RulesStatus | None:
    """`gateway/status` `rules` (None when absent)."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise Malformed("'rules' must be an object")
    count, error, loaded = value.get("count"), value.get("error"), value.get("loaded_at")
    if count is not None and (not isinstance(count, int) or isinstance(count, bool)):
        raise Malformed("'rules.count' must be an integer")
    if error is not None and not isinstance(error, str):
        raise Malformed("'rules.error' must be a string or null")
    if loaded is not None and (not isinstance(loaded, str) or len(loaded) > 40):
        raise Malformed("'rules.loaded_at' must be an ISO 8601 time")
    return RulesStatus(loaded, count, error[:2000] if error is not None else None)
