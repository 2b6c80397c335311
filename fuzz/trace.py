"""atheris harness: a trace line is an input or a `ValueError` saying what is wrong.

.venv/bin/python fuzz/trace.py -max_total_time=60
"""

from __future__ import annotations

import contextlib

from harness import run

from gateway.decode.beacons import encode_ibeacon
from gateway.events import Advertisement
from gateway.sources.trace import item_to_line, parse_line

FRAME = encode_ibeacon("8d8c1a2e-5b3f-4c1d-9e2a-0f6b7c8d9e10", 1, 2, -59)
ADVERT = Advertisement(1772550000.5, "pi-tv", "AA:BB", -67, {76: FRAME}, {"feaa": b"\x10\xec\x03a"})
SEEDS = [
    item_to_line(ADVERT).encode(),
    b'{"at": 1772550000.0, "mqtt": {"topic": "rayon/paris-11/phones/t-1/sightings", '
    b'"payload": {"beacons": []}}}',
]


def test_one(data: bytes) -> None:
    """Parse one fuzzed line: only ValueError may come out."""
    with contextlib.suppress(ValueError):
        parse_line(data.decode("utf-8", "replace"))


if __name__ == "__main__":
    run("trace", test_one, SEEDS)
