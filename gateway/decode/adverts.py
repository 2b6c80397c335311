"""An advertisement as JSON (the `adv` object of docs/trace.md): how a trace line and a scanner
node's message write one, and how it is read back (ValueError says what is malformed).  Pure."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway.events import Advertisement


def adv_to_json(adv: Advertisement) -> dict[str, Any]:
    return {
        "at": adv.at,
        "adv": {
            "anchor": adv.anchor,
            "address": adv.address,
            "rssi": adv.rssi,
            "manufacturer_data": {str(k): v.hex() for k, v in adv.manufacturer_data.items()},
            "service_data": {k: v.hex() for k, v in adv.service_data.items()},
            "local_name": adv.local_name,
        },
    }


def _hex_map(raw: Any, what: str, int_keys: bool) -> dict[Any, bytes]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise ValueError(f"'{what}' must be an object of hex strings")
    out: dict[Any, bytes] = {}
    for key, value in raw.items():
        if not isinstance(value, str):
            raise ValueError(f"'{what}.{key}' must be a hex string")
        try:
            data = bytes.fromhex(value)
        except ValueError:
            raise ValueError(f"'{what}.{key}' is not valid hex: {value[:40]!r}") from None
        if int_keys:
            try:
                out[int(key)] = data
            except ValueError:
                raise ValueError(
                    f"'{what}' key {key!r} must be a decimal company id, e.g. \"76\" for Apple"
                ) from None
        else:
            out[str(key).lower()] = data
    return out


def parse_adv(at: float, raw: Any) -> Advertisement:
    """Build an Advertisement from the `adv` object of a trace line; ValueError if malformed."""
    if not isinstance(raw, Mapping):
        raise ValueError("'adv' must be an object")
    rssi = raw.get("rssi")
    if not isinstance(rssi, int | float) or isinstance(rssi, bool):
        raise ValueError("'adv.rssi' must be a number (dBm)")
    anchor = raw.get("anchor")
    if not isinstance(anchor, str) or not anchor:
        raise ValueError("'adv.anchor' must name the anchor that heard it")
    name = raw.get("local_name")
    return Advertisement(
        at=at,
        anchor=anchor,
        address=str(raw.get("address", "")),
        rssi=int(rssi),
        manufacturer_data=_hex_map(raw.get("manufacturer_data"), "manufacturer_data", True),
        service_data=_hex_map(raw.get("service_data"), "service_data", False),
        local_name=name if isinstance(name, str) else None,
    )
