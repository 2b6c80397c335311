"""`rayon scan`: the daemon's BleSource over bleak's real BleakScanner, through a replay backend."""

from __future__ import annotations

import asyncio
import io
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from bleak.exc import BleakDBusError, BleakError

from gateway.cli.scan import ScanOptions, scan
from gateway.clock import ManualClock
from gateway.config.load import load_config
from gateway.config.model import Config
from gateway.decode.beacons import encode_eddystone_tlm, encode_ibeacon
from gateway.errors import RuntimeFailure
from gateway.events import Advertisement
from gateway.sources.ble import ReplayScannerBackend
from tests.stores import rayon, reference_store

STORE_UUID = "8d8c1a2e-5b3f-4c1d-9e2a-0f6b7c8d9e10"
OTHER_UUID = "d546df97-4757-47ef-be09-3e2dcbdd0c77"
TLM_KEY = "0000feaa-0000-1000-8000-00805f9b34fb"
T0 = 1_772_550_000.0


@pytest.fixture
def config(tmp_path: Path) -> Config:
    """The reference store with the Pi's radio on hci7, standing for the entrance scanner."""
    ble = {"adapter": "hci7", "anchor": "pi-entrance"}
    return load_config(reference_store(tmp_path, sources={"ble": ble}))


def advert(i: int, **frames: Any) -> Advertisement:
    return Advertisement(
        at=T0 + i,
        anchor="recorded-elsewhere",
        address=f"AA:BB:CC:DD:EE:{i:02X}",
        rssi=-60 - i,
        manufacturer_data=frames.get("manufacturer_data", {}),
        service_data=frames.get("service_data", {}),
    )


HEARD = [
    advert(0, manufacturer_data={76: encode_ibeacon(STORE_UUID, 1, 3, -59)}),  # beacon-03
    advert(1, manufacturer_data={76: encode_ibeacon(OTHER_UUID, 7, 7, -59)}),  # a neighbour's
    advert(2, service_data={TLM_KEY: encode_eddystone_tlm(3000, 21.5, 10, 20)}),  # no id
    advert(3, manufacturer_data={76: encode_ibeacon(STORE_UUID, 1000, 1, -61)}),  # a phone
    advert(4, manufacturer_data={6: b"\x01\x09\x20"}),  # not a beacon at all
]


def scan_lines(config: Config, options: ScanOptions, **backend: Any) -> list[dict[str, Any]]:
    async def main() -> list[dict[str, Any]]:
        clock = ManualClock()
        out = io.StringIO()
        kwargs = {"adverts": HEARD, "clock": clock, **backend}
        code = await scan(
            config, options, out, clock=clock, backend=ReplayScannerBackend, backend_kwargs=kwargs
        )
        assert code == 0
        return [json.loads(line) for line in out.getvalue().splitlines()]

    return asyncio.run(asyncio.wait_for(main(), 10))


def test_scan_prints_the_store_beacons_decoded_with_their_anchors(config: Config) -> None:
    lines = scan_lines(config, ScanOptions(seconds=0.2))
    assert [line["address"] for line in lines] == [HEARD[0].address, HEARD[3].address]
    assert lines[0] == {
        "at": T0,
        "address": "AA:BB:CC:DD:EE:00",
        "rssi": -60,
        "beacon": {
            "kind": "ibeacon",
            "id": f"ibeacon:{STORE_UUID}:1:3",
            "uuid": STORE_UUID,
            "major": 1,
            "minor": 3,
            "tx_power": -59,
        },
        "anchor": "pi-entrance",
        "beacon_anchor": "beacon-03",
    }
    assert lines[1]["beacon"]["id"] == f"ibeacon:{STORE_UUID}:1000:1"
    assert lines[1]["beacon_anchor"] is None and lines[1]["at"] == T0 + 3


def test_scan_all_prints_every_advert_heard(config: Config) -> None:
    lines = scan_lines(config, ScanOptions(seconds=0.2, everything=True))
    assert [line["address"] for line in lines] == [a.address for a in HEARD]
    beacons = [line["beacon"] for line in lines]
    assert beacons[1]["id"] == f"ibeacon:{OTHER_UUID}:7:7"
    assert beacons[2]["kind"] == "eddystone_tlm" and "id" not in beacons[2]
    assert beacons[4] is None
    assert {line["anchor"] for line in lines} == {"pi-entrance"}


def test_scan_lasts_the_seconds_asked_then_ends(config: Config) -> None:
    started = time.monotonic()
    assert len(scan_lines(config, ScanOptions(seconds=0.5))) == 2
    assert 0.5 <= time.monotonic() - started < 5


def test_scan_for_0_seconds_runs_until_stopped(config: Config) -> None:
    async def main() -> tuple[int, float]:
        clock, stop = ManualClock(), asyncio.Event()
        asyncio.get_running_loop().call_later(0.3, stop.set)  # Ctrl-C sets it in `rayon scan`
        started = time.monotonic()
        code = await scan(
            config,
            ScanOptions(seconds=0),
            io.StringIO(),
            clock=clock,
            stop=stop,
            backend=ReplayScannerBackend,
            backend_kwargs={"adverts": HEARD, "clock": clock},
        )
        return code, time.monotonic() - started

    code, took = asyncio.run(asyncio.wait_for(main(), 10))
    assert code == 0 and 0.3 <= took < 5


@pytest.mark.parametrize(
    ("options", "error", "says"),
    [
        (ScanOptions(), BleakError("adapter 'hci7' not found"), "adapter 'hci7' not found"),
        (ScanOptions(adapter="hci1"), BleakError("adapter 'hci1' not found"), "bluetoothctl list"),
        (
            ScanOptions(),
            BleakDBusError("org.freedesktop.DBus.Error.ServiceUnknown", []),
            "bluetoothd is not running",
        ),
    ],
)
def test_scan_without_bluetooth_is_a_runtime_failure_that_says_what_to_do(
    config: Config, options: ScanOptions, error: Exception, says: str
) -> None:
    with pytest.raises(RuntimeFailure) as info:
        scan_lines(config, options, start_error=error)
    assert info.value.exit_code == 3
    assert says in str(info.value) and (options.adapter or "hci7") in str(info.value)


@pytest.mark.skipif(
    sys.platform != "linux"
    or "DBUS_SYSTEM_BUS_ADDRESS" in os.environ
    or os.path.exists("/run/dbus/system_bus_socket")
    or os.path.exists("/var/run/dbus/system_bus_socket"),
    reason="would talk to a real bluetoothd",
)
def test_rayon_scan_on_a_machine_without_bluetooth_exits_3(tmp_path: Path) -> None:
    config = reference_store(tmp_path, sources={"ble": {"adapter": "hci0"}})
    result = rayon("scan", "-c", str(config), "--seconds", "1")
    assert result.returncode == 3, result.stderr
    assert result.stderr.startswith("rayon: cannot reach the system D-Bus to use hci0")
    assert result.stdout == ""


def test_rayon_scan_refuses_negative_seconds() -> None:
    result = rayon("scan", "-c", "config.example.yaml", "--seconds", "-1")
    assert result.returncode == 1 and "--seconds" in result.stderr
