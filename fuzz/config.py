"""atheris harness: the config loader accepts a file or raises `ConfigError`, nothing else.

    .venv/bin/python fuzz/config.py -max_total_time=60

Seeded with config.example.yaml, so the mutations start from a complete, valid store.
"""

from __future__ import annotations

import atexit
import contextlib
import shutil
import tempfile
from pathlib import Path

from harness import ROOT, run

from gateway.config.load import load_config
from gateway.errors import ConfigError

SEEDS = [(ROOT / "config.example.yaml").read_bytes()]
_TMP = tempfile.mkdtemp(prefix="rayon-fuzz-config-")
atexit.register(shutil.rmtree, _TMP, ignore_errors=True)
SCRATCH = Path(_TMP) / "config.yaml"


def test_one(data: bytes) -> None:
    """Load one fuzzed config file: a Config or a ConfigError."""
    SCRATCH.write_bytes(data)
    with contextlib.suppress(ConfigError):
        load_config(SCRATCH)


if __name__ == "__main__":
    run("config", test_one, SEEDS)
