"""BLE beacon frames, both ways: decoded from advertisement bytes, and encoded (for tests, the
simulator and firmware configs).  The decode stage (`gateway.decode.privacy`) builds on them.

Pure and fast: lengths are checked before anything else, fields are sliced or unpacked with
`struct`, and untrusted bytes never raise — "not a beacon" is `None`.

Formats (bytes after the company id for manufacturer data, service data for Eddystone):

- iBeacon: Apple company id 0x004C, `02 15`, 16-byte UUID, major BE, minor BE, signed tx power
  at 1 m.  The `15` is the length (21) of the iBeacon record, and Apple manufacturer data is a
  list of such type-length records, so bytes after the 23rd are another record and are ignored
  (as `ibeacon-ble` does, which requires at least 23 bytes).  Other Apple types (0x10 Nearby,
  0x12 Find My, …) are not iBeacons.
- AltBeacon: any company id, `BE AC`, 20-byte beacon id, signed reference RSSI at 1 m, one
  manufacturer-reserved byte: exactly 24 bytes (the AD length 0x1B of the spec), as the format
  has no inner length to delimit trailing bytes.
- Eddystone (service 0xFEAA, as `0000feaa-0000-1000-8000-00805f9b34fb` or `feaa`): UID
  (`00`, tx power at 0 m, 10-byte namespace, 6-byte instance, 0–2 reserved bytes: 18 to 20
  bytes), URL (`10`, tx power at 0 m, scheme prefix, up to 17 encoded bytes), TLM version 0
  (`20 00`, battery mV, 8.8 temperature, advert count, uptime in 0.1 s: 14 bytes).  Encrypted
  TLM and EID frames are not decoded.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass

from gateway.ids import altbeacon_id, eddystone_id, format_uuid, ibeacon_id

APPLE = 0x004C
EDDYSTONE_SERVICE = "0000feaa-0000-1000-8000-00805f9b34fb"
EDDYSTONE_KEYS = frozenset({EDDYSTONE_SERVICE, "feaa", "0000feaa"})
# Eddystone tx power is measured at 0 m; the spec derives it as the power at 1 m + 41 dB.
EDDYSTONE_0M_TO_1M = -41

_IBEACON = struct.Struct(">HHb")
_TLM = struct.Struct(">HhII")
_TLM_NO_TEMPERATURE = -0x8000
_IBEACON_HEAD = b"\x02\x15"
_ALTBEACON_HEAD = b"\xbe\xac"

URL_SCHEMES = ("http://www.", "https://www.", "http://", "https://")
URL_EXPANSIONS = (".com/", ".org/", ".edu/", ".net/", ".info/", ".biz/", ".gov/",
                  ".com", ".org", ".edu", ".net", ".info", ".biz", ".gov")  # fmt: skip
_URL_MAX_ENCODED = 17


def signed(byte: int) -> int:
    """A byte read as a two's complement int8 (tx powers)."""
    return byte - 256 if byte > 127 else byte


@dataclass(frozen=True, slots=True)
class IBeacon:
    """An Apple iBeacon: `uuid` lowercase 8-4-4-4-12, `tx_power` in dBm at 1 m."""

    uuid: str
    major: int
    minor: int
    tx_power: int

    @property
    def id(self) -> str:
        """The canonical device id `ibeacon:<uuid>:<major>:<minor>`."""
        return ibeacon_id(self.uuid, self.major, self.minor)


@dataclass(frozen=True, slots=True)
class AltBeacon:
    """An AltBeacon: `beacon_id` 40 lowercase hex, `tx_power` the reference RSSI at 1 m."""

    beacon_id: str
    tx_power: int
    mfg_reserved: int
    company_id: int

    @property
    def id(self) -> str:
        """The canonical device id `altbeacon:<40 hex>`."""
        return altbeacon_id(self.beacon_id)


@dataclass(frozen=True, slots=True)
class EddystoneUID:
    """An Eddystone-UID frame: 20-hex namespace, 12-hex instance, `tx_power` at 0 m."""

    namespace: str
    instance: str
    tx_power: int

    @property
    def id(self) -> str:
        """The canonical device id `eddystone:<namespace>:<instance>`."""
        return eddystone_id(self.namespace, self.instance)


@dataclass(frozen=True, slots=True)
class EddystoneURL:
    """An Eddystone-URL frame, the URL expanded; `tx_power` at 0 m."""

    url: str
    tx_power: int


@dataclass(frozen=True, slots=True)
class EddystoneTLM:
    """An unencrypted Eddystone-TLM frame; `temperature_c` is None when the beacon has no sensor."""

    battery_mv: int
    temperature_c: float | None
    adv_count: int
    uptime_s: float


Beacon = IBeacon | AltBeacon | EddystoneUID | EddystoneURL | EddystoneTLM


# -- decoding ---------------------------------------------------------------------------------


def uuid_text(raw: bytes) -> str:
    """16 raw bytes as a lowercase 8-4-4-4-12 UUID."""
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def decode_manufacturer(company_id: int, data: bytes) -> IBeacon | AltBeacon | None:
    """The iBeacon or AltBeacon in one manufacturer data entry, or None."""
    n = len(data)
    if company_id == APPLE and n >= 23 and data[:2] == _IBEACON_HEAD:
        major, minor, tx = _IBEACON.unpack_from(data, 18)
        return IBeacon(uuid_text(data[2:18]), major, minor, tx)
    if n == 24 and data[:2] == _ALTBEACON_HEAD:
        return AltBeacon(data[2:22].hex(), signed(data[22]), data[23], company_id)
    return None


