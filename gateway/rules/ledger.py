"""The record of what was offered, which caps, cooldowns, budgets and pressure count on.

In memory in this version; the store can back the same interface with its `offers` table
later (a subclass overriding these methods).  Holdout offers are recorded like sent ones so
that the control group sees the same caps as the treated group.
"""

from __future__ import annotations

import bisect

from gateway.events import Offer, Purpose


class Ledger:
    """Offers per (customer, rule), per customer, and per rule (campaign totals)."""

    def __init__(self) -> None:
        self._pairs: dict[tuple[str, str], list[float]] = {}
        self._customers: dict[str, list[float]] = {}
        self._totals: dict[str, int] = {}

    def record(self, offer: Offer) -> None:
        """Count `offer` (sent or holdout) at its `created_at`."""
        bisect.insort(self._pairs.setdefault((offer.customer, offer.rule), []), offer.created_at)
        if offer.purpose is Purpose.COMMERCIAL:
            bisect.insort(self._customers.setdefault(offer.customer, []), offer.created_at)
        self._totals[offer.rule] = self._totals.get(offer.rule, 0) + 1

    def count(self, customer: str, rule: str, since: float) -> int:
        """Offers of `rule` to `customer` at or after `since`."""
        times = self._pairs.get((customer, rule), [])
        return len(times) - bisect.bisect_left(times, since)

    def last(self, customer: str, rule: str) -> float | None:
        """When `rule` last made an offer to `customer`, or None."""
        times = self._pairs.get((customer, rule))
        return times[-1] if times else None

    def total(self, rule: str) -> int:
        """Offers `rule` made to anyone (its campaign budget use)."""
        return self._totals.get(rule, 0)

    def count_commercial(self, customer: str, since: float) -> int:
        """Commercial offers of any rule to `customer` at or after `since` (pressure)."""
        times = self._customers.get(customer, [])
        return len(times) - bisect.bisect_left(times, since)

    def last_commercial(self, customer: str) -> float | None:
        """When `customer` last got a commercial offer (for `min_gap`), or None."""
        times = self._customers.get(customer)
        return times[-1] if times else None

    def forget(self, customer: str) -> None:
        """Erase a customer's entries (`rayon forget`); campaign totals keep their count."""
        self._customers.pop(customer, None)
        for key in [k for k in self._pairs if k[0] == customer]:
            del self._pairs[key]
