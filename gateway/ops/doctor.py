"""`rayon doctor`: is this Pi ready to run the gateway?  One line per check, ✓ / ✗ / -.

Each check touches the real thing: the config and the rules are loaded as `rayon check` loads
them, the database is opened and written to, the broker is connected to with the gateway's
credentials, and the Bluetooth adapter, the system D-Bus and the clock are looked up on the host.
A failed check says what to do; a check that cannot run here says why it was skipped; a warning
(!) is something to do that does not stop the gateway (no radio map yet, or one older than the
anchors).  Exit 0 when nothing failed, 1 otherwise.  Run it as the service's user
(`sudo -u rayon rayon doctor`) so that file permissions are the daemon's.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TextIO

from gateway.config.commandline import resolve_config
from gateway.config.load import load_config
from gateway.config.model import Anchor, Config, PositionMethod
from gateway.errors import InvalidInput, RuntimeFailure, Severity

MQTT_TIMEOUT_S = 5.0
CLOCK_TIMEOUT_S = 5.0
DOCTOR_RUNTIME_KEY = "doctor"  # the row the database check writes (its last run's time)


class Outcome(StrEnum):
    OK = "ok"
    WARNED = "warned"
    FAILED = "failed"
    SKIPPED = "skipped"


_MARK = {Outcome.OK: "✓", Outcome.WARNED: "!", Outcome.FAILED: "✗", Outcome.SKIPPED: "-"}


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One check: what was found (`detail`), located errors, and what to do (`hint`)."""

    name: str
    outcome: Outcome
    detail: str
    hint: str = ""
    errors: tuple[str, ...] = ()

    def lines(self) -> list[str]:
        """The check as printed: a marked line, its errors indented, then the hint."""
        lines = [f"{_MARK[self.outcome]} {self.name}: {self.detail}"]
        lines += [f"    {line}" for error in self.errors for line in error.splitlines()]
        if self.hint:
            lines.append(f"    → {self.hint}")
        return lines


def _ok(name: str, detail: str) -> CheckResult:
    return CheckResult(name, Outcome.OK, detail)


def _failed(name: str, detail: str, hint: str, errors: Sequence[str] = ()) -> CheckResult:
    return CheckResult(name, Outcome.FAILED, detail, hint, tuple(errors))


def _warned(name: str, detail: str, hint: str) -> CheckResult:
    return CheckResult(name, Outcome.WARNED, detail, hint)


def _skipped(name: str, reason: str) -> CheckResult:
    return CheckResult(name, Outcome.SKIPPED, f"skipped: {reason}")


@dataclass(frozen=True, slots=True)
class Host:
    """Where the host checks look: the real system by default, a folder in tests."""

    sysfs: Path = Path("/sys")
    dbus_socket: Path = Path("/run/dbus/system_bus_socket")
    timedatectl: tuple[str, ...] | None = field(default=None)

    @classmethod
    def real(cls) -> Host:
        """This machine, with `timedatectl` when it is installed."""
        found = shutil.which("timedatectl")
        return cls(timedatectl=(found,) if found else None)


def run(args: argparse.Namespace) -> int:
    """`rayon doctor` on the config that -c names (or the default one)."""
    return run_doctor(resolve_config(args.config), sys.stdout)


def run_doctor(config_path: Path, out: TextIO) -> int:
    """Run every check on this machine, print them to `out`; 0 if none failed, else 1."""
    return report(diagnose(config_path, Host.real()), out)


def report(results: Iterator[CheckResult], out: TextIO) -> int:
    """Print each result as it comes, then a summary line; 0 if none failed, else 1."""
    counts = dict.fromkeys(Outcome, 0)
    for result in results:
        counts[result.outcome] += 1
        for line in result.lines():
            print(line, file=out, flush=True)
    summary = ", ".join(f"{n} {outcome}" for outcome, n in counts.items())
    verdict = "ready" if not counts[Outcome.FAILED] else "NOT ready"
    print(f"rayon doctor: {verdict}: {summary}", file=out)
    return 1 if counts[Outcome.FAILED] else 0


