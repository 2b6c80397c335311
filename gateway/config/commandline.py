"""What every command's `run(args)` needs from its arguments: the config, local times."""

from __future__ import annotations

import argparse
from pathlib import Path

from gateway.clock import parse_local_time
from gateway.config.load import load_config
from gateway.config.model import Config
from gateway.errors import InvalidInput

DEFAULT_CONFIGS = (Path("config.yaml"), Path("/etc/rayon/config.yaml"))


def resolve_config(arg: str | None) -> Path:
    """The -c path, else ./config.yaml, else /etc/rayon/config.yaml."""
    if arg:
        path = Path(arg)
        if not path.is_file():
            raise InvalidInput(f"{arg}: no such config file (pass -c PATH to the config.yaml)")
        return path
    for candidate in DEFAULT_CONFIGS:
        if candidate.is_file():
            return candidate
    raise InvalidInput(
        "no config found: pass -c PATH, or create ./config.yaml or /etc/rayon/config.yaml "
        "(start from config.example.yaml)"
    )


def config_of(args: argparse.Namespace) -> Config:
    """The config that -c names (or the default one), loaded and checked."""
    return load_config(resolve_config(args.config))


def local_time(text: str, config: Config) -> float:
    """An ISO 8601 time, local to the store unless it carries an offset, as epoch seconds."""
    try:
        return parse_local_time(text, config.store.timezone)
    except ValueError as exc:
        raise InvalidInput(str(exc)) from None
