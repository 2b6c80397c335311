"""Customer files (docs/trace.md): objects, JSONL and CSV, bad lines, aliases, round-trips."""

from __future__ import annotations

import json
from pathlib import Path
from types import MappingProxyType

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.config.load import load_config
from gateway.decode.jsonvalues import InboundError
from gateway.identity.customers import (
    MAX_VISITS,
    customer_from_obj,
    customer_to_obj,
    read_customers,
    write_customers,
)
from gateway.identity.model import Consent, Customer
from gateway.ids import CUSTOMER_ID_RULE, TOKEN_RULE
from gateway.store.repo import Store
from tests.stores import rayon, reference_store
from tests.walks import customer_of

UUID = "8d8c1a2e-5b3f-4c1d-9e2a-0f6b7c8d9e10"
ALICE = Customer(
    id="c1",
    token="tok-alice",
    devices=(f"ibeacon:{UUID}:100:1", "eddystone:edd1ebeac04e5defa017:0123456789ab"),
    consent=Consent(instore_location=True, marketing_push=True),
    first_name="Alice",
    segments=frozenset({"gamer", "vip"}),
    interests=frozenset({"tv", "audio"}),
    tier="gold",
    visits=12,
    last_visit=1772550031.0,
    attributes=MappingProxyType({"postcode": "75011", "kids": 2, "brands": ("sony", "lg")}),
)
BOB = Customer(id="c2", token="tok-bob", devices=(f"ibeacon:{UUID}:100:2",))


def test_object_with_aliases_and_iso_time() -> None:
    obj = {
        "id": "c1",
        "token": "tok-alice",
        "devices": [f"iBeacon:{UUID.upper()}-100-1", "EDDYSTONE:EDD1EBEAC04E5DEFA017:0123456789AB"],
        "consent": {"instore_location": True, "marketing_push": True},
        "first_name": "Alice",
        "segments": ["vip", "gamer"],
        "interests": ["tv", "audio"],
        "tier": "gold",
        "visits": 12,
        "last_visit": "2026-03-03T15:00:31+00:00",
        "attributes": {"postcode": "75011", "kids": 2, "brands": ["sony", "lg"]},
    }
    assert customer_from_obj(obj, "crm") == ALICE


def test_home_assistant_alias_and_defaults() -> None:
    c = customer_of({"id": 7, "token": "t7", "devices": [f"{UUID}_1_2"]})
    assert c.id == "7"
    assert c.devices == (f"ibeacon:{UUID}:1:2",)
    assert c.consent == Consent(instore_location=False, marketing_push=False)
    assert (c.visits, c.last_visit, c.first_name, dict(c.attributes)) == (0, None, None, {})


@pytest.mark.parametrize(
    ("value", "seconds"),
    [(1772550031, 1772550031.0), ("1772550031.5", 1772550031.5),
     ("2026-03-03T15:00:31Z", 1772550031.0), ("2026-03-03T16:00:31+01:00", 1772550031.0),
     ("2026-03-03T15:00:31", 1772550031.0)],
)  # fmt: skip
def test_last_visit_forms(value: object, seconds: float) -> None:
    c = customer_of({"id": "c", "token": "t", "last_visit": value})
    assert c.last_visit == seconds


