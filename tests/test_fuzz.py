"""Fuzzing (issue 8): untrusted input never raises out of its stage.

Each stage has a documented way to refuse input, and nothing else may escape it:

- decode and the privacy filter: `None` ("not ours"), never an exception, on any bytes;
- trace lines: `ValueError` from `parse_line`, a `TraceError` from `iter_trace`;
- inbound MQTT (CRM customers, phones, scanner nodes, ESPresense) through `Pipeline.on_mqtt`:
  counted and dropped, never raised; feedback: a message string; a customer object:
  an `InboundError`; a customer file: one error per bad line;
- the config and rule loaders: `ConfigError`, whatever the YAML.

Arbitrary values test the edges, structured mutations of valid input (a byte flipped, a frame
cut short, a YAML line duplicated or given a hostile value) reach the deep branches that random
bytes rarely do.  Tests of single parsers on arbitrary values live beside the parsers
(tests/test_decode.py, test_inbound.py, test_yamlsrc.py); this file adds the mutations and the
whole stages.  The longer coverage-guided runs are the atheris harnesses in fuzz/
(docs/fuzzing.md).
"""

from __future__ import annotations

import copy
import importlib.util
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from gateway.config.load import load_config
from gateway.config.model import Config
from gateway.decode.beacons import (
    EDDYSTONE_SERVICE,
    decode_all,
    encode_altbeacon,
    encode_eddystone_tlm,
    encode_eddystone_uid,
    encode_eddystone_url,
    encode_ibeacon,
)
from gateway.decode.jsonvalues import InboundError
from gateway.decode.privacy import PrivacyFilter
from gateway.deliver.payloads import Feedback, parse_feedback
from gateway.errors import ConfigError
from gateway.events import Advertisement, MqttInput
from gateway.identity.customers import (
    customer_from_obj,
    customer_to_obj,
    read_customers,
    write_customers,
)
from gateway.identity.model import Consent, Customer, CustomerRegistry
from gateway.pipeline import Output, Pipeline
from gateway.rules.load import load_rules
from gateway.rules.model import RuleSet
from gateway.sources.trace import TraceError, item_to_line, iter_trace, parse_line
from gateway.topics import Topics
from tests.walks import STORE_UUID, customer_of

ROOT = Path(__file__).resolve().parent.parent
NAMESPACE = "12345678901234678901"
# RAYON_FUZZ_SCALE=50 multiplies the examples for a longer local run (docs/fuzzing.md).
SCALE = max(1, int(os.environ.get("RAYON_FUZZ_SCALE", "1")))
FAST = settings(max_examples=150 * SCALE, deadline=None)
SLOW = settings(
    max_examples=40 * SCALE,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)

# -- mutations ------------------------------------------------------------------------------


@st.composite
def mutated(draw: st.DrawFn, seed: bytes) -> bytes:
    """`seed` with up to four edits: a byte set, a cut, a duplicated slice, bytes inserted."""
    data = bytearray(seed)
    for _ in range(draw(st.integers(0, 4))):
        at = draw(st.integers(0, len(data)))
        op = draw(st.sampled_from(["set", "cut", "dup", "insert"]))
        if op == "set" and data:
            data[min(at, len(data) - 1)] = draw(st.integers(0, 255))
        elif op == "cut":
            del data[at:]
        elif op == "dup":
            data[at:at] = data[at : at + draw(st.integers(1, 8))]
        else:
            data[at:at] = draw(st.binary(min_size=1, max_size=4))
    return bytes(data)


VALID_MANUFACTURER = [
    encode_ibeacon(STORE_UUID, 1000, 1, -59),
    encode_altbeacon(STORE_UUID.replace("-", "") + "00010002", -60, 7),
]
VALID_SERVICE = [
    encode_eddystone_uid(NAMESPACE, "0000000000aa", -20),
    encode_eddystone_url("https://www.example.com/tv", -20),
    encode_eddystone_tlm(3000, 21.5, 10, 360.0),
]
MANUFACTURER = st.sampled_from(VALID_MANUFACTURER).flatmap(mutated) | st.binary(max_size=40)
SERVICE = st.sampled_from(VALID_SERVICE).flatmap(mutated) | st.binary(max_size=30)
SERVICE_KEYS = st.sampled_from([EDDYSTONE_SERVICE, "feaa", "FEAA", "0000FEAA"]) | st.text(
    max_size=40
)
ADVERT = st.builds(
    Advertisement,
    st.floats(allow_nan=True) | st.integers(-(2**40), 2**40),
    st.text(max_size=12),
    st.text(max_size=20),
    st.integers(-200, 50),
    st.dictionaries(
        st.sampled_from([0x004C, 0x0118]) | st.integers(0, 0xFFFF), MANUFACTURER, max_size=3
    ),
    st.dictionaries(SERVICE_KEYS, SERVICE, max_size=3),
)


