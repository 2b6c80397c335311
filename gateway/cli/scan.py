"""`rayon scan`: a live scan of this machine's Bluetooth adapter, decoded, as JSON Lines.

The scan is the daemon's own (`gateway.sources.ble.BleSource`, bleak's real `BleakScanner`),
so what it prints is what `rayon run` would hear: one line per advert with its time, address,
RSSI, the decoded beacon (`gateway.decode`, with its canonical id), the scanner anchor this radio
stands for and, when the beacon is one of the config's store beacons, that anchor.  Beacons that
are not the store's are refused in the scanner callback, as the daemon does, unless `--all`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TextIO

from bleak.backends.scanner import BaseBleakScanner

from gateway.cli.decode import beacon_to_json
from gateway.clock import Clock, SystemClock
from gateway.config.commandline import config_of
from gateway.config.model import AnchorKind, Config, ScanningMode
from gateway.decode.beacons import decode_all
from gateway.decode.privacy import PrivacyFilter
from gateway.errors import InvalidInput
from gateway.events import Advertisement
from gateway.sources.ble import BleSource

DEFAULT_SECONDS = 10.0


@dataclass(frozen=True, slots=True)
class ScanOptions:
    """What to scan with, for how long, and whether to print every advert."""

    adapter: str | None = None  # None: the config's sources.ble.adapter
    seconds: float = DEFAULT_SECONDS  # 0: until stopped
    everything: bool = False


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `rayon scan`."""
    parser.add_argument(
        "--seconds",
        type=float,
        default=DEFAULT_SECONDS,
        help=f"how long to scan (default {DEFAULT_SECONDS:g}; 0 = until Ctrl-C)",
    )
    parser.add_argument(
        "--adapter", help="Bluetooth adapter, e.g. hci0 (default: sources.ble.adapter)"
    )
    parser.add_argument(
        "--all",
        dest="everything",
        action="store_true",
        help="print every advert heard, not only the store's beacons",
    )


def run(args: argparse.Namespace) -> int:
    """Scan until --seconds have passed or Ctrl-C; 0, or 3 when Bluetooth is unavailable."""
    if args.seconds < 0:
        raise InvalidInput(f"--seconds must be 0 (until Ctrl-C) or more, not {args.seconds:g}")
    options = ScanOptions(args.adapter, args.seconds, args.everything)
    return asyncio.run(_scan_until_interrupted(config_of(args), options))


async def _scan_until_interrupted(config: Config, options: ScanOptions) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):  # Ctrl-C ends the scan, not the process
        loop.add_signal_handler(sig, stop.set)
    return await scan(config, options, sys.stdout, clock=SystemClock(), stop=stop)


async def scan(
    config: Config,
    options: ScanOptions,
    out: TextIO,
    *,
    clock: Clock,
    stop: asyncio.Event | None = None,
    backend: type[BaseBleakScanner] | None = None,
    backend_kwargs: Mapping[str, Any] | None = None,
) -> int:
    """Print what the adapter hears until `options.seconds` have passed or `stop` is set; 0.

    RuntimeFailure (exit 3) says what to fix when Bluetooth cannot be used.  `backend` and
    `backend_kwargs` go to bleak's `BleakScanner` (tests replay recorded adverts through it).
    """
    ours = PrivacyFilter(config.identity.proximity_uuids, config.identity.eddystone_namespaces)
    ble = config.sources.ble
    source = BleSource(
        scanner_anchor(config, options.adapter),
        clock=clock,
        adapter=options.adapter or (ble.adapter if ble else "hci0"),
        scanning_mode=ble.scanning_mode if ble else ScanningMode.ACTIVE,
        accept=None if options.everything else ours.identify,
        backend=backend,
        backend_kwargs=backend_kwargs,
    )
    stores = {a.beacon: a.id for a in config.anchors if a.beacon is not None}
    async with source:
        timer = asyncio.create_task(_stop_after(source, options.seconds, stop), name="scan-timer")
        try:
            async for adv in source.advertisements():
                out.write(json.dumps(scan_record(adv, stores), separators=(",", ":")) + "\n")
                out.flush()
        finally:
            timer.cancel()
            await asyncio.wait({timer})
    return 0


async def _stop_after(source: BleSource, seconds: float, stop: asyncio.Event | None) -> None:
    """Stop `source` after `seconds` (0: never) or when `stop` is set, whichever comes first."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for((stop or asyncio.Event()).wait(), seconds or None)
    await source.stop()


def scanner_anchor(config: Config, adapter: str | None) -> str:
    """The scanner anchor the Pi's radio stands for, as in `rayon run` (else the adapter)."""
    ble = config.sources.ble
    if ble is not None and ble.anchor:
        return ble.anchor
    scanners = (a.id for a in config.anchors if a.kind is AnchorKind.SCANNER)
    return next(scanners, adapter or (ble.adapter if ble else "hci0"))


def scan_record(adv: Advertisement, store_beacons: Mapping[str, str]) -> dict[str, Any]:
    """One output line: the advert, its first decoded beacon (or None) and the store beacon
    anchor that beacon is, if any (`store_beacons` maps canonical device ids to anchor ids)."""
    found = decode_all(adv.manufacturer_data, adv.service_data)
    beacon = beacon_to_json(found[0]) if found else None
    beacon_id = beacon.get("id") if beacon else None
    return {
        "at": round(adv.at, 3),
        "address": adv.address,
        "rssi": adv.rssi,
        "beacon": beacon,
        "anchor": adv.anchor,
        "beacon_anchor": store_beacons.get(beacon_id) if beacon_id else None,
    }