@pytest.mark.parametrize(
    ("obj", "message"),
    [
        ({"token": "t"}, "crm/c9: error: 'id': missing: every customer needs one"),
        ({"id": "c"}, "crm/c9: error: 'token': missing: every customer needs one"),
        ({"id": "c", "token": "a/b"}, f"crm/c9: error: 'token': a delivery token must be "
         f"{TOKEN_RULE}, got a string of 3 characters"),
        ({"id": "c", "token": "4970123456789"}, "crm/c9: error: 'token': a delivery token must "
         "not be only digits: use an opaque random token such as 22 URL-safe base64 characters,"
         " never a loyalty number (docs/mqtt.md), got a string of 13 characters"),
        ({"id": "a/b+c", "token": "t"}, f"crm/c9: error: 'id': a customer id must be "
         f"{CUSTOMER_ID_RULE}, got a string of 5 characters"),
        ({"id": "c", "token": "t", "intrests": []}, "crm/c9: error: 'intrests': unknown field "
         "(did you mean 'interests'?)"),
        ({"id": "c", "token": "t", "devices": ["ibeacon:123:1:2"]}, "crm/c9: error: 'devices[0]':"
         " not a device id: write ibeacon:<uuid>:<major>:<minor>, "
         "eddystone:<ns>:<instance> or altbeacon:<40 hex>"),
        ({"id": "c", "token": "t", "consent": {"marketing_push": "yes"}}, "crm/c9: error: "
         "'consent.marketing_push': expected true or false, got a string of 3 characters"),
        ({"id": "c", "token": "t", "consent": {"push": True}}, "crm/c9: error: 'consent.push': "
         "unknown purpose"),
        ({"id": "c", "token": "t", "visits": "3"}, "crm/c9: error: 'visits': expected a whole "
         "number from 0 to 1,000,000, got a string of 1 character"),
        ({"id": "c", "token": "t", "last_visit": "yesterday"}, "crm/c9: error: 'last_visit': "
         "expected ISO 8601 or epoch seconds, got a string of 9 characters"),
        ({"id": "c", "token": "t", "attributes": {"a": {"b": 1}}}, "crm/c9: error: "
         "'attributes.a': expected a string of at most 1000 characters, a number within "
         "±2**53, a boolean, or a list of at most 100 of them, got an object"),
        ({"id": ["c"], "token": 5, "segments": "vip"}, "crm/c9: error: 'id': a customer id must "
         f"be {CUSTOMER_ID_RULE}, got a list; 'token': a delivery token must be {TOKEN_RULE}, "
         "got a number; 'segments': expected a list of at most 100 strings, got a string of 3 "
         "characters"),
        ([1, 2], "crm/c9: error: expected a JSON object, got a list"),
    ],
)  # fmt: skip
def test_bad_objects_name_where_and_field(obj: object, message: str) -> None:
    assert customer_from_obj(obj, "crm/c9") == InboundError(message)


def test_to_obj_is_the_jsonl_form() -> None:
    obj = customer_to_obj(ALICE)
    assert json.loads(json.dumps(obj)) == obj
    assert obj["consent"] == {"instore_location": True, "marketing_push": True}
    assert obj["last_visit"] == "2026-03-03T15:00:31+00:00"
    assert obj["segments"] == ["gamer", "vip"]
    assert obj["attributes"]["brands"] == ["sony", "lg"]


