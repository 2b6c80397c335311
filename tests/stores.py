"""Copies of the reference store (config.example.yaml) for tests: own database, own broker."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent


def reference_store(
    folder: Path, *, port: int = 1, rules_dir: str | None = None, **overrides: Any
) -> Path:
    """Write `folder/config.yaml`: the reference store with the broker at 127.0.0.1:`port`,
    a SQLite database in `folder`, the Pi's radio off and the shipped rules (or `rules_dir`,
    relative to `folder`); `overrides` replace top-level sections."""
    raw = yaml.safe_load((ROOT / "config.example.yaml").read_text(encoding="utf-8"))
    raw["mqtt"] = {"host": "127.0.0.1", "port": port, "topic_prefix": "rayon"}
    raw["database"] = {"url": f"sqlite:///{folder / 'rayon.db'}"}
    raw["rules_dir"] = rules_dir or str(ROOT / "rules")
    raw["sources"]["ble"] = False
    raw.pop("metrics", None)  # tests that want the endpoint give it a free port
    raw.update(overrides)
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    return path


def rayon(
    *args: str, stdin: str | None = None, cwd: Path = ROOT, timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    """Run the `rayon` command as a user would (`python -m gateway`), capturing its output."""
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args],
        cwd=cwd,
        input=stdin,
        text=True,
        capture_output=True,
        timeout=timeout,
        check=False,
    )
