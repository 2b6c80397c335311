"""What `ZoneTracker` keeps per device: its stays in zones and its visit, and their JSON form
for snapshots (`ZoneTracker.snapshot` / `restore`).  Pure."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from gateway.events import Fix, Reason

NO_THRESHOLDS: frozenset[float] = frozenset()  # shared by every stay without any


@dataclass(slots=True)
class Stay:
    """One device in one zone, from its first fix inside until its exit."""

    since: float  # first fix inside
    inside: bool = False  # `enter` emitted
    entered_at: float = 0.0
    out_since: float | None = None  # first fix outside while inside
    last_in: float = math.nan  # last fix inside (the polygon grown by margin), once inside
    # The dwell thresholds fired and scheduled: frozensets, replaced when they change (rarely),
    # so that the many stays without any share the one empty frozenset (a set costs 216 bytes).
    fired: frozenset[float] = NO_THRESHOLDS
    scheduled: frozenset[float] = NO_THRESHOLDS

    def __init__(
        self,
        since: float,
        inside: bool = False,
        entered_at: float = 0.0,
        out_since: float | None = None,
        last_in: float = math.nan,
        fired: frozenset[float] = NO_THRESHOLDS,
        scheduled: frozenset[float] = NO_THRESHOLDS,
    ) -> None:
        # written out: mypyc compiles it, not the dataclass's (docs/performance.md)
        self.since = since
        self.inside = inside
        self.entered_at = entered_at
        self.out_since = out_since
        self.last_in = last_in
        self.fired = fired
        self.scheduled = scheduled


@dataclass(slots=True)
class DeviceState:
    """One device: its last fix, its visit (open or ended) and its stays by zone index."""

    last: Fix
    last_seen: float
    visit_start: float
    visit_open: bool = True
    visit_end: float = math.nan
    stays: dict[int, Stay] = field(default_factory=dict)
    left: dict[int, float] = field(default_factory=dict)  # zone index → last fix in, once out


def fix_reason(fix: Fix) -> Reason:
    """Where a fix put the device, as the `reason` of an event and in snapshots."""
    return {"x": fix.x, "y": fix.y, "accuracy_m": fix.accuracy_m, "anchors": list(fix.anchors)}


def _last_to_json(fix: Fix) -> dict[str, Any]:
    """The device's last fix; its belief's probabilities only when it has some."""
    last: dict[str, Any] = {"at": fix.at, **fix_reason(fix)}
    if fix.zone_probability is not None:
        last["zone_probability"] = [[z, p] for z, p in fix.zone_probability]
    return last


def _last_from_json(device: str, f: Any) -> Fix:
    """The inverse of `_last_to_json`; a fix saved before `zone_probability` was has none."""
    nums = {k: float(f[k]) for k in ("at", "x", "y", "accuracy_m")}
    anchors = tuple(str(a) for a in f["anchors"])
    raw = f.get("zone_probability")
    zp = None if raw is None else tuple((str(z), float(p)) for z, p in raw)
    return Fix(device=device, anchors=anchors, zone_probability=zp, **nums)


def device_to_json(dev: DeviceState, ids: Sequence[str]) -> dict[str, Any]:
    """`dev` as JSON-able values; stays are keyed by zone id (`ids[i]`)."""
    stays = {
        ids[i]: {
            "since": st.since,
            "inside": st.inside,
            "entered_at": st.entered_at,
            "out_since": st.out_since,
            "last_in": None if math.isnan(st.last_in) else st.last_in,
            "fired": sorted(st.fired),
        }
        for i, st in dev.stays.items()
    }
    last = _last_to_json(dev.last)
    end = None if math.isnan(dev.visit_end) else dev.visit_end
    return {
        "last": last,
        "last_seen": dev.last_seen,
        "visit_start": dev.visit_start,
        "visit_open": dev.visit_open,
        "visit_end": end,
        "stays": stays,
        "left": {ids[i]: at for i, at in dev.left.items()},
    }


def device_from_json(device: str, raw: Any, pos: Mapping[str, int]) -> DeviceState:
    """The inverse of `device_to_json`; stays of zones not in `pos` (id → index) drop.

    A stay saved before `last_in` existed (older version 1 snapshots have none) takes
    the latest time it can tell: the device's last fix if it was not on its way out, else its
    first fix inside; a last fix saved before `zone_probability` existed is a point fix.
    Raises KeyError, TypeError, ValueError or AttributeError on a malformed value.
    """
    last = _last_from_json(device, raw["last"])
    end = raw.get("visit_end")
    dev = DeviceState(
        last, float(raw["last_seen"]), float(raw["visit_start"]), raw["visit_open"] is True
    )
    dev.visit_end = math.nan if end is None else float(end)
    if not dev.visit_open and math.isnan(dev.visit_end):
        raise ValueError("a closed visit needs 'visit_end'")
    for zone_id, st in dict(raw.get("stays") or {}).items():
        if zone_id in pos:
            out = st.get("out_since")
            stay = Stay(float(st["since"]), st["inside"] is True, float(st["entered_at"]))
            stay.out_since = None if out is None else float(out)
            stay.last_in = _last_in(st.get("last_in"), stay, dev)
            stay.fired = frozenset(float(v) for v in st["fired"]) or NO_THRESHOLDS
            dev.stays[pos[zone_id]] = stay
    for zone_id, at in dict(raw.get("left") or {}).items():
        if zone_id in pos:
            dev.left[pos[zone_id]] = float(at)
    return dev


def _last_in(saved: Any, stay: Stay, dev: DeviceState) -> float:
    if saved is not None:
        return float(saved)
    return dev.last_seen if stay.out_since is None else stay.since
