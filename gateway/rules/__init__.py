"""Marketers' rules (DESIGN §4): format, loader, compiled engine, policy, inline tests, explain.

load_rules(rules_dir, config) -> RuleSet          all-or-nothing, ConfigError lists every error
RuleEngine(rules, config, ledger, pools)
    .on_event(event, customer) -> list[Offer]      zone and geofence events
    .on_schedule(now, customers, last_seen) -> list[Offer]   daily `absent` rules (every tick)
    .explain(event, customer, rule_id) -> Explanation        every check, no state change
    .watch(customer_id, rule_id); .explanations    explanations taken during a replay
explain_at(rules, config, customer, rule_id, at) -> Explanation   the rule's own trigger at `at`
format_explanation(explanation) -> str             aligned English, ✓/✗ per check
CodePools / MemoryCodePools                        unique codes per customer (`code_pool:`)
check_rules(config) -> list[Diagnostic]            load + run every rule's inline tests
"""

from __future__ import annotations

from gateway.rules.codepools import CodePools, MemoryCodePools
from gateway.rules.decide import Evaluation, offer_id
from gateway.rules.engine import RuleEngine
from gateway.rules.explain import explain_at, trigger_event
from gateway.rules.explanation import (
    Explanation,
    Line,
    RuleExplanation,
    Section,
    Verdict,
    format_explanation,
)
from gateway.rules.gates import in_holdout
from gateway.rules.ledger import Ledger
from gateway.rules.load import load_rules, read_rules
from gateway.rules.model import Limits, Period, Policy, Rule, RuleSet, Trigger, TriggerKind
from gateway.rules.selftest import check_rules

__all__ = [
    "CodePools",
    "Evaluation",
    "Explanation",
    "Ledger",
    "Limits",
    "Line",
    "MemoryCodePools",
    "Period",
    "Policy",
    "Rule",
    "RuleEngine",
    "RuleExplanation",
    "RuleSet",
    "Section",
    "Trigger",
    "TriggerKind",
    "Verdict",
    "check_rules",
    "explain_at",
    "format_explanation",
    "in_holdout",
    "load_rules",
    "offer_id",
    "read_rules",
    "trigger_event",
]