def decode_service(uuid: str, data: bytes) -> EddystoneUID | EddystoneURL | EddystoneTLM | None:
    """The Eddystone UID, URL or TLM frame in one service data entry, or None."""
    if uuid not in EDDYSTONE_KEYS and uuid.lower() not in EDDYSTONE_KEYS:
        return None
    n = len(data)
    if n < 3:
        return None
    kind = data[0]
    if kind == 0x00 and 18 <= n <= 20:
        return EddystoneUID(data[2:12].hex(), data[12:18].hex(), signed(data[1]))
    if kind == 0x10 and n <= 3 + _URL_MAX_ENCODED:
        return _decode_url(data)
    if kind == 0x20 and n == 14 and data[1] == 0x00:
        return _decode_tlm(data)
    return None


def _decode_url(data: bytes) -> EddystoneURL | None:
    if data[2] >= len(URL_SCHEMES):
        return None
    parts = [URL_SCHEMES[data[2]]]
    for byte in data[3:]:
        if byte < len(URL_EXPANSIONS):
            parts.append(URL_EXPANSIONS[byte])
        elif 0x20 < byte < 0x7F:
            parts.append(chr(byte))
        else:  # 0x0e–0x20 and 0x7f–0xff are reserved by the spec
            return None
    return EddystoneURL("".join(parts), signed(data[1]))


def _decode_tlm(data: bytes) -> EddystoneTLM:
    battery, temp, count, uptime = _TLM.unpack_from(data, 2)
    temperature = None if temp == _TLM_NO_TEMPERATURE else temp / 256.0
    return EddystoneTLM(battery, temperature, count, uptime / 10.0)


def decode_all(
    manufacturer_data: Mapping[int, bytes], service_data: Mapping[str, bytes]
) -> list[Beacon]:
    """Every beacon frame of an advertisement: manufacturer data first, then service data."""
    found: list[Beacon] = []
    for company_id, data in manufacturer_data.items():
        beacon = decode_manufacturer(company_id, data)
        if beacon is not None:
            found.append(beacon)
    for uuid, data in service_data.items():
        frame = decode_service(uuid, data)
        if frame is not None:
            found.append(frame)
    return found


# -- encoding (tests, simulator, firmware configs) --------------------------------------------


def uuid_bytes(uuid: str) -> bytes:
    """The 16 raw bytes of a UUID (any form `format_uuid` reads); ValueError if not one."""
    return bytes.fromhex(format_uuid(uuid).replace("-", ""))


def hex_bytes(text: str, size: int, what: str) -> bytes:
    """Exactly `size` bytes from hex `text`; ValueError naming `what` otherwise."""
    raw = bytes.fromhex(text)
    if len(raw) != size:
        raise ValueError(f"{what} must be {2 * size} hex digits, got {text!r}")
    return raw


def encode_ibeacon(uuid: str, major: int, minor: int, tx_power: int) -> bytes:
    """The 23 bytes after Apple's company id; ValueError on out-of-range fields."""
    return _IBEACON_HEAD + uuid_bytes(uuid) + _IBEACON.pack(major, minor, tx_power)


def encode_altbeacon(beacon_id: str, tx_power: int, mfg_reserved: int = 0) -> bytes:
    """The 24 bytes after the company id; ValueError on out-of-range fields."""
    raw = hex_bytes(beacon_id, 20, "an AltBeacon id")
    return _ALTBEACON_HEAD + raw + struct.pack(">bB", tx_power, mfg_reserved)


def encode_eddystone_uid(namespace: str, instance: str, tx_power: int) -> bytes:
    """A 20-byte Eddystone-UID frame (with its 2 reserved bytes)."""
    ns = hex_bytes(namespace, 10, "an Eddystone namespace")
    inst = hex_bytes(instance, 6, "an Eddystone instance")
    return struct.pack(">Bb", 0x00, tx_power) + ns + inst + b"\x00\x00"


def encode_eddystone_url(url: str, tx_power: int) -> bytes:
    """An Eddystone-URL frame; ValueError if the URL has no known scheme or is too long."""
    # the longest matching prefix: "https://www." before "https://"
    matches = [i for i, prefix in enumerate(URL_SCHEMES) if url.startswith(prefix)]
    if not matches:
        raise ValueError(f"URL must start with one of {URL_SCHEMES}: {url!r}")
    scheme = max(matches, key=lambda i: len(URL_SCHEMES[i]))
    body = _encode_url_body(url[len(URL_SCHEMES[scheme]) :])
    if len(body) > _URL_MAX_ENCODED:
        raise ValueError(f"URL too long for Eddystone ({len(body)} > 17 encoded bytes): {url!r}")
    return struct.pack(">BbB", 0x10, tx_power, scheme) + body


def _encode_url_body(rest: str) -> bytes:
    out = bytearray()
    i = 0
    while i < len(rest):
        code = next((c for c, e in enumerate(URL_EXPANSIONS) if rest.startswith(e, i)), None)
        if code is not None:
            out.append(code)
            i += len(URL_EXPANSIONS[code])
            continue
        if not 0x20 < ord(rest[i]) < 0x7F:
            raise ValueError(f"character {rest[i]!r} cannot be sent in an Eddystone URL")
        out.append(ord(rest[i]))
        i += 1
    return bytes(out)


def encode_eddystone_tlm(
    battery_mv: int, temperature_c: float | None, adv_count: int, uptime_s: float
) -> bytes:
    """A 14-byte unencrypted TLM frame; `temperature_c` None encodes 0x8000 (no sensor)."""
    temp = _TLM_NO_TEMPERATURE if temperature_c is None else round(temperature_c * 256)
    return b"\x20\x00" + _TLM.pack(battery_mv, temp, adv_count, round(uptime_s * 10))
