"""The rolling recording (config `record`): only what the pipeline keeps of consenting
customers, sanitized, as gzip trace segments of mode 0600 that the trace tools read; retention,
the size cap, `rayon forget` and a CRM erasure in a running gateway rewrite them."""

from __future__ import annotations

import asyncio
import dataclasses
import gzip
import json
import stat
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from gateway.cli.main import main
from gateway.clock import ManualClock, parse_local_time
from gateway.config.load import load_config
from gateway.config.model import Config, RecordConfig
from gateway.deliver.connect import connect_link
from gateway.errors import ConfigError
from gateway.events import Advertisement, MqttInput, TraceItem
from gateway.identity.model import CustomerRegistry
from gateway.ops.forget import run_forget
from gateway.pipeline import Pipeline
from gateway.rules.load import load_rules
from gateway.runtime.app import Gateway
from gateway.sources.trace import read_trace
from gateway.store.recording import (
    Recorder,
    apply_retention,
    read_recording,
    segment_name,
    segments,
)
from gateway.store.repo import Store
from tests.broker import Mosquitto
from tests.stores import reference_store
from tests.walks import STORE_UUID, click_collect_customer, customer_of, walk_adverts, zone_centre

BASE = "rayon/paris-11"
START = "2026-03-03T11:00:00"


def _config(tmp_path: Path, port: int = 1, **record: Any) -> Config:
    folder = tmp_path / "rec"
    return load_config(reference_store(tmp_path, port=port, record={"dir": str(folder), **record}))


def _people() -> list[dict[str, object]]:
    consenting = click_collect_customer("c-yes", "t-yes", 7)
    refusing = click_collect_customer("c-no", "t-no", 8)
    refusing["consent"] = {"instore_location": False, "marketing_push": True}
    return [consenting, refusing]


def _inputs(config: Config, start: float) -> list[TraceItem]:
    """A consenting customer (minor 7), one without in-store location consent (8), an
    anonymous store beacon (9), a foreign beacon; their phones' sightings, a GPS location,
    feedback and a CRM record."""
    x, y = zone_centre(config, "entrance")
    legs = [(x, y, 0.0), (x, y, 6.0)]
    adverts = [
        dataclasses.replace(
            adv,
            local_name="Léa's iPhone",
            manufacturer_data={**adv.manufacturer_data, 6: b"\x01\x09\x20\x22personal"},
        )
        for minor in (7, 8, 9)
        for adv in walk_adverts(config, minor, legs, start)
    ]
    foreign = [
        dataclasses.replace(
            a, manufacturer_data={76: bytes.fromhex("0215" + "ab" * 16 + "00010001c5")}
        )
        for a in adverts[:5]
    ]
    at = start + 3
    beacons = [{"uuid": STORE_UUID, "major": 1, "minor": 1, "rssi": -60, "tx_power": -59}]
    mqtt = [
        MqttInput(at, f"{BASE}/crm/customers/c-yes", _people()[0]),
        MqttInput(at, f"{BASE}/phones/t-yes/sightings", {"at": at, "beacons": beacons}),
        MqttInput(at, f"{BASE}/phones/t-no/sightings", {"at": at, "beacons": beacons}),
        MqttInput(at, f"{BASE}/phones/t-yes/location", {"_type": "location", "lat": 48.85,
                                                          "lon": 2.37, "acc": 10, "tst": at}),
        MqttInput(at, f"{BASE}/feedback/t-yes", {"type": "feedback", "v": 1, "offer": "o1",
                                                  "state": "opened", "at": at}),
    ]  # fmt: skip
    return sorted([*adverts, *foreign, *mqtt], key=lambda i: i.at)


def _record(config: Config, items: list[TraceItem]) -> Recorder:
    people = [customer_of(p) for p in _people()]
    pipeline = Pipeline(config, load_rules(config.rules_dir, config), CustomerRegistry(people))
    recorder = Recorder(config.record_dir, config.record)
    pipeline.keep = recorder.keep
    for item in items:
        pipeline.feed(item)
    recorder.flush(recorder.take())
    return recorder


