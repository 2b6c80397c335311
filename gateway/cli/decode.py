"""`rayon decode`: JSON Lines in, one decoded beacon (or null) per line out.

Each input line is an advertisement's `manufacturer_data` (decimal company id → hex) and
`service_data` (UUID → hex), or a trace line (docs/trace.md) holding one as `adv`.  A bad line
gives `null` and a located error on stderr; the diagnostic never stops on one.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, TextIO

from gateway.decode.beacons import (
    AltBeacon,
    Beacon,
    EddystoneTLM,
    EddystoneUID,
    EddystoneURL,
    IBeacon,
    decode_all,
)


def beacon_to_json(beacon: Beacon) -> dict[str, Any]:
    """The `rayon decode` output object of one beacon (field names are part of the contract)."""
    match beacon:
        case IBeacon(uuid, major, minor, tx):
            return {"kind": "ibeacon", "id": beacon.id, "uuid": uuid, "major": major,
                    "minor": minor, "tx_power": tx}  # fmt: skip
        case EddystoneUID(namespace, instance, tx):
            return {"kind": "eddystone_uid", "id": beacon.id, "namespace": namespace,
                    "instance": instance, "tx_power": tx}  # fmt: skip
        case EddystoneURL(url, tx):
            return {"kind": "eddystone_url", "url": url, "tx_power": tx}
        case EddystoneTLM(battery, temperature, count, uptime):
            return {"kind": "eddystone_tlm", "battery_mv": battery, "temperature_c": temperature,
                    "adv_count": count, "uptime_s": uptime}  # fmt: skip
        case AltBeacon(beacon_id, tx, reserved, company):
            return {"kind": "altbeacon", "id": beacon.id, "beacon_id": beacon_id, "tx_power": tx,
                    "mfg_reserved": reserved, "company_id": company}  # fmt: skip


def _manufacturer_input(raw: Any) -> dict[int, bytes]:
    out: dict[int, bytes] = {}
    for key, value in _object(raw, "manufacturer_data").items():
        if not (key.isascii() and key.isdigit() and int(key) <= 0xFFFF):
            raise ValueError(
                f"'manufacturer_data' key {key[:20]!r} must be a decimal company id "
                '(0–65535), e.g. "76" for Apple'
            )
        out[int(key)] = _hex_input(value, f"manufacturer_data.{key}")
    return out


def _service_input(raw: Any) -> dict[str, bytes]:
    return {
        key.lower(): _hex_input(value, f"service_data.{key}")
        for key, value in _object(raw, "service_data").items()
    }


def _object(raw: Any, what: str) -> dict[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ValueError(f"'{what}' must be an object of hex strings")
    return raw


def _hex_input(value: Any, what: str) -> bytes:
    if not isinstance(value, str):
        raise ValueError(f"'{what}' must be a hex string, e.g. \"0215…\"")
    try:
        return bytes.fromhex(value)
    except ValueError:
        raise ValueError(f"'{what}' is not valid hex: {value[:40]!r}") from None


def check_line(line: str) -> tuple[str, str | None]:
    """The output line for one input line, and what is wrong with the input (or None)."""
    try:
        obj = json.loads(line)
    except (ValueError, RecursionError) as exc:
        where = f" at column {exc.colno}" if isinstance(exc, json.JSONDecodeError) else ""
        return "null", f"not JSON: {getattr(exc, 'msg', 'too deep or too large')}{where}"
    if isinstance(obj, dict) and isinstance(obj.get("adv"), dict):
        obj = obj["adv"]  # a trace line (docs/trace.md) decodes too
    if not isinstance(obj, dict):
        return "null", "a line must be a JSON object with 'manufacturer_data' or 'service_data'"
    try:
        found = decode_all(_manufacturer_input(obj.get("manufacturer_data")),
                           _service_input(obj.get("service_data")))  # fmt: skip
    except ValueError as exc:
        return "null", str(exc)
    return json.dumps(beacon_to_json(found[0]) if found else None, separators=(",", ":")), None


def decode_line(line: str) -> str:
    """The JSON output of one input line: the first beacon in it, or `null`.  Never raises."""
    return check_line(line)[0]


def decode_stream(inp: TextIO, out: TextIO, err: TextIO, name: str = "<stdin>") -> int:
    """Decode every line of `inp` to `out`, errors to `err`; return the number of bad lines."""
    bad = 0
    for lineno, line in enumerate(inp, start=1):
        text, problem = check_line(line)
        out.write(text + "\n")
        if problem is not None:
            bad += 1
            err.write(f"{name}:{lineno}: error: {problem}\n")
    return bad


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments of `rayon decode`."""
    parser.add_argument("input", nargs="?", default="-", help="file (default stdin)")


def run(args: argparse.Namespace) -> int:
    """Decode the file (or stdin) to stdout; 1 when a line was bad, else 0."""
    if args.input == "-":
        bad = decode_stream(sys.stdin, sys.stdout, sys.stderr)
    else:
        with open(args.input, encoding="utf-8") as fh:
            bad = decode_stream(fh, sys.stdout, sys.stderr, name=args.input)
    return 1 if bad else 0
