"""Writing what the pipeline decided, and reading back what a restart must continue."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from gateway.events import Fix
from gateway.identity.model import Customer
from gateway.livestate import StateDelta
from gateway.pipeline import Output
from gateway.rules.codepools import Assignment, MemoryCodePools
from gateway.store.outbox import Enqueued
from gateway.store.repo import Position, Store

# The row of the store's saved live state that holds the pipeline's (`Store.load_runtime`).
RUNTIME_KEY = "pipeline"


OBSERVATION_EVERY_S = 5.0  # one stored position per device per this many seconds


class PositionSampler:
    """Picks the positions worth storing: of devices bound to a customer (who consented to
    in-store location: the pipeline locates no other customer), at most one per device every
    `every_s`.  Enough for a heat map, a fraction of the fixes (about one a second each)."""

    def __init__(self, every_s: float = OBSERVATION_EVERY_S) -> None:
        self._every_s = every_s
        self._last: dict[str, float] = {}

    def sample(
        self, fixes: Iterable[Fix], customer_of: Callable[[str], Customer | None]
    ) -> list[Position]:
        out = []
        for fix in fixes:
            if fix.at - self._last.get(fix.device, -math.inf) < self._every_s:
                continue
            customer = customer_of(fix.device)
            if customer is None:
                continue
            self._last[fix.device] = fix.at
            out.append(Position(fix.at, fix.device, customer.id, fix.x, fix.y, fix.accuracy_m))
        if len(self._last) > MAX_SAMPLED_DEVICES:  # forget devices long gone
            newest = max(self._last.values())
            self._last = {d: t for d, t in self._last.items() if newest - t < 3600.0}
        return out


MAX_SAMPLED_DEVICES = 20_000


def persist(
    store: Store,
    out: Output,
    runtime: Mapping[str, dict[str, Any] | StateDelta] | None = None,
    at: float = 0.0,
    assignments: Sequence[Assignment] = (),
    positions: Sequence[Position] = (),
) -> Enqueued:
    """Write what the pipeline decided: CRM erasures, then updates (each its own
    transaction), then in one transaction events, offers (into the outbox, before anything is
    published: docs/design.md §2), the codes they handed out, sampled positions and the live state.

    Only the events of customers are stored: a device bound to no customer is at most
    counted anonymously (occupancy), never kept (docs/design.md §1).  Erasures go first: the events
    and offers `out` still holds of an erased customer came after it (`Output.forget`); the
    codes and positions, gathered beside `out`, are unlinked or dropped here."""
    if out.erased:
        assignments, positions = _after_erasure(out, assignments, positions)
    for customer_id in out.erased:
        store.delete_customer(customer_id)
    for customer in out.upserted:
        store.upsert_customer(customer)
    events = [e for e in out.events if e.customer is not None]
    result = store.commit(events, out.offers, runtime, at, assignments, positions)
    for customer_id in push_withdrawn(out):  # nothing queued may still go out
        store.cancel_pending(customer_id, "marketing_push consent withdrawn")
    return result


def _after_erasure(
    out: Output, assignments: Sequence[Assignment], positions: Sequence[Position]
) -> tuple[list[Assignment], list[Position]]:
    """The batch's codes and positions once its erasures are applied: a code handed out for
    an offer of an erased customer stays spent but is linked to nobody (as `erase_customer`
    leaves it), unless a kept offer of theirs (decided after a re-registration) carries it;
    their sampled positions are dropped."""
    erased = set(out.erased)
    kept = {(o.customer, o.code) for o in out.offers if o.customer in erased}
    codes = [
        a
        if a.customer not in erased or (a.customer, a.code) in kept
        else dataclasses.replace(a, customer=None)
        for a in assignments
    ]
    return codes, [p for p in positions if p.customer not in erased]


def push_withdrawn(out: Output) -> list[str]:
    """The customers of `out`'s CRM changes without marketing_push consent, whose pending
    offers `persist` cancels."""
    return [c.id for c in out.upserted if not c.consent.marketing_push]


def load_pools(store: Store) -> MemoryCodePools:
    """The code pools as imported (`rayon codes import`), with the codes handed out so far."""
    pools = MemoryCodePools()
    for pool, code, customer, assigned_at in store.codes():
        if assigned_at is None:
            pools.add(pool, [code])
        else:
            pools.restore(pool, code, customer)
    return pools
