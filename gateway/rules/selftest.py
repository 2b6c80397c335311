"""`rayon check` for rules: load every rule, then run each rule's inline `tests:`.

Each test runs against a fresh engine holding the whole rule set and the policy, so priority
and pressure between rules show.  By default a test looks at the offers of the rule holding
it (`expect_rule:` names another); a holdout offer counts as an offer (the rule fired).
`still_in: zone` means time passed in the zone: the dwell events whose thresholds were crossed
since the `enter` are emitted at the time each was crossed.  `absent_check: true` runs the
daily check of absent rules at that time for the test's customer.  The test's `pools:` seed
the engine's in-memory code pools.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime

from gateway.config.model import Config
from gateway.config.yamlsrc import did_you_mean
from gateway.errors import Diagnostic
from gateway.events import EventKind, Offer, ZoneEvent
from gateway.rules.codepools import MemoryCodePools
from gateway.rules.engine import RuleEngine
from gateway.rules.lints import lint_rules
from gateway.rules.load import read_rules
from gateway.rules.model import InlineTest, Rule, RuleSet, Step, StepKind

TEST_DEVICE = "phone:test-token"
_KINDS = {
    StepKind.ENTER: EventKind.ENTER,
    StepKind.EXIT: EventKind.EXIT,
    StepKind.VISIT_START: EventKind.VISIT_START,
    StepKind.VISIT_END: EventKind.VISIT_END,
}


def check_rules(config: Config) -> list[Diagnostic]:
    """Every diagnostic of the rules of `config.rules_dir`, then of their inline tests."""
    return check_summary(config).diagnostics


@dataclass(frozen=True, slots=True)
class CheckSummary:
    """What `rayon check` did with the rules: its diagnostics, and how much it checked."""

    diagnostics: list[Diagnostic]
    rules: int = 0
    tests: int = 0
    passed: int = 0


def check_summary(config: Config, today: date | None = None) -> CheckSummary:
    """Load the rules, run their inline tests and, given `today` (the store's date), lint
    them (`gateway.rules.lints`): every diagnostic, and the counts of rules and tests."""
    rules, diagnostics = read_rules(config.rules_dir, config)
    if rules is None:
        return CheckSummary(diagnostics)
    tests = passed = 0
    for rule in rules.rules:
        for index, test in enumerate(rule.tests):
            tests += 1
            problem = run_test(rules, config, rule, test)
            if problem is None:
                passed += 1
            else:
                key = f"tests[{index}]"
                diagnostics.append(Diagnostic(rule.file, test.line, test.col, problem, key))
    if today is not None:
        diagnostics.extend(lint_rules(rules, today))
    return CheckSummary(diagnostics, len(rules.rules), tests, passed)


def run_test(rules: RuleSet, config: Config, rule: Rule, test: InlineTest) -> str | None:
    """None when the test passes, else what went wrong."""
    target = test.expect_rule or rule.id
    if rules.rule(target) is None:
        hint = did_you_mean(target, [r.id for r in rules.rules])
        return f"test '{test.name}': expect_rule '{target}' is not a rule{hint}"
    engine = RuleEngine(rules, config, pools=MemoryCodePools(test.pools))
    offers: list[Offer] = []
    reason = None
    for item in steps_to_events(test, engine.dwell_thresholds()):
        if isinstance(item, ZoneEvent):
            results = [engine.evaluate(item, test.customer)]
        else:
            results = [ev for _, ev in engine.evaluate_schedule(item, [test.customer])]
            if not results and (due := rules.rule(target)) is not None and due.absent:
                reason = _absent_reason(engine, item, test, target)
        for result in results:
            offers.extend(o for o in result.offers if o.rule == target)
            reason = result.reasons.get(target, reason)
    return _verdict(test, target, offers, reason, config)


def _absent_reason(engine: RuleEngine, at: float, test: InlineTest, target: str) -> str | None:
    """Why the absent rule did not even consider the customer (not due, or seen recently)."""
    found = engine.explain_schedule(at, test.customer, target)
    return next((r.reason for r in found.rules if r.reason), None)


def _verdict(
    test: InlineTest, target: str, offers: list[Offer], reason: str | None, config: Config
) -> str | None:
    name = f"test '{test.name}'"
    if test.expect_offer and not offers:
        why = reason or f"no event of the test triggers rule '{target}'"
        return f"{name} expected an offer, got none ({why})"
    if test.expect_count is not None and len(offers) != test.expect_count:
        return f"{name} expected {test.expect_count} offer(s), got {len(offers)} ({reason or ''})"
    if not test.expect_offer and offers:
        when = datetime.fromtimestamp(offers[0].created_at, config.store.timezone)
        return f"{name} expected no offer, got '{offers[0].title}' at {when:%Y-%m-%d %H:%M:%S}"
    for key, want in test.expect_fields.items():
        got = getattr(offers[0], key)
        if str(got) != str(want) and got != want:
            return f"{name} expected {key} '{want}', got '{got}'"
    return None


def steps_to_events(
    test: InlineTest, thresholds: dict[str, tuple[float, ...]]
) -> Iterator[ZoneEvent | float]:
    """The zone events the steps of `test` stand for (dwell events for `still_in`), and the
    times of its `absent_check` steps (floats)."""
    walk = _Walk(test.customer.id, thresholds)
    for step in test.steps:
        if step.kind is StepKind.ABSENT_CHECK:
            yield step.at
        else:
            yield from walk.step(step)


class _Walk:
    """Turns inline-test steps into zone events, remembering enters and the visit start."""

    def __init__(self, customer_id: str, thresholds: dict[str, tuple[float, ...]]) -> None:
        self.customer_id = customer_id
        self.thresholds = thresholds
        self.entered: dict[str, float] = {}
        self.emitted: dict[str, set[float]] = {}
        self.visit_start: float | None = None

    def event(self, at: float, kind: EventKind, zone: str | None, dwell: float | None) -> ZoneEvent:
        return ZoneEvent(at, kind, zone, TEST_DEVICE, self.customer_id, dwell)

    def step(self, step: Step) -> Iterator[ZoneEvent]:
        zone, dwell = step.zone, None
        if step.kind is StepKind.STILL_IN and zone is not None:
            yield from self.still_in(step.at, zone)
            return
        if step.kind is StepKind.ENTER and zone is not None:
            self.entered[zone], self.emitted[zone] = step.at, set()
        elif step.kind is StepKind.EXIT and zone is not None and zone in self.entered:
            dwell = step.at - self.entered.pop(zone)
        elif step.kind is StepKind.VISIT_START:
            self.visit_start = step.at
        elif step.kind is StepKind.VISIT_END and self.visit_start is not None:
            dwell = step.at - self.visit_start
        yield self.event(step.at, _KINDS[step.kind], zone, dwell)

    def still_in(self, at: float, zone: str) -> Iterator[ZoneEvent]:
        if zone not in self.entered:  # still_in without an enter: the stay starts now
            self.entered[zone], self.emitted[zone] = at, set()
            yield self.event(at, EventKind.ENTER, zone, None)
        start, done = self.entered[zone], self.emitted[zone]
        for threshold in self.thresholds.get(zone, ()):
            if threshold not in done and start + threshold <= at:
                done.add(threshold)
                yield self.event(start + threshold, EventKind.DWELL, zone, threshold)
