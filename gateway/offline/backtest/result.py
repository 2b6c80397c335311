"""What `rayon backtest` counts: why a considered rule did not fire (`Cause`), the per-rule
results and the `Tally` that builds them from the engine's evaluations.

A "why not" count is per decision: each event that triggered the rule and was stopped for that
reason counts once.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from zoneinfo import ZoneInfo

from gateway.events import Purpose
from gateway.rules.decide import Evaluation
from gateway.rules.model import Rule, RuleSet

HOURS = 24


class Cause(StrEnum):
    """Why a considered rule did not fire, from the engine's reason.  The value is the CSV
    column and, split at the dot, the place of the count in the JSON report."""

    CAP_PER_CUSTOMER = "caps.per_customer"
    CAP_COOLDOWN = "caps.cooldown"
    CAP_TOTAL = "caps.total"
    POLICY_PRESSURE = "policy.pressure"
    POLICY_QUIET_HOURS = "policy.quiet_hours"
    POLICY_MIN_GAP = "policy.min_gap"
    POLICY_MAX_PER_VISIT = "policy.max_per_visit"
    NO_CONSENT = "no_consent"
    CONDITIONS = "not_met.conditions"
    VALIDITY = "not_met.validity"
    TRIGGER = "not_met.trigger"
    OUTRANKED = "not_met.outranked"
    CODE_POOL = "not_met.code_pool"
    ATTRIBUTES = "not_met.attributes"  # the customer lacks a CRM attribute the offer cites
    OTHER = "not_met.other"


# What a cause is called in the reports' "top reasons" (for a marketer, not a developer).
LABELS: Mapping[Cause, str] = {
    Cause.CAP_PER_CUSTOMER: "per-customer limit",
    Cause.CAP_COOLDOWN: "cooldown",
    Cause.CAP_TOTAL: "campaign budget",
    Cause.POLICY_PRESSURE: "pressure",
    Cause.POLICY_QUIET_HOURS: "quiet hours",
    Cause.POLICY_MIN_GAP: "min_gap",
    Cause.POLICY_MAX_PER_VISIT: "max_offers_per_visit",
    Cause.NO_CONSENT: "no push consent",
    Cause.CONDITIONS: "conditions not met",
    Cause.VALIDITY: "outside its dates",
    Cause.TRIGGER: "trigger not reached",
    Cause.OUTRANKED: "outranked (priority)",
    Cause.CODE_POOL: "code pool empty",
    Cause.ATTRIBUTES: "a CRM attribute missing",
    Cause.OTHER: "other",
}
TOP = 3  # reasons shown per rule


def top_reasons(causes: Mapping[Cause, int], n: int = TOP) -> list[tuple[Cause, int]]:
    """The `n` most frequent causes that stopped a rule, most frequent first."""
    found = [(c, k) for c, k in causes.items() if k]
    return sorted(found, key=lambda ck: (-ck[1], list(Cause).index(ck[0])))[:n]


def why_not_text(r: RuleResult) -> str:
    """One line on why `r` did not fire: its top reasons with their counts, or why none."""
    top = top_reasons(r.causes)
    if top:
        return " · ".join(f"{LABELS[c]} {k}" for c, k in top)
    if r.offers or r.holdout:
        return "—"
    return "never triggered (no event matched its trigger)"


# The engine's reasons (gateway/rules/gates.py, engine.py), by how they start.
_PREFIXES: tuple[tuple[str, Cause], ...] = (
    ("no marketing_push consent", Cause.NO_CONSENT),
    ("limit reached", Cause.CAP_PER_CUSTOMER),
    ("per_customer", Cause.CAP_PER_CUSTOMER),
    ("cooldown", Cause.CAP_COOLDOWN),
    ("campaign budget", Cause.CAP_TOTAL),
    ("pressure", Cause.POLICY_PRESSURE),
    ("quiet hours", Cause.POLICY_QUIET_HOURS),
    ("min_gap", Cause.POLICY_MIN_GAP),
    ("max_offers_per_visit", Cause.POLICY_MAX_PER_VISIT),
    ("failed:", Cause.CONDITIONS),
    ("not valid yet", Cause.VALIDITY),
    ("no longer valid", Cause.VALIDITY),
    ("the event is not", Cause.TRIGGER),
    ("dwell", Cause.TRIGGER),
    ("the daily absent check", Cause.TRIGGER),
    ("no last visit known", Cause.TRIGGER),
    ("seen ", Cause.TRIGGER),
    ("outranked", Cause.OUTRANKED),
    ("code pool", Cause.CODE_POOL),
    ("the offer text needs", Cause.ATTRIBUTES),
)


def classify(reason: str) -> Cause:
    """The cause of one of the engine's reasons (`Cause.OTHER` when it is not known)."""
    return next((cause for prefix, cause in _PREFIXES if reason.startswith(prefix)), Cause.OTHER)


