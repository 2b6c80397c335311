"""Issue 16: every inbound parser is total.  Whatever arrives on a topic (arbitrary bytes, JSON
nested 3,000 deep, integers of 400 or 5,000 digits, NaN and infinities, long strings, the
wrong type in any field) each parser returns its value or an InboundError (the CRM path:
the pipeline counts it); nothing raises.  The property tests feed every parser; the explicit
cases are the probe's findings, one by one."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.config.load import load_config
from gateway.config.model import Config
from gateway.decode.inbound import (
    parse_espresense,
    parse_owntracks_location,
    parse_owntracks_transition,
    parse_scanner_adv,
    parse_sightings,
)
from gateway.decode.jsonvalues import MAX_JSON_DEPTH, InboundError, Problem, decode, guarded, show
from gateway.deliver.payloads import parse_feedback
from gateway.events import MqttInput
from gateway.identity.model import CustomerRegistry
from gateway.pipeline import Output, Pipeline
from gateway.rules.load import load_rules
from tests.walks import STORE_UUID

ROOT = Path(__file__).resolve().parent.parent
T0 = 1772550000.0
ANCHORS = {f"ibeacon:{STORE_UUID}:1:1": "beacon-01"}
CRM_TOPIC = "rayon/paris-11/crm/customers/c-9"


def nested(depth: int, inner: Any = 1) -> Any:
    """`inner` under `depth` alternating lists and objects, built without recursion."""
    for i in range(depth):
        inner = [inner] if i % 2 else {"beacons": inner}
    return inner


def deep_bytes(depth: int) -> bytes:
    return b'{"a":' * depth + b"1" + b"}" * depth


def wire(value: Any) -> bytes:
    """`value` as JSON bytes; what json cannot write (NaN as a bare word, a 5,000-digit int)
    written by hand, as a hostile sender would."""
    try:
        return json.dumps(value).encode()
    except (ValueError, RecursionError):
        return b'{"at": ' + b"9" * 5000 + b"}"


_HUGE = (10**400, -(10**400), 2**64, 2**53 + 1, 10**5000)
HUGE_INTS = st.integers(0, len(_HUGE) - 1).map(_HUGE.__getitem__)  # repr-free: 5,000 digits
LEAF = (
    st.none()
    | st.booleans()
    | st.integers()
    | HUGE_INTS
    | st.floats()  # NaN and ±inf included
    | st.text(max_size=30)
    | st.integers(0, 5000).map(lambda n: "x" * n)
    | st.sampled_from(["+999999-01-01T00:00:00+00:00", "2026-03-03T15:00:00", "1e400", "NaN"])
)
JSON = st.recursive(
    LEAF,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(max_size=8) | st.sampled_from(["at", "rssi", "_type"]), inner)
    ),
    max_leaves=12,
) | st.integers(0, 3000).map(nested)

SEEDS: dict[str, dict[str, Any]] = {
    "sightings": {"at": T0, "beacons": [
        {"uuid": STORE_UUID, "major": 1, "minor": 1, "rssi": -70, "tx_power": -59}]},
    "adv": {"at": T0, "address": "AA:BB:CC:DD:EE:FF", "rssi": -67,
            "manufacturer_data": {"76": "0215" + "00" * 21}, "service_data": {}},
    "location": {"_type": "location", "lat": 48.85, "lon": 2.37, "acc": 20, "tst": T0},
    "transition": {"_type": "transition", "event": "enter", "rid": "r", "desc": "d",
                   "t": "c", "lat": 48.85, "lon": 2.37, "acc": 20, "tst": T0},
    "espresense": {"rssi": -72.5, "rssi@1m": -59},
    "feedback": {"type": "feedback", "v": 1, "offer": "o-1", "state": "opened", "at": T0},
    "crm": {"id": "c-9", "token": "t-9", "devices": [f"ibeacon:{STORE_UUID}:1:9"],
            "consent": {"instore_location": True, "marketing_push": True}, "first_name": "L",
            "segments": ["vip"], "interests": ["tv"], "tier": "gold", "visits": 3,
            "last_visit": T0, "attributes": {"order_ready": True, "kids": [1, 2]}},
}  # fmt: skip


@st.composite
def hostile_field(draw: st.DrawFn, seed: dict[str, Any]) -> Any:
    """The seed with one to three of its fields (or of its first beacon) made hostile."""
    doc = json.loads(json.dumps(seed))
    for _ in range(draw(st.integers(1, 3))):
        target = doc
        beacons = doc.get("beacons")
        if isinstance(beacons, list) and beacons and isinstance(beacons[0], dict):
            target = beacons[0] if draw(st.booleans()) else doc
        key = draw(st.sampled_from(sorted(target)) | st.text(max_size=4))
        target[key] = draw(JSON)
    return doc


def payloads(kind: str) -> st.SearchStrategy[Any]:
    """Raw bytes, arbitrary JSON, or the seed made hostile; as bytes, text or parsed."""
    value = JSON | hostile_field(SEEDS[kind])
    return (
        st.binary(max_size=300)
        | st.integers(0, 3000).map(deep_bytes)
        | value.map(wire)
        | value.map(wire).map(lambda b: b.decode("utf-8", "replace"))
        | value
    )


PARSERS: dict[str, Callable[[Any], object]] = {
    "sightings": lambda p: parse_sightings(p, "tok-1", T0, ANCHORS),
    "adv": lambda p: parse_scanner_adv(p, "pi-entrance", T0),
    "location": lambda p: parse_owntracks_location(p, T0),
    "transition": lambda p: parse_owntracks_transition(p, T0),
    "espresense": lambda p: parse_espresense(f"iBeacon:{STORE_UUID}-1-1", "pi-tv", p, T0),
    "feedback": lambda p: parse_feedback(p, T0),
}


@pytest.fixture(scope="module")
def pipeline_config() -> Config:
    return load_config(ROOT / "config.example.yaml")


@pytest.mark.parametrize("kind", sorted(PARSERS))
def test_every_inbound_parser_returns_its_value_or_an_inbound_error(kind: str) -> None:
    parse = PARSERS[kind]

    @settings(max_examples=200, deadline=None)
    @given(payloads(kind))
    def check(payload: Any) -> None:
        result = parse(payload)
        if isinstance(result, InboundError):
            assert result.reason and len(result.reason) < 1000

    check()


@settings(max_examples=150, deadline=None)
@given(payloads("crm"))
def test_the_crm_topic_counts_what_it_refuses_and_never_raises(
    pipeline_config: Config, payload: Any
) -> None:
    rules = load_rules(pipeline_config.rules_dir, pipeline_config)
    p = Pipeline(pipeline_config, rules, CustomerRegistry([]))
    assert isinstance(p.on_mqtt(MqttInput(T0, CRM_TOPIC, payload)), Output)
    erase = payload is None or payload == b"" or payload == ""
    assert p.counters["inbound_rejected"] + len(p.customers) == (0 if erase else 1)


# -- the probe's findings, one by one --------------------------------------------------------

FINDINGS = [
    ("2,000 brackets in 4 KB", b"[" * 2000 + b"]" * 2000),
    ("3,000 objects deep", deep_bytes(3000)),
    ("33 levels, parsed (a trace)", nested(MAX_JSON_DEPTH + 1)),
    ("a 400-digit time", b'{"at": ' + b"9" * 400 + b', "tst": ' + b"9" * 400 + b"}"),
    ("a 5,000-digit number", b'{"at": ' + b"9" * 5000 + b"}"),
    ("a 5,000-digit number, parsed", {"at": 10**5000, "tst": 10**5000, "rssi": 10**5000}),
    ("NaN as a bare word", b'{"at": NaN, "lat": Infinity}'),
    ("non-finite floats, parsed", {"at": math.inf, "lat": math.nan, "rssi": -math.inf}),
    ("a year out of range", {"at": "+999999-01-01T00:00:00+00:00", "tst": "0001-01-01T00:00Z"}),
    ("a huge int where a list goes", {"beacons": 10**400, "_type": 10**400}),
]


@pytest.mark.parametrize("kind", sorted(PARSERS))
@pytest.mark.parametrize(("finding", "payload"), FINDINGS, ids=[f[0] for f in FINDINGS])
def test_each_finding_is_refused_by_every_parser(kind: str, finding: str, payload: Any) -> None:
    result = PARSERS[kind](payload)
    assert isinstance(result, InboundError), finding


@pytest.mark.parametrize(("finding", "payload"), FINDINGS, ids=[f[0] for f in FINDINGS])
def test_each_finding_on_the_crm_topic_is_counted(
    pipeline_config: Config, finding: str, payload: Any
) -> None:
    rules = load_rules(pipeline_config.rules_dir, pipeline_config)
    p = Pipeline(pipeline_config, rules, CustomerRegistry([]))
    assert isinstance(p.on_mqtt(MqttInput(T0, CRM_TOPIC, payload)), Output)
    assert p.counters["inbound_rejected"] == 1, finding


def test_depth_is_refused_past_the_limit_and_accepted_at_it() -> None:
    read = guarded(decode)
    at_limit = json.dumps(nested(MAX_JSON_DEPTH)).encode()
    assert not isinstance(read(at_limit), InboundError)
    too_deep = read(json.dumps(nested(MAX_JSON_DEPTH + 1)).encode())
    assert isinstance(too_deep, InboundError) and too_deep.problem is Problem.MALFORMED
    assert f"more than {MAX_JSON_DEPTH} levels" in too_deep.reason


def test_show_never_raises_on_a_huge_number() -> None:
    assert show(10**5000) == "a number" and show(-(10**5000)) == "a number"
