"""What stores use today, computed on the same streams: strongest anchor, weighted centroid,
and a kNN fingerprint match.

All look only at the raw samples of the evaluation instant (`Dataset.window_s`: one scan,
one row, or the last second of packets), averaged per anchor — no filtering over time, as a
"nearest scanner" or a plain centroid does.  The centroid weighs every anchor heard by
1/d^k, d from the fitted path-loss model, k chosen on training data.  The kNN match compares
the instant's vector of per-anchor means (`FLOOR_DBM` where an anchor is not heard) with the
same vectors of a calibration part, one per calibration instant, by Euclidean distance in
dBm over all anchors, and places the device at the mean position of the k nearest.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from gateway.config.model import Anchor
from gateway.locate.locator import rssi_to_distance, weighted_centroid
from rayon_tooling.accuracy.datasets import Part, Stream

Point = tuple[float, float]
KNN_K = 5
FLOOR_DBM = -100.0  # a silent anchor in a fingerprint: below what the sets' receivers report


def window_means(stream: Stream, window_s: float) -> list[dict[str, float]]:
    """Per truth instant t: the mean raw RSSI per anchor over samples in (t - window_s, t]
    (exactly t when `window_s` is 0)."""
    obs = stream.observations
    out: list[dict[str, float]] = []
    lo = hi = 0
    for truth in stream.truth:
        t = truth.at
        while hi < len(obs) and obs[hi].at <= t:
            hi += 1
        while lo < hi and (obs[lo].at <= t - window_s if window_s > 0 else obs[lo].at < t):
            lo += 1
        sums: dict[str, list[float]] = defaultdict(list)
        for o in obs[lo:hi]:
            sums[o.anchor].append(o.rssi)
        out.append({a: sum(v) / len(v) for a, v in sums.items()})
    return out


def strongest_anchor(
    means: Sequence[dict[str, float]], anchors: dict[str, Anchor], start: Point
) -> list[Point]:
    """The position of the loudest anchor of each instant (the last one when none is heard)."""
    out: list[Point] = []
    last = start
    for m in means:
        heard = [(v, a) for a, v in m.items() if a in anchors]
        if heard:
            best = anchors[max(heard)[1]]
            last = (best.x, best.y)
        out.append(last)
    return out


def centroid(
    means: Sequence[dict[str, float]], anchors: dict[str, Anchor], start: Point, power: float
) -> list[Point]:
    """The 1/d^power weighted centroid of the anchors heard at each instant."""
    out: list[Point] = []
    last = start
    for m in means:
        heard = [anchors[a] for a in m if a in anchors]
        if heard:
            dist = [rssi_to_distance(m[a.id], a.rssi_at_1m, a.path_loss_exponent) for a in heard]
            last = weighted_centroid([(a.x, a.y) for a in heard], dist, power=power)
        out.append(last)
    return out


@dataclass(frozen=True, slots=True)
class Fingerprints:
    """Reference vectors: one row per calibration instant, one column per anchor (dBm,
    `FLOOR_DBM` where not heard), and where each was taken."""

    anchors: tuple[str, ...]
    vectors: np.ndarray
    x: np.ndarray
    y: np.ndarray


def fingerprints(part: Part, anchors: Sequence[str], window_s: float) -> Fingerprints:
    """One reference per truth instant of `part` that hears at least one of `anchors`: the
    per-anchor means of `window_means` and the true position."""
    rows: list[np.ndarray] = []
    xs: list[float] = []
    ys: list[float] = []
    column = {a: i for i, a in enumerate(anchors)}
    for stream in part.streams:
        for truth, means in zip(stream.truth, window_means(stream, window_s), strict=True):
            vector = _vector(means, column)
            if vector is not None:
                rows.append(vector)
                xs.append(truth.x)
                ys.append(truth.y)
    vectors = np.array(rows) if rows else np.zeros((0, len(anchors)))
    return Fingerprints(tuple(anchors), vectors, np.array(xs), np.array(ys))


def knn(
    means: Sequence[dict[str, float]], refs: Fingerprints, start: Point, k: int = KNN_K
) -> list[Point]:
    """The mean position of the k references nearest each instant's vector (Euclidean, dBm);
    an instant that hears no known anchor keeps the previous estimate."""
    column = {a: i for i, a in enumerate(refs.anchors)}
    known = [(i, v) for i, v in enumerate(_vector(m, column) for m in means) if v is not None]
    out: list[Point] = []
    if known and len(refs.vectors):
        queries = np.array([v for _, v in known])
        squared = (
            np.sum(queries**2, axis=1)[:, None]
            + np.sum(refs.vectors**2, axis=1)[None, :]
            - 2.0 * queries @ refs.vectors.T
        )
        nearest = np.argsort(squared, axis=1, kind="stable")[:, :k]
        placed = {
            i: (float(np.mean(refs.x[n])), float(np.mean(refs.y[n])))
            for (i, _), n in zip(known, nearest, strict=True)
        }
    else:
        placed = {}
    last = start
    for i in range(len(means)):
        last = placed.get(i, last)
        out.append(last)
    return out


def _vector(means: dict[str, float], column: dict[str, int]) -> np.ndarray | None:
    """The means as a row over `column`'s anchors, `FLOOR_DBM` where silent; None when
    none of them is heard."""
    vector = np.full(len(column), FLOOR_DBM)
    heard = False
    for anchor_id, rssi in means.items():
        if anchor_id in column:
            vector[column[anchor_id]] = rssi
            heard = True
    return vector if heard else None
