"""Inbound MQTT payloads from phones and scanner nodes, parsed and validated.  Pure.

DESIGN.md §5 topics, one parser each:

    phones/<token>/sightings      parse_sightings           → Sightings (mode B observations)
    scanners/<node>/adv           parse_scanner_adv         → list[Advertisement] (mode A)
    phones/<token>/location       parse_owntracks_location  → Location (GPS, for geofences)
    phones/<token>/transition     parse_owntracks_transition→ Transition (the phone's regions)
    espresense/devices/<id>/<room> parse_espresense         → Observation (mode A, ESPresense)

No parser raises on untrusted input: each returns its value or an `InboundError` whose `reason`
says what is wrong, where, and how to fix it ("'beacons[2].rssi' must be a number of dBm …").
A payload is either bytes (live MQTT), JSON text, or an already parsed JSON value (trace files,
DESIGN.md §6).  Bytes and text longer than `MAX_PAYLOAD_BYTES` are rejected before any parsing.
Inbound times are epoch seconds or ISO 8601 with a UTC offset; a message without one takes the
receive time the caller gives.  Signal strengths are dBm from -127 to 20.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, NoReturn, ParamSpec, TypeVar

from gateway.events import Advertisement, Observation
from gateway.ids import canonical_device_id, ibeacon_id
from gateway.sources.trace import parse_adv

MAX_PAYLOAD_BYTES = 64 * 1024
MAX_ADVERTS = 500  # adverts in one scanners/<node>/adv message
MAX_BEACONS = 200  # beacons in one phones/<token>/sightings message
RSSI_MIN, RSSI_MAX = -127, 20
MAX_EPOCH_S = 1e11  # beyond year 5000: surely milliseconds
MAX_ACCURACY_M = 1_000_000.0

_P = ParamSpec("_P")
_T = TypeVar("_T")


class Problem(StrEnum):
    """Why a message was refused, for counters: only MALFORMED means a sender to fix."""

    MALFORMED = "malformed"  # not JSON, wrong shape, type or range
    TOO_LARGE = "too_large"  # over MAX_PAYLOAD_BYTES, or too many items
    NOT_OURS = "not_ours"  # well formed, but nothing Rayon tracks (another _type, a phone's MAC)


@dataclass(frozen=True, slots=True)
class InboundError:
    """A refused inbound message: `reason` says what is wrong and how to fix it."""

    reason: str
    problem: Problem = Problem.MALFORMED

    def __str__(self) -> str:
        return self.reason


@dataclass(frozen=True, slots=True)
class Sightings:
    """A phone's ranging report as observations `phone:<token>` → store beacon anchor.

    `unknown_beacons` counts beacons that are no anchor of this store (skipped);
    `unmeasured` those reported with rssi 0, iOS's value for "could not measure" (skipped).
    """

    observations: tuple[Observation, ...]
    unknown_beacons: int = 0
    unmeasured: int = 0


@dataclass(frozen=True, slots=True)
class Location:
    """A GPS fix reported by the app (OwnTracks `_type: location`); `acc_m` None if unknown."""

    at: float
    lat: float
    lon: float
    acc_m: float | None = None


class TransitionEvent(StrEnum):
    ENTER = "enter"
    LEAVE = "leave"


class Trigger(StrEnum):
    """What made the phone report a transition (OwnTracks `t`)."""

    CIRCULAR = "c"  # a circular region monitored by the phone
    BEACON = "b"  # a beacon region
    LOCATION = "l"  # decided from a location fix


@dataclass(frozen=True, slots=True)
class Transition:
    """The phone's own region monitoring says it entered or left a region.

    `rid` (region id) and `desc` (its name) name the region; at least one is present.
    `lat`, `lon`, `acc_m` say where the phone was, when it said so.
    """

    at: float
    event: TransitionEvent
    rid: str | None = None
    desc: str | None = None
    trigger: Trigger | None = None
    lat: float | None = None
    lon: float | None = None
    acc_m: float | None = None

    @property
    def enter(self) -> bool:
        return self.event is TransitionEvent.ENTER

    @property
    def names(self) -> tuple[str, ...]:
        """The names the region goes by, region id first (for `GeofenceTracker.transition`)."""
        return tuple(n for n in (self.rid, self.desc) if n is not None)


_TRIGGERS = frozenset(t.value for t in Trigger)


class _Bad(Exception):
    """Internal: aborts a parse; the public parser turns it into an InboundError."""

    def __init__(self, reason: str, problem: Problem = Problem.MALFORMED) -> None:
        super().__init__(reason)
        self.error = InboundError(reason, problem)


def _guarded(fn: Callable[_P, _T]) -> Callable[_P, _T | InboundError]:
    @functools.wraps(fn)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _T | InboundError:
        try:
            return fn(*args, **kwargs)
        except _Bad as bad:
            return bad.error

    return wrapper


# -- the parsers ---------------------------------------------------------------------------


@_guarded
def parse_sightings(
    payload: object, token: str, received_at: float, beacon_anchor: Mapping[str, str]
) -> Sightings:
    """`{"at", "beacons": [{"uuid", "major", "minor", "rssi", "tx_power"}]}` (mode B).

    `beacon_anchor` maps a store beacon's canonical id to its anchor id.  A beacon of another
    store is skipped and counted, never an error; a malformed beacon refuses the message.
    """
    device = _phone(token)
    body = _object(_decode(payload), "the sightings payload")
    at = _time(body.get("at"), "at", received_at)
    beacons = body.get("beacons")
    if not isinstance(beacons, list):
        _fail("'beacons' must be a list of {uuid, major, minor, rssi, tx_power} objects")
    _limit(len(beacons), MAX_BEACONS, "beacons")
    found, unknown, unmeasured = [], 0, 0
    for i, raw in enumerate(beacons):
        beacon, rssi, tx_power = _beacon(raw, f"beacons[{i}]")
        anchor = beacon_anchor.get(beacon)
        if rssi == 0:
            unmeasured += 1
        elif anchor is None:
            unknown += 1
        else:
            found.append(Observation(at, device, anchor, rssi, tx_power))
    return Sightings(tuple(found), unknown, unmeasured)


@_guarded
def parse_scanner_adv(payload: object, node: str, received_at: float) -> list[Advertisement]:
    """One advert `{"at", "address", "rssi", "manufacturer_data", "service_data"}` or a list
    of them (at most MAX_ADVERTS), heard by scanner node `node`, which is their anchor."""
    _topic_level(node, "scanner node id")
    body = _decode(payload)
    if not isinstance(body, list):
        return [_advert(body, node, received_at, "")]
    _limit(len(body), MAX_ADVERTS, "adverts")
    return [_advert(raw, node, received_at, f"[{i}]") for i, raw in enumerate(body)]


@_guarded
def parse_owntracks_location(payload: object, received_at: float) -> Location:
    """OwnTracks `_type: location`: `lat`, `lon` (degrees), `acc` (metres), `tst` (epoch s).

    Other OwnTracks fields (`batt`, `tid`, `vel` …) are ignored.
    """
    body = _owntracks(payload, "location")
    lat = _number(body.get("lat"), "lat", -90, 90, "of degrees of latitude")
    lon = _number(body.get("lon"), "lon", -180, 180, "of degrees of longitude")
    acc = _optional_accuracy(body.get("acc"))
    return Location(_time(body.get("tst"), "tst", received_at), lat, lon, acc)


@_guarded
def parse_owntracks_transition(payload: object, received_at: float) -> Transition:
    """OwnTracks `_type: transition`: `event` enter|leave, `rid` and/or `desc` naming the
    region, `t` (c circular, b beacon, l location; other values read as unknown), `tst`, and
    where it happened: `lat`, `lon`, `acc`."""
    body = _owntracks(payload, "transition")
    event = body.get("event")
    if event not in ("enter", "leave"):
        _fail(f'\'event\' must be "enter" or "leave", got {_show(event)}')
    rid, desc = _optional_name(body.get("rid"), "rid"), _optional_name(body.get("desc"), "desc")
    if rid is None and desc is None:
        _fail("a transition needs 'rid' (the region id) or 'desc' (its name)")
    trigger = body.get("t")
    return Transition(
        at=_time(body.get("tst"), "tst", received_at),
        event=TransitionEvent(event),
        rid=rid,
        desc=desc,
        trigger=Trigger(trigger) if isinstance(trigger, str) and trigger in _TRIGGERS else None,
        lat=_optional_number(body.get("lat"), "lat", -90, 90, "of degrees of latitude"),
        lon=_optional_number(body.get("lon"), "lon", -180, 180, "of degrees of longitude"),
        acc_m=_optional_accuracy(body.get("acc")),
    )


@_guarded
def parse_espresense(
    topic_device: str, topic_room: str, payload: object, received_at: float
) -> Observation:
    """An ESPresense report on `espresense/devices/<id>/<room>`: `rssi`, `rssi@1m` (others,
    such as `distance`, ignored).  The device id is ESPresense's `iBeacon:<uuid>-<maj>-<min>`
    (or a canonical id), the anchor the room.  The caller checks that the room is a scanner
    anchor and applies the privacy filter (the beacon's proximity UUID) before keeping it.
    """
    _size(payload)
    room = _topic_level(topic_room, "ESPresense room")
    device = canonical_device_id(topic_device) if isinstance(topic_device, str) else None
    if device is None or device.startswith("phone:"):
        _fail(
            f"ESPresense device {_show(topic_device)} is not a beacon id Rayon tracks "
            "(expected iBeacon:<uuid>-<major>-<minor>)",
            Problem.NOT_OURS,
        )
    body = _object(_decode(payload), "the ESPresense payload")
    rssi = _number(body.get("rssi"), "rssi", RSSI_MIN, RSSI_MAX, "of dBm")
    ref = _optional_number(body.get("rssi@1m"), "rssi@1m", RSSI_MIN, RSSI_MAX, "of dBm")
    return Observation(received_at, device, room, rssi, None if ref is None else round(ref))


# -- payload shapes --------------------------------------------------------------------------


def _beacon(raw: object, where: str) -> tuple[str, float, int | None]:
    """(canonical id, rssi, tx power) of one reported beacon."""
    b = _object(raw, f"'{where}'")
    uuid = b.get("uuid")
    major = _integer(b.get("major"), f"{where}.major", 0, 0xFFFF)
    minor = _integer(b.get("minor"), f"{where}.minor", 0, 0xFFFF)
    rssi = _number(b.get("rssi"), f"{where}.rssi", RSSI_MIN, RSSI_MAX, "of dBm")
    tx = b.get("tx_power")
    tx_power = None if tx is None else _integer(tx, f"{where}.tx_power", RSSI_MIN, RSSI_MAX)
    return _beacon_id(uuid, major, minor, where), rssi, tx_power


def _beacon_id(uuid: object, major: int, minor: int, where: str) -> str:
    try:
        return ibeacon_id(uuid if isinstance(uuid, str) else "", major, minor)
    except ValueError:
        _fail(
            f"'{where}.uuid' must be a proximity UUID such as "
            f'"8d8c1a2e-5b3f-4c1d-9e2a-0f6b7c8d9e10", got {_show(uuid)}'
        )


def _advert(raw: object, node: str, received_at: float, where: str) -> Advertisement:
    adv = _object(raw, f"'{where}'" if where else "an advert")
    at = _time(adv.get("at"), _join(where, "at"), received_at)
    rssi = _number(adv.get("rssi"), _join(where, "rssi"), RSSI_MIN, RSSI_MAX, "of dBm")
    address = adv.get("address", "")
    if not isinstance(address, str) or len(address) > 64:
        _fail(f"'{_join(where, 'address')}' must be the device's address as a string")
    try:
        return parse_adv(at, {**adv, "anchor": node, "rssi": rssi})
    except (ValueError, TypeError, OverflowError) as exc:
        _fail(f"{where}: {exc}" if where else str(exc))


def _owntracks(payload: object, kind: str) -> Mapping[str, Any]:
    body = _object(_decode(payload), f"an OwnTracks {kind}")
    found = body.get("_type")
    if found != kind:
        problem = Problem.NOT_OURS if isinstance(found, str) else Problem.MALFORMED
        _fail(f"expected an OwnTracks '_type' of \"{kind}\", got {_show(found)}", problem)
    return body


def _phone(token: object) -> str:
    device = f"phone:{token}" if isinstance(token, str) else None
    if device is None or canonical_device_id(device) != device:
        _fail(f"phone token {_show(token)} must be 1 to 128 letters, digits or _ . ~ -")
    return device


# -- JSON values -----------------------------------------------------------------------------


def _size(payload: object) -> None:
    """Refuse bytes or text over the limit, before any parsing (UTF-8 ≥ 1 byte a character)."""
    if isinstance(payload, bytes | bytearray):
        n = len(payload)
    elif isinstance(payload, str):
        n = len(payload)
        n = n if n > MAX_PAYLOAD_BYTES else len(payload.encode("utf-8", "surrogatepass"))
    else:
        return
    if n > MAX_PAYLOAD_BYTES:
        limit = f"the {MAX_PAYLOAD_BYTES}-byte limit; send fewer items per message"
        _fail(f"payload of {n} bytes exceeds {limit}", Problem.TOO_LARGE)


def _decode(payload: object) -> Any:
    """The JSON value of a payload: bytes and text are parsed, anything else is taken as is."""
    _size(payload)
    if not isinstance(payload, bytes | bytearray | str):
        return payload
    if not payload:
        _fail("empty payload: expected a JSON object")
    try:
        return json.loads(payload, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        _fail(f"payload is not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}")
    except RecursionError:
        _fail("payload is not JSON that Rayon reads: nested too deeply")
    except ValueError as exc:
        _fail(f"payload is not JSON: {exc}")


def _no_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not a JSON number")


def _object(value: object, what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        _fail(f"{what} must be a JSON object, got {_kind(value)}")
    return value


def _as_number(value: object) -> int | float | None:
    """`value` if it is a finite JSON number (not a boolean), else None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _number(value: object, where: str, lo: float, hi: float, unit: str) -> float:
    n = _as_number(value)
    # compare before float(): a huge JSON integer must not overflow
    if n is None or not lo <= n <= hi:
        _fail(f"'{where}' must be a number {unit} from {lo} to {hi}, got {_show(value)}")
    return float(n)


def _optional_number(value: object, where: str, lo: float, hi: float, unit: str) -> float | None:
    return None if value is None else _number(value, where, lo, hi, unit)


def _optional_accuracy(value: object) -> float | None:
    return _optional_number(value, "acc", 0, MAX_ACCURACY_M, "of metres")


def _integer(value: object, where: str, lo: int, hi: int) -> int:
    n = _as_number(value)
    if n is None or not lo <= n <= hi or not float(n).is_integer():
        _fail(f"'{where}' must be a whole number from {lo} to {hi}, got {_show(value)}")
    return int(n)


def _optional_name(value: object, where: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > 200:
        _fail(f"'{where}' must be a non-empty string of at most 200 characters")
    return value


def _time(value: object, where: str, default: float) -> float:
    """Epoch seconds or ISO 8601 with an offset; `default` when absent."""
    if value is None:
        return default
    if isinstance(value, str):
        return _iso_time(value, where)
    n = _as_number(value)
    if n is None or not 0 <= n < MAX_EPOCH_S:
        hint = " (milliseconds? divide by 1000)" if n is not None and n > 0 else ""
        _fail(f"'{where}' must be epoch seconds or ISO 8601 time, got {_show(value)}{hint}")
    return float(n)


def _iso_time(text: str, where: str) -> float:
    example = "e.g. 2026-03-03T15:00:00+01:00"
    try:
        when = datetime.fromisoformat(text)
        stamp = when.timestamp() if when.tzinfo is not None else None
    except (ValueError, OverflowError):
        _fail(f"'{where}' is not an ISO 8601 time: {_show(text)}, {example}")
    if stamp is None:
        _fail(f"'{where}' needs a UTC offset: {_show(text)}, {example} or Z")
    if not 0 <= stamp < MAX_EPOCH_S:
        _fail(f"'{where}' is out of range: {_show(text)}")
    return stamp


def _topic_level(value: object, what: str) -> str:
    if not isinstance(value, str) or not value or any(c in value for c in "/+#\x00"):
        _fail(f"{what} {_show(value)} must be one non-empty MQTT topic level")
    return value


def _limit(n: int, most: int, what: str) -> None:
    if n > most:
        _fail(f"{n} {what} in one message, at most {most}: split it", Problem.TOO_LARGE)


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, int | float) and not isinstance(value, bool):
        return "a number"
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}
    return names.get(type(value), type(value).__name__)


def _show(value: object) -> str:
    """A short, safe rendering of an untrusted value for a message."""
    if isinstance(value, str):
        text = repr(value[:40])
    elif isinstance(value, bool | float) or (isinstance(value, int) and abs(value) < 10**30):
        text = repr(value)  # a huge int's repr may raise (sys.set_int_max_str_digits)
    else:
        return "nothing (missing or null)" if value is None else _kind(value)
    return text if len(text) <= 44 else text[:41] + "..."


def _fail(reason: str, problem: Problem = Problem.MALFORMED) -> NoReturn:
    raise _Bad(reason, problem)