@pytest.fixture(scope="module")
def config() -> Config:
    return load_config(ROOT / "config.example.yaml")


@pytest.fixture(scope="module")
def rules(config: Config) -> RuleSet:
    return load_rules(config.rules_dir, config)


def fresh_pipeline(config: Config, rules: RuleSet) -> Pipeline:
    fan = Customer(
        id="c-1",
        token="t-1",
        devices=(f"ibeacon:{STORE_UUID}:1000:1",),
        consent=Consent(instore_location=True, marketing_push=True),
    )
    return Pipeline(config, rules, CustomerRegistry([fan]))


# -- decode ---------------------------------------------------------------------------------


@FAST
@given(ADVERT)
def test_mutated_frames_never_raise_out_of_decode(adv: Advertisement) -> None:
    found = decode_all(adv.manufacturer_data, adv.service_data)
    hit = PrivacyFilter([STORE_UUID], [NAMESPACE]).observe(adv)
    assert hit is None or hit.device.startswith(("ibeacon:", "altbeacon:", "eddystone:"))
    assert hit is None or found  # the filter never finds what decode does not
    event(f"decoded: {len(found)}, ours: {hit is not None}")


@SLOW
@given(st.lists(ADVERT, max_size=6))
def test_mutated_adverts_never_raise_out_of_the_pipeline(
    config: Config, rules: RuleSet, adverts: list[Advertisement]
) -> None:
    p = fresh_pipeline(config, rules)
    for adv in adverts:
        assert isinstance(p.on_advertisement(adv), Output)
    assert p.counters["adverts"] == len(adverts)


# -- trace lines ----------------------------------------------------------------------------

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
HEXES = st.dictionaries(st.text(max_size=6) | st.integers(-5, 70_000).map(str),
                        st.binary(max_size=24).map(bytes.hex) | JSON, max_size=3)  # fmt: skip
TRACE_OBJECT = st.fixed_dictionaries(
    {},
    optional={
        "at": st.floats() | st.integers() | JSON,
        "adv": st.fixed_dictionaries(
            {},
            optional={
                "anchor": st.text(max_size=8) | JSON,
                "address": st.text(max_size=8) | JSON,
                "rssi": st.integers(-200, 50) | st.floats() | JSON,
                "manufacturer_data": HEXES | JSON,
                "service_data": HEXES | JSON,
            },
        )
        | JSON,
        "mqtt": st.fixed_dictionaries(
            {}, optional={"topic": st.text(max_size=20) | JSON, "payload": JSON}
        )
        | JSON,
    },
)
TRACE_LINE = (
    st.text(max_size=120)
    | TRACE_OBJECT.map(json.dumps)
    | (ADVERT.map(item_to_line) | TRACE_OBJECT.map(json.dumps))
    .map(str.encode)
    .flatmap(mutated)
    .map(lambda b: b.decode("utf-8", "replace"))
)


@FAST
@given(TRACE_LINE)
def test_trace_lines_parse_or_raise_value_error(line: str) -> None:
    try:
        item = parse_line(line)
    except ValueError as exc:
        assert str(exc)
        event("refused")
        return
    event(type(item).__name__)
    assert isinstance(item, Advertisement | MqttInput)


@FAST
@given(st.lists(TRACE_LINE, max_size=5))
def test_a_trace_never_raises(lines: list[str]) -> None:
    for item in iter_trace(lines, "fuzz.jsonl"):
        if isinstance(item, TraceError):
            assert item.line >= 1 and item.message
        else:
            assert isinstance(item, Advertisement | MqttInput)


# -- inbound MQTT ---------------------------------------------------------------------------

