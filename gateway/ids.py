"""Canonical device ids (DESIGN.md §2) and the aliases other systems use.

    ibeacon:<uuid lowercase 8-4-4-4-12>:<major>:<minor>
    eddystone:<namespace 20 hex>:<instance 12 hex>
    altbeacon:<40 hex>
    phone:<token>

Accepted aliases: `iBeacon:<uuid>-<major>-<minor>` (ESPresense), `<uuid>_<major>_<minor>`
(Home Assistant), any case, UUIDs with or without dashes.
"""

from __future__ import annotations

import re

_HEX32 = r"[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}"
_IBEACON = re.compile(rf"^(?:ibeacon:)?({_HEX32})[:_-](\d{{1,5}})[:_-](\d{{1,5}})$", re.IGNORECASE)
_EDDYSTONE = re.compile(r"^eddystone:([0-9a-fA-F]{20}):([0-9a-fA-F]{12})$", re.IGNORECASE)
_ALTBEACON = re.compile(r"^altbeacon:([0-9a-fA-F]{40})$", re.IGNORECASE)
_PHONE = re.compile(r"^phone:([A-Za-z0-9_.~-]{1,128})$")


def format_uuid(raw: str) -> str:
    """Lowercase 8-4-4-4-12 form of a 32-hex-digit UUID, dashes optional on input."""
    h = raw.replace("-", "").lower()
    if len(h) != 32 or any(c not in "0123456789abcdef" for c in h):
        raise ValueError(f"not a UUID: {raw!r}")
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def ibeacon_id(uuid: str, major: int, minor: int) -> str:
    return f"ibeacon:{format_uuid(uuid)}:{major}:{minor}"


def eddystone_id(namespace: str, instance: str) -> str:
    return f"eddystone:{namespace.lower()}:{instance.lower()}"


def altbeacon_id(beacon_id: str) -> str:
    return f"altbeacon:{beacon_id.lower()}"


def canonical_device_id(text: str) -> str | None:
    """The canonical form of a device id or one of its aliases; None if it is neither."""
    text = text.strip()
    m = _IBEACON.match(text)
    if m:
        major, minor = int(m.group(2)), int(m.group(3))
        if major > 0xFFFF or minor > 0xFFFF:
            return None
        return ibeacon_id(m.group(1), major, minor)
    m = _EDDYSTONE.match(text)
    if m:
        return eddystone_id(m.group(1), m.group(2))
    m = _ALTBEACON.match(text)
    if m:
        return altbeacon_id(m.group(1))
    if _PHONE.match(text):
        return text
    return None
