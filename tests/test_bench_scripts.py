"""The scripts of bench/ run and print their table (tiny sizes; no timing is asserted)."""

from __future__ import annotations

import subprocess
import sys

from tests.stores import ROOT


def test_bench_retention_deletes_what_is_past_retention_and_prints_its_figures() -> None:
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "bench_retention.py"),
            "--rows",
            "2000",
            "--runs",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    # positions i = 1001..1999 of 2,000 (every 86.4 s back) are older than 24 h, and exits
    # i = 101..199 of 200 (every 0.9 day back) older than 90 days: 999 + 99
    assert lines[0] == "retention on SQLite: 1,098 rows deleted per run, 1 runs"
    assert lines[1].lstrip().startswith("deleted/s  median") and "longest step" in lines[2]
