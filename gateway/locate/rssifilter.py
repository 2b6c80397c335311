"""RSSI filters for one (device, anchor) link, compared in docs/accuracy.md.

Each takes raw samples with their time and gives a smoothed level; `Locator` keeps one per
link (see gateway/locate/locator.py for how the default was chosen, on training data only).
"""

from __future__ import annotations

import math
import statistics
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from gateway.config.model import FilterKind


class LinkFilter(Protocol):
    """One link's RSSI filter: raw samples (with their time) in, a smoothed level out."""

    value: float

    def reset(self, rssi: float, at: float = 0.0) -> None: ...

    def update(self, rssi: float, at: float = 0.0) -> float: ...


@dataclass(slots=True)
class RssiFilter:
    """Median-of-3 outlier rejection feeding an asymmetric EMA (see the module docstring)."""

    alpha_up: float = 0.7
    alpha_down: float = 0.25
    value: float = math.nan
    _prev2: float = math.nan
    _prev1: float = math.nan

    def reset(self, rssi: float, at: float = 0.0) -> None:
        """Start over from one sample."""
        self.value = self._prev2 = self._prev1 = rssi

    def update(self, rssi: float, at: float = 0.0) -> float:
        """Feed one raw sample; return the filtered RSSI."""
        if math.isnan(self.value):
            self.reset(rssi)
            return rssi
        a, b = self._prev2, self._prev1
        med = max(min(a, b), min(max(a, b), rssi))
        self._prev2, self._prev1 = b, rssi
        alpha = self.alpha_up if med > self.value else self.alpha_down
        self.value += alpha * (med - self.value)
        return self.value


@dataclass(slots=True)
class WindowIqrFilter:
    """Median of the last `window_s` seconds after dropping samples outside the IQR fences.

    Tukey's fences (Q1 - k·IQR, Q3 + k·IQR) drop a spike or a fade even when two of them
    land in one window, which a median of 3 cannot; the median of what is left is the level.
    """

    window_s: float = 3.0
    fence: float = 1.5
    max_samples: int = 20
    value: float = math.nan
    _samples: deque[tuple[float, float]] = field(default_factory=deque)

    def reset(self, rssi: float, at: float = 0.0) -> None:
        """Start over from one sample."""
        self._samples.clear()
        self._samples.append((at, rssi))
        self.value = rssi

    def update(self, rssi: float, at: float = 0.0) -> float:
        """Feed one raw sample taken at `at`; return the filtered RSSI."""
        samples = self._samples
        samples.append((at, rssi))
        while len(samples) > self.max_samples or at - samples[0][0] > self.window_s:
            samples.popleft()
        values = sorted(v for _, v in samples)
        q1, q3 = _quantile(values, 0.25), _quantile(values, 0.75)
        lo, hi = q1 - self.fence * (q3 - q1), q3 + self.fence * (q3 - q1)
        self.value = statistics.median(v for v in values if lo <= v <= hi)
        return self.value


@dataclass(slots=True)
class KalmanFilter:
    """A 1-D Kalman filter on the RSSI level with an innovation gate.

    The level is modelled as constant with random-walk noise `q` dB²/s (a walker changes
    the level by a few dB a second), measurements with variance `r` dB² — `r_up` for a rise,
    smaller, so an approach is believed faster than a retreat (a body or shelf between
    phone and anchor only ever lowers the RSSI).  A sample further than `gate` standard
    deviations from the prediction is an outlier and skipped; a second one on the same side
    in a row is a real step, and the filter restarts from it.
    """

    q: float = 4.0
    r: float = 30.0
    r_up: float = 15.0
    gate: float = 3.0
    value: float = math.nan
    _p: float = math.nan
    _at: float = 0.0
    _outlier_side: int = 0

    def __init__(
        self,
        q: float = 4.0,
        r: float = 30.0,
        r_up: float = 15.0,
        gate: float = 3.0,
        value: float = math.nan,
        _p: float = math.nan,
        _at: float = 0.0,
        _outlier_side: int = 0,
    ) -> None:
        # written out: mypyc compiles it, not the dataclass's (docs/performance.md)
        self.q = q
        self.r = r
        self.r_up = r_up
        self.gate = gate
        self.value = value
        self._p = _p
        self._at = _at
        self._outlier_side = _outlier_side

    def reset(self, rssi: float, at: float = 0.0) -> None:
        """Start over from one sample."""
        self.value, self._p, self._at, self._outlier_side = rssi, self.r, at, 0

    def update(self, rssi: float, at: float = 0.0) -> float:
        """Feed one raw sample taken at `at`; return the filtered level."""
        value = self.value
        if value != value:  # NaN: no sample yet
            self.reset(rssi, at)
            return rssi
        p = self._p
        if at > self._at:  # (out of order: no time passed)
            p += self.q * (at - self._at)
            self._at = at
        innovation = rssi - value
        if innovation > 0:
            r, side = self.r_up, 1
        else:
            r, side = self.r, -1
        if innovation * innovation > self.gate * self.gate * (p + r):
            if self._outlier_side == side:
                self.reset(rssi, at)
                return rssi
            self._p, self._outlier_side = p, side
            return value
        gain = p / (p + r)
        self.value = value = value + gain * innovation
        self._p, self._outlier_side = (1.0 - gain) * p, 0
        return value


@dataclass(slots=True)
class RawFilter:
    """No filtering: the last sample (the reference the other filters are measured against)."""

    value: float = math.nan

    def reset(self, rssi: float, at: float = 0.0) -> None:
        """Start over from one sample."""
        self.value = rssi

    def update(self, rssi: float, at: float = 0.0) -> float:
        """Take the sample as it is."""
        self.value = rssi
        return rssi


FILTERS: dict[FilterKind, Callable[[], LinkFilter]] = {
    FilterKind.MEDIAN_EMA: RssiFilter,
    FilterKind.WINDOW_IQR: WindowIqrFilter,
    FilterKind.KALMAN: KalmanFilter,
    FilterKind.RAW: RawFilter,
}


def _quantile(ordered: Sequence[float], q: float) -> float:
    """Linear-interpolated quantile of an already sorted, non-empty sequence."""
    pos = q * (len(ordered) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)
