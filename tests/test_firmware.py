"""ESPHome firmware rendered from config.yaml (gateway.ops.firmware), and `rayon check`'s view
of it."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from gateway.config.load import load_config
from gateway.config.model import AnchorKind, Config
from gateway.decode.beacons import IBeacon, decode_manufacturer, encode_ibeacon
from gateway.decode.inbound import parse_scanner_adv
from gateway.decode.jsonvalues import InboundError
from gateway.errors import Diagnostic, Severity
from gateway.ops.firmware import (
    Tagged,
    check_firmware,
    load_esphome,
    pi_anchor,
    render_all,
)
from gateway.topics import Topics

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "config.example.yaml"
SUBSTITUTION = re.compile(r"\$\{(\w+)\}")


@pytest.fixture(scope="module")
def config() -> Config:
    return load_config(EXAMPLE)


@pytest.fixture
def rendered(config: Config, tmp_path: Path) -> Path:
    render_all(config, tmp_path / "firmware")
    return tmp_path / "firmware"


def load(path: Path) -> dict[str, Any]:
    doc = load_esphome(path.read_text("utf-8"))
    assert isinstance(doc, dict)
    return doc


def expand(text: str, subs: dict[str, Any]) -> str:
    """What ESPHome's substitution pass makes of `text`."""
    return SUBSTITUTION.sub(lambda m: str(subs[m.group(1)]), text)


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text("utf-8")
    assert text.count(old) == 1, old
    path.write_text(text.replace(old, new), "utf-8")


def position(path: Path, needle: str) -> tuple[int, int]:
    """1-based line and column of the only occurrence of `needle` in `path`."""
    lines = path.read_text("utf-8").splitlines()
    hits = [(i + 1, line.index(needle) + 1) for i, line in enumerate(lines) if needle in line]
    assert len(hits) == 1, hits
    return hits[0]


def test_one_file_per_anchor_but_the_pi_s_own_radio(config: Config, tmp_path: Path) -> None:
    written = render_all(config, tmp_path / "out")
    expected = [a.id for a in config.anchors if a.id != "pi-entrance"]
    assert pi_anchor(config) == "pi-entrance"
    assert [p.name for p in written] == [f"{a}.yaml" for a in expected]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(p.name for p in written)


def test_each_file_loads_with_the_config_s_values(config: Config, rendered: Path) -> None:
    for anchor in config.anchors[1:]:
        subs = load(rendered / f"{anchor.id}.yaml")["substitutions"]
        assert subs["anchor_id"] == anchor.id
        assert subs["anchor_kind"] == anchor.kind.value
        assert subs["store_id"] == config.store.id == "paris-11"
        assert subs["topic_prefix"] == config.mqtt.topic_prefix == "rayon"
        assert all(isinstance(v, str | Tagged) for v in subs.values())  # ESPHome wants strings


def test_a_beacon_carries_the_anchor_s_ibeacon_id_and_calibration(rendered: Path) -> None:
    doc = load(rendered / "beacon-03.yaml")
    subs = doc["substitutions"]
    beacon = {k: expand(str(v), subs) for k, v in doc["esp32_ble_beacon"].items()}
    assert beacon["type"] == "iBeacon"
    assert beacon["uuid"] == "8d8c1a2e-5b3f-4c1d-9e2a-0f6b7c8d9e10"
    assert (beacon["major"], beacon["minor"]) == ("1", "3")
    assert beacon["measured_power"] == "-59"  # rssi_at_1m's default


def test_measured_power_is_rssi_at_1m_rounded(tmp_path: Path) -> None:
    text = EXAMPLE.read_text("utf-8").replace(
        'beacon: "ibeacon:8d8c1a2e-5b3f-4c1d-9e2a-0f6b7c8d9e10:1:2", x: 39.5, y: 6.0',
        'beacon: "iBeacon:8D8C1A2E-5B3F-4C1D-9E2A-0F6B7C8D9E10-1-2", x: 39.5, y: 6.0, '
        "rssi_at_1m: -63.6",
    )
    (tmp_path / "config.yaml").write_text(text, "utf-8")
    config = load_config(tmp_path / "config.yaml")
    render_all(config, tmp_path / "fw")
    subs = load(tmp_path / "fw" / "beacon-02.yaml")["substitutions"]
    assert (subs["measured_power"], subs["beacon_minor"]) == ("-64", "2")
    assert subs["beacon_uuid"] == "8d8c1a2e-5b3f-4c1d-9e2a-0f6b7c8d9e10"


