"""The probabilistic grid of `PositionMethod.GRID` (see gateway/locate/locator.py): per device, a
belief over cells covering the anchors, updated by a recursive Bayes filter."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from gateway.config.model import PATH_LOSS_EXPONENTS, Anchor
from gateway.locate.radiomap import GridGeometry, RadioMap

Walls = tuple[tuple[tuple[float, float], ...], ...]


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

    `outlier_z`: a link whose RSSI is more than this many σ from a cell's expected one
    counts there as no worse than at `outlier_z` σ (its squared misfit is clipped at
    outlier_z² — the log of a Gaussian plus a uniform outlier share, at its maximum), so an
    anchor configured far off cannot pull the belief onto itself; infinity (the default) is
    the plain log-normal, one matrix-vector product.  Measured (docs/accuracy.md; Kalman,
    fitted σ, posterior mean, fresh 4 s): with each data set's busiest anchor 15 dB too
    quiet, 2.5 σ keeps tetam's training zone accuracy at 49.3 % where the plain grid falls
    to 29.2 % (51.6 % with no anchor off), but on the clean fits it costs 1.8 points of
    mean training accuracy over the five sets (0.9 at 3 σ, 0.0 at 4 σ), so it is off by
    default.

    `walls`: polylines in floor metres ((x, y) points each) that the motion between fixes
    cannot cross; a door is a gap between two polylines (or between a polyline's points).
    """

    sigma_db: float = 6.0
    cell_m: float = 1.0
    max_cells: int = 4096
    margin_m: float = 2.0
    use_map: bool = False
    outlier_z: float = math.inf
    walls: Walls = ()


_sum, _min = np.add.reduce, np.minimum.reduce  # ndarray.sum(a, axis), .min() is _min(a, None)
MIN_DISTANCE_M = 0.3
MIN_ACCURACY_M = 0.5
FLOOR = 1e-30  # the least posterior a cell keeps (float32's smallest normal is ~1e-38)
BLUR_STEP = math.log(1.1)
WALL_RATE = 0.2  # the share of a cell's mass that moves to each open neighbour per step (< 1/4)
MAX_WALL_STEPS = 512  # beyond: σ ≳ 16 cells, the walled blur is taken as a flat prior


PACK_KEEP = 1e-3  # a packed belief keeps the blocks holding at least this share of its peak
PACK_BLOCK = 2  # … of this many cells a side
PACK_SCALE = 255.0 / math.log(1.0 / PACK_KEEP)  # its cells: −log(p / peak), 1/255 of that range


@dataclass(frozen=True, slots=True)
class PackedBelief:
    """A belief as kept per device between updates (`PositionGrid.pack`): the window of the
    blocks of cells that matter, from block (`row`, `column`), each −log(p / peak) in 255
    steps, a byte each (bytes, not an array: a hundred bytes less a device)."""

    row: int
    column: int
    width: int
    cells: bytes  # the window's bytes, row after row

    @property
    def window(self) -> np.ndarray:
        """The window as a (rows, `width`) uint8 array."""
        out: np.ndarray = np.frombuffer(self.cells, dtype=np.uint8).reshape(-1, self.width)
        return out


