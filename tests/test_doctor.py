"""`rayon doctor` against the reference store, a private Mosquitto and a tmp SQLite database."""

from __future__ import annotations

import io
import stat
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.config.load import load_config
from gateway.ops.doctor import (
    DOCTOR_RUNTIME_KEY,
    Host,
    Outcome,
    check_adapter,
    check_clock,
    check_dbus,
    diagnose,
    report,
    run_doctor,
)
from gateway.store.migrations import HEAD
from gateway.store.repo import Store
from tests.broker import Mosquitto, free_port
from tests.stores import ROOT, reference_store


def _store(folder: Path, port: int, **changes: Any) -> Path:
    """The reference store, with `changes` applied to its sources, or at top level."""
    path = reference_store(folder, port=port)
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    raw["sources"]["ble"] = changes.pop("ble", False)
    raw.update(changes)
    path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    return path


def _doctor(config: Path) -> tuple[int, list[str]]:
    out = io.StringIO()
    code = run_doctor(config, out)
    return code, out.getvalue().splitlines()


def _line(lines: list[str], name: str) -> str:
    return next(line for line in lines if line[2:].startswith(f"{name}:"))


def _after(lines: list[str], name: str) -> str:
    """The line of check `name` and its indented details, as one text."""
    start = lines.index(_line(lines, name))
    rest = lines[start + 1 :]
    end = next((i for i, line in enumerate(rest) if not line.startswith("    ")), len(rest))
    return "\n".join([lines[start], *rest[:end]])


def _executable(path: Path, script: str) -> tuple[str, ...]:
    path.write_text(f"#!/bin/sh\n{script}\n", encoding="utf-8")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return (str(path),)


