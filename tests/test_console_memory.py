"""A login's 16 MB scrypt block does not stay in the console's resident memory
(gateway/console/memory.py; bench/bench_console.py measures the whole console)."""

from __future__ import annotations

import subprocess
import sys

import pytest

PROBE = """
import sys
from concurrent.futures import ThreadPoolExecutor
from gateway.console.memory import return_large_blocks
from gateway.console.users import hash_password, verify_password

def rss_mb():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS"):
            return int(line.split()[1]) / 1024

tuned = sys.argv[1] == "tuned" and return_large_blocks()
encoded = hash_password("correct horse battery")
before = rss_mb()
with ThreadPoolExecutor(1) as pool:  # as the console's worker thread checks each login
    for _ in range(4):
        assert pool.submit(verify_password, encoded, "correct horse battery").result()
print(tuned, round(rss_mb() - before, 1))
"""


def grown(mode: str) -> tuple[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True
    ).stdout.split()
    return out[0], float(out[1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc, /proc")
def test_logins_leave_no_scrypt_block_in_the_resident_set() -> None:
    tuned, growth = grown("tuned")
    assert tuned == "True"
    assert growth < 8.0, f"{growth} MB kept after 4 logins"
    _, untuned = grown("plain")  # what the tuning is for: glibc keeps the 16 MB block
    assert untuned >= 12.0, f"{untuned} MB: the probe no longer shows glibc's adaptive threshold"
