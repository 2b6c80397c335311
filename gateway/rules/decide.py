"""The decision for one rule and one moment: the checks, the offer, the explanation lines.

`Decider.decide` runs the checks in the engine's order and stops at the first failure, through
the fast path of `checks` (the reason text is built only for a failure); `explain_event` and
`gate_lines` give every line, built by `gates`.  The offer's code comes from the code
pool when the rule names one; the offer id is its idempotency key.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from uuid import UUID

from gateway.config.model import Config
from gateway.events import EventKind, Offer
from gateway.rules.checks import (
    attribute_failure,
    limit_failure,
    policy_failure,
    trigger_failure,
    validity_failure,
)
from gateway.rules.codepools import CodePools
from gateway.rules.context import Context
from gateway.rules.explanation import Line, RuleExplanation, apply_event_cap, verdict_of
from gateway.rules.gates import (
    attribute_line,
    attribute_text,
    code_line,
    condition_lines,
    consent_line,
    holdout_line,
    holdout_rate,
    in_holdout,
    limit_lines,
    policy_lines,
    trigger_line,
    validity_line,
)
from gateway.rules.ledger import Ledger
from gateway.rules.model import Placeholder, Rule, RuleSet
from gateway.rules.policy import PeriodStarts
from gateway.rules.visits import Visit

OFFER_NAMESPACE = UUID("6f1c7c2e-3d5a-5b8e-9a41-7e0d2b9c4f10")


_NAMESPACE_BYTES = OFFER_NAMESPACE.bytes
_DWELL = EventKind.DWELL


def offer_id(rule_id: str, customer_id: str, at: float) -> str:
    """The offer's idempotency key: the same decision in a replay gets the same id.

    `str(uuid5(OFFER_NAMESPACE, f"{rule_id}|{customer_id}|{at!r}"))`, spelled out (SHA-1,
    version 5, RFC 4122 variant) without building a `UUID` object on the hot path.
    """
    name = f"{rule_id}|{customer_id}|{at!r}".encode()
    raw = bytearray(hashlib.sha1(_NAMESPACE_BYTES + name, usedforsecurity=False).digest()[:16])
    raw[6] = (raw[6] & 0x0F) | 0x50  # version 5
    raw[8] = (raw[8] & 0x3F) | 0x80  # variant RFC 4122
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


@dataclass(frozen=True, slots=True)
class Evaluation:
    """What one event produced, and for every candidate rule that did not fire, why."""

    offers: tuple[Offer, ...]
    reasons: Mapping[str, str]

    def __init__(
        self,
        offers: tuple[Offer, ...],
        reasons: Mapping[str, str],
    ) -> None:
        # written out: mypyc compiles it, not the dataclass's (docs/performance.md)
        object.__setattr__(self, "offers", offers)
        object.__setattr__(self, "reasons", reasons)


class Decider:
    """Checks rules for a context, makes offers (recorded in the ledger), explains."""

    def __init__(self, rules: RuleSet, config: Config, ledger: Ledger, pools: CodePools) -> None:
        self.rules = rules
        self.ledger = ledger
        self.pools = pools
        self.pool_exhausted: Counter[str] = Counter()
        # per rule, the offers not sent because the customer lacked an attribute they cite
        self.attribute_missing: Counter[str] = Counter()
        self._declared = config.customers.attributes
        self._config = config
        self._tz = config.store.timezone
        self._zone_names = {g.id: g.name for g in config.geofences}
        self._zone_names.update((z.id, z.name) for z in config.zones)
        self._starts = PeriodStarts(self._tz)
        self._max_offers = rules.policy.max_offers_per_event
        self._store_id, self._store_name = config.store.id, config.store.name

    def decide(self, ctx: Context, visit: Visit | None, candidates: Sequence[Rule]) -> Evaluation:
        """The offers of `candidates` (in priority order) for `ctx`, recorded in the ledger,
        and the reason of each rule that did not fire.  `ctx.local` is `ctx.event.at` in the
        store timezone (as the engine builds it)."""
        offers: list[Offer] = []
        reasons: dict[str, str] = {}
        for rule in candidates:
            if len(offers) >= self._max_offers:
                reasons[rule.id] = f"outranked by rule '{offers[0].rule}' (higher priority)"
                continue
            made = (
                self._blocked(rule, ctx, visit) or self._lacking(rule, ctx) or self._make(rule, ctx)
            )
            if isinstance(made, str):
                reasons[rule.id] = made
                continue
            self.ledger.record(made)
            offers.append(made)
        return Evaluation(tuple(offers), reasons)

    def _blocked(self, rule: Rule, ctx: Context, visit: Visit | None) -> str | None:
        """The reason of the first failing check (what `verdict_of` the lines would say)."""
        if not rule.absent:
            event, key, fired = ctx.event, None, False
            if visit is not None and event.kind is _DWELL:
                key = (rule.id, event.zone or "")
                fired = key in visit.dwell_done
            failed = trigger_failure(rule, event, fired)
            if failed is not None:
                return failed
            if key is not None and visit is not None:
                visit.dwell_done.add(key)
        return (
            validity_failure(rule, ctx.local.date())
            or _failed(rule.check(ctx))
            or limit_failure(rule, ctx, self.ledger, self._starts)
            or policy_failure(rule, self.rules.policy, ctx, self.ledger, self._starts)
        )

    def _lacking(self, rule: Rule, ctx: Context) -> str | None:
        """Why the offer text cannot be filled for this customer (counted), else None."""
        if not rule.offer.attributes:
            return None
        why = attribute_failure(rule, ctx.customer, self._declared)
        if why is not None:
            self.attribute_missing[rule.id] += 1
        return why

    def _make(self, rule: Rule, ctx: Context) -> Offer | str:
        """The offer, or why an exhausted code pool blocks it (a held-out customer takes no
        code, but is blocked like the others when the pool is empty)."""
        cid = ctx.customer.id
        held = rule.commercial and in_holdout(cid, rule.id, holdout_rate(rule, self.rules.policy))
        pool, code = rule.offer.code_pool, rule.offer.code
        if pool is None:
            return self._offer(rule, ctx, code, held)
        if held:
            ok = self.pools.code_of(pool, cid) is not None or self.pools.remaining(pool) > 0
        else:
            code = self.pools.assign(pool, cid, ctx.event.at)
            ok = code is not None
        if not ok:
            self.pool_exhausted[pool] += 1
            return f"code pool '{pool}' is exhausted"
        return self._offer(rule, ctx, code, held)

    def _offer(self, rule: Rule, ctx: Context, code: str | None, held: bool) -> Offer:
        event, customer, tmpl = ctx.event, ctx.customer, rule.offer
        values = {
            Placeholder.ZONE_NAME: self._zone_names.get(event.zone or "", ""),
            Placeholder.STORE_NAME: self._store_name,
            Placeholder.CODE: code or "",
            Placeholder.FIRST_NAME: customer.first_name or "",
        }
        attributes = {
            name: attribute_text(customer.attributes.get(name), kind) or ""
            for name in tmpl.attributes
            if (kind := self._declared.get(name)) is not None
        }
        return Offer(
            id=offer_id(rule.id, customer.id, event.at),
            rule=rule.id,
            store=self._store_id,
            zone=event.zone,
            customer=customer.id,
            token=customer.token,
            created_at=event.at,
            expires_at=event.at + tmpl.expires_in,
            title=tmpl.title.fill(values, attributes),
            body=tmpl.body.fill(values, attributes),
            code=code,
            url=tmpl.url,
            purpose=rule.purpose,
            holdout=held,
        )

    def explain_event(self, rule: Rule, ctx: Context, visit: Visit | None) -> RuleExplanation:
        """Every line of `rule` for an event (an absent rule is never triggered by one)."""
        fired = visit is not None and (rule.id, ctx.event.zone or "") in visit.dwell_done
        trigger = trigger_line(rule, ctx.event, fired)
        return self.explain_lines(rule, [trigger, *self.gate_lines(rule, ctx)])

    def gate_lines(self, rule: Rule, ctx: Context) -> list[Line]:
        policy = self.rules.policy
        lines = [
            consent_line(ctx.customer),
            validity_line(rule, ctx.local.date()),
            *condition_lines(rule, ctx),
            *limit_lines(rule, ctx, self.ledger, self._tz),
            *policy_lines(rule, policy, ctx, self.ledger, self._tz),
        ]
        attributes = attribute_line(rule, ctx.customer, self._declared)
        lines.extend([attributes] if attributes else [])
        code = code_line(rule, ctx.customer, self.pools)
        return [*lines, *([code] if code else []), holdout_line(rule, policy, ctx.customer)]

    def capped(self, found: list[RuleExplanation]) -> list[RuleExplanation]:
        return apply_event_cap(found, self.rules.policy.max_offers_per_event)

    def explain_lines(self, rule: Rule, lines: list[Line]) -> RuleExplanation:
        verdict, reason = verdict_of(lines)
        return RuleExplanation(rule.id, rule.name, tuple(lines), verdict, reason)


def _failed(condition: str | None) -> str | None:
    return f"failed: {condition}" if condition is not None else None
