"""Outbound payloads exactly as docs/mqtt.md writes them; inbound feedback never raises."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.clock import MAX_AHEAD_S
from gateway.decode.jsonvalues import MAX_JSON_DEPTH, InboundError
from gateway.deliver.payloads import (
    MAX_FEEDBACK_BYTES,
    Feedback,
    GatewayState,
    encode,
    event_payload,
    iso,
    occupancy_payload,
    offer_payload,
    parse_feedback,
    status_payload,
)
from gateway.events import EventKind, FeedbackState, Offer, Purpose, ZoneEvent
from gateway.wire import jsonable

PARIS = ZoneInfo("Europe/Paris")
WINTER = datetime(2026, 3, 3, 14, 0, 40, tzinfo=UTC).timestamp()
SUMMER = datetime(2026, 7, 1, 8, 30, tzinfo=UTC).timestamp()


def an_offer(created_at: float = WINTER) -> Offer:
    return Offer(
        id="o-1",
        rule="tv-aisle-dwell",
        store="paris-11",
        zone="aisle-tv",
        customer="cust-42",
        token="tok-secret",
        created_at=created_at,
        expires_at=created_at + 3 * 3600,
        title="-15 % sur les TV",
        body="Offre valable aujourd'hui au rayon télé.",
        code="TV15",
        url="rayon://offers/tv15",
        purpose=Purpose.COMMERCIAL,
    )


def test_offer_payload_has_exactly_the_contract_fields() -> None:
    payload = offer_payload(an_offer(), PARIS)
    assert list(payload) == [
        "type", "v", "id", "rule", "store", "zone", "created_at", "expires_at",
        "title", "body", "code", "url", "purpose",
    ]  # fmt: skip
    assert payload["type"] == "offer" and payload["v"] == 1
    assert payload["created_at"] == "2026-03-03T15:00:40+01:00"
    assert payload["expires_at"] == "2026-03-03T18:00:40+01:00"
    assert (payload["id"], payload["code"], payload["purpose"]) == ("o-1", "TV15", "commercial")
    assert "tok-secret" not in json.dumps(payload) and "cust-42" not in json.dumps(payload)


def test_times_carry_the_stores_offset_in_summer_too() -> None:
    assert iso(SUMMER, PARIS) == "2026-07-01T10:30:00+02:00"
    assert iso(SUMMER + 0.25, PARIS) == "2026-07-01T10:30:00.250+02:00"
    assert datetime.fromisoformat(iso(SUMMER, PARIS)).timestamp() == SUMMER


def test_encode_is_compact_utf8_json() -> None:
    raw = encode(offer_payload(an_offer(), PARIS))
    assert "télé".encode() in raw and b"\\u" not in raw
    assert json.loads(raw) == offer_payload(an_offer(), PARIS)


def test_status_occupancy_and_event_payloads() -> None:
    assert status_payload(GatewayState.OFFLINE, "0.1.0", WINTER, tz=PARIS) == {
        "state": "offline",
        "version": "0.1.0",
        "started_at": "2026-03-03T15:00:40+01:00",
    }
    online = status_payload("online", "0.1.0", WINTER, {"drops": 3})
    assert online == {
        "state": "online",
        "version": "0.1.0",
        "started_at": "2026-03-03T14:00:40+00:00",  # UTC when no store timezone is given
        "counters": {"drops": 3},
    }
    assert status_payload("offline", "0.1.0", None)["started_at"] is None
    with pytest.raises(ValueError):
        status_payload("asleep", "0.1.0", None)
    assert occupancy_payload(4, WINTER, PARIS) == {"count": 4, "at": "2026-03-03T15:00:40+01:00"}
    zone_event = ZoneEvent(
        WINTER, EventKind.EXIT, "aisle-tv", "phone:t1", "c1", 31.5,
        {"anchors": ["pi-tv", "pi-hifi"], "accuracy_m": float("nan")},
    )  # fmt: skip
    payload = event_payload(zone_event, PARIS)
    assert payload["kind"] == "exit" and payload["dwell_s"] == 31.5
    assert payload["reason"] == {"anchors": ["pi-tv", "pi-hifi"], "accuracy_m": None}
    json.dumps(payload, allow_nan=False)


def feedback_bytes(**fields: object) -> bytes:
    doc = {"type": "feedback", "v": 1, "offer": "o-1", "state": "opened", "at": WINTER}
    doc.update(fields)
    return json.dumps(doc).encode()


def test_feedback_with_epoch_or_iso_time() -> None:
    assert parse_feedback(feedback_bytes(), WINTER) == Feedback("o-1", FeedbackState.OPENED, WINTER)
    iso_at = feedback_bytes(at="2026-03-03T15:00:40+01:00", state="redeemed")
    assert parse_feedback(iso_at, WINTER) == Feedback("o-1", FeedbackState.REDEEMED, WINTER)


def test_feedback_may_be_hours_late_but_not_from_the_future() -> None:
    """An app offline for hours confirms late; a time past the receive time by more than
    MAX_AHEAD_S is a wrong clock or a forgery."""
    late = parse_feedback(feedback_bytes(), WINTER + 6 * 3600)
    assert late == Feedback("o-1", FeedbackState.OPENED, WINTER)
    assert isinstance(parse_feedback(feedback_bytes(), WINTER - MAX_AHEAD_S), Feedback)
    ahead = parse_feedback(feedback_bytes(), WINTER - MAX_AHEAD_S - 1)
    assert isinstance(ahead, InboundError)
    assert (
        ahead.reason
        == "'at' is 31 s after it was received, at most 30 s allowed: check the phone's clock"
    )


@pytest.mark.parametrize(
    ("payload", "why"),
    [
        (b"\xff\xfe", "not JSON"),
        (b"[1, 2]", "JSON object"),
        (feedback_bytes(type="offer"), '"type": "feedback"'),
        (feedback_bytes(v=2), '"v": 1'),
        (feedback_bytes(v=True), '"v": 1'),
        (feedback_bytes(offer=7), "'offer'"),
        (feedback_bytes(offer=""), "'offer'"),
        (feedback_bytes(offer="o-1\nrejected everything"), "'offer'"),  # a forged log line
        (feedback_bytes(state="loved"), "delivered|opened|redeemed|dismissed"),
        (feedback_bytes(state=["opened"]), "delivered|opened|redeemed|dismissed"),
        (feedback_bytes(at="yesterday"), "'at'"),
        (feedback_bytes(at="2026-03-03T15:00:40"), "'at' needs a UTC offset"),  # ambiguous
        (feedback_bytes(at=True), "'at'"),
        (feedback_bytes(at=None), "'at' is missing"),
        (feedback_bytes(body="x" * MAX_FEEDBACK_BYTES), "limit"),
        # the probe's findings: RecursionError, then OverflowError in the old parser
        (b"[" * 2000 + b"]" * 2000, f"more than {MAX_JSON_DEPTH} levels"),
        (feedback_bytes(at=0)[:-2] + b"9" * 400 + b"}", "'at' must be epoch seconds"),
        (feedback_bytes(at=0)[:-2] + b"9" * 5000 + b"}", "limit"),
        (feedback_bytes(at=-(2**1000)), "'at' must be epoch seconds"),
        (feedback_bytes(at="+999999-01-01T00:00:00+00:00"), "'at' is not an ISO 8601 time"),
    ],
)
def test_bad_feedback_is_rejected_with_the_reason(payload: bytes, why: str) -> None:
    result = parse_feedback(payload, WINTER)
    assert isinstance(result, InboundError)
    assert why in result.reason


@given(st.binary(max_size=300))
def test_feedback_parser_never_raises_on_bytes(payload: bytes) -> None:
    assert isinstance(parse_feedback(payload, WINTER), Feedback | InboundError)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=8,
)
NEAR_VALID = st.sampled_from(["feedback", 1, "o-1", "opened", WINTER, "2026-03-03T15:00:40Z"])


@given(st.dictionaries(st.sampled_from(["type", "v", "offer", "state", "at"]), NEAR_VALID | JSON))
def test_feedback_parser_never_raises_on_json_shapes(doc: dict[str, object]) -> None:
    result = parse_feedback(json.dumps(doc).encode(), WINTER)
    assert isinstance(result, Feedback | InboundError)
    if isinstance(result, Feedback):
        assert result.offer == doc["offer"] and result.state == doc["state"]


def _plain(value: Any) -> Any:
    """What `jsonable` is defined to do, written the slow, obvious way."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain(v) for v in value]
    return str(value)


class _Tone(StrEnum):
    LOW = "low"


_LEAVES = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=4)
_LEAVES |= st.sampled_from([_Tone.LOW, EventKind.ENTER, b"raw", 1j])
_KEYS = st.text(max_size=3) | st.integers() | st.sampled_from([_Tone.LOW, 2.5])
_VALUES = st.recursive(
    _LEAVES,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.tuples(inner, inner)
        | st.dictionaries(_KEYS, inner, max_size=4)
    ),
    max_leaves=12,
)


@given(_VALUES)
def test_jsonable_fast_paths_give_what_the_definition_gives(value: Any) -> None:
    got = jsonable(value)
    assert json.dumps(got, allow_nan=False) == json.dumps(_plain(value), allow_nan=False)
    assert [type(v) for v in _leaves(got)] == [type(v) for v in _leaves(_plain(value))]


def _leaves(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return [leaf for k, v in value.items() for leaf in [k, *_leaves(v)]]
    if isinstance(value, list):
        return [leaf for v in value for leaf in _leaves(v)]
    return [value]
