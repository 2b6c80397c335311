"""The learned radio map (`locate.radio_map`, written by `rayon calibrate … --map-out`).

Per anchor, over the cells of the floor plan: the expected RSSI, its spread, and, for store
beacons heard by phones' scans, how often the beacon is heard there (the detection rate).

Learned from a calibration walk (`Survey`: RSSI samples at known positions, or known only to be
somewhere in a zone):

* **Expected RSSI** = the anchor's log-distance path loss (its `rssi_at_1m` and
  `path_loss_exponent`, fitted robustly on the walk by `gateway.offline.calibrate` when it has
  enough samples, else the config's) plus a learned correction: the walk's residuals against that
  model, smoothed by a Gaussian kernel of `bandwidth_m` over the cells (Nadaraya–Watson) and
  shrunk towards 0 where the walk is thin (the kernel's weight w against `prior_weight`:
  w / (w + prior_weight)).  A sample known only by its zone spreads its weight evenly over that
  zone's cells before the smoothing.
* **Spread** = per anchor, the robust (MAD) spread of the walk's samples around the expected
  RSSI, floored at `MIN_SIGMA_DB`.
* **Detection rate** (scans only) = per anchor and cell, the kernel-smoothed share of the scans
  there that heard the anchor, shrunk towards the anchor's share over the whole walk, clipped to
  [`MIN_DETECT`, 1 − `MIN_DETECT`].

The map's grid is the locator's: the same bounds and cell as `PositionGrid` builds for the
config's anchors (cell 1 m by default), so a map is only used with the anchors it was made for;
it records their positions, and `rayon doctor` warns when the config's anchors have moved since.
The file is JSON (`FORMAT`), the arrays as lists of rounded numbers.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gateway.config.model import Anchor, Zone
from gateway.errors import InvalidInput

FORMAT = "rayon-radio-map/1"
BANDWIDTHS_M = (0.7, 1.0, 1.5, 2.5, 4.0)  # the kernel widths a walk chooses from
FOLDS = 5  # blocks of the floor held out in turn to choose the width
FOLD_BLOCK_M = 2.0
PRIOR_WEIGHT = 3.0  # kernel weight (≈ samples) at which the learned correction counts half
MIN_SIGMA_DB = 2.0
MIN_DETECT = 0.02
MAX_CORRECTION_DB = 25.0


@dataclass(frozen=True, slots=True)
class Survey:
    """What a calibration walk gives, as flat arrays.

    Samples: `anchor` (index into `anchors`), `rssi`, and either a position (`x`, `y`) or,
    where `zone` ≥ 0, only the zone (an index into `zones`, the zones' cell masks given to
    `fit_radio_map`) — `x`, `y` are then ignored.  Scans (phones' sightings: each scan lists
    the beacons it heard): `scan_x`, `scan_y`, `scan_zone` as above, and `scan_heard`, one row
    of booleans per scan (one column per anchor)."""

    anchors: tuple[str, ...]
    anchor: np.ndarray
    rssi: np.ndarray
    x: np.ndarray
    y: np.ndarray
    zone: np.ndarray
    scan_x: np.ndarray = field(default_factory=lambda: np.zeros(0))
    scan_y: np.ndarray = field(default_factory=lambda: np.zeros(0))
    scan_zone: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=int))
    scan_heard: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), dtype=bool))

    def subset(self, samples: np.ndarray, scans: np.ndarray) -> Survey:
        """The survey of the samples and scans where the masks are True."""
        return Survey(
            self.anchors,
            self.anchor[samples],
            self.rssi[samples],
            self.x[samples],
            self.y[samples],
            self.zone[samples],
            self.scan_x[scans],
            self.scan_y[scans],
            self.scan_zone[scans],
            self.scan_heard[scans],
        )

    @classmethod
    def of_points(
        cls,
        anchors: Sequence[str],
        samples: Sequence[tuple[str, float, float, float]],
        scans: Sequence[tuple[float, float, frozenset[str]]] = (),
    ) -> Survey:
        """A survey from (anchor id, rssi, x, y) samples and (x, y, anchors heard) scans."""
        index = {a: i for i, a in enumerate(anchors)}
        kept = [s for s in samples if s[0] in index]
        heard = np.zeros((len(scans), len(anchors)), dtype=bool)
        for k, (_, _, ids) in enumerate(scans):
            for a in ids:
                if a in index:
                    heard[k, index[a]] = True
        return cls(
            anchors=tuple(anchors),
            anchor=np.array([index[s[0]] for s in kept], dtype=np.int64),
            rssi=np.array([s[1] for s in kept], dtype=float),
            x=np.array([s[2] for s in kept], dtype=float),
            y=np.array([s[3] for s in kept], dtype=float),
            zone=np.full(len(kept), -1, dtype=np.int64),
            scan_x=np.array([s[0] for s in scans], dtype=float),
            scan_y=np.array([s[1] for s in scans], dtype=float),
            scan_zone=np.full(len(scans), -1, dtype=np.int64),
            scan_heard=heard,
        )


@dataclass(frozen=True, slots=True)
class GridGeometry:
    """Cells of `cell` metres whose centres are x0 + (i + ½) cell, y0 + (j + ½) cell."""

    x0: float
    y0: float
    cell: float
    nx: int
    ny: int

    def centres(self) -> tuple[np.ndarray, np.ndarray]:
        xs = self.x0 + self.cell * (np.arange(self.nx) + 0.5)
        ys = self.y0 + self.cell * (np.arange(self.ny) + 0.5)
        return xs, ys

    def cell_of(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """The flat index (row · nx + column) of the cell under each point, clipped to the grid."""
        col = np.clip(((x - self.x0) / self.cell).astype(np.int64), 0, self.nx - 1)
        row = np.clip(((y - self.y0) / self.cell).astype(np.int64), 0, self.ny - 1)
        flat: np.ndarray = row * self.nx + col
        return flat


@dataclass(frozen=True, slots=True)
class RadioMap:
    """Per anchor (`anchors`, in that order), over `geometry`'s cells: `mean` (expected RSSI,
    shape (anchors, ny, nx)), `sigma_db` (one per anchor), `detect` (the share of scans that
    hear the anchor, same shape as `mean`; None when the walk had no scans).  `positions`: the
    anchors' (x, y) when the map was made; `samples`: walk samples per anchor."""

    anchors: tuple[str, ...]
    geometry: GridGeometry
    mean: np.ndarray
    sigma_db: np.ndarray
    detect: np.ndarray | None
    positions: tuple[tuple[float, float], ...]
    samples: tuple[int, ...]
    made_at: str = ""
    source: str = ""

    def index(self) -> dict[str, int]:
        return {a: i for i, a in enumerate(self.anchors)}

    def moved(self, anchors: Sequence[Anchor], tolerance_m: float = 0.5) -> list[str]:
        """The config's anchors that the map does not know or that moved more than
        `tolerance_m` since it was made (the map is then stale for them)."""
        where = dict(zip(self.anchors, self.positions, strict=True))
        out = []
        for a in anchors:
            p = where.get(a.id)
            if p is None or math.hypot(a.x - p[0], a.y - p[1]) > tolerance_m:
                out.append(a.id)
        return out

    def to_json(self) -> dict[str, Any]:
        g = self.geometry
        return {
            "format": FORMAT,
            "made_at": self.made_at,
            "source": self.source,
            "grid": {"x0": g.x0, "y0": g.y0, "cell": g.cell, "nx": g.nx, "ny": g.ny},
            "anchors": [
                {
                    "id": a,
                    "x": p[0],
                    "y": p[1],
                    "samples": int(n),
                    "sigma_db": round(float(s), 2),
                    "mean": np.round(self.mean[k].astype(np.float64), 1).tolist(),
                    **(
                        {"detect": np.round(self.detect[k].astype(np.float64), 3).tolist()}
                        if self.detect is not None
                        else {}
                    ),
                }
                for k, (a, p, n, s) in enumerate(
                    zip(self.anchors, self.positions, self.samples, self.sigma_db, strict=True)
                )
            ],
        }

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_json(), separators=(",", ":")) + "\n", encoding="utf-8")

    @classmethod
    def from_json(cls, obj: Any, where: str) -> RadioMap:
        """Parse a map; InvalidInput saying what is wrong and where (`where`: the file)."""
        if not isinstance(obj, dict) or obj.get("format") != FORMAT:
            raise InvalidInput(
                f'{where}: not a radio map (expected "format": "{FORMAT}"); write one with '
                "`rayon calibrate WALK --truth TRUTH --map-out FILE`"
            )
        try:
            g = obj["grid"]
            geometry = GridGeometry(
                float(g["x0"]), float(g["y0"]), float(g["cell"]), int(g["nx"]), int(g["ny"])
            )
            rows = obj["anchors"]
            if not isinstance(rows, list) or not rows:
                raise ValueError("'anchors' must be a non-empty list")
            shape = (geometry.ny, geometry.nx)
            means, detects = [], []
            for k, row in enumerate(rows):
                mean = np.asarray(row["mean"], dtype=np.float32)
                if mean.shape != shape or not np.isfinite(mean).all():
                    raise ValueError(f"anchors[{k}].mean must be {shape[0]} × {shape[1]} numbers")
                means.append(mean)
                if "detect" in row:
                    det = np.asarray(row["detect"], dtype=np.float32)
                    if det.shape != shape or not ((det >= 0) & (det <= 1)).all():
                        raise ValueError(f"anchors[{k}].detect must be {shape} numbers in 0…1")
                    detects.append(det)
            if detects and len(detects) != len(means):
                raise ValueError("either every anchor has 'detect' or none")
            sigma = np.array([float(r["sigma_db"]) for r in rows], dtype=np.float32)
            if not (sigma > 0).all():
                raise ValueError("every sigma_db must be > 0")
            return cls(
                anchors=tuple(str(r["id"]) for r in rows),
                geometry=geometry,
                mean=np.stack(means),
                sigma_db=sigma,
                detect=np.stack(detects) if detects else None,
                positions=tuple((float(r["x"]), float(r["y"])) for r in rows),
                samples=tuple(int(r.get("samples", 0)) for r in rows),
                made_at=str(obj.get("made_at", "")),
                source=str(obj.get("source", "")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            what = f"missing key {exc}" if isinstance(exc, KeyError) else str(exc)
            raise InvalidInput(
                f"{where}: bad radio map ({what}); write it again with `rayon calibrate … "
                "--map-out`"
            ) from None

    @classmethod
    def load(cls, path: Path) -> RadioMap:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise InvalidInput(f"{path}: cannot read the radio map: {exc.strerror}") from None
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InvalidInput(
                f"{path}:{exc.lineno}:{exc.colno}: not JSON ({exc.msg}); write the radio map "
                "again with `rayon calibrate … --map-out`"
            ) from None
        return cls.from_json(obj, str(path))


def zone_cells(zones: Sequence[Zone], geometry: GridGeometry) -> list[np.ndarray]:
    """Per zone, the flat indices of the cells whose centre is inside it; a zone that holds
    no centre (smaller than a cell) gets the cell under its own centre."""
    import shapely  # only a store with a radio map pays for it here

    xs, ys = geometry.centres()
    gx, gy = (g.ravel() for g in np.meshgrid(xs, ys))
    out = []
    for zone in zones:
        inside = np.flatnonzero(shapely.contains_xy(zone.polygon, gx, gy))
        if not len(inside):
            c = zone.polygon.centroid
            inside = geometry.cell_of(np.array([c.x]), np.array([c.y]))
        out.append(inside)
    return out


def fit_radio_map(
    anchors: Sequence[Anchor],
    survey: Survey,
    geometry: GridGeometry,
    zone_cells: Sequence[np.ndarray] = (),
    *,
    bandwidth_m: float | None = None,
    prior_weight: float = PRIOR_WEIGHT,
    made_at: str = "",
    source: str = "",
) -> RadioMap:
    """Learn the map of `anchors` (their path-loss calibration is the prior) from `survey`
    over `geometry`'s cells.  `zone_cells[k]`: the flat cell indices of zone k (for samples
    known by zone).  `bandwidth_m`: the kernel's width; None chooses it from the walk
    (`choose_bandwidth`)."""
    if bandwidth_m is None:
        bandwidth_m = choose_bandwidth(anchors, survey, geometry, zone_cells, prior_weight)
    xs, ys = geometry.centres()
    gx, gy = np.meshgrid(xs, ys)
    ncell = geometry.nx * geometry.ny
    by_id = {a.id: a for a in anchors}
    blur_y = _gauss_matrix(ys, bandwidth_m)
    blur_x = _gauss_matrix(xs, bandwidth_m)

    def smooth(values: np.ndarray) -> np.ndarray:
        out: np.ndarray = blur_y @ values.reshape(geometry.ny, geometry.nx) @ blur_x.T
        return out

    def spread_onto_cells(
        px: np.ndarray, py: np.ndarray, zone: np.ndarray, values: np.ndarray
    ) -> np.ndarray:
        """Per cell, the sum of `values` of the samples there (a zone sample spread evenly)."""
        total = np.zeros(ncell)
        pointed = zone < 0
        np.add.at(total, geometry.cell_of(px[pointed], py[pointed]), values[pointed])
        for k in np.unique(zone[~pointed]):
            cells = zone_cells[int(k)]
            if len(cells):
                total[cells] += values[zone == k].sum() / len(cells)
        return total

    means, sigmas, detects, counts = [], [], [], []
    for k, aid in enumerate(survey.anchors):
        a = by_id[aid]
        d = np.maximum(np.hypot(gx - a.x, gy - a.y), 0.3)
        prior = a.rssi_at_1m - 10.0 * max(a.path_loss_exponent, 0.2) * np.log10(d)
        mine = survey.anchor == k
        zone = survey.zone[mine]
        px, py, rssi = survey.x[mine], survey.y[mine], survey.rssi[mine]
        # each sample's residual against the prior, at its cell (a zone sample: the zone's mean)
        cell = geometry.cell_of(px, py)
        at_prior = prior.ravel()[cell]
        for z in np.unique(zone[zone >= 0]):
            cells = zone_cells[int(z)]
            at_prior[zone == z] = prior.ravel()[cells].mean() if len(cells) else rssi.mean()
        residual = rssi - at_prior
        weight = smooth(spread_onto_cells(px, py, zone, np.ones(len(rssi))))
        summed = smooth(spread_onto_cells(px, py, zone, residual))
        correction = np.clip(
            summed / (weight + prior_weight), -MAX_CORRECTION_DB, MAX_CORRECTION_DB
        )
        mean = prior + correction
        fitted = mean.ravel()[cell]
        for z in np.unique(zone[zone >= 0]):
            cells = zone_cells[int(z)]
            fitted[zone == z] = mean.ravel()[cells].mean() if len(cells) else rssi.mean()
        res = rssi - fitted
        sigma = 1.4826 * float(np.median(np.abs(res - np.median(res)))) if len(res) >= 5 else 6.0
        means.append(mean.astype(np.float32))
        sigmas.append(max(sigma, MIN_SIGMA_DB))
        counts.append(len(rssi))
        if len(survey.scan_heard):
            heard = survey.scan_heard[:, k].astype(float)
            rate = float(heard.mean())
            seen = smooth(spread_onto_cells(survey.scan_x, survey.scan_y, survey.scan_zone, heard))
            scans = smooth(
                spread_onto_cells(
                    survey.scan_x, survey.scan_y, survey.scan_zone, np.ones(len(heard))
                )
            )
            p = (seen + prior_weight * rate) / (scans + prior_weight)
            detects.append(np.clip(p, MIN_DETECT, 1.0 - MIN_DETECT).astype(np.float32))
    return RadioMap(
        anchors=tuple(survey.anchors),
        geometry=geometry,
        mean=np.stack(means),
        sigma_db=np.array(sigmas, dtype=np.float32),
        detect=np.stack(detects) if detects else None,
        positions=tuple((by_id[a].x, by_id[a].y) for a in survey.anchors),
        samples=tuple(counts),
        made_at=made_at,
        source=source,
    )


def choose_bandwidth(
    anchors: Sequence[Anchor],
    survey: Survey,
    geometry: GridGeometry,
    zone_cells: Sequence[np.ndarray] = (),
    prior_weight: float = PRIOR_WEIGHT,
) -> float:
    """The width of `BANDWIDTHS_M` whose maps best predict the walk's own RSSI where they did
    not see it: the floor cut in `FOLD_BLOCK_M` blocks dealt into `FOLDS` folds, each fold's
    samples predicted by the map of the others (squared error, each residual capped at 20 dB
    so a deep fade does not choose).  A walk known only by zone keeps the middle width."""
    pointed = survey.zone < 0
    if pointed.sum() < 50:
        return BANDWIDTHS_M[len(BANDWIDTHS_M) // 2]
    block = np.floor(survey.x / FOLD_BLOCK_M) * 7 + np.floor(survey.y / FOLD_BLOCK_M) * 13
    fold = np.where(pointed, block.astype(np.int64) % FOLDS, -1)
    scan_block = np.floor(survey.scan_x / FOLD_BLOCK_M) * 7
    scan_fold = (scan_block + np.floor(survey.scan_y / FOLD_BLOCK_M) * 13).astype(np.int64) % FOLDS
    best, best_error = BANDWIDTHS_M[0], math.inf
    for width in BANDWIDTHS_M:
        error = 0.0
        for k in range(FOLDS):
            held = fold == k
            if not held.any():
                continue
            fitted = fit_radio_map(
                anchors,
                survey.subset(~held, scan_fold != k),
                geometry,
                zone_cells,
                bandwidth_m=width,
                prior_weight=prior_weight,
            )
            cells = geometry.cell_of(survey.x[held], survey.y[held])
            flat = fitted.mean.reshape(len(fitted.anchors), -1)
            guess = flat[survey.anchor[held], cells]
            error += float(np.sum(np.minimum(np.square(survey.rssi[held] - guess), 400.0)))
        if error < best_error:
            best, best_error = width, error
    return best


def _gauss_matrix(centres: np.ndarray, sigma: float) -> np.ndarray:
    """Row i: the Gaussian weights of every cell seen from cell i (not normalised: a sum of
    kernel weights)."""
    diff = centres[:, None] - centres[None, :]
    m: np.ndarray = np.exp(-0.5 * np.square(diff / sigma))
    m[m < 1e-9] = 0.0
    return m
