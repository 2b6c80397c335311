"""The rule engine: zone events and customers in, offers out (pure; time from `event.at`).

Rules are indexed by (trigger kind, zone) at construction, so an event only costs the rules
that can match it.  For each candidate, highest priority first (then rule id), the engine
checks in this order, and stops at the first failure (its text is the explanation):
trigger → validity dates → `if:` conditions → rule limits → policy (commercial only:
quiet hours, pressure, min_gap, max_offers_per_visit) → holdout.  At most
`policy.max_offers_per_event` offers come out of one event.  Without `marketing_push`
consent nothing happens, not even a holdout record.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any
from uuid import UUID, uuid5
from zoneinfo import ZoneInfo

from gateway.config import Config
from gateway.errors import InvalidInput
from gateway.events import EventKind, Offer, ZoneEvent
from gateway.identity import Customer
from gateway.rules.conditions import Context, VisitInfo
from gateway.rules.ledger import Ledger
from gateway.rules.model import Placeholder, Rule, RuleSet
from gateway.rules.policy import period_start

OFFER_NAMESPACE = UUID("6f1c7c2e-3d5a-5b8e-9a41-7e0d2b9c4f10")
_ANY_ZONE = "*"


def in_holdout(customer_id: str, rule_id: str, rate: float) -> bool:
    """Whether the customer is in the rule's control group (deterministic, uniform)."""
    if rate <= 0.0:
        return False
    digest = hashlib.sha256(f"{rule_id}\x00{customer_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64 < rate


def offer_id(rule_id: str, customer_id: str, at: float) -> str:
    """The offer's idempotency key: the same decision in a replay gets the same id."""
    return str(uuid5(OFFER_NAMESPACE, f"{rule_id}|{customer_id}|{at!r}"))


@dataclass(slots=True)
class _Visit:
    """Per-customer visit context the engine keeps from the events it sees."""

    started_at: float
    last_seen: float
    zones: set[str] = field(default_factory=set)
    dwell_done: set[tuple[str, str]] = field(default_factory=set)  # (rule, zone) this stay


@dataclass(frozen=True, slots=True)
class Evaluation:
    """What one event produced, and for every candidate rule that did not fire, why."""

    offers: tuple[Offer, ...]
    reasons: Mapping[str, str]


class RuleEngine:
    """Evaluates a `RuleSet` against zone events; caps are counted in the `Ledger`."""

    def __init__(self, rules: RuleSet, config: Config, ledger: Ledger | None = None) -> None:
        self.rules = rules
        self.ledger = ledger if ledger is not None else Ledger()
        self._config = config
        self._tz = config.store.timezone
        self._zone_names = {z.id: z.name for z in config.zones}
        self._index = _build_index(rules)
        self._visits: dict[str, _Visit] = {}

    def with_rules(self, rules: RuleSet) -> RuleEngine:
        """A new engine for a reloaded rule set, keeping the ledger and the visit contexts."""
        engine = RuleEngine(rules, self._config, self.ledger)
        engine._visits = self._visits
        return engine

    def dwell_thresholds(self) -> dict[str, tuple[float, ...]]:
        """Per zone id, the dwell thresholds (seconds, ascending) some rule asks for."""
        out: dict[str, set[float]] = {}
        any_zone = {r.trigger.at_least for r in self._index.get((EventKind.DWELL, _ANY_ZONE), ())}
        for zone in self._zone_names:
            rules = self._index.get((EventKind.DWELL, zone), ())
            found = {r.trigger.at_least for r in rules} | any_zone
            if found - {None}:
                out[zone] = found - {None}  # type: ignore[assignment]
        return {zone: tuple(sorted(ts)) for zone, ts in out.items()}

    def on_event(self, event: ZoneEvent, customer: Customer) -> list[Offer]:
        """The offers this event produces for `customer` (holdout ones included, flagged)."""
        return list(self.evaluate(event, customer).offers)

    def evaluate(self, event: ZoneEvent, customer: Customer) -> Evaluation:
        """Like `on_event`, with the reason each candidate rule did not fire."""
        local = _local(event.at, self._tz)
        if local is None:
            return Evaluation((), {})
        visit = self._track(event, customer.id)
        try:
            if not customer.consent.marketing_push:
                return Evaluation(
                    (), {r.id: "no marketing_push consent" for r in self._candidates(event)}
                )
            info = VisitInfo(visit.started_at, frozenset(visit.zones))
            return self._decide(Context(event, customer, local, info), visit)
        finally:
            if event.kind is EventKind.VISIT_END:
                self._visits.pop(customer.id, None)

    def forget(self, customer_id: str) -> None:
        """Drop the visit context of a customer (the ledger is forgotten separately)."""
        self._visits.pop(customer_id, None)

    def snapshot(self) -> dict[str, Any]:
        """The visit contexts as plain JSON values, so that a restart continues them."""
        return {
            cid: {
                "started_at": v.started_at,
                "last_seen": v.last_seen,
                "zones": sorted(v.zones),
                "dwell_done": sorted([r, z] for r, z in v.dwell_done),
            }
            for cid, v in self._visits.items()
        }

    def restore(self, state: Mapping[str, Any]) -> None:
        """Continue the visit contexts of `snapshot()`; InvalidInput if it is not one."""
        try:
            self._visits = {
                str(cid): _Visit(
                    float(v["started_at"]),
                    float(v["last_seen"]),
                    {str(z) for z in v["zones"]},
                    {(str(r), str(z)) for r, z in v["dwell_done"]},
                )
                for cid, v in state.items()
            }
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInput(f"not a rules engine snapshot ({exc}); discard it") from None

    # -- visit context ---------------------------------------------------------------------
    def _track(self, event: ZoneEvent, customer_id: str) -> _Visit:
        visit = self._visits.get(customer_id)
        stale = visit is None or event.at - visit.last_seen > self._config.visits.gap
        if event.kind is EventKind.VISIT_START or stale:
            visit = _Visit(event.at, event.at)
            self._visits[customer_id] = visit
        assert visit is not None
        visit.last_seen = max(visit.last_seen, event.at)
        if event.zone is not None and event.kind in (EventKind.ENTER, EventKind.EXIT):
            visit.zones.add(event.zone)
            visit.dwell_done = {(r, z) for r, z in visit.dwell_done if z != event.zone}
        return visit

    # -- decision --------------------------------------------------------------------------
    def _candidates(self, event: ZoneEvent) -> list[Rule]:
        exact = self._index.get((event.kind, event.zone or _ANY_ZONE), ())
        anywhere = self._index.get((event.kind, _ANY_ZONE), ()) if event.zone else ()
        unique = {r.id: r for r in (*exact, *anywhere)}
        return sorted(unique.values(), key=lambda r: (-r.priority, r.id))

    def _decide(self, ctx: Context, visit: _Visit) -> Evaluation:
        offers: list[Offer] = []
        reasons: dict[str, str] = {}
        for rule in self._candidates(ctx.event):
            if len(offers) >= self.rules.policy.max_offers_per_event:
                reasons[rule.id] = f"outranked by rule '{offers[0].rule}' (higher priority)"
                continue
            reason = self._blocked(rule, ctx, visit)
            if reason is not None:
                reasons[rule.id] = reason
                continue
            offer = self._offer(rule, ctx)
            self.ledger.record(offer)
            offers.append(offer)
        return Evaluation(tuple(offers), reasons)

    def _blocked(self, rule: Rule, ctx: Context, visit: _Visit) -> str | None:
        return (
            self._trigger_fails(rule, ctx.event, visit)
            or _valid_fails(rule, ctx.local.date())
            or _failed(rule.check(ctx))
            or self._limits_fail(rule, ctx)
            or (self._policy_fails(ctx) if rule.commercial else None)
        )

    def _trigger_fails(self, rule: Rule, event: ZoneEvent, visit: _Visit) -> str | None:
        if event.kind is not EventKind.DWELL or rule.trigger.at_least is None:
            return None
        if event.dwell_s is None or event.dwell_s < rule.trigger.at_least:
            return f"dwell {event.dwell_s or 0:g}s is below {rule.trigger.at_least:g}s"
        key = (rule.id, event.zone or "")
        if key in visit.dwell_done:
            return "dwell trigger already fired during this stay in the zone"
        visit.dwell_done.add(key)
        return None

    def _limits_fail(self, rule: Rule, ctx: Context) -> str | None:
        limits, cid, at = rule.limits, ctx.customer.id, ctx.event.at
        if limits.per_customer_max is not None:
            since = period_start(limits.per, at, self._tz, _visit_start(ctx))
            if self.ledger.count(cid, rule.id, since) >= limits.per_customer_max:
                return f"limit reached: {limits.per_customer_max} per {limits.per} per customer"
        last = self.ledger.last(cid, rule.id)
        if limits.cooldown is not None and last is not None and at - last < limits.cooldown:
            return f"cooldown: last offer {at - last:g}s ago, cooldown {limits.cooldown:g}s"
        if limits.total_max is not None and self.ledger.total(rule.id) >= limits.total_max:
            return f"campaign budget used: total {limits.total_max}"
        return None

    def _policy_fails(self, ctx: Context) -> str | None:
        policy, cid, at = self.rules.policy, ctx.customer.id, ctx.event.at
        if policy.quiet_hours is not None and policy.quiet_hours.contains(ctx.local):
            return f"quiet hours ({policy.quiet_hours.describe()})"
        last = self.ledger.last_commercial(cid)
        if policy.min_gap is not None and last is not None and at - last < policy.min_gap:
            return f"min_gap: last commercial offer {at - last:g}s ago (< {policy.min_gap:g}s)"
        visit_cap = policy.max_offers_per_visit
        visit_start = _visit_start(ctx)
        if (
            visit_cap is not None
            and self.ledger.count_commercial(cid, visit_start or at) >= visit_cap
        ):
            return f"max_offers_per_visit {visit_cap} reached"
        return self._pressure_fails(ctx)

    def _pressure_fails(self, ctx: Context) -> str | None:
        for period, cap in self.rules.policy.pressure:
            since = period_start(period, ctx.event.at, self._tz, _visit_start(ctx))
            if self.ledger.count_commercial(ctx.customer.id, since) >= cap:
                return f"pressure: {cap} commercial offers per {period} reached"
        return None

    def _offer(self, rule: Rule, ctx: Context) -> Offer:
        event, customer, tmpl = ctx.event, ctx.customer, rule.offer
        values = {
            Placeholder.ZONE_NAME: self._zone_names.get(event.zone or "", ""),
            Placeholder.STORE_NAME: self._config.store.name,
            Placeholder.CODE: tmpl.code or "",
            Placeholder.FIRST_NAME: customer.first_name or "",
        }
        rate = rule.holdout if rule.holdout is not None else self.rules.policy.holdout
        return Offer(
            id=offer_id(rule.id, customer.id, event.at),
            rule=rule.id,
            store=self._config.store.id,
            zone=event.zone,
            customer=customer.id,
            token=customer.token,
            created_at=event.at,
            expires_at=event.at + tmpl.expires_in,
            title=tmpl.title.fill(values),
            body=tmpl.body.fill(values),
            code=tmpl.code,
            url=tmpl.url,
            purpose=rule.purpose,
            holdout=rule.commercial and in_holdout(customer.id, rule.id, rate),
        )


def _build_index(rules: RuleSet) -> dict[tuple[EventKind, str], tuple[Rule, ...]]:
    index: dict[tuple[EventKind, str], list[Rule]] = {}
    for rule in rules.rules:
        for zone in rule.trigger.zones or (_ANY_ZONE,):
            index.setdefault((rule.trigger.kind, zone), []).append(rule)
    return {key: tuple(found) for key, found in index.items()}


def _local(at: float, tz: ZoneInfo) -> datetime | None:
    if not math.isfinite(at):
        return None
    try:
        return datetime.fromtimestamp(at, tz)
    except (OverflowError, OSError, ValueError):
        return None


def _visit_start(ctx: Context) -> float | None:
    return ctx.visit.started_at if ctx.visit else None


def _valid_fails(rule: Rule, today: date) -> str | None:
    if rule.valid_from is not None and today < rule.valid_from:
        return f"not valid yet (valid from {rule.valid_from})"
    if rule.valid_until is not None and today > rule.valid_until:
        return f"no longer valid (valid until {rule.valid_until})"
    return None


def _failed(condition: str | None) -> str | None:
    return f"failed: {condition}" if condition is not None else None
