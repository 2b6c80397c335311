"""What the console's `console/positions` message costs against the pipeline it rides on.

    .venv/bin/python bench/bench_console_feed.py [--devices 5000] [--seconds 5] [--runs 5]

The synthetic store (`rayon_tooling.benchmarks.workload`, every customer consenting) with
`--devices` shoppers walking: their trace is fed through the pipeline (CPU seconds per second
of trace: the pipeline's own cost at that crowd), then the gateway's `LiveFeed` builds and
encodes the positions message from the pipeline's zone tracker, once per simulated second as
`rayon run` does (pseudonyms kept between rounds, as the gateway keeps them).  Prints each
figure's median of `--runs` and the positions message's share of the pipeline's CPU.  The
broker's side (the bytes on the socket) is not counted; the message's size is printed.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path
from typing import cast

from gateway.clock import ManualClock
from gateway.deliver.mqtt import MqttLink
from gateway.identity.model import CustomerRegistry
from gateway.offline.replay import replay
from gateway.pipeline import Output, Pipeline
from gateway.runtime.livefeed import LiveFeed
from gateway.topics import Topics
from rayon_tooling.benchmarks.workload import build


class Sink:
    """Stands for the MQTT link: keeps the size of the last message published."""

    def __init__(self) -> None:
        self.size = 0

    async def publish(self, topic: str, payload: bytes, qos: int = 0, retain: bool = False) -> None:
        self.size = len(payload)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=5000)
    parser.add_argument("--seconds", type=float, default=5.0, help="of trace fed first")
    parser.add_argument("--runs", type=int, default=5, help="positions messages timed")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        workload = build(Path(folder), rules=10, devices=args.devices)
        trace = workload.adverts(args.seconds)
        pipeline = Pipeline(workload.config, workload.rules, CustomerRegistry(workload.customers))
        cpu = time.process_time()
        replay(pipeline, trace, _ignore, flush=False)
        pipeline_s = (time.process_time() - cpu) / args.seconds  # CPU s per second of trace
    sink = Sink()
    clock = ManualClock(trace[-1].at)
    tz = workload.config.store.timezone
    feed = LiveFeed(cast(MqttLink, sink), Topics("rayon", "bench"), clock, tz, b"k" * 32)
    first, *times = asyncio.run(_rounds(feed, pipeline, clock, 1 + args.runs))
    message_s = statistics.median(times)
    print(f"{args.devices:,} devices, {len(trace):,} adverts over {args.seconds:g} s of trace")
    print(f"pipeline            {pipeline_s * 1000:8.1f} ms CPU per second of trace")
    print(f"positions message   {message_s * 1000:8.1f} ms CPU (median of {args.runs}), ", end="")
    print(f"{first * 1000:.1f} ms the first (every pseudonym new), {sink.size:,} bytes")
    print(f"share               {message_s / pipeline_s:8.1%} of the pipeline's CPU")
    return 0


def _ignore(_out: Output) -> None:
    """The replay's outputs are not written: the pipeline alone is timed."""


async def _rounds(feed: LiveFeed, pipeline: Pipeline, clock: ManualClock, n: int) -> list[float]:
    """CPU seconds of `n` positions rounds, the clock one second on before each."""
    out = []
    for _ in range(n):
        clock.advance(1.0)
        cpu = time.process_time()
        await feed.positions(pipeline.zones, pipeline.customers)
        out.append(time.process_time() - cpu)
    return out


if __name__ == "__main__":
    raise SystemExit(main())
