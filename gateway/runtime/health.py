"""Is the store's radio network alive?  An anchor that heard adverts and then falls silent is
an unplugged node, a dead battery or a Wi-Fi outage: raise it once, clear it when it is back."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

ANCHOR_SILENT_S = 120.0


@dataclass(frozen=True, slots=True)
class AnchorChanges:
    fell_silent: tuple[str, ...]
    came_back: tuple[str, ...]


class AnchorWatch:
    """Tracks which scanner anchors went quiet; only anchors heard since start can fall silent
    (a node that never spoke is a configuration question, not an alarm)."""

    def __init__(self, anchors: Iterable[str], silent_after_s: float = ANCHOR_SILENT_S) -> None:
        self._anchors = tuple(anchors)
        self.silent_after_s = silent_after_s
        self.silent: set[str] = set()

    def check(self, now: float, last_heard: Mapping[str, float]) -> AnchorChanges:
        quiet = {
            a
            for a in self._anchors
            if a in last_heard and now - last_heard[a] > self.silent_after_s
        }
        changes = AnchorChanges(
            tuple(sorted(quiet - self.silent)), tuple(sorted(self.silent - quiet))
        )
        self.silent = quiet
        return changes
