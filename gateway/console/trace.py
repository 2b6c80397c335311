"""A visit's per-decision trace, for a visit picked on the map or the ticker by its pseudonym.

The visit is found by computing `gateway.ids.visit_pseudonym` (with the store's key, which the
gateway keeps in the database) over the visits started in the last 7 days.  Its zone events
are then fed, at their own times, through the product's rule engine with every rule watched
(`RuleEngine.watch`), each explained just before its decision (`gateway.rules.explanation`:
the same checks and text as `rayon explain`).  The engine starts where the gateway was when
the visit began: the caps count every offer decided before it (as `rayon explain` and
`rayon backtest --recorded` seed them), the code pools hold the codes handed out before it,
and the customer's record has the visit count and last visit of that moment.  The rules are
today's set (`config.rules_dir`), not necessarily the set that ran then.

Nothing that names the customer leaves this module: no customer id, device id, token, first
name nor any CRM attribute value.  A condition on the customer shows only whether it held;
whatever the rule texts might echo of them is masked.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from sqlmodel import Session, col, select

from gateway.config.model import Config
from gateway.console.history import History
from gateway.errors import ConfigError
from gateway.events import Offer, ZoneEvent
from gateway.identity.model import Customer
from gateway.ids import visit_pseudonym
from gateway.rules.codepools import MemoryCodePools
from gateway.rules.engine import RuleEngine
from gateway.rules.explanation import (
    Line,
    RuleExplanation,
    Section,
    Verdict,
    check_lines,
    verdict_text,
)
from gateway.rules.load import load_rules
from gateway.store.asof import customers_at
from gateway.store.repo import Visit
from gateway.store.tables import (
    NOT_DECIDED,
    CodeRow,
    CustomerRow,
    OfferRow,
    VisitRow,
    ZoneEventRow,
    row_to_customer,
    row_to_event,
    row_to_offer,
)

LOOK_BACK_S = 7 * 86400.0
_OPEN = 1e12  # the end of an open visit: no bound (year 33658)
MASK = "•••"
_FIRED = (Verdict.FIRES, Verdict.HOLDOUT)


@dataclass(frozen=True, slots=True)
class Decision:
    """One rule considered at one zone event: the verdict (`fires`, `blocked: <why>` …), its
    checks as `rayon explain` prints them, and the recorded offer's state when the decision
    made one (None otherwise).  `event` is the event as explain shows it
    (`dwell aisle-tv (30s)`)."""

    at: float
    rule: str
    state: str | None
    verdict: str
    lines: tuple[str, ...]
    event: str = ""


@dataclass(frozen=True, slots=True)
class VisitTrace:
    """A visit named by its pseudonym: its times, zone events `(at, kind, zone)`, decisions,
    and `notes` on what the trace rests on (rules that do not load, an anonymous visit)."""

    pseudonym: str
    started_at: float
    ended_at: float | None
    zones: tuple[tuple[float, str, str | None], ...]
    decisions: tuple[Decision, ...]
    notes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class _Rows:
    """What the database holds about one visit, read in one transaction."""

    visit: Visit
    events: tuple[ZoneEvent, ...]
    customer: Customer | None
    before: tuple[Offer, ...]  # every offer decided before the visit (the caps count them)
    during: tuple[tuple[Offer, str], ...]  # the customer's offers in the visit, with state
    codes: tuple[tuple[str, str, str | None, float | None], ...]


def visit_trace(config: Config, history: History, pseudonym: str, now: float) -> VisitTrace | None:
    """The trace of the visit named `pseudonym` among those started since 7 days before
    `now`, or None when there is none (or the gateway never made its key)."""
    key = history.visit_key()
    if key is None:
        return None
    with history.reading() as session:
        visit = _find_visit(session, key, pseudonym, now)
        rows = _read(session, visit) if visit is not None else None
    if rows is None:
        return None
    zones = tuple((e.at, e.kind.value, e.zone) for e in rows.events)
    decisions, notes = _decisions(config, rows)
    ended = rows.visit.ended_at
    return VisitTrace(pseudonym, rows.visit.started_at, ended, zones, decisions, notes)


def _find_visit(session: Session, key: bytes, pseudonym: str, now: float) -> Visit | None:
    # No upper bound: a store clock ahead of the console's (the demo's accelerated one) still
    # finds its visits.
    query = select(VisitRow).where(col(VisitRow.started_at) >= now - LOOK_BACK_S)
    for v in session.exec(query):
        if visit_pseudonym(key, v.device, v.started_at) == pseudonym:
            return Visit(v.device, v.customer, v.started_at, v.ended_at)
    return None


def _read(session: Session, visit: Visit) -> _Rows:
    # An open visit has everything of its device since it started, even ahead of the console's
    # clock (the demo's store runs faster than the wall clock).
    end = visit.ended_at if visit.ended_at is not None else _OPEN
    events = select(ZoneEventRow).where(
        col(ZoneEventRow.device) == visit.device,
        col(ZoneEventRow.at) >= visit.started_at,
        col(ZoneEventRow.at) <= end,
    )
    before = select(OfferRow).where(
        col(OfferRow.created_at) < visit.started_at,
        col(OfferRow.state).not_in([s.value for s in NOT_DECIDED]),
    )
    during = select(OfferRow).where(
        col(OfferRow.customer) == (visit.customer or ""),
        col(OfferRow.created_at) >= visit.started_at,
        col(OfferRow.created_at) <= end,
    )
    codes = select(CodeRow).order_by(col(CodeRow.pool), col(CodeRow.code))
    ordered = events.order_by(col(ZoneEventRow.at), col(ZoneEventRow.id))
    return _Rows(
        visit,
        tuple(row_to_event(r) for r in session.exec(ordered).all()),
        _customer(session, visit) if visit.customer is not None else None,
        tuple(row_to_offer(r) for r in session.exec(before.order_by(col(OfferRow.created_at)))),
        tuple((row_to_offer(r), r.state) for r in session.exec(during).all()),
        tuple((r.pool, r.code, r.customer, r.assigned_at) for r in session.exec(codes).all()),
    )


def _customer(session: Session, visit: Visit) -> Customer | None:
    """The customer's record as it was when the visit started (visits counted then)."""
    row = session.get(CustomerRow, visit.customer)
    if row is None:
        return None
    query = select(VisitRow).where(col(VisitRow.customer) == visit.customer)
    stored = [Visit(v.device, v.customer, v.started_at, v.ended_at) for v in session.exec(query)]
    return customers_at([row_to_customer(row)], stored, visit.started_at)[0]


