"""The console under test: the reference store's config with the console's files in a
temporary folder, a manual clock, real users, session key and audit log files."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

from starlette.testclient import TestClient

from gateway.clock import ManualClock
from gateway.config.load import load_config
from gateway.config.model import Config, ConsoleConfig
from gateway.console.app import build_console
from gateway.console.users import Role, UsersFile
from gateway.console.web import Console
from tests.stores import reference_store

START = 1_772_524_800.0  # 2026-03-03 09:00 Paris
PASSWORDS = {"vera": "viewer-pass-123", "mark": "marketer-pass-123", "otto": "ops-pass-12345"}
ROLES = {"vera": Role.VIEWER, "mark": Role.MARKETER, "otto": Role.OPS}
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def console_config(folder: Path, *, port: int = 1, **console: Any) -> Config:
    """The reference store with its console's files in `folder` (and `console` overrides)."""
    config = load_config(reference_store(folder, port=port))
    settings = ConsoleConfig(
        users_file=folder / "console-users",
        secret_file=folder / "session.key",
        audit_log=folder / "audit.log",
    )
    return replace(config, console=replace(settings, **console))


def make_console(config: Config, clock: ManualClock) -> Console:
    """The console's objects, with the three users of PASSWORDS in its users file."""
    users = UsersFile(config.console.users_file)
    for name, password in PASSWORDS.items():
        users.add(name, ROLES[name], password)
    return build_console(config, clock)


def csrf_of(html: str) -> str:
    found = _CSRF.search(html)
    assert found is not None, html
    return found.group(1)


def log_in(client: TestClient, name: str, password: str | None = None) -> Any:
    """Log in through the form as a browser would; the response of the POST."""
    form = client.get("/login")
    data = {"name": name, "password": password or PASSWORDS[name], "csrf": csrf_of(form.text)}
    return client.post("/login", data=data, follow_redirects=False)


def audit_lines(config: Config) -> list[dict[str, Any]]:
    path = config.console.audit_log
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]
