"""atheris harness: the decode stage and the privacy filter never raise, whatever the bytes.

    .venv/bin/python fuzz/decode.py -max_total_time=60

The fuzzed bytes are split into an advertisement: a company id and its manufacturer data,
a service UUID and its service data.  Decode's only refusal is `None`.
"""

from __future__ import annotations

from harness import run

from gateway.decode.beacons import (
    EDDYSTONE_SERVICE,
    decode_all,
    encode_eddystone_uid,
    encode_eddystone_url,
    encode_ibeacon,
)
from gateway.decode.privacy import PrivacyFilter
from gateway.events import Advertisement

UUID = "8d8c1a2e-5b3f-4c1d-9e2a-0f6b7c8d9e10"
NAMESPACE = "12345678901234678901"
FILTER = PrivacyFilter([UUID], [NAMESPACE])
KEYS = (EDDYSTONE_SERVICE, "feaa", "FEAA", "180f")
# seed layout: company id (2 bytes), key index (1), manufacturer length (1), then the data
SEEDS = [
    b"\x00\x4c\x00\x17" + encode_ibeacon(UUID, 1000, 1, -59),
    b"\x01\x18\x01\x00" + encode_eddystone_uid(NAMESPACE, "0000000000aa", -20),
    b"\x00\x4c\x02\x00" + encode_eddystone_url("https://www.example.com/tv", -20),
]


def test_one(data: bytes) -> None:
    """Decode one fuzzed advertisement: the stage returns a value or None, never raises."""
    if len(data) < 4:
        return
    company, key, split, rest = int.from_bytes(data[:2]), data[2], data[3], data[4:]
    adv = Advertisement(0.0, "pi", "AA", -60, {company: rest[:split]},
                        {KEYS[key % len(KEYS)]: rest[split:]})  # fmt: skip
    decode_all(adv.manufacturer_data, adv.service_data)
    FILTER.observe(adv)


if __name__ == "__main__":
    run("decode", test_one, SEEDS)
