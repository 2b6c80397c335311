"""deploy/: the systemd units (the gateway's, the console's), the D-Bus policy and the install
script's plan (`--dry-run`)."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from gateway.config.model import ConsoleConfig
from tests.stores import ROOT

DEPLOY = ROOT / "deploy"
UNIT = DEPLOY / "rayon-gateway.service"  # where docs/design.md §8 puts it
CONSOLE_UNIT = DEPLOY / "rayon-console.service"
INSTALL = DEPLOY / "install.sh"
DRAIN_S = 5  # SIGTERM drains the outbox for at most this long (docs/design.md §8)


def parse_unit(text: str) -> dict[str, dict[str, list[str]]]:
    """A unit file as section → key → every value given (systemd keys may repeat)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        assert current is not None, f"key outside a section: {line!r}"
        key, sep, value = line.partition("=")
        assert sep, f"not a key=value line: {line!r}"
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def seconds(value: str) -> float:
    units = {"s": 1, "min": 60, "ms": 0.001}
    for suffix, factor in sorted(units.items(), key=lambda kv: -len(kv[0])):
        if value.endswith(suffix):
            return float(value[: -len(suffix)]) * factor
    return float(value)


@pytest.fixture(scope="module")
def service() -> dict[str, list[str]]:
    return parse_unit(UNIT.read_text(encoding="utf-8"))["Service"]


def one(service: dict[str, list[str]], key: str) -> str:
    values = service.get(key, [])
    assert len(values) == 1, f"{key}: {values}"
    return values[0]


def test_the_unit_is_a_notifying_watched_service(service: dict[str, list[str]]) -> None:
    assert one(service, "Type") == "notify"
    assert one(service, "NotifyAccess") == "main"
    assert seconds(one(service, "WatchdogSec")) == 30
    assert one(service, "Restart") == "on-failure"
    assert one(service, "ExecReload") == "/bin/kill -HUP $MAINPID"
    assert one(service, "ExecStart") == "/opt/rayon/bin/rayon run -c /etc/rayon/config.yaml"
    assert one(service, "ExecStartPre") == "/opt/rayon/bin/rayon check -c /etc/rayon/config.yaml"
    assert seconds(one(service, "TimeoutStopSec")) >= DRAIN_S + 10  # drain, then disconnect


def test_the_unit_runs_unprivileged_and_hardened(service: dict[str, list[str]]) -> None:
    assert one(service, "User") == "rayon" and "DynamicUser" not in service
    assert one(service, "SupplementaryGroups") == "bluetooth"
    assert one(service, "StateDirectory") == "rayon"
    assert one(service, "ConfigurationDirectory") == "rayon"
    assert one(service, "ProtectSystem") == "strict"
    assert one(service, "ReadWritePaths") == "/var/lib/rayon"
    for key in ("ProtectHome", "PrivateTmp", "NoNewPrivileges"):
        assert one(service, key) == "yes", key
    families = set(one(service, "RestrictAddressFamilies").split())
    assert families == {"AF_UNIX", "AF_INET", "AF_INET6", "AF_NETLINK", "AF_BLUETOOTH"}
    assert one(service, "CapabilityBoundingSet") == ""  # bluetoothd scans, we ask over D-Bus
    assert one(service, "StandardOutput") == "journal"


def test_the_unit_is_installed_for_boot() -> None:
    unit = parse_unit(UNIT.read_text(encoding="utf-8"))
    assert unit["Install"]["WantedBy"] == ["multi-user.target"]
    assert "network-online.target" in unit["Unit"]["After"][0].split()


