"""MQTT payloads, exactly as docs/mqtt.md writes them.  Pure: values in, JSON-able dicts out.

Outbound times are ISO 8601 with the store's UTC offset (`2026-03-03T15:00:40+01:00`);
inbound times may be ISO 8601 with an offset or epoch seconds.  Inbound payloads are
untrusted: `parse_feedback` reads them with `gateway.decode.jsonvalues` (size, depth, schema) and
returns an InboundError instead of raising, as every inbound parser does.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

from gateway.clock import MAX_AHEAD_S
from gateway.decode.jsonvalues import (
    Problem,
    decode,
    fail,
    guarded,
    mapping,
    show,
    timestamp,
)
from gateway.events import FeedbackState, Offer, ZoneEvent
from gateway.wire import jsonable

MAX_FEEDBACK_BYTES = 4096
UTC_ZONE = ZoneInfo("UTC")
PAYLOAD_VERSION = 1
_OFFER_ID = re.compile(r"[A-Za-z0-9_.~-]{1,128}")  # a UUID; no byte that could forge a log line


_STATES = tuple(s.value for s in FeedbackState)


class GatewayState(StrEnum):
    """The gateway's presence on `gateway/status` (the LWT says `offline`)."""

    ONLINE = "online"
    OFFLINE = "offline"


@dataclass(frozen=True, slots=True)
class Feedback:
    """One feedback message from the app: `offer` is the offer id, `at` epoch seconds."""

    offer: str
    state: FeedbackState
    at: float


def iso(at: float, tz: ZoneInfo) -> str:
    """ISO 8601 local time with offset; milliseconds only when `at` has a fraction."""
    spec = "seconds" if float(at).is_integer() else "milliseconds"
    return datetime.fromtimestamp(at, tz).isoformat(timespec=spec)


def offer_payload(offer: Offer, tz: ZoneInfo) -> dict[str, Any]:
    """The `offers/<token>` payload.  The token and customer id are never in it."""
    return {
        "type": "offer",
        "v": PAYLOAD_VERSION,
        "id": offer.id,
        "rule": offer.rule,
        "store": offer.store,
        "zone": offer.zone,
        "created_at": iso(offer.created_at, tz),
        "expires_at": iso(offer.expires_at, tz),
        "title": offer.title,
        "body": offer.body,
        "code": offer.code,
        "url": offer.url,
        "purpose": offer.purpose.value,
    }


def status_payload(
    state: GatewayState | str,
    version: str,
    started_at: float | None,
    counters: Mapping[str, int] | None = None,
    *,
    tz: ZoneInfo | None = None,
    rules: Mapping[str, Any] | None = None,
    degraded: Sequence[str] = (),
    devices: Mapping[str, int] | None = None,
) -> dict[str, Any]:
    """The retained `gateway/status` payload; `counters` (drops, errors …) when given.

    The per-topic-class counters `inbound_<outcome>:<class>` are given as the `inbound` table
    (class → outcome → count) instead of in `counters`; `devices` is what the tracked-device
    cap sees (`tracked`, `max`, `shed`).  Pass the store's `tz`; without it `started_at` is
    written in UTC.  ValueError for a state that is not online/offline.
    """
    payload: dict[str, Any] = {
        "state": GatewayState(state).value,
        "version": version,
        "started_at": iso(started_at, tz or UTC_ZONE) if started_at is not None else None,
    }
    if counters is not None:
        flat, table = inbound_table(counters)
        payload["counters"] = flat
        if table:
            payload["inbound"] = table
    if devices is not None:
        payload["devices"] = dict(devices)
    if rules is not None:
        payload["rules"] = dict(rules)
    if degraded:
        payload["degraded"] = list(degraded)
    return payload


INBOUND_OUTCOMES = ("received", "rejected", "not_ours", "too_old", "too_new", "dropped")


def inbound_table(counters: Mapping[str, int]) -> tuple[dict[str, int], dict[str, dict[str, int]]]:
    """Split `inbound_<outcome>:<class>` counters off into a class → outcome → count table;
    the other counters are returned as they are."""
    flat: dict[str, int] = {}
    table: dict[str, dict[str, int]] = {}
    for key, n in counters.items():
        name, _, cls = key.partition(":")
        outcome = name.removeprefix("inbound_")
        if cls and name.startswith("inbound_") and outcome in INBOUND_OUTCOMES:
            table.setdefault(cls, {})[outcome] = n
        else:
            flat[key] = n
    return flat, {c: table[c] for c in sorted(table)}


def occupancy_payload(count: int, at: float, tz: ZoneInfo) -> dict[str, Any]:
    """The retained, anonymous `zones/<zone>/occupancy` payload."""
    return {"count": count, "at": iso(at, tz)}


