"""`rayon bench`: the figures the targets are checked against, printed, never asserted.

Each benchmark takes the loaded config, measures side by side in one run, and prints medians
of several repetitions; the machines are shared and noisy (docs/performance.md).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from gateway.errors import RuntimeFailure


def python_child(args: Sequence[str], what: str) -> str:
    """Run this interpreter with `args` in a fresh process (so that what it measures is its
    own: memory, start-up); its standard output, or RuntimeFailure naming `what` with the
    last line of its standard error."""
    done = subprocess.run([sys.executable, *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines() or ["(no output)"]
        raise RuntimeFailure(f"{what} failed ({done.returncode}): {lines[-1]}")
    return done.stdout


@dataclass(frozen=True, slots=True)
class SuiteRow:
    """One line of the table; `met` is None when there is no target or no measure."""

    name: str
    value: str
    target: str
    met: bool | None
    command: str
