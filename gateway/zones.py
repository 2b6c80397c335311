"""Zones and visits: position fixes → zone and visit events (DESIGN.md §2).  Pure.

Each zone is tracked independently per device, with hysteresis:

* `enter` once a device has been inside for `enter_after` (at = the fix that completes it);
* `exit` once it has been outside (beyond `margin_m`) for `exit_after` with no fix back
  inside (at = first outside fix + exit_after); `dwell_s` = first outside − first inside fix;
* `dwell` when the time in the zone crosses a threshold asked for that zone, once per stay
  (at = first inside fix + threshold, or the enter if later; not while the device is on its
  way out — if it comes back before the exit, the threshold fires then);
* `visit_start` at a device's first fix when it had no visit or its last one ended more than
  `visits.gap` ago; `visit_end` at last fix + `visits.timeout` (dwell_s = last fix − start),
  after exiting every zone; a device seen again within `gap` re-opens its visit silently.

Timers live in one heap of deadlines, so `update` and `tick` cost O(log n) per event
whatever the number of devices, and events come out in time order across calls.  A fix
older than the last processed time is processed as of that time.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Mapping, Sequence
from enum import IntEnum
from typing import Any

import numpy as np

from gateway.config import VisitsConfig, Zone
from gateway.errors import InvalidInput
from gateway.events import EventKind, Fix, ZoneEvent
from gateway.zoneindex import ZoneIndex
from gateway.zonestate import DeviceState, Stay, device_from_json, device_to_json, fix_reason

# ZoneIndex lives in zoneindex; importable from here.
__all__ = ["SNAPSHOT_VERSION", "STORE_ZONE_ID", "ZoneIndex", "ZoneTracker"]

STORE_ZONE_ID = "store"
SNAPSHOT_VERSION = 1


class _Due(IntEnum):
    """What a heap deadline is for."""

    EXIT = 0
    DWELL = 1
    VISIT = 2
    PURGE = 3


# (due, seq, kind, device, zone index, token a, token b): tokens tell a stale deadline.
_Entry = tuple[float, int, _Due, str, int, float, float]


class ZoneTracker:
    """Per device and zone hysteresis, dwell thresholds and visits (see the module docstring).

    `dwell_thresholds` maps a zone id to the times in zone (seconds) some rule asks about.
    Visit events carry the zone id `store` when the config has such a zone, else None.
    """

    def __init__(
        self,
        zones: Sequence[Zone],
        visits: VisitsConfig,
        dwell_thresholds: Mapping[str, Sequence[float]] | None = None,
    ) -> None:
        self._index = ZoneIndex(zones)
        self._zones = self._index.zones
        self._pos = {z.id: i for i, z in enumerate(self._zones)}
        self._visits = visits
        self._store = STORE_ZONE_ID if STORE_ZONE_ID in self._pos else None
        self._thresholds: list[tuple[float, ...]] = [() for _ in self._zones]
        self._devices: dict[str, DeviceState] = {}
        self._heap: list[_Entry] = []
        self._seq = 0
        self._now = -math.inf
        self._counts = [0] * len(self._zones)
        self._out: list[ZoneEvent] = []  # events decided during the current call
        self._handlers: dict[_Due, Callable[[float, str, DeviceState, int, float, float], None]] = {
            _Due.EXIT: self._on_exit,
            _Due.DWELL: self._on_dwell,
            _Due.VISIT: self._on_visit,
            _Due.PURGE: self._on_purge,
        }
        if dwell_thresholds:
            self.set_dwell_thresholds(dwell_thresholds)

    @property
    def index(self) -> ZoneIndex:
        """The prepared zone geometry (e.g. for the zones containing a fix)."""
        return self._index

    def update(self, fix: Fix) -> list[ZoneEvent]:
        """Account for one fix; return the events it (and the time it brings) decided."""
        if not all(math.isfinite(v) for v in (fix.at, fix.x, fix.y)):
            return []
        t = max(fix.at, self._now)
        self._advance(t)
        dev = self._see(fix, t)
        raw, grown = self._index.masks(fix.x, fix.y)
        for i in sorted(set(np.flatnonzero(grown).tolist()) | dev.stays.keys()):
            self._step_zone(fix, t, dev, i, (bool(raw[i]), bool(grown[i])))
        self._advance(t)
        return self._flush()

    def tick(self, now: float) -> list[ZoneEvent]:
        """Let time pass with no fix: exits, dwell thresholds and visit ends due by `now`."""
        if math.isfinite(now):
            self._advance(max(now, self._now))
        return self._flush()

    def set_dwell_thresholds(self, thresholds: Mapping[str, Sequence[float]]) -> None:
        """Replace the dwell thresholds (zone id → seconds); unknown zone ids are ignored.

        A new threshold already passed by a current stay fires at the next update or tick.
        """
        self._thresholds = [() for _ in self._zones]
        for zone_id, values in thresholds.items():
            if zone_id in self._pos:
                clean = sorted({float(v) for v in values if math.isfinite(v) and v >= 0})
                self._thresholds[self._pos[zone_id]] = tuple(clean)
        now = self._now if math.isfinite(self._now) else 0.0
        for device, dev in self._devices.items():
            for i, stay in dev.stays.items():
                if stay.inside and stay.out_since is None:
                    self._schedule_dwell(device, i, stay, now)

    def occupancy(self) -> dict[str, int]:
        """Devices currently in each zone (after hysteresis), by zone id."""
        return dict(zip(self._index.ids, self._counts, strict=True))

    def devices(self) -> int:
        """Devices with an open visit."""
        return sum(1 for d in self._devices.values() if d.visit_open)

    def zones_of(self, device: str) -> tuple[str, ...]:
        """Ids of the zones `device` is currently in (after hysteresis), in config order."""
        dev = self._devices.get(device)
        if dev is None:
            return ()
        return tuple(self._index.ids[i] for i in sorted(dev.stays) if dev.stays[i].inside)

    def forget(self, device: str) -> None:
        """Drop everything about `device`, silently (no exit, no visit_end)."""
        dev = self._devices.pop(device, None)
        for i, stay in (dev.stays if dev else {}).items():
            self._counts[i] -= stay.inside

    def snapshot(self) -> dict[str, Any]:
        """The dwell timers and visits as plain JSON-able values (see `restore`)."""
        now = self._now if math.isfinite(self._now) else None
        devices = {d: device_to_json(dev, self._index.ids) for d, dev in self._devices.items()}
        return {"v": SNAPSHOT_VERSION, "now": now, "devices": devices}

    def restore(self, state: Mapping[str, Any]) -> None:
        """Replace the state with a `snapshot()`; stays in zones no longer configured drop.

        Raises InvalidInput, saying what is wrong, if `state` is not a snapshot.
        """
        if not isinstance(state, Mapping) or state.get("v") != SNAPSHOT_VERSION:
            raise InvalidInput(
                f"zone tracker snapshot: expected an object with v={SNAPSHOT_VERSION}; "
                "discard the saved state to start afresh"
            )
        devices: dict[str, DeviceState] = {}
        for device, raw in dict(state.get("devices") or {}).items():
            try:
                devices[str(device)] = device_from_json(str(device), raw, self._pos)
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                raise InvalidInput(
                    f"zone tracker snapshot: device {device!r} is malformed ({exc!r}); "
                    "discard the saved state to start afresh"
                ) from None
        now = state.get("now")
        self._now = float(now) if isinstance(now, int | float) else -math.inf
        self._devices, self._heap, self._counts = devices, [], [0] * len(self._zones)
        for device, dev in devices.items():
            self._rearm(device, dev)

    def _rearm(self, device: str, dev: DeviceState) -> None:
        if dev.visit_open:
            self._push(dev.last_seen + self._visits.timeout, _Due.VISIT, device, 0, dev.visit_start)
        else:
            self._push(dev.visit_end + self._visits.gap, _Due.PURGE, device, 0, dev.visit_end)
        now = self._now if math.isfinite(self._now) else dev.last_seen
        for i, stay in dev.stays.items():
            if not stay.inside:
                continue
            self._counts[i] += 1
            if stay.out_since is not None:
                due = stay.out_since + self._zones[i].exit_after
                self._push(due, _Due.EXIT, device, i, stay.out_since, stay.since)
            else:
                self._schedule_dwell(device, i, stay, now)

    def _see(self, fix: Fix, t: float) -> DeviceState:
        dev = self._devices.get(fix.device)
        if dev is None:
            dev = self._devices[fix.device] = DeviceState(last=fix, last_seen=t, visit_start=t)
        elif dev.visit_open:
            dev.last, dev.last_seen = fix, t
            return dev
        else:
            dev.last, dev.last_seen, dev.visit_open = fix, t, True
            if t - dev.visit_end < self._visits.gap:
                self._push(t + self._visits.timeout, _Due.VISIT, fix.device, 0, dev.visit_start)
                return dev
            dev.visit_start = t
        self._visit_event(EventKind.VISIT_START, t, fix.device, None, fix_reason(fix))
        self._push(t + self._visits.timeout, _Due.VISIT, fix.device, 0, t)
        return dev

    def _step_zone(
        self, fix: Fix, t: float, dev: DeviceState, i: int, hit: tuple[bool, bool]
    ) -> None:
        """`hit`: (inside the polygon, inside polygon + margin); margin counts once inside."""
        stay = dev.stays.get(i)
        zone = self._zones[i]
        if stay is None or not stay.inside:
            if not hit[0]:
                dev.stays.pop(i, None)
                return
            if stay is None:
                stay = dev.stays[i] = Stay(since=t)
            if t - stay.since >= zone.enter_after:
                self._enter(fix, t, i, stay)
        elif hit[1] and stay.out_since is not None:
            stay.out_since = None
            self._schedule_dwell(fix.device, i, stay, t)
        elif not hit[1] and stay.out_since is None:
            stay.out_since = t
            self._push(t + zone.exit_after, _Due.EXIT, fix.device, i, t, stay.since)

    def _enter(self, fix: Fix, t: float, i: int, stay: Stay) -> None:
        stay.inside, stay.entered_at = True, t
        self._counts[i] += 1
        reason = {**fix_reason(fix), "inside_since": stay.since}
        reason["enter_after_s"] = self._zones[i].enter_after
        self._emit(t, EventKind.ENTER, self._index.ids[i], fix.device, None, reason)
        self._schedule_dwell(fix.device, i, stay, t)

    def _schedule_dwell(self, device: str, i: int, stay: Stay, t: float) -> None:
        for th in self._thresholds[i]:
            if th not in stay.fired and th not in stay.scheduled:
                stay.scheduled.add(th)
                self._push(max(stay.since + th, t), _Due.DWELL, device, i, th, stay.since)

    def _push(self, due: float, kind: _Due, device: str, i: int, a: float, b: float = 0.0) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (due, self._seq, kind, device, i, a, b))

    def _advance(self, t: float) -> None:
        """Fire every deadline due by `t`, in time order."""
        heap = self._heap
        while heap and heap[0][0] <= t:
            due, _, kind, device, i, a, b = heapq.heappop(heap)
            dev = self._devices.get(device)
            if dev is not None:
                self._handlers[kind](due, device, dev, i, a, b)
        self._now = t

    def _on_exit(
        self, due: float, device: str, dev: DeviceState, i: int, a: float, b: float
    ) -> None:
        stay = dev.stays.get(i)
        if stay is None or not stay.inside or stay.out_since != a or stay.since != b:
            return
        del dev.stays[i]
        self._counts[i] -= 1
        reason = {**fix_reason(dev.last), "cause": "left", "inside_since": stay.since}
        reason |= {"outside_since": a, "exit_after_s": self._zones[i].exit_after}
        self._emit(due, EventKind.EXIT, self._index.ids[i], device, a - stay.since, reason)

    def _on_dwell(
        self, due: float, device: str, dev: DeviceState, i: int, a: float, b: float
    ) -> None:
        stay = dev.stays.get(i)
        if stay is None or not stay.inside or stay.since != b or a not in stay.scheduled:
            return
        stay.scheduled.discard(a)
        if stay.out_since is not None or a in stay.fired or a not in self._thresholds[i]:
            return  # on its way out: rescheduled if it comes back before the exit
        stay.fired.add(a)
        reason = {**fix_reason(dev.last), "inside_since": stay.since, "threshold_s": a}
        self._emit(due, EventKind.DWELL, self._index.ids[i], device, a, reason)

    def _on_visit(
        self, due: float, device: str, dev: DeviceState, i: int, a: float, b: float
    ) -> None:
        if not dev.visit_open or dev.visit_start != a:
            return
        if dev.last_seen + self._visits.timeout > due:
            self._push(dev.last_seen + self._visits.timeout, _Due.VISIT, device, 0, a)
            return
        for j, stay in sorted(dev.stays.items()):
            if stay.inside:
                self._counts[j] -= 1
                left = stay.out_since if stay.out_since is not None else dev.last_seen
                reason = {"cause": "visit_end", "inside_since": stay.since, "last_seen": left}
                self._emit(
                    due, EventKind.EXIT, self._index.ids[j], device, left - stay.since, reason
                )
        dev.stays.clear()
        dev.visit_open, dev.visit_end = False, due
        reason = {"started_at": a, "last_seen": dev.last_seen, "timeout_s": self._visits.timeout}
        self._visit_event(EventKind.VISIT_END, due, device, dev.last_seen - a, reason)
        self._push(due + self._visits.gap, _Due.PURGE, device, 0, due)

    def _on_purge(
        self, due: float, device: str, dev: DeviceState, i: int, a: float, b: float
    ) -> None:
        if not dev.visit_open and dev.visit_end == a:
            del self._devices[device]

    def _visit_event(
        self, kind: EventKind, at: float, device: str, dwell: float | None, reason: dict[str, Any]
    ) -> None:
        self._emit(at, kind, self._store, device, dwell, reason)

    def _emit(
        self,
        at: float,
        kind: EventKind,
        zone: str | None,
        device: str,
        dwell: float | None,
        reason: dict[str, Any],
    ) -> None:
        self._out.append(ZoneEvent(at, kind, zone, device, None, dwell, reason))

    def _flush(self) -> list[ZoneEvent]:
        out, self._out = self._out, []
        out.sort(key=lambda e: e.at)
        return out
