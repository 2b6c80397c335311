"""The exception tree, documented in one place.

RayonError
├── InvalidInput          exit code 1: a config, rule, trace or import file is wrong
│   └── ConfigError       carries every Diagnostic found (file:line:col, key path, hint)
└── RuntimeFailure        exit code 3: the world failed (broker, database, adapter)
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """One problem in a user's file, located to the 1-based line and column."""

    file: str
    line: int
    col: int
    message: str
    key_path: str = ""
    severity: Severity = Severity.ERROR

    def __str__(self) -> str:
        where = f" (at {self.key_path})" if self.key_path else ""
        return f"{self.file}:{self.line}:{self.col}: {self.severity}: {self.message}{where}"


class RayonError(Exception):
    """Base of every error Rayon raises on purpose."""

    exit_code = 3


class InvalidInput(RayonError):
    """The user's input is wrong; the message says what, where and how to fix it."""

    exit_code = 1


class ConfigError(InvalidInput):
    """A config or rule file failed validation; `diagnostics` lists every problem found."""

    def __init__(self, diagnostics: Iterable[Diagnostic]) -> None:
        self.diagnostics = tuple(diagnostics)
        super().__init__("\n".join(str(d) for d in self.diagnostics))


class UsageError(RayonError):
    """A command-line option has a value the command cannot use (exit code 2, as argparse)."""

    exit_code = 2


class RuntimeFailure(RayonError):
    """Something outside Rayon failed: broker, database, Bluetooth adapter."""

    exit_code = 3
