"""The few typed values that flow through the pipeline (docs/design.md §2).

sources ─Advertisement─▶ decode ─Observation─▶ locate ─Fix─▶ zones ─ZoneEvent─▶ rules ─Offer─▶
deliver

Each carries its own time `at` (epoch seconds, float), taken from the event, never the wall clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Any

_EMPTY: Mapping[Any, Any] = MappingProxyType({})


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
    """A position estimate of one tracked subject in floor-plan metres."""

    at: float
    device: str
    x: float
    y: float
    accuracy_m: float
    anchors: tuple[str, ...]


class EventKind(StrEnum):
    ENTER = "enter"
    EXIT = "exit"
    DWELL = "dwell"
    VISIT_START = "visit_start"
    VISIT_END = "visit_end"


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
    reason: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)


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


@dataclass(frozen=True, slots=True)
class MqttInput:
    """An MQTT message as the gateway received it (payload already parsed from JSON)."""

    at: float
    topic: str
    payload: Any


# What a source yields and a trace line holds: an advert heard, or an MQTT message received.
TraceItem = Advertisement | MqttInput
