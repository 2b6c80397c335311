"""The store console end to end, as a store manager meets it: a real Mosquitto, the simulated
store (`rayon demo`, the same Gateway as `rayon run`) writing a real SQLite database, and
`rayon console` as its own process, for the browser tests (Playwright driving Debian's
Chromium) and `bench/bench_console.py`.

The demo runs from now (`--start now`) while the store may send offers, else from today at 10:00
or 15:00 (`open_hours_start`), so the database's visits are today's and every page reads them
as the store's present.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from tests.broker import Mosquitto, free_port
from tests.stores import ROOT, rayon, reference_store

PASSWORD = "correct horse battery"
STORE_TZ = ZoneInfo("Europe/Paris")  # config.example.yaml's store.timezone
USERS = {"vera": "viewer", "marc": "marketer", "olga": "ops"}


@dataclass
class ConsoleLab:
    """One store folder: config.yaml (the reference store on this broker, its rules copied
    so a test may break one, a `console:` section on a free port), the console's users."""

    folder: Path
    broker: Mosquitto
    port: int = field(default_factory=free_port)
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def __post_init__(self) -> None:
        shutil.copytree(ROOT / "rules", self.folder / "rules")
        console = {
            "listen": f"127.0.0.1:{self.port}",
            "users_file": str(self.folder / "console" / "users"),
            "secret_file": str(self.folder / "console" / "session.key"),
            "audit_log": str(self.folder / "console" / "audit.log"),
        }
        self.config = reference_store(
            self.folder, port=self.broker.port, rules_dir="rules", console=console
        )
        (self.folder / "console").mkdir(mode=0o700)
        for name, role in USERS.items():
            done = rayon(
                "console", "user", "add", name, "--role", role, "--password-stdin",
                "-c", str(self.config), stdin=PASSWORD + "\n",
            )  # fmt: skip
            assert done.returncode == 0, done.stderr

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def database(self) -> Path:
        return self.folder / "rayon.db"

    def start_store(
        self,
        *,
        shoppers: int = 20,
        minutes: float = 4.0,
        speed: float = 2.0,
        start: str | None = None,
    ) -> None:
        """The simulated store, `minutes` of store time at `speed` × real time, from `start`
        (`--start` of `rayon demo`; default: `open_hours_start()`)."""
        args = ["demo", "-c", str(self.config), "--database", str(self.database), "--quiet"]
        args += ["--shoppers", str(shoppers), "--minutes", str(minutes), "--speed", str(speed)]
        self._spawn([*args, "--start", start or open_hours_start()], "demo.log")
        deadline = time.monotonic() + 30
        while not self.database.exists() and time.monotonic() < deadline:
            time.sleep(0.1)

    def start_console(self) -> subprocess.Popen[bytes]:
        """`rayon console` on its port; returns once /healthz answers."""
        proc = self._spawn(["console", "-c", str(self.config)], "console.log")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise AssertionError(f"rayon console exited: {self.log('console.log')}")
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=1) as answer:
                    if answer.status == 200:
                        return proc
            except (urllib.error.URLError, OSError):
                time.sleep(0.1)
        raise AssertionError(f"rayon console did not answer: {self.log('console.log')}")

    def log(self, name: str) -> str:
        path = self.folder / name
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def _spawn(self, args: list[str], log: str) -> subprocess.Popen[bytes]:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        with (self.folder / log).open("ab") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "gateway", *args],
                cwd=ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
            )
        self.procs.append(proc)
        return proc


def open_hours_start(now: datetime | None = None) -> str:
    """`now` while the reference store may send offers (its policy's quiet hours are 21:00 to
    08:00), else today at 10:00 or 15:00 store time: the offers the tests wait for come at
    any hour CI runs, and the visits stay today's (the KPIs' default days, the traces' week).
    RAYON_TEST_STORE_START overrides it (to try the other hours by day)."""
    forced = os.environ.get("RAYON_TEST_STORE_START")
    if forced:
        return forced
    local = now or datetime.now(STORE_TZ)
    if 8 <= local.hour < 20:
        return "now"
    opening = local.replace(hour=10 if local.hour < 8 else 15, minute=0, second=0, microsecond=0)
    return opening.replace(tzinfo=None).isoformat()


@contextmanager
def console_lab(folder: Path, broker: Mosquitto) -> Iterator[ConsoleLab]:
    lab = ConsoleLab(folder, broker)
    try:
        yield lab
    finally:
        lab.stop()


def wait_until(page: Any, check: Callable[[], bool], timeout_s: float = 30.0) -> None:
    """Poll `check` (which reads the page through locators) until it holds.  Not Playwright's
    `wait_for_function`: its polling evaluates a string in the page, which the console's
    Content-Security-Policy (script-src 'self', no eval) rightly refuses."""
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not true after {timeout_s:g} s: {check.__doc__ or check}")
        page.wait_for_timeout(100)


def digits(text: str | None) -> str:
    return "".join(c for c in text or "" if c.isdigit())


def log_in(page: Any, lab: ConsoleLab, user: str, password: str = PASSWORD) -> None:
    """Fill and send the login form as a person would."""
    page.goto(lab.url + "/login")
    page.fill("#name", user)
    page.fill("#password", password)
    page.click("#login")