def _decisions(config: Config, rows: _Rows) -> tuple[tuple[Decision, ...], tuple[str, ...]]:
    if rows.customer is None:
        return (), ("no customer record for this visit: no rule was evaluated",)
    try:
        rules = load_rules(config.rules_dir, config)
    except ConfigError as exc:
        first = exc.diagnostics[0] if exc.diagnostics else exc
        return (), (f"the rules do not load, nothing to explain: {first}",)
    customer = rows.customer
    engine = RuleEngine(rules, config, pools=_pools(rows.codes, rows.visit.started_at))
    for offer in rows.before:
        engine.ledger.record(offer)
    engine.watch(customer.id)
    out: list[Decision] = []
    for event in rows.events:
        seen = len(engine.explanations)
        engine.evaluate(event, customer)
        for explanation in engine.explanations[seen:]:
            out.extend(
                _decision(event, explanation.event, r, rows.during) for r in explanation.rules
            )
    mask = _Mask(customer)
    return tuple(mask.decision(d) for d in out), ()


def _pools(
    codes: Iterable[tuple[str, str, str | None, float | None]], since: float
) -> MemoryCodePools:
    """The code pools as they were at `since`: the codes handed out before it are taken."""
    pools = MemoryCodePools()
    for pool, code, customer, assigned_at in codes:
        if assigned_at is None or assigned_at >= since:
            pools.add(pool, [code])
        else:
            pools.restore(pool, code, customer)
    return pools


def _decision(
    event: ZoneEvent,
    shown: str,
    found: RuleExplanation,
    during: Sequence[tuple[Offer, str]],
) -> Decision:
    state = None
    if found.verdict in _FIRED:
        made = (s for o, s in during if o.rule == found.rule and o.created_at == event.at)
        state = next(made, None)
    private = replace(found, lines=tuple(_private(line) for line in found.lines))
    return Decision(
        event.at, found.rule, state, verdict_text(private), tuple(check_lines(private)), shown
    )


def _private(line: Line) -> Line:
    """A check without the customer's data in it: a condition on the customer, and the CRM
    attributes an offer cites, show only whether they hold; a held code is not shown."""
    if line.section is Section.CONDITION and "customer." in f"{line.label} {line.value}":
        return replace(line, value="")
    if line.section is Section.ATTRIBUTES:
        return replace(line, value="")
    if line.section is Section.CODE_POOL and line.value.startswith("customer holds"):
        return replace(line, value="customer holds a code")
    return line


class _Mask:
    """Masks every identifying value of one customer wherever a text echoes it."""

    def __init__(self, customer: Customer) -> None:
        found: set[str] = {customer.id, customer.token, *customer.device_ids}
        if customer.first_name:
            found.add(customer.first_name)
        found.update(_values(customer.attributes.values()))
        self._secrets = sorted((s for s in found if len(s) >= 2), key=len, reverse=True)

    def text(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        return text

    def decision(self, d: Decision) -> Decision:
        return replace(
            d,
            verdict=self.text(d.verdict),
            lines=tuple(self.text(line) for line in d.lines),
            event=self.text(d.event),
        )


def _values(values: Iterable[Any]) -> Iterable[str]:
    """The texts of CRM attribute values (lists flattened); booleans say nothing alone."""
    for value in values:
        if isinstance(value, str):
            yield value
        elif isinstance(value, int | float) and not isinstance(value, bool) and abs(value) >= 1000:
            yield str(value)
        elif isinstance(value, list | tuple):
            yield from _values(value)
