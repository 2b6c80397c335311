"""Inbound phone and node payloads: real examples parse, every bad shape says what is wrong."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.decode.inbound import (
    MAX_ADVERTS,
    Location,
    Sightings,
    Transition,
    TransitionEvent,
    Trigger,
    parse_espresense,
    parse_owntracks_location,
    parse_owntracks_transition,
    parse_scanner_adv,
    parse_sightings,
)
from gateway.decode.jsonvalues import MAX_PAYLOAD_BYTES, InboundError, Problem
from gateway.events import Advertisement, Observation
from gateway.ids import ibeacon_id

UUID = "8d8c1a2e-5b3f-4c1d-9e2a-0f6b7c8d9e10"
ANCHORS = {ibeacon_id(UUID, 1, 1): "beacon-01", ibeacon_id(UUID, 1, 2): "beacon-02"}
RECEIVED = 1772550000.0
# An iBeacon frame after Apple's company id: 02 15, UUID, major 11, minor 20, tx -59 dBm.
FRAME = "0215" + UUID.replace("-", "") + "000b" + "0014" + "c5"


def _sighting(major: Any, minor: Any, rssi: Any, **more: Any) -> dict[str, Any]:
    return {"uuid": UUID, "major": major, "minor": minor, "rssi": rssi, **more}


def _error(result: object) -> InboundError:
    assert isinstance(result, InboundError), result
    return result


# -- sightings (mode B) ---------------------------------------------------------------------


def test_sightings_map_store_beacons_to_their_anchors() -> None:
    body = {
        "at": 1772550031.25,
        "beacons": [
            _sighting(1, 1, -71, tx_power=-59),
            _sighting(1, 2, -80.5),
            _sighting(9, 9, -60, tx_power=-59),  # another store's beacon
            _sighting(1, 2, 0),  # iOS: rssi could not be measured
        ],
    }
    got = parse_sightings(json.dumps(body).encode(), "tok-1", RECEIVED, ANCHORS)
    assert got == Sightings(
        (
            Observation(1772550031.25, "phone:tok-1", "beacon-01", -71.0, -59),
            Observation(1772550031.25, "phone:tok-1", "beacon-02", -80.5, None),
        ),
        unknown_beacons=1,
        unmeasured=1,
    )


def test_sightings_accept_bytes_text_and_parsed_json_alike() -> None:
    body = {"at": "2026-03-03T15:00:00+01:00", "beacons": [_sighting(1, 1, -70)]}
    results = [
        parse_sightings(p, "t", RECEIVED, ANCHORS)
        for p in (body, json.dumps(body), json.dumps(body).encode())
    ]
    assert results[0] == results[1] == results[2]
    assert isinstance(results[0], Sightings)
    assert results[0].observations[0].at == 1772546400.0  # 14:00 UTC


def test_sightings_without_time_take_the_receive_time() -> None:
    got = parse_sightings({"beacons": [_sighting(1, 2, -66)]}, "t", RECEIVED, ANCHORS)
    assert isinstance(got, Sightings)
    assert [o.at for o in got.observations] == [RECEIVED]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ([], "the sightings payload must be a JSON object, got a list"),
        ({"at": 1.0}, "'beacons' must be a list"),
        ({"beacons": [_sighting(1, 1, -60), 7]}, "'beacons[1]' must be a JSON object"),
        ({"beacons": [_sighting(1, 1, -60), _sighting(1, 2, "strong")]}, "'beacons[1].rssi'"),
        ({"beacons": [_sighting(1, 1, -128)]}, "'beacons[0].rssi' must be a number of dBm"),
        ({"beacons": [_sighting(1, 1, 21)]}, "from -127 to 20, got 21"),
        ({"beacons": [_sighting(1, 1, True)]}, "'beacons[0].rssi'"),
        ({"beacons": [_sighting(70000, 1, -60)]}, "'beacons[0].major' must be a whole number"),
        ({"beacons": [_sighting(1, 1.5, -60)]}, "'beacons[0].minor' must be a whole number"),
        ({"beacons": [{"major": 1, "minor": 1, "rssi": -60}]}, "'beacons[0].uuid' must be"),
        ({"beacons": [{**_sighting(1, 1, -60), "uuid": "store"}]}, "got 'store'"),
        ({"beacons": [_sighting(1, 1, -60, tx_power="x")]}, "'beacons[0].tx_power'"),
        ({"at": "yesterday", "beacons": []}, "'at' is not an ISO 8601 time"),
        ({"at": "2026-03-03T15:00:00", "beacons": []}, "'at' needs a UTC offset"),
        ({"at": 1772550031250, "beacons": []}, "milliseconds? divide by 1000"),
        ({"at": -5, "beacons": []}, "'at' must be epoch seconds"),
        ({"beacons": [_sighting(1, 1, -60)] * 201}, "201 beacons in one message, at most 200"),
    ],
)
def test_bad_sightings_say_what_and_where(body: Any, expected: str) -> None:
    assert expected in _error(parse_sightings(body, "t", RECEIVED, ANCHORS)).reason


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (b"", "empty payload"),
        (b"{'at': 1}", "payload is not JSON: Expecting property name"),
        (b'{"beacons": [{"rssi": NaN}]}', "NaN is not a JSON number"),
        (b"\xff\xfe\x00garbage", "payload is not JSON"),
        (b"[" * 50_000, "nested too deeply"),
    ],
)
def test_undecodable_payloads_are_refused(payload: bytes, expected: str) -> None:
    assert expected in _error(parse_sightings(payload, "t", RECEIVED, ANCHORS)).reason


def test_a_bad_phone_token_is_refused() -> None:
    error = _error(parse_sightings({"beacons": []}, "a/b", RECEIVED, ANCHORS))
    assert error.reason.startswith("the phone's topic: a delivery token must be 1 to 128 of")


# -- the size limit -------------------------------------------------------------------------

PARSERS: list[Callable[[Any], object]] = [
    lambda p: parse_sightings(p, "t", RECEIVED, ANCHORS),
    lambda p: parse_scanner_adv(p, "node-1", RECEIVED),
    lambda p: parse_owntracks_location(p, RECEIVED),
    lambda p: parse_owntracks_transition(p, RECEIVED),
    lambda p: parse_espresense(f"iBeacon:{UUID}-1-1", "kitchen", p, RECEIVED),
]


@pytest.mark.parametrize("parse", PARSERS)
def test_oversize_payloads_are_refused_before_parsing(parse: Callable[[Any], object]) -> None:
    not_json = b"{" * (MAX_PAYLOAD_BYTES + 1)  # parsing it would say "not JSON"
    for payload in (not_json, not_json.decode()):
        error = _error(parse(payload))
        assert error.problem is Problem.TOO_LARGE
        assert f"{MAX_PAYLOAD_BYTES + 1} bytes exceeds the {MAX_PAYLOAD_BYTES}" in error.reason


def test_the_size_limit_counts_utf8_bytes_and_is_inclusive() -> None:
    body = json.dumps({"beacons": []})
    fits = body + " " * (MAX_PAYLOAD_BYTES - len(body))
    assert isinstance(parse_sightings(fits.encode(), "t", RECEIVED, ANCHORS), Sightings)
    wide = body + "é" * ((MAX_PAYLOAD_BYTES - len(body)) // 2 + 1)  # 2 bytes each
    assert len(wide) < MAX_PAYLOAD_BYTES
    assert _error(parse_sightings(wide, "t", RECEIVED, ANCHORS)).problem is Problem.TOO_LARGE


# -- scanner nodes (mode A) -----------------------------------------------------------------


def test_a_scanner_advert_becomes_an_advertisement_of_its_node() -> None:
    raw = {
        "at": 1772550031.5,
        "address": "AA:BB:CC:DD:EE:FF",
        "rssi": -67,
        "manufacturer_data": {"76": FRAME},
        "service_data": {},
    }
    got = parse_scanner_adv(json.dumps(raw).encode(), "node-tv", RECEIVED)
    assert got == [
        Advertisement(
            1772550031.5, "node-tv", "AA:BB:CC:DD:EE:FF", -67, {76: bytes.fromhex(FRAME)}, {}
        )
    ]


def test_a_list_of_adverts_each_with_or_without_time() -> None:
    raws = [{"rssi": -60, "address": "a"}, {"rssi": -61, "at": "2026-03-03T14:00:00Z"}]
    got = parse_scanner_adv(raws, "node-1", RECEIVED)
    assert isinstance(got, list)
    assert [(a.at, a.anchor, a.rssi) for a in got] == [
        (RECEIVED, "node-1", -60),
        (1772546400.0, "node-1", -61),
    ]
    assert parse_scanner_adv([], "node-1", RECEIVED) == []


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ('"a string"', "an advert must be a JSON object, got a string"),
        (5, "an advert must be a JSON object, got a number"),
        ([{"rssi": -60}, {"address": "x"}], "'[1].rssi' must be a number of dBm"),
        ({"rssi": -60, "address": 12}, "'address' must be the device's address"),
        ({"rssi": -60, "manufacturer_data": {"76": "zz"}}, "'manufacturer_data.76' is not valid"),
        ([{"rssi": -60, "manufacturer_data": {"apple": "02"}}], "[0]: 'manufacturer_data' key"),
        ({"rssi": -60, "service_data": ["00"]}, "'service_data' must be an object"),
        ({"rssi": -60, "at": float("inf")}, "'at' must be epoch seconds"),
        ([{"rssi": -60}] * (MAX_ADVERTS + 1), f"at most {MAX_ADVERTS}: split it"),
    ],
)
def test_bad_adverts_say_what_and_where(payload: Any, expected: str) -> None:
    assert expected in _error(parse_scanner_adv(payload, "node-1", RECEIVED)).reason


def test_a_bad_node_id_is_refused() -> None:
    assert "scanner node id ''" in _error(parse_scanner_adv({"rssi": -1}, "", RECEIVED)).reason


# -- OwnTracks ------------------------------------------------------------------------------


def test_an_owntracks_location() -> None:
    # The location example of https://owntracks.org/booklet/tech/json/ (its placeholders
    # batt, lat, lon, rad and p filled in with values).
    payload = {
        "_type": "location",
        "acc": 75,
        "alt": 13,
        "batt": 78,
        "cog": 270,
        "lat": 48.858330,
        "lon": 2.295130,
        "rad": 50,
        "t": "u",
        "tid": "YY",
        "tst": 1376715317,
        "vac": 10,
        "vel": 54,
        "p": 101,
        "conn": "w",
    }
    got = parse_owntracks_location(json.dumps(payload).encode(), RECEIVED)
    assert got == Location(1376715317.0, 48.858330, 2.295130, 75.0)


def test_an_owntracks_location_without_accuracy_or_time() -> None:
    got = parse_owntracks_location({"_type": "location", "lat": 1, "lon": -2}, RECEIVED)
    assert got == Location(RECEIVED, 1.0, -2.0, None)


def test_an_owntracks_transition_by_region_id() -> None:
    # Verbatim, the example of https://owntracks.org/booklet/features/waypoints/
    payload = (
        b'{"_type": "transition", "desc": "My favorite coffee shop (Delaville)", '
        b'"event": "enter", "lat": 48.87069, "lon": 2.34916, "rid": "f7676c", "tid": "j1", '
        b'"tst": 1707057574, "wtst": 1610104395}'
    )
    got = parse_owntracks_transition(payload, RECEIVED)
    assert got == Transition(
        1707057574.0,
        TransitionEvent.ENTER,
        rid="f7676c",
        desc="My favorite coffee shop (Delaville)",
        lat=48.87069,
        lon=2.34916,
    )
    assert isinstance(got, Transition)
    assert got.enter and got.names == ("f7676c", "My favorite coffee shop (Delaville)")


def test_an_owntracks_leave_without_region_id() -> None:
    # The shape of OwnTracks transitions before `rid` (2021) and of the poster's example:
    # https://owntracks.org/booklet/images/OwnTracksPosterA1.pdf (t "b": a beacon region).
    payload = {
        "_type": "transition",
        "wtst": 1425042603,
        "lat": 12.34,
        "lon": 44.5,
        "tst": 1427634603,
        "acc": 130,
        "tid": "JP",
        "event": "leave",
        "desc": "my Indian restaurant",
        "t": "b",
    }
    got = parse_owntracks_transition(payload, RECEIVED)
    assert isinstance(got, Transition)
    assert (got.event, got.trigger, got.acc_m, got.names) == (
        TransitionEvent.LEAVE,
        Trigger.BEACON,
        130.0,
        ("my Indian restaurant",),
    )
    assert not got.enter


def test_an_unknown_trigger_is_kept_as_unknown() -> None:
    body = {"_type": "transition", "event": "enter", "rid": "r", "t": "z"}
    got = parse_owntracks_transition(body, RECEIVED)
    assert isinstance(got, Transition)
    assert got.trigger is None
    assert got.at == RECEIVED


@pytest.mark.parametrize(
    ("body", "expected", "problem"),
    [
        ({"lat": 1, "lon": 2}, "'_type' of \"location\", got nothing", Problem.MALFORMED),
        ({"_type": "lwt", "tst": 1}, "'_type' of \"location\", got 'lwt'", Problem.NOT_OURS),
        ({"_type": "location", "lon": 2}, "'lat' must be a number of degrees", Problem.MALFORMED),
        ({"_type": "location", "lat": 91, "lon": 2}, "from -90 to 90", Problem.MALFORMED),
        ({"_type": "location", "lat": 1, "lon": "2"}, "'lon' must be a number", Problem.MALFORMED),
        ({"_type": "location", "lat": 1, "lon": 2, "acc": -1}, "'acc'", Problem.MALFORMED),
        ({"_type": "location", "lat": 1, "lon": 2, "tst": "x"}, "'tst'", Problem.MALFORMED),
    ],
)
def test_bad_locations_say_what(body: Any, expected: str, problem: Problem) -> None:
    error = _error(parse_owntracks_location(body, RECEIVED))
    assert expected in error.reason
    assert error.problem is problem


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"event": "enter", "rid": "r"}, "'_type' of \"transition\""),
        ({"_type": "transition", "event": "in", "rid": "r"}, "'event' must be \"enter\" or"),
        ({"_type": "transition", "event": "enter"}, "needs 'rid' (the region id) or 'desc'"),
        ({"_type": "transition", "event": "enter", "rid": 5}, "'rid' must be a non-empty"),
        ({"_type": "transition", "event": "enter", "desc": " "}, "'desc' must be a non-empty"),
        ({"_type": "transition", "event": "leave", "rid": "r", "lat": "n"}, "'lat' must be"),
    ],
)
def test_bad_transitions_say_what(body: Any, expected: str) -> None:
    assert expected in _error(parse_owntracks_transition(body, RECEIVED)).reason


# -- ESPresense -----------------------------------------------------------------------------

# The topic is espresense/devices/<id>/<room> (https://espresense.com/configuration/mqtt/);
# the payload, with its fields as ESPresense publishes them (mac, id, name, rssi@1m, rssi,
# rxAdj, rssiVar, distance, var, int), from a phone running the Home Assistant Companion app.
ESPRESENSE_ID = "iBeacon:1d4b2e16-481e-4579-8b35-ffc32e4a1758-100-1"
ESPRESENSE = (
    b'{"mac":"5a3f1c9d0e42","id":"iBeacon:1d4b2e16-481e-4579-8b35-ffc32e4a1758-100-1",'
    b'"name":"pixel-8","rssi@1m":-59,"rssi":-72.35,"rxAdj":20,"rssiVar":1.84,'
    b'"distance":3.42,"var":0.21,"int":1032}'
)


def test_an_espresense_report() -> None:
    got = parse_espresense(ESPRESENSE_ID, "kitchen", ESPRESENSE, RECEIVED)
    device = "ibeacon:1d4b2e16-481e-4579-8b35-ffc32e4a1758:100:1"
    assert got == Observation(RECEIVED, device, "kitchen", -72.35, -59)


@pytest.mark.parametrize("device", ["apple:1005:9-26", "known:eeede852bd0b", "d8a07885c1d0"])
def test_espresense_devices_that_are_not_beacons_are_not_ours(device: str) -> None:
    error = _error(parse_espresense(device, "kitchen", ESPRESENSE, RECEIVED))
    assert error.problem is Problem.NOT_OURS
    assert repr(device) in error.reason


@pytest.mark.parametrize(
    ("room", "payload", "expected"),
    [
        ("kitchen", b'{"rssi@1m": -59}', "'rssi' must be a number of dBm"),
        ("kitchen", b'{"rssi": -70, "rssi@1m": "x"}', "'rssi@1m' must be a number"),
        ("kitchen", b"-70", "the ESPresense payload must be a JSON object, got a number"),
        ("", ESPRESENSE, "ESPresense room '' must be one non-empty MQTT topic level"),
    ],
)
def test_bad_espresense_reports_say_what(room: str, payload: bytes, expected: str) -> None:
    assert expected in _error(parse_espresense(ESPRESENSE_ID, room, payload, RECEIVED)).reason


# -- nothing raises -------------------------------------------------------------------------

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)
BEACON = st.fixed_dictionaries(
    {},
    optional={
        "uuid": st.sampled_from([UUID, UUID.upper(), "x"]) | JSON,
        "major": st.integers(-2, 70_000) | JSON,
        "minor": st.integers(-2, 70_000) | JSON,
        "rssi": st.floats(-200, 50) | JSON,
        "tx_power": st.integers(-130, 30) | JSON,
    },
)
TIME = st.floats() | st.integers() | st.text(max_size=30) | st.datetimes().map(str) | JSON
SHAPED = st.fixed_dictionaries(
    {},
    optional={
        "_type": st.sampled_from(["location", "transition", "lwt"]) | JSON,
        "at": TIME,
        "tst": TIME,
        "beacons": st.lists(BEACON, max_size=4) | JSON,
        "lat": st.floats(-100, 100) | JSON,
        "lon": st.floats(-200, 200) | JSON,
        "acc": st.floats(-10, 1e7) | JSON,
        "event": st.sampled_from(["enter", "leave"]) | JSON,
        "rid": JSON,
        "desc": JSON,
        "t": JSON,
        "rssi": st.floats(-200, 50) | JSON,
        "rssi@1m": st.floats(-200, 50) | JSON,
        "address": JSON,
        "manufacturer_data": st.dictionaries(st.text(max_size=4), st.text(max_size=8)) | JSON,
        "service_data": st.dictionaries(st.text(max_size=4), st.text(max_size=8)) | JSON,
    },
)
PAYLOAD = (
    JSON
    | SHAPED
    | st.lists(SHAPED, max_size=3)
    | st.binary(max_size=200)
    | SHAPED.map(lambda v: json.dumps(v).encode())
)
RESULT_TYPES = (Sightings, list, Location, Transition, Observation)


@given(PAYLOAD, st.text(max_size=12), st.text(max_size=40))
def test_no_payload_makes_a_parser_raise(payload: Any, name: str, device: str) -> None:
    results = [
        parse_sightings(payload, name, RECEIVED, ANCHORS),
        parse_scanner_adv(payload, name, RECEIVED),
        parse_owntracks_location(payload, RECEIVED),
        parse_owntracks_transition(payload, RECEIVED),
        parse_espresense(device, name, payload, RECEIVED),
        parse_espresense(ESPRESENSE_ID, "kitchen", payload, RECEIVED),
    ]
    for result in results:
        assert isinstance(result, (InboundError, *RESULT_TYPES))
        if isinstance(result, InboundError):
            assert result.reason and isinstance(result.problem, Problem)


def test_a_loyalty_number_is_no_phone_token() -> None:
    """docs/mqtt.md: a token is opaque; one of digits only may be a loyalty number, refused
    without being repeated in the message (which is logged)."""
    for token in ("4970123456789", "4970-1234-5678"):
        error = _error(parse_sightings({"beacons": []}, token, RECEIVED, ANCHORS))
        assert "must not be only digits" in error.reason and token not in error.reason
