"""The checks between a triggered rule and an offer, each as an explain `Line`.

`RuleEngine.explain` keeps every line; the verdict is the `reason` of the first failing one.
`RuleEngine.evaluate` takes the fast path of `checks`, which builds no line, only the reason
of the first failure, with the reason functions at the end of this module: the same text.
tests/test_rules_fastpath.py checks that both agree.  Pure: reads the ledger and the code
pools, changes nothing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import date, datetime
from zoneinfo import ZoneInfo

from gateway.config.model import AttributeType
from gateway.events import EventKind, ZoneEvent
from gateway.identity.model import Customer
from gateway.rules.codepools import CodePools
from gateway.rules.context import Context
from gateway.rules.explanation import Line, Section
from gateway.rules.ledger import Ledger
from gateway.rules.model import Period, Policy, Rule, show_duration
from gateway.rules.policy import period_start


def in_holdout(customer_id: str, rule_id: str, rate: float) -> bool:
    """Whether the customer is in the rule's control group (deterministic, uniform)."""
    if rate <= 0.0:
        return False
    digest = hashlib.sha256(f"{rule_id}\x00{customer_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64 < rate


def first_failure(lines: list[Line]) -> str | None:
    """The reason of the first failing line, or None when none fails."""
    return next((x.reason or x.label for x in lines if x.passed is False), None)


def consent_line(customer: Customer) -> Line:
    """Push consent: without it nothing happens, not even a holdout record."""
    ok = customer.consent.marketing_push
    reason = "" if ok else "no marketing_push consent"
    return Line(Section.CONSENT, "marketing_push consent", "yes" if ok else "no", ok, reason)


def trigger_line(rule: Rule, event: ZoneEvent, fired_this_stay: bool) -> Line:
    """Whether the event is the rule's trigger (kind, zone, dwell threshold, once per stay)."""
    label, value = rule.trigger.describe(), event_text(event)
    if event.kind.value != rule.trigger.kind.value or (
        rule.trigger.zones and event.zone not in rule.trigger.zones
    ):
        return Line(Section.TRIGGER, label, value, False, not_the_trigger(label))
    at_least = rule.trigger.at_least
    if event.kind is not EventKind.DWELL or at_least is None:
        return Line(Section.TRIGGER, label, value, True)
    if event.dwell_s is None or event.dwell_s < at_least:
        why = dwell_below(event.dwell_s, at_least)
        return Line(Section.TRIGGER, label, value, False, why)
    if fired_this_stay:
        why = ALREADY_FIRED
        return Line(Section.TRIGGER, label, value + " (already fired this stay)", False, why)
    return Line(Section.TRIGGER, label, value, True)


def absent_line(rule: Rule, local: datetime, last_seen: float | None, due: bool) -> Line:
    """An absent rule's trigger: the daily check is due and the last visit is old enough."""
    label, at_time = rule.trigger.describe(), rule.trigger.at
    if not due:
        early = at_time is not None and local.time().replace(tzinfo=None) < at_time
        value = f"local time {local:%H:%M}" + (
            f": the check runs at {at_time:%H:%M}"
            if early
            else f": {local:%Y-%m-%d} already checked"
        )
        reason = "the daily absent check has not run yet" if early else "already checked today"
        return Line(Section.TRIGGER, label, value, False, reason)
    if last_seen is None:
        return Line(Section.TRIGGER, label, "no visit known", False, "no last visit known")
    away = local.timestamp() - last_seen
    when = datetime.fromtimestamp(last_seen, local.tzinfo)
    value = f"last visit {when:%Y-%m-%d %H:%M} ({show_duration(round(away))} ago)"
    needed = rule.trigger.absent_for or 0.0
    ok = away >= needed
    return Line(
        Section.TRIGGER, label, value, ok, "" if ok else f"seen {show_duration(round(away))} ago"
    )


def validity_line(rule: Rule, today: date) -> Line:
    """`valid: {from, until}` against the store-local date."""
    start, end = rule.valid_from, rule.valid_until
    label = f"valid {start or '…'} → {end or '…'}"
    value = f"today {today}"
    if start is None and end is None:
        return Line(Section.VALIDITY, "always valid", value, True)
    if start is not None and today < start:
        return Line(Section.VALIDITY, label, value, False, not_valid_yet(start))
    if end is not None and today > end:
        return Line(Section.VALIDITY, label, value, False, no_longer_valid(end))
    return Line(Section.VALIDITY, label, value, True)


def condition_lines(rule: Rule, ctx: Context) -> list[Line]:
    """One line per `if:` condition, with the value it looked at."""
    lines = []
    for cond in rule.conditions:
        ok = cond.test(ctx)
        lines.append(
            Line(Section.CONDITION, cond.text, cond.observe(ctx), ok, f"failed: {cond.text}")
        )
    return lines or [Line(Section.CONDITION, "no conditions", "", None)]


def limit_lines(rule: Rule, ctx: Context, ledger: Ledger, tz: ZoneInfo) -> list[Line]:
    """Each limit of the rule with its count and maximum."""
    limits, cid, at = rule.limits, ctx.customer.id, ctx.event.at
    lines = []
    if limits.per_customer_max is not None:
        cap = limits.per_customer_max
        since = period_start(limits.per, at, tz, _visit_start(ctx))
        n = ledger.count(cid, rule.id, since)
        why = limit_reached(cap, limits.per)
        label = f"at most {cap} per {limits.per} per customer"
        lines.append(Line(Section.LIMIT, label, f"{n} {_so_far(limits.per)}", n < cap, why))
    last = ledger.last(cid, rule.id)
    if limits.cooldown is not None:
        ok = last is None or at - last >= limits.cooldown
        why = cooling_down(at, last, limits.cooldown)
        label = f"cooldown {show_duration(limits.cooldown)}"
        lines.append(Line(Section.LIMIT, label, _last_text(last, at), ok, why))
    if limits.total_max is not None:
        used = ledger.total(rule.id)
        why = budget_used(limits.total_max)
        label = f"campaign budget {limits.total_max}"
        lines.append(Line(Section.LIMIT, label, f"{used} used", used < limits.total_max, why))
    return lines or [Line(Section.LIMIT, "no limits", "", None)]


def policy_lines(
    rule: Rule, policy: Policy, ctx: Context, ledger: Ledger, tz: ZoneInfo
) -> list[Line]:
    """Quiet hours, min_gap, max per visit and pressure (commercial rules only)."""
    if not rule.commercial:
        return [Line(Section.POLICY, "transactional: the store policy does not apply", "", None)]
    cid, at = ctx.customer.id, ctx.event.at
    lines = []
    if policy.quiet_hours is not None:
        quiet = policy.quiet_hours.contains(ctx.local)
        window = policy.quiet_hours.describe()
        value = f"local time {ctx.local:%a %H:%M}"
        lines.append(
            Line(Section.POLICY, f"quiet hours {window}", value, not quiet, quiet_hours(window))
        )
    last = ledger.last_commercial(cid)
    if policy.min_gap is not None:
        ok = last is None or at - last >= policy.min_gap
        why = too_soon(at, last, policy.min_gap)
        label = f"min_gap {show_duration(policy.min_gap)}"
        lines.append(Line(Section.POLICY, label, _last_text(last, at, "commercial "), ok, why))
    if policy.max_offers_per_visit is not None:
        cap = policy.max_offers_per_visit
        n = ledger.count_commercial(cid, _visit_start(ctx) or at)
        why = visit_full(cap)
        lines.append(
            Line(Section.POLICY, f"at most {cap} per visit", f"{n} this visit", n < cap, why)
        )
    for period, cap in policy.pressure:
        n = ledger.count_commercial(cid, period_start(period, at, tz, _visit_start(ctx)))
        why = pressure_reached(cap, period)
        label = f"pressure: at most {cap} commercial per {period}"
        lines.append(Line(Section.POLICY, label, f"{n} {_so_far(period)}", n < cap, why))
    return lines


def attribute_text(value: object, kind: AttributeType) -> str | None:
    """What a CRM attribute shows in an offer text: a non-empty string (or a number, for an
    attribute declared string: CRMs number their orders), a number for one declared number;
    None when it is missing, empty or of another type."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, str):
        return (value.strip() or None) if kind is AttributeType.STRING else None
    if isinstance(value, int):
        return str(value)
    return f"{value:.15g}" if isinstance(value, float) else None


def attribute_line(
    rule: Rule, customer: Customer, declared: Mapping[str, AttributeType]
) -> Line | None:
    """Whether the customer has every CRM attribute the offer text cites (None: it cites
    none)."""
    names = rule.offer.attributes
    if not names:
        return None
    seen, why = [], ""
    for name in names:
        kind = declared.get(name, AttributeType.STRING)
        value = customer.attributes.get(name)
        text = attribute_text(value, kind)
        seen.append(f"{name} = {text}" if text is not None else _shown_missing(name, value, kind))
        if text is None and not why:
            why = attribute_missing(name, value, kind)
    label = "customer.attributes: " + ", ".join(names)
    return Line(Section.ATTRIBUTES, label, "; ".join(seen), not why, why)


def code_line(rule: Rule, customer: Customer, pools: CodePools) -> Line | None:
    """Whether the rule's code pool can give this customer a code (None without a pool)."""
    pool = rule.offer.code_pool
    if pool is None:
        return None
    held = pools.code_of(pool, customer.id)
    left = pools.remaining(pool)
    value = f"customer holds {held}" if held is not None else f"{left} codes left"
    ok = held is not None or left > 0
    return Line(
        Section.CODE_POOL, f"code pool '{pool}'", value, ok, f"code pool '{pool}' is exhausted"
    )


def holdout_line(rule: Rule, policy: Policy, customer: Customer) -> Line:
    """The control group: a held-out customer's offer is recorded, never sent."""
    if not rule.commercial:
        return Line(Section.HOLDOUT, "transactional: no control group", "", None)
    rate = holdout_rate(rule, policy)
    held = in_holdout(customer.id, rule.id, rate)
    value = "in the control group (recorded, not sent)" if held else "not in the control group"
    return Line(Section.HOLDOUT, f"holdout {rate:.0%}", value, not held)


def holdout_rate(rule: Rule, policy: Policy) -> float:
    """The rule's own holdout, else the policy's."""
    return rule.holdout if rule.holdout is not None else policy.holdout


def event_text(event: ZoneEvent) -> str:
    """`dwell aisle-tv (31s)`: an event as explain shows it."""
    where = f" {event.zone}" if event.zone else ""
    dwell = f" ({event.dwell_s:g}s)" if event.dwell_s is not None else ""
    return f"{event.kind}{where}{dwell}"


# -- the reasons, shared with the engine's fast path (`checks`) --------------------------------
ALREADY_FIRED = "dwell trigger already fired during this stay in the zone"


def not_the_trigger(label: str) -> str:
    return f"the event is not {label}"


def dwell_below(dwell_s: float | None, at_least: float) -> str:
    return f"dwell {dwell_s or 0:g}s is below {at_least:g}s"


def not_valid_yet(start: date) -> str:
    return f"not valid yet (valid from {start})"


def no_longer_valid(end: date) -> str:
    return f"no longer valid (valid until {end})"


def limit_reached(cap: int, per: Period) -> str:
    return f"limit reached: {cap} per {per} per customer"


def cooling_down(at: float, last: float | None, cooldown: float) -> str:
    return f"cooldown: last offer {at - (last or 0):g}s ago, cooldown {cooldown:g}s"


def budget_used(total: int) -> str:
    return f"campaign budget used: total {total}"


def attribute_missing(name: str, value: object, kind: AttributeType) -> str:
    return f"the offer text needs customer.attributes.{name}, which {_lacking(value, kind)}"


def _shown_missing(name: str, value: object, kind: AttributeType) -> str:
    lacking = value is None or (isinstance(value, str) and not value.strip())
    return f"{name} missing" if lacking else f"{name} is not a {kind}"


def _lacking(value: object, kind: AttributeType) -> str:
    if value is None or (isinstance(value, str) and not value.strip()):
        return "the customer lacks"
    return f"is not a {kind}"


def quiet_hours(window: str) -> str:
    return f"quiet hours ({window})"


def too_soon(at: float, last: float | None, min_gap: float) -> str:
    return f"min_gap: last commercial offer {at - (last or 0):g}s ago (< {min_gap:g}s)"


def visit_full(cap: int) -> str:
    return f"max_offers_per_visit {cap} reached"


def pressure_reached(cap: int, period: Period) -> str:
    return f"pressure: {cap} commercial offers per {period} reached"


def _last_text(last: float | None, at: float, what: str = "") -> str:
    return (
        f"no {what}offer yet"
        if last is None
        else f"last {what}offer {show_duration(round(at - last))} ago"
    )


def _so_far(period: Period) -> str:
    words = {Period.LIFETIME: "so far", Period.DAY: "today", Period.D30: "in the last 30 days"}
    return words.get(period, f"this {period}")


def _visit_start(ctx: Context) -> float | None:
    return ctx.visit.started_at if ctx.visit else None
