"""Why a rule did or did not fire (`rayon explain`): the values, and their text in English.

An `Explanation` covers one moment (an event, or the daily run of `absent` rules) for one
customer: for each rule considered, one `Line` per check — the trigger, consent, validity,
each `if:` condition with the value it looked at, each limit with its count, each policy
cap, the code pool, the holdout — and the verdict, which is the first failing check in the
engine's own order (consent, trigger, validity, conditions, limits, policy, code pool), so it
is the same reason `RuleEngine.evaluate` gives.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum


class Section(StrEnum):
    """The kind of check a line is about."""

    TRIGGER = "trigger"
    CONSENT = "consent"
    VALIDITY = "validity"
    CONDITION = "condition"
    LIMIT = "limit"
    POLICY = "policy"
    ATTRIBUTES = "offer text"  # the CRM attributes its placeholders cite
    CODE_POOL = "code pool"
    HOLDOUT = "holdout"


# the engine's order: the first failing line of these sections decides the verdict
BLOCKING_ORDER = (
    Section.CONSENT,
    Section.TRIGGER,
    Section.VALIDITY,
    Section.CONDITION,
    Section.LIMIT,
    Section.POLICY,
    Section.ATTRIBUTES,
    Section.CODE_POOL,
)


@dataclass(frozen=True, slots=True)
class Line:
    """One check: what it is (`label`), what it looked at (`value`), whether it passed.

    `passed` is None for a line that only informs (a transactional rule skips the policy).
    `reason` is the engine's reason when the line blocks the rule.
    """

    section: Section
    label: str
    value: str
    passed: bool | None
    reason: str = ""


class Verdict(StrEnum):
    """What the rule did."""

    FIRES = "fires"
    HOLDOUT = "held out"  # it fired, into the control group: recorded, not sent
    BLOCKED = "blocked"
    NOT_TRIGGERED = "not triggered"
    OUTRANKED = "outranked"
    # no event was observed (explain without a trace): every other check passes
    IF_TRIGGERED = "would fire if triggered"


@dataclass(frozen=True, slots=True)
class RuleExplanation:
    """One rule's lines and verdict; `reason` is why it did not fire (empty when it did)."""

    rule: str
    name: str
    lines: tuple[Line, ...]
    verdict: Verdict
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Explanation:
    """Every rule considered for one customer at one moment (`event` says what happened)."""

    customer: str
    local: datetime
    event: str
    rules: tuple[RuleExplanation, ...]
    # what the explanation rests on, printed with it (left out of the repr, which digests of
    # the engine's decisions hash: tests/test_rules_fastpath.py)
    notes: tuple[str, ...] = field(default=(), repr=False)

    def rule(self, rule_id: str) -> RuleExplanation | None:
        """The explanation of one rule, or None when it was not considered."""
        return next((r for r in self.rules if r.rule == rule_id), None)


def verdict_of(lines: Sequence[Line]) -> tuple[Verdict, str]:
    """The verdict of a rule's lines, and the reason of the line that decided it."""
    for section in BLOCKING_ORDER:
        failed = next((x for x in lines if x.section is section and x.passed is False), None)
        if failed is not None:
            kind = Verdict.NOT_TRIGGERED if section is Section.TRIGGER else Verdict.BLOCKED
            return kind, failed.reason or failed.label
    held = next((x for x in lines if x.section is Section.HOLDOUT and x.passed is False), None)
    return (Verdict.HOLDOUT, held.value) if held is not None else (Verdict.FIRES, "")


def apply_event_cap(found: Sequence[RuleExplanation], cap: int) -> list[RuleExplanation]:
    """Rules (in priority order) that would fire past `max_offers_per_event` are outranked."""
    out, first, fired = [], "", 0
    for item in found:
        if item.verdict in (Verdict.FIRES, Verdict.HOLDOUT):
            if fired >= cap:
                why = f"outranked by rule '{first}' (higher priority)"
                item = replace(item, verdict=Verdict.OUTRANKED, reason=why)
            else:
                fired, first = fired + 1, first or item.rule
        out.append(item)
    return out


_MARK = {True: "✓", False: "✗", None: "·"}


def format_explanation(explanation: Explanation) -> str:
    """The explanation as aligned English lines, ✓/✗ per check, a verdict per rule."""
    when = f"{explanation.local:%Y-%m-%d %H:%M:%S %z}"
    out = [f"customer {explanation.customer} at {when}: {explanation.event}"]
    out.extend(f"  note: {note}" for note in explanation.notes)
    if not explanation.rules:
        out.append("  no rule is triggered by this event")
    for rule in explanation.rules:
        out.append("")
        out.extend(_format_rule(rule))
    return "\n".join(out) + "\n"


def _format_rule(rule: RuleExplanation) -> list[str]:
    head = f"rule {rule.rule}" + (f" — {rule.name}" if rule.name and rule.name != rule.rule else "")
    return [head, *(f"  {line}" for line in check_lines(rule)), f"  → {verdict_text(rule)}"]


def check_lines(rule: RuleExplanation) -> list[str]:
    """The rule's checks as `format_explanation` prints them (without their indent): a mark
    ✓ ✗ or ·, the section, the label and the value, aligned."""
    section_w = max(len(x.section) for x in rule.lines) if rule.lines else 0
    label_w = max(len(x.label) for x in rule.lines) if rule.lines else 0
    return [
        f"{_MARK[x.passed]} {x.section:<{section_w}}  {x.label:<{label_w}}  {x.value}".rstrip()
        for x in rule.lines
    ]


def verdict_text(rule: RuleExplanation) -> str:
    """`blocked: <reason>`: the verdict as `format_explanation` prints it after the arrow."""
    return f"{rule.verdict}" + (f": {rule.reason}" if rule.reason else "")
