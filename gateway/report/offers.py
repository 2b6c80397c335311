"""Offers per rule and their conversion against the holdout group.  Pure.

Conversion: an offer converts when its customer enters the goal zone after the offer was
decided and before it expired (`created_at < enter ≤ expires_at`; strictly after, so a rule
triggered by entering the goal zone does not convert by its own trigger).  The treated group
is the rule's non-holdout offers that were sent, the control group its holdout offers (decided
the same way, recorded, never sent).  Uplift = treated rate − control rate, with Newcombe's
95 % interval; n/a when a group is empty.  The unit is the offer, not the customer.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from gateway.events import FeedbackState
from gateway.report.rows import Enter, Feedback, LoggedOffer
from gateway.report.stats import newcombe_interval, ratio
from gateway.store.tables import OfferState

# The outbox states counted per rule (holdout offers are counted apart).  `sent` counts the
# offers that went out, confirmed by their app (`delivered`) or not: the confirmation is the
# `delivered` feedback, counted beside them.
STATES = (
    OfferState.PENDING,
    OfferState.SENT,
    OfferState.EXPIRED,
    OfferState.CANCELLED,
    OfferState.DROPPED,
)

WENT_OUT = frozenset({OfferState.SENT, OfferState.DELIVERED})  # published, confirmed or not


@dataclass(frozen=True, slots=True)
class RuleOffers:
    """One rule's offers of the period: decided (non-holdout, any state), holdout, per outbox
    state, and how many distinct offers got each kind of feedback."""

    rule: str
    decided: int
    holdout: int
    states: tuple[tuple[OfferState, int], ...]
    feedback: tuple[tuple[FeedbackState, int], ...]

    def state(self, state: OfferState) -> int:
        return dict(self.states).get(state, 0)

    @property
    def sent(self) -> int:
        """Offers that went out: `sent`, confirmed (`delivered`) or not."""
        return self.state(OfferState.SENT)

    def with_feedback(self, state: FeedbackState) -> int:
        return dict(self.feedback).get(state, 0)

    def rate(self, state: FeedbackState) -> float | None:
        """Offers with this feedback per offer sent; None (n/a) when none was sent."""
        return ratio(self.with_feedback(state), self.sent)


@dataclass(frozen=True, slots=True)
class Group:
    """A conversion group: `n` offers, `converted` of them reached the goal."""

    n: int
    converted: int

    @property
    def rate(self) -> float | None:
        return ratio(self.converted, self.n)


@dataclass(frozen=True, slots=True)
class Conversion:
    """One rule's conversion, treated against control; `uplift` and its 95 % interval are
    None when either group is empty."""

    rule: str
    treated: Group
    control: Group
    uplift: float | None
    ci_low: float | None
    ci_high: float | None


def offers_per_rule(
    offers: Sequence[LoggedOffer], feedback: Iterable[Feedback]
) -> tuple[RuleOffers, ...]:
    """Per rule (by rule id), the counts of `RuleOffers`."""
    got: dict[str, set[FeedbackState]] = {}
    for message in feedback:
        got.setdefault(message.offer_id, set()).add(message.state)
    out = []
    for rule in sorted({o.rule for o in offers}):
        mine = [o for o in offers if o.rule == rule]
        decided = [o for o in mine if not o.holdout]
        states = tuple((s, sum(_counted_as(o.state) is s for o in decided)) for s in STATES)
        fb = tuple((f, sum(f in got.get(o.id, ()) for o in mine)) for f in FeedbackState)
        out.append(RuleOffers(rule, len(decided), len(mine) - len(decided), states, fb))
    return tuple(out)


def conversions(
    offers: Sequence[LoggedOffer], goal_enters: Iterable[Enter]
) -> tuple[Conversion, ...]:
    """Per rule (by rule id), treated against control (see the module docstring);
    `goal_enters` are the enter events of the goal zone."""
    times: dict[str, list[float]] = {}
    for enter in goal_enters:
        if enter.customer is not None:
            times.setdefault(enter.customer, []).append(enter.at)
    for found in times.values():
        found.sort()
    out = []
    for rule in sorted({o.rule for o in offers}):
        treated = [o for o in offers if o.rule == rule and _treated(o)]
        control = [o for o in offers if o.rule == rule and o.holdout]
        out.append(_conversion(rule, _group(treated, times), _group(control, times)))
    return tuple(out)


def _counted_as(state: OfferState) -> OfferState:
    """The report's state of an offer: a `delivered` one went out, it counts as `sent`."""
    return OfferState.SENT if state in WENT_OUT else state


def _treated(offer: LoggedOffer) -> bool:
    return not offer.holdout and offer.state in WENT_OUT


def _group(offers: Sequence[LoggedOffer], times: dict[str, list[float]]) -> Group:
    return Group(len(offers), sum(_converted(o, times.get(o.customer, [])) for o in offers))


def _converted(offer: LoggedOffer, times: list[float]) -> bool:
    """Whether one of the customer's goal enters (sorted) is in (created_at, expires_at]."""
    k = bisect.bisect_right(times, offer.created_at)
    return k < len(times) and times[k] <= offer.expires_at


def _conversion(rule: str, treated: Group, control: Group) -> Conversion:
    if not treated.n or not control.n:
        return Conversion(rule, treated, control, None, None, None)
    low, high = newcombe_interval(treated.converted, treated.n, control.converted, control.n)
    uplift = treated.converted / treated.n - control.converted / control.n
    return Conversion(rule, treated, control, uplift, low, high)
