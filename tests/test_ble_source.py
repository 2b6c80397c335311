"""gateway.sources.ble: the real BleakScanner, driven through ReplayScannerBackend."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest
from bleak.backends.scanner import AdvertisementData
from bleak.exc import (
    BleakBluetoothNotAvailableError,
    BleakBluetoothNotAvailableReason,
    BleakDBusError,
    BleakError,
)

from gateway.clock import ManualClock
from gateway.config.model import ScanningMode
from gateway.decode.beacons import encode_eddystone_uid, encode_ibeacon
from gateway.decode.privacy import PrivacyFilter
from gateway.errors import RuntimeFailure
from gateway.events import Advertisement
from gateway.sources.ble import (
    BEACON_OR_PATTERNS,
    BleSource,
    ReplayScannerBackend,
    explain_start_failure,
)

T = TypeVar("T")
UUID = "8d8c1a2e-5b3f-4c1d-9e2a-0f6b7c8d9e10"
OTHER_UUID = "d546df97-4757-47ef-be09-3e2dcbdd0c77"


def run(main: Callable[[], Awaitable[T]]) -> T:
    async def bounded() -> T:
        return await asyncio.wait_for(main(), 10)

    return asyncio.run(bounded())


def recorded(n: int, uuid: str = UUID) -> list[Advertisement]:
    return [
        Advertisement(
            at=1_772_550_000.0 + 0.25 * i,
            anchor="recorded-elsewhere",
            address=f"AA:BB:CC:DD:EE:{i:02X}",
            rssi=-60 - i,
            manufacturer_data={76: encode_ibeacon(uuid, 11, i, -59)},
            service_data={},
            local_name=f"tag-{i}" if i % 2 else None,
        )
        for i in range(n)
    ]


def source(
    adverts: list[Any], clock: ManualClock, finished: asyncio.Event, **kwargs: Any
) -> BleSource:
    return BleSource(
        "pi-tv",
        clock=clock,
        backend=ReplayScannerBackend,
        backend_kwargs={"adverts": adverts, "clock": clock, "finished": finished},
        **kwargs,
    )


async def take(src: BleSource, n: int) -> list[Advertisement]:
    got: list[Advertisement] = []
    async for adv in src.advertisements():
        got.append(adv)
        if len(got) == n:
            break
    return got


def test_replayed_adverts_arrive_in_order_with_the_clock_time() -> None:
    adverts = recorded(6)

    async def main() -> list[Advertisement]:
        clock = ManualClock()
        async with source(adverts, clock, asyncio.Event()) as src:
            return await take(src, len(adverts))

    got = run(main)
    assert [a.at for a in got] == [a.at for a in adverts]
    assert [a.address for a in got] == [a.address for a in adverts]
    assert [(a.rssi, a.local_name) for a in got] == [(a.rssi, a.local_name) for a in adverts]
    assert [a.manufacturer_data for a in got] == [a.manufacturer_data for a in adverts]
    assert {a.anchor for a in got} == {"pi-tv"}


def test_bleak_pairs_are_accepted_and_service_keys_lowercased() -> None:
    data = AdvertisementData(
        local_name="Beacon",
        manufacturer_data={},
        service_data={
            "0000FEAA-0000-1000-8000-00805F9B34FB": encode_eddystone_uid("ab" * 10, "01" * 6, -20)
        },
        service_uuids=["0000feaa-0000-1000-8000-00805f9b34fb"],
        tx_power=None,
        rssi=-71,
        platform_data=(),
    )

    async def main() -> list[Advertisement]:
        clock = ManualClock(start=42.0)
        async with source([("11:22:33:44:55:66", data)], clock, asyncio.Event()) as src:
            return await take(src, 1)

    (adv,) = run(main)
    assert adv == Advertisement(
        at=42.0,
        anchor="pi-tv",
        address="11:22:33:44:55:66",
        rssi=-71,
        manufacturer_data={},
        service_data={
            "0000feaa-0000-1000-8000-00805f9b34fb": data.service_data[
                "0000FEAA-0000-1000-8000-00805F9B34FB"
            ]
        },
        local_name="Beacon",
    )


def test_a_full_queue_counts_drops_and_keeps_the_oldest() -> None:
    adverts = recorded(7)

    async def main() -> tuple[int, list[Advertisement]]:
        finished = asyncio.Event()
        src = source(adverts, ManualClock(), finished, queue_size=3)
        async with src:
            await finished.wait()  # nobody consumed while the backend reported
            dropped = src.dropped
        return dropped, [a async for a in src.advertisements()]

    dropped, kept = run(main)
    assert dropped == 4
    assert [a.address for a in kept] == [a.address for a in adverts[:3]]


def test_stop_ends_the_iteration_after_what_was_queued() -> None:
    async def main() -> tuple[list[Advertisement], list[Advertisement]]:
        finished = asyncio.Event()
        src = source(recorded(2), ManualClock(), finished)
        await src.start()
        await finished.wait()
        await src.stop()
        after_stop = [a async for a in src.advertisements()]
        return after_stop, [a async for a in src.advertisements()]

    drained, again = run(main)
    assert len(drained) == 2
    assert again == []


def test_a_waiting_consumer_is_woken_by_stop() -> None:
    async def main() -> list[Advertisement]:
        src = source([], ManualClock(), asyncio.Event())
        await src.start()
        consumer = asyncio.create_task(take(src, 1))
        await asyncio.sleep(0)
        await src.stop()
        return await consumer

    assert run(main) == []


def test_items_starts_and_stops_the_scanner() -> None:
    adverts = recorded(3)

    async def main() -> tuple[list[Advertisement], list[Advertisement]]:
        src = source(adverts, ManualClock(), asyncio.Event())
        got: list[Advertisement] = []
        async with contextlib.aclosing(src.items()) as items:
            async for adv in items:
                got.append(adv)
                if len(got) == 2:
                    break
        return got, [a async for a in src.advertisements()]

    got, after = run(main)
    assert [a.address for a in got] == [a.address for a in adverts[:2]]
    assert len(after) <= 1  # stopped: at most the one advert queued before the break


def test_accept_drops_adverts_that_are_not_ours_before_queueing() -> None:
    ours, other = recorded(2), recorded(3, uuid=OTHER_UUID)
    privacy = PrivacyFilter([UUID], [])

    async def main() -> tuple[int, list[Advertisement]]:
        finished = asyncio.Event()
        mixed = [other[0], ours[0], other[1], other[2], ours[1]]
        src = source(mixed, ManualClock(), finished, accept=privacy.identify)
        async with src:
            await finished.wait()
        return src.ignored, [a async for a in src.advertisements()]

    ignored, kept = run(main)
    assert ignored == 3
    assert [a.address for a in kept] == [ours[0].address, ours[1].address]


class RecordingBackend(ReplayScannerBackend):
    """Keeps itself in `created` so a test can see what BleakScanner gave the backend."""

    def __init__(self, *args: Any, created: list[ReplayScannerBackend], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        created.append(self)


@pytest.mark.parametrize("mode", list(ScanningMode))
def test_adapter_and_mode_reach_the_backend(mode: ScanningMode) -> None:
    created: list[ReplayScannerBackend] = []

    async def main() -> None:
        src = BleSource(
            "pi-tv",
            clock=ManualClock(),
            adapter="hci1",
            scanning_mode=mode,
            backend=RecordingBackend,
            backend_kwargs={"created": created},
        )
        async with src:
            pass

    run(main)
    (backend,) = created
    assert backend.scanning_mode == mode.value
    assert backend.options["bluez"]["adapter"] == "hci1"
    patterns = backend.options["bluez"].get("or_patterns")
    assert patterns == (list(BEACON_OR_PATTERNS) if mode is ScanningMode.PASSIVE else None)


@pytest.mark.parametrize(
    ("error", "hint"),
    [
        (
            BleakDBusError("org.freedesktop.DBus.Error.ServiceUnknown", []),
            "bluetoothd is not running",
        ),
        (BleakDBusError("org.freedesktop.DBus.Error.AccessDenied", ["no"]), "bluetooth` group"),
        (BleakDBusError("org.bluez.Error.NotReady", ["Resource Not Ready"]), "power on"),
        (BleakError("adapter 'hci1' not found"), "bluetoothctl list"),
        (
            BleakBluetoothNotAvailableError(
                "No powered Bluetooth adapters found.", BleakBluetoothNotAvailableReason.POWERED_OFF
            ),
            "power on",
        ),
        (FileNotFoundError(2, "No such file or directory"), "D-Bus"),
        (PermissionError(13, "Permission denied"), "D-Bus"),
    ],
)
def test_start_failures_become_runtime_failures_with_a_hint(error: Exception, hint: str) -> None:
    async def main() -> None:
        src = BleSource(
            "pi-tv",
            clock=ManualClock(),
            adapter="hci1",
            backend=ReplayScannerBackend,
            backend_kwargs={"start_error": error},
        )
        await src.start()

    with pytest.raises(RuntimeFailure) as info:
        run(main)
    assert hint in str(info.value)
    assert "hci1" in str(info.value)
    assert info.value.__cause__ is error
    assert info.value.exit_code == 3


def test_unknown_bleak_errors_keep_their_text() -> None:
    assert "weird" in explain_start_failure(BleakError("weird"), "hci0")


@pytest.mark.skipif(
    sys.platform != "linux"
    or "DBUS_SYSTEM_BUS_ADDRESS" in os.environ
    or os.path.exists("/run/dbus/system_bus_socket")
    or os.path.exists("/var/run/dbus/system_bus_socket"),
    reason="would talk to a real bluetoothd",
)
def test_the_real_bluez_backend_without_dbus_is_a_runtime_failure() -> None:
    async def main() -> None:
        await BleSource("pi-tv", clock=ManualClock(), adapter="hci0").start()

    with pytest.raises(RuntimeFailure, match="D-Bus"):
        run(main)


class StopFailsBackend(ReplayScannerBackend):
    """An adapter that vanished while scanning: stopping fails."""

    async def stop(self) -> None:
        await super().stop()
        raise BleakDBusError("org.freedesktop.DBus.Error.NoReply", ["gone"])


def test_a_failing_stop_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        async with BleSource("pi-tv", clock=ManualClock(), backend=StopFailsBackend):
            pass

    run(main)
    assert "stopping the scan on hci0 failed" in caplog.text
