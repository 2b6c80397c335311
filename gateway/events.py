"""The few typed values that flow through the pipeline (docs/design.md §2).

sources ─Advertisement─▶ decode ─Observation─▶ locate ─Fix─▶ zones ─ZoneEvent─▶ rules ─Offer─▶
deliver

Each carries its own time `at` (epoch seconds, float), taken from the event, never the wall clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal, TypedDict


@dataclass(frozen=True, slots=True)
class Advertisement:
    """One BLE advertisement as heard by a fixed scanner anchor (mode A).

    `manufacturer_data` maps the company id to the bytes after it, `service_data` a
    128-bit service UUID (lowercase string) to its bytes, exactly as bleak reports them.
    """

    at: float
    anchor: str
    address: str
    rssi: int
    manufacturer_data: Mapping[int, bytes] = field(default_factory=dict)
    service_data: Mapping[str, bytes] = field(default_factory=dict)
    local_name: str | None = None


@dataclass(frozen=True, slots=True)
class Observation:
    """One radio link measurement between a mobile `device` and a fixed `anchor`.

    `device` is a canonical id (`ibeacon:<uuid>:<major>:<minor>`, `eddystone:…`,
    `altbeacon:…`, `phone:<token>`).  `anchor` is the id of an anchor of the config.
    """

    at: float
    device: str
    anchor: str
    rssi: float
    tx_power: int | None = None


@dataclass(frozen=True, slots=True)
class Fix:
    """A position estimate of one tracked subject in floor-plan metres.

    `zone_probability`: for a method that keeps a belief over the floor (the grid), the
    belief's probability of each zone that holds any of it, (zone id, p) pairs, most probable
    first; None for a point method (centroid, strongest, …), whose zone is the polygon that
    contains (x, y): probability 1 inside, 0 outside."""

    at: float
    device: str
    x: float
    y: float
    accuracy_m: float
    anchors: tuple[str, ...]
    zone_probability: tuple[tuple[str, float], ...] | None

    def __init__(
        self,
        at: float,
        device: str,
        x: float,
        y: float,
        accuracy_m: float,
        anchors: tuple[str, ...],
        zone_probability: tuple[tuple[str, float], ...] | None = None,
    ) -> None:
        # written out: mypyc compiles it, not the dataclass's (docs/performance.md)
        object.__setattr__(self, "at", at)
        object.__setattr__(self, "device", device)
        object.__setattr__(self, "x", x)
        object.__setattr__(self, "y", y)
        object.__setattr__(self, "accuracy_m", accuracy_m)
        object.__setattr__(self, "anchors", anchors)
        object.__setattr__(self, "zone_probability", zone_probability)


class EventKind(StrEnum):
    ENTER = "enter"
    EXIT = "exit"
    DWELL = "dwell"
    VISIT_START = "visit_start"
    VISIT_END = "visit_end"


class Reason(TypedDict, total=False):
    """Why a zone event was decided: plain JSON values (times in epoch seconds), stored with
    the event and sent on `events` (docs/mqtt.md).  Which keys an event has depends on who
    decided it; every one is optional.

    The zone tracker (gateway/zones/tracker.py) gives the fix that decided it (the last fix,
    for a timed event): `x`, `y`, `accuracy_m`, `anchors`, and `runner_up`; a zone's event
    (not a visit's) adds the zone's `probability` at that fix and, with a runner-up, its
    `runner_up_probability`; an `enter` adds
    `inside_since` and `enter_after_s`; an `exit` its `cause`, `inside_since` and, by cause,
    `outside_since` and `exit_after_s` (left), `outside_since` (superseded) or `last_seen`
    (visit_end); a `dwell` `inside_since` and `threshold_s`; a `visit_end` `started_at`,
    `last_seen` and `timeout_s`.

    The GPS geofences (gateway/zones/geofences.py) give `lat`, `lon`, `acc_m`, `source`, a
    circle's `distance_m` or a transition's `region`, and the times `inside_since`,
    `outside_since`, `enter_after_s`, `exit_after_s` of the hysteresis.
    """

    # the fix of the zone tracker
    x: float  # floor-plan metres
    y: float
    accuracy_m: float
    anchors: list[str]  # the anchors the fix was computed from
    runner_up: str | None  # the rival zone next best placed for the device, if any
    # the belief's probability of the zone at the fix (a point fix: 1.0 inside, 0.0 outside)
    probability: float
    runner_up_probability: float  # the same, of the runner-up (when there is one)
    # the timers
    inside_since: float  # first fix inside (of the winning challenge, for an enter)
    outside_since: float | None  # first fix outside (None: a stay superseded from inside)
    enter_after_s: float  # the zone's hysteresis
    exit_after_s: float
    threshold_s: float  # the dwell threshold crossed
    cause: Literal["left", "superseded", "visit_end"]  # why an exit happened
    last_seen: float  # the device's last fix (a visit's end, an exit at a visit's end)
    started_at: float  # the visit's start
    timeout_s: float  # `visits.timeout`
    # a GPS geofence
    lat: float | None  # WGS 84 degrees, None when the phone did not say
    lon: float | None
    acc_m: float | None  # the phone's accuracy, metres
    source: Literal["gps", "transition"]
    distance_m: float  # to a circle's centre
    region: str  # the geofence a transition named
    # stand-in events the rules engine evaluates, never emitted
    synthesized: Literal["explain"]  # `rayon explain`'s probe (its trigger: "not observed")
    trigger: Literal["absent"]  # a daily absent check (gateway/rules/absent.py)


@dataclass(frozen=True, slots=True)
class ZoneEvent:
    """A zone or visit transition of a device, with the reason it was decided.

    `zone` is the zone id (for visit events, the id of the zone that outlines the store,
    or None when the config has none).  `dwell_s` is the time spent in the zone for `exit`
    and `dwell`, the visit duration for `visit_end`, else None.  `customer` is the
    customer id the device resolved to, or None for an anonymous device.
    """

    at: float
    kind: EventKind
    zone: str | None
    device: str
    customer: str | None = None
    dwell_s: float | None = None
    reason: Reason = field(default_factory=Reason)

    def __init__(
        self,
        at: float,
        kind: EventKind,
        zone: str | None,
        device: str,
        customer: str | None = None,
        dwell_s: float | None = None,
        reason: Reason | None = None,
    ) -> None:
        # written out: mypyc compiles it, not the dataclass's (docs/performance.md)
        object.__setattr__(self, "at", at)
        object.__setattr__(self, "kind", kind)
        object.__setattr__(self, "zone", zone)
        object.__setattr__(self, "device", device)
        object.__setattr__(self, "customer", customer)
        object.__setattr__(self, "dwell_s", dwell_s)
        object.__setattr__(self, "reason", Reason() if reason is None else reason)


class Purpose(StrEnum):
    COMMERCIAL = "commercial"
    TRANSACTIONAL = "transactional"


@dataclass(frozen=True, slots=True)
class Offer:
    """An offer decided for a customer.  `id` is the app's idempotency key.

    A `holdout` offer belongs to the control group: it is recorded, never sent.
    """

    id: str
    rule: str
    store: str
    zone: str | None
    customer: str
    token: str
    created_at: float
    expires_at: float
    title: str
    body: str
    code: str | None
    url: str | None
    purpose: Purpose
    holdout: bool = False

    def __init__(
        self,
        id: str,
        rule: str,
        store: str,
        zone: str | None,
        customer: str,
        token: str,
        created_at: float,
        expires_at: float,
        title: str,
        body: str,
        code: str | None,
        url: str | None,
        purpose: Purpose,
        holdout: bool = False,
    ) -> None:
        # written out: mypyc compiles it, not the dataclass's (docs/performance.md)
        object.__setattr__(self, "id", id)
        object.__setattr__(self, "rule", rule)
        object.__setattr__(self, "store", store)
        object.__setattr__(self, "zone", zone)
        object.__setattr__(self, "customer", customer)
        object.__setattr__(self, "token", token)
        object.__setattr__(self, "created_at", created_at)
        object.__setattr__(self, "expires_at", expires_at)
        object.__setattr__(self, "title", title)
        object.__setattr__(self, "body", body)
        object.__setattr__(self, "code", code)
        object.__setattr__(self, "url", url)
        object.__setattr__(self, "purpose", purpose)
        object.__setattr__(self, "holdout", holdout)


class FeedbackState(StrEnum):
    """What the app reports about an offer it received (`feedback/<token>`)."""

    DELIVERED = "delivered"
    OPENED = "opened"
    REDEEMED = "redeemed"
    DISMISSED = "dismissed"


@dataclass(frozen=True, slots=True)
class MqttInput:
    """An MQTT message as the gateway received it (payload already parsed from JSON)."""

    at: float
    topic: str
    payload: Any


# What a source yields and a trace line holds: an advert heard, or an MQTT message received.
TraceItem = Advertisement | MqttInput
