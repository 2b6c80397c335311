"""`rayon_tooling.benchmarks.latency` runs on tiny sizes against a real Mosquitto and prints both
figures; no timing is asserted (the machine is shared)."""

from __future__ import annotations

import argparse
import asyncio
import io
import re
from pathlib import Path

import pytest

from gateway.errors import RuntimeFailure
from rayon_tooling.benchmarks import latency

pytestmark = pytest.mark.mqtt


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert latency.percentile(values, 50) == 50.0
    assert latency.percentile(values, 99) == 99.0
    assert latency.percentile([3.0], 99) == 3.0


def test_bench_latency_prints_both_figures() -> None:
    args = argparse.Namespace(customers=3, offers=40, runs=1, window=8)
    out = io.StringIO()
    assert latency.bench_latency(args, out) == 0
    text = out.getvalue()
    assert re.search(r"advert → PUBACK: p50 [\d.]+ ms, p99 [\d.]+ ms .*3 offers", text), text
    assert re.search(r"outbox at QoS 1: [\d,]+ offers/s .*1 runs of 40, window 8", text), text


def test_measure_gives_one_latency_per_customer_and_every_offer_sent() -> None:
    figures = latency.measure(customers=2, offers=25, runs=2, window=4)
    assert len(figures.latencies) == 2 and all(x > 0 for x in figures.latencies)
    assert len(figures.rates) == 2 and all(r > 0 for r in figures.rates)


def test_a_failing_nodes_process_says_why(tmp_path: Path) -> None:
    config = latency.write_config(tmp_path, 1)  # the nodes cannot load it once it is gone
    config.path.unlink()
    with pytest.raises(RuntimeFailure, match=r"scanner nodes' process failed \(1\): .*config"):
        asyncio.run(latency._nodes_process(config, 1))
