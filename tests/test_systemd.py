"""sd_notify under a fake systemd: `rayon run` says READY, pings the watchdog, says STOPPING."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from gateway.runtime.systemd import Notifier
from tests.broker import Mosquitto, Subscriber
from tests.stores import ROOT, reference_store

pytestmark = pytest.mark.mqtt


def listen(path: Path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(0.2)
    return sock


def received(sock: socket.socket, until: Callable[[list[str]], bool], timeout: float) -> list[str]:
    got: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not until(got):
        with contextlib.suppress(TimeoutError):
            got.extend(sock.recv(4096).decode().splitlines())
    return got


def test_notifier_is_silent_outside_systemd() -> None:
    n = Notifier({})
    assert not n.enabled and not n.ready("x") and n.watchdog_s is None


def test_notifier_reads_the_watchdog_interval_for_this_process(tmp_path: Path) -> None:
    env = {"NOTIFY_SOCKET": str(tmp_path / "n"), "WATCHDOG_USEC": "30000000"}
    assert Notifier(env).watchdog_s == 15.0
    assert Notifier({**env, "WATCHDOG_PID": "1"}).watchdog_s is None  # for another process


def test_rayon_run_speaks_sd_notify(
    tmp_path: Path, mosquitto: Mosquitto, subscriber: Callable[..., Subscriber]
) -> None:
    sock = listen(tmp_path / "notify")
    config = reference_store(tmp_path, port=mosquitto.port)
    env = {**os.environ, "NOTIFY_SOCKET": str(tmp_path / "notify"), "WATCHDOG_USEC": "2000000"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway", "run", "-c", str(config)],
        cwd=ROOT,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        got = received(sock, lambda g: "READY=1" in g and g.count("WATCHDOG=1") >= 2, 20)
        assert "READY=1" in got and got.count("WATCHDOG=1") >= 2, got
        status = next(line for line in got if line.startswith("STATUS="))
        assert "rules" in status and "customers" in status
        proc.terminate()
        proc.communicate(timeout=10)
        assert proc.returncode == 0
        assert "STOPPING=1" in received(sock, lambda g: "STOPPING=1" in g, 2)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        sock.close()
