"""`rayon check`: the config, the rules with their inline tests and lints, the firmware."""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from datetime import datetime

from gateway.config.commandline import resolve_config
from gateway.config.load import load_config
from gateway.errors import ConfigError, Diagnostic, Severity
from gateway.locate.reach import lint_reach
from gateway.ops.firmware import check_firmware, firmware_folder
from gateway.rules.selftest import check_summary


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `rayon check`."""
    parser.add_argument(
        "--strict",
        action="store_true",
        help="count warnings (ended campaigns, rules that can never fire…) as errors",
    )


def run(args: argparse.Namespace) -> int:
    """Print every diagnostic and a closing count; 1 when one is an error, else 0."""
    path = resolve_config(args.config)
    try:
        config = load_config(path)
    except ConfigError as exc:
        for d in exc.diagnostics:
            print(d)
        errors = sum(d.severity is Severity.ERROR for d in exc.diagnostics)
        print(f"{path}: FAILED: the config has {errors} error(s): no rule checked", file=sys.stderr)
        return 1
    summary = check_summary(config, datetime.now(config.store.timezone).date())
    diagnostics = lint_reach(config) + summary.diagnostics
    diagnostics += check_firmware(config, firmware_folder(config))
    if args.strict:
        diagnostics = [_strict(d) for d in diagnostics]
    for d in diagnostics:
        print(d)
    errors = sum(d.severity is Severity.ERROR for d in diagnostics)
    warnings = len(diagnostics) - errors
    counts = (
        f"{summary.rules} rule(s), {summary.passed} of {summary.tests} test(s) passed, "
        f"{errors} error(s), {warnings} warning(s)"
    )
    print(f"{path}: {'FAILED' if errors else 'ok'}: {counts}", file=sys.stderr)
    return 1 if errors else 0


def _strict(d: Diagnostic) -> Diagnostic:
    return replace(d, severity=Severity.ERROR) if d.severity is Severity.WARNING else d
