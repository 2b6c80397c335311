"""The outbox publisher: pending offers in the database → `offers/<token>` over MQTT v5.

The caller writes offers with `Store.enqueue_offers` before anything is published; this
publisher only sends.  It reads the due offers a batch at a time and keeps up to `window`
QoS 1 publishes in flight, awaiting their PUBACKs together, then records the whole batch's
outcomes in one transaction.  The daemon also hands it the offers it has just committed
(`hand`), which it sends at once without reading them back: the read was a wait on the
database thread in every offer's advert → PUBACK path.  Handed offers go before older ones
still pending (retried on the next drain, every `IDLE_WAKE_S`).  The guarantees do not
depend on the window nor on the way an offer came:

- an offer is published only while it can reach the app before its `expires_at`: with the
  v5 message expiry interval recomputed at that moment, less the second Mosquitto may add
  (`floor(expires_at - now) - EXPIRY_SLACK_S`, at least 1 s); an offer with less time left
  than that is marked `expired`, never sent late;
- an offer is marked `sent` only after the broker acknowledged it; when the link fails it
  stays `pending` (offers not yet attempted are not even tried) and the next drain retries
  it;
- a PUBACK is not the end: Mosquitto acknowledges a message once it holds it in memory and
  writes it to disk later, so a broker that crashes may lose what it acknowledged.  An offer
  is done when its app confirms it (feedback `delivered`: the store marks it `delivered`);
  after every new connection to the broker (the gateway's start included), `resend`
  publishes again, under the same id, every `sent` offer still unconfirmed and live;
- an offer acknowledged but not yet marked (a crash in between) is sent again: the offer id
  is the app's idempotency key (at least once).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import Counter
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum, auto
from typing import ParamSpec, Protocol, TypeVar
from zoneinfo import ZoneInfo

from gateway.clock import Clock
from gateway.deliver.mqtt import MqttLink
from gateway.deliver.mqtterrors import LinkError, Refused
from gateway.deliver.payloads import encode, offer_payload
from gateway.errors import RuntimeFailure
from gateway.events import Offer
from gateway.topics import Topics
from gateway.wire import MAX_EXPIRY_S

log = logging.getLogger(__name__)

BATCH = 500
WINDOW = 64
IDLE_WAKE_S = 1.0
# Mosquitto counts expiry in whole seconds of its clock and drops a message only once that
# second is past: it may hand it on up to a second after the interval it was given ran out
EXPIRY_SLACK_S = 1

_P = ParamSpec("_P")
_T = TypeVar("_T")


class Outbox(Protocol):
    """The offers waiting to be published, as the publisher reads and settles them:
    the store's `Store` is one (its `OfferOutbox` methods).  A Protocol, so that deliver and
    the store sit side by side, neither importing the other."""

    async def call(self, fn: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs) -> _T:
        """Run a database call (one of those below) off the event loop."""
        ...

    def due_offers(self, limit: int = ...) -> list[Offer]:
        """Pending offers, oldest first, expired ones too."""
        ...

    def unconfirmed_offers(
        self, now: float, after: tuple[float, str] | None = ..., limit: int = ...
    ) -> list[Offer]:
        """Sent offers no app confirmed, live at `now`, by (expires_at, id) after `after`."""
        ...

    def mark_sent_many(self, offer_ids: Sequence[str], at: float) -> int: ...

    def mark_resent_many(self, offer_ids: Sequence[str]) -> int: ...

    def mark_expired_many(self, offer_ids: Sequence[str]) -> int: ...

    def cancel_offer(self, offer_id: str, reason: str | None = None) -> bool: ...

    def mark_failed_many(self, errors: Mapping[str, str]) -> None: ...


class Outcome(Enum):
    """What became of one due offer in a drain."""

    SENT = auto()
    EXPIRED = auto()
    CANCELLED = auto()
    REFUSED = auto()
    DOWN = auto()


# the offer's new state in the log, by outcome ("": it stays `pending`)
_STATES = {
    Outcome.SENT: "sent",
    Outcome.EXPIRED: "expired",
    Outcome.CANCELLED: "cancelled",
    Outcome.REFUSED: "",
    Outcome.DOWN: "",
}


@dataclass(frozen=True, slots=True)
class DrainResult:
    """What one drain did; `failed` counts offers left pending for the next drain (refused
    by the broker, or not sent because the link was down)."""

    sent: int = 0
    expired: int = 0
    failed: int = 0
    cancelled: int = 0

    def __add__(self, other: DrainResult) -> DrainResult:
        return DrainResult(
            self.sent + other.sent,
            self.expired + other.expired,
            self.failed + other.failed,
            self.cancelled + other.cancelled,
        )


@dataclass(slots=True)
class _Batch:
    """The outcomes of one batch, and the error of each offer that was not sent."""

    outcomes: dict[str, Outcome] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    resend: bool = False  # offers already `sent` once, published again

    def ids(self, outcome: Outcome) -> list[str]:
        return [oid for oid, o in self.outcomes.items() if o is outcome]

    def result(self) -> DrainResult:
        n = Counter(self.outcomes.values())
        failed = n[Outcome.DOWN] + n[Outcome.REFUSED]
        return DrainResult(n[Outcome.SENT], n[Outcome.EXPIRED], failed, n[Outcome.CANCELLED])


class OutboxPublisher:
    """Publishes the store's due offers through an `MqttLink`, `window` at a time."""

    def __init__(
        self,
        store: Outbox,
        link: MqttLink,
        topics: Topics,
        clock: Clock,
        tz: ZoneInfo,
        batch: int = BATCH,
        window: int = WINDOW,
        on_settled: Callable[[Sequence[tuple[Offer, str]]], None] | None = None,
    ) -> None:
        """`on_settled` is told, after each batch is recorded, every offer that became
        `sent`, `expired` or `cancelled` in it, with that state (resends excluded): the
        console's ticker and the metrics."""
        self._store, self._link, self._topics = store, link, topics
        self._on_settled = on_settled
        self._clock, self._tz = clock, tz
        self._batch, self._window = batch, window
        self._handed: dict[str, Offer] = {}  # committed as pending, to send without a read
        self._resent_for = 0  # the link's connection whose unconfirmed offers were resent
        self.counters: Counter[str] = Counter()  # offers unpublishable, offers resent

    def hand(self, offers: Sequence[Offer]) -> None:
        """Offers just committed as pending (`Enqueued.pending`), for `run` to send at once,
        without reading them back; then set its `wake`.  An offer handed is still in the
        outbox: if it is not sent (the gateway stops, the link is down), a drain sends it."""
        for offer in offers:
            self._handed[offer.id] = offer

    def withdraw(self, customer_ids: Collection[str]) -> None:
        """Forget the handed offers of these customers: the store has just cancelled or
        erased them (consent withdrawn, customer erased), so they must not go out."""
        if customer_ids and self._handed:
            handed = self._handed.items()
            self._handed = {k: o for k, o in handed if o.customer not in customer_ids}

    async def drain(self) -> DrainResult:
        """Send or expire every due offer, oldest first.

        Stops after the first batch in which an offer could not be published (the broker is
        down, or refused it): those offers stay pending for the next drain, while the others
        of that batch were still sent, expired or cancelled.  An offer whose token cannot be
        a topic level is cancelled.
        """
        total = DrainResult()
        while True:
            due = await self._store.call(self._store.due_offers, self._batch)
            for offer in due:  # read back before its hand-off was sent: sent once, here
                self._handed.pop(offer.id, None)
            result = await self._drain_batch(due)
            total += result
            if result.failed or len(due) < self._batch:
                return total

    async def resend(self) -> DrainResult:
        """Publish again, under the same id, every `sent` offer that no app confirmed and
        that is still live (`Outbox.unconfirmed_offers`), soonest expiring first.  For a new
        connection: the broker that acknowledged them may have lost them in a crash.  An
        offer whose time ran out meanwhile stays `sent`, untouched.  Stops at the first batch
        in which the link failed: the next connection resends again."""
        total, after = DrainResult(), None
        while True:
            store, now = self._store, self._clock.now()
            due = await store.call(store.unconfirmed_offers, now, after, self._batch)
            if not due:
                return total
            after = (due[-1].expires_at, due[-1].id)
            result = await self._drain_batch(due, resend=True)
            self.counters["offers_resent"] += result.sent
            total += result
            if result.failed or len(due) < self._batch:
                return total

    async def run(self, wake: asyncio.Event) -> None:
        """Send the offers handed (`hand`) whenever `wake` is set; drain the outbox at
        start, when `wake` is set with none handed, and at least every `IDLE_WAKE_S`; after
        each new connection of the link, `resend` the unconfirmed offers first.

        A database error is logged and the drain retried on the next round.
        """
        drained_at = -math.inf
        while True:
            wake.clear()
            try:
                result = DrainResult()
                link = self._link
                if link.connections != self._resent_for and link.connected:
                    self._resent_for = link.connections
                    resent = await self.resend()
                    if resent != DrainResult():
                        log.info("outbox: after a new broker connection, resent %s", resent)
                if self._handed:
                    handed, self._handed = list(self._handed.values()), {}
                    result = await self._drain_batch(handed)
                if not result.sent or time.monotonic() - drained_at >= IDLE_WAKE_S:
                    drained_at = time.monotonic()
                    result += await self.drain()
            except RuntimeFailure as exc:
                log.error("outbox drain failed, retrying: %s", exc)
                result = DrainResult()
            if result != DrainResult():
                log.info("outbox: %s", result)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(IDLE_WAKE_S):
                    await wake.wait()

    async def _drain_batch(self, due: Sequence[Offer], *, resend: bool = False) -> DrainResult:
        """Handle a batch with up to `window` publishes in flight, then record it at once.

        The outcomes are recorded even when the drain is cancelled (the gateway stops), so
        that acknowledged offers are not sent again by the final drain.
        """
        batch, gate = _Batch(resend=resend), asyncio.Semaphore(self._window)

        async def one(offer: Offer) -> None:
            async with gate:
                batch.outcomes[offer.id] = await self._handle(offer, batch.errors)

        try:
            await asyncio.gather(*(one(offer) for offer in due))
        finally:
            await asyncio.shield(self._store.call(self._settle, batch))
        if self._on_settled is not None and not resend:
            by_id = {offer.id: offer for offer in due}
            changed = [(by_id[i], _STATES[out]) for i, out in batch.outcomes.items()]
            self._on_settled([(offer, state) for offer, state in changed if state])
        return batch.result()

    async def _handle(self, offer: Offer, errors: dict[str, str]) -> Outcome:
        """One offer's outcome.  An offer that cannot be published for any other reason
        than the link (a value no payload or MQTT property can carry …) is cancelled, logged
        and counted (`offers_unpublishable`): one bad row never stops the offers behind it."""
        try:
            return await self._send(offer, errors)
        except Exception as exc:  # isolate the offer (CancelledError is no Exception)
            self.counters["offers_unpublishable"] += 1
            errors[offer.id] = f"cannot be published: {type(exc).__name__}: {exc}"
            return Outcome.CANCELLED

    async def _send(self, offer: Offer, errors: dict[str, str]) -> Outcome:
        now = self._clock.now()
        # whole seconds the broker may hold it, and still hand it on before its expires_at
        expiry_s = min(math.floor(offer.expires_at - now) - EXPIRY_SLACK_S, MAX_EXPIRY_S)
        if expiry_s < 1:
            return Outcome.EXPIRED
        try:
            topic = self._topics.offers(offer.token)
        except ValueError as exc:
            errors[offer.id] = str(exc)
            return Outcome.CANCELLED
        if not self._link.connected:
            return Outcome.DOWN  # no attempt made: it stays pending, untouched
        payload = encode(offer_payload(offer, self._tz))
        try:
            await self._link.publish(topic, payload, qos=1, expiry_s=expiry_s)
        except LinkError as exc:
            errors[offer.id] = str(exc)
            return Outcome.REFUSED if isinstance(exc, Refused) else Outcome.DOWN
        return Outcome.SENT

    def _settle(self, batch: _Batch) -> None:
        """Record a batch's outcomes (in a worker thread): sent, expired, cancelled, and
        the error of each attempt that failed.  A resent offer stays `sent` (it went out
        before), whatever became of its resend."""
        if batch.resend:
            self._store.mark_resent_many(batch.ids(Outcome.SENT))
        else:
            self._store.mark_sent_many(batch.ids(Outcome.SENT), self._clock.now())
            self._store.mark_expired_many(batch.ids(Outcome.EXPIRED))
        cancelled = batch.ids(Outcome.CANCELLED)
        for offer_id in cancelled:
            if batch.resend:  # it went out once: its log stays `sent`
                log.error("offer %s not resent: %s", offer_id, batch.errors[offer_id])
                continue
            log.error("offer %s cancelled: %s", offer_id, batch.errors[offer_id])
            self._store.cancel_offer(offer_id, batch.errors[offer_id])
        skip = set(cancelled)
        failed = {oid: e for oid, e in batch.errors.items() if oid not in skip}
        if failed:
            first = next(iter(failed.values()))
            kept = "kept for the next connection" if batch.resend else "kept pending"
            log.warning("%d offer(s) not sent, %s: %s", len(failed), kept, first)
            self._store.mark_failed_many(failed)
