"""`rayon run`: the daemon's composition root, from the config to signals."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator

from gateway.clock import Clock, SystemClock
from gateway.config.model import AnchorKind, Config
from gateway.deliver.connect import connect_crm_link, connect_link
from gateway.deliver.mqtt import MqttLink
from gateway.runtime.app import Gateway, Source
from gateway.runtime.systemd import Notifier
from gateway.store.repo import Store
from gateway.topics import Topics

log = logging.getLogger(__name__)

LINK_QUEUE_SIZE = 5_000  # inbound messages paho may hold before the pump sorts them


def build_sources(config: Config, clock: Clock) -> list[Source]:
    """The Pi's own radio when the config enables it."""
    if config.sources.ble is None:
        return []
    from gateway.decode.privacy import PrivacyFilter
    from gateway.sources.ble import BleSource

    ble = config.sources.ble
    anchor = ble.anchor or next(a.id for a in config.anchors if a.kind is AnchorKind.SCANNER)
    ours = PrivacyFilter(config.identity.proximity_uuids, config.identity.eddystone_namespaces)
    # Foreign adverts are dropped in the scanner callback: never queued, never kept
    # (docs/design.md §1).
    return [
        BleSource(
            anchor,
            clock=clock,
            adapter=ble.adapter,
            scanning_mode=ble.scanning_mode,
            accept=ours.identify,
        )
    ]


@contextlib.asynccontextmanager
async def chain_sender(config: Config, store: Store) -> AsyncIterator[None]:
    """With `central.enabled`, send the store's journal to the chain's centre meanwhile, on
    a connection of its own (gateway/central/sender.py); else nothing, and nothing imported."""
    if not config.central.enabled:
        yield
        return
    from gateway.central.sender import ChainSender

    link = await connect_link(config, client_suffix="chain", will=False)
    topics = Topics(config.mqtt.topic_prefix, config.store.id)
    task = asyncio.create_task(ChainSender(store, link, topics, config.central).run(), name="chain")
    task.add_done_callback(_report_end)
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await link.disconnect()


def _report_end(task: asyncio.Task[None]) -> None:
    """A sender that stopped by itself is a bug: say so (the gateway goes on without it; the
    journal keeps everything for the next start)."""
    if not task.cancelled() and task.exception() is not None:
        log.error("the chain's sender stopped: %r; restart rayon run", task.exception())


async def run_daemon(config: Config) -> int:
    """`rayon run`: until SIGTERM or SIGINT."""
    clock = SystemClock()
    store = Store(config.database.url, journal=config.central.enabled)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        link = await connect_link(config, persistent=True, queue_size=LINK_QUEUE_SIZE)
        crm_link: MqttLink | None = None
        failed = True
        try:
            crm_link = await connect_crm_link(config)
            gateway = await Gateway.start(
                config,
                store=store,
                link=link,
                crm_link=crm_link,
                clock=clock,
                sources=build_sources(config, clock),
                notifier=Notifier(),
            )
            loop.add_signal_handler(signal.SIGHUP, gateway.request_reload)
            async with chain_sender(config, store):
                await gateway.run(stop)
            failed = False
        finally:
            # exiting on an error: the broker publishes our will ("offline") even if the
            # gateway could not publish it itself
            await link.disconnect(with_will=failed)
            if crm_link is not None:
                await crm_link.disconnect()
    finally:
        store.close()
    return 0
