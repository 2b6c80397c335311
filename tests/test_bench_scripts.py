"""The scripts of bench/ run and print their table (tiny sizes; no timing is asserted)."""

from __future__ import annotations

import subprocess
import sys

import pytest

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


def test_bench_grid_prints_the_cost_of_a_fix_per_variant() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "bench_grid.py"), "--fixes", "5", "--runs", "1"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "34 × 44 cells, 6 links heard, a fix every 0.5 s"
    assert [line.split("  ")[0] for line in lines[1:]] == [
        "plain log-normal",
        "clipped at 2.5 σ",
        "clipped, walls",
        "radio map belief",
    ]
    assert all("µs per fix, median of 1" in line for line in lines[1:])


def test_bench_console_feed_prints_the_positions_message_s_share_of_the_pipeline() -> None:
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "bench_console_feed.py"),
            "--devices",
            "30",
            "--seconds",
            "2",
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
    assert lines[0].startswith("30 devices, ") and lines[0].endswith(" over 2 s of trace")
    assert [line.split()[0] for line in lines[1:]] == ["pipeline", "positions", "share"]
    assert "(median of 1)" in lines[2] and lines[2].endswith(" bytes")


TINY_HOSTILE = ("--runs", "1", "--rate", "500", "--seconds", "1", "--spoofed", "6000")


@pytest.mark.mqtt
def test_bench_hostile_runs_the_flood_and_the_invented_ids_and_prints_its_figures() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "bench_hostile.py"), *TINY_HOSTILE],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("flood 500 feedback/s for 1 s with 30 consent withdrawals")
    run = lines[2].split()
    assert run[2] == "30/30" and run[3] == "0" and run[4] == "yes", lines
    assert lines[-1].startswith("median: ") and "30/30 withdrawals applied" in lines[-1]


def test_import_footprint_counts_what_rayon_run_loads() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "import_footprint.py")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    header, row = result.stdout.splitlines()
    assert "run --help" in header
    help_ours = int(row.split()[1])
    assert help_ours < 20, row  # the parser alone: no command's module, no tooling


def test_bench_recording_prints_its_cost_and_bytes_per_device_hour() -> None:
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "bench_recording.py"),
            "--shoppers",
            "5",
            "--minutes",
            "1",
            "--runs",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("recording cost: ") and "5 consenting shoppers" in lines[0]
    assert "without" in lines[1] and "bytes per device-hour" in lines[2]


def bench(script: str, *args: str) -> list[str]:
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / script), *args],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


@pytest.mark.mqtt
def test_bench_broker_crash_kills_the_broker_mid_burst_and_prints_each_runs_figures() -> None:
    lines = bench("bench_broker_crash.py", "--runs", "1", "--per-token", "5", "--kill-after", "80")
    assert lines[0].startswith("broker SIGKILL mid-burst, 1 runs; save policy: autosave_on")
    run = lines[2].split()
    assert run[:3] == ["1", "200", "80"] and int(run[3]) <= 80, lines
    assert lines[-1].startswith("all runs: 0 lost,") and lines[-1].endswith(" 0 late"), lines


@pytest.mark.mqtt
def test_bench_broker_disk_measures_what_the_shipped_persistence_writes() -> None:
    lines = bench("bench_broker_disk.py", "--customers", "0,100", "--offers", "20")
    assert lines[0].startswith("shipped: autosave_on_changes true; autosave_interval 1")
    small, large = (line.split("|") for line in lines[2:4])
    assert (small[0].split()[0], large[0].split()[0]) == ("0", "100")
    assert int(large[0].split()[1]) > int(small[0].split()[1])  # each retained customer
    assert small[4].split() == ["0", "0"], lines  # idle: no save, nothing written


@pytest.mark.mqtt
def test_bench_console_prints_load_time_latency_and_memory(chromium_binary: object) -> None:
    args = ("--devices", "20", "--runs", "1", "--events", "10", "--end-to-end", "15")
    lines = bench("bench_console.py", *args)
    assert lines[0].startswith("run 1: map with 20 dots "), lines
    assert lines[-4].startswith("map load with 20 tracked devices: median "), lines
    assert lines[-3].startswith("event to page: p50 ") and lines[-3].endswith("(10 events)")
    assert lines[-2].startswith("event to page, end to end (real-time store, 15 s): p50 ")
    assert lines[-1].startswith("console memory: VmRSS "), lines
