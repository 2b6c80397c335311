"""The customers as they were at a time, from their CRM records and the visits stored since:
what `rayon backtest --recorded` starts from, and what the console's visit trace explains
against.  Pure: values in, values out."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from gateway.identity.model import Customer
from gateway.store.repo import Visit


def customers_at(
    customers: Sequence[Customer], visits: Sequence[Visit], since: float
) -> list[Customer]:
    """The customers as they were at `since`: the visits stored from `since` on are taken off
    their count, and a last visit at or after `since` becomes the last one stored before it."""
    after: dict[str, int] = {}
    before: dict[str, float] = {}
    for v in visits:
        if v.customer is None:
            continue
        if v.started_at >= since:
            after[v.customer] = after.get(v.customer, 0) + 1
        else:
            seen = min(since, v.ended_at if v.ended_at is not None else v.started_at)
            before[v.customer] = max(before.get(v.customer, seen), seen)
    out = []
    for c in customers:
        last = c.last_visit
        if last is None or last >= since:
            last = before.get(c.id)
        out.append(
            dataclasses.replace(c, visits=max(0, c.visits - after.get(c.id, 0)), last_visit=last)
        )
    return out