def test_the_scanner_publishes_where_the_gateway_listens(config: Config, rendered: Path) -> None:
    doc = load(rendered / "node-tv.yaml")
    subs = doc["substitutions"]
    publish = doc["interval"][0]["then"][0]["if"]["then"][0]["mqtt.publish"]
    topics = Topics(config.mqtt.topic_prefix, config.store.id)
    assert expand(publish["topic"], subs) == topics.scanner_adv("node-tv")
    assert topics.parse(expand(publish["topic"], subs)) is not None
    assert (publish["qos"], publish["retain"]) == (0, False)
    mqtt = doc["mqtt"]
    assert expand(mqtt["username"], subs) == "node-tv"  # deploy/mosquitto: login = anchor id
    assert mqtt["password"] == Tagged("!secret", "mqtt_password_node-tv")
    will = expand(mqtt["will_message"]["topic"], subs)
    assert will == "rayon/paris-11/scanners/node-tv/status"
    assert (mqtt["will_message"]["payload"], mqtt["will_message"]["retain"]) == ("offline", True)


def test_secrets_stay_out_of_the_rendered_files(rendered: Path) -> None:
    doc = load(rendered / "node-audio.yaml")
    assert doc["wifi"]["ssid"] == Tagged("!secret", "wifi_ssid")
    assert doc["wifi"]["password"] == Tagged("!secret", "wifi_password")
    assert doc["substitutions"]["mqtt_broker"] == Tagged("!secret", "mqtt_broker")  # localhost
    assert doc["substitutions"]["mqtt_port"] == "8883"


def test_a_broker_the_nodes_can_reach_is_written_in(tmp_path: Path) -> None:
    text = EXAMPLE.read_text("utf-8").replace(
        "  host: localhost\n  port: 1883", "  host: 10.0.0.2\n  port: 8884"
    )
    (tmp_path / "config.yaml").write_text(text, "utf-8")
    render_all(load_config(tmp_path / "config.yaml"), tmp_path / "fw")
    subs = load(tmp_path / "fw" / "node-tv.yaml")["substitutions"]
    assert (subs["mqtt_broker"], subs["mqtt_port"]) == ("10.0.0.2", "8884")


def _lambda(doc: dict[str, Any]) -> str:
    (handler,) = doc["esp32_ble_tracker"]["on_ble_advertise"]
    code = handler["then"][0]["lambda"]
    assert isinstance(code, str)
    return code


def test_the_node_scans_passively_and_keeps_only_ibeacons(rendered: Path) -> None:
    doc = load(rendered / "node-tv.yaml")
    assert doc["esp32_ble_tracker"]["scan_parameters"]["active"] is False
    code = _lambda(doc)
    assert "md.uuid.contains(0x4C, 0x00)" in code  # Apple, company id 0x004C
    assert "md.data[0] != 0x02 || md.data[1] != 0x15" in code


def test_the_lambda_s_payload_is_the_design_s_and_the_gateway_reads_it(rendered: Path) -> None:
    code = _lambda(load(rendered / "node-tv.yaml"))
    keys = set(re.findall(r'\\"(\w+)\\":', code))
    assert keys == {"address", "rssi", "manufacturer_data", "76"}  # no "at": the gateway stamps it
    data = encode_ibeacon("8d8c1a2e-5b3f-4c1d-9e2a-0f6b7c8d9e10", 7, 42, -59)
    item: dict[str, Any] = {
        "address": "4C:1A:9E:22:07:B3",
        "rssi": -67,
        "manufacturer_data": {"76": data.hex()},
    }
    assert set(item) | set(item["manufacturer_data"]) == keys
    adverts = parse_scanner_adv([item, item], "node-tv", 1772546441.0)
    assert not isinstance(adverts, InboundError), adverts
    assert [(a.anchor, a.rssi, a.at) for a in adverts] == [("node-tv", -67, 1772546441.0)] * 2
    beacon = decode_manufacturer(0x004C, adverts[0].manufacturer_data[0x004C])
    assert isinstance(beacon, IBeacon) and (beacon.major, beacon.minor) == (7, 42)


