"""`rayon replay` wired to the world: customers from the store, outputs to files; with
`--publish` only, also to the database and the broker.

By default (`--dry-run` says the same) nothing is published and nothing is written to the
database: a trace's offers would go to real customers' offer topics.  With `--publish`, the
broker and its password file are checked first — before the trace is read — and each offer
is published as it is decided, in event-time order, on the trace's clock (so it goes out with
its whole expiry, as it would have live)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from collections.abc import Callable
from pathlib import Path
from typing import IO

from gateway.clock import ManualClock
from gateway.config.commandline import config_of
from gateway.config.model import Config
from gateway.deliver.connect import connect_link
from gateway.errors import InvalidInput, RuntimeFailure
from gateway.heap import tune_gc
from gateway.identity.model import CustomerRegistry
from gateway.offline.replay import ReplayStats, replay
from gateway.offline.writer import OutputWriter
from gateway.pipeline import Pipeline
from gateway.rules.load import load_rules
from gateway.sources.trace import read_trace
from gateway.store.persist import load_pools
from gateway.store.repo import Store


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `rayon replay`."""
    parser.add_argument("trace", help="trace file (JSON Lines, docs/trace.md)")
    parser.add_argument(
        "--publish",
        action="store_true",
        help="write to the database and publish each offer as it is decided, on the trace's "
        "clock (to the real customers' offer topics of the config's broker)",
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="publish nothing, write no database (the default)"
    )
    parser.add_argument("--fixes-out", help="write every position fix (JSON Lines)")
    parser.add_argument("--events-out", help="write every zone and visit event (JSON Lines)")
    parser.add_argument("--offers-out", help="write every offer (JSON Lines)")


def run(args: argparse.Namespace) -> int:
    """`rayon replay` with the config that -c names."""
    return run_replay(config_of(args), args)


def run_replay(config: Config, args: argparse.Namespace) -> int:
    trace = Path(args.trace)
    if args.publish and args.dry_run:
        print(
            "rayon replay: --publish and --dry-run contradict each other: keep one", file=sys.stderr
        )
        return 2
    if not trace.is_file():
        raise InvalidInput(f"{trace}: no such trace file (record one, or `rayon simulate -o`)")
    tune_gc()
    if args.publish:
        return asyncio.run(_replay_publishing(config, args))
    store = Store(config.database.url)
    try:
        stats = _replay_into(config, store, args, None)
    finally:
        store.close()
    _report(stats, args)
    return 0


async def _replay_publishing(config: Config, args: argparse.Namespace) -> int:
    """Connect first (the password file, the broker), then replay in a worker thread that
    hands each offer, once written, to the publisher on this loop and waits for it."""
    from gateway.deliver.outbox import DrainResult, OutboxPublisher
    from gateway.topics import Topics

    try:
        # no last will: a replay cut short must not say the store's running gateway is offline
        link = await connect_link(config, client_suffix="replay", will=False)
    except RuntimeFailure as exc:
        print(
            f"rayon replay: {exc}; nothing was replayed: fix the broker settings of "
            f"{config.path} (`rayon doctor` checks them), or replay without --publish",
            file=sys.stderr,
        )
        return 3
    store = Store(config.database.url)
    try:
        clock = ManualClock(0.0)
        topics = Topics(config.mqtt.topic_prefix, config.store.id)
        publisher = OutboxPublisher(store, link, topics, clock, config.store.timezone)
        loop = asyncio.get_running_loop()
        done: list[DrainResult] = []

        def publish(at: float) -> None:  # on the replay's thread: wait until published
            clock.set(max(clock.now(), at))
            done.append(asyncio.run_coroutine_threadsafe(publisher.drain(), loop).result())

        stats = await asyncio.to_thread(_replay_into, config, store, args, publish)
        _report(stats, args)
        if stats.last_at is not None:
            clock.set(max(clock.now(), stats.last_at))
            done.append(await publisher.drain())
    finally:
        await link.disconnect()
        store.close()
    sent, failed = sum(d.sent for d in done), sum(d.failed for d in done)
    expired = sum(d.expired for d in done)
    print(f"published {sent} offer(s) as decided; {expired} expired", file=sys.stderr)
    if failed:
        print(
            f"rayon replay: {failed} publish attempt(s) failed: the offers stay pending in the "
            "outbox of the database (a running gateway sends them if still valid)",
            file=sys.stderr,
        )
        return 3
    return 0


def _replay_into(
    config: Config, store: Store, args: argparse.Namespace, publish: Callable[[float], None] | None
) -> ReplayStats:
    pools = load_pools(store)
    customers = CustomerRegistry(store.load_customers())
    pipeline = Pipeline(config, load_rules(config.rules_dir, config), customers, pools=pools)
    with contextlib.ExitStack() as stack:
        files: dict[str, IO[str] | None] = {
            key: stack.enter_context(open(path, "w", encoding="utf-8")) if path else None
            for key, path in (
                ("fixes", args.fixes_out),
                ("events", args.events_out),
                ("offers", args.offers_out),
            )
        }
        target = store if publish is not None else None
        writer = OutputWriter(config, target, files, pools, customers.by_device, publish)
        stats = replay(pipeline, read_trace(Path(args.trace)), writer)
        writer.flush()
    return stats


def _report(stats: ReplayStats, args: argparse.Namespace) -> None:
    say: Callable[[str], object] = lambda s: print(s, file=sys.stderr)  # noqa: E731
    say(
        f"replayed {stats.inputs} inputs ({stats.adverts} adverts) in {stats.seconds:.2f} s "
        f"= {stats.adverts_per_s:,.0f} adverts/s; {stats.bad_lines} bad line(s)"
    )
    say(
        f"{stats.fixes} fixes, {stats.events} events, {stats.offers} offers "
        f"(+{stats.holdout} holdout)"
        + ("" if args.publish else " — nothing published, no database written (--publish to)")
    )
    for rule, n in sorted(stats.offers_by_rule.items()):
        say(f"  {rule}: {n}")
