"""`rayon customers import FILE`: customers from JSON Lines or CSV into the database."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gateway.config.commandline import config_of
from gateway.identity.customers import read_customers
from gateway.store.repo import Store


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments of `rayon customers import`."""
    parser.add_argument("file")


def run(args: argparse.Namespace) -> int:
    """Import the good lines, report the bad ones; 1 when a line was rejected, else 0."""
    config = config_of(args)
    customers, errors = read_customers(Path(args.file))
    for message in errors:
        print(message, file=sys.stderr)
    store = Store(config.database.url)
    try:
        for customer in customers:
            store.upsert_customer(customer)
    finally:
        store.close()
    print(f"imported {len(customers)} customer(s), {len(errors)} line(s) rejected", file=sys.stderr)
    return 1 if errors else 0