def test_the_rendered_folder_agrees_with_the_config(config: Config, rendered: Path) -> None:
    (rendered / "secrets.yaml").write_text('wifi_ssid: "store"\nwifi_password: "x"\n', "utf-8")
    assert check_firmware(config, rendered) == []


def test_no_folder_nothing_to_check(config: Config, tmp_path: Path) -> None:
    assert check_firmware(config, tmp_path / "absent") == []


def test_a_wrong_minor_is_located(config: Config, rendered: Path) -> None:
    path = rendered / "beacon-04.yaml"
    edit(path, 'beacon_minor: "4"', 'beacon_minor: "40"')
    line, col = position(path, '"40"')
    assert check_firmware(config, rendered) == [
        Diagnostic(
            str(path), line, col,
            "beacon_minor is '40' but config.example.yaml says '4'; "
            "run `rayon firmware render` again",
            "substitutions.beacon_minor",
        )
    ]  # fmt: skip


def test_an_unknown_node_id_gets_a_did_you_mean(config: Config, rendered: Path) -> None:
    path = rendered / "node-tv.yaml"
    edit(path, 'anchor_id: "node-tv"', 'anchor_id: "node-tvs"')
    line, col = position(path, '"node-tvs"')
    diags = check_firmware(config, rendered)
    assert [str(d) for d in diags] == [
        f"{path}:{line}:{col}: error: unknown anchor 'node-tvs' (did you mean 'node-tv'?): "
        "not an anchor of config.example.yaml (at substitutions.anchor_id)",
        f"{EXAMPLE}:{_anchor_line('node-tv')}: warning: anchor 'node-tv' has no firmware file "
        f"in {rendered}; run `rayon firmware render`",
    ]


def _anchor_line(anchor_id: str) -> str:
    needle = f"{{id: {anchor_id},"
    line, col = position(EXAMPLE, needle)
    return f"{line}:{col + len('{id: ')}"


def test_wrong_kind_store_and_prefix_are_reported(config: Config, rendered: Path) -> None:
    edit(rendered / "node-gaming.yaml", 'store_id: "paris-11"', 'store_id: "lyon-2"')
    edit(rendered / "node-photo.yaml", 'topic_prefix: "rayon"', 'topic_prefix: "shop"')
    edit(rendered / "beacon-01.yaml", 'anchor_id: "beacon-01"', 'anchor_id: "node-audio"')
    diags = check_firmware(config, rendered)
    found = {(Path(d.file).name, d.key_path, d.severity) for d in diags}
    assert found == {
        ("node-gaming.yaml", "substitutions.store_id", Severity.ERROR),
        ("node-photo.yaml", "substitutions.topic_prefix", Severity.ERROR),
        ("beacon-01.yaml", "substitutions.anchor_kind", Severity.ERROR),
        ("config.example.yaml", "", Severity.WARNING),  # beacon-01 now has no file
    }
    kind = next(d for d in diags if d.key_path == "substitutions.anchor_kind")
    assert "anchor 'node-audio' is a scanner in config.example.yaml, not a beacon" in kind.message


def test_two_files_for_one_node_and_a_broken_file(config: Config, rendered: Path) -> None:
    (rendered / "copy.yaml").write_text((rendered / "node-tv.yaml").read_text("utf-8"), "utf-8")
    (rendered / "zz.yaml").write_text("substitutions:\n  anchor_id: [\n", "utf-8")
    line, _ = position(rendered / "node-tv.yaml", 'anchor_id: "node-tv"')
    diags = check_firmware(config, rendered)
    assert [(Path(d.file).name, d.line) for d in diags] == [("node-tv.yaml", line), ("zz.yaml", 3)]
    assert "also flashed by" in diags[0].message
    assert "cannot read this ESPHome file" in diags[1].message


def test_without_the_pi_s_radio_every_scanner_gets_firmware(tmp_path: Path) -> None:
    text = EXAMPLE.read_text("utf-8")
    start = text.index("  ble:")
    end = text.index("  scanner_nodes:")
    (tmp_path / "config.yaml").write_text(text[:start] + "  ble: false\n" + text[end:], "utf-8")
    config = load_config(tmp_path / "config.yaml")
    written = render_all(config, tmp_path / "fw")
    scanners = [a for a in config.anchors if a.kind is AnchorKind.SCANNER]
    assert pi_anchor(config) is None
    assert {p.stem for p in written} >= {a.id for a in scanners}