def _lines(folder: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for _, line in read_recording(folder)]


@pytest.fixture
def recorded(tmp_path: Path) -> tuple[Config, list[dict[str, Any]]]:
    config = _config(tmp_path)
    start = parse_local_time(START, config.store.timezone)
    _record(config, _inputs(config, start))
    return config, _lines(config.record_dir)


def test_only_the_consenting_customer_s_adverts_and_sightings_are_recorded(
    recorded: tuple[Config, list[dict[str, Any]]],
) -> None:
    _, lines = recorded
    adverts = [line["adv"] for line in lines if "adv" in line]
    topics = {line["mqtt"]["topic"] for line in lines if "mqtt" in line}
    assert adverts and topics == {f"{BASE}/phones/t-yes/sightings"}
    frames = {a["manufacturer_data"]["76"][-6:-2] for a in adverts}
    assert frames == {"0007"}  # minor 7 only: not 8 (no consent), 9 (nobody's), foreign
    for adv in adverts:  # what could identify the phone or its owner is gone
        assert adv["address"] == "" and adv["local_name"] is None
        assert set(adv["manufacturer_data"]) == {"76"} and adv["service_data"] == {}


def test_segments_are_private_gzip_traces_the_trace_tools_read(
    recorded: tuple[Config, list[dict[str, Any]]],
) -> None:
    config, lines = recorded
    (segment,) = segments(config.record_dir)
    assert stat.S_IMODE(segment.stat().st_mode) == 0o600
    assert stat.S_IMODE(config.record_dir.stat().st_mode) == 0o700
    items = list(read_trace(segment))
    assert len(items) == len(lines) and all(not hasattr(i, "message") for i in items)
    assert segment.name == segment_name(lines[0]["at"])


def test_rayon_backtest_reads_a_segment(
    recorded: tuple[Config, list[dict[str, Any]]], capsys: pytest.CaptureFixture[str]
) -> None:
    config, lines = recorded
    (segment,) = segments(config.record_dir)
    args = ["backtest", "-c", str(config.path), str(segment), "--format", "json"]
    assert main([*args, "--customers", str(_customers_file(config))]) == 0
    assert json.loads(capsys.readouterr().out)["inputs"] == len(lines)


def _customers_file(config: Config) -> Path:
    path = config.path.parent / "customers.jsonl"
    path.write_text("\n".join(json.dumps(p) for p in _people()) + "\n", "utf-8")
    return path


def test_a_segment_cut_by_a_crash_reads_up_to_the_cut(tmp_path: Path) -> None:
    config = _config(tmp_path)
    start = parse_local_time(START, config.store.timezone)
    _record(config, _inputs(config, start))
    (segment,) = segments(config.record_dir)
    whole = segment.read_bytes()
    segment.write_bytes(whole + gzip.compress(b'{"at": 1.0, "adv"' * 200)[:60])
    items = list(read_trace(segment))
    assert "cut short" in str(items[-1]) and len(items) == len(_lines(config.record_dir)) + 1


def test_segments_rotate_and_retention_rewrites_them(tmp_path: Path) -> None:
    config = _config(tmp_path)
    config = dataclasses.replace(config, record=dataclasses.replace(config.record, segment=2.0))
    start = parse_local_time(START, config.store.timezone)
    _record(config, _inputs(config, start))
    found = segments(config.record_dir)
    assert len(found) >= 3
    times = [line["at"] for line in _lines(config.record_dir)]
    cutoff = start + 3.2
    apply_retention(config.record_dir, config.record, cutoff + config.record.retention)
    kept = [line["at"] for line in _lines(config.record_dir)]
    assert kept == [t for t in times if t >= cutoff] and kept
    assert len(segments(config.record_dir)) < len(found)


def test_the_size_cap_deletes_the_oldest_segments(tmp_path: Path) -> None:
    config = _config(tmp_path, segment="1m")
    start = parse_local_time(START, config.store.timezone)
    for hour in range(3):
        _record(config, _inputs(config, start + 3600 * hour))
    found = segments(config.record_dir)
    size = sum(p.stat().st_size for p in found)
    small = dataclasses.replace(config.record, max_bytes=size - 1)
    apply_retention(config.record_dir, small, start)
    assert segments(config.record_dir) == found[1:]


