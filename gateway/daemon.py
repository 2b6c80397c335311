"""`rayon run`: the daemon's composition root, from the config to signals."""

from __future__ import annotations

import asyncio
import signal

from gateway.app import Gateway, Source
from gateway.clock import Clock, SystemClock
from gateway.config import AnchorKind, Config
from gateway.deliver.connect import connect_link
from gateway.store import Store
from gateway.systemd import Notifier


def build_sources(config: Config, clock: Clock) -> list[Source]:
    """The Pi's own radio when the config enables it."""
    if config.sources.ble is None:
        return []
    from gateway.decode import PrivacyFilter
    from gateway.sources.ble import BleSource

    ble = config.sources.ble
    anchor = ble.anchor or next(a.id for a in config.anchors if a.kind is AnchorKind.SCANNER)
    ours = PrivacyFilter(config.identity.proximity_uuids, config.identity.eddystone_namespaces)
    # Foreign adverts are dropped in the scanner callback: never queued, never kept (DESIGN §1).
    return [
        BleSource(
            anchor,
            clock=clock,
            adapter=ble.adapter,
            scanning_mode=ble.scanning_mode,
            accept=ours.identify,
        )
    ]


async def run_daemon(config: Config) -> int:
    """`rayon run`: until SIGTERM or SIGINT."""
    clock = SystemClock()
    store = Store(config.database.url)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        link = await connect_link(config, persistent=True)
        try:
            gateway = Gateway(
                config,
                store=store,
                link=link,
                clock=clock,
                sources=build_sources(config, clock),
                notifier=Notifier(),
            )
            loop.add_signal_handler(signal.SIGHUP, gateway.request_reload)
            await gateway.run(stop)
        finally:
            await link.disconnect()
    finally:
        store.close()
    return 0
