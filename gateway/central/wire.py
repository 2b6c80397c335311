"""The chain's payloads (docs/mqtt.md, "The chain"), built and read in one place.

Readers take untrusted bytes (a tampered Pi may send anything its ACL lets through) and
never raise anything but `ChainPayloadError`, whose message says what is wrong.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from gateway.store.uplink import UplinkEntry

__all__ = [
    "KINDS",
    "MAX_ROWS",
    "Ack",
    "Backfill",
    "Batch",
    "ChainPayloadError",
    "Erased",
    "encode",
    "parse_ack",
    "parse_backfill",
    "parse_batch",
    "parse_erased",
]

KINDS = frozenset({"event", "visit", "offer", "feedback", "erase"})
MAX_ROWS = 5000  # `central.batch` at most


class ChainPayloadError(ValueError):
    """A chain payload that does not follow docs/mqtt.md; the message says what is wrong."""


@dataclass(frozen=True, slots=True)
class Batch:
    """The range `(after, last]` of a store's journal: every row it still has in it."""

    store: str
    after: int
    last: int
    rows: tuple[UplinkEntry, ...]  # the journal's rows, as the store reads them

    def obj(self) -> dict[str, Any]:
        rows = [_row_obj(r) for r in self.rows]
        return {"v": 1, "store": self.store, "after": self.after, "last": self.last, "rows": rows}


@dataclass(frozen=True, slots=True)
class Ack:
    """The centre's high-water mark of a store: `(0, hwm]` is committed."""

    store: str
    hwm: int
    at: float

    def obj(self) -> dict[str, Any]:
        return {"v": 1, "store": self.store, "hwm": self.hwm, "at": self.at}


@dataclass(frozen=True, slots=True)
class Backfill:
    """The centre asks the store to send its journal again from `start` (to `end`)."""

    store: str
    start: int
    end: int
    at: float

    def obj(self) -> dict[str, Any]:
        return {"v": 1, "store": self.store, "from": self.start, "to": self.end, "at": self.at}


@dataclass(frozen=True, slots=True)
class Erased:
    """An erasure (`erase` row `seq`) applied at the centre: `rows` records deleted."""

    store: str
    seq: int
    rows: int
    at: float

    def obj(self) -> dict[str, Any]:
        return {"v": 1, "store": self.store, "seq": self.seq, "rows": self.rows, "at": self.at}


def encode(message: Batch | Ack | Backfill | Erased) -> bytes:
    return json.dumps(message.obj(), separators=(",", ":")).encode()


def _object(payload: bytes, what: str) -> dict[str, Any]:
    try:
        value = json.loads(payload)
    except (UnicodeDecodeError, ValueError) as exc:
        raise ChainPayloadError(f"{what}: not JSON ({exc})") from None
    if not isinstance(value, dict):
        raise ChainPayloadError(f"{what}: expected a JSON object, got {type(value).__name__}")
    if value.get("v") != 1:
        raise ChainPayloadError(f"{what}: 'v' must be 1 (this collector reads version 1)")
    return value


def _int(obj: dict[str, Any], key: str, what: str, low: int = 0) -> int:
    value = obj.get(key)
    if type(value) is not int or value < low:
        raise ChainPayloadError(f"{what}: '{key}' must be a whole number >= {low}, got {value!r}")
    return value


def _number(obj: dict[str, Any], key: str, what: str) -> float:
    value: Any = obj.get(key)
    if type(value) not in (int, float) or not math.isfinite(value):
        raise ChainPayloadError(f"{what}: '{key}' must be a finite number, got {value!r}")
    return float(value)


def _store(obj: dict[str, Any], store: str, what: str) -> str:
    if obj.get("store") != store:
        raise ChainPayloadError(
            f"{what}: 'store' is {obj.get('store')!r} but the topic is store {store!r}: "
            "a store sends only on its own topics"
        )
    return store


def _text(value: Any, key: str, what: str) -> str | None:
    if value is None or (isinstance(value, str) and len(value) <= 200):
        return value
    raise ChainPayloadError(f"{what}: '{key}' must be a string of at most 200 or null")


def _row_obj(row: UplinkEntry) -> dict[str, Any]:
    return {
        "seq": row.seq,
        "kind": row.kind,
        "at": row.at,
        "customer": row.customer,
        "device": row.device,
        "body": row.body,
    }


def _row(obj: Any, what: str) -> UplinkEntry:
    if not isinstance(obj, dict):
        raise ChainPayloadError(f"{what}: expected an object")
    kind = obj.get("kind")
    if kind not in KINDS:
        raise ChainPayloadError(f"{what}: 'kind' must be one of {sorted(KINDS)}, got {kind!r}")
    body = obj.get("body")
    if not isinstance(body, dict):
        raise ChainPayloadError(f"{what}: 'body' must be an object")
    return UplinkEntry(
        seq=_int(obj, "seq", what, 1),
        kind=kind,
        at=_number(obj, "at", what),
        customer=_text(obj.get("customer"), "customer", what),
        device=_text(obj.get("device"), "device", what),
        body=body,
    )


def parse_batch(store: str, payload: bytes) -> Batch:
    """A `chain/batch` of `store` (the topic's); ChainPayloadError when malformed."""
    what = f"chain/batch of store {store!r}"
    obj = _object(payload, what)
    after, last = _int(obj, "after", what), _int(obj, "last", what, 1)
    rows_obj = obj.get("rows")
    if not isinstance(rows_obj, list) or len(rows_obj) > MAX_ROWS:
        raise ChainPayloadError(f"{what}: 'rows' must be a list of at most {MAX_ROWS} rows")
    rows = tuple(_row(r, f"{what}, row {i}") for i, r in enumerate(rows_obj))
    seqs = [r.seq for r in rows]
    if last <= after or any(not after < s <= last for s in seqs) or seqs != sorted(set(seqs)):
        raise ChainPayloadError(
            f"{what}: the rows' 'seq' must increase strictly within (after, last] = "
            f"({after}, {last}]"
        )
    return Batch(_store(obj, store, what), after, last, rows)


def parse_ack(store: str, payload: bytes) -> Ack:
    what = f"chain/ack of store {store!r}"
    obj = _object(payload, what)
    return Ack(_store(obj, store, what), _int(obj, "hwm", what), _number(obj, "at", what))


def parse_backfill(store: str, payload: bytes) -> Backfill:
    what = f"chain/backfill of store {store!r}"
    obj = _object(payload, what)
    start, end = _int(obj, "from", what, 1), _int(obj, "to", what, 1)
    return Backfill(_store(obj, store, what), start, end, _number(obj, "at", what))


def parse_erased(store: str, payload: bytes) -> Erased:
    what = f"chain/erased of store {store!r}"
    obj = _object(payload, what)
    seq, rows = _int(obj, "seq", what, 1), _int(obj, "rows", what)
    return Erased(_store(obj, store, what), seq, rows, _number(obj, "at", what))
