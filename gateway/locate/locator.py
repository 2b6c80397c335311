"""Locate: observations → position fixes (docs/design.md §2, Locate).  Pure.

Per (device, anchor) link an RSSI filter, then a distance from the log-distance path-loss
model, then a position:

* **Filter** — one per link, chosen with `rssi_filter` (`FilterKind`): a 1-D Kalman filter
  (the default: level with random-walk noise per second, a smaller measurement variance for
  rises so an approach is believed faster than a retreat, an innovation gate that skips a
  lone outlier and restarts on a confirmed step); the median-of-3 + asymmetric EMA; a
  time-window median inside Tukey's IQR fences; or raw.  Measured by `rayon bench accuracy`
  on five recorded data sets (docs/accuracy.md), choices made on training splits only: the
  Kalman filter has the best mean training zone accuracy, each filter with its best position
  method and freshness (53.9 % vs 52.7 median-EMA, 52.4 window-IQR, 50.9 raw); it helps
  most where samples are dense (tetam) and little on sparse phone scans (UCI, UJI).  A link
  not heard for `fresh_s` restarts from its next sample rather than blending with stale data.
* **Distance** — `d = 10 ** ((rssi_at_1m - rssi) / (10 n))` with the anchor's calibration.
* **Position** — one of the `PositionMethod`s (`locate.method`):
  - `AUTO` (the default): with ≥ 3 fresh links, the centroid below drawn `AUTO_GRID_WEIGHT` (40 %)
    of the way to the grid's estimate from every fresh link, taken from a flat prior over the
    cells within `AUTO_WINDOW_M` of the centroid (no belief kept per device), the pull recomputed
    when the loudest anchor changes or `AUTO_REFRESH_S` (3 s) passed; with 2, the centroid of the
    pair; with 1, that anchor, behind the speed gate.  Chosen as the best mean training zone
    accuracy among settings that leave the simulator no worse (50.0 % vs 46.5 % for the centroid;
    simulator dwell 89.4 % vs 88.4 %, false enters 3.3 vs 4.3 per device-hour): the grid alone
    wins training but its estimates spread in every direction where the centroid leans into the
    aisle of the nearest scanner (docs/accuracy.md, The default).
  - `STRONGEST`: the loudest fresh anchor's position.
  - `CENTROID` (earlier versions' default): with ≥ 3 fresh links, over the `max_anchors`
    strongest, a weighted centroid with weights 1/d^k (`centroid_power`, 3 by default);
    `MULTILATERATION`: weighted non-linear least squares on the ranges (damped Gauss–Newton from
    the centroid, weights 1/d²), which never won a training split (RSSI ranges are off by metres).
    The accuracy is the weighted RMS range residual at the estimate (floored).  With fewer links,
    the strongest fresh anchor's own position ("nearest aisle"), accuracy = its estimated
    distance.  A speed gate then clamps a jump faster than `max_speed` m/s from the last earlier
    fix of ≥ 3 anchors: a fix of fewer is that anchor's position, a guess, and a gate anchored on
    it held whole tracks near the wrong point.
  - `GRID`: a recursive Bayes (grid HMM) filter per device over cells covering the anchors
    (`GridSettings`): the previous belief blurred by a Gaussian of σ = max_speed · dt (the
    motion model; flat after a long silence), times the likelihood of every fresh filtered
    RSSI under the log-normal path-loss model (σ dB, fitted per site by the benchmark);
    position = posterior mean (or MAP cell), accuracy = the posterior's RMS spread.  It
    uses every fresh link (`max_anchors` is ignored: a weak link still rules cells out) and
    needs no speed gate.  On the recorded data sets it wins the training split of 4 of 5
    (mean training zone accuracy 51.7 % vs 46.3 % for the default centroid, both Kalman,
    σ 6 dB); on the test splits it brings the tetam office to 1.96 m mean error and the
    kolakowski flat to 1.38–1.47 m (docs/accuracy.md).  It is not the default: it costs the
    simulator 17 points of dwell, a belief per device (8 kB on the bench store, 40 MB at
    5,000 devices) and the replay's speed.  Cost per fix ~35 µs (1 m cells: a 40 × 25 m
    store is ~1,100 cells, 4.4 KB of float32 per device); the anchors' model grids are
    precomputed, the update is one matrix-vector product, an exp and two small matrix
    products for the blur.
* **When** — mode A: the scanners that hear one advert report it within a few ms, a
  *burst*; a packet at least `min_interval_s` (0.5 s) after the device's last burst opened
  opens one, and by default (`settle_s` 0) its fix is computed at that first packet, as
  before.  The burst option (`min_interval_s` 0.3, `settle_s` 0.08)
  waits `settle_s` of event time for the burst's other packets and computes the fix at the
  first packet after that or by `settle(now)` (the pipeline's tick), dated at the burst's
  last packet: a fix per 0.455 s burst from that burst's links only; it is off because it
  raised the simulator's false enters (4.30 → 6.07 per device-hour, docs/accuracy.md).
  Mode B: `observe_scan` takes a phone's whole scan and returns one fix from all its
  beacons.  `locate(device, at)`
  computes a fix on demand from every fresh link (an evaluation at ground-truth instants).

Cost: every observation updates its link (no numpy, no allocation beyond the first sample of
a link), but a device's position is computed once per burst, at most once per
`min_interval_s`: `observe` returns None in between.  Range positions use plain floats: for
a handful of anchors numpy's per-call overhead costs more than the arithmetic (~10x,
measured); the grid is numpy.
"""

