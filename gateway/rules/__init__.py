"""Marketers' rules (docs/rules.md): format, loader, compiled engine, policy, inline tests, explain.

load_rules(rules_dir, config) -> RuleSet          all-or-nothing, ConfigError lists every error
RuleEngine(rules, config, ledger, pools)
    .on_event(event, customer) -> list[Offer]      zone and geofence events
    .on_schedule(now, customers, last_seen) -> list[Offer]   daily `absent` rules (every tick)
    .explain(event, customer, rule_id) -> Explanation        every check, no state change
    .watch(customer_id, rule_id); .explanations    explanations taken during a replay
explain_at(rules, config, customer, rule_id, at) -> Explanation   no event seen: "not observed"
format_explanation(explanation) -> str             aligned English, ✓/✗ per check
CodePools / MemoryCodePools                        unique codes per customer (`code_pool:`)
check_rules(config) -> list[Diagnostic]            load + run every rule's inline tests
"""
