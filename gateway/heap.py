"""The garbage collector tuned for the pipeline's allocations: the daemon and `rayon replay`
both run a stream of short-lived objects through long-lived rule sets and zone geometry."""

from __future__ import annotations

import gc

YOUNG_GC_THRESHOLD = 20_000  # allocations between young collections; CPython's default is 700


def tune_gc() -> None:
    """Collect the young generation every `YOUNG_GC_THRESHOLD` allocations instead of 700:
    each advert allocates a few short-lived objects, so the default ran a collection (and
    every 100th a full one) every few dozen adverts, ~9 % of the replay's CPU time (`rayon
    bench replay`; see docs/performance.md).  Cycles still go, a little later."""
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_GC_THRESHOLD, older, oldest)


def settle_heap() -> None:
    """Collect, then move every object alive now (config, rules, zone geometry, modules) out
    of the garbage collector's reach: its full passes over them were the tail of the advert →
    PUBACK latency (p99 45 → 19 ms with p50 unchanged, `rayon bench latency --customers 200`
    on an idle 2-core machine).  Called once started and after each reload, after unfreezing,
    so that a replaced rule set's own cycles are still collected."""
    tune_gc()
    gc.unfreeze()
    gc.collect()
    gc.freeze()