from __future__ import annotations

import math
from array import array
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from gateway.config.model import (
    PATH_LOSS_EXPONENTS,
    Anchor,
    FilterKind,
    LocateConfig,
    PositionMethod,
    Zone,
)
from gateway.events import Fix, Observation
from gateway.locate.grid import (
    MIN_ACCURACY_M,
    MIN_DISTANCE_M,
    GridSettings,
    PackedBelief,
    PositionGrid,
    Walls,
    anchor_bounds,
)
from gateway.locate.radiomap import RadioMap, zone_cells
from gateway.locate.rssifilter import FILTERS, LinkFilter

__all__ = [
    "Locator",
    "rssi_to_distance",
    "weighted_centroid",
    "weighted_multilateration",
]

MAX_DISTANCE_M = 60.0
SHIPPED = LocateConfig()  # the defaults of `locate:` (docs/config.md) are the Locator's
CENTROID_POWER = SHIPPED.centroid_power  # 1/d² is an option: it costs the simulator 6 points
MIN_INTERVAL_S = 0.5  # 0.3 with SETTLE_S 0.08 is the burst option
SETTLE_S = 0.0  # off: a fix at a burst's first packet; 0.08 adds simulator false enters
GATE_ANCHORS = 3  # a fix from fewer anchors is the nearest anchor's position, a guess
# AUTO's fix: the centroid of the strongest links drawn this share of the way to the grid's
# estimate (the best mean training zone accuracy of 0.1 … 1.0 that leaves the simulator no worse)
AUTO_GRID_WEIGHT = 0.4
AUTO_REFRESH_S = 3.0  # the grid's pull is recomputed at most this often per device (its cost),
# and when the device's loudest anchor changes
AUTO_WINDOW_M = 10.0  # the grid's estimate is taken over cells this near the centroid
# With a radio map (`locate.radio_map`): the belief's motion, σ = MAP_SPEED · dt (m/s), a
# MAP_JUMP share of it spread over every cell, each raw sample's log-likelihood × MAP_TEMPER
# (samples of one link are not independent); chosen on the data sets' training parts
# (docs/accuracy.md, "The radio map")
MAP_SPEED = 0.7
MAP_JUMP = 0.05
MAP_TEMPER = 0.5
MIN_ZONE_PROBABILITY = 0.005  # a zone with less of the belief is left out of a fix


def rssi_to_distance(rssi: float, rssi_at_1m: float, path_loss_exponent: float) -> float:
    """Distance in metres from the log-distance path-loss model, clamped to a sane range."""
    exponent = max(path_loss_exponent, PATH_LOSS_EXPONENTS[0])
    d = math.pow(10.0, (rssi_at_1m - rssi) / (10.0 * exponent))
    return min(max(d, MIN_DISTANCE_M), MAX_DISTANCE_M)


