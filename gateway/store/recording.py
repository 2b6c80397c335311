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
import zlib
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gateway.config.model import RecordConfig
from gateway.decode.adverts import parse_adv
from gateway.decode.beacons import APPLE, EDDYSTONE_KEYS
from gateway.decode.privacy import PrivacyFilter
from gateway.events import Advertisement, MqttInput, TraceItem
from gateway.identity.model import Customer
from gateway.topics import TopicKind, Topics

log = logging.getLogger(__name__)

PREFIX, SUFFIX = "trace-", ".jsonl.gz"
LOCK = ".lock"
MAX_HELD_CHARS = 8_000_000  # of lines held between two flushes (beyond: dropped, counted)
MAX_TEMPLATES = 8_192  # line templates cached, one per beacon frame (~250 bytes each)
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
    # 31: the gzip container; level 3: as fast as 1 on trace lines, a little smaller
    packer = zlib.compressobj(3, zlib.DEFLATED, 31)
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


def first_time(folder: Path) -> float | None:
    """The time of the recording's first line, or None when nothing is recorded."""
    for path in segments(folder):
        for line in read_lines(path):
            at = line_time(line)
            if at is not None:
                return at
    return None


def last_time(folder: Path) -> float | None:
    """The time of the recording's last line, or None when nothing is recorded."""
    for path in reversed(segments(folder)):
        times = [t for t in map(line_time, read_lines(path)) if t is not None]
        if times:
            return max(times)
    return None


def line_time(line: str) -> float | None:
    """The `at` of a trace line, without parsing the rest when it comes first, as the
    recording writes it (None when it has none)."""
    if line.startswith('{"at":'):
        end = line.find(",", 6)
        try:
            return float(line[6:end])
        except ValueError:
            pass
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


class Recorder:
    """Takes what the pipeline keeps (`keep`, its hook: one string per input, built without
    a dict for the common iBeacon advert), hands it out in batches per segment (`take`, on
    the event loop) and compresses and appends them (`flush`, in a worker thread: zlib lets
    go of the GIL, so the event loop does not pay for the compression).  Remembers, per
    customer recorded this run, their devices and token, so that an erasure (`erase`)
    rewrites their lines away once written."""

    def __init__(self, folder: Path, settings: RecordConfig) -> None:
        self.folder = folder
        self.settings = settings
        # every key set now: the worker thread only updates values (no resize while read)
        self.counters = dict.fromkeys(("record_lines", "record_bytes", "record_dropped"), 0)
        self._whose: dict[str, Customer] = {}
        self._lines: list[str] = []  # of the current segment, not yet taken
        self._held = 0  # characters in _lines
        self._segment: Path | None = None
        self._segment_end = 0.0
        self._segment_bytes = 0  # written to the current segment (compressed)
        self._taken: list[tuple[Path, list[str]]] = []
        self._cap = max(1, settings.max_bytes // SEGMENTS_PER_CAP)
        self._templates: dict[bytes, str] = {}
        self._anchors: dict[str, str] = {}  # id → as a JSON string

    def keep(self, customer: Customer, item: TraceItem) -> None:
        """The pipeline's hook: one input of a consenting customer."""
        if self._held >= MAX_HELD_CHARS:
            self._count("record_dropped")
            return
        at = item.at
        if at >= self._segment_end or self._segment is None:
            self._rotate(at)
        line = self._advert(item) if isinstance(item, Advertisement) else _mqtt_line(item)
        self._lines.append(line)
        self._held += len(line)
        self._whose[customer.id] = customer

    def _advert(self, adv: Advertisement) -> str:
        frames = adv.manufacturer_data
        frame = frames.get(APPLE)
        if frame is None or len(frames) != 1 or adv.service_data or frame[:2] != b"\x02\x15":
            return _dumps(sanitized(adv)) + "\n"  # AltBeacon, Eddystone, extra frames
        template = self._templates.get(frame)
        if template is None:  # one per beacon: a line is then one % away
            if len(self._templates) >= MAX_TEMPLATES:
                self._templates.clear()
            template = self._templates[frame] = _template(frame)
        anchor = self._anchors.get(adv.anchor)
        if anchor is None:
            anchor = self._anchors[adv.anchor] = json.dumps(adv.anchor)
        return template % (adv.at, anchor, adv.rssi)

    def erase(self, customer_ids: Collection[str]) -> Whose | None:
        """What identifies these customers' lines recorded this run (to rewrite them away
        with `forget_in` once written), or None when none was recorded."""
        known = [self._whose.pop(c) for c in customer_ids if c in self._whose]
        return Whose.of(known) if known else None

    def take(self) -> list[tuple[Path, list[str]]]:
        """The lines to write now, by segment (then held no more)."""
        self._seal()
        taken, self._taken = self._taken, []
        return taken

    def flush(self, batches: list[tuple[Path, list[str]]]) -> int:
        """Compress and append `batches` (blocking: run in a worker thread); bytes written."""
        written = 0
        if not batches:
            return 0
        with locked(self.folder):
            for path, lines in batches:
                data = _gzip(lines)
                _append(path, data)
                written += len(data)
                if path == self._segment:
                    self._segment_bytes += len(data)
                self._count("record_lines", len(lines))
        self._count("record_bytes", written)
        if self._segment_bytes >= self._cap:  # past its share of record.max_size: ends now
            self._segment_end = 0.0
        return written

    def _seal(self) -> None:
        if self._lines and self._segment is not None:
            self._taken.append((self._segment, self._lines))
            self._lines, self._held = [], 0

    def _rotate(self, at: float) -> None:
        """Start a new segment at `at` (when the current one is over, by time or size)."""
        if self._segment is not None and at < self._segment_end:
            return
        self._seal()
        path = self.folder / segment_name(at)
        n = 0
        while path.exists() or any(p == path for p, _ in self._taken):
            n += 1
            path = self.folder / segment_name(at).replace(SUFFIX, f"-{n}{SUFFIX}")
        self._segment, self._segment_end, self._segment_bytes = path, at + self.settings.segment, 0

    def _count(self, name: str, n: int = 1) -> None:
        self.counters[name] = self.counters.get(name, 0) + n


def _template(frame: bytes) -> str:
    """The line of an iBeacon advert of `frame`, with `%.3f` for the time (a millisecond is
    finer than any radio's timestamp), `%s` for the anchor (as JSON) and `%d` for the rssi."""
    return (
        f'{{"at":%.3f,"adv":{{"anchor":%s,"address":"","rssi":%d,'
        f'"manufacturer_data":{{"76":"{frame.hex()}"}},"service_data":{{}},"local_name":null}}}}\n'
    )


def _mqtt_line(msg: MqttInput) -> str:
    return _dumps({"at": msg.at, "mqtt": {"topic": msg.topic, "payload": msg.payload}}) + "\n"
