"""The rolling recording of `rayon run` (config `record`, docs/trace.md#the-recording).

What the pipeline keeps of consenting customers — their store-UUID adverts (past the privacy
filter) and their phones' sightings — written as trace lines (docs/trace.md), so that
`rayon backtest --recorded` and every tool that reads a trace replays real store traffic.
Never written: CRM records, feedback, GPS locations and transitions, anyone without in-store
location consent, and of an advert its Bluetooth address, its name and any frame but the
beacon's.

Segments are gzip files (`trace-<UTC start>.jsonl.gz`, mode 0600, in a 0700 folder), one
per `record.segment` of event time or a twentieth of `record.max_size`.  The daemon appends a
gzip member per flush (a crash loses at most the last flush, and a reader stops cleanly at a
cut member).  Retention, the size cap and `rayon forget` rewrite the segments (`rewrite`):
each is read, filtered and replaced atomically, under a lock the daemon's appends take too.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import time
import zlib
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gateway.config.model import RecordConfig
from gateway.decode.adverts import parse_adv
from gateway.decode.beacons import APPLE, EDDYSTONE_KEYS
from gateway.decode.privacy import PrivacyFilter
from gateway.events import Advertisement, TraceItem
from gateway.identity.model import Customer
from gateway.topics import TopicKind, Topics

log = logging.getLogger(__name__)

PREFIX, SUFFIX = "trace-", ".jsonl.gz"
LOCK = ".lock"
MAX_BUFFERED = 100_000  # lines held between two flushes at most (beyond: dropped, counted)
SEGMENTS_PER_CAP = 20  # a segment rotates at this fraction of record.max_size


def segment_name(at: float) -> str:
    return f"{PREFIX}{datetime.fromtimestamp(at, UTC):%Y%m%dT%H%M%SZ}{SUFFIX}"


def segment_start(path: Path) -> float | None:
    """The UTC start a segment's name carries, or None for a file that is not a segment."""
    stem = path.name.removeprefix(PREFIX).removesuffix(SUFFIX).split("-", 1)[0]
    try:
        return datetime.strptime(stem, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC).timestamp()
    except ValueError:
        return None


def segments(folder: Path) -> list[Path]:
    """The segments of `folder`, oldest first (none when it does not exist)."""
    found = [p for p in folder.glob(f"{PREFIX}*{SUFFIX}") if segment_start(p) is not None]
    return sorted(found, key=lambda p: (segment_start(p) or 0.0, p.name))


def sanitized(adv: Advertisement) -> dict[str, Any]:
    """The trace line of an advert as recorded: its beacon frames (iBeacon, AltBeacon,
    Eddystone), the anchor, rssi and time; no address, no name, no other frame."""
    manufacturer = {
        str(k): v.hex()
        for k, v in adv.manufacturer_data.items()
        if len(v) > 2 and ((k == APPLE and v[:2] == b"\x02\x15") or v[:2] == b"\xbe\xac")
    }
    services = {k: v.hex() for k, v in adv.service_data.items() if k.lower() in EDDYSTONE_KEYS}
    return {
        "at": adv.at,
        "adv": {
            "anchor": adv.anchor,
            "address": "",
            "rssi": adv.rssi,
            "manufacturer_data": manufacturer,
            "service_data": services,
            "local_name": None,
        },
    }


def _dumps(obj: dict[str, Any]) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


