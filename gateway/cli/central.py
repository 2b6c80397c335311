"""`rayon central`: one of the chain's collectors, until SIGTERM or SIGINT
(gateway/central/collector.py; deploy/central/ has its unit and the brokers' configs).

It reads no config.yaml: a collector belongs to no store.  The database url comes from
--db or $RAYON_CENTRAL_DB (a file keeps the password out of `ps`)."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
from pathlib import Path

from gateway.config.model import TlsConfig
from gateway.errors import RuntimeFailure, UsageError

DB_ENV = "RAYON_CENTRAL_DB"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `rayon central`."""
    parser.add_argument("--db", help=f"PostgreSQL url (default ${DB_ENV})")
    parser.add_argument("--host", default="localhost", help="the central broker (localhost)")
    parser.add_argument("--port", type=int, default=1883, help="its port (1883)")
    parser.add_argument("--prefix", default="rayon", help="the stores' topic prefix (rayon)")
    parser.add_argument("--client-id", help="default rayon-central-<host>-<pid>")
    parser.add_argument("--username", help="broker login")
    parser.add_argument("--password-file", type=Path, help="file holding the broker password")
    parser.add_argument("--tls-ca", type=Path, help="the broker's CA (turns TLS on)")
    parser.add_argument("--tls-cert", type=Path, help="this collector's client certificate")
    parser.add_argument("--tls-key", type=Path, help="its key")
    parser.add_argument(
        "--backfill-after",
        type=float,
        default=2.0,
        help="seconds a store's records wait beyond its mark before it is asked again (2)",
    )
    parser.add_argument("--workers", type=int, default=2, help="database threads (2)")
    parser.add_argument(
        "--retention-days", type=float, help="delete records older than this (default: keep)"
    )


def run(args: argparse.Namespace) -> int:
    """Collect until SIGTERM or SIGINT."""
    url = args.db or os.environ.get(DB_ENV)
    if not url:
        raise RuntimeFailure(f"no central database: give --db postgresql+psycopg://… or ${DB_ENV}")
    if args.workers < 1 or args.backfill_after <= 0:
        raise UsageError("--workers must be at least 1 and --backfill-after above 0")
    if args.retention_days is not None and args.retention_days < 1:
        raise UsageError(
            f"--retention-days {args.retention_days:g} would delete recent records: give at "
            "least 1 (e.g. 400), or leave it out to keep everything"
        )
    return asyncio.run(_collect(args, url))


async def _collect(args: argparse.Namespace, url: str) -> int:
    from gateway.central.collector import Collector
    from gateway.central.ingest import CentralDb
    from gateway.deliver.mqtt import MqttLink
    from gateway.deliver.mqtterrors import LinkError

    db = CentralDb(url)
    password = args.password_file.read_text().strip() if args.password_file else None
    tls = TlsConfig(args.tls_ca, args.tls_cert, args.tls_key) if args.tls_ca else None
    client_id = args.client_id or f"rayon-central-{socket.gethostname()}-{os.getpid()}"
    link = MqttLink(
        args.host,
        args.port,
        client_id,
        username=args.username,
        password=password,
        tls=tls,
        queue_size=2000,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    retention = args.retention_days * 86400 if args.retention_days else None
    try:
        try:
            await link.connect()
        except LinkError as exc:
            raise RuntimeFailure(
                f"no connection to the central broker at {args.host}:{args.port} "
                f"({exc.__cause__ or exc}); check --host, --port, the --tls-* files and that "
                "the broker runs"
            ) from exc
        collector = Collector(
            db,
            link,
            args.prefix,
            backfill_after=args.backfill_after,
            workers=args.workers,
            retention=retention,
        )
        task = asyncio.create_task(collector.run(), name="central")
        await asyncio.wait([task, asyncio.create_task(stop.wait())], return_when="FIRST_COMPLETED")
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await link.disconnect()
        if not task.cancelled() and task.exception() is not None:
            raise RuntimeFailure(f"the collector stopped: {task.exception()}")
    finally:
        db.close()
    return 0
