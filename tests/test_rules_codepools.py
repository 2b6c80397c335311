"""Code pools: one unique code per customer, the same code again, exhaustion reported."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from gateway.events import EventKind
from gateway.rules.codepools import MemoryCodePools
from gateway.rules.engine import RuleEngine
from gateway.rules.gates import in_holdout
from gateway.rules.selftest import check_rules
from tests.test_rules_support import (
    customer,
    event,
    make_engine,
    rule_file,
    store_config,
    write_rules,
)

POOLED = "title: 'TV', body: 'Votre code : {code}', code_pool: tv15, expires_in: 1h"


def pooled(tmp_path: Path, codes: list[str], extra: str = "") -> RuleEngine:
    text = rule_file("tv", extra=extra, offer=POOLED)
    return make_engine(tmp_path, text, pools=MemoryCodePools({"tv15": codes}))


def enter(eng: RuleEngine, cid: str, local: str = "2026-03-03T15:00:00") -> list[str | None]:
    offers = eng.on_event(event(EventKind.ENTER, local, "aisle-tv", None, cid), customer(cid))
    return [o.code for o in offers]


def test_memory_pools_hand_out_each_code_once_and_the_same_code_again() -> None:
    pools = MemoryCodePools({"p": ["A1", "A2", "A1"]})
    assert pools.remaining("p") == 2 and pools.remaining("other") == 0
    assert pools.assign("p", "c-1", 0.0) == "A1"
    assert pools.assign("p", "c-1", 5.0) == "A1" and pools.code_of("p", "c-1") == "A1"
    assert pools.assign("p", "c-2", 1.0) == "A2"
    assert pools.remaining("p") == 0 and pools.assign("p", "c-3", 2.0) is None
    assert pools.code_of("p", "c-3") is None
    pools.add("p", ["A2", "A3"])  # A2 was imported before: not handed out twice
    assert pools.assign("p", "c-3", 3.0) == "A3" and pools.remaining("p") == 0


@given(st.lists(st.sampled_from(["c-1", "c-2", "c-3", "c-4", "c-5"]), max_size=30))
def test_codes_are_unique_per_customer_and_stable(customers: list[str]) -> None:
    pools = MemoryCodePools({"p": ["A", "B", "C"]})
    got = {cid: pools.assign("p", cid, float(i)) for i, cid in enumerate(customers)}
    codes = [c for c in got.values() if c is not None]
    assert len(codes) == len(set(codes)) == min(3, len(set(customers)))
    assert all(pools.assign("p", cid, 99.0) == code for cid, code in got.items())


def test_each_customer_gets_a_code_of_their_own_in_the_offer(tmp_path: Path) -> None:
    eng = pooled(tmp_path, ["TV-001", "TV-002"])
    [offer] = eng.on_event(
        event(EventKind.ENTER, "2026-03-03T15:00:00", "aisle-tv", None, "c-1"), customer("c-1")
    )
    assert (offer.code, offer.body) == ("TV-001", "Votre code : TV-001")
    assert enter(eng, "c-2") == ["TV-002"]
    assert enter(eng, "c-1", "2026-03-04T15:00:00") == ["TV-001"]  # the same code again


def test_an_exhausted_pool_blocks_the_offer_says_so_and_counts(tmp_path: Path) -> None:
    eng = pooled(tmp_path, ["TV-001"])
    assert enter(eng, "c-1") == ["TV-001"]
    result = eng.evaluate(
        event(EventKind.ENTER, "2026-03-03T15:01:00", "aisle-tv", None, "c-2"), customer("c-2")
    )
    assert result.offers == ()
    assert result.reasons == {"tv": "code pool 'tv15' is exhausted"}
    assert enter(eng, "c-3") == []
    assert eng.pool_exhausted == {"tv15": 2}
    assert eng.ledger.total("tv") == 1  # a blocked offer is not counted
    assert enter(eng, "c-1", "2026-03-05T15:00:00") == ["TV-001"]  # holders still get theirs


def test_an_unknown_pool_loads_and_shows_as_exhausted_at_run_time(tmp_path: Path) -> None:
    eng = make_engine(tmp_path, rule_file("tv", offer=POOLED))
    assert enter(eng, "c-1") == []
    assert eng.pool_exhausted == {"tv15": 1}


def test_a_held_out_customer_takes_no_code(tmp_path: Path) -> None:
    held = next(f"c-{i}" for i in range(100) if in_holdout(f"c-{i}", "tv", 0.5))
    treated = next(f"c-{i}" for i in range(100) if not in_holdout(f"c-{i}", "tv", 0.5))
    eng = pooled(tmp_path, ["TV-001"], "holdout: 50%\n")
    [offer] = eng.on_event(
        event(EventKind.ENTER, "2026-03-03T15:00:00", "aisle-tv", None, held), customer(held)
    )
    assert (offer.holdout, offer.code) == (True, None)
    assert eng.pools.remaining("tv15") == 1
    assert enter(eng, treated) == ["TV-001"]


def test_the_shipped_inline_tests_seed_pools(tmp_path: Path) -> None:
    """`pools:` of an inline test feeds that test's engine; without it the pool is empty."""
    text = rule_file(
        "tv",
        extra=(
            "tests:\n"
            "  - name: seeded\n    pools: {tv15: [Z9]}\n"
            "    events: [{at: '2026-03-03T15:00:00', enter: aisle-tv}]\n"
            "    expect: {offer: {code: Z8}}\n"
            "  - name: empty\n"
            "    events: [{at: '2026-03-03T15:00:00', enter: aisle-tv}]\n"
            "    expect: offer\n"
        ),
        offer=POOLED,
    )
    rules_dir = write_rules(tmp_path, text)
    got = [d.message for d in check_rules(store_config(rules_dir)) if "test" in d.message]
    assert got == [
        "test 'seeded' expected code 'Z8', got 'Z9'",
        "test 'empty' expected an offer, got none (code pool 'tv15' is exhausted)",
    ]
