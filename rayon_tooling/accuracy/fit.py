"""Per-anchor path-loss calibration fitted on a training part (least squares).

`rssi = rssi_at_1m - 10 n log10(d)` is linear in (rssi_at_1m, n), so each anchor gets an
ordinary least-squares fit of its training samples against the true distance.  An anchor
with too few samples, or too narrow a range of distances to pin the slope, gets the pooled
fit of all anchors instead; the exponent is kept within `N_RANGE` (outside it the fit is
chasing multipath, not distance).
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Sequence

import numpy as np

from gateway.config.model import Anchor
from rayon_tooling.accuracy.datasets import Part, Stream

MIN_SAMPLES = 30
MIN_LOG_SPREAD = 0.15  # std of log10(d): below it the slope is noise
MIN_FIT_DISTANCE_M = 0.5
N_RANGE = (1.0, 6.0)
DEFAULT_SIGMA_DB = 6.0


def fit_path_loss(anchors: Sequence[Anchor], train: Part) -> tuple[Anchor, ...]:
    """`anchors` with `rssi_at_1m` and `path_loss_exponent` fitted on `train`."""
    samples = _samples(anchors, train)
    pooled_x = np.concatenate([x for x, _ in samples.values()]) if samples else np.zeros(0)
    pooled_y = np.concatenate([y for _, y in samples.values()]) if samples else np.zeros(0)
    pooled = _fit(pooled_x, pooled_y) or (-59.0, 2.0)
    fitted = []
    for a in anchors:
        x, y = samples.get(a.id, (np.zeros(0), np.zeros(0)))
        a1m, n = _fit(x, y) or pooled
        fitted.append(dataclasses.replace(a, rssi_at_1m=a1m, path_loss_exponent=n))
    return tuple(fitted)


def _fit(logd: np.ndarray, rssi: np.ndarray) -> tuple[float, float] | None:
    """(rssi_at_1m, n) by least squares, or None when the samples cannot pin them."""
    if len(logd) < MIN_SAMPLES or float(np.std(logd)) < MIN_LOG_SPREAD:
        return None
    design = np.column_stack([np.ones_like(logd), -10.0 * logd])
    (a1m, n), *_ = np.linalg.lstsq(design, rssi, rcond=None)
    n_clamped = min(max(float(n), N_RANGE[0]), N_RANGE[1])
    if n_clamped != n:  # refit the intercept with the slope held at its bound
        a1m = float(np.mean(rssi + 10.0 * n_clamped * logd))
    return float(a1m), n_clamped


def _samples(anchors: Sequence[Anchor], train: Part) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per anchor: log10 of the true distance and the RSSI of each training observation."""
    where = {a.id: (a.x, a.y) for a in anchors}
    logd: dict[str, list[float]] = defaultdict(list)
    rssi: dict[str, list[float]] = defaultdict(list)
    for stream in train.streams:
        xs, ys = true_positions(stream)
        for obs, x, y in zip(stream.observations, xs, ys, strict=True):
            if obs.anchor in where:
                ax, ay = where[obs.anchor]
                d = max(float(np.hypot(x - ax, y - ay)), MIN_FIT_DISTANCE_M)
                logd[obs.anchor].append(float(np.log10(d)))
                rssi[obs.anchor].append(obs.rssi)
    return {k: (np.array(logd[k]), np.array(rssi[k])) for k in logd}


def true_positions(stream: Stream) -> tuple[np.ndarray, np.ndarray]:
    """Where the device was at each observation of `stream`, interpolated from its truth."""
    at = np.array([o.at for o in stream.observations])
    t = np.array([g.at for g in stream.truth])
    x = np.interp(at, t, np.array([g.x for g in stream.truth]))
    y = np.interp(at, t, np.array([g.y for g in stream.truth]))
    return x, y


def fit_sigma(anchors: Sequence[Anchor], train: Part) -> float:
    """The RSSI spread (dB) around each anchor's fitted model on `train`: the log-normal σ
    of `GridSettings`."""
    samples = _samples(anchors, train)
    residuals = [
        samples[a.id][1] - (a.rssi_at_1m - 10.0 * a.path_loss_exponent * samples[a.id][0])
        for a in anchors
        if a.id in samples
    ]
    return float(np.std(np.concatenate(residuals))) if residuals else DEFAULT_SIGMA_DB
