"""`rayon calibrate` the command: the options, the samples read, the fit (`gateway.offline.
calibrate`) and with `--map-out` the radio map (`gateway.offline.mapwalk`), the YAML printed."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TextIO

from gateway.config.commandline import config_of
from gateway.config.model import AnchorKind, Config
from gateway.errors import InvalidInput
from gateway.offline.calibrate import (
    POOLED,
    Criteria,
    Samples,
    beacon_samples,
    fit_anchors,
    format_yaml,
    walk_samples,
)
from gateway.offline.mapwalk import MapOptions, learn_map, missing_zones
from gateway.offline.survey import read_walk
from gateway.offline.truth import Truth
from gateway.sources.trace import read_trace


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `rayon calibrate` (the caller adds -c/--config)."""
    c = Criteria()
    parser.add_argument("trace", help="trace file (JSON Lines, docs/trace.md)")
    parser.add_argument(
        "--truth", help="ground truth of a walk (JSON Lines); without it, fixed store beacons"
    )
    parser.add_argument(
        "--customers", help="with --truth: customers file mapping phone tokens to devices"
    )
    parser.add_argument("--height", type=float, default=c.height_m, help="vertical offset, m")
    parser.add_argument("--min-samples", type=int, default=c.min_samples)
    parser.add_argument("--min-spread", type=float, default=c.min_spread, help="d_max / d_min")
    parser.add_argument("--max-distance", type=float, default=c.max_distance_m, help="metres")
    m = MapOptions(Path())
    parser.add_argument(
        "--map-out",
        metavar="FILE",
        help="with --truth: also learn the radio map (locate.radio_map) from the walk, write it "
        "to FILE (JSON) and print its accuracy on held-back segments (docs/calibration.md)",
    )
    parser.add_argument(
        "--min-zone-samples",
        type=int,
        default=m.min_zone_samples,
        help="with --map-out: a zone with fewer samples (and fewer scans) is named as thin",
    )
    parser.add_argument("--min-zone-scans", type=int, default=m.min_zone_scans)


def run(args: argparse.Namespace) -> int:
    """`rayon calibrate` with the config that -c names."""
    return run_calibrate(config_of(args), args)


def run_calibrate(config: Config, args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Collect the samples, fit, print the YAML; 0 when at least one anchor was fitted."""
    criteria = Criteria(args.min_samples, args.min_spread, args.max_distance, args.height)
    if criteria.min_samples < 2 or criteria.min_spread <= 1.0 or criteria.max_distance_m <= 0:
        raise InvalidInput("--min-samples must be ≥ 2, --min-spread > 1 and --max-distance > 0")
    trace = Path(args.trace)
    if not trace.is_file():
        raise InvalidInput(f"{trace}: no such trace file")
    if args.map_out and not args.truth:
        raise InvalidInput("--map-out learns the radio map from a walk: give its --truth TRUTH")
    if args.truth:
        truth = Truth.read(Path(args.truth), [z.id for z in config.zones])
        aliases = _token_devices(Path(args.customers)) if args.customers else None
        if args.map_out:
            samples = _learn_map(config, args, truth, aliases, criteria)
        else:
            samples = walk_samples(config, read_trace(trace), truth, criteria.height_m, aliases)
        anchors = list(config.anchors)
        source = f"a walk, {trace} with the truth {args.truth}"
    else:
        samples = beacon_samples(config, read_trace(trace), criteria.height_m)
        anchors = [a for a in config.anchors if a.kind is AnchorKind.SCANNER]
        source = f"fixed store beacons heard in {trace}"
    if args.map_out and not samples.by_anchor:
        print(
            "rayon: the truth gives no position (zone lines only): the anchors' path loss in "
            "the map is the config's, and there is no anchors YAML to print",
            file=sys.stderr,
        )
        return 0
    if not samples.by_anchor:
        raise InvalidInput(f"{trace}: {_nothing_heard(bool(args.truth))}")
    fits, short = fit_anchors(anchors, samples, criteria)
    if samples.bad_lines:
        print(f"rayon: {trace}: {samples.bad_lines} bad line(s) skipped", file=sys.stderr)
    pooled = [f for f in fits if f.pooled]
    if pooled:
        print(f"rayon: {POOLED}:", file=sys.stderr)
    for f in pooled:
        print(f"rayon:   {f.anchor.id}: {f.pooled}", file=sys.stderr)
    for s in short:
        print(f"rayon: not fitted: {s}", file=sys.stderr)
    if not fits and args.map_out:
        print("rayon: no anchor's path loss fitted: the map keeps the config's", file=sys.stderr)
        return 0
    if not fits:
        raise InvalidInput(f"{trace}: no anchor could be fitted (see above)")
    (out or sys.stdout).write(format_yaml(fits, short, source))
    return 0


def _learn_map(
    config: Config,
    args: argparse.Namespace,
    truth: Truth,
    aliases: Mapping[str, str] | None,
    criteria: Criteria,
) -> Samples:
    """(c): the walk read once, the map learned, scored and written; its distance samples."""
    if args.min_zone_samples < 0 or args.min_zone_scans < 0:
        raise InvalidInput("--min-zone-samples and --min-zone-scans must be ≥ 0")
    missing = missing_zones(config.zones, truth)
    if missing:
        raise InvalidInput(
            f"{args.truth}: the walk never enters {len(missing)} zone(s): {', '.join(missing)}; "
            "walk through each (a tag or phone carried inside it, or a zone line naming it) "
            "and record again"
        )
    trace = Path(args.trace)
    walk = read_walk(config, read_trace(trace), truth, aliases)
    if not walk.known().any():
        raise InvalidInput(f"{trace}: {_nothing_heard(True)}")
    options = MapOptions(Path(args.map_out), args.min_zone_samples, args.min_zone_scans)
    source = f"{trace.name} with the truth {Path(args.truth).name}"
    samples = learn_map(config, walk, truth, criteria, options, source)
    samples.bad_lines = walk.bad_lines
    return samples


def _nothing_heard(walk: bool) -> str:
    if walk:
        return (
            "no advert or sighting of a device of the truth file (at a time its truth covers): "
            "check that the trace and the truth are of the same walk, and that the device ids "
            "match (phones' sightings need --customers)"
        )
    return (
        "no store beacon (anchor of kind beacon) was heard by a scanner anchor: record while "
        "the store beacons advertise, or calibrate from a walk with --truth TRUTH"
    )


def _token_devices(path: Path) -> dict[str, str]:
    from gateway.identity.customers import read_customers

    customers, errors = read_customers(path)
    if errors:
        raise InvalidInput("\n".join(errors))
    return {c.phone: c.devices[0] for c in customers if c.devices}