@dataclass(slots=True)
class _Link:
    anchor: Anchor
    at: float
    filter: LinkFilter
    tenfold_n: float  # 10 n, n the anchor's path-loss exponent (floored as rssi_to_distance)

    def __init__(
        self,
        anchor: Anchor,
        at: float,
        filter: LinkFilter,
        tenfold_n: float,
    ) -> None:
        # written out: mypyc compiles it, not the dataclass's (docs/performance.md)
        self.anchor = anchor
        self.at = at
        self.filter = filter
        self.tenfold_n = tenfold_n

    def distance(self) -> float:
        """`rssi_to_distance` of the filtered level, with the anchor's calibration."""
        d = 10.0 ** ((self.anchor.rssi_at_1m - self.filter.value) / self.tenfold_n)
        return MIN_DISTANCE_M if d < MIN_DISTANCE_M else MAX_DISTANCE_M if d > MAX_DISTANCE_M else d


@dataclass(slots=True)
class _Track:
    links: dict[str, _Link] = field(default_factory=dict)
    opened_at: float = -math.inf  # when the last burst opened (or a fix was asked for)
    open: bool = False  # a burst is open: its fix is due once `settle_s` has passed
    burst_last: float = -math.inf  # the latest packet of the open burst: its fix's time
    last: Fix | None = None
    ref: Fix | None = None  # the speed gate's reference: an earlier fix of ≥ 3 anchors
    posterior: np.ndarray | None = None  # PositionMethod.GRID: the belief over the cells
    posterior_at: float = -math.inf
    pull: tuple[float, float, float] | None = None  # AUTO: grid estimate − centroid, spread
    pull_at: float = -math.inf
    pull_anchor: str = ""
    pending: array[float] | None = None  # with a radio map: per anchor row, how many raw
    # samples since the belief's last update, then their sum (`sample_log_likelihood`'s input)
    belief: PackedBelief | None = None  # with a radio map: the belief, packed


