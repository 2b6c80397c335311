"""Customer files (DESIGN.md §6): the CRM's view of customers, as JSON objects, JSONL or CSV.

    {"id", "token", "devices": ["ibeacon:…"], "consent": {"instore_location", "marketing_push"},
     "first_name", "segments": [], "interests": [], "tier", "visits", "last_visit",
     "attributes": {}}

`customer_from_obj` validates one object (from a JSONL line, a CSV row or the CRM topic) and
raises InvalidInput naming where it came from and every bad field.  `read_customers` reads a whole
file, keeping the good customers and one error per bad line: a bad line never loses the others.

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
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any

from gateway.errors import InvalidInput
from gateway.identity import Consent, Customer
from gateway.ids import canonical_device_id
from gateway.yamlsrc import did_you_mean

FIELDS: tuple[str, ...] = ("id", "token", "devices", "consent", "first_name", "segments")
FIELDS += ("interests", "tier", "visits", "last_visit", "attributes")
CONSENTS = ("instore_location", "marketing_push")
LISTS = ("devices", "segments", "interests")
CSV_COLUMNS = tuple(f for f in FIELDS if f not in ("consent", "attributes")) + tuple(
    f"consent.{c}" for c in CONSENTS
)
_DEVICE_FORMS = "ibeacon:<uuid>:<major>:<minor>, eddystone:<ns>:<instance> or altbeacon:<40 hex>"
_TOKEN = re.compile(r"^[A-Za-z0-9_.~-]{1,128}$")
_TRUE, _FALSE = {"true", "1", "yes", "y"}, {"false", "0", "no", "n", ""}


class _Problems:
    """The bad fields of one object, reported together."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, field: str, message: str) -> None:
        self.items.append(f"'{field}': {message}")


# ---------------------------------------------------------------------------------- objects


def customer_from_obj(obj: object, where: str) -> Customer:
    """Validate one customer object; raise InvalidInput naming `where` and every bad field."""
    if not isinstance(obj, Mapping):
        raise InvalidInput(f"{where}: error: expected a JSON object, got {type(obj).__name__}")
    p = _Problems()
    for key in obj:
        if key not in FIELDS:
            p.add(str(key), f"unknown field{did_you_mean(str(key), FIELDS)}")
    customer = Customer(
        id=_text(obj, "id", p, required=True) or "",
        token=_token(obj, p),
        devices=tuple(_devices(obj.get("devices"), p)),
        consent=_consent(obj.get("consent"), p),
        first_name=_text(obj, "first_name", p),
        segments=frozenset(_strings(obj.get("segments"), "segments", p)),
        interests=frozenset(_strings(obj.get("interests"), "interests", p)),
        tier=_text(obj, "tier", p),
        visits=_visits(obj.get("visits"), p),
        last_visit=_last_visit(obj.get("last_visit"), p),
        attributes=_attributes(obj.get("attributes"), p),
    )
    if p.items:
        raise InvalidInput(f"{where}: error: " + "; ".join(p.items))
    return customer


def _text(obj: Mapping[Any, Any], key: str, p: _Problems, required: bool = False) -> str | None:
    value = obj.get(key)
    if isinstance(value, int) and not isinstance(value, bool) and key == "id":
        value = str(value)  # CRMs often number their customers
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            p.add(key, "missing: every customer needs one")
        return None
    if not isinstance(value, str):
        p.add(key, f"expected a string, got {json.dumps(value)}")
        return None
    return value.strip()


def _token(obj: Mapping[Any, Any], p: _Problems) -> str:
    token = _text(obj, "token", p, required=True)
    if token is not None and not _TOKEN.match(token):
        p.add("token", f"{token!r} is not a delivery token: use 1-128 of A-Z a-z 0-9 _ . ~ -")
        return ""
    return token or ""


def _strings(value: object, key: str, p: _Problems) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        p.add(key, f"expected a list of strings, got {json.dumps(value, default=str)}")
        return []
    return [v.strip() for v in value if v.strip()]


def _devices(value: object, p: _Problems) -> list[str]:
    out: list[str] = []
    for i, raw in enumerate(_strings(value, "devices", p)):
        device = canonical_device_id(raw)
        if device is None:
            p.add(f"devices[{i}]", f"{raw!r} is not a device id: write {_DEVICE_FORMS}")
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
            p.add(f"consent.{key}", f"unknown purpose{did_you_mean(str(key), CONSENTS)}")
    flags = [value.get(c, False) for c in CONSENTS]
    for purpose, flag in zip(CONSENTS, flags, strict=True):
        if not isinstance(flag, bool):
            p.add(f"consent.{purpose}", f"expected true or false, got {json.dumps(flag)}")
    return Consent(*(f is True for f in flags))


def _visits(value: object, p: _Problems) -> int:
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        p.add("visits", f"expected a whole number ≥ 0, got {json.dumps(value)}")
        return 0
    return value


def _last_visit(value: object, p: _Problems) -> float | None:
    if value is None or value == "":
        return None
    seconds = parse_time(value)
    if seconds is None:
        p.add("last_visit", f"expected ISO 8601 or epoch seconds, got {json.dumps(value)}")
    return seconds


def parse_time(value: object) -> float | None:
    """Epoch seconds from a number, a numeric string or ISO 8601 (naive = UTC); else None."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            moment = datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
        except ValueError:
            return None
        seconds = (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()
    return seconds if math.isfinite(seconds) else None


def _attributes(value: object, p: _Problems) -> Mapping[str, Any]:
    if value is None:
        return MappingProxyType({})
    if not isinstance(value, Mapping):
        p.add("attributes", "expected an object of name: value")
        return MappingProxyType({})
    out: dict[str, Any] = {}
    for key, v in value.items():
        if _is_scalar(v):
            out[str(key)] = v
        elif isinstance(v, list) and all(_is_scalar(x) for x in v):
            out[str(key)] = tuple(v)
        else:
            p.add(f"attributes.{key}", "expected a string, number, boolean or a list of them")
    return MappingProxyType(out)


def _is_scalar(v: object) -> bool:
    return (
        v is None or isinstance(v, str | bool | int) or (isinstance(v, float) and math.isfinite(v))
    )


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
        where = f"{path}:{line}"
        try:
            if isinstance(obj, str):
                raise InvalidInput(f"{where}: error: {obj}")
            customer = customer_from_obj(obj, where)
            seen.check(customer, where, line)
        except InvalidInput as exc:
            errors.append(str(exc))
            continue
        customers.append(customer)
    return customers, errors


class _Seen:
    """Ids, tokens and devices already read, to report a repeat on its line."""

    def __init__(self) -> None:
        self._first: dict[tuple[str, str], int] = {}

    def check(self, c: Customer, where: str, line: int) -> None:
        keys = [("id", c.id), ("token", c.token), *(("device", d) for d in c.devices)]
        for key in keys:
            if key in self._first:
                first = self._first[key]
                raise InvalidInput(
                    f"{where}: error: {key[0]} {key[1]!r} is already on line {first}"
                )
        for key in keys:
            self._first[key] = line


def _jsonl_rows(text: str) -> Iterator[tuple[int, object]]:
    """(line, object) per non-blank line; a string object stands for a parse error."""
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            yield number, json.loads(line)
        except (ValueError, RecursionError) as exc:
            yield number, f"invalid JSON: {exc}"


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
    return int(value) if value.isdigit() else value


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
