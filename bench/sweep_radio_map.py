"""How the radio map's settings were chosen (docs/accuracy.md, "The radio map"): on the
training parts only.

    .venv/bin/python bench/sweep_radio_map.py [--temper 0.3,0.5,1] [--speed 0.7,1,1.5]
        [--kernel 1,1.5,2.5] [--prior 3] [--jump 0.02]

Each data set's training part is cut in two (its streams alternately; a single stream at the
middle of its truth), a radio map is learned on one half (`walk.learn`, the kernel width given)
and the Locator with it scored on the other, both ways.  Prints one JSON line per setting: the
mean zone accuracy over the sets and each set's (zone accuracy, mean error m).  The test parts
are never read.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics

import gateway.locate.locator as locator_module
from rayon_tooling.accuracy import walk
from rayon_tooling.accuracy.catalog import LOADERS
from rayon_tooling.accuracy.datasets import Dataset, Part, Stream, ZoneMap, datasets_root
from rayon_tooling.accuracy.evaluate import run


def halves(part: Part) -> tuple[Part, Part]:
    """Two halves of a training part that share no stream (or no stretch of one)."""
    streams = part.streams
    if len(streams) > 1:
        return Part(streams[::2]), Part(streams[1::2])
    only = streams[0]
    middle = only.truth[len(only.truth) // 2].at

    def cut(lo: float, hi: float) -> Stream:
        return Stream(
            only.device,
            only.unit,
            tuple(o for o in only.observations if lo <= o.at < hi),
            tuple(t for t in only.truth if lo <= t.at < hi),
        )

    return Part((cut(-1e18, middle),)), Part((cut(middle, 1e18),))


def score(dataset: Dataset, kernel: float, prior: float) -> tuple[float, float]:
    """Zone accuracy and mean error, each half scored with the other's map (mean of both)."""
    zmap = ZoneMap(dataset.zones)
    a, b = halves(dataset.train)
    got = [
        run(test, walk.estimator(dataset, fit, kernel, prior)[1], zmap)
        for fit, test in ((a, b), (b, a))
    ]
    return (
        statistics.mean(s.zone_accuracy for s in got),
        statistics.mean(s.error_mean for s in got),
    )


def numbers(text: str) -> list[float]:
    return [float(v) for v in text.split(",") if v.strip()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--temper", default="0.3,0.5,1")
    parser.add_argument("--speed", default="0.7,1,1.5")
    parser.add_argument("--kernel", default="1,1.5,2.5")
    parser.add_argument("--prior", default="3")
    parser.add_argument("--jump", default="0.02")
    args = parser.parse_args()
    sets = {name: load(datasets_root()) for name, load in LOADERS.items()}
    for temper, speed, kernel, prior, jump in itertools.product(
        numbers(args.temper),
        numbers(args.speed),
        numbers(args.kernel),
        numbers(args.prior),
        numbers(args.jump),
    ):
        locator_module.MAP_TEMPER, locator_module.MAP_SPEED = temper, speed
        locator_module.MAP_JUMP = jump
        got = {name: score(dataset, kernel, prior) for name, dataset in sets.items()}
        setting = {"temper": temper, "speed": speed, "kernel": kernel, "prior": prior, "jump": jump}
        line = {
            "setting": setting,
            "mean": round(statistics.mean(z for z, _ in got.values()), 4),
            **{name: [round(z, 3), round(e, 2)] for name, (z, e) in got.items()},
        }
        print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
