"""Customer files (docs/trace.md): the CRM's view of customers, as JSON objects, JSONL or CSV.

    {"id", "token", "devices": ["ibeacon:…"], "consent": {"instore_location", "marketing_push"},
     "first_name", "segments": [], "interests": [], "tier", "visits", "last_visit",
     "attributes": {}}

`customer_from_obj` validates one object (from a JSONL line, a CSV row or the CRM topic) and
returns its Customer, or an `InboundError` naming where it came from and every bad field, as
every reader of untrusted input does (`gateway.decode.jsonvalues`).  `read_customers` reads a
whole file, keeping the good customers and one error per bad line: a bad line never loses the
others.

Device ids are normalised to the canonical form (aliases accepted).  Consent defaults to False for
both purposes.  `last_visit` is ISO 8601 (without an offset it is taken as UTC) or epoch seconds.
Attribute values are JSON scalars or lists of scalars (lists become tuples); in CSV they are the
text of the `attributes.<key>` columns.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any

from gateway.config.yamlsrc import did_you_mean
from gateway.decode.jsonvalues import (
    MAX_EPOCH_S,
    InboundError,
    as_number,
    fail,
    guarded,
    json_mistake,
    kind_of,
    show,
)
from gateway.identity.model import Consent, Customer
from gateway.ids import canonical_device_id, customer_id_problem, token_problem

FIELDS: tuple[str, ...] = ("id", "token", "devices", "consent", "first_name", "segments")
FIELDS += ("interests", "tier", "visits", "last_visit", "attributes")
CONSENTS = ("instore_location", "marketing_push")
LISTS = ("devices", "segments", "interests")
CSV_COLUMNS = tuple(f for f in FIELDS if f not in ("consent", "attributes")) + tuple(
    f"consent.{c}" for c in CONSENTS
)
# Bounds on a record: generous for any CRM, small enough that one hostile record cannot
# overflow the database (SQLite INTEGER is 64-bit), the rule engine or a log line.
MAX_VISITS = 1_000_000  # a visit a day for 2,700 years
MAX_NAME_CHARS = 100  # first_name
MAX_TIER_CHARS = 64
MAX_LABELS, MAX_LABEL_CHARS = 100, 64  # segments, interests; and an attribute's list
MAX_DEVICES, MAX_DEVICE_CHARS = 16, 128
MAX_ATTRIBUTES, MAX_ATTRIBUTE_KEY_CHARS, MAX_ATTRIBUTE_TEXT_CHARS = 50, 64, 1000
MAX_SAFE_INT = 2**53  # JSON numbers beyond ±2**53 are not exact in JavaScript back offices
MAX_PROBLEMS = 10  # reported per record; the rest are counted
_DEVICE_FORMS = "ibeacon:<uuid>:<major>:<minor>, eddystone:<ns>:<instance> or altbeacon:<40 hex>"
_PLAIN_KEY = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_TRUE, _FALSE = {"true", "1", "yes", "y"}, {"false", "0", "no", "n", ""}


class _Problems:
    """The bad fields of one object, reported together.  A message names the key path and
    the JSON type, never the value: a CRM record holds names, e-mails and loyalty numbers."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, field: str, message: str) -> None:
        self.items.append(f"'{field}': {message}")

    def text(self) -> str:
        more = len(self.items) - MAX_PROBLEMS
        return "; ".join(self.items[:MAX_PROBLEMS]) + (f"; and {more} more" if more > 0 else "")


def _key(key: object) -> str:
    """A key of the record, safe to print (a hostile key may be long or hold a newline)."""
    return key if isinstance(key, str) and _PLAIN_KEY.fullmatch(key) else show(key)


# ---------------------------------------------------------------------------------- objects


@guarded
def customer_from_obj(obj: object, where: str) -> Customer:
    """Validate one customer object: its Customer, or an InboundError naming `where` and every
    bad field (`{where}: error: 'visits': …`).

    Never raises, whatever the value: every field is bounded (MAX_* above) and the message
    names key paths and JSON types, never a customer's values."""
    if not isinstance(obj, Mapping):
        fail(f"{where}: error: expected a JSON object, got {kind_of(obj)}")
    p = _Problems()
    for key in obj:
        if key not in FIELDS:
            hint = did_you_mean(key, FIELDS) if isinstance(key, str) and len(key) < 64 else ""
            p.add(_key(key), f"unknown field{hint}")
    customer = Customer(
        id=_id(obj.get("id"), p),
        token=_token(obj.get("token"), p),
        devices=tuple(_devices(obj.get("devices"), p)),
        consent=_consent(obj.get("consent"), p),
        first_name=_text(obj.get("first_name"), "first_name", MAX_NAME_CHARS, p),
        segments=frozenset(_labels(obj.get("segments"), "segments", p)),
        interests=frozenset(_labels(obj.get("interests"), "interests", p)),
        tier=_text(obj.get("tier"), "tier", MAX_TIER_CHARS, p),
        visits=_visits(obj.get("visits"), p),
        last_visit=_last_visit(obj.get("last_visit"), p),
        attributes=_attributes(obj.get("attributes"), p),
    )
    if p.items:
        fail(f"{where}: error: {p.text()}")
    return customer


