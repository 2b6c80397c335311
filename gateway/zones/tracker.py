"""Zones and visits: position fixes → zone and visit events (docs/design.md §2).  Pure.

Each zone is tracked per device, with hysteresis:

* `enter` once a device has been inside for `enter_after` (at = the fix that completes it);
* `exit` once it has been outside (beyond `margin_m`) for `exit_after` with no fix back
  inside (at = first outside fix + exit_after); `dwell_s` = first outside − first inside fix;
* `dwell` when the time in the zone crosses a threshold asked for that zone, once per stay
  (at = first inside fix + threshold, or the enter if later; not while the device is on its
  way out — if it comes back before the exit, the threshold fires then);
* `visit_start` at a device's first fix when it had no visit or its last one ended more than
  `visits.gap` ago; `visit_end` at last fix + `visits.timeout` (dwell_s = last fix − start),
  after exiting every zone; a device seen again within `gap` re-opens its visit silently.

Zones that overlap (the store outline, a promo end-cap over an aisle) hold independently.
Zones that do not are *rivals* (`ZoneIndex`: two aisles side by side, the entrance and the
checkout): a device is in at most one of a set of rivals, and the incumbent keeps it until a
challenger clearly wins.  While a device is in zone A, a fix inside a rival B counts for B
only if

1. it is possible (adjacency): walking from where the device was last confirmed in A (A's
   polygon grown by its margin) to B's polygon, in a straight line as walls are not in the
   config, needs at most `max_speed` (2 m/s, the locator's) over the time since.  Else the
   fix is noise for B — B's pending stay neither starts, grows nor breaks — and is counted
   (`zone_fixes_too_fast`).  This holds for any fix in B, from every rival the device is in
   or has left too recently to have reached B since (an exit_after shorter than the walk
   does not open the way);
2. it is clearly inside B: at least `max(challenge_depth_m, B's margin, A's margin)` from
   B's edge (capped at half B's inradius, so a narrow zone can still win).  A fix shallower
   than that restarts B's challenge, as a fix outside B does.

B enters once such fixes have held for B's `enter_after` counted from the later of B's first
such fix and A's last confirmation (a fix inside A's grown polygon): B has held while A was
not confirmed.  A then exits at the same instant (`cause: superseded`, `dwell_s` up to its
first fix outside); B's entry needs no exit_after of A.  A device dithering on the border of
A and B never holds B long enough, so nothing flaps; one walking from A to B leaves A when it
enters B.  With no rival held, B enters as any zone does.

Zones from a belief.  A fix that carries the belief's probability per zone
(`Fix.zone_probability`, the grid) is weighed by it instead of its point; a zone it does not
name has probability 0.  Zone i's thresholds are its `enter_probability` and
`exit_probability` (E ≥ X), else `locate`'s:

* p ≥ E counts as inside for the enter timer: it starts or grows i's pending stay, and the
  enter is decided on such a fix once the stay has lasted `enter_after`;
* p < X counts as outside: it breaks a pending stay, and for a device in i it starts the exit
  timer (exit `exit_after` later, as for a point fix beyond the margin);
* E > p ≥ X, the band, holds what the device has: a pending stay is neither started, broken
  nor completed (an enter is only decided at p ≥ E); a device in i is still in it — no exit
  starts, a pending exit is called off and the stay is confirmed (`last_in`), as a point fix
  within the margin does.  So an exit needs `exit_after` with every fix below X, while an
  enter tolerates fixes in the band between its first and its last fix at or above E.

For a point fix the probability is 1 inside the polygon and 0 outside: with 0 < X ≤ E ≤ 1
there is no band, and the rules above are exactly the polygon's (the margin still applies).
Between rivals the belief replaces the geometry: rule 2 (depth) is not applied, a rival
challenges only at p ≥ its E, and the incumbent is confirmed while its p ≥ its X, so a
takeover needs the challenger at or above E for its `enter_after` with the incumbent below
its exit threshold (the later start, as above).  Rule 1 (adjacency) is kept: a belief may
still jump faster than anyone walks (a grid reset after a silence, a noisy burst), and the
grid's motion model makes a belief that moves at walking speed pass it anyway.

Every event's `reason` says why: `x`, `y`, `accuracy_m`, `anchors` of the fix that decided
it (the last fix for timed events), the timers behind it, and `runner_up`: the rival that was
the next best candidate — the rival held (or the one that took over, for `superseded`), else
the rival with a pending stay, else, for a belief, the rival it gives most probability, for a
point, the nearest rival within the fix's accuracy — or null.  A zone's event (not a visit's)
also carries `probability`, the zone's probability at that fix (1.0 or 0.0 for a point fix:
inside the polygon or not), and with a runner-up its `runner_up_probability`.

Timers live in one heap of deadlines, so `update` and `tick` cost O(log n) per event
whatever the number of devices, and events come out in time order across calls.  A fix
older than the last processed time is processed as of that time.

The tracker's clock (`now`) is the latest time it has seen, of a fix or a `tick`, for every
device at once: a fix dated ahead moves every device's time ahead.  So it must only ever see
times the gateway can vouch for.  The pipeline refuses inbound messages dated more than
`clock.MAX_AHEAD_S` after they were received (the live window, gateway/pipeline.py), adverts
heard by the Pi carry their receive time, and `tick` is given the gateway's clock: one device
can move the clock at most MAX_AHEAD_S (30 s) ahead of the gateway's.  A state saved by an
older gateway that had no window is repaired on restore (`drop_future`).
"""

