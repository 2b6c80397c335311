"""The visit context the rule engine keeps per customer (visit caps, `visit.*` conditions,
dwell triggers once per stay), and its plain-JSON snapshot."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gateway.errors import InvalidInput
from gateway.events import EventKind, ZoneEvent


@dataclass(slots=True)
class Visit:
    """One customer's current visit as the engine saw it."""

    started_at: float
    last_seen: float
    zones: set[str] = field(default_factory=set)
    dwell_done: set[tuple[str, str]] = field(default_factory=set)  # (rule, zone) this stay

    def copy(self) -> Visit:
        """An independent copy (explain works on one, so it changes nothing)."""
        return Visit(self.started_at, self.last_seen, set(self.zones), set(self.dwell_done))


def advance(visit: Visit | None, event: ZoneEvent, gap: float, fence: bool) -> Visit | None:
    """The visit context after `event` (changes and returns `visit`, or a new one).

    A geofence event (`fence`) happens outside the store: it neither starts nor extends a
    visit, and a visit not seen for `gap` is over.
    """
    stale = visit is None or event.at - visit.last_seen > gap
    if fence:
        return None if stale else visit
    if event.kind is EventKind.VISIT_START or visit is None or stale:
        visit = Visit(event.at, event.at)
    visit.last_seen = max(visit.last_seen, event.at)
    if event.zone is not None and event.kind in (EventKind.ENTER, EventKind.EXIT):
        visit.zones.add(event.zone)
        visit.dwell_done = {(r, z) for r, z in visit.dwell_done if z != event.zone}
    return visit


def snapshot_visits(visits: Mapping[str, Visit]) -> dict[str, Any]:
    """The visit contexts as plain JSON values."""
    return {
        cid: {
            "started_at": v.started_at,
            "last_seen": v.last_seen,
            "zones": sorted(v.zones),
            "dwell_done": sorted([r, z] for r, z in v.dwell_done),
        }
        for cid, v in visits.items()
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
