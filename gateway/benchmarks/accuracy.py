"""Accuracy of locate on recorded data sets, against the systems stores use today.

    rayon bench accuracy [--dataset NAME ...] [--datasets DIR] [--format table|json]

For each data set of ../shared/datasets (or --datasets, or $RAYON_DATASETS) the benchmark
converts the files into anchors, zones, a time-ordered observation stream and ground truth,
fits everything on the training split only (per-anchor path loss, the centroid's power, the
Locator's position method and anchor count per filter), and scores on the test split: zone
accuracy, balanced accuracy, and position error mean / median / p90 in metres.  Methods:
strongest anchor, weighted centroid, Rayon with each RSSI filter, and Rayon's defaults.
A missing data set folder is reported and skipped.  Protocol: docs/accuracy.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict
from typing import TextIO

from gateway.accuracy.catalog import LOADERS
from gateway.accuracy.datasets import Dataset, datasets_root
from gateway.accuracy.evaluate import Row, evaluate
from gateway.errors import InvalidInput
from gateway.locate import FilterKind

HEADER = (
    f"{'data set':<11} {'method':<18} {'chosen on training':<31} {'train':>6} {'test n':>6} "
    f"{'zone':>6} {'bal.':>6} {'mean m':>6} {'med m':>6} {'p90 m':>6}"
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


def bench_accuracy(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Run the benchmark and print one table (or JSON); 0 when at least one set ran, else 1."""
    write = (out or sys.stdout).write
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
        rows.extend(evaluate(dataset, list(FilterKind)))
    seconds = time.perf_counter() - started
    if args.format == "json":
        write(json.dumps(_json(rows, splits, skipped, seconds), indent=2) + "\n")
    else:
        write(_table(rows, splits, skipped, seconds))
    return 0 if rows else 1


def _split(dataset: Dataset) -> dict[str, object]:
    return {
        "mode": dataset.mode,
        "anchors": len(dataset.anchors),
        "zones": len(dataset.zones),
        "train_instants": dataset.train.instants(),
        "test_instants": dataset.test.instants(),
        "split": dataset.split,
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
            f"{r.dataset:<11} {r.method:<18} {r.chosen:<31} {r.train_zone_accuracy:>6.1%} "
            f"{s.instants:>6} {s.zone_accuracy:>6.1%} {s.balanced_accuracy:>6.1%} "
            f"{s.error_mean:>6.2f} {s.error_median:>6.2f} {s.error_p90:>6.2f}"
        )
    lines.append("")
    for name, split in splits.items():
        lines.append(
            f"{name}: mode {split['mode']}, {split['anchors']} anchors, {split['zones']} zones, "
            f"{split['train_instants']} train / {split['test_instants']} test instants; "
            f"{split['split']}"
        )
    lines.extend(f"{name}: skipped: {why}" for name, why in skipped.items())
    lines.append(f"({seconds:.1f} s; train = zone accuracy on the training split)")
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
