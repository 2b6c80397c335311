"""Readers of untrusted JSON values that explain themselves (used by `gateway.decode.inbound`).

Each reader returns the value it checked or aborts the parse with `fail`, whose reason says
what is wrong, where and how to fix it ("'beacons[2].rssi' must be a number of dBm …"); a
parser wrapped in `guarded` turns that into an `InboundError` instead of raising.  Bytes and
text longer than `MAX_PAYLOAD_BYTES` are refused before any parsing, JSON nested deeper than
`MAX_JSON_DEPTH` right after it.  No reader raises anything but `Bad` on any JSON value: huge
integers are compared, never converted, and `show` renders them without `str()`.  Pure.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, NoReturn, ParamSpec, TypeVar

MAX_PAYLOAD_BYTES = 64 * 1024
MAX_EPOCH_S = 1e11  # beyond year 5000: surely milliseconds
# Our deepest payload nests 3 levels (a CRM record's attributes list, a sightings beacon).  32
# leaves room for what senders add, and keeps whatever walks a value later (json.dumps, repr,
# a trace writer) far from Python's recursion limit of 1,000 frames.
MAX_JSON_DEPTH = 32

_P = ParamSpec("_P")
_T = TypeVar("_T")


class Problem(StrEnum):
    """Why a message was refused, for counters: only MALFORMED means a sender to fix."""

    MALFORMED = "malformed"  # not JSON, wrong shape, type or range
    TOO_LARGE = "too_large"  # over MAX_PAYLOAD_BYTES, or too many items
    NOT_OURS = "not_ours"  # well formed, but nothing Rayon tracks (another _type, a phone's MAC)


@dataclass(frozen=True, slots=True)
class InboundError:
    """A refused inbound message: `reason` says what is wrong and how to fix it."""

    reason: str
    problem: Problem = Problem.MALFORMED

    def __str__(self) -> str:
        return self.reason


class Bad(Exception):
    """Aborts a parse (raised by `fail`); `guarded` turns it into its InboundError."""

    def __init__(self, reason: str, problem: Problem = Problem.MALFORMED) -> None:
        super().__init__(reason)
        self.error = InboundError(reason, problem)


def guarded(fn: Callable[_P, _T]) -> Callable[_P, _T | InboundError]:
    """`fn`, returning the InboundError of a failed read instead of raising it."""

    @functools.wraps(fn)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _T | InboundError:
        try:
            return fn(*args, **kwargs)
        except Bad as bad:
            return bad.error

    return wrapper


def check_size(payload: object) -> None:
    """Refuse bytes or text over the limit, before any parsing (UTF-8 ≥ 1 byte a character)."""
    if isinstance(payload, bytes | bytearray):
        n = len(payload)
    elif isinstance(payload, str):
        n = len(payload)
        n = n if n > MAX_PAYLOAD_BYTES else len(payload.encode("utf-8", "surrogatepass"))
    else:
        return
    if n > MAX_PAYLOAD_BYTES:
        limit = f"the {MAX_PAYLOAD_BYTES}-byte limit; send fewer items per message"
        fail(f"payload of {n} bytes exceeds {limit}", Problem.TOO_LARGE)


def decode(payload: object) -> Any:
    """The JSON value of a payload: bytes and text are parsed, anything else is taken as is;
    either way refused when nested deeper than MAX_JSON_DEPTH."""
    check_size(payload)
    if not isinstance(payload, bytes | bytearray | str):
        check_depth(payload)
        return payload
    if not payload:
        fail("empty payload: expected a JSON object")
    try:
        value = json.loads(payload, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        fail(f"payload is not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}")
    except RecursionError:  # the C parser's own guard, far deeper than ours
        _too_deep()
    except ValueError as exc:  # also an integer of over 4,300 digits
        fail(f"payload is not JSON: {exc}")
    if _openings(payload) >= MAX_JSON_DEPTH:  # fewer brackets cannot nest that deep
        check_depth(value)
    return value


def _openings(payload: bytes | bytearray | str) -> int:
    if isinstance(payload, str):
        return payload.count("[") + payload.count("{")
    return payload.count(b"[") + payload.count(b"{")


def check_depth(value: object) -> None:
    """Refuse a JSON value nested deeper than MAX_JSON_DEPTH; level by level, no recursion."""
    level = [value] if isinstance(value, dict | list) else []
    for _ in range(MAX_JSON_DEPTH):
        level = [
            x
            for c in level
            for x in (c.values() if type(c) is dict else c)
            if type(x) is dict or type(x) is list
        ]
        if not level:
            return
    _too_deep()


def _too_deep() -> NoReturn:
    fail(f"payload is nested too deeply: more than {MAX_JSON_DEPTH} levels of objects and lists")


def _no_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not a JSON number")


def mapping(value: object, what: str) -> Mapping[str, Any]:
    """`value` if it is a JSON object; `what` names it in the message."""
    if not isinstance(value, Mapping):
        fail(f"{what} must be a JSON object, got {kind_of(value)}")
    return value


def as_number(value: object) -> int | float | None:
    """`value` if it is a finite JSON number (not a boolean), else None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def number(value: object, where: str, lo: float, hi: float, unit: str) -> float:
    """A JSON number from `lo` to `hi` at key path `where`; `unit` completes the message."""
    n = as_number(value)
    # compare before float(): a huge JSON integer must not overflow
    if n is None or not lo <= n <= hi:
        fail(f"'{where}' must be a number {unit} from {lo} to {hi}, got {show(value)}")
    return float(n)


