"""gateway.decode.privacy: beacon frames, the privacy filter and the `rayon decode` diagnostic.

Captured frames come from the test suites of other projects, cited on each: the bytes are
what a radio reported (after the company id for manufacturer data), the expected values are
the ones those projects assert (converted to our units where said).
"""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from gateway.cli.decode import check_line, decode_line, decode_stream
from gateway.decode.beacons import (
    EDDYSTONE_SERVICE,
    URL_EXPANSIONS,
    URL_SCHEMES,
    AltBeacon,
    Beacon,
    EddystoneTLM,
    EddystoneUID,
    EddystoneURL,
    IBeacon,
    decode_all,
    decode_manufacturer,
    decode_service,
    encode_altbeacon,
    encode_eddystone_tlm,
    encode_eddystone_uid,
    encode_eddystone_url,
    encode_ibeacon,
)
from gateway.decode.privacy import PrivacyFilter
from gateway.events import Advertisement, Observation
from gateway.ids import canonical_device_id
from rayon_tooling.benchmarks import decode as bench
from rayon_tooling.benchmarks.decode import bench_decode

# Bluetooth-Devices/ibeacon-ble tests/test_init.py and home-assistant/core
# tests/components/ibeacon/__init__.py: a BlueCharm BC011 beacon.
BLUECHARM_IBEACON = b"\x02\x15BlueCharmBeacons\x0e\xfe\x13U\xc5"
BLUECHARM_UUID = "426c7565-4368-6172-6d42-6561636f6e73"
# ibeacon-ble tests/test_init.py: the TLM frame the same BlueCharm interleaves.
BLUECHARM_TLM = b" \x00\x0b\xfe\x1c\x00\x00\x00\x07\x08\x00\x00>|"
# home-assistant/core tests/components/ibeacon/__init__.py: a Feasy FSC-BP108 TLM frame
# without a temperature sensor (0x8000).
FEASY_TLM = b' \x00\x0c\x86\x80\x00\x00\x00\x93f\x0b\x7f\x93"'
# Bluetooth-Devices/bluetooth-data-tools tests/test_gap.py (base64 AgEGGv9MAAIV1Ubfl0dXR…).
BDT_IBEACON = b"\x02\x15\xd5F\xdf\x97GWG\xef\xbe\t>-\xcb\xdd\x0cw\x156\xcd\xc9\xb5"
# bluetooth-data-tools tests/test_gap.py: Apple "Nearby Info" (0x10) and type 0x06 frames.
APPLE_NEARBY = b"\x10\x05\n\x1cw\xf9["
APPLE_TYPE_06 = b"\x061\x00\xe4\xc4\x9b\xee\xfb>\x05\x00\r\x00\x01\x02c\x11 e"
# citruz/beacontools tests/test_parser.py (the AD structures, after the 0xFEAA / 0x004C).
BT_IBEACON = bytes.fromhex("02154142434445464748494041424344454600010002f8")
BT_CYPRESS = bytes.fromhex("02150005000100001000800000805f9b013100026c66c3")
BT_UID = bytes.fromhex("00e3123456789012346789010000000000010000")
BT_URL = b"\x10\xf8\x03github\x00citruz"
BT_TLM = bytes.fromhex("2000 0b18 1300 00001467 00002ac4".replace(" ", ""))
BT_TLM_ENCRYPTED = b"\x20\x01" + b"A" * 12 + b"\xde\xad\xbe\xff"
BT_EID = b"\x30\xe3EID_test"
# AltBeacon/android-beacon-library AltBeaconParserTest: 02011a1aff1801beac…c509, company 0x0118.
ABL_ALTBEACON = bytes.fromhex("beac2f234454cf6d4a0fadf2f4911ba9ffa600010002c509")

ALLOWED_UUID = BLUECHARM_UUID
ALLOWED_NAMESPACE = "12345678901234678901"


