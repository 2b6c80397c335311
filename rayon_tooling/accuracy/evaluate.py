"""Metrics and the protocol of the accuracy benchmark (docs/accuracy.md).

For each data set: fit per-anchor path loss and the RSSI spread σ on the training part;
choose, on the training part only, the centroid's power k and, for each RSSI filter, the
Locator's position method (centroid with k and anchor count, least squares, or the grid
with σ scaled and mean or MAP) and link freshness (best training zone accuracy); then score
every method on the test part: zone accuracy (share of instants whose estimated zone is the
true one), balanced accuracy (mean per-zone recall over the zones that occur), the area
score (share of time the estimated zone is the true one, as in the EvAAL competition), and
position error mean, median and p90.  The kNN fingerprint baseline is trained on the set's
calibration part and scored on its `calibration_test` part.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from gateway.config.model import Anchor, FilterKind, LocateConfig, PositionMethod
from gateway.locate.grid import GridSettings, Walls
from gateway.locate.locator import CENTROID_POWER, Locator
from rayon_tooling.accuracy import walk
from rayon_tooling.accuracy.baselines import (
    KNN_K,
    Point,
    centroid,
    fingerprints,
    knn,
    strongest_anchor,
    window_means,
)
from rayon_tooling.accuracy.datasets import Dataset, Part, Stream, ZoneMap
from rayon_tooling.accuracy.fit import fit_path_loss, fit_sigma

CENTROID_POWERS = (1.0, 2.0, 3.0, 4.0)
MAX_ANCHORS = (3, 4, 6)
FRESH_S = (1.5, 4.0)  # below the scan sets' 2 s: only the current scan; 4 s: the default
SIGMA_SCALES = (0.7, 1.0, 1.5)  # × the fitted σ: fixes in a row share their filtered RSSIs


@dataclass(frozen=True, slots=True)
class Scores:
    """How one method did on one part of one data set.  `area`: the EvAAL area score, the
    share of time (not of instants) the estimated zone is the true one (`time_weights`)."""

    instants: int
    zone_accuracy: float
    balanced_accuracy: float
    area: float
    error_mean: float
    error_median: float
    error_p90: float


@dataclass(frozen=True, slots=True)
class Row:
    """One line of the benchmark table: a method, what was chosen for it, its test scores."""

    dataset: str
    method: str
    chosen: str
    train_zone_accuracy: float
    test: Scores


@dataclass(frozen=True, slots=True)
class RayonSetup:
    """The Locator settings one Rayon row runs with."""

    rssi_filter: FilterKind
    method: PositionMethod = PositionMethod.CENTROID
    max_anchors: int = 4
    power: float = CENTROID_POWER
    fresh_s: float = 4.0
    grid: GridSettings = field(default_factory=GridSettings)

    def describe(self) -> str:
        """Short form for the table."""
        fresh = f"fresh {self.fresh_s:g} s"
        if self.method is PositionMethod.AUTO:
            return f"auto, grid σ {self.grid.sigma_db:.1f} dB, {fresh}"
        if self.method is PositionMethod.GRID:
            estimate = "MAP" if self.grid.use_map else "mean"
            walls = ", walls" if self.grid.walls else ""
            return f"grid σ {self.grid.sigma_db:.1f} dB, {estimate}{walls}, {fresh}"
        if self.method is PositionMethod.CENTROID:
            return f"centroid 1/d^{self.power:g}, {self.max_anchors} anch., {fresh}"
        return f"least squares, {self.max_anchors} anch., {fresh}"


Estimator = Callable[[Stream], list[Point]]


def balanced_accuracy(true: Sequence[str], predicted: Sequence[str]) -> float:
    """Mean over the true zones of the share of their instants predicted right."""
    hits: dict[str, list[bool]] = defaultdict(list)
    for t, p in zip(true, predicted, strict=True):
        hits[t].append(t == p)
    if not hits:
        return float("nan")
    return float(np.mean([np.mean(h) for h in hits.values()]))


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0–100) with linear interpolation between order statistics."""
    return float(np.percentile(np.asarray(values, dtype=float), q)) if values else float("nan")


