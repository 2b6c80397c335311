"""bench/bench_chain.py runs on tiny sizes and prints its figures (no timing is asserted)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.stores import ROOT

pytestmark = [pytest.mark.mqtt, pytest.mark.timeout(300)]


def test_bench_chain_prints_ingest_per_collector_and_the_catch_up(postgres_url: str) -> None:
    env = {**os.environ, "RAYON_TEST_POSTGRES_URL": postgres_url}
    args = ["--stores", "2", "--events", "600", "--outage", "600", "--runs", "1"]
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "bench_chain.py"), *args],
        capture_output=True,
        text=True,
        timeout=280,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "chain collector: 2 stores x 600 events, batches of 500"
    assert (
        lines[1].startswith("  1 collector(s): ") and "per collector (1,200 events); " in lines[1]
    )
    assert lines[2].startswith("  2 collector(s): ")
    assert lines[3].startswith("catch-up of a 600-event WAN outage: ")
