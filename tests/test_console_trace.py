"""The console's visit trace: two visits replayed through the real pipeline into a SQLite
database (tests/shopping.py), found by their pseudonyms, explained decision by decision with
the caps as they were, and nothing in the trace that names the customer."""

from __future__ import annotations

import dataclasses
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest

from gateway.console.history import History
from gateway.console.trace import LOOK_BACK_S, Decision, VisitTrace, visit_trace
from gateway.ids import visit_pseudonym
from gateway.store.repo import Store, Visit
from tests.shopping import BRUNO, INES, LOYALTY_NUMBER, Shop, shop

# A rule whose own text echoes the customer's data: the trace must mask it.
VIP = """\
id: vip-thanks
name: "Merci"
purpose: transactional
when:
  enter: {zone: checkout}
if:
  - customer.first_name: {is: Inès}
  - customer.attributes.loyalty_number: {is: "4970123456789"}
then:
  offer:
    title: "Merci"
    body: "Merci de votre fidélité."
    expires_in: 30m
"""


@pytest.fixture(scope="module")
def shopped(tmp_path_factory: pytest.TempPathFactory) -> Shop:
    return shop(tmp_path_factory.mktemp("console-trace"), {"vip-thanks.yaml": VIP})


@pytest.fixture(scope="module")
def history(shopped: Shop) -> Iterator[History]:
    h = History(shopped.config.database.url)
    yield h
    h.close()


@pytest.fixture(scope="module")
def visits(shopped: Shop) -> dict[str, Visit]:
    store = Store(shopped.config.database.url)
    try:
        return {v.customer or "": v for v in store.visits()}
    finally:
        store.close()


def pseudonym(history: History, visit: Visit) -> str:
    key = history.visit_key()
    assert key is not None
    return visit_pseudonym(key, visit.device, visit.started_at)


def trace_of(shopped: Shop, history: History, visit: Visit) -> VisitTrace:
    found = visit_trace(shopped.config, history, pseudonym(history, visit), visit.started_at + 600)
    assert found is not None
    return found


def only(trace: VisitTrace, rule: str, event: str) -> Decision:
    (found,) = [d for d in trace.decisions if d.rule == rule and d.event.startswith(event)]
    return found


def test_a_visit_is_found_by_its_pseudonym_with_its_zone_events(
    shopped: Shop, history: History, visits: dict[str, Visit]
) -> None:
    ines = visits[INES.id]
    trace = trace_of(shopped, history, ines)
    assert trace.pseudonym == pseudonym(history, ines)
    assert (trace.started_at, trace.ended_at) == (ines.started_at, ines.ended_at)
    assert trace.zones[0] == (ines.started_at, "visit_start", "store")
    assert trace.zones[-1] == (ines.ended_at, "visit_end", "store")
    assert ("enter", "checkout") in [(kind, zone) for _, kind, zone in trace.zones]
    assert [at for at, _, _ in trace.zones] == sorted(at for at, _, _ in trace.zones)
    assert trace.notes == ()


def test_an_unknown_or_old_pseudonym_finds_nothing(
    shopped: Shop, history: History, visits: dict[str, Visit]
) -> None:
    ines = visits[INES.id]
    now = ines.started_at + 600
    assert visit_trace(shopped.config, history, "v-000000000000", now) is None
    later = ines.started_at + LOOK_BACK_S + 1  # the visit is more than 7 days old by then
    assert visit_trace(shopped.config, history, pseudonym(history, ines), later) is None


def test_every_rule_considered_at_every_event_is_explained(
    shopped: Shop, history: History, visits: dict[str, Visit]
) -> None:
    trace = trace_of(shopped, history, visits[INES.id])
    events = {d.event for d in trace.decisions}
    assert {"visit_start store", "dwell aisle-tv (30s)", "enter checkout"} <= events
    welcome = only(trace, "welcome", "visit_start")
    assert welcome.verdict == "blocked: failed: customer.visits at_most 0"
    assert welcome.state is None and welcome.at == trace.started_at
    assert "✗ condition  customer.visits at_most 0" in welcome.lines
    assert all(line[0] in "✓✗·" for d in trace.decisions for line in d.lines)


def test_a_fired_rule_carries_its_recorded_offer_state(
    shopped: Shop, history: History, visits: dict[str, Visit]
) -> None:
    trace = trace_of(shopped, history, visits[INES.id])
    tv = only(trace, "tv-aisle-dwell", "dwell aisle-tv")
    assert (tv.verdict, tv.state) == ("fires", "pending")
    recorded = [o for o in shopped.offers if o.customer == INES.id and o.rule == "tv-aisle-dwell"]
    assert [o.created_at for o in recorded] == [tv.at]
    # the offer just made counts in the visit: the loyalty reminder waits for min_gap
    loyalty = only(trace, "checkout-loyalty", "enter checkout")
    assert loyalty.state is None
    assert loyalty.verdict.startswith("blocked: min_gap: last commercial offer")
    vip = only(trace, "vip-thanks", "enter checkout")
    assert (vip.verdict, vip.state) == ("fires", "pending")
    # what the rule's text echoes of her record is masked
    assert "✓ condition  customer.first_name is •••" in vip.lines
    assert "✓ condition  customer.attributes.loyalty_number is •••" in vip.lines


