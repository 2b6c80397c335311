"""`rayon replay`: a trace through the same pipeline as the daemon, as fast as the CPU allows.

Time is the trace's own: ticks (exits, dwell thresholds, visit ends) happen on the trace clock, and
when the trace ends, time runs on until every visit has ended, so that every enter has its exit.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import IO, Any

from gateway.config.model import Config
from gateway.events import Fix, TraceItem
from gateway.pipeline import Output, Pipeline
from gateway.sources.trace import TraceError
from gateway.zones.index import ZoneIndex

log = logging.getLogger(__name__)

TICK_S = 1.0


@dataclass(slots=True)
class ReplayStats:
    inputs: int = 0
    adverts: int = 0
    bad_lines: int = 0
    fixes: int = 0
    events: int = 0
    offers: int = 0
    holdout: int = 0
    first_at: float | None = None
    last_at: float | None = None
    seconds: float = 0.0
    offers_by_rule: dict[str, int] = field(default_factory=dict)

    @property
    def adverts_per_s(self) -> float:
        return self.adverts / self.seconds if self.seconds > 0 else 0.0


def flush_horizon(config: Config) -> float:
    """How long after the last input every visit and zone stay has surely ended."""
    exits = max((z.exit_after for z in config.zones), default=0.0)
    return config.visits.timeout + exits + 2 * TICK_S


def replay(
    pipeline: Pipeline,
    items: Iterable[TraceItem | TraceError],
    sink: Callable[[Output], None],
    *,
    flush: bool = True,
) -> ReplayStats:
    """Feed every item, tick on the trace clock, hand each non-empty Output to `sink`."""
    stats = ReplayStats()
    started = time.perf_counter()
    next_tick: float | None = None
    feed, inputs, at = pipeline.feed, 0, None
    for item in items:
        if isinstance(item, TraceError):
            stats.bad_lines += 1
            log.warning("%s", item)
            continue
        at = item.at
        if next_tick is None:
            next_tick, stats.first_at = at + TICK_S, at
        while at >= next_tick:
            _emit(pipeline.tick(next_tick), sink, stats)
            next_tick += TICK_S
        inputs += 1
        out = feed(item)
        if out:  # most adverts decide nothing: no call
            _emit(out, sink, stats)
    stats.inputs += inputs
    stats.last_at = at
    if flush and next_tick is not None:
        end = next_tick + flush_horizon(pipeline.config)
        while next_tick <= end:
            _emit(pipeline.tick(next_tick), sink, stats)
            next_tick += TICK_S
    stats.adverts = pipeline.counters["adverts"]
    stats.seconds = time.perf_counter() - started
    return stats


def _emit(out: Output, sink: Callable[[Output], None], stats: ReplayStats) -> None:
    if not out:
        return
    stats.fixes += len(out.fixes)
    stats.events += len(out.events)
    for offer in out.offers:
        if offer.holdout:
            stats.holdout += 1
        else:
            stats.offers += 1
            stats.offers_by_rule[offer.rule] = stats.offers_by_rule.get(offer.rule, 0) + 1
    sink(out)


def fix_record(fix: Fix, zones: ZoneIndex) -> dict[str, Any]:
    """A fix as `--fixes-out` writes it; `zones` are those whose polygon holds the point
    (raw geometry, before hysteresis); with a belief (`locate.radio_map`), also the belief's
    probability of each zone that holds enough of it (`zone_probability`)."""
    record: dict[str, Any] = {
        "at": fix.at,
        "device": fix.device,
        "x": round(fix.x, 3),
        "y": round(fix.y, 3),
        "accuracy_m": round(fix.accuracy_m, 3),
        "anchors": list(fix.anchors),
        "zones": list(zones.containing(fix.x, fix.y)),
    }
    if fix.zone_probability is not None:
        record["zone_probability"] = dict(fix.zone_probability)
    return record


def write_jsonl(out: IO[str], record: dict[str, Any]) -> None:
    out.write(json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n")