def diagnose(
    config_path: Path, host: Host, *, mqtt_timeout_s: float = MQTT_TIMEOUT_S
) -> Iterator[CheckResult]:
    """Every check, in order; those that need the config are skipped when it does not load."""
    config, result = check_config(config_path)
    yield result
    if config is None:
        for name in ("rules", "radio map", "database", "recording", "broker", "bluetooth adapter"):
            yield _skipped(name, "needs a config that loads")
    else:
        yield check_rules(config)
        yield check_radio_map(config)
        yield check_database(config)
        yield check_recording(config)
        yield check_broker(config, mqtt_timeout_s)
        yield check_adapter(config, host)
        if config.central.enabled:
            yield check_chain(config)
    yield check_dbus(config, host)
    yield check_clock(host)


def check_config(path: Path) -> tuple[Config | None, CheckResult]:
    """The config loads, as `rayon check` loads it (every error located)."""
    fix = f"fix these lines, then `rayon check -c {path}`"
    if not path.is_file():
        hint = "pass -c PATH, or copy config.example.yaml there (deploy/README.md)"
        return None, _failed("config", f"{path}: no such file", hint)
    try:
        config = load_config(path)
    except InvalidInput as exc:
        errors = [str(d) for d in getattr(exc, "diagnostics", ())] or [str(exc)]
        return None, _failed("config", f"{path} does not load", fix, errors)
    detail = (
        f"{path} loads (store {config.store.id}, {len(config.anchors)} anchors, "
        f"{len(config.zones)} zones)"
    )
    return config, _ok("config", detail)


def check_rules(config: Config) -> CheckResult:
    """The rules of `rules_dir` load and their inline tests pass."""
    from gateway.rules.selftest import check_rules as rule_diagnostics

    diagnostics = rule_diagnostics(config)
    errors = [str(d) for d in diagnostics if d.severity is Severity.ERROR]
    warnings = len(diagnostics) - len(errors)
    where = config.rules_dir
    if errors:
        fix = f"fix these lines, then `rayon check -c {config.path}`"
        return _failed("rules", f"{len(errors)} error(s) in {where}", fix, errors)
    return _ok("rules", f"{where} loads, inline tests pass ({warnings} warning(s))")


def check_radio_map(config: Config) -> CheckResult:
    """`locate.radio_map`: warned when there is none, or when the config's anchors moved (or
    are new) since the map was made; failed when it does not load (the gateway would not
    start)."""
    from gateway.locate.radiomap import RadioMap

    name, path = "radio map", config.locate.radio_map
    redo = (
        f"walk the store (docs/calibration.md), then `rayon calibrate WALK --truth TRUTH "
        f"-c {config.path} --map-out radio-map.json`"
    )
    if path is None:
        detail = "none (locate.radio_map): positions come from the path-loss model alone"
        return _warned(name, detail, f"{redo} and set locate.radio_map: radio-map.json")
    try:
        radio_map = RadioMap.load(path)
    except InvalidInput as exc:
        return _failed(name, f"{path} does not load", redo, [str(exc)])
    stale = radio_map.moved(config.anchors)
    made = f"{path} (made {radio_map.made_at or 'at an unknown time'})"
    if stale:
        where = dict(zip(radio_map.anchors, radio_map.positions, strict=True))
        said = ", ".join(_moved(a, where) for a in config.anchors if a.id in stale)
        detail = f"{made} is older than {len(stale)} of the config's anchors: {said}"
        return _warned(name, detail, f"{redo} (the map is only right where the anchors were)")
    if config.locate.method not in (PositionMethod.AUTO, PositionMethod.GRID):
        detail = f"{made} is not used by locate.method {config.locate.method.value}"
        return _warned(name, detail, "set locate.method: auto (or grid) to use it")
    edited = _newer(config.path, path)
    return _ok(name, f"{made} knows every anchor where the config puts it{edited}")