@contextlib.contextmanager
def locked(folder: Path) -> Iterator[None]:
    """The folder's lock: the daemon's appends and every rewrite take it."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(folder / LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _append(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def _gzip(lines: Collection[str]) -> bytes:
    """One gzip member of these lines."""
    packer = zlib.compressobj(6, zlib.DEFLATED, 31)  # 31: the gzip container
    return packer.compress("".join(lines).encode("utf-8")) + packer.flush()


def read_lines(path: Path) -> Iterator[str]:
    """The lines of one segment; a member cut by a crash ends it (what came before is read)."""
    import gzip

    cut = (EOFError, gzip.BadGzipFile, zlib.error, FileNotFoundError)
    with contextlib.suppress(*cut), gzip.open(path, "rt", encoding="utf-8") as fh:
        yield from fh


def overlapping(folder: Path, since: float | None, until: float | None) -> list[Path]:
    """The segments that may hold lines in [since, until), oldest first (by their names: a
    segment ends where the next one starts)."""
    found = segments(folder)
    kept = []
    for i, path in enumerate(found):
        start = segment_start(path) or 0.0
        after = segment_start(found[i + 1]) if i + 1 < len(found) else None
        if until is not None and start >= until:
            break
        if since is None or after is None or after > since:
            kept.append(path)
    return kept


def read_recording(
    folder: Path, since: float | None = None, until: float | None = None
) -> Iterator[tuple[Path, str]]:
    """Every line of the segments that may hold [since, until), (segment, line), in time
    order."""
    for path in overlapping(folder, since, until):
        for line in read_lines(path):
            yield path, line


def last_time(folder: Path) -> float | None:
    """The time of the recording's last line, or None when nothing is recorded."""
    for path in reversed(segments(folder)):
        times = [t for t in map(line_time, read_lines(path)) if t is not None]
        if times:
            return max(times)
    return None


def line_time(line: str) -> float | None:
    """The `at` of a trace line, without parsing the rest (None when it has none)."""
    try:
        obj = json.loads(line)
    except ValueError:
        return None
    at = obj.get("at") if isinstance(obj, dict) else None
    return float(at) if isinstance(at, int | float) and not isinstance(at, bool) else None


# -- rewriting: retention, the size cap, forget ------------------------------------------------


def rewrite(path: Path, keep: Callable[[str], bool]) -> tuple[int, int]:
    """Replace `path` with only the lines `keep` accepts (deleted when none is left), atomically;
    the caller holds the lock.  (lines kept, lines dropped)."""
    lines = list(read_lines(path))
    kept = [line if line.endswith("\n") else line + "\n" for line in lines if keep(line)]
    dropped = len(lines) - len(kept)
    if not dropped:
        return len(kept), 0
    if not kept:
        path.unlink(missing_ok=True)
        return 0, dropped
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, _gzip(kept))
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    return len(kept), dropped


@dataclass(frozen=True, slots=True)
class Whose:
    """What identifies a customer's lines: their devices (adverts) and tokens (sightings)."""

    devices: frozenset[str]
    tokens: frozenset[str]

    @classmethod
    def of(cls, customers: Collection[Customer]) -> Whose:
        return cls(
            frozenset(d for c in customers for d in c.devices),
            frozenset(c.token for c in customers),
        )


def their_lines(whose: Whose, ours: PrivacyFilter, topics: Topics) -> Callable[[str], bool]:
    """Whether a trace line is one of theirs: an advert of one of their devices, or a message
    on one of their phone's topics."""

    def theirs(line: str) -> bool:
        try:
            obj = json.loads(line)
            if "adv" in obj:
                hit = ours.identify(parse_adv(float(obj["at"]), obj["adv"]))
                return hit is not None and hit[0] in whose.devices
            parsed = topics.parse(str(obj["mqtt"]["topic"]))
        except (ValueError, KeyError, TypeError):
            return False
        return (
            parsed is not None
            and parsed[0] is TopicKind.PHONE_SIGHTINGS
            and (parsed[1] in whose.tokens)
        )

    return theirs


def forget_in(folder: Path, whose: Whose, ours: PrivacyFilter, topics: Topics) -> int:
    """Rewrite every segment without these customers' lines; how many lines went."""
    theirs = their_lines(whose, ours, topics)
    dropped = 0
    with locked(folder):
        for path in segments(folder):
            dropped += rewrite(path, lambda line: not theirs(line))[1]
    return dropped


