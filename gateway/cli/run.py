"""`rayon run`: the daemon, until SIGTERM or SIGINT (`gateway.runtime.daemon`)."""

from __future__ import annotations

import argparse
import asyncio


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `rayon run`."""
    parser.add_argument(
        "--log-format",
        choices=("text", "json"),
        default="text",
        help="json: one object per line, for central log collection",
    )


def run(args: argparse.Namespace) -> int:
    """Load the config, run the daemon; its exit code."""
    from gateway.config.commandline import config_of
    from gateway.runtime.daemon import run_daemon

    return asyncio.run(run_daemon(config_of(args)))
