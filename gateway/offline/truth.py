"""Ground truth of a walk (JSON Lines), as `rayon calibrate` and the evaluations read it.

Two kinds of line, mixed freely:

* `{"at", "device", "x", "y"}` — where the device was at `at` (as `rayon simulate --truth`
  writes; a `zones` key is ignored).  Between two such lines of a device its position is
  interpolated linearly, unless they are more than `MAX_TRUTH_GAP_S` apart.
* `{"at", "device", "zone"}` — from `at`, the device is somewhere in that zone (a zone id of
  the config), until the device's next line; the last one holds to the end of the walk.
  `"zone": null` ends a stretch (the surveyor walks between zones or stops).  A store team
  surveys zone by zone this way without measuring positions.
"""

from __future__ import annotations

import json
import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gateway.config.yamlsrc import did_you_mean
from gateway.errors import InvalidInput

MAX_TRUTH_GAP_S = 5.0
NO_ZONE = -1


@dataclass(frozen=True, slots=True)
class Track:
    """One device's truth lines in time order: `x`, `y` are NaN on a zone line; `zone` is
    the zone's index (`NO_ZONE` on a position line or `"zone": null`); `point` says which
    lines are positions."""

    at: np.ndarray
    x: np.ndarray
    y: np.ndarray
    zone: np.ndarray
    point: np.ndarray


