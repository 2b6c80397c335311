"""The live state saved in parts: what changed since the last save, not the whole state.

The pipeline's live state (zone and visit timers, the rules' visit contexts) is one JSON
document, `Pipeline.snapshot()`.  Most of it is two maps, one entry per tracked device and per
customer in a visit; the daemon saves it with every offer (docs/design.md §2), so writing it whole
cost the advert → PUBACK path time in proportion to the devices tracked (157 kB and ~5 ms for
200 devices on a slow core; ~4 MB at 5,000).  A `StateDelta` carries the document without
those maps' entries (`base`) and only the entries that changed; the store keeps one row per
entry and puts the document back together on load (`merge`), so a restore sees the same
document either way.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")

SPLIT_MAPS = ("zones.devices", "rules.visits")  # the maps saved an entry per row


@dataclass(frozen=True, slots=True)
class StateDelta:
    """A live state as its changes: `base` is the document with the `SPLIT_MAPS` empty;
    `entries` maps (map, entry key) to the entry's new value, or None when it is gone.
    `complete`: `entries` holds every entry, so any other saved one is stale."""

    base: dict[str, Any]
    entries: Mapping[tuple[str, str], Any] = field(default_factory=dict)
    complete: bool = False


class Changes:
    """Which entries of a split map changed since they were last taken (`take`), or whether
    all of them must be taken: on the first save, after a restore, after a save that failed
    (`everything`).  The tracker owning the map adds the keys it touches to `keys`."""

    __slots__ = ("all", "keys")

    def __init__(self) -> None:
        self.keys: set[str] = set()
        self.all = True

    def take(
        self, entries: Mapping[str, T], to_json: Callable[[T], Any], everything: bool = False
    ) -> dict[str, Any]:
        """The changed entries of `entries` as `to_json` gives them (None for one gone), or
        every entry when `everything` or `all`; afterwards nothing counts as changed."""
        if everything or self.all:
            found = {k: to_json(v) for k, v in entries.items()}
        else:
            get = entries.get
            found = {k: None if (v := get(k)) is None else to_json(v) for k in self.keys}
        self.keys.clear()
        self.all = False
        return found

    def everything(self) -> None:
        """The next `take` holds every entry (a restore, or the changes taken were lost)."""
        self.keys.clear()
        self.all = True


def whole(document: Mapping[str, Any]) -> StateDelta:
    """A complete delta of a whole document (its split maps' entries moved out of `base`)."""
    base = {k: (dict(v) if isinstance(v, Mapping) else v) for k, v in document.items()}
    entries: dict[tuple[str, str], Any] = {}
    for name in SPLIT_MAPS:
        section, key = name.split(".")
        part = base.get(section)
        if isinstance(part, dict) and isinstance(part.get(key), Mapping):
            entries.update(((name, k), v) for k, v in part[key].items())
            part[key] = {}
    return StateDelta(base, entries, complete=True)


def merge(base: Mapping[str, Any], entries: Mapping[tuple[str, str], Any]) -> dict[str, Any]:
    """The document `base` with `entries` put back into its split maps (an entry whose map
    `base` lacks is ignored: it cannot be placed)."""
    document = dict(base)
    maps: dict[str, dict[str, Any]] = {}
    for (name, key), value in entries.items():
        target = maps.get(name)
        if target is None:
            section, field_ = name.split(".")
            part = document.get(section)
            if name not in SPLIT_MAPS or not isinstance(part, Mapping):
                continue
            found = part.get(field_)
            target = maps[name] = dict(found) if isinstance(found, Mapping) else {}
            document[section] = {**part, field_: target}
        target[key] = value
    return document
