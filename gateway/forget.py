"""`rayon forget CUSTOMER`: erase everything this gateway holds about one customer.

Three places hold a customer: the database (profile, offers and their feedback, zone events,
visits, positions, the codes they were given), the live state saved for restarts (zone and
visit timers of their devices, the rules' visit context), and the broker (the back office's
retained `crm/customers/<id>` record, from which a restarting gateway would learn them
again).  In that order: the database, then the saved live state (replayed through the
pipeline's own erase, so nothing of the other customers' state is lost), then an empty
retained message on the CRM topic, which clears the record and makes a running gateway
forget the customer at once, as when the back office erases them.
"""

from __future__ import annotations

import asyncio
import sys
import time

from gateway.app import RUNTIME_KEY
from gateway.config import Config
from gateway.deliver.topics import Topics
from gateway.errors import RuntimeFailure
from gateway.identity import CustomerRegistry
from gateway.pipeline import Pipeline
from gateway.rules import load_rules
from gateway.sources.trace import MqttInput
from gateway.store import Store

BROKER_TIMEOUT_S = 5.0


def run_forget(config: Config, customer_id: str, *, broker: bool = True) -> int:
    """Erase the customer; 0 when done everywhere, 3 when the broker could not be told."""
    rules = load_rules(config.rules_dir, config)  # invalid rules: exit 1 before erasing
    topics = Topics(config.mqtt.topic_prefix, config.store.id)
    store = Store(config.database.url)
    try:
        customers = store.load_customers()
        state = store.load_runtime(RUNTIME_KEY)
        erased = store.erase_customer(customer_id)
        if state is not None:
            now = time.time()
            pipeline = Pipeline(config, rules, CustomerRegistry(customers))
            pipeline.restore(state, [])
            pipeline.on_mqtt(MqttInput(now, topics.crm_customer(customer_id), b""))
            store.commit(runtime={RUNTIME_KEY: pipeline.snapshot()}, at=now)
    finally:
        store.close()
    found = ", ".join(f"{n} {table.replace('_', ' ')}" for table, n in erased.items() if n)
    print(
        f"customer {customer_id}: "
        + (f"erased {found}" if found else "nothing stored in the database")
        + ("; saved live state cleaned" if state is not None else "")
    )
    if not broker:
        return 0
    topic = topics.crm_customer(customer_id)
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