# -- results -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RuleResult:
    """One rule over the whole trace."""

    rule: str
    name: str
    purpose: Purpose
    offers: int  # would go out (holdout excluded)
    customers: int  # distinct customers who would get at least one
    holdout: int  # fired into the control group: recorded, never sent
    causes: Mapping[Cause, int]  # every Cause, 0 when none
    by_hour: tuple[int, ...]  # offers per store-local hour 0..23


@dataclass(frozen=True, slots=True)
class BacktestResult:
    """The whole report: the trace, the rules, and the customers reached by any rule."""

    trace: str
    rules_dir: str
    timezone: str
    inputs: int
    bad_lines: int
    events: int
    customers_known: int
    customers_reached: int
    first_at: float | None
    last_at: float | None
    rules: tuple[RuleResult, ...]

    @property
    def offers(self) -> int:
        return sum(r.offers for r in self.rules)

    @property
    def holdout(self) -> int:
        return sum(r.holdout for r in self.rules)

    @property
    def by_hour(self) -> tuple[int, ...]:
        return tuple(sum(r.by_hour[h] for r in self.rules) for h in range(HOURS))

    def cause(self, cause: Cause) -> int:
        return sum(r.causes[cause] for r in self.rules)


@dataclass(slots=True)
class _RuleTally:
    offers: int = 0
    holdout: int = 0
    customers: set[str] = field(default_factory=set)
    causes: Counter[Cause] = field(default_factory=Counter)
    by_hour: list[int] = field(default_factory=lambda: [0] * HOURS)

    def result(self, rule: Rule) -> RuleResult:
        causes = {c: self.causes[c] for c in Cause}
        n = len(self.customers)
        return RuleResult(
            rule.id,
            rule.name,
            rule.purpose,
            self.offers,
            n,
            self.holdout,
            causes,
            tuple(self.by_hour),
        )


class Tally:
    """Counts every evaluation the engine makes, per rule."""

    def __init__(self, tz: ZoneInfo) -> None:
        self._tz = tz
        self.rules: dict[str, _RuleTally] = {}

    def record(self, found: Evaluation) -> None:
        """Count the offers of one evaluation and the cause of each reason."""
        for offer in found.offers:
            tally = self.rules.setdefault(offer.rule, _RuleTally())
            if offer.holdout:
                tally.holdout += 1
                continue
            tally.offers += 1
            tally.customers.add(offer.customer)
            tally.by_hour[datetime.fromtimestamp(offer.created_at, self._tz).hour] += 1
        for rule, reason in found.reasons.items():
            self.rules.setdefault(rule, _RuleTally()).causes[classify(reason)] += 1

    def results(self, rules: RuleSet) -> tuple[RuleResult, ...]:
        """Every rule of the set, in id order."""
        ordered = sorted(rules.rules, key=lambda r: r.id)
        return tuple(self.rules.get(r.id, _RuleTally()).result(r) for r in ordered)

    def reached(self) -> int:
        """Distinct customers who would get an offer of any rule."""
        return len(set[str]().union(*(t.customers for t in self.rules.values())))
