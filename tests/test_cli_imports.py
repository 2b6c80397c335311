"""The `rayon` command table: every command has help, and a command imports only what it needs.

Building the parser imports no command's module; `rayon run` (its parse and what the daemon
imports up to connecting) imports nothing of the offline tools, the reports, the simulator or
the tooling, which the product never imports.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator, Sequence

import pytest

from gateway.cli.commands import COMMANDS
from gateway.cli.main import main
from gateway.cli.registry import Command
from rayon_tooling.benchmarks.cli import BENCHMARKS
from tests.stores import ROOT

NOT_FOR_RUN = (
    "rayon_tooling",
    "gateway.offline",
    "gateway.report",
    "gateway.sim",
    "gateway.console",
)
# docs/design.md §7, the commands that exist
DESIGN_COMMANDS = (
    "run", "demo", "check", "scan", "decode", "replay", "simulate", "backtest", "explain",
    "report", "customers", "forget", "firmware", "bench", "calibrate",
)  # fmt: skip


def modules_after(code: str) -> list[str]:
    """The modules a fresh interpreter holds after running `code` (from the repository root)."""
    script = f"import json, sys\n{textwrap.dedent(code)}\nprint(json.dumps(sorted(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    loaded: list[str] = json.loads(done.stdout.splitlines()[-1])
    return loaded


def under(modules: Sequence[str], packages: Sequence[str]) -> list[str]:
    return [m for m in modules if any(m == p or m.startswith(f"{p}.") for p in packages)]


def every_command() -> Iterator[tuple[tuple[str, ...], Command]]:
    """Each command and action of the table, with the words that name it after `rayon`."""

    def walk(
        path: tuple[str, ...], commands: Sequence[Command]
    ) -> Iterator[tuple[tuple[str, ...], Command]]:
        for command in commands:
            words = (*path, command.name)
            yield words, command
            yield from walk(words, command.children)
            if words == ("bench",):  # its actions are added by its module
                yield from walk(words, BENCHMARKS)

    return walk((), COMMANDS)


def test_building_the_parser_and_parsing_run_help_imports_no_other_command() -> None:
    loaded = modules_after(
        """
        from gateway.cli.main import build_parser
        parser = build_parser()
        try:
            parser.parse_args(["run", "--help"])
        except SystemExit:
            pass
        """
    )
    assert under(loaded, NOT_FOR_RUN) == []
    others = {c.module for _, c in every_command() if c.module and c.module != "gateway.cli.run"}
    assert others.isdisjoint(loaded), sorted(others & set(loaded))


def test_rayon_run_imports_nothing_of_the_tools_up_to_connecting() -> None:
    # What `main` does for `rayon run` before the daemon connects: parse, import the command's
    # module, import the daemon, load the config.
    loaded = modules_after(
        """
        from gateway.config.commandline import config_of
        from gateway.cli.main import build_parser
        args = build_parser().parse_args(["run", "-c", "config.example.yaml"])
        assert args.entry.handler().__module__ == "gateway.cli.run"
        import gateway.runtime.daemon
        config_of(args)
        """
    )
    assert "gateway.runtime.daemon" in loaded and "gateway.runtime.app" in loaded
    assert under(loaded, NOT_FOR_RUN) == []


def test_rayon_help_lists_every_command_of_the_table_and_of_the_design(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["--help"]) == 0
    lines = capsys.readouterr().out.splitlines()
    listed = {line.split()[0] for line in lines if line.startswith("    ") and line.strip()}
    assert {c.name for c in COMMANDS} <= listed
    assert set(DESIGN_COMMANDS) <= listed


@pytest.mark.parametrize(
    ("words", "command"),
    [pytest.param(w, c, id=" ".join(w)) for w, c in every_command()],
)
def test_every_command_has_help_and_its_help_exits_0(
    words: tuple[str, ...], command: Command, capsys: pytest.CaptureFixture[str]
) -> None:
    assert command.help.strip() and "issue" not in command.help
    assert main([*words, "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: rayon {' '.join(words)} ")
    assert "--config" in out
