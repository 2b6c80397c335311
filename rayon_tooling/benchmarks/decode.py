"""Decode speed against `ibeacon-ble` and `beacontools`, on the same frames, in one run.

    rayon bench decode [--frames 20000] [--repeats 7] [--seed 8]

The performance targets (docs/performance.md) ask the decode stage to be at least 3× faster
than the faster of the two libraries people reach for, with identical results.  The frames are
generated from a seed (random UUIDs, majors, minors, tx powers, namespaces, instances and URLs)
and each library gets them in the form it takes in production, built before the clock starts:

- Rayon: `decode_all(manufacturer_data, service_data)`, the dictionaries bleak and the
  scanner nodes hand over (company id → bytes, service UUID → bytes);
- ibeacon-ble: `iBeaconParser.parse(BluetoothServiceInfo)`; the address has no colon (as on
  macOS), which skips its OUI vendor look-up and so favours it;
- beacontools: `parse_packet(raw AD structures)`: it also splits the advertisement into its
  length-type-value records, work that bleak does before Rayon sees the frame.

Two frame sets: iBeacon (all three libraries) and Eddystone UID + URL (Rayon and beacontools;
ibeacon-ble reads iBeacons only).  Before timing, every library decodes every frame once and
the results are compared field by field (UUID, major, minor, tx power; namespace, instance,
tx power; URL): a mismatch is printed and fails the run.  Each repetition times every
library on every set, in turn, so drift hits them alike; the table shows the median, min and
max frames/s.  The peers are dev dependencies only (`pip install -e '.[bench]'`); a missing
one is reported and skipped.
"""

from __future__ import annotations

import argparse
import importlib
import random
import statistics
import struct
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any, TextIO

from gateway.decode.beacons import (
    APPLE,
    EddystoneUID,
    EddystoneURL,
    IBeacon,
    decode_all,
    encode_eddystone_uid,
    encode_eddystone_url,
    encode_ibeacon,
)
from rayon_tooling.benchmarks import SuiteRow

TARGET = 3.0
FRAMES = 20_000
REPEATS = 7
INSTALL = ".venv/bin/pip install ibeacon-ble beacontools  (or pip install -e '.[bench]')"
COMMAND = "rayon bench decode"
# What a decoder's answer is reduced to for the identity check: kind and fields, or None.
Normal = tuple[object, ...] | None
_FLAGS_AD = b"\x02\x01\x06"
_URL_HOSTS = ("shop.example", "rayon.io/o", "a.fr/x", "tv.example/p")


@dataclass(frozen=True, slots=True)
class Frame:
    """One advertisement: its beacon payload, both as dictionaries and as raw AD records."""

    manufacturer_data: dict[int, bytes]
    service_data: dict[str, bytes]
    ad: bytes


@dataclass(frozen=True, slots=True)
class Decoder:
    """A library under test: its input built from a Frame, its call, its answer normalised."""

    name: str
    prepare: Callable[[Frame], Any]
    decode: Callable[[Any], Any]
    normal: Callable[[Any], Normal]


@dataclass(frozen=True, slots=True)
class Row:
    """One library on one frame set: frames/s over the repetitions, and Rayon's lead."""

    frames: str
    library: str
    median: float
    low: float
    high: float


# -- frames -----------------------------------------------------------------------------------


def ibeacon_frame(rng: random.Random) -> Frame:
    """A random iBeacon as Apple manufacturer data."""
    uuid = "-".join(rng.randbytes(n).hex() for n in (4, 2, 2, 2, 6))
    data = encode_ibeacon(uuid, rng.randrange(65536), rng.randrange(65536), rng.randint(-100, 0))
    ad = _ad(0xFF, struct.pack("<H", APPLE) + data)
    return Frame({APPLE: data}, {}, _FLAGS_AD + ad)


def eddystone_frame(rng: random.Random, url: bool) -> Frame:
    """A random Eddystone UID (20 bytes) or URL frame as 0xFEAA service data."""
    tx = rng.randint(-100, 20)
    if url:
        host = rng.choice(_URL_HOSTS) + str(rng.randrange(1000))
        data = encode_eddystone_url(rng.choice(("https://", "http://www.")) + host, tx)
    else:
        data = encode_eddystone_uid(rng.randbytes(10).hex(), rng.randbytes(6).hex(), tx)
    service_list = _ad(0x03, b"\xaa\xfe")
    return Frame({}, {"0000feaa-0000-1000-8000-00805f9b34fb": data},
                 _FLAGS_AD + service_list + _ad(0x16, b"\xaa\xfe" + data))  # fmt: skip