# One dot of `console/positions`: visit pseudonym, x, y (floor metres), accuracy (m), innermost
# zone or None.  A tuple, not a dataclass: thousands are built every second.
Dot = tuple[str, float, float, float, str | None]


def positions_payload(dots: Iterable[Dot], at: float, tz: ZoneInfo) -> dict[str, Any]:
    """The `console/positions` payload: the consenting customers tracked now, as anonymous
    dots named by their visit's pseudonym (never a device, customer id or token); metres to
    the centimetre."""
    return {
        "type": "positions",
        "v": PAYLOAD_VERSION,
        "at": iso(at, tz),
        "devices": [
            {"visit": v, "x": round(x, 2), "y": round(y, 2), "accuracy_m": round(a, 2), "zone": z}
            for v, x, y, a, z in dots
        ],
    }


def ticker_event_payload(event: ZoneEvent, visit: str, tz: ZoneInfo) -> dict[str, Any]:
    """A zone event on `console/ticker`, by its visit's pseudonym: no device, no customer."""
    return {
        "type": "zone_event",
        "v": PAYLOAD_VERSION,
        "at": iso(event.at, tz),
        "kind": event.kind.value,
        "zone": event.zone,
        "visit": visit,
    }


@dataclass(frozen=True, slots=True)
class TickerOffer:
    """An offer as `console/ticker` names it: its id, rule, zone and visit pseudonym."""

    offer: str
    rule: str
    zone: str | None
    visit: str


def ticker_offer_payload(shown: TickerOffer, state: str, at: float, tz: ZoneInfo) -> dict[str, Any]:
    """An offer decided, or its later change of state (`sent`, `expired`, `delivered` …), on
    `console/ticker`: never the customer, the token, nor what the offer says."""
    return {
        "type": "offer",
        "v": PAYLOAD_VERSION,
        "at": iso(at, tz),
        "offer": shown.offer,
        "rule": shown.rule,
        "zone": shown.zone,
        "state": state,
        "visit": shown.visit,
    }


def event_record(event: ZoneEvent) -> dict[str, Any]:
    """A zone event as plain values, `at` in epoch seconds: `rayon replay --events-out`
    (docs/trace.md) and the zone_events table."""
    return {
        "at": event.at,
        "kind": event.kind.value,
        "zone": event.zone,
        "device": event.device,
        "customer": event.customer,
        "dwell_s": event.dwell_s,
        "reason": jsonable(event.reason),
    }


def event_payload(event: ZoneEvent, tz: ZoneInfo) -> dict[str, Any]:
    """An `events` payload: ids only (device and CRM customer id), never a name."""
    return {"type": "event", "v": PAYLOAD_VERSION, **event_record(event), "at": iso(event.at, tz)}


def encode(payload: Mapping[str, Any]) -> bytes:
    """Compact UTF-8 JSON, non-ASCII kept readable (offer titles are in French)."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()


@guarded
def parse_feedback(
    payload: object, received_at: float, max_bytes: int = MAX_FEEDBACK_BYTES
) -> Feedback:
    """A `feedback/<token>` payload received at `received_at` (epoch s) as a Feedback, or an
    InboundError saying why it was refused and how to fix it.  Never raises.

    `at` may be late (an app offline for hours confirms late) but at most MAX_AHEAD_S after
    the receive time.
    """
    if isinstance(payload, bytes | bytearray | str) and len(payload) > max_bytes:
        fail(
            f"feedback payload is {len(payload)} bytes, the limit is {max_bytes}", Problem.TOO_LARGE
        )
    doc = mapping(decode(payload), "the feedback payload")
    version = doc.get("v")
    if doc.get("type") != "feedback" or type(version) is not int or version != PAYLOAD_VERSION:
        fail('feedback payload must have "type": "feedback" and "v": 1')
    offer = doc.get("offer")
    if not isinstance(offer, str) or not _OFFER_ID.fullmatch(offer):
        fail(f"'offer' must be the offer's id (1 to 128 of A-Z a-z 0-9 _ . ~ -), got {show(offer)}")
    state = doc.get("state")
    if state not in _STATES:
        fail(f"'state' must be one of {'|'.join(_STATES)}, got {show(state)}")
    if doc.get("at") is None:
        fail("'at' is missing: say when it happened, in epoch seconds or ISO 8601 with offset")
    at = timestamp(doc["at"], "at", received_at)
    if at > received_at + MAX_AHEAD_S:
        ahead = f"{at - received_at:.0f} s after it was received"
        fail(f"'at' is {ahead}, at most {MAX_AHEAD_S:.0f} s allowed: check the phone's clock")
    return Feedback(offer=offer, state=FeedbackState(state), at=at)
