"""`rayon demo` works offline: no broker answers, so it embeds one, and offers reach the phone."""

from __future__ import annotations

from pathlib import Path

from tests.broker import free_port
from tests.stores import rayon, reference_store

ROOT = Path(__file__).resolve().parent.parent


def test_demo_runs_offline_with_its_embedded_broker(tmp_path: Path) -> None:
    config = reference_store(tmp_path, port=free_port())
    result = rayon(
        "demo",
        "-c",
        str(config),
        "--shoppers",
        "20",
        "--minutes",
        "12",
        "--speed",
        "120",
        "--seed",
        "7",
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "using an embedded broker" in out
    assert "in store:" in out  # the live view
    phone_lines = [line for line in out.splitlines() if "📱" in line]
    summary = out.split("Summary per rule")[1]
    assert phone_lines, out
    assert f"The phone received {len(phone_lines)} offer(s)" in summary
    sent = sum(int(line.split()[1]) for line in summary.splitlines()[1:] if " / " in line)
    assert sent == len(phone_lines)
