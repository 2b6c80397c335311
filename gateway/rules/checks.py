"""The engine's fast path through the checks of `gates`: each returns None when the check
passes, else the very reason its explain `Line` carries, and builds that text only then.

`Decider.decide` runs these for every candidate rule of every event; `rayon explain` and
`Decider.gate_lines` keep building every `Line` with `gates`.  The reasons come from the same
functions in `gates`, and tests/test_rules_fastpath.py checks on random rules, customers,
ledgers and times that each function here returns `first_failure` of its `gates` lines.
Pure: reads the ledger, changes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date

from gateway.config.model import AttributeType
from gateway.events import EventKind, ZoneEvent
from gateway.identity.model import Customer
from gateway.rules.context import Context
from gateway.rules.gates import (
    ALREADY_FIRED,
    attribute_missing,
    attribute_text,
    budget_used,
    cooling_down,
    dwell_below,
    limit_reached,
    no_longer_valid,
    not_the_trigger,
    not_valid_yet,
    pressure_reached,
    quiet_hours,
    too_soon,
    visit_full,
)
from gateway.rules.ledger import Ledger
from gateway.rules.model import Policy, Rule
from gateway.rules.policy import PeriodStarts

_DWELL = EventKind.DWELL


def trigger_failure(rule: Rule, event: ZoneEvent, fired_this_stay: bool) -> str | None:
    """`trigger_line`'s reason: not the rule's kind or zone, dwell too short, already fired."""
    trigger = rule.trigger
    # both are StrEnums, equal exactly when their values are (see `TriggerKind`)
    other_kind = event.kind != trigger.kind  # type: ignore[comparison-overlap]
    if other_kind or (trigger.zones and event.zone not in trigger.zones):
        return not_the_trigger(trigger.describe())
    at_least = trigger.at_least
    if at_least is None or event.kind is not _DWELL:
        return None
    if event.dwell_s is None or event.dwell_s < at_least:
        return dwell_below(event.dwell_s, at_least)
    return ALREADY_FIRED if fired_this_stay else None


def validity_failure(rule: Rule, today: date) -> str | None:
    """`validity_line`'s reason: before `valid.from` or after `valid.until`."""
    start, end = rule.valid_from, rule.valid_until
    if start is not None and today < start:
        return not_valid_yet(start)
    if end is not None and today > end:
        return no_longer_valid(end)
    return None


def limit_failure(rule: Rule, ctx: Context, ledger: Ledger, starts: PeriodStarts) -> str | None:
    """The first of `limit_lines`' reasons: per-customer cap, cooldown, campaign budget."""
    limits, at = rule.limits, ctx.event.at
    cap = limits.per_customer_max
    if cap is not None:
        since = starts.start(limits.per, at, ctx.local, _visit_start(ctx))
        if not ledger.count(ctx.customer.id, rule.id, since) < cap:
            return limit_reached(cap, limits.per)
    cooldown = limits.cooldown
    if cooldown is not None:
        last = ledger.last(ctx.customer.id, rule.id)
        if not (last is None or at - last >= cooldown):
            return cooling_down(at, last, cooldown)
    total = limits.total_max
    if total is not None and not ledger.total(rule.id) < total:
        return budget_used(total)
    return None


def attribute_failure(
    rule: Rule, customer: Customer, declared: Mapping[str, AttributeType]
) -> str | None:
    """`attribute_line`'s reason: the first CRM attribute the offer text cites that the
    customer lacks (or has with another type)."""
    for name in rule.offer.attributes:
        kind = declared.get(name, AttributeType.STRING)
        value = customer.attributes.get(name)
        if attribute_text(value, kind) is None:
            return attribute_missing(name, value, kind)
    return None


def policy_failure(
    rule: Rule, policy: Policy, ctx: Context, ledger: Ledger, starts: PeriodStarts
) -> str | None:
    """The first of `policy_lines`' reasons (None for a transactional rule): quiet hours,
    min_gap, max_offers_per_visit, pressure."""
    if not rule.commercial:
        return None
    cid, at = ctx.customer.id, ctx.event.at
    if policy.quiet_hours is not None and policy.quiet_hours.contains(ctx.local):
        return quiet_hours(policy.quiet_hours.describe())
    if policy.min_gap is not None:
        last = ledger.last_commercial(cid)
        if not (last is None or at - last >= policy.min_gap):
            return too_soon(at, last, policy.min_gap)
    cap = policy.max_offers_per_visit
    if cap is not None and not ledger.count_commercial(cid, _visit_start(ctx) or at) < cap:
        return visit_full(cap)
    for period, most in policy.pressure:
        since = starts.start(period, at, ctx.local, _visit_start(ctx))
        if not ledger.count_commercial(cid, since) < most:
            return pressure_reached(most, period)
    return None


def _visit_start(ctx: Context) -> float | None:
    return ctx.visit.started_at if ctx.visit else None