def _text(value: object, key: str, most: int, p: _Problems) -> str | None:
    """A stripped string of at most `most` characters; None when absent or blank."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, str) or len(value.strip()) > most:
        p.add(key, f"expected a string of at most {most} characters, got {_kind(value)}")
        return None
    return value.strip()


def _kind(value: object) -> str:
    """The JSON type of a value, and a string's length (the length is not personal)."""
    if not isinstance(value, str):
        return kind_of(value)
    return f"a string of {len(value)} character{'' if len(value) == 1 else 's'}"


def _required(
    value: object, key: str, problem: Callable[[object], str | None], p: _Problems
) -> str:
    if isinstance(value, str):
        value = value.strip()
    if value is None or value == "":
        p.add(key, "missing: every customer needs one")
        return ""
    why = problem(value)
    if why is not None:
        p.add(key, f"{why}, got {_kind(value)}")
        return ""
    assert isinstance(value, str)
    return value


def _id(value: object, p: _Problems) -> str:
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) < 10**100:
        value = str(value)  # CRMs often number their customers
    return _required(value, "id", customer_id_problem, p)


def _token(value: object, p: _Problems) -> str:
    return _required(value, "token", token_problem, p)


def _labels(value: object, key: str, p: _Problems, most: int = MAX_LABEL_CHARS) -> list[str]:
    """Segments, interests, devices: a list of at most MAX_LABELS short strings."""
    if value is None:
        return []
    if not isinstance(value, list) or len(value) > MAX_LABELS:
        p.add(key, f"expected a list of at most {MAX_LABELS} strings, got {_kind(value)}")
        return []
    for i, v in enumerate(value):
        if not isinstance(v, str) or len(v) > most:
            p.add(f"{key}[{i}]", f"expected a string of at most {most} characters, got {_kind(v)}")
            return []
    return [v.strip() for v in value if v.strip()]


def _devices(value: object, p: _Problems) -> list[str]:
    raw = _labels(value, "devices", p, MAX_DEVICE_CHARS)
    if len(raw) > MAX_DEVICES:
        p.add("devices", f"at most {MAX_DEVICES} devices per customer, got {len(raw)}")
        return []
    out: list[str] = []
    for i, text in enumerate(raw):
        device = canonical_device_id(text)
        if device is None:
            p.add(f"devices[{i}]", f"not a device id: write {_DEVICE_FORMS}")
        elif device not in out:
            out.append(device)
    return out


def _consent(value: object, p: _Problems) -> Consent:
    if value is None:
        return Consent()
    if not isinstance(value, Mapping):
        p.add("consent", "expected an object {instore_location: bool, marketing_push: bool}")
        return Consent()
    for key in value:
        if key not in CONSENTS:
            hint = did_you_mean(key, CONSENTS) if isinstance(key, str) and len(key) < 64 else ""
            p.add(f"consent.{_key(key)}", f"unknown purpose{hint}")
    flags = [value.get(c, False) for c in CONSENTS]
    for purpose, flag in zip(CONSENTS, flags, strict=True):
        if not isinstance(flag, bool):
            p.add(f"consent.{purpose}", f"expected true or false, got {_kind(flag)}")
    return Consent(*(f is True for f in flags))


def _visits(value: object, p: _Problems) -> int:
    if value is None:
        return 0
    n = as_number(value)
    if n is None or not 0 <= n <= MAX_VISITS or not float(n).is_integer():
        p.add("visits", f"expected a whole number from 0 to {MAX_VISITS:,}, got {_kind(value)}")
        return 0
    return int(n)


def _last_visit(value: object, p: _Problems) -> float | None:
    if value is None or value == "":
        return None
    seconds = parse_time(value)
    if seconds is None:
        p.add("last_visit", f"expected ISO 8601 or epoch seconds, got {_kind(value)}")
    return seconds


