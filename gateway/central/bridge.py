"""`rayon bridge render`: the store Mosquitto's bridge to the chain's central broker.

Written from config.yaml (`central.bridge`, the store id, the topic prefix): the store's own
client certificate (no password in the file), `cleansession false` (the centre's broker keeps
the bridge's subscriptions and queues the centre's answers while the WAN is down), QoS 1, and
the store's own `chain/` topics only — Mosquitto does not check bridged messages against its
ACL, so these lines are the bridge's whole policy; the central broker's ACL confines the
certificate to the same topics (deploy/central/).
"""

from __future__ import annotations

from gateway.config.model import BridgeConfig, Config
from gateway.errors import RuntimeFailure
from gateway.topics import ChainLeaf, Topics

__all__ = ["render_bridge"]

_OUT = (ChainLeaf.BATCH,)
_IN = (ChainLeaf.ACK, ChainLeaf.BACKFILL, ChainLeaf.ERASED)


def render_bridge(
    config: Config, *, address: str | None = None, plain: bool = False, restart: str = "5 120"
) -> str:
    """The bridge section (mosquitto.conf syntax).  `address` overrides `central.bridge`'s
    host:port; `plain` leaves TLS out (a lab or a test; never across a WAN).  RuntimeFailure
    saying what to add when a needed key is missing."""
    bridge = config.central.bridge
    if address is None:
        if bridge is None:
            raise RuntimeFailure(
                f"{config.path}: no central.bridge section: add central.bridge.host and the "
                "certificate files (docs/config.md#central)"
            )
        address = f"{bridge.host}:{bridge.port}"
    store = config.store.id
    base = Topics(config.mqtt.topic_prefix, store).base + "/"
    lines = [
        f"# The bridge of store {store} to the chain's central broker: written by",
        "# `rayon bridge render` from config.yaml; edit config.yaml, not this file.",
        f"connection rayon-central-{store}",
        f"address {address}",
        "bridge_protocol_version mqttv50",
        f"remote_clientid rayon-{store}-bridge",
        f"local_clientid rayon-{store}-bridge-local",
        *([] if plain else _tls_lines(config, bridge)),
        "cleansession false",
        "try_private true",
        f"restart_timeout {restart}",
        "notifications true",
        # the bridge's state stays on the store broker: the centre's ACL lets a store write
        # its batches only, and the store's monitoring reads it there
        "notifications_local_only true",
        f"notification_topic {base}bridge/state",
    ]
    lines += [f"topic chain/{leaf.value} out 1 {base} {base}" for leaf in _OUT]
    lines += [f"topic chain/{leaf.value} in 1 {base} {base}" for leaf in _IN]
    return "\n".join(lines) + "\n"


def _tls_lines(config: Config, bridge: BridgeConfig | None) -> list[str]:
    files = (
        ("bridge_cafile", "ca_file", bridge.ca_file if bridge else None),
        ("bridge_certfile", "cert_file", bridge.cert_file if bridge else None),
        ("bridge_keyfile", "key_file", bridge.key_file if bridge else None),
    )
    missing = [key for _, key, path in files if path is None]
    if missing:
        keys = ", ".join(f"central.bridge.{k}" for k in missing)
        raise RuntimeFailure(
            f"{config.path}: {keys} missing: the store logs in to the centre with its own "
            "client certificate (docs/config.md#central)"
        )
    return [*(f"{option} {path}" for option, _, path in files), "bridge_insecure false"]
