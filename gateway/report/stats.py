"""The little statistics the report needs, from their formulas (no scipy on a Raspberry Pi).

`newcombe_interval` is Newcombe's hybrid score interval for a difference of two independent
proportions (method 10 of R. G. Newcombe, "Interval estimation for the difference between
independent proportions: comparison of eleven methods", Statistics in Medicine 17, 873–890,
1998): each proportion gets its Wilson score interval, and the two are combined.  Unlike the
textbook Wald interval it stays inside [-1, 1] and keeps its coverage with small groups or
rates near 0 % or 100 %, which is what a store's holdout groups look like.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

Z_95 = 1.959963984540054  # the standard normal quantile of 0.975


def median(values: Sequence[float]) -> float | None:
    """The median, or None for no values."""
    return statistics.median(values) if values else None


def mean(values: Sequence[float]) -> float | None:
    """The arithmetic mean, or None for no values."""
    return math.fsum(values) / len(values) if values else None


def ratio(part: int, whole: int) -> float | None:
    """`part / whole`, or None when `whole` is 0 (shown as "n/a")."""
    return part / whole if whole else None


def wilson_interval(successes: int, n: int, z: float = Z_95) -> tuple[float, float]:
    """The Wilson score interval of a proportion `successes / n` (n > 0)."""
    p = successes / n
    z2 = z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def newcombe_interval(
    successes1: int, n1: int, successes2: int, n2: int, z: float = Z_95
) -> tuple[float, float]:
    """The hybrid score interval of `successes1/n1 − successes2/n2` (both n > 0).

    With p_i the proportions and [l_i, u_i] their Wilson intervals:
    lower = d − √((p1 − l1)² + (u2 − p2)²), upper = d + √((u1 − p1)² + (p2 − l2)²).
    """
    p1, p2 = successes1 / n1, successes2 / n2
    l1, u1 = wilson_interval(successes1, n1, z)
    l2, u2 = wilson_interval(successes2, n2, z)
    d = p1 - p2
    lower = d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    upper = d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    return lower, upper