def parse_time(value: object) -> float | None:
    """Epoch seconds from a number, a numeric string or ISO 8601 (naive = UTC), from 0 to
    MAX_EPOCH_S; None for anything else.  Never raises."""
    seconds: float | None
    if isinstance(value, str) and len(value) <= 64:
        try:
            seconds = float(value)
        except ValueError:
            seconds = _iso_seconds(value.strip())
    else:
        seconds = as_number(value)  # a huge int is compared, never converted
    if seconds is None or not 0 <= seconds < MAX_EPOCH_S:
        return None
    return float(seconds)


def _iso_seconds(text: str) -> float | None:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()
    except (ValueError, OverflowError):
        return None


def _attributes(value: object, p: _Problems) -> Mapping[str, Any]:
    if value is None:
        return MappingProxyType({})
    if not isinstance(value, Mapping) or len(value) > MAX_ATTRIBUTES:
        p.add("attributes", f"expected an object of at most {MAX_ATTRIBUTES} name: value")
        return MappingProxyType({})
    out: dict[str, Any] = {}
    for key, v in value.items():
        where = f"attributes.{_key(key)}"
        if not isinstance(key, str) or not 0 < len(key) <= MAX_ATTRIBUTE_KEY_CHARS:
            p.add(where, f"a name must be 1 to {MAX_ATTRIBUTE_KEY_CHARS} characters")
        elif _is_scalar(v):
            out[key] = v
        elif isinstance(v, list) and len(v) <= MAX_LABELS and all(_is_scalar(x) for x in v):
            out[key] = tuple(v)
        else:
            p.add(where, f"expected {_ATTRIBUTE_FORMS}, got {_kind(v)}")
    return MappingProxyType(out)


_ATTRIBUTE_FORMS = (
    f"a string of at most {MAX_ATTRIBUTE_TEXT_CHARS} characters, a number within ±2**53, a "
    f"boolean, or a list of at most {MAX_LABELS} of them"
)


def _is_scalar(v: object) -> bool:
    if v is None or isinstance(v, bool):
        return True
    if isinstance(v, str):
        return len(v) <= MAX_ATTRIBUTE_TEXT_CHARS
    if isinstance(v, int):
        return -MAX_SAFE_INT <= v <= MAX_SAFE_INT
    return isinstance(v, float) and math.isfinite(v)


def customer_to_obj(c: Customer) -> dict[str, Any]:
    """The JSONL form of a customer (CRM topic, exports); `customer_from_obj` reads it back."""
    last = c.last_visit
    return {
        "id": c.id,
        "token": c.token,
        "devices": list(c.devices),
        "consent": {p: getattr(c.consent, p) for p in CONSENTS},
        "first_name": c.first_name,
        "segments": sorted(c.segments),
        "interests": sorted(c.interests),
        "tier": c.tier,
        "visits": c.visits,
        "last_visit": None if last is None else datetime.fromtimestamp(last, UTC).isoformat(),
        "attributes": {k: list(v) if isinstance(v, tuple) else v for k, v in c.attributes.items()},
    }


# ---------------------------------------------------------------------------------- files


def read_customers(path: Path) -> tuple[list[Customer], list[str]]:
    """Customers of a JSONL or CSV file, and one `file:line: error: …` per bad line.

    CSV is chosen by the `.csv` suffix; anything else is JSON Lines.  Never raises: an unreadable
    file is one error.  An id, token or device repeated in the file is an error on the later line.
    """
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        return [], [f"{path}: error: cannot read the file: {exc}"]
    rows = _csv_rows(text, str(path)) if path.suffix.lower() == ".csv" else _jsonl_rows(text)
    customers: list[Customer] = []
    errors: list[str] = []
    seen = _Seen()
    for line, obj in rows:
        got = _row_customer(obj, f"{path}:{line}", line, seen)
        if isinstance(got, Customer):
            customers.append(got)
        else:
            errors.append(got)
    return customers, errors


def _row_customer(obj: object, where: str, line: int, seen: _Seen) -> Customer | str:
    """The customer of one line (`obj`: its object, or the text of its parse error), or its
    `file:line: error: …`."""
    if isinstance(obj, str):
        return f"{where}: error: {obj}"
    if isinstance(obj, _BadJson):
        return f"{where}:{obj.col}: error: {obj.message}"
    got = customer_from_obj(obj, where)
    if isinstance(got, InboundError):
        return got.reason
    return seen.repeated(got, where, line) or got


