"""`rayon console`: it refuses to listen off the loopback without TLS, and `rayon console user
add|remove|list` keeps its users file."""

from __future__ import annotations

import io
import stat
from pathlib import Path

import pytest
import yaml

from gateway.cli.console import is_loopback, parse_listen
from gateway.cli.main import main
from gateway.console.users import Role, UsersFile
from gateway.errors import UsageError
from tests.stores import rayon, reference_store
from tests.test_cli_imports import modules_after, under


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
