"""How `rayon` commands are declared and loaded: a table of `Command` records.

A command names, as a dotted string, the module that drives it; that module is imported only
when the command is parsed (for its options) or run, never to build `rayon --help`.  So
`rayon run` imports what the daemon needs and nothing of the offline tools, the reports, the
simulator or the benchmarks.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast

Handler = Callable[[argparse.Namespace], int]


@dataclass(frozen=True, slots=True)
class Command:
    """One `rayon` command (or one action of a group such as `rayon codes import`).

    `module` is a dotted module name whose function `arguments(parser)` adds the command's
    options and whose function `run(args) -> int` runs it and returns the exit code; most
    modules drive one command and keep the default names.  A group has `children` instead of
    a module (or a module whose `arguments` adds the children itself, as `rayon bench`).
    """

    name: str
    help: str
    module: str = ""
    description: str = ""  # `rayon NAME --help` (default: `help`)
    children: tuple[Command, ...] = ()
    arguments: str = "add_arguments"
    run: str = "run"

    def function(self, attribute: str) -> Callable[..., Any]:
        """`module.attribute`, importing the module now."""
        found = getattr(importlib.import_module(self.module), attribute)
        return cast(Callable[..., Any], found)

    def handler(self) -> Handler:
        """The function that runs this command."""
        return cast(Handler, self.function(self.run))


class CommandParser(argparse.ArgumentParser):
    """The parser of one command: its options are added on first use, not when it is built.

    argparse hands the rest of the command line to a sub-command's parser through
    `parse_known_args`; that (or formatting its help) is when the command's module is imported.
    """

    def __init__(
        self, *args: Any, command: Command | None = None, path: tuple[str, ...] = (), **kw: Any
    ) -> None:
        super().__init__(*args, **kw)
        self.command = command
        self.path = path  # ("bench", "rules"): the command's words after `rayon`
        self._loaded = command is None

    def load(self) -> None:
        """Add the command's options (importing its module), once."""
        if self._loaded or self.command is None:
            return
        self._loaded = True
        add_common(self)
        command = self.command
        if command.children:
            add_commands(self, command.children)
        else:  # the module may change it: `rayon bench` alone runs `rayon bench all`
            self.set_defaults(handler="_".join(self.path), entry=command)
        if command.module and command.arguments:
            command.function(command.arguments)(self)

    def parse_known_args(  # type: ignore[override]  # one signature for the overloads
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        self.load()
        return super().parse_known_args(args, namespace)

    def format_help(self) -> str:
        self.load()
        return super().format_help()

    def format_usage(self) -> str:
        self.load()
        return super().format_usage()


def add_common(parser: argparse.ArgumentParser) -> None:
    """-c/--config and -v/--verbose, taken by every command (docs/design.md §7).

    Their defaults are on the top-level parser (`set_common_defaults`): a value given to a
    group (`rayon bench -c X rules`) is not then reset by the action's parser.
    """
    parser.add_argument(
        "-c",
        "--config",
        default=argparse.SUPPRESS,
        help="config file (default ./config.yaml, /etc/rayon/config.yaml)",
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help="debug logging"
    )


def set_common_defaults(parser: argparse.ArgumentParser) -> None:
    """The defaults of `add_common`'s options, on the top-level parser."""
    parser.set_defaults(config=None, verbose=False)


def add_commands(
    parser: argparse.ArgumentParser, commands: Sequence[Command], *, required: bool = True
) -> None:
    """One sub-command of `parser` per record of `commands`; no command module is imported."""
    path = parser.path if isinstance(parser, CommandParser) else ()
    dest = f"{path[-1]}_command" if path else "command"
    metavar = "ACTION" if path else "COMMAND"
    sub = parser.add_subparsers(
        dest=dest, metavar=metavar, required=required, parser_class=CommandParser
    )
    for command in commands:
        sub.add_parser(
            command.name,
            help=command.help,
            description=command.description or command.help,
            command=command,
            path=(*path, command.name),
        )