def test_rayon_forget_rewrites_the_segments(tmp_path: Path) -> None:
    config = _config(tmp_path)
    start = parse_local_time(START, config.store.timezone)
    store = Store(config.database.url)
    store.upsert_customers([customer_of(p) for p in _people()])
    store.close()
    _record(config, _inputs(config, start))
    assert _lines(config.record_dir)
    assert run_forget(config, "c-yes", broker=False) == 0
    assert _lines(config.record_dir) == [] and segments(config.record_dir) == []


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ({"max_size": "lots"}, "expected a size such as 500MB or 2GB, got 'lots'"),
        ({"max_size": "10kB"}, "10kB is too small: give at least 1MB"),
        ({"retention": "5s"}, "record.retention"),
        ({"keep": "1d"}, "unknown key 'keep'"),
    ],
)
def test_bad_record_settings_are_located_errors(
    tmp_path: Path, record: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(reference_store(tmp_path, record=record))
    assert message in str(caught.value)


def test_recording_is_on_by_default_beside_the_database_and_can_be_off(tmp_path: Path) -> None:
    config = load_config(reference_store(tmp_path))
    assert config.record == RecordConfig() and config.record.enabled
    assert config.record_dir == tmp_path / "recording"
    assert config.record.retention == 86400.0
    assert not load_config(reference_store(tmp_path, record=False)).record.enabled


def _run_gateway(config: Config, feed: Sequence[TraceItem], erase: bool = False) -> Gateway:
    """A Gateway in process on the config's broker: the two customers stored, `feed` taken
    (then, with `erase`, the CRM's erasure of the consenting one), stopped cleanly."""
    clock = ManualClock(max(i.at for i in feed) + 5)

    async def scenario() -> Gateway:
        store = Store(config.database.url)
        store.upsert_customers([customer_of(p) for p in _people()])
        link = await connect_link(config)
        gateway = await Gateway.start(config, store=store, link=link, clock=clock)
        stop = asyncio.Event()
        running = asyncio.create_task(gateway.run(stop))
        for item in feed:
            gateway.offer_input(item)
        if erase:
            gateway.offer_input(MqttInput(clock.now(), f"{BASE}/crm/customers/c-yes", None))
        async with asyncio.timeout(10):
            while len(gateway.inbox):
                await asyncio.sleep(0.05)
        stop.set()
        await running  # the last flush writes the recording
        await link.disconnect()
        store.close()
        return gateway

    return asyncio.run(scenario())


@pytest.mark.mqtt
def test_a_running_gateway_records_and_an_erasure_rewrites_what_it_recorded(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    config = _config(tmp_path, port=mosquitto.port)
    start = parse_local_time(START, config.store.timezone)
    feed = [i for i in _inputs(config, start + 25) if isinstance(i, Advertisement)]
    gateway = _run_gateway(config, feed)
    assert gateway.counters()["record_lines"] == len(_lines(config.record_dir)) > 0
    _run_gateway(config, feed, erase=True)
    assert _lines(config.record_dir) == []


@pytest.mark.mqtt
def test_a_recording_that_cannot_be_written_is_counted_and_the_gateway_goes_on(
    tmp_path: Path, mosquitto: Mosquitto, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "not-a-folder").write_text("", "utf-8")
    config = load_config(
        reference_store(tmp_path, port=mosquitto.port, record={"dir": "not-a-folder/rec"})
    )
    start = parse_local_time(START, config.store.timezone)
    feed = [i for i in _inputs(config, start + 25) if isinstance(i, Advertisement)]
    gateway = _run_gateway(config, feed)
    assert gateway.counters()["record_failed"] >= 1
    assert gateway.counters()["inputs"] == len(feed)
    assert any("recording:" in r.getMessage() and "not-a-folder" in r.getMessage()
               for r in caplog.records)  # fmt: skip
