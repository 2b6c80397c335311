"""What a gateway starts from: the rules, the customers, the code pools and the last run's
live state, read from the store into a restored pipeline, with what a poisoned store needed
repaired (times saved ahead of the clock)."""

from __future__ import annotations

import contextlib
import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from gateway.clock import MAX_AHEAD_S, Clock
from gateway.config.model import Config
from gateway.errors import InvalidInput
from gateway.identity.model import CustomerRegistry
from gateway.pipeline import Pipeline
from gateway.rules.codepools import MemoryCodePools
from gateway.rules.load import load_rules
from gateway.store.outbox import RepairedOffer
from gateway.store.persist import RUNTIME_KEY, load_pools
from gateway.store.repo import Store
from gateway.store.tables import NOT_DECIDED

log = logging.getLogger(__name__)

Fingerprint = tuple[tuple[str, int, int], ...]  # `rules_fingerprint`


def rules_fingerprint(folder: Path) -> Fingerprint:
    """Names, modification times and sizes of the rule files: changes when any file does."""
    found = []
    for path in sorted(folder.glob("*.y*ml")):
        with contextlib.suppress(OSError):  # removed while we looked
            st = path.stat()
            found.append((path.name, st.st_mtime_ns, st.st_size))
    return tuple(found)


@dataclass(frozen=True, slots=True)
class Loaded:
    """What a gateway starts from (`load`): the pipeline with the rules, the customers and the
    last run's live state in it; the code pools it shares; the rule files' fingerprint taken
    before they were read (no change is missed); how many rules are in force; what was
    repaired of a store poisoned by times ahead of the clock (counters); and the store's key
    for visit pseudonyms (`Store.visit_key`, created on the first run)."""

    pipeline: Pipeline
    pools: MemoryCodePools
    rules_seen: Fingerprint
    rules: int
    repaired: Mapping[str, int]
    visit_key: bytes


async def load(config: Config, store: Store, clock: Clock) -> Loaded:
    """Read the rules, then the customers, code pools and live state of the last run from
    `store`, into a restored pipeline (ConfigError for rules that do not load)."""
    customers = await store.call(store.load_customers)
    seen = rules_fingerprint(config.rules_dir)  # before loading: no change is missed
    rules = load_rules(config.rules_dir, config)
    pools = await store.call(load_pools, store)
    pipeline = Pipeline(config, rules, CustomerRegistry(customers), pools=pools)
    repaired = await restore(pipeline, store, clock.now())
    key = await store.call(store.visit_key, create=True)
    assert key is not None  # created when missing
    return Loaded(pipeline, pools, seen, len(rules.rules), repaired, key)


async def restore(pipeline: Pipeline, store: Store, now: float) -> Counter[str]:
    """Carry on where the last run stopped, even after a kill -9: the offers already
    decided count against the caps, and visits and zone timers continue.

    What a gateway without the live time window may have saved dated ahead of our
    clock is repaired first (`repaired`), so that no clock starts ahead."""
    fixed_offers = await store.call(store.repair_offers, now, MAX_AHEAD_S)
    state = await store.call(store.load_runtime, RUNTIME_KEY)
    log_ = await store.call(store.offer_log)
    decided = [r.offer for r in log_ if r.state not in NOT_DECIDED]
    offered = [o for o in decided if o.created_at <= now + MAX_AHEAD_S]
    try:
        pipeline.restore(state, offered)
    except InvalidInput as exc:
        log.warning("saved live state ignored, starting afresh: %s", exc)
        pipeline.restore(None, offered)
    fixed = pipeline.drop_future(now)
    if len(offered) < len(decided):
        fixed["offers left out of the caps"] = len(decided) - len(offered)
    log.info(
        "restored %d offers into the caps%s",
        len(offered),
        ", and the live state" if state else "",
    )
    return repaired(fixed, fixed_offers)


def repaired(state: dict[str, int], offers: Sequence[RepairedOffer]) -> Counter[str]:
    """Count (`repaired_future_state`, `repaired_offers`) and log, once, what `restore`
    repaired of a store poisoned by times ahead of the gateway's clock."""
    counts: Counter[str] = Counter()
    if state:
        counts["repaired_future_state"] += sum(state.values())
        what = ", ".join(f"{n} {kind}" for kind, n in state.items())
        log.warning(
            "live state dated more than %.0f s ahead of the clock repaired: %s (saved by "
            "a gateway without the live time window, or a clock set back since)",
            MAX_AHEAD_S,
            what,
        )
    if offers:
        counts["repaired_offers"] += len(offers)
        log.warning(
            "%d pending offer(s) no publish can carry cancelled: %s",
            len(offers),
            "; ".join(f"{o.id} ({o.reason})" for o in offers[:5]),
        )
    return counts