def time_weights(part: Part) -> list[np.ndarray]:
    """Per stream, the time each truth instant stands for: until the stream's next instant,
    the last one the median step of its stream (of the part for a one-instant stream, else
    1 s)."""
    steps = [np.diff([t.at for t in s.truth]) for s in part.streams]
    every = np.concatenate(steps) if steps else np.zeros(0)
    fallback = float(np.median(every)) if len(every) else 1.0
    weights = []
    for stream, d in zip(part.streams, steps, strict=True):
        last = float(np.median(d)) if len(d) else fallback
        weights.append(np.append(d, last) if stream.truth else d)
    return weights


def score(part: Part, estimates: Sequence[Sequence[Point]], zmap: ZoneMap) -> Scores:
    """Score per-stream estimates (one point per truth instant) against the part's truth."""
    true_zones: list[str] = []
    predicted: list[str] = []
    errors: list[float] = []
    for stream, points in zip(part.streams, estimates, strict=True):
        for truth, (x, y) in zip(stream.truth, points, strict=True):
            true_zones.append(truth.zone)
            predicted.append(zmap.zone_of(x, y))
            errors.append(float(np.hypot(x - truth.x, y - truth.y)))
    hits = [t == p for t, p in zip(true_zones, predicted, strict=True)]
    weights = np.concatenate(time_weights(part)) if part.streams else np.zeros(0)
    return Scores(
        instants=len(hits),
        zone_accuracy=float(np.mean(hits)) if hits else float("nan"),
        balanced_accuracy=balanced_accuracy(true_zones, predicted),
        area=float(np.dot(weights, hits) / np.sum(weights))
        if np.sum(weights) > 0
        else float("nan"),
        error_mean=float(np.mean(errors)) if errors else float("nan"),
        error_median=percentile(errors, 50),
        error_p90=percentile(errors, 90),
    )


def run(part: Part, estimator: Estimator, zmap: ZoneMap) -> Scores:
    """Score `estimator` on every stream of `part`."""
    return score(part, [estimator(s) for s in part.streams], zmap)


def rayon(anchors: Sequence[Anchor], setup: RayonSetup) -> Estimator:
    """The Locator, fed a stream in time order and asked for a fix at each truth instant."""

    def estimate(stream: Stream) -> list[Point]:
        locator = Locator(
            anchors,
            method=setup.method,
            max_anchors=setup.max_anchors,
            rssi_filter=setup.rssi_filter,
            centroid_power=setup.power,
            fresh_s=setup.fresh_s,
            grid=setup.grid,
        )
        obs, i, last = stream.observations, 0, _centre(anchors)
        out: list[Point] = []
        for truth in stream.truth:
            while i < len(obs) and obs[i].at <= truth.at:
                locator.observe(obs[i])
                i += 1
            fix = locator.locate(stream.device, truth.at)
            if fix is not None:
                last = (fix.x, fix.y)
            out.append(last)
        return out

    return estimate


def baselines(dataset: Dataset, anchors: Sequence[Anchor], power: float) -> dict[str, Estimator]:
    """The two baselines as estimators (`power`: the centroid's k)."""
    table = {a.id: a for a in anchors}
    start = _centre(anchors)

    def strongest(stream: Stream) -> list[Point]:
        return strongest_anchor(window_means(stream, dataset.window_s), table, start)

    def weighted(stream: Stream) -> list[Point]:
        return centroid(window_means(stream, dataset.window_s), table, start, power)

    return {"strongest anchor": strongest, "weighted centroid": weighted}


def knn_fingerprint(dataset: Dataset, k: int = KNN_K) -> Estimator:
    """The kNN fingerprint baseline, its references from `dataset.calibration`."""
    refs = fingerprints(dataset.calibration, [a.id for a in dataset.anchors], dataset.window_s)
    start = _centre(dataset.anchors)

    def estimate(stream: Stream) -> list[Point]:
        return knn(window_means(stream, dataset.window_s), refs, start, k)

    return estimate


