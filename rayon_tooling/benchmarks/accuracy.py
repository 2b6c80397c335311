"""Accuracy of locate on recorded data sets, against the systems stores use today.

    rayon bench accuracy [--dataset NAME ...] [--datasets DIR] [--format table|json]

For each data set of ../shared/datasets (or --datasets, or $RAYON_DATASETS) the benchmark
converts the files into anchors, zones, a time-ordered observation stream and ground truth,
fits everything on the training split only (per-anchor path loss and RSSI spread, the
centroid's power, the Locator's position method, its settings and link freshness per
filter), and scores on the test split: zone
accuracy, balanced accuracy, the EvAAL area score (share of time in the right zone), and
position error mean / median / p90 in metres.  Methods: strongest anchor, weighted centroid,
Rayon with each RSSI filter, Rayon's defaults, and a kNN fingerprint match trained on the
set's calibration part (scored on the part the calibration rows use).
A missing data set folder is reported and skipped.  Protocol: docs/accuracy.md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict
from typing import TextIO

from gateway.config.model import Config, FilterKind
from gateway.errors import InvalidInput, UsageError
from rayon_tooling.accuracy.catalog import LOADERS
from rayon_tooling.accuracy.datasets import Dataset, datasets_root
from rayon_tooling.accuracy.evaluate import Row, evaluate
from rayon_tooling.accuracy.simulated import (
    SimulatedScore,
    format_simulated,
    score_simulated,
    score_simulated_walk,
)

HEADER = (
    f"{'data set':<11} {'method':<24} {'chosen on training':<43} {'train':>6} {'test n':>6} "
    f"{'zone':>6} {'bal.':>6} {'area':>6} {'mean m':>6} {'med m':>6} {'p90 m':>6}"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `rayon bench accuracy`."""
    parser.add_argument(
        "--dataset",
        action="append",
        choices=sorted(LOADERS),
        help="a data set to run (repeatable; default: all)",
    )
    parser.add_argument("--datasets", help="folder of the data sets (default ../shared/datasets)")
    parser.add_argument("--format", choices=("table", "json"), default="table")
    parser.add_argument(
        "--simulator",
        action="store_true",
        help="also score the simulated store of the config (-c): shoppers' dwell time in the "
        "correct zone, false enters per device-hour, enter latency",
    )
    parser.add_argument(
        "--seeds", default="1,2,3", help="simulator seeds, comma-separated (default 1,2,3)"
    )
    parser.add_argument(
        "--no-walls",
        action="store_true",
        help="let the grid's motion cross the data sets' walls (kolakowski's layout)",
    )


def bench_accuracy(
    args: argparse.Namespace, out: TextIO | None = None, config: Config | None = None
) -> int:
    """Run the benchmark and print one table (or JSON); 0 when at least one set ran, else 1.
    With `--simulator`, `config`'s store is also simulated and scored, once per seed."""
    write = (out or sys.stdout).write
    simulated = _simulate(config, args.seeds) if args.simulator and config is not None else []
    root = datasets_root(args.datasets)
    names: Sequence[str] = args.dataset or list(LOADERS)
    started = time.perf_counter()
    rows: list[Row] = []
    splits: dict[str, dict[str, object]] = {}
    skipped: dict[str, str] = {}
    for name in names:
        try:
            dataset = LOADERS[name](root)
        except InvalidInput as exc:
            skipped[name] = str(exc)
            continue
        splits[name] = _split(dataset)
        rows.extend(evaluate(dataset, list(FilterKind), use_walls=not args.no_walls))
    seconds = time.perf_counter() - started
    if args.format == "json":
        report = _json(rows, splits, skipped, seconds)
        report["simulator"] = [asdict(score) for score in simulated]
        write(json.dumps(report, indent=2) + "\n")
    else:
        write(_table(rows, splits, skipped, seconds))
        if simulated:
            write("\n" + _simulated_table(simulated))
    return 0 if rows or simulated else 1


def _simulate(config: Config, seeds: str) -> list[SimulatedScore]:
    try:
        numbers = [int(s) for s in seeds.split(",") if s.strip()]
    except ValueError:
        raise UsageError(f"--seeds {seeds!r}: write whole numbers separated by commas") from None
    scores = [score_simulated(config, 50, 30.0, seed) for seed in numbers]
    if config.locate.radio_map is None:  # and with a map walked in each seed's store
        scores += [score_simulated_walk(config, 50, 30.0, seed) for seed in numbers]
    return scores


def _simulated_table(scores: Sequence[SimulatedScore]) -> str:
    """Each seed's figures, then the median over the seeds, per kind of run (the config's
    defaults; with a calibration walk)."""
    parts = [format_simulated(score) for score in scores]
    for label in dict.fromkeys(s.label for s in scores):
        runs = [s for s in scores if s.label == label]
        dwell = statistics.median(s.score.dwell_correct for s in runs)
        false = statistics.median(s.score.false_enters_per_device_hour for s in runs)
        latencies = [s.score.latency_median_s for s in runs if s.score.latency_median_s is not None]
        latency = f"{statistics.median(latencies):.1f} s" if latencies else "n/a"
        parts.append(
            f"simulator ({label}), median of {len(runs)} seeds: dwell time in the correct zone "
            f"{dwell:.1%} (target ≥ 95 %), false enters {false:.2f} per device-hour (≤ 0.5), "
            f"enter latency median {latency} (≤ 5 s)"
        )
    return "\n".join(parts) + "\n"


def _split(dataset: Dataset) -> dict[str, object]:
    return {
        "mode": dataset.mode,
        "anchors": len(dataset.anchors),
        "zones": len(dataset.zones),
        "train_instants": dataset.train.instants(),
        "test_instants": dataset.test.instants(),
        "split": dataset.split,
        "calibration_instants": dataset.calibration.instants(),
        "calibration_test_instants": dataset.calibration_test.instants(),
        "calibration_split": dataset.calibration_split,
    }


def _table(
    rows: Sequence[Row],
    splits: dict[str, dict[str, object]],
    skipped: dict[str, str],
    seconds: float,
) -> str:
    lines = [HEADER, "-" * len(HEADER)]
    for r in rows:
        s = r.test
        lines.append(
            f"{r.dataset:<11} {r.method:<24} {r.chosen:<43} {r.train_zone_accuracy:>6.1%} "
            f"{s.instants:>6} {s.zone_accuracy:>6.1%} {s.balanced_accuracy:>6.1%} "
            f"{s.area:>6.1%} {s.error_mean:>6.2f} {s.error_median:>6.2f} {s.error_p90:>6.2f}"
        )
    lines.append("")
    for name, split in splits.items():
        lines.append(
            f"{name}: mode {split['mode']}, {split['anchors']} anchors, {split['zones']} zones, "
            f"{split['train_instants']} train / {split['test_instants']} test instants; "
            f"{split['split']}"
        )
        lines.append(
            f"{name}: calibration {split['calibration_instants']} / "
            f"{split['calibration_test_instants']} test instants; {split['calibration_split']}"
        )
    lines.extend(f"{name}: skipped: {why}" for name, why in skipped.items())
    lines.append(
        f"({seconds:.1f} s; train = zone accuracy on the training split, for kNN on the "
        "calibration part; area = share of time in the right zone, EvAAL)"
    )
    return "\n".join(lines) + "\n"


def _json(
    rows: Sequence[Row],
    splits: dict[str, dict[str, object]],
    skipped: dict[str, str],
    seconds: float,
) -> dict[str, object]:
    return {
        "rows": [asdict(r) for r in rows],
        "datasets": splits,
        "skipped": skipped,
        "seconds": round(seconds, 2),
    }
