"""Canonical device ids (docs/design.md §2) and the aliases other systems use.

    ibeacon:<uuid lowercase 8-4-4-4-12>:<major>:<minor>
    eddystone:<namespace 20 hex>:<instance 12 hex>
    altbeacon:<40 hex>
    phone:<token>

Accepted aliases: `iBeacon:<uuid>-<major>-<minor>` (ESPresense), `<uuid>_<major>_<minor>`
(Home Assistant), any case, UUIDs with or without dashes.
"""

from __future__ import annotations

import hashlib
import hmac
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


# -- customer ids and delivery tokens: one rule at every door (CRM topic, customer files,
# -- topics, `rayon forget`); each must be one MQTT topic level, safe in a log line

MAX_ID_CHARS = 128
_CUSTOMER_ID = re.compile(rf"[A-Za-z0-9_.~@:-]{{1,{MAX_ID_CHARS}}}")
_TOKEN = re.compile(rf"[A-Za-z0-9_.~-]{{1,{MAX_ID_CHARS}}}")
_NUMBER_LIKE = re.compile(r"[0-9_.~-]*")  # digits and separators only: a card number
CUSTOMER_ID_RULE = "1 to 128 of A-Z a-z 0-9 _ . ~ - @ : (one MQTT topic level)"
_OPAQUE = (
    "an opaque random token such as 22 URL-safe base64 characters, never a loyalty number "
    "(docs/mqtt.md)"
)
TOKEN_RULE = f"1 to 128 of A-Z a-z 0-9 _ . ~ -, not only digits: {_OPAQUE}"


def customer_id_problem(value: object) -> str | None:
    """Why `value` is not a customer id, or None when it is one.  Never echoes the value."""
    if isinstance(value, str) and _CUSTOMER_ID.fullmatch(value):
        return None
    return f"a customer id must be {CUSTOMER_ID_RULE}"


def token_problem(value: object) -> str | None:
    """Why `value` is not a delivery token, or None when it is one.  Never echoes the value
    (a token made of digits may be somebody's loyalty number)."""
    if not isinstance(value, str) or not _TOKEN.fullmatch(value):
        return f"a delivery token must be {TOKEN_RULE}"
    if _NUMBER_LIKE.fullmatch(value) and any(c.isdigit() for c in value):
        return f"a delivery token must not be only digits: use {_OPAQUE}"
    return None


def visit_pseudonym(key: bytes, device: str, started_at: float) -> str:
    """The pseudonym of one visit on the console's pages and live topics (`v-` and 12 hex
    digits): a keyed hash of the device and the visit's start, so it changes at every visit,
    says nothing of the customer, and only a holder of the store's key (the database's
    `runtime_state`, gateway.store.pseudonyms) can tell which visit it names."""
    mac = hmac.new(key, f"{device}|{started_at:.3f}".encode(), hashlib.sha256)
    return "v-" + mac.hexdigest()[:12]
