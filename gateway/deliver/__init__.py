"""Delivery over MQTT v5: topics, payloads, the paho link bridged into asyncio, the outbox.

Import the submodules directly (`gateway.deliver.mqtt`, `.outbox`, `.topics`, `.payloads`):
this package imports nothing so that the pure `topics` and `payloads` stay free of paho.
"""

from __future__ import annotations