from __future__ import annotations

import heapq
import math
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from math import isfinite
from typing import Any

from gateway.clock import MAX_AHEAD_S
from gateway.config.model import ENTER_PROBABILITY, EXIT_PROBABILITY, VisitsConfig, Zone
from gateway.errors import InvalidInput
from gateway.events import EventKind, Fix, Reason, ZoneEvent
from gateway.livestate import Changes
from gateway.zones.index import ZoneIndex
from gateway.zones.state import (
    NO_THRESHOLDS,
    DeviceState,
    Stay,
    device_from_json,
    device_to_json,
    fix_reason,
)

__all__ = ["SNAPSHOT_VERSION", "STORE_ZONE_ID", "ZoneTracker"]

STORE_ZONE_ID = "store"
SNAPSHOT_VERSION = 1  # stays gained `last_in` within it: older snapshots restore (zonestate)
MAX_SPEED_M_S = 2.0  # as the locator's speed gate: people walk at most ~2 m/s
CHALLENGE_DEPTH_M = 1.0  # how deep inside a rival a fix must be to challenge the incumbent
_OUT = (False, False)  # a zone a fix is not in, even with the margin


# The deadlines of the heap, one record per kind.  A deadline is never removed when what it
# was for changes: it carries the times that identify the stay or visit it was set for, and
# is ignored when it comes due if they no longer match (a stale deadline).


@dataclass(frozen=True, slots=True)
class _ExitDue:
    """Zone `zone` exits, unless the device was back inside since its first fix outside
    (`out_since`) or the stay begun at `since` has ended."""

    device: str
    zone: int
    out_since: float
    since: float

    def __init__(
        self,
        device: str,
        zone: int,
        out_since: float,
        since: float,
    ) -> None:
        # written out: mypyc compiles it, not the dataclass's (docs/performance.md)
        object.__setattr__(self, "device", device)
        object.__setattr__(self, "zone", zone)
        object.__setattr__(self, "out_since", out_since)
        object.__setattr__(self, "since", since)


@dataclass(frozen=True, slots=True)
class _DwellDue:
    """The stay in zone `zone` begun at `since` reaches `threshold_s`."""

    device: str
    zone: int
    threshold_s: float
    since: float

    def __init__(
        self,
        device: str,
        zone: int,
        threshold_s: float,
        since: float,
    ) -> None:
        # written out: mypyc compiles it, not the dataclass's (docs/performance.md)
        object.__setattr__(self, "device", device)
        object.__setattr__(self, "zone", zone)
        object.__setattr__(self, "threshold_s", threshold_s)
        object.__setattr__(self, "since", since)


