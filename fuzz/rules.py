"""atheris harness: the rule loader accepts a rule file or raises `ConfigError`, nothing else.

    .venv/bin/python fuzz/rules.py -max_total_time=60

The fuzzed bytes replace one rule file in a copy of the shipped rules/ (the first byte picks
which), so references to zones, code pools and the policy stay resolvable.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path

from harness import ROOT, run

from gateway.config.load import load_config
from gateway.errors import ConfigError
from gateway.rules.load import load_rules

CONFIG = load_config(ROOT / "config.example.yaml")
FILES = sorted(p.name for p in (ROOT / "rules").glob("*.yaml"))
SEEDS = [bytes([i]) + (ROOT / "rules" / name).read_bytes() for i, name in enumerate(FILES)]
_TMP = tempfile.mkdtemp(prefix="rayon-fuzz-rules-")
atexit.register(shutil.rmtree, _TMP, ignore_errors=True)
FOLDER = Path(_TMP) / "rules"
shutil.copytree(ROOT / "rules", FOLDER)


def test_one(data: bytes) -> None:
    """Load the rules with one fuzzed file: a RuleSet or a ConfigError."""
    if not data:
        return
    target = FOLDER / FILES[data[0] % len(FILES)]
    original = target.read_bytes()
    target.write_bytes(data[1:])
    try:
        load_rules(FOLDER, CONFIG)
    except ConfigError:
        pass
    finally:
        target.write_bytes(original)


if __name__ == "__main__":
    run("rules", test_one, SEEDS)
