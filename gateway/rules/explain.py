"""`rayon explain` without a trace: why a rule would or would not fire for a customer at a time.

`explain_at` synthesizes the rule's own trigger event at that time (an enter in its first
zone or geofence, a dwell at its threshold, a visit start…; for an `absent` rule, the daily
check) and explains it against an engine's state — a fresh engine, or the one given (its
ledger, pools and visits then count).  With a trace, the caller replays it through the
pipeline with `RuleEngine.watch(customer, rule)` on, up to the time, and formats
`engine.explanations[-1]` (the last decision about that customer that considered the rule).
"""

from __future__ import annotations

from collections.abc import Mapping

from gateway.config.model import Config
from gateway.config.yamlsrc import did_you_mean
from gateway.errors import InvalidInput
from gateway.events import EventKind, ZoneEvent
from gateway.identity.model import Customer
from gateway.rules.engine import RuleEngine
from gateway.rules.explanation import Explanation
from gateway.rules.model import Rule, RuleSet


def explain_at(
    rules: RuleSet,
    config: Config,
    customer: Customer,
    rule_id: str,
    at: float,
    engine: RuleEngine | None = None,
    last_seen: Mapping[str, float] | None = None,
) -> Explanation:
    """The explanation of `rule_id` for `customer` at `at` (epoch seconds); changes no state.

    Raises InvalidInput when the rule set has no such rule (with a "did you mean").
    """
    rule = rules.rule(rule_id)
    if rule is None:
        known = [r.id for r in rules.rules]
        hint = did_you_mean(rule_id, known) or f" (rules: {', '.join(known)})"
        raise InvalidInput(f"no rule '{rule_id}'{hint}")
    engine = engine if engine is not None else RuleEngine(rules, config)
    if rule.absent:
        return engine.explain_schedule(at, customer, rule_id, last_seen)
    return engine.explain(trigger_event(rule, config, customer, at), customer, rule_id)


def trigger_event(rule: Rule, config: Config, customer: Customer, at: float) -> ZoneEvent:
    """The event that triggers `rule` at `at`: in its first zone (any rule of no zone: the
    config's first zone), a dwell exactly at its threshold.  Not for absent rules."""
    kind = EventKind(rule.trigger.kind.value)
    first = config.zones[0].id if config.zones else None
    zone = rule.trigger.zones[0] if rule.trigger.zones else first
    dwell = rule.trigger.at_least if kind is EventKind.DWELL else None
    return ZoneEvent(at, kind, zone, customer.phone, customer.id, dwell, {"synthesized": "explain"})
