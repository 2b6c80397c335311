"""`rayon console`: the store console, a web application of its own (docs/console.md), and
`rayon console user add|remove|list`, its users file."""

from __future__ import annotations

import argparse
import getpass
import ipaddress
import sys

import uvicorn

from gateway.cli.registry import Command, add_commands
from gateway.clock import SystemClock
from gateway.config.commandline import resolve_config
from gateway.config.load import load_config
from gateway.config.model import Config
from gateway.console.app import build_app, build_console
from gateway.console.live import LiveFeed
from gateway.console.memory import return_large_blocks
from gateway.console.users import Role, UsersFile
from gateway.errors import UsageError

ROLES = ("viewer", "marketer", "ops")
MIN_PASSWORD = 10

USER_COMMANDS = (
    Command(
        "user",
        "the console's users (the users file, console.users_file)",
        children=(
            Command(
                "add",
                "add a user, or set an existing user's role and password",
                "gateway.cli.console",
                arguments="add_user_arguments",
                run="run_user_add",
            ),
            Command(
                "remove",
                "remove a user",
                "gateway.cli.console",
                arguments="name_argument",
                run="run_user_remove",
            ),
            Command(
                "list",
                "list the users and their roles",
                "gateway.cli.console",
                arguments="",
                run="run_user_list",
            ),
        ),
    ),
)
CONSOLE = Command("console", "the store console", "gateway.cli.console")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """`rayon console [--listen HOST:PORT]` and its `user` actions."""
    parser.add_argument(
        "--listen",
        metavar="HOST:PORT",
        help="where to listen (default console.listen, 127.0.0.1:8080); off the loopback "
        "only with console.tls",
    )
    add_commands(parser, USER_COMMANDS, required=False)
    parser.set_defaults(handler="console", entry=CONSOLE)


def add_user_arguments(parser: argparse.ArgumentParser) -> None:
    """`rayon console user add NAME --role ROLE [--password-stdin]`."""
    name_argument(parser)
    parser.add_argument("--role", required=True, choices=ROLES, help="what the user may see")
    parser.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from the first line of standard input (else asked twice)",
    )


def name_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", metavar="NAME", help="the user's login name")


def parse_listen(text: str) -> tuple[str, int]:
    """`host:port` or `[v6]:port` as (host, port); UsageError saying the form."""
    host, sep, port = text.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f"--listen {text!r}: write HOST:PORT, e.g. 127.0.0.1:8080 or [::1]:8080")
    return host, int(port)


def is_loopback(host: str) -> bool:
    """Whether `host` is this machine only (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _config(args: argparse.Namespace) -> Config:
    return load_config(resolve_config(args.config))


def run(args: argparse.Namespace) -> int:
    """Serve the console until stopped; 1 when asked to listen off the loopback without TLS."""
    config = _config(args)
    listen = args.listen or config.console.listen
    host, port = parse_listen(listen)
    tls = config.console.tls
    if not is_loopback(host) and tls is None:
        print(
            f"rayon console: refusing to listen on {listen} without TLS: set console.tls "
            "(cert_file and key_file) in the config, or listen on 127.0.0.1",
            file=sys.stderr,
        )
        return 1
    serve(config, host, port)
    return 0


def serve(config: Config, host: str, port: int) -> None:
    """uvicorn with the console's app (and TLS from console.tls)."""
    return_large_blocks()  # each login's 16 MB scrypt block goes back to the system
    console = build_console(config, SystemClock())
    app = build_app(console, LiveFeed(config, console.live, console.fanout))
    tls = config.console.tls
    uvicorn.run(
        app,
        host=host,
        port=port,
        ssl_certfile=str(tls.cert_file) if tls and tls.cert_file else None,
        ssl_keyfile=str(tls.key_file) if tls and tls.key_file else None,
        proxy_headers=False,
        server_header=False,
        log_config=None,
    )


def _password(from_stdin: bool) -> str:
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != password:
            raise UsageError("the two passwords differ: nothing changed")
    if len(password) < MIN_PASSWORD:
        raise UsageError(f"the password is too short: at least {MIN_PASSWORD} characters")
    return password


def run_user_add(args: argparse.Namespace) -> int:
    """Add (or replace) a user of the console's users file."""
    config = _config(args)
    password = _password(args.password_stdin)
    UsersFile(config.console.users_file).add(args.name, Role(args.role), password)
    print(f"{args.name}: {args.role} in {config.console.users_file}")
    return 0


def run_user_remove(args: argparse.Namespace) -> int:
    """Remove a user; 1 when there was none of that name."""
    config = _config(args)
    if not UsersFile(config.console.users_file).remove(args.name):
        print(f"no user {args.name!r} in {config.console.users_file}", file=sys.stderr)
        return 1
    print(f"{args.name}: removed from {config.console.users_file}")
    return 0


def run_user_list(args: argparse.Namespace) -> int:
    """One `name role` line per user."""
    config = _config(args)
    path = config.console.users_file
    users = UsersFile(path).users() if path.exists() else []
    for user in users:
        print(f"{user.name}\t{user.role.value}")
    return 0
