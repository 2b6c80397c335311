"""Writing what the pipeline decided, and reading back what a restart must continue."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from gateway.pipeline import Output
from gateway.rules.codepools import Assignment, MemoryCodePools
from gateway.store import Store
from gateway.store.repo import Enqueued
from gateway.store.tables import OfferState

NOT_DECIDED = frozenset({OfferState.CANCELLED, OfferState.DROPPED})  # never counted in caps


def persist(
    store: Store,
    out: Output,
    runtime: Mapping[str, dict[str, Any]] | None = None,
    at: float = 0.0,
    assignments: Sequence[Assignment] = (),
) -> Enqueued:
    """Write what the pipeline decided: CRM changes, then events, offers (into the outbox,
    before anything is published: DESIGN §2), the codes they handed out and the live state,
    in one transaction."""
    for customer in out.upserted:
        store.upsert_customer(customer)
    for customer_id in out.erased:
        store.delete_customer(customer_id)
    result = store.commit(out.events, out.offers, runtime, at, assignments)
    for customer in out.upserted:
        if not customer.consent.marketing_push:  # withdrawn: nothing queued may still go out
            store.cancel_pending(customer.id, "marketing_push consent withdrawn")
    return result


def load_pools(store: Store) -> MemoryCodePools:
    """The code pools as imported (`rayon codes import`), with the codes handed out so far."""
    pools = MemoryCodePools()
    for pool, code, customer, assigned_at in store.codes():
        if assigned_at is None:
            pools.add(pool, [code])
        else:
            pools.restore(pool, code, customer)
    return pools