# -- captured frames ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("company", "data", "expected"),
    [
        (76, BLUECHARM_IBEACON, IBeacon(BLUECHARM_UUID, 3838, 4949, -59)),
        (76, BDT_IBEACON, IBeacon("d546df97-4757-47ef-be09-3e2dcbdd0c77", 5430, 52681, -75)),
        (76, BT_IBEACON, IBeacon("41424344-4546-4748-4940-414243444546", 1, 2, -8)),
        (76, BT_CYPRESS, IBeacon("00050001-0000-1000-8000-00805f9b0131", 2, 0x6C66, -61)),
        (0x0118, ABL_ALTBEACON, AltBeacon("2f234454cf6d4a0fadf2f4911ba9ffa600010002", -59, 9, 280)),
    ],
)
def test_captured_manufacturer_frames(company: int, data: bytes, expected: Beacon) -> None:
    assert decode_manufacturer(company, data) == expected


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (BT_UID, EddystoneUID("12345678901234678901", "000000000001", -29)),
        (BT_URL, EddystoneURL("https://github.com/citruz", -8)),
        # beacontools reports the raw uptime (10948); the spec's unit is 0.1 s.
        (BT_TLM, EddystoneTLM(2840, 19.0, 5223, 1094.8)),
        (BLUECHARM_TLM, EddystoneTLM(3070, 28.0, 1800, 1599.6)),
        (FEASY_TLM, EddystoneTLM(3206, None, 37734, 19291011.4)),
    ],
)
def test_captured_eddystone_frames(data: bytes, expected: Beacon) -> None:
    assert decode_service(EDDYSTONE_SERVICE, data) == expected


def test_canonical_ids() -> None:
    ibeacon = decode_manufacturer(76, BLUECHARM_IBEACON)
    uid = decode_service("feaa", BT_UID)
    alt = decode_manufacturer(0x0118, ABL_ALTBEACON)
    assert ibeacon is not None and uid is not None and alt is not None
    assert isinstance(uid, EddystoneUID)
    assert ibeacon.id == f"ibeacon:{BLUECHARM_UUID}:3838:4949"
    assert uid.id == "eddystone:12345678901234678901:000000000001"
    assert alt.id == "altbeacon:2f234454cf6d4a0fadf2f4911ba9ffa600010002"
    for beacon in (ibeacon, uid, alt):
        assert canonical_device_id(beacon.id) == beacon.id


def test_eddystone_service_uuid_forms() -> None:
    for key in (EDDYSTONE_SERVICE, EDDYSTONE_SERVICE.upper(), "feaa", "FEAA"):
        assert decode_service(key, BT_UID) is not None, key
    assert decode_service("0000fff0-0000-1000-8000-00805f9b34fb", BT_UID) is None


@pytest.mark.parametrize(
    ("company", "data"),
    [
        (76, APPLE_NEARBY),
        (76, APPLE_TYPE_06),
        (76, b"\x12\x19" + bytes(25)),  # Find My layout (type 0x12, length 0x19), zeroed
        (76, b"\x02\x16" + BLUECHARM_IBEACON[2:]),  # iBeacon type, wrong inner length
        (21, BLUECHARM_IBEACON),  # ibeacon-ble NOT_IBEACON_SERVIE_INFO: not Apple
        (76, BLUECHARM_IBEACON[:22]),
        (76, b""),
        (76, b"\x02"),
        (0x0118, ABL_ALTBEACON[:23]),
        (0x0118, ABL_ALTBEACON + b"\x00"),
        (0x0118, b"\xbe\xad" + ABL_ALTBEACON[2:]),
    ],
)
def test_not_a_manufacturer_beacon(company: int, data: bytes) -> None:
    assert decode_manufacturer(company, data) is None


def test_ibeacon_ignores_a_following_apple_record() -> None:
    # `02 15` delimits the iBeacon record; Apple data may carry another record after it.
    assert decode_manufacturer(76, BLUECHARM_IBEACON + APPLE_NEARBY) == decode_manufacturer(
        76, BLUECHARM_IBEACON
    )


@pytest.mark.parametrize(
    "data",
    [
        BT_TLM_ENCRYPTED,
        BT_EID,
        BT_UID[:17],
        BT_UID + b"\x00",
        BT_TLM[:13],
        BT_TLM + b"\x00",
        b"\x20\x02" + BT_TLM[2:],
        b"\x10\xf8\x04abc",
        b"\x10\xf8",
        b"",
        b"\x40\x00\x00",
        b"\x10\xf8\x03" + b"a" * 18,
    ],
)
def test_not_an_eddystone_frame(data: bytes) -> None:
    assert decode_service(EDDYSTONE_SERVICE, data) is None


