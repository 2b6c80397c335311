"""Connecting to the store's broker as the gateway (or one of its commands)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from gateway import __version__
from gateway.config.model import Config
from gateway.deliver.mqtt import MqttLink
from gateway.deliver.payloads import status_payload
from gateway.errors import RuntimeFailure
from gateway.topics import Topics

GATEWAY_SESSION_S = 3600  # how long the broker queues for a restarting gateway


async def connect_link(
    config: Config,
    *,
    client_suffix: str = "gw",
    persistent: bool = False,
    will: bool = True,
    queue_size: int = 1000,
) -> MqttLink:
    """An MQTT v5 link to the configured broker, with the offline status as its will.

    `persistent` (the daemon): a stable client id and a session the broker keeps for
    GATEWAY_SESSION_S, so that feedback and CRM updates sent while the gateway restarts are
    queued for it instead of lost.  Other commands get a fresh id and a clean session.
    `will=False` (rayon doctor): no last will, so a killed probe never says "offline" for the
    running daemon.  Other commands log in with `mqtt.tools` when the config gives it.
    """
    m = config.mqtt
    login = None if persistent else m.tools
    username = login.username if login is not None else m.username
    secret = login.password_file if login is not None else m.password_file
    password = read_password(secret, "mqtt.tools.password_file" if login else "mqtt.password_file")
    topics = Topics(m.topic_prefix, config.store.id)
    client_id = (
        gateway_client_id(config)
        if persistent
        else (f"rayon-{config.store.id}-{client_suffix}-{uuid.uuid4().hex[:6]}")
    )
    offline = status_payload("offline", __version__, None, tz=config.store.timezone)
    last_will = (topics.status(), json.dumps(offline).encode())
    link = MqttLink(
        host=m.host,
        port=m.port,
        client_id=client_id,
        username=username,
        password=password,
        tls=m.tls,
        keepalive=m.keepalive_s,
        will=last_will if will else None,
        session_expiry_s=GATEWAY_SESSION_S if persistent else None,
        queue_size=queue_size,
    )
    await link.connect()
    return link


async def connect_crm_link(config: Config) -> MqttLink:
    """The daemon's second connection, for the CRM's customer records only: its own client id
    (`<gateway client id>-crm`), login (`mqtt.crm`, else the gateway's) and persistent
    session, and a queue that never drops.  So no app traffic, however heavy, can delay or
    push out a consent withdrawal: the broker queues those for this session alone."""
    m = config.mqtt
    login = m.crm
    username = login.username if login is not None else m.username
    secret = login.password_file if login is not None else m.password_file
    where = "mqtt.crm.password_file" if login is not None else "mqtt.password_file"
    link = MqttLink(
        host=m.host,
        port=m.port,
        client_id=f"{gateway_client_id(config)}-crm",
        username=username,
        password=read_password(secret, where),
        tls=m.tls,
        keepalive=m.keepalive_s,
        queue_size=0,
        session_expiry_s=GATEWAY_SESSION_S,
    )
    await link.connect()
    return link


def gateway_client_id(config: Config) -> str:
    """The daemon's stable client id (its persistent session is keyed on it)."""
    return config.mqtt.client_id or f"rayon-{config.store.id}-gateway"


def read_password(path: Path | None, key: str) -> str | None:
    """The password in the file `path` (None without one); RuntimeFailure naming the config
    `key` when the file cannot be read."""
    if path is None:
        return None
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise RuntimeFailure(f"cannot read {key} {path}: {exc}") from exc
