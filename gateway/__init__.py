"""Rayon: an edge gateway for in-store proximity marketing.

BLE advertisements and phone reports become observations, positions, zone events,
rule decisions and finally offers published over MQTT.  See docs/design.md for the contract.
"""

from __future__ import annotations

__version__ = "0.1.0"