def test_eddystone_url_schemes_and_expansions() -> None:
    for code, scheme in enumerate(URL_SCHEMES):
        assert decode_service("feaa", bytes([0x10, 0xEE, code]) + b"x") == EddystoneURL(
            scheme + "x", -18
        )
    for code, expansion in enumerate(URL_EXPANSIONS):
        frame = decode_service("feaa", bytes([0x10, 0, 3]) + b"shop" + bytes([code]) + b"a")
        assert frame == EddystoneURL(f"https://shop{expansion}a", 0)


@pytest.mark.parametrize("reserved", [*range(0x0E, 0x21), 0x7F, 0x80, 0xFF])
def test_eddystone_url_reserved_bytes(reserved: int) -> None:
    assert decode_service("feaa", bytes([0x10, 0, 3]) + b"ab" + bytes([reserved])) is None


def test_encode_url_uses_the_shortest_form() -> None:
    assert encode_eddystone_url("https://www.example.com/x", -20) == b"\x10\xec\x01example\x00x"
    assert encode_eddystone_url("http://a.org", 0) == b"\x10\x00\x02a\x08"
    with pytest.raises(ValueError, match="must start with"):
        encode_eddystone_url("ftp://a", 0)
    with pytest.raises(ValueError, match="too long"):
        encode_eddystone_url("https://" + "a" * 18, 0)


# -- property tests -------------------------------------------------------------------------

uuids = st.uuids().map(str)


def hex_of(size: int) -> st.SearchStrategy[str]:
    return st.binary(min_size=size, max_size=size).map(bytes.hex)


int8 = st.integers(-128, 127)
uint16 = st.integers(0, 0xFFFF)
uint32 = st.integers(0, 0xFFFFFFFF)


@given(st.integers(0, 0xFFFF) | st.sampled_from([76, 0x0118]), st.binary(max_size=40))
def test_manufacturer_bytes_never_raise(company: int, data: bytes) -> None:
    beacon = decode_manufacturer(company, data)
    assert beacon is None or isinstance(beacon, IBeacon | AltBeacon)


@given(st.sampled_from([EDDYSTONE_SERVICE, "FEAA", "180f"]), st.binary(max_size=30))
def test_service_bytes_never_raise(uuid: str, data: bytes) -> None:
    frame = decode_service(uuid, data)
    assert frame is None or isinstance(frame, EddystoneUID | EddystoneURL | EddystoneTLM)


@given(st.sampled_from([0x00, 0x10, 0x20]), st.binary(max_size=22))
def test_eddystone_like_bytes_never_raise(kind: int, rest: bytes) -> None:
    decode_service("feaa", bytes([kind]) + rest)


@given(st.text(max_size=200))
def test_decode_line_never_raises_on_text(line: str) -> None:
    out = decode_line(line)
    assert out == "null" or json.loads(out)["kind"]


@given(
    st.dictionaries(st.integers(0, 0xFFFF).map(str), st.binary(max_size=30).map(bytes.hex)),
    st.dictionaries(
        st.sampled_from([EDDYSTONE_SERVICE, "feaa", "x"]), st.binary(max_size=22).map(bytes.hex)
    ),
)
def test_decode_line_never_raises_on_frames(mfr: dict[str, str], svc: dict[str, str]) -> None:
    text, problem = check_line(json.dumps({"manufacturer_data": mfr, "service_data": svc}))
    assert problem is None
    json.loads(text)


@given(uuids, uint16, uint16, int8)
def test_ibeacon_round_trip(uuid: str, major: int, minor: int, tx: int) -> None:
    assert decode_manufacturer(76, encode_ibeacon(uuid, major, minor, tx)) == IBeacon(
        uuid, major, minor, tx
    )


@given(hex_of(20), int8, st.integers(0, 255), uint16)
def test_altbeacon_round_trip(beacon_id: str, tx: int, reserved: int, company: int) -> None:
    data = encode_altbeacon(beacon_id, tx, reserved)
    assert decode_manufacturer(company, data) == AltBeacon(beacon_id, tx, reserved, company)


@given(hex_of(10), hex_of(6), int8)
def test_eddystone_uid_round_trip(namespace: str, instance: str, tx: int) -> None:
    data = encode_eddystone_uid(namespace, instance, tx)
    assert decode_service("feaa", data) == EddystoneUID(namespace, instance, tx)
    assert decode_service("feaa", data[:18]) == EddystoneUID(namespace, instance, tx)


