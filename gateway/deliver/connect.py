"""Connecting to the store's broker as the gateway (or one of its commands)."""

from __future__ import annotations

import json
import uuid

from gateway import __version__
from gateway.config import Config
from gateway.deliver.mqtt import MqttLink
from gateway.deliver.payloads import status_payload
from gateway.deliver.topics import Topics
from gateway.errors import RuntimeFailure

GATEWAY_SESSION_S = 3600  # how long the broker queues for a restarting gateway


async def connect_link(
    config: Config, *, client_suffix: str = "gw", persistent: bool = False, will: bool = True
) -> MqttLink:
    """An MQTT v5 link to the configured broker, with the offline status as its will.

    `persistent` (the daemon): a stable client id and a session the broker keeps for
    GATEWAY_SESSION_S, so that feedback and CRM updates sent while the gateway restarts are
    queued for it instead of lost.  Other commands get a fresh id and a clean session.
    `will=False` (rayon doctor): no last will, so a killed probe never says "offline" for the
    running daemon.
    """
    m = config.mqtt
    password = None
    if m.password_file is not None:
        try:
            password = m.password_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise RuntimeFailure(
                f"cannot read mqtt.password_file {m.password_file}: {exc}"
            ) from exc
    topics = Topics(m.topic_prefix, config.store.id)
    client_id = m.client_id or (
        f"rayon-{config.store.id}-gateway"
        if persistent
        else f"rayon-{config.store.id}-{client_suffix}-{uuid.uuid4().hex[:6]}"
    )
    offline = status_payload("offline", __version__, None, tz=config.store.timezone)
    last_will = (topics.status(), json.dumps(offline).encode())
    link = MqttLink(
        host=m.host,
        port=m.port,
        client_id=client_id,
        username=m.username,
        password=password,
        tls=m.tls,
        keepalive=m.keepalive_s,
        will=last_will if will else None,
        session_expiry_s=GATEWAY_SESSION_S if persistent else None,
    )
    await link.connect()
    return link
