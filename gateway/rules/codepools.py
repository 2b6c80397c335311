"""Code pools: unique offer codes, one per customer, from lists of codes imported beforehand.

A rule's `then.offer.code_pool: tv15` names a pool.  Pools are data, not config: any pool id
is accepted at load, and an unknown or empty pool shows at run time as an exhausted one (the
offer is not made; the reason says "code pool 'tv15' is exhausted"; `RuleEngine` counts it).

The engine needs only the `CodePools` protocol below; `MemoryCodePools` is the in-memory
implementation (the default, and the one inline tests seed with `pools:`).  The store backs
the same three methods with its database.
"""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Assignment:
    """A code handed to a customer; `customer` None once they were erased (the code stays
    spent, linked to nobody)."""

    pool: str
    code: str
    customer: str | None
    at: float


class CodePools(Protocol):
    """Where unique codes come from.  Implementations must keep `assign` idempotent."""

    def assign(self, pool: str, customer: str, at: float) -> str | None:
        """The customer's code from `pool`: the one assigned before if any (the same code
        again), else the next free one, now assigned; None when the pool has none left."""
        ...

    def code_of(self, pool: str, customer: str) -> str | None:
        """The code already assigned to the customer from `pool`, or None (assigns nothing)."""
        ...

    def remaining(self, pool: str) -> int:
        """How many codes of `pool` are still free (0 for an unknown pool)."""
        ...


class MemoryCodePools:
    """`CodePools` in memory: codes are handed out in the order they were added."""

    def __init__(self, pools: Mapping[str, Iterable[str]] | None = None) -> None:
        self._free: dict[str, deque[str]] = {}
        self._known: dict[str, set[str]] = {}
        self._assigned: dict[tuple[str, str], str] = {}
        self._new: list[Assignment] = []
        for pool, codes in (pools or {}).items():
            self.add(pool, codes)

    def add(self, pool: str, codes: Iterable[str]) -> None:
        """Import more codes into `pool` (a code already imported is not added twice)."""
        free = self._free.setdefault(pool, deque())
        known = self._known.setdefault(pool, set())
        for code in codes:
            if code not in known:
                free.append(code)
                known.add(code)

    def assign(self, pool: str, customer: str, at: float) -> str | None:
        """See `CodePools.assign`."""
        code = self._assigned.get((pool, customer))
        if code is None and self._free.get(pool):
            code = self._free[pool].popleft()
            self._assigned[(pool, customer)] = code
            self._new.append(Assignment(pool, code, customer, at))
        return code

    def restore(self, pool: str, code: str, customer: str | None) -> None:
        """A code handed out before a restart: never free again; still the customer's."""
        self.add(pool, [code])
        with contextlib.suppress(ValueError):
            self._free[pool].remove(code)
        if customer is not None:
            self._assigned[(pool, customer)] = code

    def take_new(self) -> list[Assignment]:
        """The assignments made since the last call, for the caller to persist."""
        new, self._new = self._new, []
        return new

    def code_of(self, pool: str, customer: str) -> str | None:
        """See `CodePools.code_of`."""
        return self._assigned.get((pool, customer))

    def remaining(self, pool: str) -> int:
        """See `CodePools.remaining`."""
        return len(self._free.get(pool, ()))