@given(
    st.sampled_from(URL_SCHEMES),
    st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=30),
    int8,
)
def test_eddystone_url_round_trip(scheme: str, rest: str, tx: int) -> None:
    try:
        data = encode_eddystone_url(scheme + rest, tx)
    except ValueError:
        assume(False)  # too long once encoded
        raise
    assert decode_service("feaa", data) == EddystoneURL(scheme + rest, tx)


@given(
    uint16,
    st.none() | st.integers(-0x7FFF, 0x7FFF).map(lambda t: t / 256),
    uint32,
    uint32.map(lambda u: u / 10),
)
def test_eddystone_tlm_round_trip(mv: int, temp: float | None, count: int, up: float) -> None:
    frame = decode_service("feaa", encode_eddystone_tlm(mv, temp, count, up))
    assert isinstance(frame, EddystoneTLM)
    assert (frame.battery_mv, frame.temperature_c, frame.adv_count) == (mv, temp, count)
    assert frame.uptime_s == pytest.approx(up, abs=1e-6)


# -- the privacy filter ---------------------------------------------------------------------


def adv(mfr: dict[int, bytes] | None = None, svc: dict[str, bytes] | None = None) -> Advertisement:
    return Advertisement(12.5, "pi-tv", "AA:BB", -67, mfr or {}, svc or {})


@pytest.fixture
def privacy() -> PrivacyFilter:
    return PrivacyFilter([ALLOWED_UUID.upper()], [ALLOWED_NAMESPACE.upper()])


def test_filter_keeps_configured_ibeacon(privacy: PrivacyFilter) -> None:
    obs = privacy.observe(adv({76: BLUECHARM_IBEACON}))
    assert obs == Observation(12.5, f"ibeacon:{ALLOWED_UUID}:3838:4949", "pi-tv", -67, -59)


def test_filter_keeps_configured_eddystone_with_tx_at_1m(privacy: PrivacyFilter) -> None:
    hit = privacy.identify(adv(svc={"FEAA": BT_UID}))
    assert hit == ("eddystone:12345678901234678901:000000000001", -29 - 41)


def test_filter_keeps_altbeacon_of_a_proximity_uuid() -> None:
    alt = PrivacyFilter(["2f234454-cf6d-4a0f-adf2-f4911ba9ffa6"], [])
    hit = alt.identify(adv({0x0118: ABL_ALTBEACON}))
    assert hit == ("altbeacon:2f234454cf6d4a0fadf2f4911ba9ffa600010002", -59)


@pytest.mark.parametrize(
    "dropped",
    [
        adv({76: BDT_IBEACON}),  # another UUID
        adv({76: APPLE_NEARBY}),
        adv({0x0118: ABL_ALTBEACON}),  # AltBeacon of another UUID
        adv(svc={EDDYSTONE_SERVICE: encode_eddystone_uid("ab" * 10, "00" * 6, -20)}),
        adv(svc={EDDYSTONE_SERVICE: BLUECHARM_TLM}),  # telemetry carries no id
        adv(svc={EDDYSTONE_SERVICE: b"\x10" + BT_UID[1:]}),  # our namespace's bytes, not a UID
        adv({21: BLUECHARM_IBEACON}),  # our UUID, not an Apple frame
        adv(),
    ],
)
def test_filter_drops_everything_else(privacy: PrivacyFilter, dropped: Advertisement) -> None:
    assert privacy.identify(dropped) is None
    assert privacy.observe(dropped) is None


def test_filter_picks_the_first_allowed_beacon(privacy: PrivacyFilter) -> None:
    both = adv({76: BDT_IBEACON, 0x0118: ABL_ALTBEACON}, {"feaa": BT_UID})
    assert privacy.identify(both) == ("eddystone:12345678901234678901:000000000001", -70)
    first = adv({76: BLUECHARM_IBEACON}, {"feaa": BT_UID})
    assert privacy.identify(first) == (f"ibeacon:{ALLOWED_UUID}:3838:4949", -59)


def test_empty_configuration_keeps_nothing() -> None:
    none = PrivacyFilter([], [])
    assert none.identify(adv({76: BLUECHARM_IBEACON}, {"feaa": BT_UID})) is None


