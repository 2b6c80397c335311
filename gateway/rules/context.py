"""What a rule condition is evaluated against (`Context`) and a compiled condition
(`Condition`); compiled by `gateway.rules.conditions`, checked by the engine.  Pure."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from gateway.events import ZoneEvent
from gateway.identity.model import Customer
from gateway.rules.timewindow import TimeWindow


@dataclass(frozen=True, slots=True)
class VisitInfo:
    """What the engine knows of the customer's current visit."""

    started_at: float
    zones: frozenset[str] = frozenset()

    def __init__(
        self,
        started_at: float,
        zones: frozenset[str] = frozenset(),
    ) -> None:
        # written out: mypyc compiles it, not the dataclass's (docs/performance.md)
        object.__setattr__(self, "started_at", started_at)
        object.__setattr__(self, "zones", zones)


@dataclass(frozen=True, slots=True)
class Context:
    """Everything a condition may look at: the event, the customer, local time, the visit."""

    event: ZoneEvent
    customer: Customer
    local: datetime
    visit: VisitInfo | None

    def __init__(
        self,
        event: ZoneEvent,
        customer: Customer,
        local: datetime,
        visit: VisitInfo | None,
    ) -> None:
        # written out: mypyc compiles it, not the dataclass's (docs/performance.md)
        object.__setattr__(self, "event", event)
        object.__setattr__(self, "customer", customer)
        object.__setattr__(self, "local", local)
        object.__setattr__(self, "visit", visit)


def _nothing(ctx: Context) -> str:
    return ""


@dataclass(frozen=True, slots=True)
class Condition:
    """A compiled predicate, how it reads in a rule file, and what it looks at (for explain)."""

    text: str
    test: Callable[[Context], bool]
    observe: Callable[[Context], str] = _nothing  # e.g. "customer.interests = [audio, tv]"
    window: TimeWindow | None = None  # a `time:` condition's window, for `rayon check`'s lints
    # True when it reads the event or the visit (`zone`, `visit.*`, "{zone}"): explain without
    # an observed event cannot evaluate it
    needs_event: bool = False

    def failing(self, ctx: Context) -> str | None:
        """None when the condition holds, else the text of what failed."""
        return None if self.test(ctx) else self.text


def all_of(conditions: Sequence[Condition]) -> Callable[[Context], str | None]:
    """A checker returning the first failing condition's text, or None when all hold."""
    items = tuple(conditions)

    def check(ctx: Context) -> str | None:
        for cond in items:
            if not cond.test(ctx):
                return cond.text
        return None

    return check