def _ad(kind: int, value: bytes) -> bytes:
    return bytes((len(value) + 1, kind)) + value


def frame_sets(count: int, seed: int) -> dict[str, list[Frame]]:
    """The two frame sets, `count` frames each, the same for a given seed."""
    rng = random.Random(seed)
    return {
        "iBeacon": [ibeacon_frame(rng) for _ in range(count)],
        "Eddystone UID+URL": [eddystone_frame(rng, i % 2 == 1) for i in range(count)],
    }


# -- the libraries ----------------------------------------------------------------------------


def _rayon(pair: tuple[dict[int, bytes], dict[str, bytes]]) -> list[Any]:
    return decode_all(pair[0], pair[1])


def _rayon_normal(found: list[Any]) -> Normal:
    if not found:
        return None
    b = found[0]
    if isinstance(b, IBeacon):
        return ("ibeacon", b.uuid, b.major, b.minor, b.tx_power)
    if isinstance(b, EddystoneUID):
        return ("eddystone-uid", b.namespace, b.instance, b.tx_power)
    if isinstance(b, EddystoneURL):
        return ("eddystone-url", b.url, b.tx_power)
    return (type(b).__name__,)


RAYON = Decoder("rayon", lambda f: (f.manufacturer_data, f.service_data), _rayon, _rayon_normal)


def _import(name: str) -> ModuleType | None:
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def ibeacon_ble() -> Decoder | None:
    """ibeacon-ble's parser, or None when it is not installed."""
    lib, ha = _import("ibeacon_ble"), _import("home_assistant_bluetooth")
    if lib is None or ha is None:
        return None
    info = ha.BluetoothServiceInfo

    def prepare(f: Frame) -> Any:
        address = "5E1A2B3C-0000-4000-8000-00000000BEAC"
        return info("", address, -60, f.manufacturer_data, f.service_data, [], "bench")

    def normal(adv: Any) -> Normal:
        return None if adv is None else ("ibeacon", str(adv.uuid), adv.major, adv.minor, adv.power)

    return Decoder("ibeacon-ble", prepare, lib.iBeaconParser().parse, normal)


def beacontools() -> Decoder | None:
    """beacontools' packet parser, or None when it is not installed."""
    lib = _import("beacontools")
    if lib is None:
        return None

    def normal(p: Any) -> Normal:
        if isinstance(p, lib.IBeaconAdvertisement):
            return ("ibeacon", p.uuid, p.major, p.minor, p.tx_power)
        if isinstance(p, lib.EddystoneUIDFrame):
            return ("eddystone-uid", p.namespace, p.instance, p.tx_power)
        if isinstance(p, lib.EddystoneURLFrame):
            return ("eddystone-url", p.url, p.tx_power)
        return None if p is None else (type(p).__name__,)

    return Decoder("beacontools", lambda f: f.ad, lib.parse_packet, normal)


def peers() -> tuple[list[Decoder], list[str]]:
    """The installed peers, and the names of the missing ones."""
    found, missing = [], []
    for name, make in (("ibeacon-ble", ibeacon_ble), ("beacontools", beacontools)):
        decoder = make()
        if decoder is None:
            missing.append(name)
        else:
            found.append(decoder)
    return found, missing


def reads(decoder: Decoder, frames: str) -> bool:
    """Whether a library takes part on a frame set (ibeacon-ble reads iBeacons only)."""
    return decoder.name != "ibeacon-ble" or frames == "iBeacon"


# -- measuring --------------------------------------------------------------------------------


def mismatches(decoders: Sequence[Decoder], frames: Sequence[Frame]) -> list[str]:
    """Every frame on which a library's answer differs from Rayon's (the first is Rayon)."""
    out = []
    ours = [RAYON.normal(RAYON.decode(RAYON.prepare(f))) for f in frames]
    for decoder in decoders:
        for i, (frame, expected) in enumerate(zip(frames, ours, strict=True)):
            theirs = decoder.normal(decoder.decode(decoder.prepare(frame)))
            if theirs != expected or expected is None:
                out.append(f"{decoder.name}, frame {i}: {theirs} but rayon {expected}")
    return out


def time_once(decode: Callable[[Any], Any], inputs: Sequence[Any]) -> float:
    """Frames per second of one pass over `inputs`."""
    started = time.perf_counter()
    for item in inputs:
        decode(item)
    return len(inputs) / (time.perf_counter() - started)