POOL = [ALLOWED_UUID, "d546df97-4757-47ef-be09-3e2dcbdd0c77"]
NAMESPACES = [ALLOWED_NAMESPACE, "ab" * 10]
ibeacon_frames = st.builds(encode_ibeacon, st.sampled_from(POOL), uint16, uint16, int8)
alt_frames = st.builds(
    encode_altbeacon, st.sampled_from(POOL).map(lambda u: u.replace("-", "") + "0102abcd"), int8
)
uid_frames = st.builds(encode_eddystone_uid, st.sampled_from(NAMESPACES), hex_of(6), int8)
noise = st.binary(max_size=26)


@given(
    st.dictionaries(
        st.sampled_from([76, 76, 0x0118, 89]), ibeacon_frames | alt_frames | noise, max_size=3
    ),
    st.dictionaries(
        st.sampled_from(["feaa", EDDYSTONE_SERVICE, "180f"]), uid_frames | noise, max_size=2
    ),
)
def test_filter_agrees_with_decode_all(mfr: dict[int, bytes], svc: dict[str, bytes]) -> None:
    privacy = PrivacyFilter([ALLOWED_UUID], [ALLOWED_NAMESPACE])
    expected = next((b for b in decode_all(mfr, svc) if _allowed(b)), None)
    hit = privacy.identify(adv(mfr, svc))
    if expected is None:
        assert hit is None
        return
    assert isinstance(expected, IBeacon | AltBeacon | EddystoneUID)
    tx_at_1m = expected.tx_power - (41 if isinstance(expected, EddystoneUID) else 0)
    assert hit == (expected.id, tx_at_1m)


def _allowed(beacon: Beacon) -> bool:
    match beacon:
        case IBeacon():
            return beacon.uuid == ALLOWED_UUID
        case AltBeacon():
            return beacon.beacon_id[:32] == ALLOWED_UUID.replace("-", "")
        case EddystoneUID():
            return beacon.namespace == ALLOWED_NAMESPACE
    return False


# -- `rayon decode` -------------------------------------------------------------------------


def line(mfr: dict[int, bytes] | None = None, svc: dict[str, bytes] | None = None) -> str:
    obj = {
        "manufacturer_data": {str(k): v.hex() for k, v in (mfr or {}).items()},
        "service_data": {k: v.hex() for k, v in (svc or {}).items()},
        "rssi": -60,
    }
    return json.dumps(obj)


def test_decode_line_ibeacon_exact() -> None:
    assert decode_line(line({76: BLUECHARM_IBEACON})) == (
        '{"kind":"ibeacon","id":"ibeacon:426c7565-4368-6172-6d42-6561636f6e73:3838:4949",'
        '"uuid":"426c7565-4368-6172-6d42-6561636f6e73","major":3838,"minor":4949,"tx_power":-59}'
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            line(svc={EDDYSTONE_SERVICE: BT_UID}),
            {
                "kind": "eddystone_uid",
                "id": "eddystone:12345678901234678901:000000000001",
                "namespace": "12345678901234678901",
                "instance": "000000000001",
                "tx_power": -29,
            },
        ),
        (
            line(svc={EDDYSTONE_SERVICE: BT_URL}),
            {"kind": "eddystone_url", "url": "https://github.com/citruz", "tx_power": -8},
        ),
        (
            line(svc={EDDYSTONE_SERVICE: FEASY_TLM}),
            {
                "kind": "eddystone_tlm",
                "battery_mv": 3206,
                "temperature_c": None,
                "adv_count": 37734,
                "uptime_s": 19291011.4,
            },
        ),
        (
            line({0x0118: ABL_ALTBEACON}),
            {
                "kind": "altbeacon",
                "id": "altbeacon:2f234454cf6d4a0fadf2f4911ba9ffa600010002",
                "beacon_id": "2f234454cf6d4a0fadf2f4911ba9ffa600010002",
                "tx_power": -59,
                "mfg_reserved": 9,
                "company_id": 280,
            },
        ),
    ],
)
def test_decode_line_outputs(text: str, expected: dict[str, Any]) -> None:
    out = decode_line(text)
    assert " " not in out
    assert json.loads(out) == expected
    assert list(json.loads(out)) == list(expected)  # field order too