def apply_retention(folder: Path, settings: RecordConfig, now: float) -> int:
    """Drop what is older than `record.retention`, then the oldest segments beyond
    `record.max_size`; how many lines (or, for the size cap, segments) went."""
    cutoff = now - settings.retention
    gone = 0
    if not folder.is_dir():
        return 0
    with locked(folder):
        found = segments(folder)
        for i, path in enumerate(found):
            start = segment_start(path) or 0.0
            after = segment_start(found[i + 1]) if i + 1 < len(found) else None
            if after is not None and after <= cutoff:
                gone += sum(1 for _ in read_lines(path))
                path.unlink(missing_ok=True)
            elif start < cutoff:
                gone += rewrite(path, lambda line: (line_time(line) or 0.0) >= cutoff)[1]
        found = segments(folder)
        total = sum(p.stat().st_size for p in found)
        while len(found) > 1 and total > settings.max_bytes:
            oldest = found.pop(0)
            total -= oldest.stat().st_size
            oldest.unlink()
            gone += 1
    return gone


# -- the daemon's side --------------------------------------------------------------------------


@dataclass(slots=True)
class Recorder:
    """Collects what the pipeline keeps (`keep`, its hook) and appends it to the segments
    (`flush`, from a worker thread).  Remembers, per customer recorded this run, their
    devices and token, so that an erasure (`erase`) also rewrites the segments."""

    folder: Path
    settings: RecordConfig
    counters: dict[str, int] = field(default_factory=dict)
    _buffer: list[tuple[str, str]] = field(default_factory=list)
    _whose: dict[str, Customer] = field(default_factory=dict)
    _segment: Path | None = None
    _segment_start: float = 0.0
    _segment_bytes: int = 0

    def keep(self, customer: Customer, item: TraceItem) -> None:
        """The pipeline's hook: one input of a consenting customer."""
        if len(self._buffer) >= MAX_BUFFERED:
            self._count("record_dropped")
            return
        if isinstance(item, Advertisement):
            line = _dumps(sanitized(item))
        else:
            line = _dumps({"at": item.at, "mqtt": {"topic": item.topic, "payload": item.payload}})
        self._buffer.append((customer.id, line + "\n"))
        self._whose[customer.id] = customer

    def erase(self, customer_ids: Collection[str]) -> Whose | None:
        """Forget these customers' lines not yet written; what identifies the lines already
        written this run (for `forget_in`), or None when none was recorded."""
        gone = set(customer_ids)
        self._buffer = [(c, line) for c, line in self._buffer if c not in gone]
        known = [self._whose.pop(c) for c in gone if c in self._whose]
        return Whose.of(known) if known else None

    def take(self) -> list[str]:
        """The lines to write now (the buffer is emptied)."""
        lines = [line for _, line in self._buffer]
        self._buffer = []
        return lines

    def flush(self, lines: list[str]) -> int:
        """Append `lines` (blocking: run in a worker thread); bytes written."""
        if not lines:
            return 0
        written = 0
        with locked(self.folder):
            for path, part in self._split(lines):
                data = _gzip(part)
                _append(path, data)
                self._segment_bytes += len(data)
                written += len(data)
        self._count("record_lines", len(lines))
        self._count("record_bytes", written)
        return written

    def _split(self, lines: list[str]) -> Iterator[tuple[Path, list[str]]]:
        """`lines` by the segment each goes to, rotating by event time and size."""
        part: list[str] = []
        cap = max(1, self.settings.max_bytes // SEGMENTS_PER_CAP)
        for line in lines:
            at = line_time(line) or time.time()
            due = at >= self._segment_start + self.settings.segment or self._segment_bytes >= cap
            if self._segment is None or due:
                if part and self._segment is not None:
                    yield self._segment, part
                    part = []
                self._open(at)
            part.append(line)
        if part and self._segment is not None:
            yield self._segment, part

    def _open(self, at: float) -> None:
        path = self.folder / segment_name(at)
        n = 0
        while path.exists():
            n += 1
            path = self.folder / segment_name(at).replace(SUFFIX, f"-{n}{SUFFIX}")
        self._segment, self._segment_start, self._segment_bytes = path, at, 0

    def _count(self, name: str, n: int = 1) -> None:
        self.counters[name] = self.counters.get(name, 0) + n
