"""What stores use today, computed on the same streams: strongest anchor, weighted centroid.

Both look only at the raw samples of the evaluation instant (`Dataset.window_s`: one scan,
one row, or the last second of packets), averaged per anchor — no filtering over time, as a
"nearest scanner" or a plain centroid does.  The centroid weighs every anchor heard by
1/d^k, d from the fitted path-loss model, k chosen on training data.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from gateway.config.model import Anchor
from gateway.locate.locator import rssi_to_distance, weighted_centroid
from rayon_tooling.accuracy.datasets import Stream

Point = tuple[float, float]


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
