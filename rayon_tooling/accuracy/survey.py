"""A calibration part as plain arrays, for learning a radio map from it.

Every observation with the anchor heard, its RSSI and where the device truly was then
(interpolated from the stream's truth, as `fit.true_positions` does).  For scan sets (mode B:
one scan is one truth instant, its observations at that instant) also every scan: when,
where, and which anchors it heard, so that a detection rate per anchor and place can be
learned alongside the RSSI.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from rayon_tooling.accuracy.datasets import Part
from rayon_tooling.accuracy.fit import true_positions


@dataclass(frozen=True, slots=True)
class Scans:
    """One row per scan: its stream (index into the part's streams), time, true position,
    and `heard[scan, anchor]`, True when that anchor is in the scan."""

    stream: np.ndarray
    at: np.ndarray
    x: np.ndarray
    y: np.ndarray
    heard: np.ndarray


@dataclass(frozen=True, slots=True)
class Survey:
    """One row per observation: `anchor` indexes `anchors`; `stream` indexes the part's
    streams (times restart with each stream).  `scans` only for a scan set."""

    anchors: tuple[str, ...]
    stream: np.ndarray
    at: np.ndarray
    anchor: np.ndarray
    rssi: np.ndarray
    x: np.ndarray
    y: np.ndarray
    scans: Scans | None


def survey(part: Part, anchors: Sequence[str] = (), scans: bool = False) -> Survey:
    """`part` as arrays.  `anchors`: the anchor ids in index order (default: those heard in
    `part`, sorted); observations of other anchors are left out.  `scans`: also list the
    scans, for a scan set (`Dataset.mode == "B"`)."""
    ids = tuple(anchors) or tuple(sorted({o.anchor for s in part.streams for o in s.observations}))
    column = {a: i for i, a in enumerate(ids)}
    stream_ix, at, anchor, rssi, xs, ys = [], [], [], [], [], []
    for k, stream in enumerate(part.streams):
        if not stream.observations:
            continue
        x, y = true_positions(stream)
        for obs, ox, oy in zip(stream.observations, x, y, strict=True):
            if obs.anchor in column:
                stream_ix.append(k)
                at.append(obs.at)
                anchor.append(column[obs.anchor])
                rssi.append(obs.rssi)
                xs.append(float(ox))
                ys.append(float(oy))
    return Survey(
        anchors=ids,
        stream=np.array(stream_ix, dtype=np.int64),
        at=np.array(at, dtype=float),
        anchor=np.array(anchor, dtype=np.int64),
        rssi=np.array(rssi, dtype=float),
        x=np.array(xs, dtype=float),
        y=np.array(ys, dtype=float),
        scans=_scans(part, column) if scans else None,
    )


def _scans(part: Part, column: dict[str, int]) -> Scans:
    """One scan per truth instant: the anchors observed at exactly that instant."""
    stream_ix, at, xs, ys, rows = [], [], [], [], []
    for k, stream in enumerate(part.streams):
        by_time: dict[float, set[int]] = {}
        for obs in stream.observations:
            if obs.anchor in column:
                by_time.setdefault(obs.at, set()).add(column[obs.anchor])
        for truth in stream.truth:
            row = np.zeros(len(column), dtype=bool)
            row[sorted(by_time.get(truth.at, ()))] = True
            stream_ix.append(k)
            at.append(truth.at)
            xs.append(truth.x)
            ys.append(truth.y)
            rows.append(row)
    return Scans(
        stream=np.array(stream_ix, dtype=np.int64),
        at=np.array(at, dtype=float),
        x=np.array(xs, dtype=float),
        y=np.array(ys, dtype=float),
        heard=np.array(rows, dtype=bool).reshape(len(rows), len(column)),
    )
