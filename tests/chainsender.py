"""A store's store-and-forward sender alone, as a process that a test can `kill -9`:
`python -m tests.chainsender --db URL --port P --store S [--batch N --in-flight N
--resend-after S]` sends the store database's journal through the store broker on
127.0.0.1:P until killed (what `rayon run` does with `central.enabled`, without the rest)."""

from __future__ import annotations

import argparse
import asyncio
import logging

from gateway.central.sender import ChainSender
from gateway.config.model import CentralConfig
from gateway.deliver.mqtt import MqttLink
from gateway.store.repo import Store
from gateway.topics import Topics


async def main(args: argparse.Namespace) -> None:
    store = Store(args.db, journal=True)
    config = CentralConfig(
        enabled=True, batch=args.batch, in_flight=args.in_flight, resend_after=args.resend_after
    )
    link = MqttLink("127.0.0.1", args.port, f"rayon-{args.store}-chain")
    await link.connect()
    await ChainSender(store, link, Topics("rayon", args.store), config).run()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--store", required=True)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--in-flight", type=int, default=8)
    parser.add_argument("--resend-after", type=float, default=30.0)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    asyncio.run(main(parser.parse_args()))
