"""The "rayon + calibration walk" row of `rayon bench accuracy`: a radio map learned from a data
set's calibration part only (what `rayon calibrate WALK --truth T --map-out F` does in a store),
then the Locator as shipped with `locate.radio_map` set.

The calibration part's every observation, at its true position (interpolated in its truth,
`survey.survey`), is a sample of the map; in a scan set (mode B) each scan, the set of anchors
it heard, is a scan for the detection rates.  The path loss of each anchor is fitted first on
the same part
(`fit.fit_path_loss`), as the prior the map corrects.  The grid covers the anchors, the
calibration points and the zones.  A mode B test stream is fed scan by scan
(`Locator.observe_scan`: the observations that share a time), a mode A one packet by packet.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from gateway.config.model import Anchor
from gateway.locate.grid import GridSettings, grid_geometry
from gateway.locate.locator import Locator
from gateway.locate.radiomap import PRIOR_WEIGHT, RadioMap, Survey, fit_radio_map
from rayon_tooling.accuracy.baselines import Point
from rayon_tooling.accuracy.datasets import Dataset, Part, Stream
from rayon_tooling.accuracy.fit import fit_path_loss
from rayon_tooling.accuracy.survey import survey


def radio_survey(part: Part, anchors: Sequence[Anchor], scans: bool) -> Survey:
    """`part` (`survey.survey`'s arrays) as the radio map's `Survey`: every observation at its
    true position; with `scans`, each scan's anchors heard."""
    got = survey(part, [a.id for a in anchors], scans)
    rows = got.scans
    none = np.zeros(0)
    return Survey(
        anchors=got.anchors,
        anchor=got.anchor,
        rssi=got.rssi,
        x=got.x,
        y=got.y,
        zone=np.full(len(got.rssi), -1, dtype=np.int64),
        scan_x=rows.x if rows is not None else none,
        scan_y=rows.y if rows is not None else none,
        scan_zone=np.full(len(rows.x) if rows is not None else 0, -1, dtype=np.int64),
        scan_heard=rows.heard if rows is not None else np.zeros((0, len(got.anchors)), dtype=bool),
    )


def learn(
    dataset: Dataset,
    calibration: Part,
    bandwidth_m: float | None = None,
    prior_weight: float = PRIOR_WEIGHT,
) -> tuple[tuple[Anchor, ...], RadioMap, GridSettings]:
    """The anchors' path loss and the radio map fitted on `calibration`, and the grid's
    settings (the data set's walls)."""
    anchors = fit_path_loss(dataset.anchors, calibration)
    scans = dataset.mode == "B"
    walk = radio_survey(calibration, anchors, scans)
    settings = GridSettings(walls=dataset.walls)
    cover = list(zip(walk.x.tolist(), walk.y.tolist(), strict=True))
    cover += [corner for z in dataset.zones for corner in z.outline]
    geometry = grid_geometry(anchors, settings, cover)
    radio_map = fit_radio_map(
        anchors,
        walk,
        geometry,
        bandwidth_m=bandwidth_m,
        prior_weight=prior_weight,
        source=f"{dataset.name} calibration",
    )
    return anchors, radio_map, settings


def estimator(
    dataset: Dataset,
    calibration: Part,
    bandwidth_m: float | None = None,
    prior_weight: float = PRIOR_WEIGHT,
) -> tuple[str, Callable[[Stream], list[Point]]]:
    """(what was learned, the estimator) for the row; `bandwidth_m` None: the walk chooses."""
    anchors, radio_map, settings = learn(dataset, calibration, bandwidth_m, prior_weight)
    scans = dataset.mode == "B"

    def estimate(stream: Stream) -> list[Point]:
        locator = Locator(anchors, grid=settings, radio_map=radio_map, zones=dataset.zones)
        obs, i = stream.observations, 0
        last: Point = (
            float(np.mean([a.x for a in anchors])),
            float(np.mean([a.y for a in anchors])),
        )
        out: list[Point] = []
        for truth in stream.truth:
            fix = None
            while i < len(obs) and obs[i].at <= truth.at:
                if scans:
                    j = i
                    while j < len(obs) and obs[j].at == obs[i].at:
                        j += 1
                    links = [(o.anchor, o.rssi) for o in obs[i:j]]
                    fix = locator.observe_scan(obs[i].at, stream.device, links)
                    i = j
                else:
                    locator.observe(obs[i])
                    i += 1
            if not scans:
                fix = locator.locate(stream.device, truth.at)
            if fix is not None:
                last = (fix.x, fix.y)
            out.append(last)
        return out

    cells = radio_map.geometry.nx * radio_map.geometry.ny
    learned = f"map of {calibration.instants()} cal. instants, {cells} cells"
    return learned, estimate