TOPICS = Topics("rayon", "paris-11")  # config.example.yaml's prefix and store
T0 = 1772550000.0
FRAME_HEX = encode_ibeacon(STORE_UUID, 1000, 1, -59).hex()
FAN_DEVICE = f"ibeacon:{STORE_UUID}:1000:1"
CRM_RECORD = {
    "id": "c-2",
    "token": "t-2",
    "devices": [f"ibeacon:{STORE_UUID}:1000:2"],
    "consent": {"instore_location": True, "marketing_push": True},
    "first_name": "Léa",
    "segments": ["vip"],
    "interests": ["tv"],
    "tier": "gold",
    "visits": 3,
    "last_visit": "2026-02-01T10:00:00+01:00",
    "attributes": {"cart_zone": "aisle-tv", "order_ready": True},
}
# One valid message per inbound topic, the seeds of the mutations below.
VALID_MESSAGES = [
    (TOPICS.crm_customer("c-2"), CRM_RECORD),
    (TOPICS.phone_sightings("t-1"), {"at": T0, "beacons": [
        {"uuid": STORE_UUID, "major": 1, "minor": 1, "rssi": -70, "tx_power": -59}]}),
    (TOPICS.phone_location("t-1"), {"_type": "location", "lat": 48.8592, "lon": 2.3795,
                                    "acc": 20, "tst": T0}),
    (TOPICS.phone_transition("t-1"), {"_type": "transition", "event": "enter",
                                      "rid": "store-approach", "desc": "store-approach",
                                      "lat": 48.8592, "lon": 2.3795, "tst": T0}),
    (TOPICS.scanner_adv("pi-entrance"), {"at": T0, "address": "AA:BB:CC:DD:EE:FF", "rssi": -67,
                                         "manufacturer_data": {"76": FRAME_HEX},
                                         "service_data": {}}),
    ("espresense/devices/" + f"iBeacon:{STORE_UUID}-1000-1/pi-entrance",
     {"id": f"iBeacon:{STORE_UUID}-1000-1", "rssi@1m": -59, "rssi": -72.5, "distance": 3.4}),
]  # fmt: skip


def _slots(doc: Any) -> list[tuple[Any, Any]]:
    """Every (container, key or index) of a JSON document, depth first."""
    found: list[tuple[Any, Any]] = []
    items = (
        doc.items() if isinstance(doc, dict) else enumerate(doc) if isinstance(doc, list) else ()
    )
    for key, value in items:
        found.append((doc, key))
        found.extend(_slots(value))
    return found


@st.composite
def json_mutated(draw: st.DrawFn, doc: Any) -> Any:
    """A deep copy of `doc` with up to three values replaced by arbitrary JSON or removed."""
    doc = copy.deepcopy(doc)
    for _ in range(draw(st.integers(0, 3))):
        slots = _slots(doc)
        if not slots:
            break
        container, key = draw(st.sampled_from(slots))
        if draw(st.booleans()):
            container[key] = draw(JSON)
        else:
            del container[key]
    return doc


def _as_wire(doc: Any, form: str) -> Any:
    """A payload as MQTT delivers it (bytes), as a trace replays it (text), or parsed."""
    if form == "bytes":
        return json.dumps(doc).encode()
    return json.dumps(doc) if form == "text" else doc


MESSAGE = st.sampled_from(VALID_MESSAGES).flatmap(
    lambda m: st.tuples(
        st.just(m[0]) | st.sampled_from([topic for topic, _ in VALID_MESSAGES]),
        st.builds(_as_wire, json_mutated(m[1]), st.sampled_from(["bytes", "text", "parsed"])),
    )
)
ANY_MESSAGE = st.tuples(
    st.sampled_from([t for t, _ in VALID_MESSAGES]).map(lambda t: t.rsplit("/", 2)[0] + "/")
    .flatmap(lambda base: st.text(max_size=12).map(lambda seg: base + seg)) | st.text(max_size=40),
    st.none() | JSON | st.binary(max_size=120)
    | st.sampled_from(VALID_MESSAGES).map(lambda m: json.dumps(m[1]).encode()).flatmap(mutated),
)  # fmt: skip


@FAST
@given(st.lists(MESSAGE | ANY_MESSAGE, max_size=4))
def test_no_mqtt_message_raises_out_of_the_pipeline(
    config: Config, rules: RuleSet, messages: list[tuple[str, Any]]
) -> None:
    p = fresh_pipeline(config, rules)
    for topic, payload in messages:
        assert isinstance(p.on_mqtt(MqttInput(T0, topic, payload)), Output)
    rejected = p.counters["inbound_rejected"] + p.counters["inbound_not_ours"]
    event(f"accepted: {rejected < len(messages)}, customers: {len(p.customers)}")


CUSTOMER_OBJ = json_mutated(CRM_RECORD)


@FAST
@given(CUSTOMER_OBJ | JSON)
def test_a_crm_customer_is_valid_or_invalid_input(obj: Any) -> None:
    customer = customer_from_obj(obj, "crm/customers/c-1")
    if isinstance(customer, InboundError):
        assert customer.reason.startswith("crm/customers/c-1: error: ")
        event("refused")
        return
    event("accepted")
    assert customer_from_obj(customer_to_obj(customer), "again") == customer


FEEDBACK = {"type": "feedback", "v": 1, "offer": "o-1", "state": "opened", "at": T0}


@FAST
@given(
    st.binary(max_size=200)
    | json_mutated(FEEDBACK).map(lambda d: json.dumps(d).encode())
    | json_mutated(FEEDBACK).map(lambda d: json.dumps(d).encode()).flatmap(mutated)
)
def test_feedback_is_parsed_or_refused_with_a_reason(payload: bytes) -> None:
    result = parse_feedback(payload, T0)
    assert isinstance(result, Feedback) or (isinstance(result, InboundError) and result.reason)
    event(type(result).__name__)


