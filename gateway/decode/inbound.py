"""Inbound MQTT payloads from phones and scanner nodes, parsed and validated.  Pure.

The inbound topics of docs/mqtt.md, one parser each:

    phones/<token>/sightings      parse_sightings           → Sightings (mode B observations)
    scanners/<node>/adv           parse_scanner_adv         → list[Advertisement] (mode A)
    phones/<token>/location       parse_owntracks_location  → Location (GPS, for geofences)
    phones/<token>/transition     parse_owntracks_transition→ Transition (the phone's regions)
    espresense/devices/<id>/<room> parse_espresense         → Observation (mode A, ESPresense)

No parser raises on untrusted input: each returns its value or an `InboundError` whose `reason`
says what is wrong, where, and how to fix it ("'beacons[2].rssi' must be a number of dBm …").
A payload is either bytes (live MQTT), JSON text, or an already parsed JSON value (trace files,
docs/trace.md).  Bytes and text longer than `MAX_PAYLOAD_BYTES` are rejected before any parsing.
Inbound times are epoch seconds or ISO 8601 with a UTC offset; a message without one takes the
receive time the caller gives.  Signal strengths are dBm from -127 to 20.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from gateway.decode.adverts import parse_adv
from gateway.decode.jsonvalues import (
    Problem,
    check_size,
    decode,
    fail,
    guarded,
    integer,
    join_path,
    limit_count,
    mapping,
    number,
    optional_name,
    optional_number,
    show,
    timestamp,
    topic_level,
)
from gateway.events import Advertisement, Observation
from gateway.ids import canonical_device_id, ibeacon_id, token_problem

__all__ = [
    "MAX_ADVERTS",
    "MAX_BEACONS",
    "Location",
    "Sightings",
    "Transition",
    "TransitionEvent",
    "Trigger",
    "parse_espresense",
    "parse_owntracks_location",
    "parse_owntracks_transition",
    "parse_scanner_adv",
    "parse_sightings",
]

MAX_ADVERTS = 500  # adverts in one scanners/<node>/adv message
MAX_BEACONS = 200  # beacons in one phones/<token>/sightings message
RSSI_MIN, RSSI_MAX = -127, 20
MAX_ACCURACY_M = 1_000_000.0


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


# -- the parsers ---------------------------------------------------------------------------


@guarded
def parse_sightings(
    payload: object, token: str, received_at: float, beacon_anchor: Mapping[str, str]
) -> Sightings:
    """`{"at", "beacons": [{"uuid", "major", "minor", "rssi", "tx_power"}]}` (mode B).

    `beacon_anchor` maps a store beacon's canonical id to its anchor id.  A beacon of another
    store is skipped and counted, never an error; a malformed beacon refuses the message.
    """
    device = _phone(token)
    body = mapping(decode(payload), "the sightings payload")
    at = timestamp(body.get("at"), "at", received_at)
    beacons = body.get("beacons")
    if not isinstance(beacons, list):
        fail("'beacons' must be a list of {uuid, major, minor, rssi, tx_power} objects")
    limit_count(len(beacons), MAX_BEACONS, "beacons")
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


@guarded
def parse_scanner_adv(payload: object, node: str, received_at: float) -> list[Advertisement]:
    """One advert `{"at", "address", "rssi", "manufacturer_data", "service_data"}` or a list
    of them (at most MAX_ADVERTS), heard by scanner node `node`, which is their anchor."""
    topic_level(node, "scanner node id")
    body = decode(payload)
    if not isinstance(body, list):
        return [_advert(body, node, received_at, "")]
    limit_count(len(body), MAX_ADVERTS, "adverts")
    return [_advert(raw, node, received_at, f"[{i}]") for i, raw in enumerate(body)]


@guarded
def parse_owntracks_location(payload: object, received_at: float) -> Location:
    """OwnTracks `_type: location`: `lat`, `lon` (degrees), `acc` (metres), `tst` (epoch s).

    Other OwnTracks fields (`batt`, `tid`, `vel` …) are ignored.
    """
    body = _owntracks(payload, "location")
    lat = number(body.get("lat"), "lat", -90, 90, "of degrees of latitude")
    lon = number(body.get("lon"), "lon", -180, 180, "of degrees of longitude")
    acc = _optional_accuracy(body.get("acc"))
    return Location(timestamp(body.get("tst"), "tst", received_at), lat, lon, acc)


@guarded
def parse_owntracks_transition(payload: object, received_at: float) -> Transition:
    """OwnTracks `_type: transition`: `event` enter|leave, `rid` and/or `desc` naming the
    region, `t` (c circular, b beacon, l location; other values read as unknown), `tst`, and
    where it happened: `lat`, `lon`, `acc`."""
    body = _owntracks(payload, "transition")
    event = body.get("event")
    if event not in ("enter", "leave"):
        fail(f'\'event\' must be "enter" or "leave", got {show(event)}')
    rid, desc = optional_name(body.get("rid"), "rid"), optional_name(body.get("desc"), "desc")
    if rid is None and desc is None:
        fail("a transition needs 'rid' (the region id) or 'desc' (its name)")
    trigger = body.get("t")
    return Transition(
        at=timestamp(body.get("tst"), "tst", received_at),
        event=TransitionEvent(event),
        rid=rid,
        desc=desc,
        trigger=Trigger(trigger) if isinstance(trigger, str) and trigger in _TRIGGERS else None,
        lat=optional_number(body.get("lat"), "lat", -90, 90, "of degrees of latitude"),
        lon=optional_number(body.get("lon"), "lon", -180, 180, "of degrees of longitude"),
        acc_m=_optional_accuracy(body.get("acc")),
    )


@guarded
def parse_espresense(
    topic_device: str, topic_room: str, payload: object, received_at: float
) -> Observation:
    """An ESPresense report on `espresense/devices/<id>/<room>`: `rssi`, `rssi@1m` (others,
    such as `distance`, ignored).  The device id is ESPresense's `iBeacon:<uuid>-<maj>-<min>`
    (or a canonical id), the anchor the room.  The caller checks that the room is a scanner
    anchor and applies the privacy filter (the beacon's proximity UUID) before keeping it.
    """
    check_size(payload)
    room = topic_level(topic_room, "ESPresense room")
    device = canonical_device_id(topic_device) if isinstance(topic_device, str) else None
    if device is None or device.startswith("phone:"):
        fail(
            f"ESPresense device {show(topic_device)} is not a beacon id Rayon tracks "
            "(expected iBeacon:<uuid>-<major>-<minor>)",
            Problem.NOT_OURS,
        )
    body = mapping(decode(payload), "the ESPresense payload")
    rssi = number(body.get("rssi"), "rssi", RSSI_MIN, RSSI_MAX, "of dBm")
    ref = optional_number(body.get("rssi@1m"), "rssi@1m", RSSI_MIN, RSSI_MAX, "of dBm")
    return Observation(received_at, device, room, rssi, None if ref is None else round(ref))


# -- payload shapes --------------------------------------------------------------------------


def _beacon(raw: object, where: str) -> tuple[str, float, int | None]:
    """(canonical id, rssi, tx power) of one reported beacon."""
    b = mapping(raw, f"'{where}'")
    uuid = b.get("uuid")
    major = integer(b.get("major"), f"{where}.major", 0, 0xFFFF)
    minor = integer(b.get("minor"), f"{where}.minor", 0, 0xFFFF)
    rssi = number(b.get("rssi"), f"{where}.rssi", RSSI_MIN, RSSI_MAX, "of dBm")
    tx = b.get("tx_power")
    tx_power = None if tx is None else integer(tx, f"{where}.tx_power", RSSI_MIN, RSSI_MAX)
    return _beacon_id(uuid, major, minor, where), rssi, tx_power


def _beacon_id(uuid: object, major: int, minor: int, where: str) -> str:
    try:
        return ibeacon_id(uuid if isinstance(uuid, str) else "", major, minor)
    except ValueError:
        fail(
            f"'{where}.uuid' must be a proximity UUID such as "
            f'"8d8c1a2e-5b3f-4c1d-9e2a-0f6b7c8d9e10", got {show(uuid)}'
        )


def _advert(raw: object, node: str, received_at: float, where: str) -> Advertisement:
    adv = mapping(raw, f"'{where}'" if where else "an advert")
    at = timestamp(adv.get("at"), join_path(where, "at"), received_at)
    rssi = number(adv.get("rssi"), join_path(where, "rssi"), RSSI_MIN, RSSI_MAX, "of dBm")
    address = adv.get("address", "")
    if not isinstance(address, str) or len(address) > 64:
        fail(f"'{join_path(where, 'address')}' must be the device's address as a string")
    try:
        return parse_adv(at, {**adv, "anchor": node, "rssi": rssi})
    except (ValueError, TypeError, OverflowError) as exc:
        fail(f"{where}: {exc}" if where else str(exc))


def _owntracks(payload: object, kind: str) -> Mapping[str, Any]:
    body = mapping(decode(payload), f"an OwnTracks {kind}")
    found = body.get("_type")
    if found != kind:
        problem = Problem.NOT_OURS if isinstance(found, str) else Problem.MALFORMED
        fail(f"expected an OwnTracks '_type' of \"{kind}\", got {show(found)}", problem)
    return body


def _phone(token: object) -> str:
    why = token_problem(token)
    if why is not None:  # the token itself is not shown: it may be a loyalty number
        fail(f"the phone's topic: {why}")
    return f"phone:{token}"


def _optional_accuracy(value: object) -> float | None:
    return optional_number(value, "acc", 0, MAX_ACCURACY_M, "of metres")