def _verify(
    unit_text: str, folder: Path, name: str = UNIT.name
) -> subprocess.CompletedProcess[str]:
    """`systemd-analyze verify` on the unit, /opt/rayon/bin/rayon replaced by a stub."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (apt-get install systemd)")
    stub = folder / "rayon"
    stub.write_text("#!/bin/sh\n", encoding="utf-8")
    stub.chmod(stub.stat().st_mode | stat.S_IXUSR)
    unit = folder / name
    unit.write_text(unit_text.replace("/opt/rayon/bin/rayon", str(stub)), encoding="utf-8")
    return subprocess.run(
        [analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60, check=False
    )


def test_systemd_accepts_every_line_of_the_unit(tmp_path: Path) -> None:
    text = UNIT.read_text(encoding="utf-8")
    done = _verify(text, tmp_path)
    assert done.returncode == 0 and str(tmp_path) not in done.stderr, done.stderr
    typo = _verify(text.replace("WatchdogSec=", "WatchdgSec="), tmp_path)
    assert "Unknown key 'WatchdgSec'" in typo.stderr  # the check above can see a bad line


# --- the console's unit ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def console() -> dict[str, dict[str, list[str]]]:
    return parse_unit(CONSOLE_UNIT.read_text(encoding="utf-8"))


def test_the_console_runs_as_its_own_user_reading_the_gateways_state(
    console: dict[str, dict[str, list[str]]], service: dict[str, list[str]]
) -> None:
    s = console["Service"]
    assert one(s, "User") == "rayon-console" == one(s, "Group")
    assert one(s, "SupplementaryGroups") == "rayon"  # the gateway's group: its database
    assert one(s, "ExecStart") == "/opt/rayon/bin/rayon console -c /etc/rayon/config.yaml"
    assert one(s, "Restart") == "on-failure" and "ExecStartPre" not in s
    assert one(s, "StateDirectory") == "rayon-console" and one(s, "StateDirectoryMode") == "0700"
    defaults = ConsoleConfig()
    state = Path("/var/lib/rayon-console")
    assert defaults.secret_file.parent == defaults.audit_log.parent == state
    assert one(s, "ReadWritePaths") == str(state)
    assert one(s, "ReadOnlyPaths") == one(service, "ReadWritePaths") == "/var/lib/rayon"
    # the gateway makes its database (and -wal, -shm) group-readable in a group-open folder
    assert one(service, "UMask") == "0027" and one(service, "StateDirectoryMode") == "0750"


def test_the_console_unit_is_hardened_and_waits_for_the_broker(
    console: dict[str, dict[str, list[str]]],
) -> None:
    s = console["Service"]
    assert one(s, "ProtectSystem") == "strict"
    for key in ("ProtectHome", "PrivateTmp", "PrivateDevices", "NoNewPrivileges"):
        assert one(s, key) == "yes", key
    assert one(s, "CapabilityBoundingSet") == "" and one(s, "UMask") == "0077"
    assert set(one(s, "RestrictAddressFamilies").split()) == {"AF_UNIX", "AF_INET", "AF_INET6"}
    unit = console["Unit"]
    assert "mosquitto.service" in unit["Wants"][0].split()
    assert "mosquitto.service" in unit["After"][0].split()
    assert console["Install"]["WantedBy"] == ["multi-user.target"]


def test_systemd_accepts_every_line_of_the_console_unit(tmp_path: Path) -> None:
    text = CONSOLE_UNIT.read_text(encoding="utf-8")
    done = _verify(text, tmp_path, CONSOLE_UNIT.name)
    assert done.returncode == 0 and str(tmp_path) not in done.stderr, done.stderr
    typo = _verify(text.replace("ReadOnlyPaths=", "ReadOnlyPath="), tmp_path, CONSOLE_UNIT.name)
    assert "Unknown key 'ReadOnlyPath'" in typo.stderr


def test_the_dbus_policy_lets_rayon_talk_to_bluez() -> None:
    tree = ET.parse(DEPLOY / "bluetooth" / "rayon-bluez.conf")
    policy = tree.getroot().find("policy[@user='rayon']")
    assert policy is not None
    assert [a.attrib for a in policy] == [{"send_destination": "org.bluez"}]


# --- install.sh --dry-run ------------------------------------------------------------------


def install(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`sh install.sh --dry-run …` against the fake tree `root`: prints, changes nothing."""
    env = {**os.environ, "RAYON_ROOT": str(root)}
    return subprocess.run(
        ["sh", str(INSTALL), "--dry-run", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def plan(done: subprocess.CompletedProcess[str]) -> list[str]:
    assert done.returncode == 0, done.stderr
    return [line[2:] for line in done.stdout.splitlines() if line.startswith("+ ")]


def tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def test_a_fresh_install_plans_everything_and_starts_nothing(tmp_path: Path) -> None:
    done = install(tmp_path)
    steps = plan(done)
    r = str(tmp_path)
    assert "env DEBIAN_FRONTEND=noninteractive apt-get install -y python3-venv bluez mosquitto" in (
        steps
    )
    account = next(s for s in steps if s.startswith(("useradd", "usermod")))
    assert "--groups bluetooth" in account and account.endswith(" rayon")
    assert f"python3 -m venv {r}/opt/rayon" in steps
    assert f"{r}/opt/rayon/bin/pip install --quiet --upgrade '{ROOT}[console]'" in steps
    example = ROOT / "config.example.yaml"
    assert f"install -m 644 {example} {r}/etc/rayon/config.yaml" in steps
    assert f"cp -R {ROOT / 'rules'} {r}/etc/rayon/rules" in steps
    assert f"install -m 644 {UNIT} {r}/etc/systemd/system/rayon-gateway.service" in steps
    policy = DEPLOY / "bluetooth" / "rayon-bluez.conf"
    assert f"install -m 644 {policy} {r}/etc/dbus-1/system.d/rayon-bluez.conf" in steps
    assert steps[-2:] == ["systemctl daemon-reload", "systemctl enable rayon-gateway.service"]
    assert "NOT started" in done.stdout and "proximity_uuids" in done.stdout
    assert "rayon-console.service) is installed, not enabled" in done.stdout
    assert "rayon doctor -c /etc/rayon/config.yaml" in done.stdout
    assert tree(tmp_path) == []  # a dry run touches nothing


def test_the_console_gets_its_user_folder_and_unit_but_is_not_enabled(tmp_path: Path) -> None:
    steps = plan(install(tmp_path))
    r = str(tmp_path)
    gateway = next(i for i, s in enumerate(steps) if s.startswith("useradd") and "rayon" in s)
    account = next(i for i, s in enumerate(steps) if s.endswith(" rayon-console"))
    assert gateway < account  # its group rayon exists by then
    assert (
        "--groups rayon " in steps[account]
        and "--home-dir /var/lib/rayon-console" in (steps[account])
    )
    folder = f"install -d -o rayon-console -g rayon-console -m 700 {r}/var/lib/rayon-console"
    unit = f"install -m 644 {CONSOLE_UNIT} {r}/etc/systemd/system/rayon-console.service"
    assert folder in steps and unit in steps
    assert steps.index(unit) < steps.index("systemctl daemon-reload")
    assert not [s for s in steps if "rayon-console.service" in s and s.startswith("systemctl")]


def _installed(root: Path, config: str) -> None:
    (root / "opt/rayon/bin").mkdir(parents=True)
    python = root / "opt/rayon/bin/python"
    python.write_text("#!/bin/sh\n", encoding="utf-8")
    python.chmod(0o755)
    (root / "etc/rayon/rules").mkdir(parents=True)
    (root / "etc/rayon/config.yaml").write_text(config, encoding="utf-8")


def test_a_rerun_keeps_the_stores_files_and_restarts_it(tmp_path: Path) -> None:
    _installed(tmp_path, "store: {id: lyon-2, name: Lyon, timezone: Europe/Paris}\n")
    before = tree(tmp_path)
    done = install(tmp_path, "--no-apt")
    steps = plan(done)
    assert not any("apt-get" in s or "venv" in s for s in steps)
    assert not any(s.endswith("/etc/rayon/config.yaml") for s in steps)
    assert not any(s.startswith("cp -R") for s in steps)
    assert "keeping /etc/rayon/config.yaml" in done.stdout
    assert "keeping /etc/rayon/rules/" in done.stdout
    assert steps[-2:] == [
        "systemctl restart rayon-gateway.service",
        "systemctl try-restart rayon-console.service",  # only if the ops team runs it
    ]
    assert tree(tmp_path) == before


def test_a_config_still_the_example_is_not_started(tmp_path: Path) -> None:
    _installed(tmp_path, (ROOT / "config.example.yaml").read_text(encoding="utf-8"))
    done = install(tmp_path, "--no-apt")
    assert not any("start" in s for s in plan(done))
    assert "NOT started" in done.stdout


def test_a_wheel_is_installed_instead_of_the_tree(tmp_path: Path) -> None:
    wheel = tmp_path / "rayon_gateway-1.0-py3-none-any.whl"
    wheel.write_bytes(b"")
    root = tmp_path / "root"
    root.mkdir()
    steps = plan(install(root, "--no-apt", "--wheel", str(wheel)))
    assert f"{root}/opt/rayon/bin/pip install --quiet --upgrade '{wheel}[console]'" in steps


def test_bad_usage_exits_2(tmp_path: Path) -> None:
    assert install(tmp_path, "--frobnicate").returncode == 2
    missing = install(tmp_path, "--wheel", str(tmp_path / "none.whl"))
    assert missing.returncode == 2 and "no such wheel" in missing.stderr


def test_compiled_installs_a_toolchain_builds_the_copy_and_points_the_service_at_it(
    tmp_path: Path,
) -> None:
    steps = plan(install(tmp_path, "--compiled"))
    r = str(tmp_path)
    apt = next(s for s in steps if "apt-get install" in s)
    assert apt.endswith("python3-venv bluez mosquitto build-essential python3-dev")
    build = (
        f"{r}/opt/rayon/bin/python -P -m rayon_tooling.benchmarks.compiled --build-only "
        f"--dest {r}/opt/rayon/compiled"
    )
    pip = f"{r}/opt/rayon/bin/pip install --quiet --upgrade '{ROOT}[compiled,console]'"
    assert steps.index(pip) < steps.index(build)  # the copy is of the package just installed
    dropin = f"{r}/etc/systemd/system/rayon-gateway.service.d/compiled.conf"
    assert f"install -D -m 644 {DEPLOY / 'rayon-gateway.compiled.conf'} {dropin}" in steps
    assert steps.index(f"install -D -m 644 {DEPLOY / 'rayon-gateway.compiled.conf'} {dropin}") < (
        steps.index("systemctl daemon-reload")
    )
    text = (DEPLOY / "rayon-gateway.compiled.conf").read_text(encoding="utf-8")
    assert "[Service]\nEnvironment=PYTHONPATH=/opt/rayon/compiled\n" in text


def test_an_upgrade_rebuilds_a_compiled_install_until_pure_removes_it(tmp_path: Path) -> None:
    _installed(tmp_path, "store: {id: lyon-2, name: Lyon, timezone: Europe/Paris}\n")
    dropin = tmp_path / "etc/systemd/system/rayon-gateway.service.d/compiled.conf"
    dropin.parent.mkdir(parents=True)
    dropin.write_text("[Service]\n", encoding="utf-8")
    (tmp_path / "opt/rayon/compiled").mkdir()
    upgrade = plan(install(tmp_path, "--no-apt"))
    assert any("rayon_tooling.benchmarks.compiled --build-only" in s for s in upgrade)
    pure = plan(install(tmp_path, "--no-apt", "--pure"))
    assert not any("rayon_tooling.benchmarks.compiled" in s for s in pure)
    assert f"rm -f {dropin}" in pure and f"rm -rf {tmp_path}/opt/rayon/compiled" in pure
    plain = plan(install(tmp_path / "fresh", "--no-apt"))
    assert not any("compiled" in s for s in plain)  # a plain install stays pure Python
