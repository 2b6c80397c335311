"""`rayon check`: the config, the rules with their inline tests, the rendered firmware."""

from __future__ import annotations

import argparse
import sys

from gateway.config.commandline import resolve_config
from gateway.config.load import load_config
from gateway.errors import ConfigError, Severity
from gateway.ops.firmware import check_firmware, firmware_folder
from gateway.rules.selftest import check_rules


def run(args: argparse.Namespace) -> int:
    """Print every diagnostic; 1 when one is an error, else 0."""
    path = resolve_config(args.config)
    try:
        config = load_config(path)
    except ConfigError as exc:
        for d in exc.diagnostics:
            print(d)
        return 1
    diagnostics = check_rules(config) + check_firmware(config, firmware_folder(config))
    for d in diagnostics:
        print(d)
    errors = sum(d.severity is Severity.ERROR for d in diagnostics)
    warnings = len(diagnostics) - errors
    print(
        f"{path}: {'FAILED' if errors else 'ok'}: {errors} error(s), {warnings} warning(s)",
        file=sys.stderr,
    )
    return 1 if errors else 0