def test_decode_line_first_beacon_manufacturer_first() -> None:
    out = json.loads(decode_line(line({76: BLUECHARM_IBEACON}, {EDDYSTONE_SERVICE: BT_UID})))
    assert out["kind"] == "ibeacon"
    assert json.loads(decode_line(line({76: APPLE_NEARBY}, {"feaa": BT_UID})))["kind"] == (
        "eddystone_uid"
    )


def test_decode_line_accepts_a_trace_line() -> None:
    trace = json.dumps({"at": 1.0, "adv": json.loads(line({76: BLUECHARM_IBEACON}))})
    assert json.loads(decode_line(trace))["id"] == f"ibeacon:{BLUECHARM_UUID}:3838:4949"


def test_decode_stream_keeps_lines_aligned_and_reports_errors() -> None:
    lines = [
        line({76: BLUECHARM_IBEACON}),
        "{not json",
        line({76: APPLE_NEARBY}),
        '{"manufacturer_data": {"76": "02zz"}}',
        '{"manufacturer_data": {"0x4c": "00"}}',
        '{"service_data": []}',
        "[1, 2]",
    ]
    out, err = io.StringIO(), io.StringIO()
    assert decode_stream(io.StringIO("\n".join(lines) + "\n"), out, err) == 5
    outputs = out.getvalue().splitlines()
    assert len(outputs) == len(lines)
    assert json.loads(outputs[0])["kind"] == "ibeacon"
    assert outputs[1:] == ["null"] * 6
    errors = err.getvalue().splitlines()
    assert [e.split(": error: ")[0] for e in errors] == [f"<stdin>:{n}" for n in (2, 4, 5, 6, 7)]
    assert "not JSON" in errors[0]
    assert "manufacturer_data.76" in errors[1] and "hex" in errors[1]
    assert "decimal company id" in errors[2]
    assert "service_data" in errors[3]


def test_privacy_filter_allows_only_the_store_ids() -> None:
    ours = "8d8c1a2e-5b3f-4c1d-9e2a-0f6b7c8d9e10"
    f = PrivacyFilter([ours], ["00112233445566778899"])
    assert f.allows(f"ibeacon:{ours}:1:2")
    assert not f.allows("ibeacon:00000000-0000-0000-0000-000000000000:1:2")
    assert f.allows("altbeacon:" + ours.replace("-", "") + "00010002")
    assert f.allows("eddystone:00112233445566778899:aabbccddeeff")
    assert not f.allows("eddystone:ffffffffffffffffffff:aabbccddeeff")
    assert not f.allows("ibeacon:not-a-uuid:1:2") and not f.allows("phone:t-1")


# -- the decode benchmark (issue 8): runs on tiny sizes; speed is never asserted ------------


def test_bench_decode_checks_and_prints_its_table() -> None:
    out = io.StringIO()
    assert bench_decode(count=30, repeats=1, out=out) == 0
    text = out.getvalue()
    found, missing = bench.peers()
    for frames in ("iBeacon", "Eddystone UID+URL"):
        assert any(line.startswith(frames) and " rayon " in line for line in text.splitlines())
        assert (f"{frames}: rayon " in text) == bool(found)
    for name in missing:
        assert f"{name} is not installed" in text
    assert ("identical results on all 30 frames" in text) == bool(found)


def test_generated_frames_decode_to_what_was_encoded() -> None:
    sets = bench.frame_sets(20, seed=3)
    assert sets == bench.frame_sets(20, seed=3)
    for frames in sets.values():
        assert bench.mismatches([bench.RAYON], frames) == []


def test_the_identity_check_reports_a_library_that_disagrees() -> None:
    frames = bench.frame_sets(5, seed=1)["iBeacon"]

    def off_by_one(found: list[Any]) -> bench.Normal:
        normal = bench.RAYON.normal(found)
        assert normal is not None and isinstance(normal[3], int)
        return (*normal[:3], normal[3] + 1, *normal[4:])  # minor + 1

    liar = bench.Decoder("liar", bench.RAYON.prepare, bench.RAYON.decode, off_by_one)
    wrong = bench.mismatches([liar], frames)
    assert len(wrong) == 5 and wrong[0].startswith("liar, frame 0: ")


def test_suite_rows_say_the_lead_or_how_to_install_the_peers() -> None:
    rows = bench.suite_rows(quick=True)
    found, _ = bench.peers()
    assert len(rows) == (2 if found else 1)
    for row in rows:
        assert row.command == "rayon bench decode"
        assert (row.met is None) == (not found)