def measure(sets: dict[str, list[Frame]], decoders: Sequence[Decoder], repeats: int) -> list[Row]:
    """Every library on every set it reads, once per repetition, in turn."""
    work = [
        (name, d, [d.prepare(f) for f in frames])
        for name, frames in sets.items()
        for d in (RAYON, *decoders)
        if reads(d, name)
    ]
    samples: list[list[float]] = [[] for _ in work]
    for _ in range(repeats):
        for (_, decoder, inputs), found in zip(work, samples, strict=True):
            found.append(time_once(decoder.decode, inputs))
    return [
        Row(name, d.name, statistics.median(s), min(s), max(s))
        for (name, d, _), s in zip(work, samples, strict=True)
    ]


def leads(rows: Sequence[Row]) -> dict[str, float]:
    """Per frame set, Rayon's median frames/s over the faster peer's (absent without peers)."""
    out = {}
    for frames in dict.fromkeys(r.frames for r in rows):
        ours = [r.median for r in rows if r.frames == frames and r.library == "rayon"]
        theirs = [r.median for r in rows if r.frames == frames and r.library != "rayon"]
        if ours and theirs:
            out[frames] = ours[0] / max(theirs)
    return out


def render(rows: Sequence[Row], repeats: int, count: int) -> str:
    """The side-by-side table and, per frame set, the ratio to the faster peer."""
    lines = [
        f"decode, frames/s (median of {repeats} repetitions, {count:,} frames per set)",
        f"{'frames':<18}  {'library':<12}  {'median':>11}  {'min':>11}  {'max':>11}",
    ]
    for r in rows:
        lines.append(
            f"{r.frames:<18}  {r.library:<12}  {r.median:>11,.0f}  {r.low:>11,.0f}  "
            f"{r.high:>11,.0f}"
        )
    for frames, lead in leads(rows).items():
        verdict = "met" if lead >= TARGET else "MISSED"
        lines.append(
            f"{frames}: rayon {lead:.2f}× the faster peer (target ≥ {TARGET:g}×: {verdict})"
        )
    return "\n".join(lines) + "\n"


def bench_decode(
    count: int = FRAMES, repeats: int = REPEATS, seed: int = 8, out: TextIO | None = None
) -> int:
    """`rayon bench decode`: check identical results, measure, print; 3 on a mismatch."""
    stream = out or sys.stdout
    decoders, missing = peers()
    for name in missing:
        stream.write(f"{name} is not installed: skipped; install it with {INSTALL}\n")
    sets = frame_sets(count, seed)
    wrong = [m for name, fr in sets.items() for m in mismatches(
        [d for d in decoders if reads(d, name)], fr)]  # fmt: skip
    if wrong:
        stream.write(f"results differ on {len(wrong)} frames, e.g.:\n  " + "\n  ".join(wrong[:5]))
        stream.write("\n")
        return 3
    if decoders:
        stream.write(f"identical results on all {count:,} frames of each set\n")
    stream.write(render(measure(sets, decoders, repeats), repeats, count))
    return 0


def suite_rows(quick: bool) -> list[SuiteRow]:
    """Rows for the one-table `rayon bench`: Rayon's lead over the faster peer per frame set
    (not met when any result differs), or one row saying how to install the peers."""
    count, repeats = (2_000, 3) if quick else (FRAMES, REPEATS)
    decoders, missing = peers()
    if not decoders:
        return [_suite_row("decode vs peers", f"{', '.join(missing)} not installed", None)]
    sets = frame_sets(count, 8)
    rows = []
    for frames, lead in leads(measure(sets, decoders, repeats)).items():
        same = not mismatches([d for d in decoders if reads(d, frames)], sets[frames])
        value = f"{lead:.2f}×" + ("" if same else ", results DIFFER")
        rows.append(_suite_row(f"decode {frames} vs faster peer", value, same and lead >= TARGET))
    return rows


def _suite_row(name: str, value: str, met: bool | None) -> SuiteRow:
    target = f"≥ {TARGET:g}×, identical"
    return SuiteRow(name=name, value=value, target=target, met=met, command=COMMAND)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `rayon bench decode`."""
    parser.add_argument("--frames", type=_positive, default=FRAMES, help="frames per set")
    parser.add_argument("--repeats", type=_positive, default=REPEATS, help="repetitions")
    parser.add_argument("--seed", type=int, default=8, help="seed of the generated frames")


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give a whole number of at least 1")
    return value


if __name__ == "__main__":
    args = argparse.ArgumentParser(description=__doc__)
    add_arguments(args)
    ns = args.parse_args()
    sys.exit(bench_decode(ns.frames, ns.repeats, ns.seed))