def _moved(anchor: Anchor, where: dict[str, tuple[float, float]]) -> str:
    p = where.get(anchor.id)
    if p is None:
        return f"{anchor.id} (not in the map)"
    return f"{anchor.id} (moved {math.hypot(anchor.x - p[0], anchor.y - p[1]):.1f} m)"


def _newer(config: Path, radio_map: Path) -> str:
    """A note when the config file was edited after the map was written."""
    try:
        if config.stat().st_mtime > radio_map.stat().st_mtime:
            return " (the config was edited since; its anchors did not move)"
    except OSError:
        pass
    return ""


def check_database(config: Config) -> CheckResult:
    """The database opens, and a write commits (the time of this check, under 'doctor')."""
    from gateway.store.migrations import HEAD
    from gateway.store.repo import Store

    url = config.database.url
    try:
        store = Store(url)
    except RuntimeFailure as exc:
        return _failed("database", "does not open", _db_hint(url), [str(exc)])
    try:
        now = time.time()
        store.commit(runtime={DOCTOR_RUNTIME_KEY: {"checked_at": now}}, at=now)
    except RuntimeFailure as exc:
        return _failed("database", "opens but is not writable", _db_hint(url), [str(exc)])
    finally:
        store.close()
    done = store.upgraded
    schema = (
        f"schema version {HEAD}"
        if not done
        else f"created at schema version {HEAD}"
        if done[0] == 1
        else f"schema upgraded from version {done[0] - 1} to {HEAD}"
    )
    return _ok("database", f"{_db_where(url)} opens and is writable ({schema})")


def check_recording(config: Config) -> CheckResult:
    """The recording's folder exists or can be made, and its lock can be taken (`record`)."""
    from gateway.store.recording import locked, segments

    if not config.record.enabled:
        return _skipped("recording", "off (record: false)")
    folder = config.record_dir
    try:
        with locked(folder):
            found = segments(folder)
            size = sum(p.stat().st_size for p in found)
    except OSError as exc:
        hint = (
            "the folder must be writable by the user running the gateway: "
            f"`sudo install -d -o rayon -g rayon -m 700 {folder}`, or set record.dir"
        )
        return _failed("recording", f"{folder} is not writable", hint, [str(exc)])
    return _ok("recording", f"{folder}: {len(found)} segment(s), {size / 1e6:.1f} MB")


CHAIN_STALE_S = 3600.0  # journal rows unacknowledged this long: the centre is not reached


def check_chain(config: Config, now: float | None = None) -> CheckResult:
    """With `central.enabled`: the journal's backlog, failed when the centre has acknowledged
    nothing of it for an hour (the bridge, the central broker or the collectors are down)."""
    from gateway.store.repo import Store

    now = time.time() if now is None else now
    try:
        store = Store(config.database.url)
    except RuntimeFailure as exc:
        return _failed(
            "chain", "the database does not open", _db_hint(config.database.url), [str(exc)]
        )
    try:
        count, oldest = store.uplink_backlog()
    finally:
        store.close()
    if oldest is None:
        return _ok("chain", "the centre has acknowledged every journal row")
    waiting = (
        f"{count} journal row(s) wait for the centre, the oldest for {(now - oldest) / 60:.0f} min"
    )
    if now - oldest < CHAIN_STALE_S:
        return _ok("chain", waiting)
    keep_days = config.central.keep / 86400
    hint = (
        "check the store broker's bridge (`rayon bridge render`, the broker's log, "
        f"{config.mqtt.topic_prefix}/{config.store.id}/bridge/state), the central broker and "
        f"`rayon central`; nothing is lost before central.keep ({keep_days:.0f} days)"
    )
    return _failed("chain", waiting, hint)


def _db_where(url: str) -> str:
    return url.split("@", 1)[-1] if "@" in url else url


