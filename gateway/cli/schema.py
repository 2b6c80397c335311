"""`rayon schema rules` and `rayon schema config`: JSON Schemas for editors."""

from __future__ import annotations

import argparse
import json
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


def run_config(args: argparse.Namespace) -> int:
    """Write the JSON Schema of config.yaml into -o DIR; 0."""
    from gateway.config.schema import CONFIG_SCHEMA_FILE, config_schema

    folder = Path(args.output)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / CONFIG_SCHEMA_FILE
    path.write_text(json.dumps(config_schema(), indent=2, ensure_ascii=False) + "\n", "utf-8")
    print(f"wrote {path}", file=sys.stderr)
    return 0
