"""`rayon bridge render`: print (or write) the store broker's bridge section to the centre."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `rayon bridge render`."""
    parser.add_argument(
        "-o",
        "--output",
        type=Path,
        help="write here (e.g. /etc/mosquitto/conf.d/rayon-bridge.conf)",
    )
    parser.add_argument("--address", help="host:port of the central broker (default: config)")
    parser.add_argument(
        "--plain", action="store_true", help="no TLS (a lab on one machine; never across a WAN)"
    )


def run(args: argparse.Namespace) -> int:
    """Render the section from the config that -c names."""
    from gateway.central.bridge import render_bridge
    from gateway.config.commandline import config_of

    text = render_bridge(config_of(args), address=args.address, plain=args.plain)
    if args.output is None:
        print(text, end="")
    else:
        args.output.write_text(text, encoding="utf-8")
    return 0
