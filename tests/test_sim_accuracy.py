"""Scoring zone decisions against the simulator's truth: the definitions on a hand-made walk,
then the whole loop (simulate → replay through the Pipeline → score) on the reference store."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from gateway.config.load import load_config
from gateway.config.model import Outline, Zone
from gateway.events import EventKind, ZoneEvent
from gateway.sim.radio import RadioModel
from gateway.sim.simulator import TruthRecord
from rayon_tooling.accuracy.simulated import (
    ZoneScore,
    format_simulated,
    score_events,
    score_simulated,
)

REFERENCE = Path(__file__).resolve().parent.parent / "config.example.yaml"


def box(x0: float, y0: float, x1: float, y1: float) -> Outline:
    return ((x0, y0), (x1, y0), (x1, y1), (x0, y1))


ZONES = (
    Zone("store", "Store", box(0, 0, 30, 10), 3.0, 60.0),
    Zone("aisle-a", "A", box(2, 2, 8, 8), 4.0, 10.0),
    Zone("aisle-b", "B", box(20, 2, 26, 8), 4.0, 10.0),
)


def walk() -> list[TruthRecord]:
    """30 s in aisle A, 12 s walking, 40 s in aisle B, 9 s in the store outside both."""
    recs = []
    zones: tuple[str, ...]
    for t in range(91):
        if t < 30:
            x, zones = 5.0, ("store", "aisle-a")
        elif t < 42:
            x, zones = 8.5 + (t - 30), ("store",)
        elif t < 82:
            x, zones = 23.0, ("store", "aisle-b")
        else:
            x, zones = 15.0, ("store",)
        recs.append(TruthRecord(float(t), "d1", x, 5.0, zones))
    return recs


def ev(at: float, kind: EventKind, zone: str) -> ZoneEvent:
    return ZoneEvent(at, kind, zone, "d1")


GOOD = [
    ev(3, EventKind.ENTER, "store"),
    ev(4, EventKind.ENTER, "aisle-a"),
    ev(40, EventKind.EXIT, "aisle-a"),
    ev(46, EventKind.ENTER, "aisle-b"),
    ev(92, EventKind.EXIT, "aisle-b"),
]


def score(events: list[ZoneEvent]) -> ZoneScore:
    return score_events(ZONES, walk(), events, lambda e: e.device)


def test_a_pipeline_that_follows_the_truth_after_enter_after_scores_full_marks() -> None:
    s = score(GOOD)
    assert (s.stays, s.dwell_seconds) == (2, 26 + 36)  # scored from entry + enter_after
    assert s.dwell_correct == 1.0 and s.dwell_exclusive == 1.0
    assert (s.enters, s.false_enters, s.stays_missed) == (3, 0, 0)
    assert s.latency_median_s == 4.0 and s.latency_p90_s == 4.0
    assert s.device_hours == pytest.approx(91 / 3600)


def test_a_late_exit_costs_exclusivity_a_missed_enter_costs_dwell_and_a_stay() -> None:
    late = [e if e.zone != "aisle-a" or e.kind is EventKind.ENTER else ev(50, e.kind, e.zone)
            for e in GOOD]  # fmt: skip
    s = score(late)
    assert s.dwell_correct == 1.0 and s.dwell_exclusive == pytest.approx(58 / 62)
    missed = score([e for e in GOOD if e.zone != "aisle-b"])
    assert missed.stays_missed == 1 and missed.dwell_correct == pytest.approx(26 / 62)
    assert missed.latency_median_s == 4.0


def test_an_enter_where_the_shopper_never_was_nearby_is_false() -> None:
    s = score([*GOOD, ev(10, EventKind.ENTER, "aisle-b"), ev(11, EventKind.EXIT, "aisle-b")])
    assert (s.enters, s.false_enters) == (4, 1)
    assert s.false_enters_per_device_hour == pytest.approx(1 / (91 / 3600))
    near = score([*GOOD, ev(36, EventKind.ENTER, "aisle-b")])  # 6 s before the truth: not false
    assert near.false_enters == 0


def test_the_simulated_store_is_scored_through_the_real_pipeline() -> None:
    config = load_config(REFERENCE)
    run = score_simulated(config, shoppers=8, minutes=8, seed=2)
    s = run.score
    assert s.stays >= 8 and s.enters >= 8 and s.dwell_seconds > 300
    assert 0.3 < s.dwell_correct <= 1.0 and s.dwell_exclusive <= s.dwell_correct
    assert s.latency_median_s is not None and 0 < s.latency_median_s < 60
    again = score_simulated(config, shoppers=8, minutes=8, seed=2)
    assert again.score == s  # seeded: the same figures
    text = format_simulated(run)
    assert "8 shoppers × 8 min, seed 2" in text and f"{s.dwell_correct:.1%}" in text
    assert "target ≥ 95 %" in text and "target ≤ 0.5" in text and "target ≤ 5 s" in text


def test_a_harsher_radio_scores_worse() -> None:
    config = load_config(REFERENCE)
    kind = RadioModel(shadow_sigma=1.0, path_sigma=0.5, body_share=0.0)
    harsh = dataclasses.replace(kind, shadow_sigma=10.0, path_sigma=6.0, body_share=1.0)
    good = score_simulated(config, shoppers=8, minutes=8, seed=4, radio=kind).score
    bad = score_simulated(config, shoppers=8, minutes=8, seed=4, radio=harsh).score
    assert bad.dwell_correct < good.dwell_correct - 0.1
