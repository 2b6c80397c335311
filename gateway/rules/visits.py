"""The visit context the rule engine keeps per customer (visit caps, `visit.*` conditions,
dwell triggers once per stay), and its plain-JSON snapshot."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gateway.errors import InvalidInput
from gateway.events import EventKind, ZoneEvent
from gateway.rules.context import VisitInfo


@dataclass(slots=True)
class Visit:
    """One customer's current visit as the engine saw it."""

    started_at: float
    last_seen: float
    zones: set[str] = field(default_factory=set)
    dwell_done: set[tuple[str, str]] = field(default_factory=set)  # (rule, zone) this stay
    # what conditions see of it (`visit_info`), kept until `advance` adds a zone
    info: VisitInfo | None = field(default=None, repr=False, compare=False)

    def copy(self) -> Visit:
        """An independent copy (explain works on one, so it changes nothing)."""
        return Visit(self.started_at, self.last_seen, set(self.zones), set(self.dwell_done))


_VISIT_START, _ENTER, _EXIT = EventKind.VISIT_START, EventKind.ENTER, EventKind.EXIT


def advance(visit: Visit | None, event: ZoneEvent, gap: float, fence: bool) -> Visit | None:
    """The visit context after `event` (changes and returns `visit`, or a new one).

    A geofence event (`fence`) happens outside the store: it neither starts nor extends a
    visit, and a visit not seen for `gap` is over.
    """
    stale = visit is None or event.at - visit.last_seen > gap
    if fence:
        return None if stale else visit
    kind = event.kind
    if kind is _VISIT_START or visit is None or stale:
        visit = Visit(event.at, event.at)
    visit.last_seen = max(visit.last_seen, event.at)
    if event.zone is not None and (kind is _ENTER or kind is _EXIT):
        if event.zone not in visit.zones:
            visit.zones.add(event.zone)
            visit.info = None
        if visit.dwell_done:
            visit.dwell_done = {(r, z) for r, z in visit.dwell_done if z != event.zone}
    return visit


def visit_info(visit: Visit) -> VisitInfo:
    """The visit as conditions see it (`VisitInfo`), built once per set of zones."""
    if visit.info is None:
        visit.info = VisitInfo(visit.started_at, frozenset(visit.zones))
    return visit.info


def snapshot_visits(visits: Mapping[str, Visit]) -> dict[str, Any]:
    """The visit contexts as plain JSON values."""
    return {cid: visit_to_json(v) for cid, v in visits.items()}


def visit_to_json(v: Visit) -> dict[str, Any]:
    """One visit context as plain JSON values (an entry of `snapshot_visits`)."""
    return {
        "started_at": v.started_at,
        "last_seen": v.last_seen,
        "zones": sorted(v.zones),
        "dwell_done": sorted([r, z] for r, z in v.dwell_done),
    }


def restore_visits(state: Any) -> dict[str, Visit]:
    """The visit contexts of `snapshot_visits`; InvalidInput if `state` is not one."""
    try:
        return {
            str(cid): Visit(
                float(v["started_at"]),
                float(v["last_seen"]),
                {str(z) for z in v["zones"]},
                {(str(r), str(z)) for r, z in v["dwell_done"]},
            )
            for cid, v in state.items()
        }
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise InvalidInput(f"not a rules engine snapshot ({exc}); discard it") from None
