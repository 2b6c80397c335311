"""`rayon forget CUSTOMER`: erase everything this gateway holds about one customer.

Four places hold a customer: the database (profile, offers and their feedback, zone events,
visits, positions, the codes they were given), the live state saved for restarts (zone and
visit timers of their devices, the rules' visit context), the rolling recording (their
adverts and sightings, `record`), and the broker (the back office's retained
`crm/customers/<id>` record, from which a restarting gateway would learn them again).  In
that order: the database, then the saved live state (replayed through the pipeline's own
erase, so nothing of the other customers' state is lost), then the recording's segments
(rewritten without their lines), then an empty retained message on the CRM topic, which
clears the record and makes a running gateway forget the customer at once, as when the back
office erases them (it also rewrites away what it recorded of them since).

The id is checked first (gateway.ids): one breaking the rule that nobody has is an error
and nothing is touched; one imported before the rule existed (`/`, `+` …) is erased from
the database and the live state, and the broker step is skipped: no topic can name it.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time

from gateway.config.commandline import config_of
from gateway.config.model import Config
from gateway.decode.privacy import PrivacyFilter
from gateway.errors import RuntimeFailure
from gateway.identity.model import Customer, CustomerRegistry
from gateway.ids import customer_id_problem
from gateway.pipeline import Pipeline
from gateway.rules.load import load_rules
from gateway.rules.model import RuleSet
from gateway.store.persist import RUNTIME_KEY
from gateway.store.recording import Whose, forget_in
from gateway.store.repo import Store
from gateway.topics import Topics

BROKER_TIMEOUT_S = 5.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments of `rayon forget`."""
    parser.add_argument("customer", help="customer id (as in the CRM)")
    parser.add_argument(
        "--offline",
        action="store_true",
        help="do not contact the broker (the gateway is stopped and no retained record exists)",
    )


def run(args: argparse.Namespace) -> int:
    """`rayon forget` with the config that -c names."""
    return run_forget(config_of(args), args.customer, broker=not args.offline)


def run_forget(config: Config, customer_id: str, *, broker: bool = True) -> int:
    """Erase the customer; 0 when done everywhere, 3 when the broker could not be told,
    1 when the id breaks the id rule and nobody has it (nothing is touched)."""
    problem = customer_id_problem(customer_id)
    rules = load_rules(config.rules_dir, config)  # invalid rules: exit 1 before erasing
    store = Store(config.database.url, journal=config.central.enabled)
    try:
        customers = store.load_customers()
        if problem is not None and all(c.id != customer_id for c in customers):
            print(
                f"rayon forget: {customer_id!r}: {problem}; no customer in the database has "
                "this id, nothing erased",
                file=sys.stderr,
            )
            return 1
        erased, state = _erase_stored(config, rules, store, customers, customer_id)
    finally:
        store.close()
    recorded = _erase_recorded(config, [c for c in customers if c.id == customer_id])
    found = ", ".join(f"{n} {table.replace('_', ' ')}" for table, n in erased.items() if n)
    print(
        f"customer {customer_id}: "
        + (f"erased {found}" if found else "nothing stored in the database")
        + ("; saved live state cleaned" if state else "")
        + (f"; {recorded} recorded line(s) erased" if recorded else "")
    )
    if problem is not None:  # imported before the id rule
        print(
            f"broker not contacted: {problem}, and this id is not, so no retained record can "
            "exist on a crm/customers topic of it; erase them in the back office too"
        )
        return 0
    return _tell_broker(config, customer_id) if broker else 0


def _erase_stored(
    config: Config, rules: RuleSet, store: Store, customers: list[Customer], customer_id: str
) -> tuple[dict[str, int], bool]:
    """Erase the database rows, then the saved live state (through the pipeline's own erase,
    so nothing of the others is lost); the rows erased and whether there was a live state."""
    state = store.load_runtime(RUNTIME_KEY)
    erased = store.erase_customer(customer_id)
    if state is not None:
        now = time.time()
        pipeline = Pipeline(config, rules, CustomerRegistry(customers))
        pipeline.restore(state, [])
        pipeline.erase(customer_id)
        store.commit(runtime={RUNTIME_KEY: pipeline.snapshot()}, at=now)
    return erased, state is not None


def _erase_recorded(config: Config, customers: list[Customer]) -> int:
    """Rewrite the recording's segments without the customer's adverts and sightings."""
    folder = config.record_dir
    if not customers or not folder.is_dir():
        return 0
    ids = config.identity
    ours = PrivacyFilter(ids.proximity_uuids, ids.eddystone_namespaces)
    topics = Topics(config.mqtt.topic_prefix, config.store.id)
    return forget_in(folder, Whose.of(customers), ours, topics)


def _tell_broker(config: Config, customer_id: str) -> int:
    topic = Topics(config.mqtt.topic_prefix, config.store.id).crm_customer(customer_id)
    try:
        asyncio.run(_clear_retained(config, topic))
    except (TimeoutError, RuntimeFailure) as exc:
        m = config.mqtt
        print(
            f"rayon forget: the broker {m.host}:{m.port} was not told ({exc or 'no answer'}): "
            f"a running gateway still holds {customer_id} in memory and a retained record on "
            f"{topic} would bring them back; run this command again when the broker answers "
            "(the database is already erased)",
            file=sys.stderr,
        )
        return 3
    print(
        f"cleared the retained record {topic}: a running gateway forgets them now "
        "(erase them in the back office too, or its next sync brings them back)"
    )
    return 0


async def _clear_retained(config: Config, topic: str) -> None:
    from gateway.deliver.connect import connect_link

    async with asyncio.timeout(BROKER_TIMEOUT_S):
        link = await connect_link(config, client_suffix="forget", will=False)
        try:
            await link.publish(topic, b"", qos=1, retain=True)
        finally:
            await link.disconnect()