class Truth:
    """Each device's truth track; positions interpolated, zones held until the next line.
    `zones`: the zone ids the zone lines were checked against, in the config's order."""

    def __init__(self, tracks: Mapping[str, Track], zones: tuple[str, ...] = ()) -> None:
        self._tracks = dict(tracks)
        self.zones = zones

    @classmethod
    def of_points(cls, tracks: Mapping[str, tuple[np.ndarray, np.ndarray, np.ndarray]]) -> Truth:
        """Truth of position tracks only: device → (times, x, y), times ascending."""
        return cls({d: _points_track(t, x, y) for d, (t, x, y) in tracks.items()})

    @classmethod
    def read(cls, path: Path, zones: Collection[str] = ()) -> Truth:
        """Parse `path`; InvalidInput naming the file and line of the first bad record (a
        zone line's zone must be one of `zones`)."""
        order = tuple(zones)
        index = {z: i for i, z in enumerate(order)}
        rows: dict[str, list[tuple[float, float, float, int]]] = {}
        try:
            with path.open(encoding="utf-8") as fh:
                for lineno, text in enumerate(fh, start=1):
                    if text.strip():
                        device, row = _row(text, f"{path}:{lineno}", index)
                        rows.setdefault(device, []).append(row)
        except OSError as exc:
            raise InvalidInput(f"{path}: cannot read the truth file: {exc.strerror}") from None
        except UnicodeDecodeError:
            raise InvalidInput(f"{path}: not UTF-8 text: a truth file is JSON Lines") from None
        tracks = {}
        for device, got in rows.items():
            got.sort(key=lambda r: r[0])  # stable: two lines of one instant keep their order
            arr = np.array(got, dtype=float)
            zone = arr[:, 3].astype(np.int64)
            point = np.isfinite(arr[:, 1])
            tracks[device] = Track(arr[:, 0], arr[:, 1], arr[:, 2], zone, point)
        return cls(tracks, order)

    def devices(self) -> set[str]:
        return set(self._tracks)

    def span(self) -> tuple[float, float]:
        """The first and last instant of any line (0, 0 when empty)."""
        if not self._tracks:
            return 0.0, 0.0
        return (
            min(float(t.at[0]) for t in self._tracks.values()),
            max(float(t.at[-1]) for t in self._tracks.values()),
        )

    def points(self) -> tuple[np.ndarray, np.ndarray]:
        """Every position line's (x, y), all devices together."""
        xs = [t.x[t.point] for t in self._tracks.values()]
        ys = [t.y[t.point] for t in self._tracks.values()]
        return (np.concatenate(xs), np.concatenate(ys)) if xs else (np.zeros(0), np.zeros(0))

    def named_zones(self) -> set[int]:
        """The indices of the zones some zone line names."""
        return {int(z) for t in self._tracks.values() for z in t.zone[~t.point] if z >= 0}

    def positions(self, device: str, at: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Where `device` was at each time of `at`: (x, y, known), where `known` is False
        outside its position lines, within a gap of them over `MAX_TRUTH_GAP_S`, and after a
        zone line."""
        track = self._tracks.get(device)
        nothing = np.zeros(len(at))
        if track is None or not track.point.any():
            return nothing, nothing, nothing.astype(bool)
        t, x, y = track.at[track.point], track.x[track.point], track.y[track.point]
        k = np.clip(np.searchsorted(t, at), 1, max(len(t) - 1, 1))
        gap = t[k] - t[k - 1] if len(t) > 1 else np.zeros(len(at))
        on_line = (t[k] == at) | (t[k - 1] == at)
        known = (at >= t[0]) & (at <= t[-1]) & ((gap <= MAX_TRUTH_GAP_S) | on_line)
        # only between two position lines: a zone line (or a stop) in between ends them
        n = len(track.at)
        last = np.searchsorted(track.at, at, side="right") - 1
        after = np.searchsorted(track.at, at, side="left")
        known &= (last >= 0) & track.point[np.clip(last, 0, n - 1)]
        known &= (after < n) & track.point[np.clip(after, 0, n - 1)]
        return np.interp(at, t, x), np.interp(at, t, y), known

    def zone_at(self, device: str, at: np.ndarray) -> np.ndarray:
        """The zone index a zone line puts `device` in at each time of `at` (`NO_ZONE` where
        its latest line is a position line or a stop, or before its first line)."""
        track = self._tracks.get(device)
        if track is None:
            return np.full(len(at), NO_ZONE, dtype=np.int64)
        last = np.searchsorted(track.at, at, side="right") - 1
        zone = track.zone[np.maximum(last, 0)]
        out: np.ndarray = np.where((last >= 0) & ~track.point[np.maximum(last, 0)], zone, NO_ZONE)
        return out


def _points_track(t: np.ndarray, x: np.ndarray, y: np.ndarray) -> Track:
    n = len(t)
    return Track(t, x, y, np.full(n, NO_ZONE, dtype=np.int64), np.ones(n, dtype=bool))


def _row(
    text: str, where: str, zones: Mapping[str, int]
) -> tuple[str, tuple[float, float, float, int]]:
    """(device, (at, x, y, zone)) of one line; x, y NaN on a zone line."""
    shape = (
        'a truth line is {"at", "device", "x", "y"} (as `rayon simulate --truth` writes) or '
        '{"at", "device", "zone"} (the device is in that zone until its next line)'
    )
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"{where}:{exc.colno}: not JSON ({exc.msg}); {shape}") from None
    if not isinstance(obj, dict) or "at" not in obj or "device" not in obj:
        raise InvalidInput(f"{where}: {shape}")
    device, at = obj["device"], _number(obj["at"])
    if not isinstance(device, str) or not device or at is None:
        raise InvalidInput(f"{where}: 'device' must be a non-empty string and 'at' a number")
    if "zone" in obj and "x" not in obj:
        return device, (at, math.nan, math.nan, _zone(obj["zone"], where, zones))
    x, y = _number(obj.get("x")), _number(obj.get("y"))
    if x is None or y is None:
        raise InvalidInput(f"{where}: x and y must be numbers (metres); {shape}")
    return device, (at, x, y, NO_ZONE)


def _zone(value: object, where: str, zones: Mapping[str, int]) -> int:
    if value is None:
        return NO_ZONE
    if not isinstance(value, str):
        raise InvalidInput(f"{where}: 'zone' must be a zone id of the config, or null")
    k = zones.get(value)
    if k is None:
        known = ", ".join(zones) or "none"
        raise InvalidInput(
            f"{where}: unknown zone '{value}'{did_you_mean(value, zones)}; the config's zones: "
            f"{known}"
        )
    return k


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    f = float(value)
    return f if math.isfinite(f) else None
