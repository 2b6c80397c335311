"""`rayon schema rules`: the JSON Schemas of the rule files, for editors."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gateway.config.commandline import config_of
from gateway.config.model import Config
from gateway.errors import InvalidInput
from gateway.rules.schema.export import write_schemas


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `rayon schema rules`."""
    parser.add_argument(
        "-o", "--output", default=".vscode", help="folder to write the schemas to (default .vscode)"
    )


def run(args: argparse.Namespace) -> int:
    """Write the schemas (with the config's zone ids when there is a config); 0."""
    try:
        config: Config | None = config_of(args)
    except InvalidInput as exc:  # a schema without the config's zone ids still helps
        print(f"rayon: {exc}; writing the schemas without zone completion", file=sys.stderr)
        config = None
    for path in write_schemas(Path(args.output), config):
        print(f"wrote {path}", file=sys.stderr)
    return 0
