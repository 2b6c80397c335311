"""`rayon explain` without an observed event: what can be said about a rule for a customer at
a time, and nothing more.

`explain_at` never invents the trigger.  For a zone rule it marks the trigger "not
observed" and evaluates what does not need the event, against an engine's state (a fresh
engine, or the one given, whose ledger, pools and visits then count): consent, validity,
each condition that reads only the customer and the time, the limits, the policy, the code
pool, the holdout.  Conditions that read the event or the visit (`zone`, `visit.*`,
`"{zone}"`) and per-visit caps are "not observed" too.  The verdict is then "would fire if
triggered", or the first check that blocks it anyway.  An `absent` rule has no event to
observe: its daily check is evaluated from the last visit known.  `note` says what the
explanation rests on (no trace, or a trace without a decision) and is printed with it.

With a trace, the caller replays it through the pipeline with `RuleEngine.watch(customer,
rule)` on, up to the time, and formats `engine.explanations[-1]` (the last decision about
that customer that considered the rule); only when there is none does it come here.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import replace

from gateway.config.model import Config
from gateway.config.yamlsrc import did_you_mean
from gateway.errors import InvalidInput
from gateway.events import EventKind, ZoneEvent
from gateway.identity.model import Customer
from gateway.rules.engine import RuleEngine
from gateway.rules.explanation import (
    Explanation,
    Line,
    RuleExplanation,
    Section,
    Verdict,
    verdict_of,
)
from gateway.rules.model import Rule, RuleSet

NO_TRACE = "no trace given: whether and when the trigger happened is not known"
NOT_OBSERVED = "not observed"
_VISIT_CAPS = (Section.LIMIT, Section.POLICY)


def explain_at(
    rules: RuleSet,
    config: Config,
    customer: Customer,
    rule_id: str,
    at: float,
    engine: RuleEngine | None = None,
    last_seen: Mapping[str, float] | None = None,
    note: str = NO_TRACE,
) -> Explanation:
    """The explanation of `rule_id` for `customer` at `at` (epoch seconds) with no observed
    event; changes no state.

    Raises InvalidInput when the rule set has no such rule (with a "did you mean").
    """
    rule = rules.rule(rule_id)
    if rule is None:
        known = [r.id for r in rules.rules]
        hint = did_you_mean(rule_id, known) or f" (rules: {', '.join(known)})"
        raise InvalidInput(f"no rule '{rule_id}'{hint}")
    engine = engine if engine is not None else RuleEngine(rules, config)
    if rule.absent:
        found = engine.explain_schedule(at, customer, rule_id, last_seen)
        return replace(found, notes=(note, "the last visit is the one the customer record holds"))
    probe = engine.explain(_probe(rule, config, customer, at), customer, rule_id)
    explained = tuple(unobserved(rule, r) for r in probe.rules)
    return Explanation(probe.customer, probe.local, "no event observed", explained, (note,))


def unobserved(rule: Rule, found: RuleExplanation) -> RuleExplanation:
    """`found` with every line that needs the event marked "not observed", and the verdict
    it leaves: "would fire if triggered" when nothing else blocks."""
    lines = list(_unobserved_lines(rule, found.lines))
    verdict, reason = verdict_of(lines)
    if verdict in (Verdict.FIRES, Verdict.HOLDOUT):
        reason = f"the trigger ({rule.trigger.describe()}) was not observed"
        if verdict is Verdict.HOLDOUT:
            reason += "; the customer is in the control group: it would be recorded, not sent"
        verdict = Verdict.IF_TRIGGERED
    return replace(found, lines=tuple(lines), verdict=verdict, reason=reason)


def _unobserved_lines(rule: Rule, lines: tuple[Line, ...]) -> Iterator[Line]:
    conditions = iter(rule.conditions)
    for line in lines:
        if line.section is Section.TRIGGER:
            yield Line(Section.TRIGGER, line.label, NOT_OBSERVED, None)
        elif line.section is Section.CONDITION and rule.conditions:
            needs = next(conditions).needs_event
            yield _blank(line, "the event or the visit") if needs else line
        elif line.section in _VISIT_CAPS and "per visit" in line.label:
            yield _blank(line, "the visit")
        else:
            yield line


def _blank(line: Line, what: str) -> Line:
    return replace(line, value=f"{NOT_OBSERVED} (needs {what})", passed=None, reason="")


def _probe(rule: Rule, config: Config, customer: Customer, at: float) -> ZoneEvent:
    """An event of the rule's kind at `at`, for the engine to evaluate the checks that do not
    depend on it (the lines that do are then marked not observed).  Not for absent rules."""
    kind = EventKind(rule.trigger.kind.value)
    first = config.zones[0].id if config.zones else None
    zone = rule.trigger.zones[0] if rule.trigger.zones else first
    dwell = rule.trigger.at_least if kind is EventKind.DWELL else None
    return ZoneEvent(at, kind, zone, customer.phone, customer.id, dwell, {"synthesized": "explain"})
