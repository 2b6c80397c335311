"""Shared runner of the atheris harnesses (docs/fuzzing.md); opt-in, never run by the tests.

Each harness module defines `SEEDS` (valid inputs to start from) and `test_one(data)`, which
feeds fuzzed bytes to one pipeline stage and lets through only that stage's documented refusal:
anything else that raises is a finding.  The modules import without atheris, so
tests/test_fuzz.py runs every `test_one` on its seeds and keeps the harnesses from rotting.

    .venv/bin/python fuzz/decode.py -max_total_time=60 [corpus-dir] [libFuzzer options]

Without a corpus directory the seeds are written to a fresh one under /tmp and its path is
printed, so that a second run can resume from what the first one found.
"""

from __future__ import annotations

import importlib
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def run(name: str, test_one: Callable[[bytes], None], seeds: Sequence[bytes]) -> None:
    """Instrument everything loaded so far (the gateway modules the harness imported), seed a
    corpus if none was given, and hand over to libFuzzer until it stops or finds a crash."""
    atheris: Any = importlib.import_module("atheris")
    argv = list(sys.argv)
    if not any(not arg.startswith("-") for arg in argv[1:]):
        corpus = Path(tempfile.mkdtemp(prefix=f"rayon-fuzz-{name}-"))
        for i, seed in enumerate(seeds):
            (corpus / f"seed-{i:02d}").write_bytes(seed)
        print(f"corpus: {corpus}", file=sys.stderr)
        argv.append(str(corpus))
    atheris.instrument_all()
    atheris.Setup(argv, test_one)
    atheris.Fuzz()