class PositionGrid:
    """Cells over the anchors' bounding box and, per anchor, what each cell would hear.

    A recursive Bayes filter over the cells: the previous posterior is blurred by a
    Gaussian of σ = max_speed · dt (where a walker can have gone), then multiplied by the
    likelihood of every fresh filtered RSSI under the log-normal path-loss model.  All in
    numpy (float32) on precomputed per-anchor grids; the blur is two small matrix products,
    cached per 10 % step of σ (at most ~50 of them: beyond the grid's extent the prior is
    flat).  With walls, the blur is instead a diffusion over the cells' 4-neighbour graph
    without the edges whose centre-to-centre segment crosses a wall: σ² / (0.4 cell²)
    explicit steps, each moving `WALL_RATE` of a cell's mass to each open neighbour (a
    Gaussian of σ in the open; mass conserved; round a wall only through its doors).  Its
    cost grows with σ²: on 34 × 44 cells a fix costs 56 µs at σ 1 m (2 steps) and 116 µs
    at σ 2 m (10 steps), against 42 µs with the Gaussian (bench/bench_grid.py); beyond
    `MAX_WALL_STEPS` the prior is flat.
    """

    def __init__(
        self,
        anchors: Sequence[Anchor],
        settings: GridSettings,
        radio_map: RadioMap | None = None,
    ) -> None:
        geometry = radio_map.geometry if radio_map is not None else grid_geometry(anchors, settings)
        lo_x, lo_y, cell = geometry.x0, geometry.y0, geometry.cell
        hi_x, hi_y = lo_x + cell * geometry.nx, lo_y + cell * geometry.ny
        self.geometry = geometry
        self.cell = cell
        self.xs, self.ys = geometry.centres()
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
        least = PATH_LOSS_EXPONENTS[0]  # calibrate's least
        n = _column([max(a.path_loss_exponent, least) for a in anchors])
        model = _column([a.rssi_at_1m for a in anchors]) - 10.0 * n * np.log10(d)
        model = model.reshape(len(anchors), gx.size)  # (anchor, cell): the expected RSSI
        self.radio_map = radio_map
        self._mapped = self._learned(anchors, model, radio_map)
        # [model²; model]: Σ over heard links of (rssi - model)², less Σ rssi², is one
        # matrix-vector product with the coefficients [1; -2 rssi] (0 for a silent anchor)
        self._terms = np.vstack([np.square(model), model])
        self._coef = np.zeros(2 * len(anchors))
        self._model = model  # per link, for the clipped misfit of `outlier_z`
        self._clip = (settings.outlier_z * settings.sigma_db) ** 2
        # `locate`, in float32
        self._coef32, self._terms32 = self._coef.astype(np.float32), self._terms.astype(np.float32)
        self._neg_inv2s2 = np.float32(-inv2s2)
        self._xs32, self._ys32 = self.xs.astype(np.float32), self.ys.astype(np.float32)
        self._xs32_sq, self._ys32_sq = np.square(self._xs32), np.square(self._ys32)
        self._shape = (len(self.ys), len(self.xs))
        self._blurs: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # bounded: σ ≤ extent
        self._extent = max(hi_x - lo_x, hi_y - lo_y)
        self._open: tuple[np.ndarray, np.ndarray] | None = None
        if settings.walls:
            # rates on the flattened grid: cell i to i + 1 (0 at a row's end), i to i + nx
            across, along = _open_edges(self.xs, self.ys, settings.walls)
            pad = np.zeros((len(self.ys), 1))
            to_next = np.hstack([across, pad]).ravel()[:-1]
            self._open = (WALL_RATE * to_next, WALL_RATE * along.ravel())

    def shape(self) -> tuple[int, int]:
        """(rows, columns) of the grid."""
        return self._shape

    def _learned(
        self, anchors: Sequence[Anchor], model: np.ndarray, radio_map: RadioMap | None
    ) -> tuple[np.ndarray, np.ndarray | None] | None:
        """With a radio map: per anchor, [expected²; expected] / 2σ² (the map's, else the
        path-loss model's with the settings' σ), and for scans the detection log-odds
        log p − log(1 − p) stacked over Σ log(1 − p); None without a map."""
        if radio_map is None:
            return None
        index = radio_map.index()
        mean = model.copy()
        inv = np.full(len(anchors), self._inv2s2)
        scans = radio_map.detect is not None
        log_heard = np.zeros_like(model) if scans else model[:0]
        log_missed = np.zeros_like(model) if scans else model[:0]
        for a, row in self._row.items():
            k = index.get(a)
            if k is None:
                continue
            mean[row] = radio_map.mean[k].ravel()
            inv[row] = 0.5 / float(radio_map.sigma_db[k]) ** 2
            if radio_map.detect is not None:
                p = radio_map.detect[k].ravel().astype(np.float64)
                log_heard[row], log_missed[row] = np.log(p), np.log1p(-p)
        # float32: a misfit's terms are O(10³) per sample, resolved to ~10⁻⁴ (half the memory)
        terms = np.vstack([np.square(mean) * inv[:, None], mean * inv[:, None]])
        if not scans:
            return terms.astype(np.float32), None
        detect = np.vstack([log_heard - log_missed, log_missed.sum(axis=0)[None]])
        return terms.astype(np.float32), detect.astype(np.float32)

    def pack(self, post: np.ndarray) -> PackedBelief:
        """`post` kept small: summed over blocks of `PACK_BLOCK` × `PACK_BLOCK` cells, the
        window of blocks holding at least `PACK_KEEP` of the peak, each block's −log(p / peak)
        in 255 steps of log(1 / PACK_KEEP) (a byte a block, ~2.7 % relative error).  The rest
        is 0: the motion's jump share brings every cell back at the next update, whose
        likelihood is at full resolution again."""
        b = PACK_BLOCK
        ny, nx = self._shape
        padded = np.zeros((-(-ny // b) * b, -(-nx // b) * b))
        padded[:ny, :nx] = post
        blocks = padded.reshape(padded.shape[0] // b, b, padded.shape[1] // b, b).sum(axis=(1, 3))
        peak = float(blocks.max())
        kept = blocks >= PACK_KEEP * peak
        rows, cols = np.flatnonzero(kept.any(axis=1)), np.flatnonzero(kept.any(axis=0))
        r0, r1, c0, c1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
        share = np.maximum(blocks[r0:r1, c0:c1] / peak, PACK_KEEP)
        window = np.rint(-np.log(share) * PACK_SCALE).astype(np.uint8)
        return PackedBelief(r0, c0, c1 - c0, window.tobytes())

    def unpack(self, packed: PackedBelief) -> np.ndarray:
        """The belief of `pack` over every cell (a block's mass shared evenly by its cells),
        normalised."""
        b = PACK_BLOCK
        ny, nx = self._shape
        blocks = np.zeros((-(-ny // b), -(-nx // b)))
        r0, c0, window = packed.row, packed.column, packed.window
        blocks[r0 : r0 + window.shape[0], c0 : c0 + window.shape[1]] = np.exp(
            window * (-1.0 / PACK_SCALE)
        )
        full: np.ndarray = np.repeat(np.repeat(blocks, b, axis=0), b, axis=1)[:ny, :nx]
        out: np.ndarray = full / full.sum()
        return out

    def log_likelihood(
        self, samples: Sequence[tuple[str, float]], scan: bool = False
    ) -> np.ndarray:
        """Per cell, the log-likelihood (up to a constant) of raw `samples` (anchor id, RSSI)
        under the radio map, each sample independent; with `scan` (a phone's scan: the
        anchors it lists were heard, every other mapped one was not), times the detection
        rates.  Needs a radio map."""
        n = len(self._row)
        sums = np.zeros(2 * n)
        for anchor, rssi in samples:
            row = self._row.get(anchor)
            if row is not None:
                sums[row] += 1.0
                sums[n + row] += rssi
        return self.sample_log_likelihood(sums, scan)

    def sample_log_likelihood(self, sums: np.ndarray, scan: bool = False) -> np.ndarray:
        """`log_likelihood` of samples given as sums: per anchor (in the order the grid was
        given them) how many, then the sum of their RSSIs — Σ (rssi − m)² over one anchor's
        samples is count · m² − 2 m · sum, less a constant."""
        assert self._mapped is not None
        terms, detect = self._mapped
        n = len(self._row)
        coef = sums.astype(np.float32)
        coef[n:] *= -2.0
        loglik: np.ndarray = -(coef @ terms)
        if scan and detect is not None:
            heard = np.zeros(n + 1, dtype=np.float32)
            heard[:n] = sums[:n] > 0
            heard[n] = 1.0
            loglik += heard @ detect
        return loglik

    def update_likelihood(
        self,
        prior: np.ndarray | None,
        dt: float,
        max_speed: float,
        loglik: np.ndarray,
        jump: float = 0.0,
    ) -> np.ndarray:
        """The posterior after `dt` seconds of walking and a per-cell log-likelihood (which it
        overwrites), stored as float32 (half the memory per device); computed in float64, in
        place where it can: float32 products of small probabilities fall into denormals, ~30x
        slower.  `jump`: the share of the prior spread over every cell (a device may reappear
        anywhere: a missed stretch, a wrong belief), the rest moved at walking speed."""
        loglik = loglik.reshape(self._shape)
        loglik -= loglik.max()
        likelihood = np.exp(loglik, out=loglik)
        post = likelihood
        moved = None if prior is None else self._blur(prior, max_speed * max(dt, 0.0))
        if moved is not None:
            if jump > 0.0:
                moved = (1.0 - jump) * moved + jump / moved.size
            post = likelihood * moved
        total = float(post.sum())
        if not total > 1e-30:  # the prior ruled out what is heard: trust the links alone
            post, total = likelihood, float(likelihood.sum())
        post /= total
        np.maximum(post, FLOOR, out=post)  # every cell stays reachable, a normal float32
        stored: np.ndarray = post.astype(np.float32)
        return stored

    def update(
        self,
        prior: np.ndarray | None,
        dt: float,
        max_speed: float,
        heard: Sequence[tuple[str, float]],
    ) -> np.ndarray:
        """The posterior after `dt` seconds of walking and the links `heard` now (their
        filtered levels under the path-loss model): `update_likelihood`'s."""
        misfit = self._misfit(heard).reshape(self._shape)
        misfit -= misfit.min()
        misfit *= -self._inv2s2  # the log-likelihood, 0 at its best cell
        return self.update_likelihood(prior, dt, max_speed, misfit)

    def _coefficients(self, coef: np.ndarray, heard: Sequence[tuple[str, float]]) -> np.ndarray:
        """`coef` (the float64 or float32 buffer) set to [1; −2 rssi] for each link `heard`
        (anchor id, filtered RSSI) and 0 for a silent anchor: `coef @ [model²; model]` is then
        Σ (rssi − model)² over the links, less Σ rssi²."""
        n = len(self._row)
        coef[:] = 0.0
        for anchor, rssi in heard:
            row = self._row[anchor]
            coef[row], coef[n + row] = 1.0, -2.0 * rssi
        return coef

    def _misfit(self, heard: Sequence[tuple[str, float]]) -> np.ndarray:
        """Per cell, Σ over the links `heard` of (rssi − expected)², each clipped at
        (outlier_z σ)², less a constant."""
        if math.isinf(self._clip):
            plain: np.ndarray = self._coefficients(self._coef, heard) @ self._terms
            return plain
        rows = [self._row[anchor] for anchor, _ in heard]
        res = self._model[rows]  # a copy, (links, cells)
        res -= np.array([rssi for _, rssi in heard])[:, None]
        np.square(res, out=res)
        np.minimum(res, self._clip, out=res)
        clipped: np.ndarray = res.sum(axis=0)
        return clipped

    def locate(
        self, heard: Sequence[tuple[str, float]], near: tuple[float, float], radius_m: float
    ) -> tuple[float, float, float]:
        """The posterior mean of the links `heard` alone, from a flat prior (no belief is
        kept), over the cells within `radius_m` of `near` (a square window: the cost of a
        fix does not grow with the store), and the RMS distance of the mass to it.  In
        float32 (half the time of float64 here; the misfits are O(10⁵) dB², resolved to
        ~0.01 against σ² ≈ 36)."""
        coef = self._coefficients(self._coef32, heard)
        cell, x0, y0 = self.cell, float(self.xs[0]), float(self.ys[0])
        c0 = max(int((near[0] - radius_m - x0) / cell), 0)
        c1 = min(int((near[0] + radius_m - x0) / cell) + 2, len(self.xs))
        r0 = max(int((near[1] - radius_m - y0) / cell), 0)
        r1 = min(int((near[1] + radius_m - y0) / cell) + 2, len(self.ys))
        if c0 >= c1 or r0 >= r1:  # `near` off the grid: the whole of it
            c0, c1, r0, r1 = 0, len(self.xs), 0, len(self.ys)
        # few numpy calls: at ~1 µs each they, not the arithmetic, are the cost; the ufuncs'
        # reduce is what ndarray.sum and .min call, without their interpreted wrappers
        misfit = (coef @ self._terms32).reshape(self._shape)[r0:r1, c0:c1]
        p = np.exp((misfit - _min(misfit, None)) * self._neg_inv2s2)
        px, py = _sum(p, 0), _sum(p, 1)
        xs, ys = self._xs32, self._ys32
        total = float(_sum(px))
        x, y = float(px @ xs[c0:c1]) / total, float(py @ ys[r0:r1]) / total
        mean_sq = float(px @ self._xs32_sq[c0:c1]) + float(py @ self._ys32_sq[r0:r1])
        var = mean_sq / total - x * x - y * y
        return x, y, max(math.sqrt(max(var, 0.0)), MIN_ACCURACY_M)

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
        if self._open is not None:
            return self._diffuse(prior, sigma_m)
        key = round(math.log(sigma_m / self.cell) / BLUR_STEP)  # σ in 10 % steps: few keys
        mats = self._blurs.get(key)
        if mats is None:
            sigma = self.cell * math.exp(key * BLUR_STEP)
            mats = (_gauss_matrix(self.ys, sigma), _gauss_matrix(self.xs, sigma).T.copy())
            self._blurs[key] = mats
        by, bx_t = mats
        out: np.ndarray = by @ prior.astype(np.float64) @ bx_t  # mixed dtypes skip BLAS
        return out

    def _diffuse(self, prior: np.ndarray, sigma_m: float) -> np.ndarray | None:
        """`prior` spread over the 4-neighbour graph of the cells, without the edges that
        cross a wall, for as many steps as make a variance of σ² per axis (each step adds
        2·WALL_RATE cells²): a Gaussian of σ in the open, mass that goes round a wall
        through its doors."""
        steps = max(1, round(sigma_m * sigma_m / (2.0 * WALL_RATE * self.cell * self.cell)))
        if steps > MAX_WALL_STEPS:
            return None
        assert self._open is not None
        rate_x, rate_y = self._open
        nx = len(self.xs)
        out = prior.astype(np.float64).ravel()  # flat: contiguous slices, half the time
        flow_x, flow_y = np.empty(len(rate_x)), np.empty(len(rate_y))
        for _ in range(steps):
            np.subtract(out[1:], out[:-1], out=flow_x)  # into the lower cell of each pair
            flow_x *= rate_x
            np.subtract(out[nx:], out[:-nx], out=flow_y)
            flow_y *= rate_y
            out[:-1] += flow_x
            out[1:] -= flow_x
            out[:-nx] += flow_y
            out[nx:] -= flow_y
        out = out.reshape(self._shape)
        return out


def _open_edges(xs: np.ndarray, ys: np.ndarray, walls: Walls) -> tuple[np.ndarray, np.ndarray]:
    """(between columns, shape (ny, nx − 1); between rows, (ny − 1, nx)): 1.0 where the
    segment joining the two cells' centres crosses no wall, else 0.0."""
    segs = [(a, b) for line in walls for a, b in itertools.pairwise(line)]
    gx, gy = np.meshgrid(xs, ys)
    across = _crosses_none(gx[:, :-1], gy[:, :-1], gx[:, 1:], gy[:, 1:], segs)
    along = _crosses_none(gx[:-1, :], gy[:-1, :], gx[1:, :], gy[1:, :], segs)
    return across, along


def _crosses_none(
    x0: np.ndarray,
    y0: np.ndarray,
    x1: np.ndarray,
    y1: np.ndarray,
    segs: Sequence[tuple[tuple[float, float], tuple[float, float]]],
) -> np.ndarray:
    """1.0 for each segment (x0, y0)–(x1, y1) that meets none of `segs` (touching counts)."""
    free = np.ones(x0.shape)
    for (ax, ay), (bx, by) in segs:
        d1 = _side(ax, ay, bx, by, x0, y0)
        d2 = _side(ax, ay, bx, by, x1, y1)
        d3 = (x1 - x0) * (ay - y0) - (y1 - y0) * (ax - x0)
        d4 = (x1 - x0) * (by - y0) - (y1 - y0) * (bx - x0)
        boxes = (
            (np.minimum(x0, x1) <= max(ax, bx))
            & (np.maximum(x0, x1) >= min(ax, bx))
            & (np.minimum(y0, y1) <= max(ay, by))
            & (np.maximum(y0, y1) >= min(ay, by))
        )
        free[(d1 * d2 <= 0.0) & (d3 * d4 <= 0.0) & boxes] = 0.0
    return free


def _side(ax: float, ay: float, bx: float, by: float, px: np.ndarray, py: np.ndarray) -> np.ndarray:
    """The cross product of a→b and a→p: its sign says on which side of the line a→b each
    point p lies (0 on it)."""
    out: np.ndarray = (bx - ax) * (py - ay) - (by - ay) * (px - ax)
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


def grid_geometry(
    anchors: Sequence[Anchor],
    settings: GridSettings,
    cover: Sequence[tuple[float, float]] = (),
) -> GridGeometry:
    """The cells `PositionGrid` lays over `anchors` and the points `cover` (a walk's, the
    zones' corners): their bounds plus `margin_m`, `cell_m` wide, grown when that would make
    more than `max_cells`."""
    lo_x, lo_y, hi_x, hi_y = anchor_bounds(anchors, settings.margin_m)
    if not anchors:
        lo_x, lo_y, hi_x, hi_y = 0.0, 0.0, 1.0, 1.0
    if cover:
        m = settings.margin_m
        lo_x, hi_x = (
            min(lo_x, min(p[0] for p in cover) - m),
            max(hi_x, max(p[0] for p in cover) + m),
        )
        lo_y, hi_y = (
            min(lo_y, min(p[1] for p in cover) - m),
            max(hi_y, max(p[1] for p in cover) + m),
        )
    area = (hi_x - lo_x) * (hi_y - lo_y)
    cell = max(settings.cell_m, math.sqrt(area / max(settings.max_cells, 1)) * 1.0001)
    nx = len(np.arange(lo_x + cell / 2, hi_x, cell))
    ny = len(np.arange(lo_y + cell / 2, hi_y, cell))
    return GridGeometry(lo_x, lo_y, cell, nx, ny)


def anchor_bounds(anchors: Sequence[Anchor], margin: float) -> tuple[float, float, float, float]:
    if not anchors:
        return (-math.inf, -math.inf, math.inf, math.inf)
    xs = [a.x for a in anchors]
    ys = [a.y for a in anchors]
    return (min(xs) - margin, min(ys) - margin, max(xs) + margin, max(ys) + margin)
