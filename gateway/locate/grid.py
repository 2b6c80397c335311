"""The probabilistic grid of `PositionMethod.GRID` (see gateway/locate/locator.py): per device, a
belief over cells covering the anchors, updated by a recursive Bayes filter."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from gateway.config.model import Anchor


@dataclass(frozen=True, slots=True)
class GridSettings:
    """The probabilistic grid's model (`PositionMethod.GRID`).

    `sigma_db`: the log-normal spread of an RSSI around the path-loss model (fitted on
    training data by the benchmark).  `cell_m`: the cell size, grown when the anchors'
    bounding box plus `margin_m` would need more than `max_cells` cells (memory per device
    is one float32 per cell).  `use_map`: report the most probable cell instead of the
    posterior mean.  No "not heard" term: tried (log P(rssi < floor) per silent anchor), it
    lost on every training split — a sparse phone scan misses near beacons as often as far
    ones, and a deployment's other transmit powers are never heard at all.
    """

    sigma_db: float = 6.0
    cell_m: float = 1.0
    max_cells: int = 4096
    margin_m: float = 2.0
    use_map: bool = False


MIN_DISTANCE_M = 0.3
MIN_ACCURACY_M = 0.5
FLOOR = 1e-30  # the least posterior a cell keeps (float32's smallest normal is ~1e-38)
BLUR_STEP = math.log(1.1)


class PositionGrid:
    """Cells over the anchors' bounding box and, per anchor, what each cell would hear.

    A recursive Bayes filter over the cells: the previous posterior is blurred by a
    Gaussian of σ = max_speed · dt (where a walker can have gone), then multiplied by the
    likelihood of every fresh filtered RSSI under the log-normal path-loss model.  All in
    numpy (float32) on precomputed per-anchor grids; the blur is two small matrix products,
    cached per 10 % step of σ (at most ~50 of them: beyond the grid's extent the prior is
    flat).
    """

    def __init__(self, anchors: Sequence[Anchor], settings: GridSettings) -> None:
        lo_x, lo_y, hi_x, hi_y = anchor_bounds(anchors, settings.margin_m)
        if not anchors:
            lo_x, lo_y, hi_x, hi_y = 0.0, 0.0, 1.0, 1.0
        area = (hi_x - lo_x) * (hi_y - lo_y)
        cell = max(settings.cell_m, math.sqrt(area / max(settings.max_cells, 1)) * 1.0001)
        self.cell = cell
        self.xs = np.arange(lo_x + cell / 2, hi_x, cell)
        self.ys = np.arange(lo_y + cell / 2, hi_y, cell)
        gx, gy = np.meshgrid(self.xs, self.ys)  # shape (ny, nx)
        self.settings = settings
        inv2s2 = 0.5 / (settings.sigma_db * settings.sigma_db)
        self._inv2s2 = inv2s2
        self._row = {a.id: i for i, a in enumerate(anchors)}
        d = np.maximum(
            np.hypot(
                gx[None] - _column([a.x for a in anchors]),
                gy[None] - _column([a.y for a in anchors]),
            ),
            MIN_DISTANCE_M,
        )
        n = _column([max(a.path_loss_exponent, 0.5) for a in anchors])
        model = _column([a.rssi_at_1m for a in anchors]) - 10.0 * n * np.log10(d)
        model = model.reshape(len(anchors), gx.size)  # (anchor, cell): the expected RSSI
        # [model²; model]: Σ over heard links of (rssi - model)², less Σ rssi², is one
        # matrix-vector product with the coefficients [1; -2 rssi] (0 for a silent anchor)
        self._terms = np.vstack([np.square(model), model])
        self._coef = np.zeros(2 * len(anchors))
        self._shape = (len(self.ys), len(self.xs))
        self._blurs: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # bounded: σ ≤ extent
        self._extent = max(hi_x - lo_x, hi_y - lo_y)

    def shape(self) -> tuple[int, int]:
        """(rows, columns) of the grid."""
        return self._shape

    def update(
        self,
        prior: np.ndarray | None,
        dt: float,
        max_speed: float,
        heard: Sequence[tuple[str, float]],
    ) -> np.ndarray:
        """The posterior after `dt` seconds of walking and the links `heard` now, stored as
        float32 (half the memory per device); computed in float64, in place where it can:
        float32 products of small probabilities fall into denormals, ~30x slower."""
        coef, n = self._coef, len(self._row)
        coef[:] = 0.0
        for anchor, rssi in heard:  # (anchor id, filtered RSSI)
            row = self._row[anchor]
            coef[row], coef[n + row] = 1.0, -2.0 * rssi
        misfit = (coef @ self._terms).reshape(self._shape)
        misfit -= misfit.min()
        misfit *= -self._inv2s2
        likelihood = np.exp(misfit, out=misfit)
        post = likelihood
        moved = None if prior is None else self._blur(prior, max_speed * max(dt, 0.0))
        if moved is not None:
            post = likelihood * moved
        total = float(post.sum())
        if not total > 1e-30:  # the prior ruled out what is heard: trust the links alone
            post, total = likelihood, float(likelihood.sum())
        post /= total
        np.maximum(post, FLOOR, out=post)  # every cell stays reachable, a normal float32
        stored: np.ndarray = post.astype(np.float32)
        return stored

    def estimate(self, post: np.ndarray) -> tuple[float, float, float]:
        """(x, y, spread): posterior mean (or MAP cell) and RMS distance of the mass to it."""
        px, py = post.sum(axis=0), post.sum(axis=1)  # marginals: cheaper than 2-D moments
        if self.settings.use_map:
            row, col = np.unravel_index(int(np.argmax(post)), post.shape)
            x, y = float(self.xs[col]), float(self.ys[row])
        else:
            x, y = float(px @ self.xs), float(py @ self.ys)
        var = float(px @ np.square(self.xs - x)) + float(py @ np.square(self.ys - y))
        return x, y, max(math.sqrt(max(var, 0.0)), MIN_ACCURACY_M)

    def _blur(self, prior: np.ndarray, sigma_m: float) -> np.ndarray | None:
        """`prior` spread by a Gaussian of `sigma_m`; None once that covers the whole grid
        (the device may be anywhere: a flat prior)."""
        if sigma_m < self.cell / 4:
            return prior
        if sigma_m > self._extent:
            return None
        key = round(math.log(sigma_m / self.cell) / BLUR_STEP)  # σ in 10 % steps: few keys
        mats = self._blurs.get(key)
        if mats is None:
            sigma = self.cell * math.exp(key * BLUR_STEP)
            mats = (_gauss_matrix(self.ys, sigma), _gauss_matrix(self.xs, sigma).T.copy())
            self._blurs[key] = mats
        by, bx_t = mats
        out: np.ndarray = by @ prior.astype(np.float64) @ bx_t  # mixed dtypes skip BLAS
        return out


def _column(values: Sequence[float]) -> np.ndarray:
    """`values` shaped to broadcast over a grid: one per anchor, (n, 1, 1)."""
    return np.asarray(values, dtype=np.float64).reshape(-1, 1, 1)


def _gauss_matrix(centres: np.ndarray, sigma: float) -> np.ndarray:
    """Symmetric matrix spreading each cell over its neighbours by a Gaussian of `sigma` m."""
    diff = centres[:, None] - centres[None, :]
    m = np.exp(-0.5 * np.square(diff / sigma))
    m[m < 1e-12] = 0.0  # a far tail is nothing, and its denormals would slow every product
    out: np.ndarray = m / m.sum(axis=0, keepdims=True)
    return out


def anchor_bounds(anchors: Sequence[Anchor], margin: float) -> tuple[float, float, float, float]:
    if not anchors:
        return (-math.inf, -math.inf, math.inf, math.inf)
    xs = [a.x for a in anchors]
    ys = [a.y for a in anchors]
    return (min(xs) - margin, min(ys) - margin, max(xs) + margin, max(ys) + margin)
