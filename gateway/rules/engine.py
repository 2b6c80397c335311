"""The rule engine: zone events and customers in, offers out (pure; time from `event.at`).

Rules are indexed by (trigger kind, zone) at construction, so an event only costs the rules
that can match it.  Zone and geofence ids share one namespace: a geofence enter/exit (zone =
geofence id) triggers the rules naming that geofence, without touching the visit context.
For each candidate, highest priority first (then rule id), the engine checks in this order,
and stops at the first failure (its text is the explanation): consent → trigger → validity
dates → `if:` conditions → rule limits → policy (commercial only: quiet hours, min_gap,
max_offers_per_visit, pressure) → code pool; then the holdout decides whether the offer is
sent or only recorded.  At most `policy.max_offers_per_event` offers come out of one event.
Without `marketing_push` consent nothing happens, not even a holdout record.

`absent` rules (win-back) do not react to events: `on_schedule(now, customers)` runs each
one once a day at its store-local hour (see `absent`) for every customer last seen at least
`for` ago, through the same checks; the offer has zone None.

A `code_pool` offer takes its code from the `CodePools` given at construction; an exhausted
pool blocks the offer ("code pool 'tv15' is exhausted") and counts in `pool_exhausted`.  A
held-out customer (control group) takes no code.

Per event the engine pays only for its candidates: they are ranked once per (kind, zone), the
checks take the fast path of `checks` (no explanation line is built), the visit as conditions
see it is rebuilt only when a zone is added, cap periods are computed once per local day.

`explain(event, customer)` gives every check of every candidate rule (see `explanation`)
without changing any state; `watch(customer, rule)` makes `evaluate`/`on_schedule` keep the
explanation of each decision for that customer, taken just before it (`rayon explain
--trace`: replay up to the time, then read `explanations[-1]`).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from gateway.config.model import Config
from gateway.events import EventKind, Offer, Reason, ZoneEvent
from gateway.identity.model import Customer
from gateway.livestate import Changes
from gateway.rules.absent import AbsentSchedule
from gateway.rules.codepools import CodePools, MemoryCodePools
from gateway.rules.context import Context
from gateway.rules.decide import Decider, Evaluation
from gateway.rules.explanation import (
    Explanation,
    RuleExplanation,
)
from gateway.rules.gates import (
    absent_line,
    event_text,
)
from gateway.rules.ledger import Ledger
from gateway.rules.model import Rule, RuleSet, TriggerKind
from gateway.rules.visits import (
    Visit,
    advance,
    restore_visits,
    snapshot_visits,
    visit_info,
    visit_to_json,
)

_ANY_ZONE = "*"
_VISIT_END = EventKind.VISIT_END
ABSENT_REASON: Reason = {"trigger": "absent"}  # never changed

__all__ = ["RuleEngine"]


class RuleEngine:
    """Evaluates a `RuleSet` against zone events and the daily absent checks.

    Caps are counted in the `Ledger`, unique codes come from the `CodePools` (both default to
    in-memory ones); `pool_exhausted` counts, per pool, the offers an empty pool blocked.
    """

    def __init__(
        self,
        rules: RuleSet,
        config: Config,
        ledger: Ledger | None = None,
        pools: CodePools | None = None,
        on_evaluation: Callable[[Evaluation], None] | None = None,
    ) -> None:
        self.rules = rules
        self._on_evaluation = on_evaluation  # every evaluation, with its reasons (backtest)
        self.ledger = ledger if ledger is not None else Ledger()
        self.pools: CodePools = pools if pools is not None else MemoryCodePools()
        self.explanations: list[Explanation] = []
        self._decider = Decider(rules, config, self.ledger, self.pools)
        self._config = config
        self._tz = config.store.timezone
        self._zone_ids = tuple(z.id for z in config.zones)
        self._geofences = frozenset(g.id for g in config.geofences)
        self._index = _build_index(rules)
        self._places = frozenset((*self._zone_ids, *self._geofences))
        self._ranked: dict[tuple[EventKind, str | None], tuple[Rule, ...]] = {}
        self._absent = tuple(sorted((r for r in rules.rules if r.absent), key=_rank))
        self._schedule = AbsentSchedule()
        self._visits: dict[str, Visit] = {}
        self._changes = Changes()  # the customers whose visit changed since `changes()`
        self._watch: tuple[str, str | None] | None = None
        self._last_local: tuple[float, datetime | None] = (math.nan, None)

    def with_rules(self, rules: RuleSet) -> RuleEngine:
        """A new engine for a reloaded rule set, keeping the ledger, pools and visit state."""
        engine = RuleEngine(rules, self._config, self.ledger, self.pools, self._on_evaluation)
        engine._visits, engine._schedule = self._visits, self._schedule
        engine._changes = self._changes
        engine._decider.pool_exhausted, engine._watch = self.pool_exhausted, self._watch
        engine._decider.attribute_missing = self.attribute_missing
        engine.explanations = self.explanations
        return engine

    def dwell_thresholds(self) -> dict[str, tuple[float, ...]]:
        """Per zone id, the dwell thresholds (seconds, ascending) some rule asks for."""
        out: dict[str, set[float]] = {}
        any_zone = {r.trigger.at_least for r in self._index.get((EventKind.DWELL, _ANY_ZONE), ())}
        for zone in self._zone_ids:
            rules = self._index.get((EventKind.DWELL, zone), ())
            found = {r.trigger.at_least for r in rules} | any_zone
            if found - {None}:
                out[zone] = found - {None}  # type: ignore[assignment]
        return {zone: tuple(sorted(ts)) for zone, ts in out.items()}

    @property
    def pool_exhausted(self) -> Counter[str]:
        """Per code pool, the offers it blocked because it was empty (for the daemon's status)."""
        return self._decider.pool_exhausted

    @property
    def attribute_missing(self) -> Counter[str]:
        """Per rule, the offers not sent because the customer lacked a CRM attribute their
        text cites (`{customer.attributes.NAME}`)."""
        return self._decider.attribute_missing

    def watch(self, customer_id: str, rule_id: str | None = None) -> None:
        """Keep in `explanations` the explanation of every decision about this customer (that
        considers `rule_id`, when given), taken just before the decision."""
        self._watch = (customer_id, rule_id)

    # -- zone events -----------------------------------------------------------------------
    def on_event(self, event: ZoneEvent, customer: Customer) -> list[Offer]:
        """The offers this event produces for `customer` (holdout ones included, flagged)."""
        return list(self.evaluate(event, customer).offers)

    def evaluate(self, event: ZoneEvent, customer: Customer) -> Evaluation:
        """Like `on_event`, with the reason each candidate rule did not fire."""
        found = self._evaluate(event, customer)
        if self._on_evaluation is not None:
            self._on_evaluation(found)
        return found

    def _evaluate(self, event: ZoneEvent, customer: Customer) -> Evaluation:
        self._changes.keys.add(customer.id)
        local = self._local(event.at)
        if local is None:
            return Evaluation((), {})
        candidates = self._candidates(event)
        if self._watching(customer.id) and any(
            self._watched_rule() in (None, r.id) for r in candidates
        ):
            self._observe(customer.id, lambda: self.explain(event, customer, self._watched_rule()))
        visit = self._track(event, customer.id)
        try:
            if not candidates:
                return Evaluation((), {})
            if not customer.consent.marketing_push:
                return Evaluation((), {r.id: "no marketing_push consent" for r in candidates})
            info = visit_info(visit) if visit else None
            return self._decider.decide(Context(event, customer, local, info), visit, candidates)
        finally:
            if event.kind is _VISIT_END:
                self._visits.pop(customer.id, None)

    def explain(
        self, event: ZoneEvent, customer: Customer, rule_id: str | None = None
    ) -> Explanation:
        """Every check of every rule this event triggers (or only `rule_id`, even when the
        event does not trigger it), with the verdict; changes no state."""
        local = _local(event.at, self._tz) or datetime.fromtimestamp(0, self._tz)
        visit = self._visits.get(customer.id)
        visit = advance(visit.copy() if visit else None, event, self._gap, self._is_fence(event))
        info = visit_info(visit) if visit else None
        ctx = Context(event, customer, local, info)
        rules = list(self._candidates(event))
        named = self.rules.rule(rule_id) if rule_id is not None else None
        if named is not None and named not in rules:
            rules.append(named)
        found = self._decider.capped([self._decider.explain_event(r, ctx, visit) for r in rules])
        return Explanation(customer.id, local, event_text(event), _only(found, rule_id))

    # -- absent rules ----------------------------------------------------------------------
    def on_schedule(
        self,
        now: float,
        customers: Iterable[Customer],
        last_seen: Mapping[str, float] | None = None,
    ) -> list[Offer]:
        """Run the absent rules whose daily hour has come (once per rule and local day; cheap
        and idempotent, call it every tick) for every customer not seen for long enough.

        A customer's last visit is the latest of `Customer.last_visit`, `last_seen[id]` and
        what the engine saw itself.
        """
        return [o for _, ev in self.evaluate_schedule(now, customers, last_seen) for o in ev.offers]

    def evaluate_schedule(
        self,
        now: float,
        customers: Iterable[Customer],
        last_seen: Mapping[str, float] | None = None,
    ) -> list[tuple[str, Evaluation]]:
        """Like `on_schedule`, per customer checked, with the reasons."""
        local = _local(now, self._tz)
        due = self._schedule.due(self._absent, local) if local and self._absent else []
        if local is None or not due:
            return []
        self._schedule.mark(due, local.date())
        out = []
        for customer in customers:
            seen = self._last_seen(customer, last_seen)
            gone = [
                r for r in due if seen is not None and now - seen >= (r.trigger.absent_for or 0)
            ]
            if gone:
                out.append((customer.id, self._absent_decide(now, local, customer, gone, seen)))
        if self._on_evaluation is not None:
            for _, evaluation in out:
                self._on_evaluation(evaluation)
        return out

    def explain_schedule(
        self,
        now: float,
        customer: Customer,
        rule_id: str | None = None,
        last_seen: Mapping[str, float] | None = None,
    ) -> Explanation:
        """The absent rules (or only `rule_id`) for `customer` as a daily check at `now` would
        see them (a check already run today shows as not due); changes no state."""
        local = _local(now, self._tz) or datetime.fromtimestamp(0, self._tz)
        rules = [r for r in self._absent if rule_id is None or r.id == rule_id]
        due = {r.id for r in self._schedule.due(rules, local)}
        seen = self._last_seen(customer, last_seen)
        return self._absent_explanation(now, local, customer, rules, seen, due)

    def _absent_decide(
        self, now: float, local: datetime, customer: Customer, rules: list[Rule], seen: float | None
    ) -> Evaluation:
        watched = [r for r in rules if self._watched_rule() in (None, r.id)]
        if watched:
            ids = {r.id for r in rules}
            self._observe(
                customer.id,
                lambda: self._absent_explanation(now, local, customer, watched, seen, ids),
            )
        if not customer.consent.marketing_push:
            return Evaluation((), {r.id: "no marketing_push consent" for r in rules})
        event = _absent_event(now, customer)
        return self._decider.decide(Context(event, customer, local, None), None, rules)

    def _absent_explanation(
        self,
        now: float,
        local: datetime,
        customer: Customer,
        rules: list[Rule],
        seen: float | None,
        due: set[str],
    ) -> Explanation:
        ctx = Context(_absent_event(now, customer), customer, local, None)
        found = []
        for rule in rules:
            trigger = absent_line(rule, local, seen, rule.id in due)
            lines = [trigger, *self._decider.gate_lines(rule, ctx)]
            found.append(self._decider.explain_lines(rule, lines))
        return Explanation(
            customer.id, local, "daily check of absent rules", tuple(self._decider.capped(found))
        )

    def _last_seen(self, customer: Customer, last_seen: Mapping[str, float] | None) -> float | None:
        times = [customer.last_visit, (last_seen or {}).get(customer.id)]
        visit = self._visits.get(customer.id)
        times.append(visit.last_seen if visit else None)
        known = [t for t in times if t is not None and math.isfinite(t)]
        return max(known) if known else None

    # -- state -----------------------------------------------------------------------------
    def forget(self, customer_id: str) -> None:
        """Drop the visit context of a customer (the ledger is forgotten separately)."""
        self._visits.pop(customer_id, None)
        self._changes.keys.add(customer_id)

    def prune(self, now: float) -> int:
        """Drop the visit contexts not seen for `visits.gap` before `now`; return how many.

        The next event would start a new visit for them anyway (`advance`); this catches the
        contexts whose `visit_end` never came (a track forgotten silently), which would
        otherwise stay for good."""
        stale = [cid for cid, v in self._visits.items() if now - v.last_seen > self._gap]
        for cid in stale:
            del self._visits[cid]
        self._changes.keys.update(stale)
        return len(stale)

    def drop_future(self, now: float, ahead: float) -> dict[str, int]:
        """Repair a restored state dated ahead of the gateway's clock `now` (by more than
        `ahead` seconds): visit contexts seen after that are forgotten, and an absent rule
        marked as run on a later store-local day than `now`'s runs again on its day.
        Returns what was repaired, by kind (empty when nothing was)."""
        limit = now + ahead
        future = [c for c, v in self._visits.items() if max(v.started_at, v.last_seen) > limit]
        for customer_id in future:
            self.forget(customer_id)
        local = _local(now, self._tz)
        later = self._schedule.drop_after(local.date()) if local is not None else 0
        found = {"rule visits": len(future), "absent rule runs": later}
        return {kind: n for kind, n in found.items() if n}

    def tracked(self) -> int:
        """Customers with a visit context."""
        return len(self._visits)

    def snapshot(self) -> dict[str, Any]:
        """Visit contexts and absent-rule runs as plain JSON values, so a restart continues."""
        return self._snapshot_base() | {"visits": snapshot_visits(self._visits)}

    def _snapshot_base(self) -> dict[str, Any]:
        """`snapshot()` without its visit contexts."""
        return {"v": 2, "visits": {}, "absent": self._schedule.snapshot()}

    def restore(self, state: Mapping[str, Any]) -> None:
        """Continue from `snapshot()` (or a version 1 visit map); InvalidInput if not one."""
        v2 = state.get("v") == 2
        self._visits = restore_visits(state.get("visits") if v2 else state)
        self._changes.everything()
        if v2:
            self._schedule.restore(state.get("absent") or {})

    @property
    def all_changed(self) -> bool:
        """Whether the next `changes()` holds every visit context (see `resave`)."""
        return self._changes.all

    def changes(self, everything: bool = False) -> tuple[dict[str, Any], dict[str, Any]]:
        """The snapshot with no visits, and the visit contexts changed since the last call
        (their `snapshot()` entry; None for one gone): all of them when `everything`, on the
        first call and after `restore` or `resave`."""
        return self._snapshot_base(), self._changes.take(self._visits, visit_to_json, everything)

    def resave(self) -> None:
        """The changes last taken were not saved: the next `changes()` holds every visit."""
        self._changes.everything()

    # -- visit context ---------------------------------------------------------------------
    @property
    def _gap(self) -> float:
        return self._config.visits.gap

    def _local(self, at: float) -> datetime | None:
        """`_local(at, tz)`, remembering the last one (events often share their time)."""
        last_at, local = self._last_local
        if at != last_at:  # (never equal to the NaN it starts with)
            local = _local(at, self._tz)
            self._last_local = (at, local)
        return local

    def _is_fence(self, event: ZoneEvent) -> bool:
        return event.zone is not None and event.zone in self._geofences

    def _track(self, event: ZoneEvent, customer_id: str) -> Visit | None:
        visit = advance(self._visits.get(customer_id), event, self._gap, self._is_fence(event))
        if visit is not None:
            self._visits[customer_id] = visit
        return visit

    # -- decision --------------------------------------------------------------------------
    def _candidates(self, event: ZoneEvent) -> tuple[Rule, ...]:
        """The rules `event` may trigger, highest priority first (then rule id); they depend
        only on its kind and zone, so they are ranked once per (kind, zone) of the config."""
        key = (event.kind, event.zone)
        found = self._ranked.get(key)
        if found is None:
            found = self._rank_candidates(event)
            if event.zone is None or event.zone in self._places:  # bounded: the config's
                self._ranked[key] = found
        return found

    def _rank_candidates(self, event: ZoneEvent) -> tuple[Rule, ...]:
        exact = self._index.get((event.kind, event.zone or _ANY_ZONE), ())
        fence = self._is_fence(event)
        anywhere = self._index.get((event.kind, _ANY_ZONE), ()) if event.zone and not fence else ()
        unique = {r.id: r for r in (*exact, *anywhere)}
        return tuple(sorted(unique.values(), key=_rank))

    # -- explanation -----------------------------------------------------------------------
    def _watching(self, customer_id: str) -> bool:
        return self._watch is not None and self._watch[0] == customer_id

    def _watched_rule(self) -> str | None:
        return self._watch[1] if self._watch else None

    def _observe(self, customer_id: str, explain: Callable[[], Explanation]) -> None:
        if self._watch is not None and self._watch[0] == customer_id:
            found = explain()
            if found.rules:
                self.explanations.append(found)


def _rank(rule: Rule) -> tuple[int, str]:
    return (-rule.priority, rule.id)


def _only(found: list[RuleExplanation], rule_id: str | None) -> tuple[RuleExplanation, ...]:
    return tuple(r for r in found if rule_id is None or r.rule == rule_id)


def _absent_event(now: float, customer: Customer) -> ZoneEvent:
    """The stand-in event of a daily absent check (never emitted; zone None)."""
    return ZoneEvent(
        now, EventKind.VISIT_END, None, customer.phone, customer.id, None, ABSENT_REASON
    )


def _build_index(rules: RuleSet) -> dict[tuple[str, str], tuple[Rule, ...]]:
    index: dict[tuple[str, str], list[Rule]] = {}
    for rule in rules.rules:
        if rule.trigger.kind is TriggerKind.ABSENT:
            continue
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
