"""`rayon calibrate WALK --truth TRUTH --map-out FILE`: the radio map learned from a walk, how
good it is on the walk's held-back segments, and where the walk was too thin.

A walk that never enters some zone is refused (`missing_zones`, naming them): the map would
only guess there.
A zone is entered when a position line of the truth is inside it, or a zone line names it or a
zone inside it.  The map written is fitted on the whole walk; the accuracy printed is that of
a second map fitted without the held-back segments (`gateway.offline.survey`).

`evaluate` runs the store's Locator (its `locate:` settings, with and without the map) over the
samples and scans of the held-back segments only, in time order, and every `TICK_S` where
the truth knows the device asks it where the device is (`Locator.locate`).  The zone is right
when the most specific zone (the smallest) holding the fix is the truth's: the most specific
zone holding the true position, or the zone a zone line names.  An instant without a fix
counts as wrong.
"""

from __future__ import annotations

import heapq
import math
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

import numpy as np

from gateway.config.model import Config, Zone
from gateway.locate.locator import Locator
from gateway.locate.radiomap import RadioMap
from gateway.offline.calibrate import Criteria, Samples
from gateway.offline.survey import (
    HOLD_EVERY,
    SEGMENT_S,
    Walk,
    covered_zones,
    distances,
    fit_map,
    held_back,
    zone_counts,
)
from gateway.offline.truth import NO_ZONE, Truth
from gateway.zones.index import ZoneIndex

TICK_S = 1.0


@dataclass(frozen=True, slots=True)
class MapOptions:
    """`--map-out`: where the map goes, and how much of the walk a zone needs not to be
    named as thin (fewer samples than `min_zone_samples` and fewer scans than
    `min_zone_scans`)."""

    out: Path
    min_zone_samples: int = 60
    min_zone_scans: int = 15


def missing_zones(zones: Sequence[Zone], truth: Truth) -> list[str]:
    """The ids of the zones the walk never enters (`covered_zones`)."""
    covered = covered_zones(zones, truth)
    return [z.id for k, z in enumerate(zones) if k not in covered]


def learn_map(
    config: Config,
    walk: Walk,
    truth: Truth,
    criteria: Criteria,
    options: MapOptions,
    source: str,
    err: TextIO | None = None,
) -> Samples:
    """Fit, score and write the map (of a walk that enters every zone); say which zones are
    thin.  Returns the whole walk's distance samples (for the anchors' YAML)."""
    every = (np.ones(len(walk.at), dtype=bool), np.ones(len(walk.scan_at), dtype=bool))
    held = held_back(walk, truth)
    trained = fit_map(config, walk, truth, criteria, (~held[0], ~held[1]))
    scores = (
        evaluate(config, walk, truth, held, trained),
        evaluate(config, walk, truth, held, None),
    )
    _, end = truth.span()
    made_at = datetime.fromtimestamp(end, UTC).isoformat(timespec="seconds")
    radio_map = fit_map(config, walk, truth, criteria, every, made_at=made_at, source=source)
    radio_map.save(options.out)
    _report(config, walk, radio_map, scores, options, err or sys.stderr)
    return distances(walk, config.anchors, every[0], criteria.height_m)


def _report(
    config: Config,
    walk: Walk,
    radio_map: RadioMap,
    scores: tuple[Score, Score],
    options: MapOptions,
    err: TextIO,
) -> None:
    known, scans = int(walk.known().sum()), int(walk.scan_known().sum())
    g = radio_map.geometry
    print(
        f"rayon: wrote the radio map {options.out}: {len(radio_map.anchors)} anchors over "
        f"{g.nx} × {g.ny} cells of {g.cell:g} m, from {known} sample(s) and {scans} scan(s)",
        file=err,
    )
    print(f"rayon: {accuracy_line(*scores)}", file=err)
    counts = zone_counts(config.zones, walk)
    thin = thin_zones(config.zones, counts, options.min_zone_samples, options.min_zone_scans)
    if thin:
        print(
            f"rayon: thin zones (fewer than {options.min_zone_samples} samples and "
            f"{options.min_zone_scans} scans; walk there longer): {'; '.join(thin)}",
            file=err,
        )


def accuracy_line(with_map: Score, without: Score) -> str:
    """The held-back figures, with the map and without it."""
    if not with_map.instants:
        return (
            f"held back: no segment to score (the walk is shorter than {HOLD_EVERY} segments "
            f"of {SEGMENT_S:g} s, or the truth does not cover them)"
        )
    line = (
        f"held back 1 segment of {SEGMENT_S:g} s in {HOLD_EVERY} ({with_map.instants} "
        f"instants): zone right {100 * with_map.share():.1f} % with the map, "
        f"{100 * without.share():.1f} % without"
    )
    if with_map.mean_error_m is not None and without.mean_error_m is not None:
        line += (
            f"; mean error {with_map.mean_error_m:.2f} m with the map, "
            f"{without.mean_error_m:.2f} m without"
        )
    if with_map.unfixed:
        line += f"; {with_map.unfixed} instant(s) without a fix"
    return line