def evaluate(dataset: Dataset, filters: Sequence[FilterKind], use_walls: bool = True) -> list[Row]:
    """Every method on `dataset`: choices made on the training part, scores on the test.
    `use_walls`: the grid's motion stops at the data set's walls (if it has any)."""
    zmap = ZoneMap(dataset.zones)
    anchors = fit_path_loss(dataset.anchors, dataset.train)
    sigma = fit_sigma(anchors, dataset.train)
    rows = _baseline_rows(dataset, anchors, zmap)
    for kind in filters:
        setups = candidates(kind, sigma, dataset.walls if use_walls else ())
        train = {s: run(dataset.train, rayon(anchors, s), zmap).zone_accuracy for s in setups}
        best = max(setups, key=lambda s: train[s])
        test = run(dataset.test, rayon(anchors, best), zmap)
        rows.append(Row(dataset.name, f"rayon {kind.value}", best.describe(), train[best], test))
    # the Locator as shipped, and `locate.method: centroid` (earlier versions' method, but a
    # device heard by two anchors placed between them): only the path loss is fitted
    shipped = LocateConfig()
    for label, method in (
        ("rayon default", shipped.method),
        ("rayon centroid", PositionMethod.CENTROID),
    ):
        setup = RayonSetup(
            shipped.filter, method, power=shipped.centroid_power, fresh_s=shipped.fresh_s
        )
        rows.append(
            Row(
                dataset.name,
                label,
                f"{shipped.filter.value}, {setup.describe()}",
                run(dataset.train, rayon(anchors, setup), zmap).zone_accuracy,
                run(dataset.test, rayon(anchors, setup), zmap),
            )
        )
    rows.append(_knn_row(dataset, zmap))
    rows.append(_walk_row(dataset, zmap))
    return rows


def _walk_row(dataset: Dataset, zmap: ZoneMap) -> Row:
    """The shipped Locator with a radio map learned from the calibration part only
    (`walk.estimator`), scored beside kNN5; `train` is on the calibration part."""
    learned, estimator = walk.estimator(dataset, dataset.calibration)
    return Row(
        dataset.name,
        "rayon + calibration walk",
        learned,
        run(dataset.calibration, estimator, zmap).zone_accuracy,
        run(dataset.calibration_test, estimator, zmap),
    )


def _knn_row(dataset: Dataset, zmap: ZoneMap) -> Row:
    """kNN5 on the calibration part; `train` is on that part, its own references included."""
    estimator = knn_fingerprint(dataset)
    return Row(
        dataset.name,
        f"kNN{KNN_K} fingerprint",
        f"trained on calibration, k {KNN_K}",
        run(dataset.calibration, estimator, zmap).zone_accuracy,
        run(dataset.calibration_test, estimator, zmap),
    )


def candidates(kind: FilterKind, sigma_db: float, walls: Walls = ()) -> list[RayonSetup]:
    """Every Locator setting tried on training for one filter; `sigma_db`: the fitted σ.
    With `walls` (the data set's), every grid setting is tried with and without them."""
    ranged = [
        RayonSetup(kind, PositionMethod.CENTROID, n, k, fresh_s=f)
        for n, k, f in itertools.product(MAX_ANCHORS, CENTROID_POWERS, FRESH_S)
    ] + [
        RayonSetup(kind, PositionMethod.MULTILATERATION, n, fresh_s=f)
        for n, f in itertools.product(MAX_ANCHORS, FRESH_S)
    ]
    grid = [
        RayonSetup(
            kind,
            PositionMethod.GRID,
            fresh_s=f,
            grid=GridSettings(sigma_db=sigma_db * scale, use_map=use_map, walls=w),
        )
        for f, scale, use_map, w in itertools.product(
            FRESH_S, SIGMA_SCALES, (False, True), ((), walls) if walls else ((),)
        )
    ]
    return ranged + grid


def _baseline_rows(dataset: Dataset, anchors: Sequence[Anchor], zmap: ZoneMap) -> list[Row]:
    by_power = {k: baselines(dataset, anchors, k) for k in CENTROID_POWERS}
    train_centroid = {
        k: run(dataset.train, b["weighted centroid"], zmap).zone_accuracy
        for k, b in by_power.items()
    }
    power = max(CENTROID_POWERS, key=lambda k: train_centroid[k])
    chosen = by_power[power]
    strongest = chosen["strongest anchor"]
    return [
        Row(
            dataset.name,
            "strongest anchor",
            f"window {dataset.window_s:g} s",
            run(dataset.train, strongest, zmap).zone_accuracy,
            run(dataset.test, strongest, zmap),
        ),
        Row(
            dataset.name,
            "weighted centroid",
            f"1/d^{power:g}",
            train_centroid[power],
            run(dataset.test, chosen["weighted centroid"], zmap),
        ),
    ]


def _centre(anchors: Sequence[Anchor]) -> Point:
    """Where a device is assumed to be before anything is heard: the anchors' centre."""
    return (
        float(np.mean([a.x for a in anchors])),
        float(np.mean([a.y for a in anchors])),
    )