class _Seen:
    """Ids, tokens and devices already read, to report a repeat on its line."""

    def __init__(self) -> None:
        self._first: dict[tuple[str, str], int] = {}

    def repeated(self, c: Customer, where: str, line: int) -> str | None:
        """The error of a customer whose id, token or a device came on an earlier line; else
        None, and the customer's keys are remembered as on `line`."""
        keys = [("id", c.id), ("token", c.token), *(("device", d) for d in c.devices)]
        for key in keys:
            if key in self._first:
                first = self._first[key]
                what = key[0] if key[0] == "token" else f"{key[0]} {key[1]!r}"  # a token is secret
                return f"{where}: error: {what} is already on line {first}"
        for key in keys:
            self._first[key] = line
        return None


@dataclass(frozen=True, slots=True)
class _BadJson:
    """A line that is not JSON: where on it, and what is wrong, in plain words."""

    col: int
    message: str


def _jsonl_rows(text: str) -> Iterator[tuple[int, object]]:
    """(line, object) per non-blank line; a `_BadJson` or a string stands for a parse error."""
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            yield number, json.loads(line)
        except json.JSONDecodeError as exc:
            yield number, _BadJson(exc.colno, f"invalid JSON: {json_mistake(exc)}")
        except (ValueError, RecursionError):
            yield number, "invalid JSON: nested too deeply or a number out of range"


def _csv_rows(text: str, file: str) -> Iterator[tuple[int, object]]:
    """(line, object) per CSV record, converted to the JSON form; a string is a problem."""
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [h.strip() for h in next(reader)]
    except (StopIteration, csv.Error):
        return
    problem = _header_problem(header)
    if problem:
        yield 1, problem
        if "id" not in header or "token" not in header:
            return
    start = reader.line_num + 1
    try:
        for row in reader:
            if any(cell.strip() for cell in row):
                yield start, _row_obj(header, row)
            start = reader.line_num + 1
    except csv.Error as exc:
        yield start, f"invalid CSV: {exc}"


def _header_problem(header: list[str]) -> str | None:
    problems = [f"missing column '{c}'" for c in ("id", "token") if c not in header]
    for column in header:
        if column not in CSV_COLUMNS and not column.startswith("attributes."):
            hint = did_you_mean(column, CSV_COLUMNS)
            problems.append(f"unknown column '{column}'{hint} (ignored)")
    return "; ".join(problems) or None


def _row_obj(header: list[str], row: list[str]) -> object:
    if len(row) != len(header):
        return f"expected {len(header)} columns, got {len(row)}"
    obj: dict[str, Any] = {"consent": {}, "attributes": {}}
    for column, cell in zip(header, row, strict=True):
        value = cell.strip()
        if column.startswith("attributes."):
            if value:
                obj["attributes"][column.removeprefix("attributes.")] = value
        elif column.startswith("consent."):
            obj["consent"][column.removeprefix("consent.")] = _csv_bool(value)
        elif column in LISTS:
            obj[column] = [v for v in value.split("|") if v.strip()]
        elif column in CSV_COLUMNS and value:
            obj[column] = _csv_int(value) if column == "visits" else value
    return obj


def _csv_bool(value: str) -> bool | str:
    low = value.lower()
    return True if low in _TRUE else False if low in _FALSE else value


def _csv_int(value: str) -> int | str:
    # ASCII only: "²".isdigit() holds but int("²") raises; short: int() of 4,300 digits raises
    return int(value) if value.isascii() and value.isdigit() and len(value) < 20 else value


def write_customers(path: Path, customers: list[Customer]) -> None:
    """Write customers as JSONL, or as CSV when `path` ends in `.csv` (attribute columns added)."""
    objs = [customer_to_obj(c) for c in customers]
    if path.suffix.lower() != ".csv":
        lines = (json.dumps(o, ensure_ascii=False) for o in objs)
        path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
        return
    attrs = sorted({k for o in objs for k in o["attributes"]})
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([*CSV_COLUMNS, *(f"attributes.{k}" for k in attrs)])
    for o in objs:
        writer.writerow([*(_csv_cell(o, c) for c in CSV_COLUMNS), *(_attr(o, k) for k in attrs)])
    path.write_text(out.getvalue(), encoding="utf-8")


def _csv_cell(obj: dict[str, Any], column: str) -> str:
    if column.startswith("consent."):
        return "true" if obj["consent"][column.removeprefix("consent.")] else "false"
    value = obj[column]
    if isinstance(value, list):
        return "|".join(value)
    return "" if value is None else str(value)


def _attr(obj: dict[str, Any], key: str) -> str:
    value = obj["attributes"].get(key)
    if isinstance(value, list):
        return "|".join(str(v) for v in value)
    return "" if value is None else str(value)