@dataclass(frozen=True, slots=True)
class _VisitEnd:
    """The visit begun at `started_at` ends, unless the device was seen since (postponed)."""

    device: str
    started_at: float

    def __init__(
        self,
        device: str,
        started_at: float,
    ) -> None:
        # written out: mypyc compiles it, not the dataclass's (docs/performance.md)
        object.__setattr__(self, "device", device)
        object.__setattr__(self, "started_at", started_at)


@dataclass(frozen=True, slots=True)
class _Purge:
    """The device, whose visit ended at `visit_end`, is forgotten (`visits.gap` later)."""

    device: str
    visit_end: float

    def __init__(
        self,
        device: str,
        visit_end: float,
    ) -> None:
        # written out: mypyc compiles it, not the dataclass's (docs/performance.md)
        object.__setattr__(self, "device", device)
        object.__setattr__(self, "visit_end", visit_end)


_Deadline = _ExitDue | _DwellDue | _VisitEnd | _Purge
_Entry = tuple[float, int, _Deadline]  # (due, sequence number, deadline): time order, then FIFO


class ZoneTracker:
    """Per device and zone hysteresis, dwell thresholds and visits (see the module docstring).

    `dwell_thresholds` maps a zone id to the times in zone (seconds) some rule asks about.
    Visit events carry the zone id `store` when the config has such a zone, else None.
    `max_speed` (m/s) and `challenge_depth_m` tune the rivals' rules; `enter_probability` and
    `exit_probability` are the thresholds on a belief's probability of a zone that sets none of
    its own (`locate:`); `counters` counts the fixes refused as too fast and the takeovers (the
    pipeline drains it into its own).
    """

    def __init__(
        self,
        zones: Sequence[Zone],
        visits: VisitsConfig,
        dwell_thresholds: Mapping[str, Sequence[float]] | None = None,
        *,
        max_speed: float = MAX_SPEED_M_S,
        challenge_depth_m: float = CHALLENGE_DEPTH_M,
        enter_probability: float = ENTER_PROBABILITY,
        exit_probability: float = EXIT_PROBABILITY,
    ) -> None:
        self._index = ZoneIndex(zones)
        self._hits = self._index.hits
        self._rival_matrix, self._n_zones = self._index.rival_matrix, len(self._index.zones)
        self._reach_s = self._index.span_m() / max_speed  # any walk in the store takes less
        self._zones = self._index.zones
        self._pos = {z.id: i for i, z in enumerate(self._zones)}
        self._visits = visits
        self._max_speed = max_speed
        self.counters: Counter[str] = Counter()
        self._has_rivals = [bool(js) for js in self._index.rivals]
        self._enter_after = [z.enter_after for z in self._zones]
        self._margins = [z.margin_m for z in self._zones]
        self._enter_p = [_or(z.enter_probability, enter_probability) for z in self._zones]
        self._exit_p = [_or(z.exit_probability, exit_probability) for z in self._zones]
        self._need = [max(challenge_depth_m, z.margin_m) for z in self._zones]
        self._need_cap = [0.5 * self._index.inradius(i) for i in range(len(self._zones))]
        self._store = STORE_ZONE_ID if STORE_ZONE_ID in self._pos else None
        self._thresholds: list[tuple[float, ...]] = [() for _ in self._zones]
        self._devices: dict[str, DeviceState] = {}
        self._changes = Changes()  # the devices changed since the last `changes()`
        self._heap: list[_Entry] = []
        self._seq = 0
        self._now = -math.inf
        self._counts = [0] * len(self._zones)
        # the smallest zone first, the later in the config first among equals (`innermost`)
        self._inner = [(a, -i) for i, a in enumerate(self._index.areas)]
        self._out: list[ZoneEvent] = []  # events decided during the current call
        if dwell_thresholds:
            self.set_dwell_thresholds(dwell_thresholds)

    @property
    def index(self) -> ZoneIndex:
        """The prepared zone geometry (e.g. for the zones containing a fix)."""
        return self._index

    def update(self, fix: Fix) -> list[ZoneEvent]:
        """Account for one fix; return the events it (and the time it brings) decided."""
        at, x, y = fix.at, fix.x, fix.y
        if not (isfinite(at) and isfinite(x) and isfinite(y)):
            return []
        t = self._now if self._now > at else at  # max(at, now), without the call
        heap = self._heap
        if heap and heap[0][0] <= t:
            self._advance(t)
        self._now = t
        self._changes.keys.add(fix.device)
        dev = self._devices.get(fix.device)
        if dev is not None and dev.visit_open:
            dev.last, dev.last_seen = fix, t  # _see's common case
        else:
            dev = self._see(fix, t)
        if fix.zone_probability is not None:
            self._believe(fix, t, dev)
        else:  # a point fix: in a zone inside its polygon, out beyond its margin
            hits = self._hits(x, y)  # only the zones whose grown polygon holds the fix
            stays = dev.stays
            if stays:
                for i, held in stays.items():
                    if held.inside and i in hits:
                        held.last_in = t  # confirmed before any rival is weighed against it
                zones = sorted(hits.keys() | stays.keys())
            else:
                zones = sorted(hits)
            for i in zones:
                hit = hits.get(i, _OUT)
                stay = stays.get(i)
                if stay is None or not stay.inside:
                    if hit[0]:
                        self._pending(fix, t, dev, i, stay)
                    elif stay is not None:
                        del stays[i]  # a fix outside breaks a pending stay
                elif hit[1] == (stay.out_since is not None):  # else still in, or still out
                    self._in_or_out(fix.device, t, i, stay, hit[1])
        if heap and heap[0][0] <= t:
            self._advance(t)
        return self._flush() if self._out else []

    def _believe(self, fix: Fix, t: float, dev: DeviceState) -> None:
        """A fix with the belief's probability per zone: in at `enter_probability` and above,
        out below `exit_probability`, the band between holding what the device has (see
        "Zones from a belief" in the module docstring)."""
        probs = self._probabilities(fix)
        enter_p, exit_p, stays = self._enter_p, self._exit_p, dev.stays
        for i, held in stays.items():
            if held.inside and probs.get(i, 0.0) >= exit_p[i]:
                held.last_in = t  # confirmed before any rival is weighed against it
        for i in sorted(probs.keys() | stays.keys()):
            p = probs.get(i, 0.0)
            stay = stays.get(i)
            if stay is None or not stay.inside:
                if p >= enter_p[i]:
                    self._pending(fix, t, dev, i, stay)
                elif p < exit_p[i] and stay is not None:
                    del stays[i]  # a dip below the exit threshold breaks a pending stay
            elif (p >= exit_p[i]) == (stay.out_since is not None):  # else still in, or out
                self._in_or_out(fix.device, t, i, stay, p >= exit_p[i])

    def _probabilities(self, fix: Fix) -> dict[int, float]:
        """The belief's probability by zone index; zones not configured here, and values that
        are not numbers, are left out (probability 0)."""
        pos = self._pos
        return {pos[z]: p for z, p in (fix.zone_probability or ()) if z in pos and isfinite(p)}

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

    def tracked(self) -> int:
        """Devices with any state: an open visit, or one ended less than `visits.gap` ago
        (kept so that a return within the gap re-opens it; forgotten after)."""
        return len(self._devices)

    def __contains__(self, device: object) -> bool:
        """Whether `device` has any state here (see `tracked`)."""
        return device in self._devices

    def zones_of(self, device: str) -> tuple[str, ...]:
        """Ids of the zones `device` is currently in (after hysteresis), in config order."""
        dev = self._devices.get(device)
        if dev is None:
            return ()
        return tuple(self._index.ids[i] for i in sorted(dev.stays) if dev.stays[i].inside)

    def visit_started(self, device: str) -> float | None:
        """When `device`'s visit began (the `at` of its `visit_start`): the open one, or the
        last one while it is remembered (`visits.gap` after its end); None if none is."""
        dev = self._devices.get(device)
        return dev.visit_start if dev is not None else None

    def open_visits(self) -> Iterator[tuple[str, float, Fix, str | None]]:
        """Each device with an open visit: its id, the visit's start, its last fix, and the
        innermost zone it is in after hysteresis (the smallest by area; among equal areas
        the later in the config), or None when it is in none."""
        ids, inner = self._index.ids, self._inner
        for device, dev in self._devices.items():
            if not dev.visit_open:
                continue
            zone = None
            if dev.stays:  # most devices are in a zone or two; walking in the open, none
                inside = [i for i, stay in dev.stays.items() if stay.inside]
                if inside:
                    zone = ids[min(inside, key=inner.__getitem__)]
            yield device, dev.visit_start, dev.last, zone

    def forget(self, device: str) -> None:
        """Drop everything about `device`, silently (no exit, no visit_end)."""
        dev = self._devices.pop(device, None)
        self._changes.keys.add(device)
        for i, stay in (dev.stays if dev else {}).items():
            self._counts[i] -= stay.inside

    def snapshot(self) -> dict[str, Any]:
        """The dwell timers and visits as plain JSON-able values (see `restore`)."""
        devices = {d: device_to_json(dev, self._index.ids) for d, dev in self._devices.items()}
        return self._snapshot_base() | {"devices": devices}

    def _snapshot_base(self) -> dict[str, Any]:
        """`snapshot()` without its devices."""
        now = self._now if math.isfinite(self._now) else None
        return {"v": SNAPSHOT_VERSION, "now": now, "devices": {}}

    @property
    def all_changed(self) -> bool:
        """Whether the next `changes()` holds every device (see `resave`)."""
        return self._changes.all

    def changes(
        self, everything: bool = False
    ) -> tuple[dict[str, Any], dict[str, dict[str, Any] | None]]:
        """The snapshot with no devices, and the devices changed since the last call (their
        `snapshot()` entry; None for a device forgotten): every device when `everything`, on
        the first call and after `restore` or `resave`."""
        ids = self._index.ids
        devices = self._changes.take(self._devices, lambda d: device_to_json(d, ids), everything)
        return self._snapshot_base(), devices

    def resave(self) -> None:
        """The changes last taken were not saved: the next `changes()` holds every device."""
        self._changes.everything()

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
        self._changes.everything()
        for device, dev in devices.items():
            self._rearm(device, dev)

    def drop_future(self, now: float, ahead: float = MAX_AHEAD_S) -> dict[str, int]:
        """Repair a restored state dated ahead of the gateway's clock `now` (by more than
        `ahead` seconds), as a clock pushed ahead before the live window existed left it:
        every device with a time after `now + ahead` is forgotten silently (its times cannot
        be trusted; its next fix starts a new visit), and the clock comes back to the latest
        time of the devices kept, at most `now` (the next tick brings it to the gateway's).
        Returns what was repaired, by kind (empty when nothing was)."""
        limit = now + ahead
        repaired: dict[str, int] = {}
        future = [d for d, dev in self._devices.items() if _latest(dev) > limit]
        for device in future:
            self.forget(device)
        if future:
            repaired["zone devices"] = len(future)
        if self._now > limit:
            kept = max((_latest(dev) for dev in self._devices.values()), default=-math.inf)
            self._now = min(kept, now)
            repaired["zone clock"] = 1
        return repaired

    def _rearm(self, device: str, dev: DeviceState) -> None:
        if dev.visit_open:
            self._push(dev.last_seen + self._visits.timeout, _VisitEnd(device, dev.visit_start))
        else:
            self._push(dev.visit_end + self._visits.gap, _Purge(device, dev.visit_end))
        now = self._now if math.isfinite(self._now) else dev.last_seen
        for i, stay in dev.stays.items():
            if not stay.inside:
                continue
            self._counts[i] += 1
            if stay.out_since is not None:
                due = stay.out_since + self._zones[i].exit_after
                self._push(due, _ExitDue(device, i, stay.out_since, stay.since))
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
                self._push(t + self._visits.timeout, _VisitEnd(fix.device, dev.visit_start))
                return dev
            dev.visit_start = t
        reason: Reason = {**fix_reason(fix), "runner_up": None}
        self._visit_event(EventKind.VISIT_START, t, fix.device, None, reason)
        self._push(t + self._visits.timeout, _VisitEnd(fix.device, t))
        return dev

    def _in_or_out(self, device: str, t: float, i: int, stay: Stay, grown: bool) -> None:
        """A device in zone `i` is back inside the grown polygon (`grown`) before its exit,
        or has its first fix outside it: then the exit is due after `exit_after`."""
        if grown:
            stay.out_since = None
            self._schedule_dwell(device, i, stay, t)
        else:
            stay.out_since = t
            self._push(t + self._zones[i].exit_after, _ExitDue(device, i, t, stay.since))

    def _pending(self, fix: Fix, t: float, dev: DeviceState, i: int, stay: Stay | None) -> None:
        """A fix inside zone `i`, which the device is not in (yet): it starts or grows i's
        stay, unless rule 1 or 2 of the module docstring says otherwise, and enters i once
        the stay is long enough."""
        held: list[int] | None = self._rivals_held(t, dev, i) if self._has_rivals[i] else []
        if held is None:
            self.counters["zone_fixes_too_fast"] += 1
            return  # noise for zone i
        if held and fix.zone_probability is None and self._shallow(fix, i, held):
            dev.stays.pop(i, None)  # i's challenge restarts
            return
        if stay is None:
            stay = dev.stays[i] = Stay(t, last_in=t)
        start = max([stay.since, *(dev.stays[j].last_in for j in held)]) if held else stay.since
        if t - start >= self._enter_after[i]:
            self._enter(fix, t, dev, i, stay, start, held)

    def _rivals_held(self, t: float, dev: DeviceState, i: int) -> list[int] | None:
        """The rivals of zone `i` the device is in, in index order; None if reaching `i` by
        `t` from one of them, or from a rival it has recently left, needs walking faster than
        `max_speed` (rule 1 of the module docstring).  The device's few stays are scanned, not
        the zone's rivals (every other cell of a grid of 200 aisles)."""
        left = dev.left
        if left:
            for j in [j for j, last_in in left.items() if t - last_in > self._reach_s]:
                del left[j]  # long enough ago to have walked anywhere since
        index, rival, n, speed = self._index, self._rival_matrix, self._n_zones, self._max_speed
        held = []
        for j, s in dev.stays.items():
            if s.inside and rival[j * n + i]:
                if index.gap(j, i) > speed * (t - s.last_in) + 1e-6:
                    return None
                held.append(j)
        for j, last_in in left.items():
            if rival[j * n + i] and index.gap(j, i) > speed * (t - last_in) + 1e-6:
                return None
        if len(held) > 1:
            held.sort()
        return held

    def _shallow(self, fix: Fix, i: int, held: list[int]) -> bool:
        """Whether `fix`, inside zone `i` while the device is in its rivals `held`, is too
        shallow to count for `i` (rule 2 of the module docstring)."""
        need = self._need[i]  # max(challenge depth, i's margin, the held rivals' margins) …
        for k in held:
            if self._margins[k] > need:
                need = self._margins[k]
        cap = self._need_cap[i]  # … capped at half i's inradius
        return self._index.shallower(i, fix.x, fix.y, cap if cap < need else need)

    def _enter(
        self,
        fix: Fix,
        t: float,
        dev: DeviceState,
        i: int,
        stay: Stay,
        start: float,
        held: list[int],
    ) -> None:
        """Enter zone `i`; the rivals `held` (beaten by this challenge) exit at once."""
        reason: Reason = {
            **fix_reason(fix),
            "inside_since": start,
            "enter_after_s": self._zones[i].enter_after,
            **self._ranking(i, dev, fix),
        }
        for j in held:
            self._supersede(fix, t, dev, j, i)
        stay.since, stay.inside, stay.entered_at, stay.last_in = start, True, t, t
        self._counts[i] += 1
        self._emit(t, EventKind.ENTER, self._index.ids[i], fix.device, None, reason)
        self._schedule_dwell(fix.device, i, stay, t)

    def _supersede(self, fix: Fix, t: float, dev: DeviceState, j: int, by: int) -> None:
        """Zone `j` exits now: its rival `by` took over (dwell up to j's first fix outside)."""
        stay = dev.stays.pop(j)
        dev.left[j] = stay.last_in
        self._counts[j] -= 1
        self.counters["zone_takeovers"] += 1
        left = stay.out_since if stay.out_since is not None else t
        reason: Reason = {
            **fix_reason(fix),
            "cause": "superseded",
            "inside_since": stay.since,
            "outside_since": stay.out_since,
            **self._ranking(j, dev, fix, by),
        }
        self._emit(t, EventKind.EXIT, self._index.ids[j], fix.device, left - stay.since, reason)

    def _ranking(self, i: int, dev: DeviceState, fix: Fix, runner: int | None = None) -> Reason:
        """The reason's `probability` of zone `i` at `fix` and its `runner_up` (`runner`, else
        the rival next best placed), with the runner-up's `runner_up_probability`."""
        if runner is None:
            runner = self._runner_up(i, dev)
        reason: Reason = {"probability": self._probability(fix, i), "runner_up": None}
        if runner is not None:
            reason["runner_up"] = self._index.ids[runner]
            reason["runner_up_probability"] = self._probability(fix, runner)
        return reason

    def _probability(self, fix: Fix, i: int) -> float:
        """Zone `i`'s probability at `fix`: the belief's, else 1.0 inside its polygon, 0.0
        outside."""
        if fix.zone_probability is None:
            return 1.0 if self._hits(fix.x, fix.y).get(i, _OUT)[0] else 0.0
        return self._probabilities(fix).get(i, 0.0)

    def _runner_up(self, i: int, dev: DeviceState) -> int | None:
        """The rival of zone `i` next best placed for the device (see the module docstring)."""
        index, stays = self._index, dev.stays
        mine = sorted(j for j in stays if index.are_rivals(i, j))  # few stays, not 199 rivals
        held = [j for j in mine if stays[j].inside]
        pending = [j for j in mine if not stays[j].inside]
        if held:
            return max(held, key=lambda j: stays[j].last_in)
        if pending:
            return min(pending, key=lambda j: stays[j].since)
        last = dev.last
        if last.zone_probability is not None:
            return self._likeliest_rival(i, last)
        return index.nearest(index.rivals[i], last.x, last.y, last.accuracy_m)

    def _likeliest_rival(self, i: int, fix: Fix) -> int | None:
        """The rival of zone `i` the belief of `fix` gives most probability (above 0), the
        first in the config among equals."""
        best, best_p = None, 0.0
        for j, p in sorted(self._probabilities(fix).items()):
            if p > best_p and self._index.are_rivals(i, j):
                best, best_p = j, p
        return best

    def _schedule_dwell(self, device: str, i: int, stay: Stay, t: float) -> None:
        for th in self._thresholds[i]:
            if th not in stay.fired and th not in stay.scheduled:
                stay.scheduled |= {th}
                self._push(max(stay.since + th, t), _DwellDue(device, i, th, stay.since))

    def _push(self, due: float, deadline: _Deadline) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (due, self._seq, deadline))

    def _advance(self, t: float) -> None:
        """Fire every deadline due by `t`, in time order."""
        heap = self._heap
        while heap and heap[0][0] <= t:
            due, _, deadline = heapq.heappop(heap)
            dev = self._devices.get(deadline.device)
            if dev is None:
                continue
            self._changes.keys.add(deadline.device)
            if type(deadline) is _ExitDue:
                self._on_exit(due, dev, deadline)
            elif type(deadline) is _DwellDue:
                self._on_dwell(due, dev, deadline)
            elif type(deadline) is _VisitEnd:
                self._on_visit(due, dev, deadline)
            elif type(deadline) is _Purge:
                self._on_purge(dev, deadline)
        self._now = t

    def _on_exit(self, due: float, dev: DeviceState, d: _ExitDue) -> None:
        i, a, device = d.zone, d.out_since, d.device
        stay = dev.stays.get(i)
        if stay is None or not stay.inside or stay.out_since != a or stay.since != d.since:
            return
        del dev.stays[i]
        dev.left[i] = stay.last_in
        self._counts[i] -= 1
        reason: Reason = {
            **fix_reason(dev.last),
            "cause": "left",
            "inside_since": stay.since,
            "outside_since": a,
            "exit_after_s": self._zones[i].exit_after,
            **self._ranking(i, dev, dev.last),
        }
        self._emit(due, EventKind.EXIT, self._index.ids[i], device, a - stay.since, reason)

    def _on_dwell(self, due: float, dev: DeviceState, d: _DwellDue) -> None:
        i, a, device = d.zone, d.threshold_s, d.device
        stay = dev.stays.get(i)
        if stay is None or not stay.inside or stay.since != d.since or a not in stay.scheduled:
            return
        stay.scheduled = stay.scheduled - {a} or NO_THRESHOLDS
        if stay.out_since is not None or a in stay.fired or a not in self._thresholds[i]:
            return  # on its way out: rescheduled if it comes back before the exit
        stay.fired |= {a}
        reason: Reason = {
            **fix_reason(dev.last),
            "inside_since": stay.since,
            "threshold_s": a,
            **self._ranking(i, dev, dev.last),
        }
        self._emit(due, EventKind.DWELL, self._index.ids[i], device, a, reason)

    def _on_visit(self, due: float, dev: DeviceState, d: _VisitEnd) -> None:
        a, device = d.started_at, d.device
        if not dev.visit_open or dev.visit_start != a:
            return
        if dev.last_seen + self._visits.timeout > due:
            self._push(dev.last_seen + self._visits.timeout, d)  # seen since: postponed
            return
        for j, stay in sorted(dev.stays.items()):
            if stay.inside:
                self._counts[j] -= 1
                left = stay.out_since if stay.out_since is not None else dev.last_seen
                reason: Reason = {
                    **fix_reason(dev.last),
                    "cause": "visit_end",
                    "inside_since": stay.since,
                    "last_seen": left,
                    **self._ranking(j, dev, dev.last),
                }
                self._emit(
                    due, EventKind.EXIT, self._index.ids[j], device, left - stay.since, reason
                )
        dev.stays.clear()
        dev.visit_open, dev.visit_end = False, due
        end: Reason = {
            **fix_reason(dev.last),
            "started_at": a,
            "last_seen": dev.last_seen,
            "timeout_s": self._visits.timeout,
            "runner_up": None,
        }
        self._visit_event(EventKind.VISIT_END, due, device, dev.last_seen - a, end)
        self._push(due + self._visits.gap, _Purge(device, due))

    def _on_purge(self, dev: DeviceState, d: _Purge) -> None:
        if not dev.visit_open and dev.visit_end == d.visit_end:
            del self._devices[d.device]

    def _visit_event(
        self, kind: EventKind, at: float, device: str, dwell: float | None, reason: Reason
    ) -> None:
        self._emit(at, kind, self._store, device, dwell, reason)

    def _emit(
        self,
        at: float,
        kind: EventKind,
        zone: str | None,
        device: str,
        dwell: float | None,
        reason: Reason,
    ) -> None:
        self._out.append(ZoneEvent(at, kind, zone, device, None, dwell, reason))

    def _flush(self) -> list[ZoneEvent]:
        out, self._out = self._out, []
        out.sort(key=lambda e: e.at)
        return out


def _or(value: float | None, default: float) -> float:
    return default if value is None else value


def _latest(dev: DeviceState) -> float:
    """The latest time a device's state holds (NaN, for a time not set, never counts)."""
    times = [dev.last.at, dev.last_seen, dev.visit_start, dev.visit_end, *dev.left.values()]
    for stay in dev.stays.values():
        times += [stay.since, stay.entered_at, stay.last_in]
        if stay.out_since is not None:
            times.append(stay.out_since)
    return max((t for t in times if not math.isnan(t)), default=-math.inf)
