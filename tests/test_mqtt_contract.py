"""The MQTT contract (docs/mqtt.md): the shipped JSON Schemas, their examples, what the gateway
emits, and the gateway's own parsers agree with each other."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, cast
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

import gateway.decode.inbound as inbound
import gateway.deliver.schemas as schemas
from gateway.clock import parse_local_time
from gateway.config.load import load_config
from gateway.config.model import AnchorKind, Config
from gateway.decode.jsonvalues import InboundError
from gateway.deliver.payloads import (
    TickerOffer,
    encode,
    event_payload,
    occupancy_payload,
    offer_payload,
    parse_feedback,
    positions_payload,
    status_payload,
    ticker_event_payload,
    ticker_offer_payload,
)
from gateway.events import EventKind, Offer, Purpose, Reason, ZoneEvent
from gateway.identity.customers import customer_from_obj, customer_to_obj
from gateway.identity.model import Consent, Customer, CustomerRegistry
from gateway.pipeline import Output, Pipeline
from gateway.rules.load import load_rules
from tests.walks import STORE_UUID, tv_aisle_walk, walk_adverts

ROOT = Path(__file__).resolve().parent.parent
PARIS = ZoneInfo("Europe/Paris")
RECEIVED_AT = 1772546442.0
INBOUND = ("feedback", "sightings", "transition", "location", "scanner_adv", "customer")
OUTBOUND = ("offer", "event", "occupancy", "status", "console_positions", "console_ticker")
CHAIN = ("chain_batch", "chain_ack", "chain_backfill", "chain_erased")  # store ↔ centre


def validator(name: str) -> Draft202012Validator:
    return Draft202012Validator(schemas.schema(name))


def errors(name: str, payload: Any) -> list[str]:
    return [e.message for e in validator(name).iter_errors(payload)]


@pytest.fixture(scope="module")
def config() -> Config:
    return load_config(ROOT / "config.example.yaml")


# -- the schemas themselves -------------------------------------------------------------------


def test_every_payload_of_the_contract_has_a_schema() -> None:
    assert sorted(schemas.names()) == sorted(INBOUND + OUTBOUND + CHAIN)


@pytest.mark.parametrize("name", schemas.names())
def test_schema_is_valid_2020_12_with_its_versioned_id(name: str) -> None:
    s = schemas.schema(name)
    Draft202012Validator.check_schema(s)
    assert s["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert s["$id"] == f"https://rayon.dev/schemas/mqtt/v1/{name}.json" == schemas.schema_id(name)
    assert s["title"] and s["description"]


def _properties(node: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """(path, schema) of every named property anywhere in a schema."""
    if isinstance(node, dict):
        for key, sub in node.get("properties", {}).items():
            yield f"{path}.{key}", sub
        for key, sub in node.items():
            yield from _properties(sub, f"{path}/{key}")
    elif isinstance(node, list):
        for i, sub in enumerate(node):
            yield from _properties(sub, f"{path}[{i}]")


@pytest.mark.parametrize("name", schemas.names())
def test_every_field_is_documented(name: str) -> None:
    fields = list(_properties(schemas.schema(name)))
    assert fields
    assert [p for p, sub in fields if not sub.get("description")] == []


@pytest.mark.parametrize("name", OUTBOUND + CHAIN)
def test_what_we_emit_is_closed(name: str) -> None:
    assert schemas.schema(name)["additionalProperties"] is False


@pytest.mark.parametrize("name", ["feedback", "sightings", "transition", "location"])
def test_what_phones_send_is_open_for_forward_compatibility(name: str) -> None:
    payload = schemas.example(name) | {"sent_by_a_future_app": {"x": 1}}
    assert errors(name, payload) == []


def test_crm_customers_are_closed_like_the_gateway_parser() -> None:
    payload = schemas.example("customer") | {"intrests": ["tv"]}
    assert errors("customer", payload) != []
    refused = customer_from_obj(payload, "crm")
    assert isinstance(refused, InboundError) and "intrests" in refused.reason


def test_an_unknown_name_says_which_exist() -> None:
    with pytest.raises(KeyError, match="offer"):
        schemas.schema("offers")


def test_every_json_file_in_the_data_folder_is_a_schema_or_an_example() -> None:
    folder = ROOT / "gateway" / "data" / "mqtt"
    for path in folder.glob("*.json"):
        Draft202012Validator.check_schema(json.loads(path.read_text(encoding="utf-8")))
    examples = sorted(p.stem for p in (folder / "examples").glob("*.json"))
    assert examples == sorted(schemas.names())


# -- the examples -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", schemas.names())
def test_example_is_valid(name: str) -> None:
    assert errors(name, schemas.example(name)) == []


def test_scanner_adv_takes_one_advert_or_a_list() -> None:
    adverts = schemas.example("scanner_adv")
    assert errors("scanner_adv", adverts[0]) == []
    assert errors("scanner_adv", adverts[0] | {"rssi": "loud"}) != []
    assert errors("scanner_adv", [adverts[0]] * 501) != []


def test_example_offer_is_what_the_gateway_would_emit() -> None:
    ex = schemas.example("offer")
    offer = Offer(
        id=ex["id"],
        rule=ex["rule"],
        store=ex["store"],
        zone=ex["zone"],
        customer="cust-42",
        token="k3v9q2x7m1p8",
        created_at=parse_local_time("2026-03-03T15:00:40", PARIS),
        expires_at=parse_local_time("2026-03-03T18:00:40", PARIS),
        title=ex["title"],
        body=ex["body"],
        code=ex["code"],
        url=ex["url"],
        purpose=Purpose(ex["purpose"]),
    )
    assert offer_payload(offer, PARIS) == ex


# -- what the gateway emits -------------------------------------------------------------------

texts = st.text(max_size=40)
times = st.floats(min_value=0, max_value=4e9, allow_nan=False)


@st.composite
def offers(draw: st.DrawFn) -> Offer:
    created = draw(times)
    return Offer(
        id=draw(st.uuids()).hex,
        rule=draw(st.from_regex(r"[a-z][a-z0-9-]{0,30}", fullmatch=True)),
        store="paris-11",
        zone=draw(st.none() | st.sampled_from(["aisle-tv", "checkout"])),
        customer="c-1",
        token="t-1",
        created_at=created,
        expires_at=created + draw(st.floats(min_value=1, max_value=86400 * 30)),
        title=draw(texts),
        body=draw(texts),
        code=draw(st.none() | texts),
        url=draw(st.none() | texts),
        purpose=draw(st.sampled_from(Purpose)),
        holdout=draw(st.booleans()),
    )


@settings(max_examples=60)
@given(offer=offers(), tz=st.sampled_from([PARIS, ZoneInfo("UTC"), ZoneInfo("America/St_Johns")]))
def test_emitted_offers_match_the_schema(offer: Offer, tz: ZoneInfo) -> None:
    payload = json.loads(encode(offer_payload(offer, tz)))
    assert errors("offer", payload) == []


@settings(max_examples=60)
@given(
    kind=st.sampled_from(EventKind),
    at=times,
    zone=st.none() | st.just("aisle-tv"),
    customer=st.none() | st.just("c-1"),
    dwell=st.none() | st.floats(min_value=0, max_value=1e6),
    reason=st.dictionaries(st.text(max_size=8), st.floats() | st.integers() | st.text()),
)
def test_emitted_events_match_the_schema(
    kind: EventKind,
    at: float,
    zone: str | None,
    customer: str | None,
    dwell: float | None,
    reason: dict[str, Any],
) -> None:
    event = ZoneEvent(
        at, kind, zone, f"ibeacon:{STORE_UUID}:1:2", customer, dwell, cast(Reason, reason)
    )
    payload = json.loads(encode(event_payload(event, PARIS)))
    assert errors("event", payload) == []


def test_a_walk_in_the_store_emits_events_and_offers_that_match(config: Config) -> None:
    device = f"ibeacon:{STORE_UUID}:1000:1"
    fan = Customer("c-tv-1", "t-tv-1", (device,), Consent(True, True), interests=frozenset({"tv"}))
    pipeline = Pipeline(config, load_rules(config.rules_dir, config), CustomerRegistry([fan]))
    start = parse_local_time("2026-03-03T15:00:00", PARIS)
    out = Output()
    adverts = walk_adverts(config, 1, tv_aisle_walk(config, start), start)
    for adv in adverts:
        out.extend(pipeline.feed(adv))
    for t in range(int(adverts[-1].at), int(adverts[-1].at) + 400):
        out.extend(pipeline.tick(float(t)))
    assert {e.kind for e in out.events} >= {EventKind.ENTER, EventKind.DWELL, EventKind.EXIT}
    assert out.offers
    for event in out.events:
        assert errors("event", json.loads(encode(event_payload(event, PARIS)))) == []
    for offer in out.offers:
        assert errors("offer", json.loads(encode(offer_payload(offer, PARIS)))) == []


@pytest.mark.parametrize("count", [0, 1, 250])
def test_emitted_occupancy_matches_the_schema(count: int) -> None:
    payload = json.loads(encode(occupancy_payload(count, 1772546445.25, PARIS)))
    assert errors("occupancy", payload) == []


@pytest.mark.parametrize(
    ("state", "started_at", "counters"),
    [
        ("online", 1772521202.0, None),
        ("online", 1772521202.5, {"inputs": 10, "source_failures:ble": 1}),
        ("offline", None, None),  # the last will
        ("offline", 1772521202.0, {}),
    ],
)
def test_emitted_status_matches_the_schema(
    state: str, started_at: float | None, counters: dict[str, int] | None
) -> None:
    payload = json.loads(encode(status_payload(state, "0.1.0", started_at, counters, tz=PARIS)))
    assert errors("status", payload) == []


pseudonyms = st.from_regex(r"v-[0-9a-f]{12}", fullmatch=True)
metres = st.floats(min_value=-1e4, max_value=1e4, allow_nan=False)
dots = st.tuples(
    pseudonyms, metres, metres, st.floats(min_value=0, max_value=100), st.none() | st.just("tv")
)


@settings(max_examples=40)
@given(devices=st.lists(dots, max_size=5), at=times)
def test_emitted_console_positions_match_the_schema(
    devices: list[tuple[str, float, float, float, str | None]], at: float
) -> None:
    payload = json.loads(encode(positions_payload(devices, at, PARIS)))
    assert errors("console_positions", payload) == []
    assert len(payload["devices"]) == len(devices)


@settings(max_examples=40)
@given(kind=st.sampled_from(EventKind), at=times, zone=st.none() | st.just("aisle-tv"))
def test_emitted_ticker_events_match_the_schema(
    kind: EventKind, at: float, zone: str | None
) -> None:
    event = ZoneEvent(at, kind, zone, f"ibeacon:{STORE_UUID}:1:2", "c-1", None)
    payload = json.loads(encode(ticker_event_payload(event, "v-0123456789ab", PARIS)))
    assert errors("console_ticker", payload) == []
    assert "c-1" not in json.dumps(payload) and STORE_UUID not in json.dumps(payload)


@pytest.mark.parametrize(
    "state", ["pending", "sent", "holdout", "dropped", "cancelled", "expired", "delivered"]
)
@pytest.mark.parametrize("zone", [None, "aisle-tv"])
def test_emitted_ticker_offers_match_the_schema(state: str, zone: str | None) -> None:
    shown = TickerOffer("0b7e6f0c", "tv-aisle-dwell", zone, "v-0123456789ab")
    payload = json.loads(encode(ticker_offer_payload(shown, state, 1772546440.5, PARIS)))
    assert errors("console_ticker", payload) == []


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"visit": "c-42"}, "a customer id is no pseudonym"),
        ({"visit": "v-0123456789AB"}, "lowercase hex only"),
        ({"customer": "c-42"}, "no customer field"),
        ({"type": "zone_event"}, "an offer line is no zone event"),
        ({"state": "opened"}, "not a state of the log"),
    ],
)
def test_the_ticker_schema_refuses_what_the_console_must_never_get(
    change: dict[str, str], why: str
) -> None:
    assert errors("console_ticker", schemas.example("console_ticker") | change) != [], why


def test_the_positions_schema_refuses_a_device_id() -> None:
    payload = copy.deepcopy(schemas.example("console_positions"))
    payload["devices"][0]["device"] = f"ibeacon:{STORE_UUID}:1:2"
    assert errors("console_positions", payload) != []


# -- what the gateway receives: schema and parser agree ---------------------------------------

MISSING = object()
Parser = Callable[[Any, Config], bool]


def _beacon_anchor(config: Config) -> dict[str, str]:
    return {a.beacon: a.id for a in config.anchors if a.kind is AnchorKind.BEACON and a.beacon}


def _feedback_ok(payload: Any, _config: Config) -> bool:
    return not isinstance(parse_feedback(encode(payload), RECEIVED_AT), InboundError)


def _customer_ok(payload: Any, _config: Config) -> bool:
    return not isinstance(customer_from_obj(payload, "crm/customers/cust-42"), InboundError)


def _sightings_ok(payload: Any, config: Config) -> bool:
    raw = json.dumps(payload).encode()
    parsed = inbound.parse_sightings(raw, "k3v9q2x7m1p8", RECEIVED_AT, _beacon_anchor(config))
    return not isinstance(parsed, InboundError)


def _scanner_ok(payload: Any, _config: Config) -> bool:
    parsed = inbound.parse_scanner_adv(json.dumps(payload).encode(), "node-tv", RECEIVED_AT)
    return not isinstance(parsed, InboundError)


def _transition_ok(payload: Any, _config: Config) -> bool:
    parsed = inbound.parse_owntracks_transition(json.dumps(payload).encode(), RECEIVED_AT)
    return not isinstance(parsed, InboundError)


def _location_ok(payload: Any, _config: Config) -> bool:
    parsed = inbound.parse_owntracks_location(json.dumps(payload).encode(), RECEIVED_AT)
    return not isinstance(parsed, InboundError)


PARSERS: dict[str, Parser] = {
    "feedback": _feedback_ok,
    "customer": _customer_ok,
    "sightings": _sightings_ok,
    "scanner_adv": _scanner_ok,
    "transition": _transition_ok,
    "location": _location_ok,
}


def variant(name: str, *changes: tuple[tuple[str | int, ...], Any]) -> Any:
    """The example of `name` with each (path, value) applied; MISSING deletes the key."""
    payload = copy.deepcopy(schemas.example(name))
    for path, value in changes:
        parent = payload
        for key in path[:-1]:
            parent = parent[key]
        if value is MISSING:
            del parent[path[-1]]
        else:
            parent[path[-1]] = value
    return payload


def _missing_required() -> Iterator[Any]:
    for name in INBOUND:
        s = schemas.schema(name)
        required = s.get("required") or s["$defs"]["advert"]["required"]
        where: tuple[int, ...] = (0,) if name == "scanner_adv" else ()
        for field in required:
            yield pytest.param(name, ((*where, field), MISSING), id=f"{name}-no-{field}")


WRONG = [
    ("feedback", (("offer",), 42)),
    ("feedback", (("offer",), "")),
    ("feedback", (("state",), "read")),
    ("feedback", (("at",), "yesterday")),
    ("feedback", (("at",), "2026-03-03T15:00:41")),  # no offset
    ("feedback", (("v",), 2)),
    ("feedback", (("type",), "offer")),
    ("sightings", (("beacons",), {})),
    ("sightings", (("beacons", 0, "rssi"), "-71")),
    ("sightings", (("beacons", 0, "major"), 70000)),
    ("sightings", (("beacons", 0, "uuid"), "store-beacon")),
    ("sightings", (("beacons", 0, "tx_power"), "high")),
    ("sightings", (("at",), "now")),
    ("sightings", (("at",), 1772546441500)),  # milliseconds
    ("sightings", (("beacons",), [schemas.example("sightings")["beacons"][0]] * 201)),
    ("transition", (("event",), "exit")),
    ("transition", (("tst",), "soon")),
    ("transition", (("rid",), 7)),
    ("transition", (("lat",), "48.8")),
    ("transition", (("_type",), "location")),
    ("location", (("lat",), "48.8")),
    ("location", (("lon",), 200)),
    ("location", (("acc",), -1)),
    ("location", (("tst",), -5)),
    ("location", (("_type",), "transition")),
    ("scanner_adv", ((0, "rssi"), "loud")),
    ("scanner_adv", ((0, "rssi"), -300)),
    ("scanner_adv", ((0, "manufacturer_data"), {"76": "zz"})),
    ("scanner_adv", ((0, "manufacturer_data"), {"apple": "0215"})),
    ("scanner_adv", ((0, "at"), "later")),
    ("scanner_adv", ((0, "address"), 12)),
    ("customer", (("id",), None)),
    ("customer", (("token",), "k3v9 q2x7")),
    ("customer", (("devices",), "ibeacon:8d8c1a2e-5b3f-4c1d-9e2a-0f6b7c8d9e10:1000:42")),
    ("customer", (("devices",), ["not-a-device"])),
    ("customer", (("consent",), {"instore_location": "yes"})),
    ("customer", (("consent",), {"marketing": True})),
    ("customer", (("visits",), -1)),
    ("customer", (("visits",), "7")),
    ("customer", (("last_visit",), "last week")),
    ("customer", (("attributes",), {"basket": {"tv": 1}})),
    ("customer", (("first_name",), 5)),
    ("customer", (("segments",), "loyal")),
]


@pytest.mark.parametrize("name", INBOUND)
def test_the_parser_accepts_the_example(name: str, config: Config) -> None:
    assert PARSERS[name](schemas.example(name), config)


@pytest.mark.parametrize(("name", "change"), [*_missing_required(), *WRONG])
def test_a_bad_message_is_refused_by_schema_and_parser(
    name: str, change: tuple[tuple[str | int, ...], Any], config: Config
) -> None:
    payload = variant(name, change)
    assert errors(name, payload) != [], "the schema accepts it"
    assert not PARSERS[name](payload, config), "the gateway accepts it"


def test_a_transition_needs_rid_or_desc(config: Config) -> None:
    for payload in (
        variant("transition", (("rid",), MISSING)),
        variant("transition", (("desc",), MISSING)),
    ):
        assert errors("transition", payload) == [] and _transition_ok(payload, config)
    neither = variant("transition", (("rid",), MISSING), (("desc",), MISSING))
    assert errors("transition", neither) != [] and not _transition_ok(neither, config)


GOOD = [
    ("feedback", (("at",), 1772546441)),
    ("feedback", (("at",), 1772546441.25)),
    ("feedback", (("at",), "2026-03-03T14:00:41Z")),
    ("feedback", (("at",), "2026-03-03T15:00:41.125+01:00")),
    ("feedback", (("state",), "redeemed")),
    ("sightings", (("at",), MISSING)),
    ("sightings", (("at",), "2026-03-03T15:00:41+01:00")),
    ("sightings", (("beacons", 0, "tx_power"), None)),
    ("sightings", (("beacons",), [])),
    ("transition", (("tst",), MISSING)),
    ("transition", (("tst",), "2026-03-03T14:55:00+01:00")),
    ("transition", (("t",), "b")),
    ("location", (("acc",), MISSING)),
    ("location", (("tst",), MISSING)),
    ("scanner_adv", ((0, "at"), MISSING)),
    ("scanner_adv", ((0, "address"), MISSING)),
    ("scanner_adv", ((0, "local_name"), "Rayon")),
    ("customer", (("id",), 42)),
    ("customer", (("last_visit",), 1772546441)),
    ("customer", (("last_visit",), "2026-02-21")),
    ("customer", (("last_visit",), None)),
    ("customer", (("devices",), ["8d8c1a2e-5b3f-4c1d-9e2a-0f6b7c8d9e10_1000_42"])),
    ("customer", (("consent",), {})),
]


@pytest.mark.parametrize(("name", "change"), GOOD)
def test_a_good_variant_is_accepted_by_schema_and_parser(
    name: str, change: tuple[tuple[str | int, ...], Any], config: Config
) -> None:
    payload = variant(name, change)
    assert errors(name, payload) == []
    assert PARSERS[name](payload, config)


def test_a_single_scanner_advert_is_accepted_by_both(config: Config) -> None:
    advert = schemas.example("scanner_adv")[1]
    assert errors("scanner_adv", advert) == [] and _scanner_ok(advert, config)


def test_the_examples_mean_what_the_doc_says(config: Config) -> None:
    fb = parse_feedback(encode(schemas.example("feedback")), RECEIVED_AT)
    assert not isinstance(fb, InboundError) and fb.offer == schemas.example("offer")["id"]
    raw = json.dumps(schemas.example("sightings")).encode()
    seen = inbound.parse_sightings(raw, "k3v9q2x7m1p8", RECEIVED_AT, _beacon_anchor(config))
    assert not isinstance(seen, InboundError)
    assert [o.anchor for o in seen.observations] == ["beacon-04", "beacon-05"]
    customer = customer_from_obj(schemas.example("customer"), "crm/customers/cust-42")
    assert not isinstance(customer, InboundError)
    assert customer_to_obj(customer)["devices"] == schemas.example("customer")["devices"]
    adverts = inbound.parse_scanner_adv(
        json.dumps(schemas.example("scanner_adv")).encode(), "node-tv", RECEIVED_AT
    )
    assert not isinstance(adverts, InboundError) and len(adverts) == 2


def test_the_pipeline_takes_sightings_with_an_iso_time(config: Config) -> None:
    from gateway.events import MqttInput

    pipeline = Pipeline(config, load_rules(config.rules_dir, config), CustomerRegistry())
    payload = variant("sightings", (("at",), "2026-03-03T15:00:41+01:00"))
    topic = "rayon/paris-11/phones/k3v9q2x7m1p8/sightings"
    pipeline.on_mqtt(MqttInput(RECEIVED_AT, topic, json.dumps(payload).encode()))
    assert pipeline.counters["inbound_rejected"] == 0


# -- the document -------------------------------------------------------------------------------


def test_docs_show_every_example_and_every_field() -> None:
    doc = (ROOT / "docs" / "mqtt.md").read_text(encoding="utf-8")
    blocks = [json.loads(b.split("```")[0]) for b in doc.split("```json\n")[1:]]
    for name in schemas.names():
        assert schemas.example(name) in blocks, f"docs/mqtt.md lacks the {name} example"
        assert f"Schema `{name}`" in doc
        for field, _sub in _properties(schemas.schema(name)):
            assert f"`{field.rsplit('.', 1)[1]}`" in doc, f"{name}: {field} is not documented"


def test_the_chains_payloads_as_written_match_and_the_examples_are_read() -> None:
    from gateway.central import wire

    batch = wire.parse_batch("paris-11", json.dumps(schemas.example("chain_batch")).encode())
    assert errors("chain_batch", json.loads(wire.encode(batch))) == []
    assert [r.kind for r in batch.rows] == ["event", "erase"]
    readers: dict[str, Callable[[str, bytes], wire.Ack | wire.Backfill | wire.Erased]] = {
        "chain_ack": wire.parse_ack,
        "chain_backfill": wire.parse_backfill,
        "chain_erased": wire.parse_erased,
    }
    for name, read in readers.items():
        message = read("paris-11", json.dumps(schemas.example(name)).encode())
        assert errors(name, json.loads(wire.encode(message))) == []
        assert json.loads(wire.encode(message)) == schemas.example(name)