def test_reference_store_passes_all_but_the_missing_radio(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    config = _store(tmp_path, mosquitto.port, ble={"adapter": "hci9"})
    code, lines = _doctor(config)
    for name in ("config", "rules", "database", "broker"):
        assert _line(lines, name).startswith("✓"), "\n".join(lines)
    adapter = _after(lines, "bluetooth adapter")
    assert adapter.startswith("✗ bluetooth adapter: hci9 not found")
    assert "is the dongle plugged in?" in adapter and "`bluetoothctl list`" in adapter
    assert lines[-1].startswith("rayon doctor: NOT ready") and code == 1
    store = Store(load_config(config).database.url)
    try:
        assert store.load_runtime(DOCTOR_RUNTIME_KEY) is not None  # the write really committed
    finally:
        store.close()


def test_all_ok_exits_0(tmp_path: Path, mosquitto: Mosquitto) -> None:
    sysfs = tmp_path / "sys"
    (sysfs / "class" / "bluetooth" / "hci0").mkdir(parents=True)
    socket_file = tmp_path / "system_bus_socket"
    socket_file.touch()
    clock = _executable(tmp_path / "timedatectl", "echo yes")
    host = Host(sysfs=sysfs, dbus_socket=socket_file, timedatectl=clock)
    shipped = {"method": "auto", "radio_map": str(ROOT / "radio-map.example.json")}
    config = _store(tmp_path, mosquitto.port, ble={"adapter": "hci0"}, locate=shipped)
    out = io.StringIO()
    assert report(diagnose(config, host), out) == 0, out.getvalue()
    marks = [line[0] for line in out.getvalue().splitlines()[:-1] if not line.startswith(" ")]
    assert marks == ["✓"] * 9
    last = out.getvalue().splitlines()[-1]
    assert last == "rayon doctor: ready: 9 ok, 0 warned, 0 failed, 0 skipped"


def test_no_radio_map_is_a_warning_that_does_not_fail(tmp_path: Path) -> None:
    _, lines = _doctor(_store(tmp_path, free_port()))  # the broker fails: nothing listens
    warned = _after(lines, "radio map")
    assert warned.startswith("! radio map: none (locate.radio_map)")
    assert "--map-out radio-map.json" in warned and "docs/calibration.md" in warned
    assert ", 1 warned, " in lines[-1]


def test_a_broken_config_is_located_and_the_rest_skipped(tmp_path: Path) -> None:
    config = _store(tmp_path, 1)
    text = config.read_text(encoding="utf-8").replace("exit_after:", "exit_afer:", 1)
    config.write_text(text, encoding="utf-8")
    code, lines = _doctor(config)
    broken = _after(lines, "config")
    assert broken.startswith("✗ config:")
    assert f"{config}:" in broken and "unknown key 'exit_afer'" in broken
    assert "did you mean 'exit_after'" in broken and "`rayon check -c" in broken
    for name in ("rules", "radio map", "database", "recording", "broker", "bluetooth adapter"):
        assert _line(lines, name) == f"- {name}: skipped: needs a config that loads"
    assert code == 1


def test_a_missing_config_says_where_it_looked(tmp_path: Path) -> None:
    code, lines = _doctor(tmp_path / "nowhere.yaml")
    assert _line(lines, "config") == f"✗ config: {tmp_path / 'nowhere.yaml'}: no such file"
    assert code == 1


def test_an_unreachable_broker_fails_with_its_hint(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    code, lines = _doctor(_store(tmp_path, port))
    broker = _after(lines, "broker")
    assert broker.startswith(f"✗ broker: 127.0.0.1:{port}: cannot connect")
    assert "check mqtt.host and mqtt.port" in broker and "systemctl status mosquitto" in broker
    assert _line(lines, "database").startswith("✓")
    assert f"(created at schema version {HEAD})" in _line(lines, "database")
    assert f"(schema version {HEAD})" in _line(_doctor(_store(tmp_path, port))[1], "database")
    assert code == 1


def test_an_unreadable_password_file_is_named(tmp_path: Path) -> None:
    secret = tmp_path / "mqtt.secret"
    mqtt = {
        "host": "127.0.0.1",
        "port": free_port(),
        "username": "gw",
        "password_file": str(secret),
    }
    code, lines = _doctor(_store(tmp_path, 1, mqtt=mqtt))
    broker = _after(lines, "broker")
    assert broker.startswith("✗ broker:") and f"cannot read mqtt.password_file {secret}" in broker
    assert code == 1


def test_broken_rules_are_located(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "bad.yaml").write_text(
        "id: bad\nwhen: {enter: nowhere}\nthen: {offer: {title: t, body: b}}\n", encoding="utf-8"
    )
    code, lines = _doctor(_store(tmp_path, 1, rules_dir=str(rules)))
    broken = _after(lines, "rules")
    assert broken.startswith("✗ rules: ") and "bad.yaml:2:" in broken and "nowhere" in broken
    assert code == 1


def test_a_database_that_cannot_open_says_what_to_do(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a folder", encoding="utf-8")
    database = {"url": f"sqlite:///{tmp_path / 'file' / 'rayon.db'}"}
    code, lines = _doctor(_store(tmp_path, 1, database=database))
    db = _after(lines, "database")
    assert db.startswith("✗ database: does not open") and "database.url" in db
    assert "writable by the user running the gateway" in db
    assert code == 1


def test_a_recording_folder_that_cannot_be_made_says_what_to_do(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a folder", encoding="utf-8")
    code, lines = _doctor(_store(tmp_path, 1, record={"dir": str(tmp_path / "file" / "rec")}))
    recording = _after(lines, "recording")
    assert recording.startswith("✗ recording: ") and "not writable" in recording
    assert "sudo install -d -o rayon -g rayon -m 700" in recording and code == 1
    code, lines = _doctor(_store(tmp_path, 1, record=False))
    assert _line(lines, "recording") == "- recording: skipped: off (record: false)"


def test_the_adapter_and_dbus_are_skipped_without_the_radio(tmp_path: Path) -> None:
    config = load_config(_store(tmp_path, 1))
    host = Host(sysfs=tmp_path, dbus_socket=tmp_path / "none")
    assert check_adapter(config, host).outcome is Outcome.SKIPPED
    assert check_dbus(config, host).outcome is Outcome.SKIPPED


def test_a_missing_dbus_socket_says_how_to_start_it(tmp_path: Path) -> None:
    config = load_config(_store(tmp_path, 1, ble={"adapter": "hci0"}))
    result = check_dbus(config, Host(dbus_socket=tmp_path / "system_bus_socket"))
    assert result.outcome is Outcome.FAILED
    assert "sudo systemctl start dbus bluetooth" in "\n".join(result.lines())


@pytest.mark.parametrize(
    ("script", "outcome", "said"),
    [
        ("echo yes", Outcome.OK, "synchronised by NTP"),
        ("echo no", Outcome.FAILED, "sudo timedatectl set-ntp true"),
        ("echo 'Failed to connect to bus' >&2; exit 1", Outcome.SKIPPED, "Failed to connect"),
    ],
)
def test_the_clock_check_reads_timedatectl(
    tmp_path: Path, script: str, outcome: Outcome, said: str
) -> None:
    host = Host(timedatectl=_executable(tmp_path / "timedatectl", script))
    result = check_clock(host)
    assert result.outcome is outcome and said in "\n".join(result.lines())


def test_the_clock_check_is_skipped_without_timedatectl() -> None:
    result = check_clock(Host(timedatectl=None))
    assert result.lines() == [
        "- clock: skipped: timedatectl is not installed; check the time with `date`"
    ]
