"""What the gateway tells the store besides offers (docs/mqtt.md): its status, the anonymous
occupancy per zone, and the stream of zone events for analytics.

All best effort: a lost announcement is replaced by the next one, so a broker hiccup is
counted and logged, never raised to the gateway.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from gateway import __version__
from gateway.clock import Clock
from gateway.deliver.mqtt import MqttLink
from gateway.deliver.payloads import event_payload, iso, occupancy_payload, status_payload
from gateway.errors import RuntimeFailure
from gateway.events import ZoneEvent
from gateway.topics import Topics

log = logging.getLogger(__name__)

OCCUPANCY_MIN_INTERVAL_S = 5.0  # signage needs no more; a crowded store changes every second


@dataclass(frozen=True, slots=True)
class RulesState:
    """The rule set in force, and why the last reload was refused (None if it was not)."""

    loaded_at: float
    count: int
    error: str | None = None


class Announcer:
    """Publishes status (retained, QoS 1), occupancy (retained, QoS 0, on change, rate-limited
    per zone) and zone events (QoS 0)."""

    def __init__(
        self,
        link: MqttLink,
        topics: Topics,
        clock: Clock,
        tz: ZoneInfo,
        started_at: float,
        zones: Iterable[str],
    ) -> None:
        self._link = link
        self._topics = topics
        self._clock = clock
        self._tz = tz
        self._started_at = started_at
        self._zones = tuple(zones)
        self._published: dict[str, tuple[int, float]] = {}
        self.counters: Counter[str] = Counter()

    async def status(
        self,
        state: str,
        counters: Mapping[str, int] | None = None,
        rules: RulesState | None = None,
        degraded: Sequence[str] = (),
        devices: Mapping[str, int] | None = None,
    ) -> None:
        summary = None
        if rules is not None:
            summary = {
                "loaded_at": iso(rules.loaded_at, self._tz),
                "count": rules.count,
                "error": rules.error,
            }
        payload = status_payload(
            state,
            __version__,
            self._started_at,
            counters,
            tz=self._tz,
            rules=summary,
            degraded=degraded,
            devices=devices,
        )
        await self._send(self._topics.status(), payload, qos=1, retain=True)

    async def occupancy(self, current: Mapping[str, int]) -> None:
        """Publish each zone whose count changed, at most once per interval per zone; a change
        held back by the interval goes out at a later call."""
        now = self._clock.now()
        for zone in self._zones:
            count = current.get(zone, 0)
            last = self._published.get(zone)
            if last is not None and (last[0] == count or now - last[1] < OCCUPANCY_MIN_INTERVAL_S):
                continue
            if await self._send(
                self._topics.occupancy(zone),
                occupancy_payload(count, now, self._tz),
                qos=0,
                retain=True,
            ):
                self._published[zone] = (count, now)

    async def events(self, events: Iterable[ZoneEvent]) -> None:
        topic = self._topics.events()
        for event in events:
            await self._send(topic, event_payload(event, self._tz), qos=0)

    async def _send(
        self, topic: str, payload: Mapping[str, Any], *, qos: int, retain: bool = False
    ) -> bool:
        try:
            await self._link.publish(topic, json.dumps(payload).encode(), qos=qos, retain=retain)
        except RuntimeFailure as exc:
            self.counters["announce_failed"] += 1
            log.debug("could not publish %s: %s", topic, exc)
            return False
        return True