class Locator:
    """Turns observations into position fixes, one filtered link per (device, anchor).

    `fresh_s`: a link counts only if heard that recently.  `min_interval_s`: a device's
    bursts open at most that often; `settle_s`: a burst's fix waits that long for its other
    packets (0: the fix is computed at the opening packet; `observe` returns None between).
    `max_speed`: the speed gate in m/s.  `max_anchors`: how many of the strongest fresh
    links a position uses; `method` how it combines them; `rssi_filter` a `FilterKind` or a
    factory of configured filters, one per link; `centroid_power` the k of the
    centroid's 1/d^k weights.  Unknown anchors are ignored.
    """

    def __init__(
        self,
        anchors: Sequence[Anchor],
        fresh_s: float = SHIPPED.fresh_s,
        min_interval_s: float = MIN_INTERVAL_S,
        max_speed: float = SHIPPED.max_speed,
        max_anchors: int = 4,
        method: PositionMethod = SHIPPED.method,
        rssi_filter: FilterKind | Callable[[], LinkFilter] = SHIPPED.filter,
        centroid_power: float = CENTROID_POWER,
        grid: GridSettings | None = None,
        settle_s: float = SETTLE_S,
        radio_map: RadioMap | None = None,
        zones: Sequence[Zone] = (),
        zone_floor: float = MIN_ZONE_PROBABILITY,
    ) -> None:
        self._centroid_power = centroid_power
        self._anchors = {a.id: a for a in anchors}
        self._new_filter = (
            FILTERS[rssi_filter] if isinstance(rssi_filter, FilterKind) else rssi_filter
        )
        self._fresh_s = fresh_s
        self._min_interval_s = min_interval_s
        self._settle_s = settle_s
        self._max_speed = max_speed
        self._max_anchors = max(3, max_anchors)
        self._method = method
        self._tracks: dict[str, _Track] = {}
        # open bursts in the order they opened, so in the order they are due: (opened, device)
        self._bursts: deque[tuple[float, str]] = deque()
        self.anchor_bounds = anchor_bounds(anchors, margin=3.0)
        uses_grid = method in (PositionMethod.GRID, PositionMethod.AUTO)
        # a radio map makes auto and grid keep a belief per device, updated on raw samples
        self._mapped = uses_grid and radio_map is not None
        mapped = radio_map if self._mapped else None
        self._grid = PositionGrid(anchors, grid or GridSettings(), mapped) if uses_grid else None
        self._map_ids = tuple(a.id for a in anchors)  # a radio map's rows: the anchors' order
        self._map_rows = {a: k for k, a in enumerate(self._map_ids)}
        self._map_anchors = len(self._map_ids)
        # a fix names the zones holding at least this much of the belief (the lowest exit
        # threshold: a zone under it is out whatever its exact share), so a broad belief over
        # many small zones stays a short tuple
        self._zone_floor = max(zone_floor, MIN_ZONE_PROBABILITY)
        self._zone_ids: tuple[str, ...] = ()
        self._zone_layers: list[tuple[np.ndarray, np.ndarray]] = []
        if self._mapped and zones and self._grid is not None:
            self._zone_ids = tuple(z.id for z in zones)
            self._zone_layers = _zone_layers(self._grid, zones)

    @classmethod
    def configured(
        cls,
        anchors: Sequence[Anchor],
        config: LocateConfig,
        walls: Walls = (),
        radio_map: RadioMap | None = None,
        zones: Sequence[Zone] = (),
    ) -> Locator:
        """The Locator of a store's `locate:` section (and `walls:`, for the grid's motion);
        with the `radio_map` it names, a belief per device whose probability of each of
        `zones` every fix carries."""
        return cls(
            anchors,
            fresh_s=config.fresh_s,
            max_speed=config.max_speed,
            method=config.method,
            rssi_filter=config.filter,
            centroid_power=config.centroid_power,
            grid=GridSettings(cell_m=config.cell_m, walls=walls),
            radio_map=radio_map,
            zones=zones,
            zone_floor=min(
                [config.exit_probability]
                + [z.exit_probability for z in zones if z.exit_probability is not None]
            ),
        )

    def observe(self, obs: Observation) -> Fix | None:
        """Update the link of `obs`; return a fix of the device if one became due."""
        return self.observe_link(obs.at, obs.device, obs.anchor, obs.rssi)

    def observe_link(self, at: float, device: str, anchor_id: str, rssi: float) -> Fix | None:
        """`observe` of the observation's fields, without building one (the per-advert path).

        Every advert updates its link.  A packet at least `min_interval_s` after the device's
        last burst opened opens a burst; the burst's fix is computed once it has settled
        (`settle_s` later in event time: the other scanners' reports of the same advert are
        in), at the first packet after that — which is not part of it — or by `settle`.
        With `settle_s` 0 the fix is computed at the opening packet itself."""
        anchor = self._anchors.get(anchor_id)
        if anchor is None or not (math.isfinite(rssi) and math.isfinite(at)):
            return None
        track = self._tracks.get(device)
        if track is None:
            track = self._tracks[device] = _Track()
            if self._mapped:
                track.pending = array("f", bytes(8 * self._map_anchors))
        fix = None
        if track.open and at - track.opened_at >= self._settle_s:
            track.open = False
            fix = self._fix(device, track, track.burst_last)
        pending = track.pending
        if pending is not None:
            row = self._map_rows[anchor_id]
            pending[row] += 1.0
            pending[self._map_anchors + row] += rssi
        link = track.links.get(anchor_id)  # `_update`, inline: the per-advert path
        if link is None:
            track.links[anchor_id] = self._new_link(anchor, rssi, at)
        elif at - link.at > self._fresh_s:
            link.filter.reset(rssi, at)  # stale: restart rather than blend with old data
            link.at = at
        else:
            link.filter.update(rssi, at)
            if at > link.at:
                link.at = at
        if track.open:
            if at > track.burst_last:
                track.burst_last = at
        elif at - track.opened_at >= self._min_interval_s:
            track.opened_at = track.burst_last = at
            if self._settle_s > 0.0:
                track.open = True
                self._bursts.append((at, device))
                if len(self._bursts) > 4 * len(self._tracks) + 64:  # `settle` is not called
                    self._drop_closed_bursts()
            else:
                fix = self._fix(device, track, at)
        return fix

    def observe_scan(
        self, at: float, device: str, links: Iterable[tuple[str, float]]
    ) -> Fix | None:
        """One scan of a phone (mode B): every (anchor id, RSSI) it heard at `at` updates its
        link, then one fix from all of them; None when no anchor of the scan is known."""
        known = [
            (anchor, rssi)
            for anchor_id, rssi in links
            if (anchor := self._anchors.get(anchor_id)) is not None and math.isfinite(rssi)
        ]
        if not known or not math.isfinite(at):
            return None
        track = self._tracks.get(device)
        if track is None:
            track = self._tracks[device] = _Track()
        for anchor, rssi in known:
            self._update(track, anchor, rssi, at)
        track.open, track.opened_at = False, at  # the scan's fix covers an open burst
        if self._mapped:  # one scan: what it heard, and what it did not
            pending = track.pending = array("f", bytes(8 * self._map_anchors))
            for anchor, rssi in known:
                row = self._map_rows[anchor.id]
                pending[row] += 1.0
                pending[self._map_anchors + row] += rssi
            track.last = fix = self._belief_fix(device, at, track, scan=True)
            return fix
        return self._fix(device, track, at)

    def settle(self, now: float) -> list[Fix]:
        """The fixes of the bursts settled by `now` whose device sent nothing since (the
        `tick` of a quiet moment), in the order they opened."""
        fixes: list[Fix] = []
        bursts = self._bursts
        while bursts and now - bursts[0][0] >= self._settle_s:
            opened, device = bursts.popleft()
            track = self._tracks.get(device)
            if track is not None and track.open and track.opened_at == opened:
                track.open = False
                fixes.append(self._fix(device, track, track.burst_last))
        return fixes

    def _drop_closed_bursts(self) -> None:
        """Keep only the open bursts (at most one per track), for callers that never
        `settle` (an evaluation asking `locate`): the queue stays bounded."""
        tracks = self._tracks
        self._bursts = deque(
            (opened, device)
            for opened, device in self._bursts
            if (t := tracks.get(device)) is not None and t.open and t.opened_at == opened
        )

    def locate(self, device: str, at: float) -> Fix | None:
        """The device's position at `at` from every link fresh then, or None without one.

        For callers that decide when to ask (an evaluation at ground-truth instants); an
        open burst is closed by it."""
        track = self._tracks.get(device)
        if track is None or not any(at - link.at <= self._fresh_s for link in track.links.values()):
            return None
        track.open, track.opened_at = False, at
        return self._fix(device, track, at)

    def __contains__(self, device: object) -> bool:
        """Whether `device` has link state."""
        return device in self._tracks

    def forget(self, device: str) -> None:
        """Drop everything known about `device`."""
        self._tracks.pop(device, None)

    def prune(self, now: float, idle_s: float = 60.0) -> int:
        """Forget devices with no link heard for `idle_s`; return how many were dropped."""
        idle = [
            d
            for d, t in self._tracks.items()
            if all(now - link.at > idle_s for link in t.links.values())
        ]
        for device in idle:
            del self._tracks[device]
        return len(idle)

    def devices(self) -> int:
        """How many devices have link state."""
        return len(self._tracks)

    def _update(self, track: _Track, anchor: Anchor, rssi: float, at: float) -> None:
        link = track.links.get(anchor.id)
        if link is None:
            track.links[anchor.id] = self._new_link(anchor, rssi, at)
        elif at - link.at > self._fresh_s:
            link.filter.reset(rssi, at)  # stale: restart rather than blend with old data
            link.at = at
        else:
            link.filter.update(rssi, at)
            if at > link.at:
                link.at = at

    def _fix(self, device: str, track: _Track, at: float) -> Fix:
        """The fix at `at`; the previous fix becomes the speed gate's reference if it is of
        an earlier instant and a measurement (≥ `GATE_ANCHORS` anchors), not a guess."""
        last = track.last
        if last is not None and last.at < at and len(last.anchors) >= GATE_ANCHORS:
            track.ref = last  # else a refinement of the same instant, or a guess: keep it
        track.last = fix = self._position(device, at, track)
        return fix

    def _new_link(self, anchor: Anchor, rssi: float, at: float) -> _Link:
        tenfold_n = 10.0 * max(anchor.path_loss_exponent, PATH_LOSS_EXPONENTS[0])
        link = _Link(anchor, at, self._new_filter(), tenfold_n)
        link.filter.reset(rssi, at)
        return link

    def _position(self, device: str, at: float, track: _Track) -> Fix:
        since = at - self._fresh_s
        fresh = [link for link in track.links.values() if link.at >= since]
        fresh.sort(key=_level, reverse=True)
        method = self._method
        if self._mapped:
            return self._belief_fix(device, at, track, scan=False)
        if method is PositionMethod.GRID:
            return self._grid_fix(device, at, track, fresh)
        if method is PositionMethod.AUTO and len(fresh) >= GATE_ANCHORS:
            x, y, acc = self._auto(track, at, fresh)  # not gated: the grid weighs every link heard
            return Fix(at, device, x, y, acc, tuple([link.anchor.id for link in fresh]))
        if method is not PositionMethod.STRONGEST and (
            # auto places a device heard by two anchors between them (the centroid's weights)
            len(fresh) >= GATE_ANCHORS or (len(fresh) == 2 and method is PositionMethod.AUTO)
        ):
            strongest = fresh[: self._max_anchors]
            x, y, acc = self._multilaterate(strongest)
            used = tuple([link.anchor.id for link in strongest])
        else:
            best = fresh[0].anchor
            x, y = best.x, best.y
            acc = max(fresh[0].distance(), 1.0)
            used = (best.id,)
        x, y, acc = self._speed_gate(track.ref, at, x, y, acc)
        return Fix(at=at, device=device, x=x, y=y, accuracy_m=acc, anchors=used)

    def _grid_fix(self, device: str, at: float, track: _Track, heard: Sequence[_Link]) -> Fix:
        """Bayes update of the device's grid belief; no speed gate: the blur is the motion."""
        assert self._grid is not None
        levels = [(link.anchor.id, link.filter.value) for link in heard]
        post = self._grid.update(track.posterior, at - track.posterior_at, self._max_speed, levels)
        if at >= track.posterior_at:
            track.posterior, track.posterior_at = post, at
        x, y, acc = self._grid.estimate(post)
        used = tuple(link.anchor.id for link in heard)
        return Fix(at=at, device=device, x=x, y=y, accuracy_m=acc, anchors=used)

    def _belief_fix(self, device: str, at: float, track: _Track, scan: bool) -> Fix:
        """With a radio map: the belief moved at walking speed since its last update, times
        the likelihood of the raw samples heard since (a phone's scan: also of the beacons it
        did not hear); the fix is the posterior mean, its spread, and the posterior's
        probability of each zone."""
        grid = self._grid
        assert grid is not None
        pending = track.pending
        sums = np.frombuffer(pending, dtype=np.float32).astype(np.float64) if pending else None
        if pending is not None:
            pending[:] = array("f", bytes(8 * self._map_anchors))
        heard = (
            np.zeros(0, dtype=np.int64) if sums is None else np.flatnonzero(sums[: len(sums) // 2])
        )
        used = tuple(self._map_ids[k] for k in heard.tolist())
        prior = grid.unpack(track.belief) if track.belief is not None else None
        if sums is not None and len(heard):
            loglik = grid.sample_log_likelihood(sums, scan=scan)
            loglik *= MAP_TEMPER
            dt = at - track.posterior_at if prior is not None else 0.0
            post = grid.update_likelihood(prior, dt, MAP_SPEED, loglik, MAP_JUMP)
            if at >= track.posterior_at or prior is None:
                track.belief, track.posterior_at = grid.pack(post), at
        elif prior is None:  # nothing heard yet: anywhere over the anchors
            lo_x, lo_y, hi_x, hi_y = self.anchor_bounds
            half = 0.5 * math.hypot(hi_x - lo_x, hi_y - lo_y)
            return Fix(at, device, (lo_x + hi_x) / 2, (lo_y + hi_y) / 2, half, ())
        else:
            post = prior
        x, y, acc = grid.estimate(post)
        return Fix(at, device, x, y, acc, used, self._zone_probability(post))

    def _zone_probability(self, post: np.ndarray) -> tuple[tuple[str, float], ...] | None:
        if not self._zone_layers:
            return None
        flat = post.ravel()
        p = np.zeros(len(self._zone_ids))
        for labels, members in self._zone_layers:
            p[members] = np.bincount(labels, flat, len(members) + 1)[1:]
        order = np.argsort(-p)
        return tuple(
            (self._zone_ids[k], round(float(p[k]), 4)) for k in order if p[k] >= self._zone_floor
        )

    def _auto(self, track: _Track, at: float, fresh: Sequence[_Link]) -> tuple[float, float, float]:
        """AUTO with ≥ 3 links: the centroid of the strongest, drawn `AUTO_GRID_WEIGHT` of the
        way to the grid's estimate from the fresh links alone (no belief kept: no memory per
        device).  The pull (grid estimate − centroid: the centroid's bias where the device
        is) is recomputed when the loudest anchor changes, else at most every
        `AUTO_REFRESH_S`; its accuracy is the larger of the grid's spread and the
        centroid's range residual."""
        assert self._grid is not None
        cx, cy, rms = self._multilaterate(fresh[: self._max_anchors])
        pull = track.pull
        loudest = fresh[0].anchor.id
        if (
            pull is None
            or loudest != track.pull_anchor
            or not 0.0 <= at - track.pull_at < AUTO_REFRESH_S
        ):
            track.pull_anchor = loudest
            levels = [(link.anchor.id, link.filter.value) for link in fresh]
            gx, gy, spread = self._grid.locate(levels, (cx, cy), AUTO_WINDOW_M)
            track.pull = pull = (gx - cx, gy - cy, spread)
            track.pull_at = at
        dx, dy, spread = pull
        return cx + AUTO_GRID_WEIGHT * dx, cy + AUTO_GRID_WEIGHT * dy, max(spread, rms)

    def _multilaterate(self, links: Sequence[_Link]) -> tuple[float, float, float]:
        if self._method is PositionMethod.MULTILATERATION:
            pts = [(link.anchor.x, link.anchor.y) for link in links]
            x, y, rms = weighted_multilateration(pts, [link.distance() for link in links])
        else:
            x, y, rms = _centroid_fit(links, self._centroid_power)
        lo_x, lo_y, hi_x, hi_y = self.anchor_bounds
        x, y = min(max(x, lo_x), hi_x), min(max(y, lo_y), hi_y)
        return x, y, max(rms, MIN_ACCURACY_M)

    def _speed_gate(
        self, last: Fix | None, at: float, x: float, y: float, acc: float
    ) -> tuple[float, float, float]:
        if last is None:
            return x, y, acc
        dx, dy = x - last.x, y - last.y
        jump = math.hypot(dx, dy)
        allowed = self._max_speed * max(at - last.at, 0.0)
        if jump <= allowed:
            return x, y, acc
        k = allowed / jump
        # The clamped point is short of the estimate by (jump - allowed): that much less sure.
        return last.x + dx * k, last.y + dy * k, max(acc, jump - allowed)


def weighted_centroid(
    points: Sequence[tuple[float, float]], distances: Sequence[float], power: float = CENTROID_POWER
) -> tuple[float, float]:
    """Centroid of `points` weighted by 1/d**power (nearer anchors pull harder)."""
    w = [1.0 / max(d, MIN_DISTANCE_M) ** power for d in distances]
    total = sum(w, 0.0)
    x = sum((wi * p[0] for wi, p in zip(w, points, strict=True)), 0.0) / total
    y = sum((wi * p[1] for wi, p in zip(w, points, strict=True)), 0.0) / total
    return x, y


def weighted_multilateration(
    points: Sequence[tuple[float, float]], distances: Sequence[float], iterations: int = 8
) -> tuple[float, float, float]:
    """Point minimising Σ w (|p - a_i| - d_i)² with w = 1/d²; also the weighted RMS residual.

    n ≥ 3 points.  Damped Gauss–Newton from the weighted centroid (so collinear anchors give
    a finite, if uncertain, answer), in plain floats: for n ≤ ~8, numpy's per-call overhead
    costs more than the arithmetic (measured: ~10x slower per fix).
    """
    w = [1.0 / max(d, MIN_DISTANCE_M) ** 2 for d in distances]
    total = sum(w, 0.0)
    w = [wi / total for wi in w]
    x = sum((wi * p[0] for wi, p in zip(w, points, strict=True)), 0.0)
    y = sum((wi * p[1] for wi, p in zip(w, points, strict=True)), 0.0)
    for _ in range(iterations):
        dx, dy = _gauss_newton_step(x, y, points, distances, w)
        x, y = x - dx, y - dy
        if dx * dx + dy * dy < 1e-6:
            break
    return x, y, _range_rms(x, y, points, distances)


def _range_rms(
    x: float, y: float, points: Sequence[tuple[float, float]], distances: Sequence[float]
) -> float:
    """RMS of |p - a_i| - d_i weighted by 1/d²: how well the ranges agree with (x, y)."""
    w = [1.0 / max(d, MIN_DISTANCE_M) ** 2 for d in distances]
    sq = sum(
        (
            wi * (math.hypot(x - p[0], y - p[1]) - d) ** 2
            for wi, p, d in zip(w, points, distances, strict=True)
        ),
        0.0,
    )
    return math.sqrt(sq / sum(w, 0.0))


def _gauss_newton_step(
    x: float, y: float, points: Sequence[tuple[float, float]], dist: Sequence[float], w: list[float]
) -> tuple[float, float]:
    """Solve (JᵀWJ + λI) step = JᵀW r for the range residuals r at (x, y)."""
    a = b = c = gx = gy = 0.0
    for (px, py), d, wi in zip(points, dist, w, strict=True):
        ux, uy = x - px, y - py
        r = max(math.hypot(ux, uy), 1e-6)
        ux, uy = ux / r, uy / r
        res = wi * (r - d)
        a, b, c = a + wi * ux * ux, b + wi * ux * uy, c + wi * uy * uy
        gx, gy = gx + res * ux, gy + res * uy
    a, c = a + 1e-3, c + 1e-3
    det = a * c - b * b
    return (c * gx - b * gy) / det, (a * gy - b * gx) / det


def _zone_layers(grid: PositionGrid, zones: Sequence[Zone]) -> list[tuple[np.ndarray, np.ndarray]]:
    """The zones as layers of cell labels, for the belief's probability of every zone in one
    `np.bincount` a layer: each layer holds zones that share no cell (aisles side by side;
    the store's outline, which holds them, goes to a layer of its own), `labels[cell]` is
    1 + the zone's place in the layer's `members` (0: none of them).  A zone's cells are
    `radiomap.zone_cells`'.  A byte or two a cell and layer, where a (zones × cells) matrix
    of a 200-zone store took 3 MB."""
    layers: list[tuple[np.ndarray, list[int]]] = []
    for k, cells in enumerate(zone_cells(zones, grid.geometry)):
        free = next((layer for layer in layers if not layer[0][cells].any()), None)
        if free is None:
            free = (np.zeros(len(grid.xs) * len(grid.ys), dtype=np.int32), [])
            layers.append(free)
        labels, members = free
        members.append(k)
        labels[cells] = len(members)
    return [(labels, np.array(members, dtype=np.int64)) for labels, members in layers]


def _level(link: _Link) -> float:
    return link.filter.value


def _centroid_fit(links: Sequence[_Link], power: float) -> tuple[float, float, float]:
    """`weighted_centroid` of the links' anchors and ranges, and `_range_rms` there, in one
    pass over the few links of a fix (the per-fix path; same arithmetic as those two)."""
    sw = sx = sy = sw2 = 0.0
    found = []
    for link in links:
        a, d = link.anchor, link.distance()
        w, w2 = 1.0 / d**power, 1.0 / d**2  # d ≥ MIN_DISTANCE_M already
        sw, sx, sy, sw2 = sw + w, sx + w * a.x, sy + w * a.y, sw2 + w2
        found.append((a.x, a.y, d, w2))
    x, y = sx / sw, sy / sw
    sq = 0.0
    for ax, ay, d, w2 in found:
        sq += w2 * (math.hypot(x - ax, y - ay) - d) ** 2
    return x, y, math.sqrt(sq / sw2)
