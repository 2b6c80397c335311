"""The zone funnel: which zones each visit entered, and how far visits got along an ordered
path of zones (`--funnel entrance,aisle-*,checkout`).  Pure.

An enter event belongs to the visit of the same device that was open at its time.  A step is
one zone id or a shell pattern (`aisle-*`: any aisle); a visit reaches step k when it enters a
zone of step k at or after the time it reached step k − 1 (and with another enter event).
"""

from __future__ import annotations

import bisect
import difflib
import fnmatch
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from gateway.errors import UsageError
from gateway.report.rows import Enter, VisitRecord
from gateway.report.stats import ratio

# The default ordered funnel: in at the door, into any aisle, to the tills.
DEFAULT_FUNNEL = ("entrance", "aisle-*", "checkout")


@dataclass(frozen=True, slots=True)
class Step:
    """One step of an ordered funnel: its label as written and the zones it stands for."""

    label: str
    zones: frozenset[str]


@dataclass(frozen=True, slots=True)
class ZoneReach:
    """Visits that entered `zone`, and their share of all the period's visits."""

    zone: str
    name: str
    visits: int
    share: float | None


@dataclass(frozen=True, slots=True)
class FunnelStep:
    """Visits that reached this step in order; shares of all visits and of the step before."""

    label: str
    zones: tuple[str, ...]
    visits: int
    share: float | None
    of_previous: float | None


def parse_funnel(text: str | None, zone_ids: Sequence[str]) -> tuple[Step, ...]:
    """The steps of `--funnel` (comma-separated ids or patterns), or the default ones.

    An id or pattern that names no zone of the config is a usage error (exit 2), with the
    nearest zone id as a hint.
    """
    if text is None:
        return default_funnel(zone_ids)
    labels = [part.strip() for part in text.split(",") if part.strip()]
    if not labels:
        raise UsageError(
            "--funnel is empty: give zone ids in order, e.g. entrance,aisle-*,checkout"
        )
    return tuple(_step(label, zone_ids) for label in labels)


def default_funnel(zone_ids: Sequence[str]) -> tuple[Step, ...]:
    """`entrance → aisle-* → checkout`, keeping the steps the config has zones for; no funnel
    when fewer than two remain (a store without these zones passes `--funnel`)."""
    steps = [Step(label, _matching(label, zone_ids)) for label in DEFAULT_FUNNEL]
    kept = tuple(s for s in steps if s.zones)
    return kept if len(kept) >= 2 else ()


def _matching(label: str, zone_ids: Sequence[str]) -> frozenset[str]:
    return frozenset(z for z in zone_ids if fnmatch.fnmatchcase(z, label))


def _step(label: str, zone_ids: Sequence[str]) -> Step:
    zones = _matching(label, zone_ids)
    if zones:
        return Step(label, zones)
    near = difflib.get_close_matches(label, zone_ids, n=1)
    hint = f" (did you mean '{near[0]}'?)" if near else ""
    raise UsageError(
        f"--funnel: no zone '{label}' in the config{hint}; zones are {', '.join(zone_ids)}"
    )


def enters_by_visit(visits: Sequence[VisitRecord], enters: Iterable[Enter]) -> list[list[Enter]]:
    """For each visit (same order), its enter events in time order."""
    by_device: dict[str, list[int]] = {}
    for i in sorted(range(len(visits)), key=lambda i: visits[i].started_at):
        by_device.setdefault(visits[i].device, []).append(i)
    starts = {d: [visits[i].started_at for i in idx] for d, idx in by_device.items()}
    out: list[list[Enter]] = [[] for _ in visits]
    for enter in sorted(enters, key=lambda e: e.at):
        indexes = by_device.get(enter.device, [])
        k = bisect.bisect_right(starts.get(enter.device, []), enter.at) - 1
        if k >= 0 and _open_at(visits[indexes[k]], enter.at):
            out[indexes[k]].append(enter)
    return out


def _open_at(visit: VisitRecord, at: float) -> bool:
    """Whether the visit (started at or before `at`) was still going on at `at`."""
    return visit.ended_at is None or at <= visit.ended_at


def zone_reach(
    zones: Sequence[tuple[str, str]], per_visit: Sequence[Sequence[Enter]]
) -> tuple[ZoneReach, ...]:
    """For each (id, name) zone, the visits that entered it at least once."""
    counts = dict.fromkeys((z for z, _ in zones), 0)
    for enters in per_visit:
        for zone in {e.zone for e in enters}:
            if zone in counts:
                counts[zone] += 1
    total = len(per_visit)
    return tuple(ZoneReach(z, name, counts[z], ratio(counts[z], total)) for z, name in zones)


def ordered_funnel(
    steps: Sequence[Step], per_visit: Sequence[Sequence[Enter]]
) -> tuple[FunnelStep, ...]:
    """Visits that reached each step in order (see the module docstring)."""
    reached = [0] * len(steps)
    for enters in per_visit:
        for k in range(_steps_reached(steps, enters)):
            reached[k] += 1
    total = len(per_visit)
    out = []
    for k, step in enumerate(steps):
        before = reached[k - 1] if k else total
        share, of_previous = ratio(reached[k], total), ratio(reached[k], before)
        out.append(
            FunnelStep(step.label, tuple(sorted(step.zones)), reached[k], share, of_previous)
        )
    return tuple(out)


def _steps_reached(steps: Sequence[Step], enters: Sequence[Enter]) -> int:
    """How many steps one visit reached: its enters in time order, matched greedily (the
    earliest match of each step leaves the most room for the next, so greedy is optimal)."""
    k = 0
    for enter in enters:
        if k < len(steps) and enter.zone in steps[k].zones:
            k += 1
    return k