def _customer_file(suffix: str) -> str:
    """A valid customer file (two customers, attributes and all) in the given format."""
    plain = {"id": "c-3", "token": "t-3"}
    people = [customer_of(CRM_RECORD), customer_of(plain)]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"customers{suffix}"
        write_customers(path, people)
        return path.read_text(encoding="utf-8")


CUSTOMER_FILES = {suffix: _customer_file(suffix) for suffix in (".jsonl", ".csv")}


@SLOW
@given(st.sampled_from(sorted(CUSTOMER_FILES)), st.data())
def test_a_customer_file_never_raises(scratch: Path, suffix: str, data: st.DataObject) -> None:
    seed = CUSTOMER_FILES[suffix].encode()
    raw = data.draw(st.just(seed).flatmap(mutated) | st.binary(max_size=200))
    path = scratch / f"customers{suffix}"
    path.write_bytes(raw)
    customers, errors = read_customers(path)
    assert all(isinstance(c, Customer) for c in customers)
    assert all(e.startswith(str(path)) for e in errors)
    event(f"customers: {len(customers)}, errors: {bool(errors)}")


# -- the config and rule loaders ------------------------------------------------------------

HOSTILE = st.sampled_from(
    ["", "-1", "1e309", ".nan", "[]", "{}", "null", "yes", "'", '"', "*a", "&a [*a]", "- x",
     "!!python/object/apply:os.system ['true']", "\t", "{a: 1, a: 2}", "😀", "0x10", "<<: {}"]
)  # fmt: skip


@st.composite
def mutated_yaml(draw: st.DrawFn, text: str) -> str:
    """`text` with up to three line edits: deleted, duplicated, value replaced, re-indented."""
    lines = text.splitlines()
    for _ in range(draw(st.integers(1, 3))):
        i = draw(st.integers(0, len(lines) - 1))
        op = draw(st.sampled_from(["delete", "dup", "value", "indent", "garbage"]))
        if op == "delete":
            del lines[i]
        elif op == "dup":
            lines.insert(i, lines[i])
        elif op == "value":
            key, colon, _ = lines[i].partition(":")
            lines[i] = f"{key}{colon} {draw(HOSTILE)}" if colon else draw(HOSTILE)
        elif op == "indent":
            lines[i] = " " * draw(st.integers(0, 5)) + lines[i].lstrip()
        else:
            lines[i] = draw(st.text(max_size=30))
        if not lines:
            break
    return "\n".join(lines) + "\n"


CONFIG_TEXT = (ROOT / "config.example.yaml").read_text(encoding="utf-8")
RULE_FILES = sorted((ROOT / "rules").glob("*.yaml"))


@pytest.fixture(scope="module")
def scratch() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="rayon-fuzz-") as tmp:
        yield Path(tmp)


@SLOW
@given(mutated_yaml(CONFIG_TEXT) | st.text(max_size=300))
def test_the_config_loader_raises_only_config_error(scratch: Path, text: str) -> None:
    path = scratch / "config.yaml"
    path.write_text(text, encoding="utf-8")
    try:
        load_config(path)
    except ConfigError as exc:
        assert str(exc)
        event("refused")
    else:
        event("loaded")


@SLOW
@given(st.sampled_from(RULE_FILES), st.data())
def test_the_rule_loader_raises_only_config_error(
    config: Config, scratch: Path, original: Path, data: st.DataObject
) -> None:
    folder = scratch / "rules"
    shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(ROOT / "rules", folder)
    text = data.draw(mutated_yaml(original.read_text(encoding="utf-8")) | st.text(max_size=200))
    (folder / original.name).write_text(text, encoding="utf-8")
    try:
        load_rules(folder, config)
    except ConfigError as exc:
        assert str(exc)
        event("refused")
    else:
        event("loaded")


# -- the atheris harnesses (fuzz/) import without atheris and pass their own seeds ----------

HARNESSES = ("decode", "trace", "inbound", "config", "rules")


def _harness(name: str) -> Any:
    """fuzz/<name>.py as a module; fuzz/ is on sys.path only while it loads (for `harness`)."""
    path = ROOT / "fuzz" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"rayon_fuzz_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(path.parent))
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(path.parent))
    return module


@pytest.mark.parametrize("name", HARNESSES)
def test_each_atheris_harness_passes_its_seeds_and_noise(name: str) -> None:
    harness = _harness(name)
    assert harness.SEEDS
    for data in [*harness.SEEDS, b"", b"\x00", bytes(range(256)), b"\xff" * 40]:
        harness.test_one(data)
