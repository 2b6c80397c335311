"""What the rolling recording (config `record`) costs the daemon: a simulated trace of
consenting shoppers through the pipeline with and without the recorder, alternating, on the
same trace; the bytes written per device-hour, and the compressed bytes held between two
flushes.

    .venv/bin/python bench/bench_recording.py [--shoppers 200] [--minutes 20] [--runs 3]
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from collections.abc import Iterator  # noqa: E402

from gateway.clock import parse_local_time  # noqa: E402
from gateway.config.load import load_config  # noqa: E402
from gateway.config.model import Config  # noqa: E402
from gateway.events import Advertisement  # noqa: E402
from gateway.identity.model import (  # noqa: E402
    Consent,
    Customer,
    CustomerRegistry,
)
from gateway.offline.replay import replay  # noqa: E402
from gateway.pipeline import Pipeline  # noqa: E402
from gateway.rules.load import load_rules  # noqa: E402
from gateway.rules.model import RuleSet  # noqa: E402
from gateway.sim.customers import demo_customers  # noqa: E402
from gateway.sim.simulator import StoreSimulator  # noqa: E402
from gateway.store.recording import Recorder, read_recording  # noqa: E402

FLUSH_S = 1.0  # as the daemon (gateway/runtime/app.py RECORD_EVERY_S)


def one_run(
    config: Config,
    rules: RuleSet,
    people: list[Customer],
    trace: list[Advertisement],
    folder: Path | None,
) -> tuple[float, int, int]:
    """CPU seconds, bytes written, most characters held at a flush."""
    pipeline = Pipeline(config, rules, CustomerRegistry(people))
    recorder = Recorder(folder, config.record) if folder is not None else None
    held = [0]
    if recorder is not None:
        pipeline.keep = recorder.keep
    next_flush = [trace[0].at + FLUSH_S]

    def sink(_: object) -> None:
        return None

    def items() -> Iterator[Advertisement]:
        for item in trace:
            if recorder is not None and item.at >= next_flush[0]:
                chunks = recorder.take()
                held[0] = max(held[0], sum(len(line) for _, lines in chunks for line in lines))
                recorder.flush(chunks)
                next_flush[0] += FLUSH_S
            yield item

    started = time.process_time()
    replay(pipeline, items(), sink, flush=False)
    if recorder is not None:
        recorder.flush(recorder.take())
    cpu = time.process_time() - started
    written = recorder.counters.get("record_bytes", 0) if recorder is not None else 0
    return cpu, written, held[0]


def device_hours(folder: Path) -> float:
    import json

    span: dict[str, list[float]] = {}
    for _, line in read_recording(folder):
        obj = json.loads(line)
        key = json.dumps(obj.get("adv", {}).get("manufacturer_data")) or obj["mqtt"]["topic"]
        first_last = span.setdefault(key, [obj["at"], obj["at"]])
        first_last[1] = obj["at"]
    return sum(b - a for a, b in span.values()) / 3600.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shoppers", type=int, default=200)
    parser.add_argument("--minutes", type=float, default=20.0)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    config = load_config(ROOT / "config.example.yaml")
    config = dataclasses.replace(config, rules_dir=ROOT / "rules")
    start = parse_local_time("2026-03-03T15:00:00", config.store.timezone)
    sim = StoreSimulator(config, args.shoppers, args.minutes, 7, start)
    trace = sorted(sim.adverts(), key=lambda a: a.at)
    everyone = Consent(instore_location=True, marketing_push=True)
    people = [dataclasses.replace(c, consent=everyone) for c in demo_customers(sim.devices(), 7)]
    rules = load_rules(config.rules_dir, config)
    off, on, written, held, hours = [], [], 0, 0, 0.0
    for _ in range(args.runs):
        off.append(one_run(config, rules, people, trace, None)[0])
        with tempfile.TemporaryDirectory() as tmp:
            cpu, written, held = one_run(config, rules, people, trace, Path(tmp))
            hours = device_hours(Path(tmp))
            on.append(cpu)
    a, b = statistics.median(off), statistics.median(on)
    print(f"recording cost: {len(trace):,} adverts, {args.shoppers} consenting shoppers, "
          f"{args.minutes:g} min, {args.runs} runs")  # fmt: skip
    print(f"  pipeline CPU s  median without {a:.2f}  with {b:.2f}  (+{100 * (b / a - 1):.1f} %)")
    per_line = written / max(1, len(trace))
    print(f"  written {written:,} bytes = {written / max(hours, 1e-9):,.0f} bytes per "
          f"device-hour ({per_line:.1f} bytes per advert)")  # fmt: skip
    print(f"  held between two flushes ({FLUSH_S:g} s) at most: {held:,} characters of lines")
    return 0


if __name__ == "__main__":
    sys.exit(main())