def optional_number(value: object, where: str, lo: float, hi: float, unit: str) -> float | None:
    """`number`, or None when the value is absent."""
    return None if value is None else number(value, where, lo, hi, unit)


def integer(value: object, where: str, lo: int, hi: int) -> int:
    """A whole JSON number from `lo` to `hi` (2.0 counts) at key path `where`."""
    n = as_number(value)
    if n is None or not lo <= n <= hi or not float(n).is_integer():
        fail(f"'{where}' must be a whole number from {lo} to {hi}, got {show(value)}")
    return int(n)


def optional_name(value: object, where: str) -> str | None:
    """A non-blank string of at most 200 characters, or None when absent."""
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > 200:
        fail(f"'{where}' must be a non-empty string of at most 200 characters")
    return value


def timestamp(value: object, where: str, default: float) -> float:
    """Epoch seconds or ISO 8601 with an offset; `default` when absent."""
    if value is None:
        return default
    if isinstance(value, str):
        return _iso_time(value, where)
    n = as_number(value)
    if n is None or not 0 <= n < MAX_EPOCH_S:
        hint = " (milliseconds? divide by 1000)" if n is not None and n > 0 else ""
        fail(f"'{where}' must be epoch seconds or ISO 8601 time, got {show(value)}{hint}")
    return float(n)


def _iso_time(text: str, where: str) -> float:
    example = "e.g. 2026-03-03T15:00:00+01:00"
    try:
        when = datetime.fromisoformat(text)
        stamp = when.timestamp() if when.tzinfo is not None else None
    except (ValueError, OverflowError):
        fail(f"'{where}' is not an ISO 8601 time: {show(text)}, {example}")
    if stamp is None:
        fail(f"'{where}' needs a UTC offset: {show(text)}, {example} or Z")
    if not 0 <= stamp < MAX_EPOCH_S:
        fail(f"'{where}' is out of range: {show(text)}")
    return stamp


def topic_level(value: object, what: str) -> str:
    """`value` if it can be one MQTT topic level (no `/`, `+`, `#` or NUL)."""
    if not isinstance(value, str) or not value or any(c in value for c in "/+#\x00"):
        fail(f"{what} {show(value)} must be one non-empty MQTT topic level")
    return value


def limit_count(n: int, most: int, what: str) -> None:
    """Refuse a message holding more than `most` items (TOO_LARGE)."""
    if n > most:
        fail(f"{n} {what} in one message, at most {most}: split it", Problem.TOO_LARGE)


def join_path(where: str, key: str) -> str:
    """The key path of `key` inside `where` (`where` may be empty)."""
    return f"{where}.{key}" if where else key


def kind_of(value: object) -> str:
    """What a JSON value is, for a message ("a list", "null" …)."""
    if value is None:
        return "null"
    if isinstance(value, int | float) and not isinstance(value, bool):
        return "a number"
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}
    return names.get(type(value), type(value).__name__)


def show(value: object) -> str:
    """A short, safe rendering of an untrusted value for a message."""
    if isinstance(value, str):
        text = repr(value[:40])
    elif isinstance(value, bool | float) or (isinstance(value, int) and abs(value) < 10**30):
        text = repr(value)  # a huge int's repr may raise (sys.set_int_max_str_digits)
    else:
        return "nothing (missing or null)" if value is None else kind_of(value)
    return text if len(text) <= 44 else text[:41] + "..."


def fail(reason: str, problem: Problem = Problem.MALFORMED) -> NoReturn:
    """Abort the parse: the `guarded` parser returns InboundError(reason, problem)."""
    raise Bad(reason, problem)


# json's messages, by how they start, in the words of someone editing a file by hand
_JSON_MISTAKES = (
    ("Expecting ',' delimiter", "a comma, or a closing } or ], is missing here"),
    (
        "Expecting property name",
        'a field name in double quotes is expected here ("id": …): JSON takes double quotes '
        "only, and no comma before a closing }",
    ),
    ("Expecting ':' delimiter", "a ':' is missing after the field name"),
    ("Expecting value", 'a value is missing here, or a text lacks its double quotes ("c-1")'),
    ("Extra data", "something follows the end of the object: one JSON object per line"),
    ("Unterminated string", 'the text starting here is never closed with a "'),
    ("Invalid control character", r"a tab or line break inside a text: write it \t or \n"),
    ("Invalid \\escape", r"a backslash inside a text: write it \\"),
)


def json_mistake(exc: json.JSONDecodeError) -> str:
    """What is wrong at `exc.colno`, in plain words (never the parser's own)."""
    found = (text for start, text in _JSON_MISTAKES if exc.msg.startswith(start))
    return next(found, "this is not valid JSON: check the quotes, commas and braces")
