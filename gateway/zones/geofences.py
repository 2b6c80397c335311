"""GPS geofences: the app's locations and region transitions → enter/exit events.  Pure.

Each geofence of the config (a WGS84 circle or polygon) is tracked independently per device,
with hysteresis, and never reads a clock: time comes only from the inputs.

* A location is a point and its accuracy circle (radius `acc_m`).  It counts as **inside** a
  geofence only if the whole accuracy circle is inside (the border may touch it), as
  **outside** only if the whole circle is outside; a circle that straddles the border changes
  nothing, so a coarse fix (a cell tower's 1 km) never makes or breaks a stay.  An unknown
  accuracy (None) is taken as an exact point; a point on the border is inside.
* `enter` once a device has been inside for `enter_after` with no fix outside in between
  (at = first inside fix + enter_after), `exit` once outside for `exit_after` with no fix
  inside in between (at = first outside fix + exit_after; `dwell_s` = first outside fix −
  first inside fix).  Deadlines fire from `location`, `transition` or `tick`, whichever
  brings the time past them; with 0 s they fire at the fix itself.
* A transition (the phone's own region monitoring, OwnTracks `_type: transition`) is applied
  at once: it enters or leaves the geofence at its time and cancels any pending change.

Circles use the haversine distance to the centre.  Polygons are projected once to local
metres around their centroid (equirectangular: under 0.1 % error over a few km, not for
areas spanning the antimeridian or the poles) and prepared with shapely.  An input older than
the last one processed counts as of that time.  Events are `ZoneEvent`s with zone = geofence
id, device = `phone:<token>`, and a JSON-safe reason: `lat`, `lon`, `acc_m`, `source`
("gps" or "transition"), and `distance_m` (to the centre) for circles.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import shapely
from shapely.geometry import Point, Polygon

from gateway.config.model import Geofence
from gateway.errors import InvalidInput
from gateway.events import EventKind, Reason, ZoneEvent

EARTH_RADIUS_M = 6_371_008.8  # mean radius (IUGG)
_M_PER_DEG = math.pi / 180 * EARTH_RADIUS_M


class Side(Enum):
    """Where a fix's accuracy circle lies with respect to a geofence."""

    INSIDE = "inside"
    OUTSIDE = "outside"
    BORDER = "border"  # straddles it: says nothing


def haversine_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in metres between two WGS84 points (degrees)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))


class _Circle:
    def __init__(self, lat: float, lon: float, radius_m: float) -> None:
        self.lat, self.lon, self.radius_m = lat, lon, radius_m

    def side(self, lat: float, lon: float, acc_m: float) -> tuple[Side, Reason]:
        d = haversine_m(self.lat, self.lon, lat, lon)
        if d + acc_m <= self.radius_m:
            return Side.INSIDE, {"distance_m": d}
        if d - acc_m >= self.radius_m:
            return Side.OUTSIDE, {"distance_m": d}
        return Side.BORDER, {"distance_m": d}


class _Area:
    """A (lon, lat) polygon, projected once to local metres and prepared."""

    def __init__(self, polygon: Polygon) -> None:
        centre = polygon.centroid
        self._lon0, self._lat0 = centre.x, centre.y
        self._kx = _M_PER_DEG * math.cos(math.radians(self._lat0))
        local = shapely.transform(polygon, self._project_array)
        self._shape, self._border = local, local.boundary
        shapely.prepare(self._shape)
        shapely.prepare(self._border)
        self._bounds = local.bounds

    def _project_array(self, coords: Any) -> Any:
        out = coords.copy()
        out[:, 0] = (coords[:, 0] - self._lon0) * self._kx
        out[:, 1] = (coords[:, 1] - self._lat0) * _M_PER_DEG
        return out

    def side(self, lat: float, lon: float, acc_m: float) -> tuple[Side, Reason]:
        x, y = (lon - self._lon0) * self._kx, (lat - self._lat0) * _M_PER_DEG
        x0, y0, x1, y1 = self._bounds
        if x < x0 - acc_m or x > x1 + acc_m or y < y0 - acc_m or y > y1 + acc_m:
            return Side.OUTSIDE, {}  # far from the box: no geometry needed
        inside = bool(shapely.intersects_xy(self._shape, x, y))
        if acc_m > 0 and float(shapely.distance(self._border, Point(x, y))) < acc_m:
            return Side.BORDER, {}
        return (Side.INSIDE if inside else Side.OUTSIDE), {}


_Shape = _Circle | _Area