def _db_hint(url: str) -> str:
    if url.startswith("sqlite"):
        return (
            "check database.url; the file and its folder must be writable by the user running "
            "the gateway: `sudo install -d -o rayon -g rayon -m 750 /var/lib/rayon`"
        )
    return "check database.url, that the server runs, and the login's rights on the schema"


def check_broker(config: Config, timeout_s: float = MQTT_TIMEOUT_S) -> CheckResult:
    """A real MQTT v5 connect with the gateway's credentials, then a clean disconnect."""
    m = config.mqtt
    where = f"{m.host}:{m.port}" + (f" as {m.username}" if m.username else "")
    try:
        asyncio.run(_connect_and_leave(config, timeout_s))
    except TimeoutError:
        hint = "check mqtt.host and mqtt.port, and that nothing filters the port"
        return _failed("broker", f"{where}: no answer within {timeout_s:g} s", hint)
    except RuntimeFailure as exc:
        hint = (
            "is the broker up (`systemctl status mosquitto`)? logins, password files and ACLs: "
            "deploy/mosquitto/README.md"
        )
        return _failed("broker", f"{where}: cannot connect", hint, [str(exc)])
    return _ok("broker", f"{where}: connected and accepted")


async def _connect_and_leave(config: Config, timeout_s: float) -> None:
    from gateway.deliver.connect import connect_link

    async with asyncio.timeout(timeout_s):
        link = await connect_link(config, client_suffix="doctor", will=False)
    await link.disconnect()


def check_adapter(config: Config, host: Host) -> CheckResult:
    """The adapter of sources.ble is known to the kernel (skipped when the radio is off)."""
    ble = config.sources.ble
    if ble is None:
        return _skipped("bluetooth adapter", "sources.ble is off")
    path = host.sysfs / "class" / "bluetooth" / ble.adapter
    if path.exists():
        return _ok("bluetooth adapter", f"{ble.adapter} found ({path})")
    hint = (
        "is the dongle plugged in? `bluetoothctl list` shows the adapters: set "
        "sources.ble.adapter to one of them, or `ble: false` to run on scanner nodes only"
    )
    return _failed("bluetooth adapter", f"{ble.adapter} not found ({path})", hint)


def check_dbus(config: Config | None, host: Host) -> CheckResult:
    """bluetoothd's way in: the system D-Bus socket (skipped when the radio is off)."""
    name = "system D-Bus"
    if config is not None and config.sources.ble is None:
        return _skipped(name, "sources.ble is off (only the Pi's radio needs bluetoothd)")
    if host.dbus_socket.exists():
        return _ok(name, f"{host.dbus_socket} is there for bluetoothd")
    hint = (
        "start them: `sudo systemctl start dbus bluetooth` (and `systemctl enable` them); "
        "bluetoothd comes with `apt-get install bluez`"
    )
    return _failed(name, f"{host.dbus_socket} not found: bleak cannot reach bluetoothd", hint)


def check_clock(host: Host) -> CheckResult:
    """The clock is NTP-synchronised: rules and offers depend on the time of day."""
    name = "clock"
    if host.timedatectl is None:
        return _skipped(name, "timedatectl is not installed; check the time with `date`")
    command = [*host.timedatectl, "show", "-p", "NTPSynchronized", "--value"]
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=CLOCK_TIMEOUT_S, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return _skipped(name, f"timedatectl did not answer ({exc})")
    answer = done.stdout.strip()
    if done.returncode != 0 or answer not in ("yes", "no"):
        why = (done.stderr.strip().splitlines() or [answer or "no answer"])[0]
        return _skipped(name, f"timedatectl cannot tell ({why})")
    if answer == "yes":
        return _ok(name, "synchronised by NTP")
    hint = (
        "rules and offers follow the time of day: `sudo timedatectl set-ntp true`, then "
        "`timedatectl timesync-status` (the Pi has no battery clock: it needs the network)"
    )
    return _failed(name, "not synchronised", hint)
