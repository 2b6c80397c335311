"""Decode BLE beacon frames and keep only ours (docs/design.md §1, §2 "Decode").

Pure and fast: lengths are checked before anything else, fields are sliced or unpacked with
`struct`, and untrusted bytes never raise — "not a beacon" is `None`.

The frame formats (iBeacon, AltBeacon, Eddystone UID/URL/TLM) and their encoders are in
`gateway.decode.beacons`, the `rayon decode` diagnostic in `gateway.cli.decode`; both are importable
from here.  This module is the privacy filter: the first stage of the pipeline.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping

from gateway.decode.beacons import (
    APPLE,
    EDDYSTONE_0M_TO_1M,
    EDDYSTONE_KEYS,
    hex_bytes,
    signed,
    uuid_bytes,
    uuid_text,
)
from gateway.events import Advertisement, Observation

__all__ = ["PrivacyFilter"]


class PrivacyFilter:
    """Keeps only the beacons of the configured proximity UUIDs and Eddystone namespaces.

    Everything else is dropped before anything about it is built (docs/design.md §1): the UUID or
    namespace is compared as raw bytes, and only a match is turned into a canonical id.  An
    AltBeacon is ours when the first 16 bytes of its id, as a UUID, are a proximity UUID.
    The returned tx power is in dBm at 1 m for every kind (Eddystone's 0 m value − 41 dB).
    """

    def __init__(self, proximity_uuids: Iterable[str], eddystone_namespaces: Iterable[str]) -> None:
        self._uuids = frozenset(uuid_bytes(u) for u in proximity_uuids)
        self._namespaces = frozenset(
            hex_bytes(ns, 10, "an Eddystone namespace") for ns in eddystone_namespaces
        )
        # canonical ids of allowed beacons, keyed by the bytes they were made from
        self._ibeacon_ids: dict[bytes, str] = {}
        # whole Apple manufacturer frames of allowed iBeacons → (id, tx power): a beacon
        # sends the same frame over and over, so the common case is one lookup
        self._apple_frames: dict[bytes, tuple[str, int | None]] = {}
        self._altbeacon_ids: dict[bytes, str] = {}
        self._eddystone_ids: dict[bytes, str] = {}

    def identify(self, adv: Advertisement) -> tuple[str, int | None] | None:
        """The canonical id and tx power (1 m) of the first allowed beacon, else None."""
        uuids = self._uuids
        for company_id, data in adv.manufacturer_data.items():
            if company_id == APPLE:
                seen = self._apple_frames.get(data)
                if seen is not None:
                    return seen
            n = len(data)
            if company_id == APPLE and n >= 23 and data[0] == 2 and data[1] == 0x15:
                if data[2:18] in uuids:
                    found = self._ibeacon(data[2:22]), signed(data[22])
                    if len(self._apple_frames) >= _CACHE_MAX:  # bounded, as `_remember`
                        self._apple_frames.clear()
                    self._apple_frames[bytes(data)] = found
                    return found
            elif n == 24 and data[0] == 0xBE and data[1] == 0xAC and data[2:18] in uuids:
                return self._altbeacon(data[2:22]), signed(data[22])
        if self._namespaces:
            return self._eddystone(adv.service_data)
        return None

    def allows(self, device_id: str) -> bool:
        """Whether a canonical device id (from a system that reports ids, not adverts, e.g.
        ESPresense) belongs to the store's proximity UUIDs or Eddystone namespaces."""
        kind, _, rest = device_id.partition(":")
        try:
            if kind == "ibeacon":
                return uuid_bytes(rest.split(":", 1)[0]) in self._uuids
            if kind == "altbeacon":
                return bytes.fromhex(rest[:32]) in self._uuids
            if kind == "eddystone":
                return bytes.fromhex(rest.split(":", 1)[0]) in self._namespaces
        except ValueError:
            return False
        return False

    def observe(self, adv: Advertisement) -> Observation | None:
        """The Observation of an allowed advertisement, or None when it is not ours."""
        hit = self.identify(adv)
        if hit is None:
            return None
        return Observation(adv.at, hit[0], adv.anchor, adv.rssi, hit[1])

    def _eddystone(self, service_data: Mapping[str, bytes]) -> tuple[str, int | None] | None:
        for key, data in service_data.items():
            n = len(data)
            if n < 18 or n > 20 or data[0] != 0:
                continue
            if (key in EDDYSTONE_KEYS or key.lower() in EDDYSTONE_KEYS) and (
                data[2:12] in self._namespaces
            ):
                return self._eddystone_id(data[2:18]), signed(data[1]) + EDDYSTONE_0M_TO_1M
        return None

    def _ibeacon(self, key: bytes) -> str:
        found = self._ibeacon_ids.get(key)
        if found is None:
            major, minor = struct.unpack_from(">HH", key, 16)
            text = f"ibeacon:{uuid_text(key[:16])}:{major}:{minor}"
            found = _remember(self._ibeacon_ids, key, text)
        return found

    def _altbeacon(self, key: bytes) -> str:
        found = self._altbeacon_ids.get(key)
        if found is None:
            found = _remember(self._altbeacon_ids, key, f"altbeacon:{key.hex()}")
        return found

    def _eddystone_id(self, key: bytes) -> str:
        found = self._eddystone_ids.get(key)
        if found is None:
            h = key.hex()
            found = _remember(self._eddystone_ids, key, f"eddystone:{h[:20]}:{h[20:]}")
        return found


_CACHE_MAX = 65536


def _remember(cache: dict[bytes, str], key: bytes, text: str) -> str:
    """Cache the id of an allowed beacon; the cache is bounded, so a flood cannot grow it."""
    if len(cache) >= _CACHE_MAX:
        cache.clear()
    cache[key] = text
    return text
