"""`absent` rules (win-back): the daily store-local hour, idempotence, DST days, the checks that
still apply (caps, pressure, quiet hours, consent, holdout), and a restart."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

from gateway.events import EventKind
from gateway.identity.model import Customer
from gateway.rules.engine import RuleEngine
from tests.test_rules_support import at, customer, event, make_engine, rule_file

WINBACK = "absent: {for: 60d, at: '10:00'}"
LIMITED = "limits: {per_customer: {max: 1, per: 30d}}\n"
DAY = 86400.0


def lapsed(cid: str = "c-1", days: float = 75, since: str = "2026-03-17T10:00:00") -> Customer:
    """A customer whose last visit was `days` before `since`."""
    return customer(cid, visits=4, last_visit=at(since) - days * DAY)


def run(eng: RuleEngine, local: str, *who: Customer) -> list[tuple[str, str]]:
    return [(o.rule, o.customer) for o in eng.on_schedule(at(local), who)]


def test_the_check_runs_once_a_day_at_its_local_hour(tmp_path: Path) -> None:
    eng = make_engine(tmp_path, rule_file("wb", WINBACK))
    c = lapsed()
    assert run(eng, "2026-03-17T09:59:59", c) == []
    [offer] = eng.on_schedule(at("2026-03-17T10:00:00"), [c])
    assert (offer.rule, offer.zone, offer.created_at) == ("wb", None, at("2026-03-17T10:00:00"))
    assert run(eng, "2026-03-17T10:00:01", c) == []  # idempotent: called every tick
    assert run(eng, "2026-03-17T18:00:00", c) == []
    assert run(eng, "2026-03-18T10:00:00", c) == [("wb", "c-1")]  # no limit: every day


def test_only_customers_away_long_enough_and_with_a_known_last_visit(tmp_path: Path) -> None:
    eng = make_engine(tmp_path, rule_file("wb", WINBACK, LIMITED))
    never = customer("c-new")
    recent, gone, edge = lapsed("c-recent", 59.9), lapsed("c-gone", 90), lapsed("c-edge", 60)
    got = run(eng, "2026-03-17T10:00:00", never, recent, gone, edge)
    assert got == [("wb", "c-gone"), ("wb", "c-edge")]


def test_last_seen_and_visits_the_engine_saw_count_as_visits(tmp_path: Path) -> None:
    eng = make_engine(tmp_path, rule_file("wb", WINBACK))
    a, b, c = lapsed("c-a"), lapsed("c-b"), lapsed("c-c")
    eng.on_event(event(EventKind.VISIT_START, "2026-03-10T15:00:00", "store", None, "c-b"), b)
    seen = {"c-a": at("2026-03-01T12:00:00")}
    offers = eng.on_schedule(at("2026-03-17T10:00:00"), [a, b, c], seen)
    assert [o.customer for o in offers] == ["c-c"]


def test_a_gateway_started_after_the_hour_runs_that_days_check_at_once(tmp_path: Path) -> None:
    eng = make_engine(tmp_path, rule_file("wb", WINBACK))
    assert run(eng, "2026-03-17T14:12:00", lapsed()) == [("wb", "c-1")]


def utc_minutes(first: str, last: str) -> list[float]:
    start = datetime.fromisoformat(first).replace(tzinfo=UTC)
    end = datetime.fromisoformat(last).replace(tzinfo=UTC)
    return [
        (start + timedelta(minutes=m)).timestamp()
        for m in range(int((end - start).total_seconds() // 60) + 1)
    ]


def fire_times(eng: RuleEngine, who: Customer, first: str, last: str) -> list[str]:
    """The UTC times (HH:MM) at which a per-minute schedule made an offer."""
    out = []
    for now in utc_minutes(first, last):
        for offer in eng.on_schedule(now, [who]):
            out.append(datetime.fromtimestamp(offer.created_at, UTC).strftime("%m-%d %H:%M"))
    return out


def test_the_hour_is_store_local_on_either_side_of_a_dst_change(tmp_path: Path) -> None:
    eng = make_engine(tmp_path, rule_file("wb", WINBACK))
    who = customer(visits=1, last_visit=at("2026-01-01T10:00:00"))
    # Paris moves from UTC+1 to UTC+2 on 2026-03-29: 10:00 local is 09:00 UTC, then 08:00 UTC
    assert fire_times(eng, who, "2026-03-28T00:00", "2026-03-30T23:59") == [
        "03-28 09:00",
        "03-29 08:00",
        "03-30 08:00",
    ]


def test_an_hour_that_is_skipped_or_repeats_runs_exactly_once(tmp_path: Path) -> None:
    eng = make_engine(tmp_path, rule_file("wb", "absent: {for: 30d, at: '02:30'}"))
    who = customer(visits=1, last_visit=at("2026-01-01T10:00:00"))
    # 2026-03-29: 02:00–03:00 local does not exist; the first minute after is 03:00 CEST (01:00Z)
    assert fire_times(eng, who, "2026-03-28T23:00", "2026-03-29T06:00") == ["03-29 01:00"]
    # 2026-10-25: 02:30 local happens twice (00:30Z in CEST, 01:30Z in CET): only the first
    assert fire_times(eng, who, "2026-10-24T22:00", "2026-10-25T06:00") == ["10-25 00:30"]


def test_per_customer_caps_apply_to_absent_rules(tmp_path: Path) -> None:
    eng = make_engine(tmp_path, rule_file("wb", WINBACK, LIMITED))
    who = lapsed("c-1", 90)
    days = [f"2026-03-{d:02d}T10:00:00" for d in range(17, 32)] + [
        f"2026-04-{d:02d}T10:00:00" for d in range(1, 20)
    ]
    fired = [day[:10] for day in days if run(eng, day, who)]
    # once per 30 days of 86 400 s: 04-16 10:00 CEST is 30 days less the DST hour after 03-17
    assert fired == ["2026-03-17", "2026-04-17"]


def test_pressure_counts_absent_offers_with_the_others(tmp_path: Path) -> None:
    eng = make_engine(
        tmp_path,
        rule_file("early", "absent: {for: 30d, at: '09:00'}", LIMITED),
        rule_file("wb", WINBACK, LIMITED),
        policy="pressure: {per_customer: {day: 1}}\n",
    )
    assert run(eng, "2026-03-17T09:00:00", lapsed()) == [("early", "c-1")]
    [(cid, result)] = eng.evaluate_schedule(at("2026-03-17T10:00:00"), [lapsed()])
    assert (cid, result.offers) == ("c-1", ())
    assert result.reasons == {"wb": "pressure: 1 commercial offers per day reached"}


def test_quiet_hours_consent_and_holdout(tmp_path: Path) -> None:
    night = rule_file("night", "absent: {for: 60d, at: '22:00'}", LIMITED)
    held = rule_file("held", WINBACK, LIMITED + "holdout: 100%\n")
    eng = make_engine(tmp_path, night, held, policy="quiet_hours: {between: ['21:00', '08:00']}\n")
    # the first call of the day is at 22:00: both checks run then, both in quiet hours
    [(_, result)] = eng.evaluate_schedule(at("2026-03-17T22:00:00"), [lapsed()])
    quiet = "quiet hours (between 21:00 and 08:00)"
    assert result == type(result)((), {"held": quiet, "night": quiet})
    [offer] = eng.on_schedule(at("2026-03-18T10:00:00"), [lapsed()])
    assert (offer.rule, offer.holdout) == ("held", True)
    silent = customer("c-2", push=False, last_visit=at("2026-01-01T10:00:00"))
    [(_, result)] = eng.evaluate_schedule(at("2026-03-19T10:00:00"), [silent])
    assert result == type(result)((), {"held": "no marketing_push consent"})


def test_highest_priority_first_and_one_offer_per_check(tmp_path: Path) -> None:
    eng = make_engine(
        tmp_path,
        rule_file("low", WINBACK, "priority: 1\n"),
        rule_file("high", "absent: {for: 30d, at: '10:00'}", "priority: 9\n"),
    )
    [(_, result)] = eng.evaluate_schedule(at("2026-03-17T10:00:00"), [lapsed()])
    assert [o.rule for o in result.offers] == ["high"]
    assert result.reasons == {"low": "outranked by rule 'high' (higher priority)"}


def test_a_restarted_engine_does_not_run_the_days_check_again(tmp_path: Path) -> None:
    first = make_engine(tmp_path, rule_file("wb", WINBACK))
    assert run(first, "2026-03-17T10:00:00", lapsed()) == [("wb", "c-1")]
    second = make_engine(tmp_path / "again", rule_file("wb", WINBACK))
    second.restore(json.loads(json.dumps(first.snapshot())))
    assert run(second, "2026-03-17T10:05:00", lapsed()) == []
    assert run(second, "2026-03-18T10:00:00", lapsed()) == [("wb", "c-1")]


class Untouchable:
    """Customers that must not be read."""

    def __iter__(self) -> Iterator[Customer]:
        raise AssertionError("customers must not be read when no absent rule is due")


def test_customers_are_not_read_when_no_check_is_due(tmp_path: Path) -> None:
    assert (
        make_engine(tmp_path, rule_file("promo")).on_schedule(
            at("2026-03-17T10:00:00"), Untouchable()
        )
        == []
    )
    eng = make_engine(tmp_path / "wb", rule_file("wb", WINBACK))
    assert eng.on_schedule(at("2026-03-17T09:00:00"), Untouchable()) == []
    eng.on_schedule(at("2026-03-17T10:00:00"), [])
    assert eng.on_schedule(at("2026-03-17T10:00:01"), Untouchable()) == []
