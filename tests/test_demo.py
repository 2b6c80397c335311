"""`rayon demo` works offline: no broker answers, so it embeds one, and offers reach the phone."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

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


def test_demo_with_console_serves_the_live_store_to_its_one_time_login(tmp_path: Path) -> None:
    config = reference_store(tmp_path, port=free_port())
    listen = f"127.0.0.1:{free_port()}"
    args = ["demo", "-c", str(config), "--console", listen, "--quiet"]
    args += ["--database", str(tmp_path / "demo.db"), "--minutes", "3", "--speed", "6"]
    with subprocess.Popen(
        [sys.executable, "-m", "gateway", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as demo:
        try:
            assert demo.stdout is not None
            line = next(ln for ln in demo.stdout if ln.startswith("console: "))
            password = line.split(" — log in as demo / ")[1].split()[0]
            with httpx.Client(base_url=f"http://{listen}") as web:
                ready = wait_until_ready(web)
                assert ready, (tmp_path / "console" / "console.log").read_text()
                form = web.get("/login")
                csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
                assert csrf is not None
                fields = {"name": "demo", "password": password, "csrf": csrf.group(1)}
                # the cookies are Secure: a browser keeps them on the loopback, httpx does not
                sent = {"Cookie": cookie(form, "rayon_login")}
                login = web.post("/login", data=fields, headers=sent)
                assert login.status_code == 303
                web.headers["Cookie"] = cookie(login, "rayon_session")
                for _ in range(100):  # the store's first shoppers reach the console live
                    state = web.get("/state.json").json()
                    if state["ticker"]:
                        break
                    time.sleep(0.2)
                assert state["ticker"] and "store" in state["occupancy"], state
                assert web.get("/rules").status_code == 200
        finally:
            demo.terminate()
            demo.wait(timeout=30)
    # SIGTERM stopped its console too
    with httpx.Client(base_url=f"http://{listen}") as web, pytest.raises(httpx.TransportError):
        web.get("/healthz", timeout=2)
    assert (tmp_path / "console" / "config.yaml").exists()  # beside the demo's database
    assert (tmp_path / "console" / "users").stat().st_mode & 0o077 == 0


def cookie(response: httpx.Response, name: str) -> str:
    """`name=value` of the cookie `response` sets."""
    (value,) = [c for c in response.headers.get_list("set-cookie") if c.startswith(name + "=")]
    return value.split(";")[0]


def wait_until_ready(web: httpx.Client) -> bool:
    for _ in range(100):
        try:
            if web.get("/healthz").status_code == 200:
                return True
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    return False


def test_demo_locates_with_the_shipped_radio_map(tmp_path: Path) -> None:
    config = reference_store(tmp_path, port=free_port())
    shipped = str(ROOT / "radio-map.example.json")
    args = ("--shoppers", "10", "--minutes", "6", "--speed", "120", "--seed", "7")
    result = rayon("demo", "-c", str(config), "--radio-map", shipped, *args)
    assert result.returncode == 0, result.stderr
    assert "in store:" in result.stdout and "Summary per rule" in result.stdout
    missing = rayon("demo", "-c", str(config), "--radio-map", str(tmp_path / "none.json"))
    assert missing.returncode == 1
    assert f"--radio-map {tmp_path / 'none.json'}: no such file" in missing.stderr
