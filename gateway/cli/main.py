"""`rayon` — the command line (docs/design.md §7).

The commands are the table of `gateway.cli.commands`; each command's module is imported only
when that command is parsed or run (`gateway.cli.registry`).

Exit codes: 0 ok, 1 invalid input, 2 usage, 3 runtime failure.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from gateway import __version__
from gateway.cli.commands import COMMANDS
from gateway.cli.registry import Command, add_commands, set_common_defaults
from gateway.errors import RayonError
from gateway.runtime.logs import setup_logging

log = logging.getLogger("gateway")


def build_parser() -> argparse.ArgumentParser:
    """The `rayon` parser: one sub-command per record of the table, none of them loaded yet."""
    parser = argparse.ArgumentParser(
        prog="rayon",
        description="Rayon: BLE beacons to aisle zones to marketers' rules to offers over MQTT.",
    )
    parser.add_argument("--version", action="version", version=f"rayon {__version__}")
    set_common_defaults(parser)
    add_commands(parser, COMMANDS)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line, run the command, return its exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    setup_logging(
        args.verbose,
        getattr(args, "log_format", "text"),
        under_systemd=bool(os.environ.get("JOURNAL_STREAM")),
    )
    command: Command = args.entry
    try:
        return command.handler()(args)
    except RayonError as exc:
        print(f"rayon: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