@dataclass(frozen=True, slots=True)
class Score:
    """Held-back instants: how many, how many had the right zone, how many had no fix; the
    mean distance to the true position over those that have one (None without any)."""

    instants: int
    right: int
    unfixed: int
    mean_error_m: float | None

    def share(self) -> float:
        return self.right / self.instants if self.instants else 0.0


def evaluate(
    config: Config, walk: Walk, truth: Truth, held: tuple[np.ndarray, np.ndarray],
    radio_map: RadioMap | None,
) -> Score:  # fmt: skip
    """The Locator (with `radio_map`, or without one) over the held-back samples and scans
    (`held`: their masks), scored every `TICK_S` in the held-back segments."""
    locator = Locator.configured(
        config.anchors, config.locate, config.walls, radio_map=radio_map, zones=config.zones
    )
    zones = _Specific(config.zones)
    right = unfixed = 0
    errors: list[float] = []
    ticks = _ticks(walk, truth, held, zones)
    for at, d, x, y, zone in _merged(walk, held, ticks):
        if zone is None:  # a sample or a scan: x is its row
            _feed(locator, walk, d, int(x))
            continue
        fix = locator.locate(walk.devices[d], at)
        if fix is None:
            unfixed += 1
            continue
        right += zones.of(fix.x, fix.y) == zone
        if math.isfinite(x):
            errors.append(math.hypot(fix.x - x, fix.y - y))
    n = len(ticks)
    return Score(n, right, unfixed, float(np.mean(errors)) if errors else None)


Tick = tuple[float, int, float, float, int]  # at, device, true x, y (NaN: by zone), zone


def _ticks(
    walk: Walk, truth: Truth, held: tuple[np.ndarray, np.ndarray], zones: _Specific
) -> list[Tick]:
    """Every `TICK_S` within each held-back segment where the truth knows the device."""
    at_held = np.concatenate([walk.at[held[0]], walk.scan_at[held[1]]])
    dev_held = np.concatenate([walk.device[held[0]], walk.scan_device[held[1]]])
    start, _ = truth.span()
    out: list[Tick] = []
    for d, name in enumerate(walk.devices):
        mine = at_held[dev_held == d]
        segments = np.unique(np.floor((mine - start) / SEGMENT_S))
        for s in segments.tolist():
            t = start + s * SEGMENT_S + np.arange(0.0, SEGMENT_S, TICK_S)
            px, py, known = truth.positions(name, t)
            named = truth.zone_at(name, t)
            for k in np.flatnonzero(known | (named >= 0)).tolist():
                if known[k]:
                    out.append((float(t[k]), d, float(px[k]), float(py[k]), zones.of(px[k], py[k])))
                else:
                    out.append((float(t[k]), d, math.nan, math.nan, int(named[k])))
    out.sort()
    return out


def _merged(
    walk: Walk, held: tuple[np.ndarray, np.ndarray], ticks: list[Tick]
) -> Iterator[tuple[float, int, float, float, int | None]]:
    """The held-back samples (adverts), scans and ticks in time order; a tick after the
    samples of its instant.  A sample or scan comes as (at, device, row, NaN, None)."""
    adverts = np.flatnonzero(held[0] & (walk.scan < 0))
    scans = np.flatnonzero(held[1])
    radio: Iterator[tuple[float, int, float, float, int | None]] = heapq.merge(
        ((float(walk.at[i]), int(walk.device[i]), float(i), math.nan, None) for i in adverts),
        ((float(walk.scan_at[j]), int(walk.scan_device[j]), float(-1 - j), math.nan, None)
         for j in scans),
        key=lambda r: r[0],
    )  # fmt: skip
    return heapq.merge(radio, iter(ticks), key=lambda r: (r[0], r[4] is not None))


def _feed(locator: Locator, walk: Walk, d: int, row: int) -> None:
    device = walk.devices[d]
    if row >= 0:
        locator.observe_link(
            float(walk.at[row]), device, walk.anchors[walk.anchor[row]], float(walk.rssi[row])
        )
        return
    j = -1 - row
    mine = np.flatnonzero(walk.scan == j)
    links = [(walk.anchors[walk.anchor[i]], float(walk.rssi[i])) for i in mine]
    locator.observe_scan(float(walk.scan_at[j]), device, links)


class _Specific:
    """The most specific zone (the smallest) holding a point, `NO_ZONE` outside them all."""

    def __init__(self, zones: Sequence[Zone]) -> None:
        self._index = ZoneIndex(zones)
        self._by_area = sorted(range(len(zones)), key=lambda k: self._index.areas[k])

    def of(self, x: float, y: float) -> int:
        hits = self._index.hits(x, y)
        inside = {k for k, (within, _) in hits.items() if within}
        return next((k for k in self._by_area if k in inside), NO_ZONE)


# -- thin zones ---------------------------------------------------------------------------------


def thin_zones(
    zones: Sequence[Zone], counts: tuple[np.ndarray, np.ndarray], min_samples: int, min_scans: int
) -> list[str]:
    """'zone: N samples, M scans' of each zone with fewer than `min_samples` samples and
    fewer than `min_scans` scans (the walk should linger there longer)."""
    samples, scans = counts
    return [
        f"{z.id}: {int(samples[k])} sample(s), {int(scans[k])} scan(s)"
        for k, z in enumerate(zones)
        if samples[k] < min_samples and scans[k] < min_scans
    ]
