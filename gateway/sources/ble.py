"""The Pi's own radio (docs/design.md §1, mode A) through bleak's real `BleakScanner`.

bleak calls a detection callback on the event loop for each advertisement; `BleSource` turns
each into an `Advertisement` stamped with the injected clock and puts it in a bounded queue
(drops are counted, the callback never blocks), and hands them out as an async iterator.

`ReplayScannerBackend` is a real bleak backend fed with recorded advertisements: tests (and
`rayon scan` on a machine without Bluetooth) drive the real `BleakScanner` through it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, Callable, Iterable, Mapping
from types import TracebackType
from typing import Any, Literal, Self

from bleak import BleakScanner
from bleak.args.bluez import BlueZScannerArgs, OrPattern
from bleak.assigned_numbers import AdvertisementDataType
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData, BaseBleakScanner
from bleak.exc import BleakBluetoothNotAvailableError, BleakDBusError, BleakError

from gateway.clock import Clock, ManualClock
from gateway.config.model import ScanningMode
from gateway.errors import RuntimeFailure
from gateway.events import Advertisement

log = logging.getLogger(__name__)

DEFAULT_QUEUE_SIZE = 4096

# Passive scanning on BlueZ needs advertisement-monitor patterns (bleak raises without them):
# iBeacon (Apple 0x004C, 02 15), AltBeacon (BE AC after any company id), Eddystone (0xFEAA).
BEACON_OR_PATTERNS = (
    OrPattern(0, AdvertisementDataType.MANUFACTURER_SPECIFIC_DATA, b"\x4c\x00\x02\x15"),
    OrPattern(2, AdvertisementDataType.MANUFACTURER_SPECIFIC_DATA, b"\xbe\xac"),
    OrPattern(0, AdvertisementDataType.SERVICE_DATA_UUID16, b"\xaa\xfe"),
)


class BleSource:
    """Advertisements heard by one local adapter, standing for the scanner anchor `anchor`.

    Use as `async with source: async for adv in source.advertisements(): …`, or iterate
    `items()`, which starts and stops the scanner itself.  One consumer at a time.
    `dropped` counts adverts lost because the queue was full; `ignored` those refused by
    `accept`, called on each advert before it is queued, which refuses it by returning a
    falsy value: pass `PrivacyFilter(...).identify` so that nothing but our beacons is ever
    kept in memory (docs/design.md §1).
    """

    def __init__(
        self,
        anchor: str,
        *,
        clock: Clock,
        adapter: str = "hci0",
        scanning_mode: ScanningMode = ScanningMode.ACTIVE,
        queue_size: int = DEFAULT_QUEUE_SIZE,
        accept: Callable[[Advertisement], object] | None = None,
        backend: type[BaseBleakScanner] | None = None,
        backend_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        self.name = f"ble:{adapter}"
        self.anchor = anchor
        self.adapter = adapter
        self.scanning_mode = scanning_mode
        self.dropped = 0
        self.ignored = 0
        self._clock = clock
        self._accept = accept
        self._backend = backend
        self._backend_kwargs = dict(backend_kwargs or {})
        self._queue: asyncio.Queue[Advertisement | None] = asyncio.Queue(queue_size)
        self._scanner: BleakScanner | None = None
        self._closed = False

    async def start(self) -> None:
        """Start scanning; RuntimeFailure says what to fix when the radio cannot be used."""
        if self._scanner is not None:
            return
        self._closed = False
        try:
            scanner = self._make_scanner()
            await scanner.start()
        except (BleakError, OSError) as exc:
            raise RuntimeFailure(explain_start_failure(exc, self.adapter)) from exc
        self._scanner = scanner
        log.info("scanning on %s (%s) as anchor %s", self.adapter, self.scanning_mode, self.anchor)

    def _make_scanner(self) -> BleakScanner:
        bluez: BlueZScannerArgs = {"adapter": self.adapter}
        mode: Literal["active", "passive"] = "active"
        if self.scanning_mode is ScanningMode.PASSIVE:
            bluez["or_patterns"] = list(BEACON_OR_PATTERNS)
            mode = "passive"
        return BleakScanner(
            self._on_advertisement,
            None,
            mode,
            bluez=bluez,
            backend=self._backend,
            **self._backend_kwargs,
        )

    async def stop(self) -> None:
        """Stop scanning; the iterator ends once it has handed out what was queued."""
        scanner, self._scanner = self._scanner, None
        self._closed = True
        # Wake a waiting consumer; when the queue is full, the consumer is not waiting and
        # sees `_closed` once it has emptied the queue.
        with contextlib.suppress(asyncio.QueueFull):
            self._queue.put_nowait(None)
        if scanner is not None:
            try:
                await scanner.stop()
            except (BleakError, OSError) as exc:  # nothing to do about it: say it, go on
                log.warning("stopping the scan on %s failed: %s", self.adapter, exc)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    def _on_advertisement(self, device: BLEDevice, data: AdvertisementData) -> None:
        # Called by bleak on the event loop: build the value and queue it, never block.
        if self._closed:
            return
        adv = Advertisement(
            at=self._clock.now(),
            anchor=self.anchor,
            address=device.address,
            rssi=data.rssi,
            manufacturer_data=data.manufacturer_data,
            service_data={k.lower(): v for k, v in data.service_data.items()},
            local_name=data.local_name,
        )
        if self._accept is not None and not self._accept(adv):
            self.ignored += 1
            return
        try:
            self._queue.put_nowait(adv)
        except asyncio.QueueFull:
            self.dropped += 1

    async def advertisements(self) -> AsyncGenerator[Advertisement, None]:
        """Each advertisement in the order heard, until `stop()`."""
        queue = self._queue
        while not (self._closed and queue.empty()):
            adv = await queue.get()
            if adv is None:
                if self._closed:
                    return
                continue  # a wake-up left by an earlier stop(); the source was restarted
            yield adv

    async def items(self) -> AsyncGenerator[Advertisement, None]:
        """Start the scanner, yield its advertisements, stop it when the iteration ends."""
        async with self:
            async for adv in self.advertisements():
                yield adv


# -- turning bleak and D-Bus failures into something an operator can act on ------------------


def explain_start_failure(exc: BaseException, adapter: str) -> str:
    """What went wrong when starting a scan on `adapter`, and how to fix it."""
    text = str(exc) or type(exc).__name__
    if isinstance(exc, BleakBluetoothNotAvailableError):
        return f"Bluetooth is not available on {adapter}: {exc.args[0]}; {_NOT_AVAILABLE_HINT}"
    if isinstance(exc, BleakDBusError):
        hint = _dbus_hint(exc.dbus_error, adapter)
        return f"BlueZ refused to scan on {adapter} ({exc.dbus_error}): {hint}"
    if isinstance(exc, OSError):
        return (
            f"cannot reach the system D-Bus to use {adapter} ({text}): is dbus running? "
            "In a container, mount /run/dbus/system_bus_socket and run bluetoothd on the host"
        )
    if "not found" in text and "adapter" in text:
        return (
            f"Bluetooth adapter {adapter!r} not found: list adapters with `bluetoothctl list` "
            "or `hciconfig`, then set sources.ble.adapter in config.yaml"
        )
    return f"cannot scan on {adapter}: {text}"


_NOT_AVAILABLE_HINT = (
    "check the adapter is present and powered (`bluetoothctl show`, `bluetoothctl power on`, "
    "`rfkill unblock bluetooth`) and that the rayon user may use BlueZ (D-Bus policy or the "
    "`bluetooth` group)"
)


def _dbus_hint(name: str, adapter: str) -> str:
    if name.endswith(("ServiceUnknown", "NameHasNoOwner")):
        return "bluetoothd is not running: `sudo systemctl enable --now bluetooth`"
    if name.endswith(("AccessDenied", "NotPermitted", "NotAuthorized")):
        return (
            "permission denied: run rayon as a user in the `bluetooth` group or allow it in "
            "the BlueZ D-Bus policy (/etc/dbus-1/system.d/bluetooth.conf)"
        )
    if name.endswith(("UnknownObject", "UnknownMethod")):
        return f"no adapter {adapter!r}: list adapters with `bluetoothctl list`"
    if name.endswith("NotReady"):
        return "the adapter is powered off: `bluetoothctl power on`, `rfkill unblock bluetooth`"
    if name.endswith("InProgress"):
        return "another scan is in progress on this adapter; stop it or use another adapter"
    return "see `journalctl -u bluetooth` for details"


# -- a real bleak backend replaying recorded advertisements -------------------------------------

Recorded = Advertisement | tuple[str, AdvertisementData]


def advertisement_data(adv: Advertisement) -> AdvertisementData:
    """The bleak `AdvertisementData` a radio would have reported for `adv`."""
    return AdvertisementData(
        local_name=adv.local_name,
        manufacturer_data=dict(adv.manufacturer_data),
        service_data=dict(adv.service_data),
        service_uuids=list(adv.service_data),
        tx_power=None,
        rssi=adv.rssi,
        platform_data=(),
    )


class ReplayScannerBackend(BaseBleakScanner):
    """A bleak scanner backend that, once started, reports recorded advertisements.

    Give it to `BleakScanner(backend=ReplayScannerBackend, adverts=[…])`.  Each recorded item
    (a gateway `Advertisement`, or an `(address, AdvertisementData)` pair) goes through bleak's
    own `create_or_update_device` and `call_detection_callbacks`, in order, from a task of the
    event loop, as a radio backend does.  With `clock`, the clock is set to each Advertisement's
    `at` before it is reported.  `finished` is set when every item has been reported;
    `start_error` is raised by `start()` to play a failing adapter.
    """

    def __init__(
        self,
        detection_callback: Any,
        service_uuids: list[str] | None,
        scanning_mode: str = "active",
        *,
        adverts: Iterable[Recorded] = (),
        clock: ManualClock | None = None,
        finished: asyncio.Event | None = None,
        start_error: BaseException | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(detection_callback, service_uuids)
        self.scanning_mode = scanning_mode
        self.options = kwargs  # bluez=, cb=: what a platform backend would get
        self._adverts = list(adverts)
        self._clock = clock
        self._start_error = start_error
        self.finished = finished if finished is not None else asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self._start_error is not None:
            raise self._start_error
        self.seen_devices = {}
        self._task = asyncio.create_task(self._replay(), name="ble-replay")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.wait({task})  # a cancellation of our caller still propagates

    async def _replay(self) -> None:
        for item in self._adverts:
            self._report(item)
            await asyncio.sleep(0)  # let the consumer run, as a radio would
        self.finished.set()

    def _report(self, item: Recorded) -> None:
        if isinstance(item, Advertisement):
            if self._clock is not None:
                self._clock.set(item.at)
            address, data = item.address, advertisement_data(item)
        else:
            address, data = item
        if not self.is_allowed_uuid(data.service_uuids):
            return
        device = self.create_or_update_device(address, address, data.local_name, None, data)
        self.call_detection_callbacks(device, data)