def _shape_of(fence: Geofence) -> _Shape:
    if fence.polygon is not None:
        return _Area(fence.polygon)
    if fence.center is not None and fence.radius_m is not None:
        return _Circle(fence.center.lat, fence.center.lon, fence.radius_m)
    raise InvalidInput(f"geofence {fence.id!r} needs a polygon or a circle (lat, lon, radius_m)")


@dataclass(slots=True)
class _Track:
    """One device in one geofence: an open stay and/or a pending change of side."""

    inside: bool = False  # `enter` emitted, no `exit` yet
    since: float = 0.0  # first inside fix of the stay
    pending: float | None = None  # first fix on the other side, awaiting the hysteresis
    deadline: int = 0  # the heap entry that will settle it (older entries are stale)
    evidence: Reason = field(default_factory=Reason)  # the last such fix, for the reason


# (due, seq, device, geofence index): an entry whose seq is not its track's deadline is stale.
_Deadline = tuple[float, int, str, int]


class GeofenceTracker:
    """Per device and geofence hysteresis over GPS fixes and transitions (module docstring)."""

    def __init__(self, geofences: Sequence[Geofence]) -> None:
        self._fences = tuple(geofences)
        self._shapes = tuple(_shape_of(f) for f in self._fences)
        self._by_id = {f.id: i for i, f in reversed(list(enumerate(self._fences)))}
        self._by_name = {_fold(f.name): i for i, f in reversed(list(enumerate(self._fences)))}
        self._devices: dict[str, dict[int, _Track]] = {}
        self._heard: dict[str, float] = {}  # device → time of its last location or transition
        self._heap: list[_Deadline] = []
        self._seq = 0
        # The latest time seen, for every phone at once: the pipeline's live window (clock.py)
        # keeps a phone's own time within MAX_AHEAD_S of the gateway's, so no phone can push
        # it further ahead; not persisted, so nothing saved ahead is restored.
        self._now = -math.inf
        self._out: list[ZoneEvent] = []

    def location(
        self, at: float, device: str, lat: float, lon: float, acc_m: float | None
    ) -> list[ZoneEvent]:
        """Account for one GPS fix; return the events it (and the time it brings) decided.

        A fix with a non-finite time, position or accuracy is ignored; a negative or
        unknown (None) accuracy counts as 0 m.
        """
        acc = 0.0 if acc_m is None else float(acc_m)
        if not all(math.isfinite(v) for v in (at, lat, lon, acc)):
            return []
        acc = max(0.0, acc)
        lat, lon = float(lat), float(lon)
        t = self._advance_to(at)
        self._heard[device] = t
        base: Reason = {
            "lat": lat,
            "lon": lon,
            "acc_m": None if acc_m is None else acc,
            "source": "gps",
        }
        for i, shape in enumerate(self._shapes):
            side, extra = shape.side(lat, lon, acc)
            if side is not Side.BORDER:
                self._observe(device, i, side is Side.INSIDE, t, base | extra)
        self._advance(t)
        return self._flush()

    def transition(
        self,
        at: float,
        device: str,
        region: str | Iterable[str],
        enter: bool,
        *,
        lat: float | None = None,
        lon: float | None = None,
        acc_m: float | None = None,
    ) -> list[ZoneEvent]:
        """The phone says it entered (or left) `region`: applied at once, at `at`.

        `region` is a name or several (a transition's `names`: region id, then description);
        each is looked up as a geofence id first, then as a geofence name (case-insensitive).
        An unknown region changes nothing and returns no event.  `lat`, `lon` and `acc_m`
        (where the phone was) only go into the events' reason.
        """
        names = (region,) if isinstance(region, str) else tuple(region)
        i = self._lookup(names)
        if i is None or not math.isfinite(at):
            return []
        t = self._advance_to(at)
        self._heard[device] = t
        reason: Reason = {"lat": _finite(lat), "lon": _finite(lon), "acc_m": _finite(acc_m)}
        reason |= {"source": "transition", "region": self._fences[i].id}
        self._apply_transition(device, i, enter, t, reason)
        self._advance(t)
        return self._flush()

    def tick(self, now: float) -> list[ZoneEvent]:
        """Let time pass with no input: the enters and exits due by `now`."""
        if math.isfinite(now):
            self._advance(max(float(now), self._now))
        return self._flush()

    def inside(self, device: str) -> tuple[str, ...]:
        """Ids of the geofences `device` is in (after hysteresis), in config order."""
        tracks = self._devices.get(device, {})
        return tuple(self._fences[i].id for i in sorted(tracks) if tracks[i].inside)

    def forget(self, device: str) -> None:
        """Drop everything about `device`, silently (no exit event)."""
        self._devices.pop(device, None)
        self._heard.pop(device, None)

    def prune(self, now: float, idle_s: float) -> int:
        """Forget, silently, the devices with no location or transition for `idle_s` before
        `now` (a phone gone quiet: its next fix starts afresh); return how many held a stay
        or a pending change.  Without it every phone ever seen inside a geofence would stay."""
        idle = [d for d, t in self._heard.items() if now - t > idle_s]
        held = 0
        for device in idle:
            del self._heard[device]
            held += self._devices.pop(device, None) is not None
        return held

    def tracked(self) -> int:
        """Devices with a stay or a pending change in some geofence."""
        return len(self._devices)

    # -- hysteresis -----------------------------------------------------------------------

    def _observe(self, device: str, i: int, inside: bool, t: float, evidence: Reason) -> None:
        tracks = self._devices.get(device)
        track = tracks.get(i) if tracks is not None else None
        if inside == (track is not None and track.inside):
            if track is not None and track.pending is not None:
                self._settle(device, i, track)  # back on its side: the change is off
            return
        if track is None:
            track = self._devices.setdefault(device, {}).setdefault(i, _Track())
        if track.pending is None:
            fence = self._fences[i]
            track.pending = t
            due = t + (fence.exit_after if track.inside else fence.enter_after)
            track.deadline = self._push(due, device, i)
        track.evidence = evidence

    def _apply_transition(
        self, device: str, i: int, enter: bool, t: float, evidence: Reason
    ) -> None:
        track = self._devices.get(device, {}).get(i)
        if enter and (track is None or not track.inside):
            track = self._devices.setdefault(device, {}).setdefault(i, _Track())
            track.inside, track.since, track.pending = True, t, None
            self._emit(t, EventKind.ENTER, i, device, None, evidence | {"inside_since": t})
        elif not enter and track is not None and track.inside:
            self._drop(device, i)
            reason = evidence | {"inside_since": track.since, "outside_since": t}
            self._emit(t, EventKind.EXIT, i, device, t - track.since, reason)
        elif track is not None:
            self._settle(device, i, track)

    def _fire(self, due: float, seq: int, device: str, i: int) -> None:
        track = self._devices.get(device, {}).get(i)
        if track is None or track.pending is None or track.deadline != seq:
            return  # stale: the change was called off, or the device forgotten
        fence, first = self._fences[i], track.pending
        if track.inside:
            self._drop(device, i)
            reason = track.evidence | {"inside_since": track.since, "outside_since": first}
            reason["exit_after_s"] = fence.exit_after
            self._emit(due, EventKind.EXIT, i, device, first - track.since, reason)
        else:
            track.inside, track.since, track.pending = True, first, None
            reason = track.evidence | {"inside_since": first, "enter_after_s": fence.enter_after}
            self._emit(due, EventKind.ENTER, i, device, None, reason)

    def _settle(self, device: str, i: int, track: _Track) -> None:
        """Call off a pending change; a track that is neither inside nor pending goes."""
        track.pending = None
        if not track.inside:
            self._drop(device, i)

    def _drop(self, device: str, i: int) -> None:
        tracks = self._devices.get(device)
        if tracks is not None:
            tracks.pop(i, None)
            if not tracks:
                del self._devices[device]

    # -- time -----------------------------------------------------------------------------

    def _advance_to(self, at: float) -> float:
        t = max(float(at), self._now)
        self._advance(t)
        return t

    def _advance(self, t: float) -> None:
        """Fire every deadline due by `t`, in time order."""
        heap = self._heap
        while heap and heap[0][0] <= t:
            due, seq, device, i = heapq.heappop(heap)
            self._fire(due, seq, device, i)
        self._now = t

    def _push(self, due: float, device: str, i: int) -> int:
        self._seq += 1
        heapq.heappush(self._heap, (due, self._seq, device, i))
        return self._seq

    def _lookup(self, names: Sequence[str]) -> int | None:
        for name in names:
            if isinstance(name, str) and name in self._by_id:
                return self._by_id[name]
        for name in names:
            if isinstance(name, str) and _fold(name) in self._by_name:
                return self._by_name[_fold(name)]
        return None

    def _emit(
        self,
        at: float,
        kind: EventKind,
        i: int,
        device: str,
        dwell: float | None,
        reason: Reason,
    ) -> None:
        zone = self._fences[i].id
        self._out.append(ZoneEvent(at, kind, zone, device, None, dwell, reason))

    def _flush(self) -> list[ZoneEvent]:
        out, self._out = self._out, []
        out.sort(key=lambda e: e.at)
        return out


def _finite(value: float | None) -> float | None:
    """`value` as a JSON-safe float, None when absent or not finite."""
    return float(value) if value is not None and math.isfinite(value) else None


def _fold(name: str) -> str:
    return " ".join(name.split()).casefold()