@pytest.mark.parametrize("name", ["customers.jsonl", "customers.csv"])
def test_file_round_trip(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    write_customers(path, [ALICE, BOB])
    customers, errors = read_customers(path)
    assert errors == []
    if name.endswith(".csv"):  # CSV attributes are text
        alice = customers[0]
        assert alice.attributes == {"postcode": "75011", "kids": "2", "brands": "sony|lg"}
        assert [c.id for c in customers] == ["c1", "c2"]
        assert customers[1] == BOB
    else:
        assert customers == [ALICE, BOB]


def test_jsonl_bad_lines_are_reported_and_good_ones_kept(tmp_path: Path) -> None:
    path = tmp_path / "crm.jsonl"
    lines = [
        json.dumps({"id": "c1", "token": "t1"}),
        "",
        "{not json",
        json.dumps({"id": "c2", "token": "t2", "devices": ["nope"]}),
        json.dumps({"id": "c3", "token": "t3", "devices": [f"{UUID}_1_3"]}),
        json.dumps({"id": "c1", "token": "t9"}),
        json.dumps({"id": "c4", "token": "t4", "devices": [f"ibeacon:{UUID}:1:3"]}),
        "[]",
    ]
    path.write_text("\n".join(lines) + "\n")
    customers, errors = read_customers(path)
    assert [c.id for c in customers] == ["c1", "c3"]
    assert [e.split(": error: ")[0] for e in errors] == [f"{path}:{n}" for n in ("3:2", 4, 6, 7, 8)]
    assert errors[0].startswith(f"{path}:3:2: error: invalid JSON: a field name in double quotes")
    assert errors[2] == f"{path}:6: error: id 'c1' is already on line 1"
    assert errors[3] == f"{path}:7: error: device 'ibeacon:{UUID}:1:3' is already on line 5"
    assert errors[4] == f"{path}:8: error: expected a JSON object, got a list"


@pytest.mark.parametrize(
    ("line", "where", "message"),
    [
        ('{"id": "c1" "token": "t1"}', 13, "a comma, or a closing } or ], is missing here"),
        (
            "{'id': 'c1', 'token': 't1'}",
            2,
            'a field name in double quotes is expected here ("id": ',
        ),
        (
            '{"id": c1, "token": "t1"}',
            8,
            "a value is missing here, or a text lacks its double quotes",
        ),
        ('{"id": "c1, "token": "t1"}', 14, "a comma, or a closing } or ], is missing here"),
        ('{"id" "c1", "token": "t1"}', 7, "a ':' is missing after the field name"),
        ('{"id": "c1", "token": "t1"} x', 29, "something follows the end of the object"),
        ('{"id": "c1", "token": "t1', 23, 'the text starting here is never closed with a "'),
    ],
)
def test_a_json_mistake_is_told_in_plain_words_at_its_column(
    tmp_path: Path, line: str, where: int, message: str
) -> None:
    path = tmp_path / "crm.jsonl"
    path.write_text(json.dumps({"id": "c0", "token": "t0"}) + "\n" + line + "\n")
    customers, errors = read_customers(path)
    assert [c.id for c in customers] == ["c0"]
    (error,) = errors
    assert error.startswith(f"{path}:2:{where}: error: invalid JSON: {message}"), error
    assert not any(word in error for word in ("Expecting", "delimiter", "char "))


CSV_HEADER = "id,token,devices,consent.instore_location,consent.marketing_push,interests,visits"
CSV_TEXT = f"""{CSV_HEADER},attributes.store
c1,t1,iBeacon:{UUID}-7-1|{UUID}_7_2,yes,no,tv|audio,3,paris-11
c2,t2,,maybe,0,,x,
"c3","t3","ibeacon:{UUID}:7:3",TRUE,1,"gaming",0,"lyon, 2e"

c4,,,,,,,
c5,t5
"""


def test_csv_rows_with_aliases_and_bad_lines(tmp_path: Path) -> None:
    path = tmp_path / "crm.csv"
    path.write_text(CSV_TEXT)
    customers, errors = read_customers(path)
    c1, c3 = customers
    assert c1.devices == (f"ibeacon:{UUID}:7:1", f"ibeacon:{UUID}:7:2")
    assert c1.consent == Consent(instore_location=True, marketing_push=False)
    assert c1.interests == frozenset({"tv", "audio"}) and c1.visits == 3
    assert c1.attributes == {"store": "paris-11"}
    assert c3.consent == Consent(True, True) and c3.attributes == {"store": "lyon, 2e"}
    assert errors == [
        f"{path}:3: error: 'consent.instore_location': expected true or false, got a string of "
        "5 characters; 'visits': expected a whole number from 0 to 1,000,000, got a string of 1 "
        "character",
        f"{path}:6: error: 'token': missing: every customer needs one",
        f"{path}:7: error: expected 8 columns, got 2",
    ]


def test_csv_header_problems(tmp_path: Path) -> None:
    path = tmp_path / "crm.csv"
    path.write_text("id,token,tokn\nc1,t1,x\n")
    customers, errors = read_customers(path)
    assert [c.id for c in customers] == ["c1"]
    assert errors == [f"{path}:1: error: unknown column 'tokn' (did you mean 'token'?) (ignored)"]
    path.write_text("name,token\nc1,t1\n")
    assert read_customers(path) == ([], [f"{path}:1: error: missing column 'id'; unknown column "
                                         "'name' (ignored)"])  # fmt: skip


def test_unreadable_file_is_one_error(tmp_path: Path) -> None:
    customers, errors = read_customers(tmp_path / "missing.jsonl")
    assert customers == [] and len(errors) == 1 and "cannot read the file" in errors[0]


# ---------------------------------------------------------------------------------- property

_word = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_", min_size=1, max_size=12)
_scalar = st.one_of(st.none(), st.booleans(), st.integers(-(10**6), 10**6), _word)
customers = st.builds(
    Customer,
    id=_word,
    token=_word.map(lambda w: f"t{w}"),  # never only digits
    devices=st.lists(
        st.builds(
            lambda a, b: f"ibeacon:{UUID}:{a}:{b}", st.integers(0, 65535), st.integers(0, 65535)
        ),
        unique=True,
        max_size=3,
    ).map(tuple),
    consent=st.builds(Consent, st.booleans(), st.booleans()),
    first_name=st.one_of(
        st.none(), st.text(min_size=1, max_size=100).filter(lambda s: s.strip() == s)
    ),
    segments=st.frozensets(_word, max_size=3),
    interests=st.frozensets(_word, max_size=3),
    tier=st.one_of(st.none(), _word),
    visits=st.integers(0, 10**6),
    last_visit=st.one_of(st.none(), st.integers(0, 4 * 10**9).map(float)),
    attributes=st.dictionaries(_word, st.one_of(_scalar, st.lists(_scalar).map(tuple))).map(
        MappingProxyType
    ),
)


@given(customer=customers)
def test_objects_round_trip(customer: Customer) -> None:
    obj = json.loads(json.dumps(customer_to_obj(customer)))
    assert customer_from_obj(obj, "x") == customer


# ---------------------------------------------------------------------------------- bounds

HUGE = int("9" * 400)  # the probe's retained record: SQLite could not store it


BOUNDS = [
    ("visits", HUGE, "'visits': expected a whole number from 0 to 1,000,000, got a number"),
    ("visits", MAX_VISITS + 1, "'visits': expected a whole number from 0 to 1,000,000"),
    ("visits", -1, "'visits': expected a whole number from 0 to 1,000,000"),
    ("visits", 2.5, "'visits': expected a whole number from 0 to 1,000,000"),
    ("visits", True, "'visits': expected a whole number from 0 to 1,000,000, got a boolean"),
    ("last_visit", HUGE, "'last_visit': expected ISO 8601 or epoch seconds, got a number"),
    ("last_visit", -(2**70), "'last_visit': expected ISO 8601 or epoch seconds"),
    ("last_visit", "1e400", "'last_visit': expected ISO 8601 or epoch seconds"),
    ("last_visit", "0001-01-01T00:00:00+05:00", "'last_visit': expected ISO 8601"),
    ("last_visit", "9" * 70, "'last_visit': expected ISO 8601 or epoch seconds"),
    ("id", HUGE**11, "'id': a customer id must be"),  # str() of it would raise
    ("id", "x" * 129, "'id': a customer id must be"),
    ("id", "c 1", "'id': a customer id must be"),
    ("id", "c\n1", "'id': a customer id must be"),
    ("id", "c#", "'id': a customer id must be"),
    ("token", "t" * 129, "'token': a delivery token must be"),
    ("token", "4970-1234-5678", "'token': a delivery token must not be only digits"),
    ("token", "t@x", "'token': a delivery token must be"),
    ("first_name", "A" * 101, "'first_name': expected a string of at most 100 characters"),
    ("tier", "g" * 65, "'tier': expected a string of at most 64 characters"),
    ("segments", ["s"] * 101, "'segments': expected a list of at most 100 strings"),
    ("interests", ["tv", "x" * 65], "'interests[1]': expected a string of at most 64"),
    ("devices", [f"{UUID}_1_{i}" for i in range(17)], "'devices': at most 16 devices"),
    ("attributes", {f"k{i}": 1 for i in range(51)}, "'attributes': expected an object of "
     "at most 50"),
    ("attributes", {"k" * 65: 1}, "'attributes.'kkkk"),
    ("attributes", {"a": "x" * 1001}, "'attributes.a': expected a string of at most 1000"),
    ("attributes", {"a": 2**53 + 1}, "'attributes.a': expected a string"),
    ("attributes", {"a": HUGE}, "'attributes.a': expected a string"),
    ("attributes", {"a": float("inf")}, "'attributes.a': expected a string"),
    ("attributes", {"a": [1] * 101}, "'attributes.a': expected a string"),
    ("consent", {"x\ny" * 30: True}, "'consent.'x\\ny"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("field", "value", "message"), BOUNDS, ids=[f"{b[0]}-{i}" for i, b in enumerate(BOUNDS)]
)
def test_every_field_is_bounded(field: str, value: object, message: str) -> None:
    refused = customer_from_obj({"id": "c", "token": "t"} | {field: value}, "crm/c9")
    assert isinstance(refused, InboundError)
    assert message in refused.reason
    assert len(refused.reason) < 500


def test_the_bounds_themselves_are_accepted() -> None:
    obj = {
        "id": "c-1.x~y_z@shop:42",
        "token": "t" * 128,
        "first_name": "A" * 100,
        "tier": "g" * 64,
        "segments": [f"s{i}" for i in range(100)],
        "devices": [f"{UUID}_1_{i}" for i in range(16)],
        "visits": MAX_VISITS,
        "last_visit": 0,
        "attributes": {f"k{i}": -(2**53) for i in range(49)} | {"k" * 64: "x" * 1000},
    }
    c = customer_of(obj)
    assert c.visits == MAX_VISITS and len(c.devices) == 16 and len(c.attributes) == 50


def test_messages_never_echo_a_customer_s_values() -> None:
    """Logs name the key path and the JSON type, never the name, e-mail or loyalty number."""
    secrets = {
        "first_name": "alice.martin@example.com" * 5,
        "tier": "4970123456789" * 6,
        "token": "4970123456789",
        "consent": {"marketing_push": "alice.martin@example.com"},
        "visits": "4970123456789",
        "last_visit": "alice.martin@example.com",
        "segments": ["alice.martin@example.com", 4970123456789],
        "devices": ["alice.martin@example.com"],
        "attributes": {"loyalty": {"card": "4970123456789"}},
    }
    refused = customer_from_obj({"id": "c"} | secrets, "crm/customers/c")
    assert isinstance(refused, InboundError)
    message = refused.reason
    for field in secrets:
        assert f"'{field}" in message
    assert "alice" not in message and "4970123456789" not in message, message


@given(st.dictionaries(st.sampled_from(sorted({"id", "token", "visits", "x"})), st.integers()))
def test_any_integer_anywhere_is_valid_or_invalid_input(obj: dict[str, int]) -> None:
    got = customer_from_obj(obj | {"attributes": obj, "last_visit": obj.get("x")}, "x")
    assert isinstance(got, Customer | InboundError)


def test_a_customers_file_with_a_huge_number_is_one_bad_line(tmp_path: Path) -> None:
    path = tmp_path / "crm.csv"
    path.write_text(f"id,token,visits\nc1,t1,{'9' * 5000}\nc2,t2,²\nc3,t3,3\n")
    customers, errors = read_customers(path)
    assert [c.id for c in customers] == ["c3"]
    assert [e.split(": error: ")[1][:9] for e in errors] == ["'visits':"] * 2


def test_customers_import_of_the_probe_s_line_says_where_and_keeps_the_good_ones(
    tmp_path: Path,
) -> None:
    config = reference_store(tmp_path)
    src = tmp_path / "crm.jsonl"
    good = [json.dumps({"id": f"c-{i}", "token": f"t-{i}"}) for i in (1, 2)]
    bad = json.dumps({"id": "c-9", "token": "t-9", "visits": 0}).replace("0}", "9" * 400 + "}")
    src.write_text("\n".join([good[0], bad, good[1]]) + "\n", encoding="utf-8")
    result = rayon("customers", "import", str(src), "-c", str(config))
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert f"{src}:2: error: 'visits': expected a whole number" in result.stderr
    assert "imported 2 customer(s), 1 line(s) rejected" in result.stderr
    store = Store(load_config(config).database.url)
    try:
        assert sorted(c.id for c in store.load_customers()) == ["c-1", "c-2"]
    finally:
        store.close()
