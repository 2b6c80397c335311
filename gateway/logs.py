"""Logging for journald (plain lines: journald adds time, unit and pid) or, for central log
collection, one JSON object per line."""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime

# syslog priorities, as systemd reads a "<N>" prefix on each line of stderr (SyslogLevelPrefix)
_PRIORITY = {
    logging.DEBUG: 7,
    logging.INFO: 6,
    logging.WARNING: 4,
    logging.ERROR: 3,
    logging.CRITICAL: 2,
}


class JournalFormatter(logging.Formatter):
    """`<priority>logger: message` so that `journalctl -p warning` filters by level."""

    def format(self, record: logging.LogRecord) -> str:
        prio = _PRIORITY.get(record.levelno, 6)
        return f"<{prio}>{record.name}: {super().format(record)}"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC ISO 8601), level, logger, message, exception."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def setup_logging(verbose: bool, fmt: str = "text", under_systemd: bool = False) -> None:
    """Configure the root logger once, on stderr."""
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    elif under_systemd:
        handler.setFormatter(JournalFormatter("%(message)s"))
    else:
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.INFO)


class Throttle:
    """At most `burst` log lines per `window_s` for one kind of message; the rest are held
    back and counted, and the next line let through says how many were (so one app sending
    30,000 bad messages writes a few lines, not 5 MB of journal).

    `allow(key)` returns None when the line must be held back, else how many lines of that
    key were held back since the last one let through (0 usually).
    """

    def __init__(
        self, burst: int = 10, window_s: float = 60.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.burst, self.window_s, self._clock = burst, window_s, clock
        self._windows: dict[str, tuple[float, int, int]] = {}  # key → (start, let, held)
        self.suppressed = 0  # lines held back, all keys, since start

    def allow(self, key: str) -> int | None:
        now = self._clock()
        start, let, held = self._windows.get(key, (now, 0, 0))
        if now - start >= self.window_s:
            start, let = now, 0
        if let >= self.burst:
            self._windows[key] = (start, let, held + 1)
            self.suppressed += 1
            return None
        self._windows[key] = (start, let + 1, 0)
        return held


def held_note(held: int) -> str:
    """The suffix of a line after which `held` similar ones were held back."""
    return f" ({held} similar messages not logged before this one)" if held else ""
