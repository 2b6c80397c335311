"""`rayon console`: it refuses to listen off the loopback without TLS, and `rayon console user
add|remove|list` keeps its users file."""

from __future__ import annotations

import contextlib
import io
import shutil
import signal
import ssl
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from gateway.cli.console import is_loopback, parse_listen
from gateway.cli.main import main
from gateway.console.users import Role, UsersFile
from gateway.errors import UsageError
from tests.broker import free_port
from tests.stores import ROOT, rayon, reference_store
from tests.test_cli_imports import modules_after, under
from tests.test_mqtt_security import issue, new_ca


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    console = {
        "users_file": str(tmp_path / "users"),
        "secret_file": str(tmp_path / "session.key"),
        "audit_log": str(tmp_path / "audit.log"),
    }
    return reference_store(tmp_path, console=console)


@pytest.mark.parametrize("listen", ["0.0.0.0:8080", "192.168.1.20:8080", "[::]:8443"])
def test_a_lan_listen_without_tls_is_refused_with_exit_1(
    config_path: Path, listen: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["console", "-c", str(config_path), "--listen", listen]) == 1
    err = capsys.readouterr().err
    assert "set console.tls" in err and "listen on 127.0.0.1" in err and listen in err


def test_the_configured_listen_is_checked_too(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = reference_store(tmp_path, console={"listen": "0.0.0.0:8080"})
    assert main(["console", "-c", str(path)]) == 1
    assert "without TLS" in capsys.readouterr().err


def test_listen_forms() -> None:
    assert parse_listen("127.0.0.1:8080") == ("127.0.0.1", 8080)
    assert parse_listen("[::1]:8443") == ("::1", 8443)
    assert parse_listen("localhost:80") == ("localhost", 80)
    for bad in ("8080", "host:", "host:0", "host:70000", ":8080"):
        with pytest.raises(UsageError, match="HOST:PORT"):
            parse_listen(bad)
    assert is_loopback("127.0.0.1") and is_loopback("127.8.0.1") and is_loopback("::1")
    assert is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("::") and not is_loopback("shop.lan")


def test_user_add_list_remove(config_path: Path) -> None:
    users = Path(yaml.safe_load(config_path.read_text())["console"]["users_file"])
    added = rayon(
        "console", "-c", str(config_path), "user", "add", "alice", "--role", "marketer",
        "--password-stdin", stdin="correct horse battery\n",
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    assert stat.S_IMODE(users.stat().st_mode) == 0o600
    assert "correct horse" not in users.read_text()
    user = UsersFile(users).authenticate("alice", "correct horse battery")
    assert user is not None and user.role is Role.MARKETER
    listed = rayon("console", "-c", str(config_path), "user", "list")
    assert listed.returncode == 0 and listed.stdout.split() == ["alice", "marketer"]
    gone = rayon("console", "-c", str(config_path), "user", "remove", "alice")
    assert gone.returncode == 0 and UsersFile(users).users() == []
    again = rayon("console", "-c", str(config_path), "user", "remove", "alice")
    assert again.returncode == 1 and "no user 'alice'" in again.stderr


def test_user_add_replaces_the_role_and_password(
    config_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for role, password in (("viewer", "first-password"), ("ops", "second-password")):
        monkeypatch.setattr("sys.stdin", io.StringIO(password + "\n"))
        args = ["console", "-c", str(config_path), "user", "add", "bob", "--role", role]
        assert main([*args, "--password-stdin"]) == 0
    users = UsersFile(Path(yaml.safe_load(config_path.read_text())["console"]["users_file"]))
    assert [(u.name, u.role) for u in users.users()] == [("bob", Role.OPS)]
    assert users.authenticate("bob", "first-password") is None
    assert users.authenticate("bob", "second-password") is not None


def test_a_short_password_or_a_bad_role_is_refused(
    config_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    args = ["console", "-c", str(config_path), "user", "add", "carl", "--role", "ops"]
    assert main([*args, "--password-stdin"]) == 2
    assert "too short" in capsys.readouterr().err
    bad = ["console", "-c", str(config_path), "user", "add", "carl", "--role", "boss"]
    assert main(bad) == 2
    assert "invalid choice" in capsys.readouterr().err


def test_console_help_names_its_options_and_actions(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["console", "--help"]) == 0
    out = capsys.readouterr().out
    assert "--listen" in out and "user" in out
    assert main(["console", "user", "add", "--help"]) == 0
    out = capsys.readouterr().out
    assert "--role" in out and "--password-stdin" in out


def test_the_console_serving_its_pages_imports_no_numerics(tmp_path: Path) -> None:
    """`rayon console` as it runs: its command module, the app, and the map, rules and KPI
    pages rendered (the database missing: the KPIs say so) — no numpy, shapely, matplotlib."""
    loaded = modules_after(
        f"""
        from dataclasses import replace
        from pathlib import Path
        from starlette.testclient import TestClient
        from gateway.clock import ManualClock
        from gateway.config.load import load_config
        from gateway.config.model import ConsoleConfig
        from gateway.console.app import build_app, build_console
        from gateway.console.users import Role, UsersFile
        import gateway.cli.console
        folder = Path({str(tmp_path)!r})
        config = load_config(Path("config.example.yaml"))
        settings = ConsoleConfig(users_file=folder / "u", secret_file=folder / "k",
                                 audit_log=folder / "a")
        config = replace(config, console=settings,
                         database=replace(config.database, url=f"sqlite:///{{folder}}/x.db"))
        UsersFile(settings.users_file).add("otto", Role.OPS, "ops-pass-12345")
        console = build_console(config, ManualClock(1772524800.0))
        with TestClient(build_app(console), base_url="https://testserver") as client:
            form = client.get("/login").text
            csrf = form.split('name="csrf" value="')[1].split('"')[0]
            data = {{"name": "otto", "password": "ops-pass-12345", "csrf": csrf}}
            assert client.post("/login", data=data).status_code == 200
            assert 'id="plan"' in client.get("/").text
            assert client.get("/rules").status_code == 200
            assert client.get("/kpis.json").status_code == 503
        """
    )
    assert "gateway.console.app" in loaded and "gateway.console.rulestate" in loaded
    assert under(loaded, ("numpy", "shapely", "matplotlib")) == []


def serve_until_healthy(
    args: list[str], url: str, log: Path, verify: Any = True
) -> subprocess.Popen[bytes]:
    """`rayon console …` started as a user would (its output in `log`), once /healthz answers."""
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gateway", "console", *args],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, verify=verify, timeout=2).text == "ok":
                return proc
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    raise AssertionError(f"rayon console did not come up:\n{log.read_text()}")


def stop(proc: subprocess.Popen[bytes], log: Path) -> None:
    """SIGTERM, as systemd stops it: a graceful shutdown (uvicorn then re-raises the signal,
    which systemd counts as a clean stop), nothing left behind, no traceback."""
    proc.send_signal(signal.SIGTERM)
    try:
        code = proc.wait(20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = log.read_text()
    assert code in (0, -signal.SIGTERM), text
    assert "Traceback" not in text and "Application shutdown complete" in text, text


def test_rayon_console_serves_on_the_loopback_and_stops_cleanly(config_path: Path) -> None:
    port = free_port()
    proc = serve_until_healthy(
        ["-c", str(config_path), "--listen", f"127.0.0.1:{port}"],
        f"http://127.0.0.1:{port}/healthz",
        config_path.parent / "console.log",
    )
    login = httpx.get(f"http://127.0.0.1:{port}/login")
    assert login.status_code == 200 and 'name="csrf"' in login.text
    assert httpx.get(f"http://127.0.0.1:{port}/state.json").status_code == 401
    stop(proc, config_path.parent / "console.log")
    secret = Path(yaml.safe_load(config_path.read_text())["console"]["secret_file"])
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600


def test_rayon_console_serves_tls_off_the_loopback_with_console_tls(tmp_path: Path) -> None:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed (apt-get install openssl); needed here")
    ca = new_ca(tmp_path, "console-ca")
    cert, key = issue(
        tmp_path,
        "console-ca",
        "console",
        "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth",
    )
    console = {
        "users_file": str(tmp_path / "users"),
        "secret_file": str(tmp_path / "session.key"),
        "audit_log": str(tmp_path / "audit.log"),
        "tls": {"cert_file": str(cert), "key_file": str(key)},
    }
    path = reference_store(tmp_path, console=console)
    port = free_port("0.0.0.0")
    proc = serve_until_healthy(
        ["-c", str(path), "--listen", f"0.0.0.0:{port}"],
        f"https://127.0.0.1:{port}/healthz",
        tmp_path / "console.log",
        verify=ssl.create_default_context(cafile=str(ca)),
    )
    stop(proc, tmp_path / "console.log")