def test_caps_count_the_offers_made_before_the_visit(
    shopped: Shop, history: History, visits: dict[str, Visit]
) -> None:
    trace = trace_of(shopped, history, visits[BRUNO.id])
    tv = only(trace, "tv-aisle-dwell", "dwell aisle-tv")
    assert tv.state is None
    assert tv.verdict == "blocked: limit reached: 1 per day per customer"
    assert any(line.startswith("✗ limit      at most 1 per day per customer") for line in tv.lines)
    loyalty = only(trace, "checkout-loyalty", "enter checkout")
    assert (loyalty.verdict, loyalty.state) == ("fires", "pending")
    vip = only(trace, "vip-thanks", "enter checkout")
    # the rule's own text names somebody else: it is the rule's, not Bruno's
    assert vip.verdict == "blocked: failed: customer.first_name is Inès" and vip.state is None


def test_nothing_in_a_trace_names_the_customer(
    shopped: Shop, history: History, visits: dict[str, Visit]
) -> None:
    for customer in (INES, BRUNO):
        trace = trace_of(shopped, history, visits[customer.id])
        text = repr(trace)
        assert trace.decisions and "customer.attributes.loyalty_number" in text
        secrets = [customer.id, customer.token, *customer.device_ids, LOYALTY_NUMBER]
        secrets += [customer.first_name or "", "4970"]
        assert [s for s in secrets if s in text] == []
        # conditions on the customer show whether they held, not what the record holds
        assert "interests = " not in text and "customer.tier = " not in text


@pytest.fixture
def copied(shopped: Shop, tmp_path: Path) -> str:
    """A copy of the shop's database (closed: its WAL is checkpointed), to change."""
    copy = tmp_path / "rayon.db"
    copy.write_bytes(Path(shopped.config.database.url.removeprefix("sqlite:///")).read_bytes())
    return f"sqlite:///{copy}"


def test_a_visit_without_a_customer_record_has_zones_and_no_decision(
    shopped: Shop, copied: str, visits: dict[str, Visit]
) -> None:
    with closing(sqlite3.connect(copied.removeprefix("sqlite:///"))) as conn, conn:
        conn.execute("DELETE FROM customers WHERE id = ?", (BRUNO.id,))
    history = History(copied)
    try:
        bruno = visits[BRUNO.id]
        trace = visit_trace(shopped.config, history, pseudonym(history, bruno), bruno.started_at)
        assert trace is not None and trace.zones and trace.decisions == ()
        assert trace.notes == ("no customer record for this visit: no rule was evaluated",)
    finally:
        history.close()


def test_an_erased_customers_visits_are_gone(
    shopped: Shop, copied: str, visits: dict[str, Visit]
) -> None:
    store = Store(copied)
    try:
        assert store.delete_customer(INES.id)
    finally:
        store.close()
    history = History(copied)
    try:
        ines = visits[INES.id]
        assert (
            visit_trace(shopped.config, history, pseudonym(history, ines), ines.started_at) is None
        )
    finally:
        history.close()


def test_rules_that_do_not_load_are_said_so(
    shopped: Shop, history: History, visits: dict[str, Visit], tmp_path: Path
) -> None:
    (tmp_path / "broken.yaml").write_text("id: broken\nwhen: [unclosed\n", encoding="utf-8")
    config = dataclasses.replace(shopped.config, rules_dir=tmp_path)
    ines = visits[INES.id]
    trace = visit_trace(config, history, pseudonym(history, ines), ines.started_at)
    assert trace is not None and trace.zones and trace.decisions == ()
    (note,) = trace.notes
    assert note.startswith("the rules do not load, nothing to explain: ") and "broken.yaml:" in note


def test_a_trace_on_postgresql(postgres_url: str, tmp_path: Path) -> None:
    shopped = shop(tmp_path, database_url=postgres_url)
    history = History(postgres_url)
    try:
        store = Store(postgres_url)
        try:
            visits = {v.customer or "": v for v in store.visits()}
        finally:
            store.close()
        ines = trace_of(shopped, history, visits[INES.id])
        tv = only(ines, "tv-aisle-dwell", "dwell aisle-tv")
        assert (tv.verdict, tv.state) == ("fires", "pending")
        bruno = trace_of(shopped, history, visits[BRUNO.id])
        tv = only(bruno, "tv-aisle-dwell", "dwell aisle-tv")
        assert tv.verdict == "blocked: limit reached: 1 per day per customer"
        assert INES.token not in repr(ines) and BRUNO.id not in repr(bruno)
    finally:
        history.close()
