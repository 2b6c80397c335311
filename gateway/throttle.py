"""Rate-limited logging of untrusted input's rejections: a few lines a minute per kind, the rest
counted.  Pure (the clock is injected; by default the monotonic clock)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable


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

    def warn(self, log: logging.Logger, key: str, message: str, *args: object) -> bool:
        """Log `message % args` as a warning of kind `key`, with the note of how many like it
        were held back, unless this one must be held back itself: then False."""
        held = self.allow(key)
        if held is None:
            return False
        log.warning(message + "%s", *args, held_note(held))
        return True


def held_note(held: int) -> str:
    """The suffix of a line after which `held` similar ones were held back."""
    return f" ({held} similar messages not logged before this one)" if held else ""
