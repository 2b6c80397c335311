"""`rayon codes import POOL FILE`: unique codes into a code pool (`code_pool:` offers)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gateway.config.commandline import config_of
from gateway.errors import InvalidInput
from gateway.store.repo import Store


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments of `rayon codes import`."""
    parser.add_argument("pool")
    parser.add_argument("file")


def run(args: argparse.Namespace) -> int:
    """Add the file's codes to the pool, say how many were new and how many are free; 0."""
    config = config_of(args)
    try:
        lines = Path(args.file).read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise InvalidInput(f"{args.file}: {exc.strerror}") from None
    codes = [c for c in (line.split(",")[0].strip() for line in lines) if c and c[0] != "#"]
    store = Store(config.database.url)
    try:
        added = store.import_codes(args.pool, codes)
        free = sum(1 for p, _, _, at in store.codes() if p == args.pool and at is None)
    finally:
        store.close()
    print(
        f"pool {args.pool}: {added} new code(s) imported, {len(codes) - added} already there; "
        f"{free} free",
        file=sys.stderr,
    )
    return 0
