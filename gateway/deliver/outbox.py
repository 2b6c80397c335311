"""The outbox publisher: pending offers in the database → `offers/<token>` over MQTT v5.

The caller writes offers with `Store.enqueue_offers` before anything is published; this
publisher only sends.  Each due offer is either expired (its `expires_at` has passed:
marked `expired`, never sent late) or published at QoS 1 with the v5 message expiry
interval recomputed at send time, then marked `sent` once the broker acknowledged it.
When the broker is down the offer stays `pending` and the next drain retries it, so a
restart of the broker or of the gateway loses nothing.  An offer acknowledged but not yet
marked (a crash in between) is sent again: the offer id is the app's idempotency key.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from dataclasses import dataclass
from enum import Enum, auto
from zoneinfo import ZoneInfo

from gateway.clock import Clock
from gateway.deliver.mqtt import LinkError, MqttLink, Refused
from gateway.deliver.payloads import encode, offer_payload
from gateway.deliver.topics import Topics
from gateway.errors import RuntimeFailure
from gateway.events import Offer
from gateway.store import Store

log = logging.getLogger(__name__)

BATCH = 100
IDLE_WAKE_S = 1.0


class Outcome(Enum):
    SENT = auto()
    EXPIRED = auto()
    CANCELLED = auto()
    REFUSED = auto()
    DOWN = auto()


@dataclass(frozen=True, slots=True)
class DrainResult:
    """What one drain did; `failed` counts offers left pending for the next drain."""

    sent: int = 0
    expired: int = 0
    failed: int = 0
    cancelled: int = 0


class OutboxPublisher:
    """Publishes the store's due offers through an `MqttLink`."""

    def __init__(
        self,
        store: Store,
        link: MqttLink,
        topics: Topics,
        clock: Clock,
        tz: ZoneInfo,
        batch: int = BATCH,
    ) -> None:
        self._store, self._link, self._topics = store, link, topics
        self._clock, self._tz, self._batch = clock, tz, batch

    async def drain(self) -> DrainResult:
        """Send or expire every due offer, oldest first.

        Stops at the first offer it cannot publish because the broker is down: that offer
        and the ones after it stay pending for the next drain (expired ones before it are
        still marked expired).  An offer the broker refuses stays pending too, but the
        others of the batch still go; one whose token cannot be a topic level is cancelled.
        """
        tally = dict.fromkeys(Outcome, 0)
        while True:
            due = await asyncio.to_thread(self._store.due_offers, self._batch)
            for offer in due:
                outcome = await self._handle(offer)
                tally[outcome] += 1
                if outcome is Outcome.DOWN:
                    break
            if _stops(tally) or len(due) < self._batch:
                return DrainResult(
                    sent=tally[Outcome.SENT],
                    expired=tally[Outcome.EXPIRED],
                    failed=tally[Outcome.DOWN] + tally[Outcome.REFUSED],
                    cancelled=tally[Outcome.CANCELLED],
                )

    async def run(self, wake: asyncio.Event) -> None:
        """Drain whenever `wake` is set (new offers were enqueued) and every second.

        A database error is logged and the drain retried on the next round.
        """
        while True:
            wake.clear()
            try:
                result = await self.drain()
            except RuntimeFailure as exc:
                log.error("outbox drain failed, retrying: %s", exc)
                result = DrainResult()
            if result != DrainResult():
                log.info("outbox: %s", result)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(IDLE_WAKE_S):
                    await wake.wait()

    async def _handle(self, offer: Offer) -> Outcome:
        now = self._clock.now()
        if offer.expires_at <= now:
            await asyncio.to_thread(self._store.mark_expired, offer.id)
            return Outcome.EXPIRED
        try:
            topic = self._topics.offers(offer.token)
        except ValueError as exc:
            log.error("offer %s cancelled: %s", offer.id, exc)
            await asyncio.to_thread(self._store.cancel_offer, offer.id, str(exc))
            return Outcome.CANCELLED
        if not self._link.connected:
            return Outcome.DOWN  # no attempt made: it stays pending, untouched
        return await self._send(offer, topic, max(1, math.ceil(offer.expires_at - now)))

    async def _send(self, offer: Offer, topic: str, expiry_s: int) -> Outcome:
        """Publish one offer at QoS 1; marked sent once the broker acknowledged it."""
        payload = encode(offer_payload(offer, self._tz))
        try:
            await self._link.publish(topic, payload, qos=1, expiry_s=expiry_s)
        except LinkError as exc:
            log.warning("offer %s not sent, kept pending: %s", offer.id, exc)
            await asyncio.to_thread(self._store.mark_failed, offer.id, str(exc))
            return Outcome.REFUSED if isinstance(exc, Refused) else Outcome.DOWN
        await asyncio.to_thread(self._store.mark_sent, offer.id, self._clock.now())
        return Outcome.SENT


def _stops(tally: dict[Outcome, int]) -> bool:
    """A drain ends early once the link failed, or once an offer was refused (it would
    come back first in the next batch)."""
    return tally[Outcome.DOWN] > 0 or tally[Outcome.REFUSED] > 0
