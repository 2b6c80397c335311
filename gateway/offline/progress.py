"""A one-line progress bar for long file reads (stderr, for a person at a terminal).

`Progress` draws `label [██████······]  42 %  (12.3 of 29.0 MB)` and redraws only when the
shown percentage changes, so a million small updates cost a million integer comparisons and a
hundred writes.  `lines_with_progress` reads a text file line by line and advances a bar by
the bytes read, so the bar measures the file, whatever the length of its lines.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

BAR_WIDTH = 30
_FULL, _EMPTY = "█", "·"


class Progress:
    """`done` out of `total` units, drawn on `stream` with a carriage return per redraw."""

    def __init__(
        self, total: int, stream: TextIO, label: str = "", unit: tuple[int, str] = (1, "")
    ) -> None:
        """`unit` is (size, name), e.g. `(1_000_000, " MB")` to count bytes in megabytes."""
        self.total = max(total, 0)
        self.done = 0
        self._stream = stream
        self._label = label
        self._unit = max(unit[0], 1)
        self._unit_name = unit[1]
        self._shown = -1
        self._closed = False

    def advance(self, n: int) -> None:
        """Count `n` more units done; redraw when the percentage shown changes."""
        self.done += n
        percent = self._percent()
        if percent != self._shown:
            self._shown = percent
            self._stream.write("\r" + self.render())
            self._stream.flush()

    def render(self) -> str:
        """The bar as text (without the carriage return)."""
        percent = self._percent()
        filled = percent * BAR_WIDTH // 100
        bar = _FULL * filled + _EMPTY * (BAR_WIDTH - filled)
        amount = f"{self.done / self._unit:.1f} of {self.total / self._unit:.1f}{self._unit_name}"
        head = f"{self._label} " if self._label else ""
        return f"{head}[{bar}] {percent:3d} %  ({amount})"

    def close(self) -> None:
        """Erase the bar so that what follows starts on a clean line (idempotent)."""
        if not self._closed:
            self._closed = True
            if self._shown >= 0:
                self._stream.write("\r" + " " * len(self.render()) + "\r")
                self._stream.flush()

    def _percent(self) -> int:
        if self.total <= 0:
            return 100
        return min(100, self.done * 100 // self.total)


def lines_with_progress(path: Path, progress: Progress | None) -> Iterator[str]:
    """The lines of a UTF-8 text file; each advances `progress` by its size in bytes.

    A byte sequence that is not UTF-8 becomes U+FFFD rather than an exception, so the line's
    parser reports it as a bad line and the rest of the file still reads.
    """
    with path.open("rb") as fh:
        for raw in fh:
            if progress is not None:
                progress.advance(len(raw))
            yield raw.decode("utf-8", errors="replace")
