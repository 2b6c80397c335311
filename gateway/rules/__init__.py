"""Marketers' rules (DESIGN §4): format, loader, compiled engine, policy and inline tests.

load_rules(rules_dir, config) -> RuleSet          all-or-nothing, ConfigError lists every error
RuleEngine(rules, config, ledger).on_event(event, customer) -> list[Offer]
check_rules(config) -> list[Diagnostic]            load + run every rule's inline tests
"""

from __future__ import annotations

from gateway.rules.engine import Evaluation, RuleEngine, in_holdout, offer_id
from gateway.rules.ledger import Ledger
from gateway.rules.load import load_rules, read_rules
from gateway.rules.model import Limits, Period, Policy, Rule, RuleSet, Trigger
from gateway.rules.selftest import check_rules

__all__ = [
    "Evaluation",
    "Ledger",
    "Limits",
    "Period",
    "Policy",
    "Rule",
    "RuleEngine",
    "RuleSet",
    "Trigger",
    "check_rules",
    "in_holdout",
    "load_rules",
    "offer_id",
    "read_rules",
]
