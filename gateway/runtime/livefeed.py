"""The store's live views: the console's topics (docs/mqtt.md) and the offers tally of /metrics.

    pipeline (zone tracker, customers) ─▶ console/positions   at most once a second
    zone events, offers decided ───────▶ console/ticker      one line each
    outbox (sent, expired, cancelled),
    feedback (delivered) ──────────────▶ console/ticker      the later state of an offer shown

Nothing here names a customer: a device is shown by the pseudonym of its current visit
(`gateway.ids.visit_pseudonym`, keyed by the store's `Store.visit_key`), so that it changes at
every visit, and only the consenting customers' devices are shown at all (a device bound to
no customer is counted in occupancy, never followed).  Best effort, as every announcement: a
lost message is replaced by the next one; a failed publish is counted, never raised.
"""

from __future__ import annotations

import logging
import math
from collections import Counter, OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from gateway.clock import Clock
from gateway.deliver.mqtt import MqttLink
from gateway.deliver.payloads import (
    Dot,
    TickerOffer,
    encode,
    positions_payload,
    ticker_event_payload,
    ticker_offer_payload,
)
from gateway.errors import RuntimeFailure
from gateway.events import EventKind, Offer, ZoneEvent
from gateway.identity.model import CustomerRegistry
from gateway.ids import visit_pseudonym
from gateway.pipeline import track_key
from gateway.topics import ConsoleLeaf, Topics
from gateway.zones.tracker import ZoneTracker

log = logging.getLogger(__name__)

POSITIONS_EVERY_S = 1.0  # by the gateway's clock: the map needs no more
REMEMBERED_OFFERS = 10_000  # offers whose later states the ticker can still name (newest kept)


class LiveFeed:
    """Publishes `console/positions` and `console/ticker` (QoS 0, never retained) and tallies
    offers by rule and state (`offers_by`: (rule, state) → count, for `rayon_offers_total`).

    `note_*` only take note (they run inside other tasks' work, never waiting); `flush`
    publishes the ticker lines noted, `positions` the dots, from the gateway's tasks.
    """

    def __init__(
        self, link: MqttLink, topics: Topics, clock: Clock, tz: ZoneInfo, key: bytes
    ) -> None:
        self._link, self._clock, self._tz, self._key = link, clock, tz, key
        self._positions_topic = topics.console(ConsoleLeaf.POSITIONS)
        self._ticker_topic = topics.console(ConsoleLeaf.TICKER)
        self._names: dict[tuple[str, float], str] = {}  # (device, visit start) → pseudonym
        self._sent_at = -math.inf
        self._showing = False  # the last positions message had dots
        self._lines: list[dict[str, Any]] = []
        self._offers: OrderedDict[str, TickerOffer | str] = OrderedDict()  # id → shown, or rule
        self.offers_by: Counter[tuple[str, str]] = Counter()
        self.counters: Counter[str] = Counter()

    def pseudonym(self, device: str, started_at: float) -> str:
        """The pseudonym of `device`'s visit begun at `started_at`."""
        name = self._names.get((device, started_at))
        return name if name is not None else visit_pseudonym(self._key, device, started_at)

    # -- positions --------------------------------------------------------------------------

    async def positions(self, zones: ZoneTracker, customers: CustomerRegistry) -> None:
        """Publish the dots, at most once per POSITIONS_EVERY_S of the clock: every device
        with an open visit that is a consenting customer's; once an empty list when the
        last one has gone, then nothing while the store is empty."""
        now = self._clock.now()
        if now - self._sent_at < POSITIONS_EVERY_S:
            return
        dots = self._dots(zones, customers)
        if not dots and not self._showing:
            return
        self._sent_at, self._showing = now, bool(dots)
        await self._send(self._positions_topic, positions_payload(dots, now, self._tz))

    def _dots(self, zones: ZoneTracker, customers: CustomerRegistry) -> list[Dot]:
        """The dots now; the pseudonyms of the visits shown are kept for the next round."""
        known, names = self._names, {}
        dots: list[Dot] = []
        for device, started, fix, zone in zones.open_visits():
            customer = customers.by_device(device)
            if customer is None or not customer.consent.instore_location:
                continue
            key = (device, started)
            name = known.get(key)
            if name is None:
                name = visit_pseudonym(self._key, device, started)
            names[key] = name
            dots.append((name, fix.x, fix.y, fix.accuracy_m, zone))
        self._names = names
        return dots

    # -- the ticker -------------------------------------------------------------------------

    def note_decided(
        self,
        events: Sequence[ZoneEvent],
        offers: Sequence[tuple[Offer, str]],
        zones: ZoneTracker,
        customers: CustomerRegistry,
    ) -> None:
        """A written batch: its zone events and its new offers with the state each was
        recorded in (`pending`, `holdout`, `dropped`), in time order, each by the pseudonym
        of its customer's visit at that moment.  Anonymous devices' events are not shown."""
        items = sorted(
            [_Item(e.at, 0, i, _track(e, customers), e) for i, e in enumerate(events)]
            + [
                _Item(o.created_at, 1, i, _owner(o, customers), None)
                for i, (o, _) in enumerate(offers)
            ],
            key=lambda item: (item.at, item.order, item.index),
        )
        for item, started in zip(items, _visit_starts(items, zones), strict=True):
            if item.event is not None:
                if item.event.customer is not None and started is not None:
                    visit = self.pseudonym(item.device or "", started)
                    self._lines.append(ticker_event_payload(item.event, visit, self._tz))
            else:
                self._decided(*offers[item.index], item.device, started)

    def _decided(self, offer: Offer, state: str, device: str | None, started: float | None) -> None:
        self.offers_by[offer.rule, state] += 1
        if device is None or started is None:
            self._remember(offer.id, offer.rule)  # tallied later, never shown
            return
        shown = TickerOffer(offer.id, offer.rule, offer.zone, self.pseudonym(device, started))
        self._remember(offer.id, shown)
        self._lines.append(ticker_offer_payload(shown, state, offer.created_at, self._tz))

    def _remember(self, offer_id: str, shown: TickerOffer | str) -> None:
        self._offers[offer_id] = shown
        if len(self._offers) > REMEMBERED_OFFERS:
            self._offers.popitem(last=False)

    def note_settled(self, changes: Iterable[tuple[Offer, str]]) -> None:
        """Offers the outbox publisher recorded as `sent`, `expired` or `cancelled`."""
        for offer, state in changes:
            self.offers_by[offer.rule, state] += 1
            if state == "sent":  # its app's confirmation may follow
                self._later(self._offers.get(offer.id), state)
            else:
                self._later(self._offers.pop(offer.id, None), state)

    def note_confirmed(self, offer_ids: Iterable[str]) -> None:
        """Offers an app confirmed (now `delivered`): those decided since the gateway started
        are tallied and shown once; a repeated confirmation is not counted again."""
        for offer_id in offer_ids:
            shown = self._offers.pop(offer_id, None)
            if shown is not None:
                rule = shown if isinstance(shown, str) else shown.rule
                self.offers_by[rule, "delivered"] += 1
                self._later(shown, "delivered")

    def _later(self, shown: TickerOffer | str | None, state: str) -> None:
        if isinstance(shown, TickerOffer):
            now = self._clock.now()
            self._lines.append(ticker_offer_payload(shown, state, now, self._tz))

    async def flush(self) -> None:
        """Publish the ticker lines noted so far, in order."""
        lines, self._lines = self._lines, []
        for payload in lines:
            await self._send(self._ticker_topic, payload)

    async def _send(self, topic: str, payload: Mapping[str, Any]) -> None:
        try:
            await self._link.publish(topic, encode(payload), qos=0, retain=False)
        except RuntimeFailure as exc:
            self.counters["console_publish_failed"] += 1
            log.debug("could not publish %s: %s", topic, exc)


@dataclass(frozen=True, slots=True)
class _Item:
    """A zone event (`order` 0, `event` set) or an offer (`order` 1) of a written batch, in
    time order, with the track its visit is that of (None: no customer's)."""

    at: float
    order: int
    index: int
    device: str | None
    event: ZoneEvent | None


def _track(event: ZoneEvent, customers: CustomerRegistry) -> str | None:
    """The zone tracker's device whose visit `event` belongs to: a visit event's own; else
    its customer's track (a GPS geofence's phone is the customer's in-store track)."""
    if event.kind in (EventKind.VISIT_START, EventKind.VISIT_END) or event.customer is None:
        return event.device
    customer = customers.get(event.customer)
    return track_key(customer) if customer is not None else event.device


def _owner(offer: Offer, customers: CustomerRegistry) -> str | None:
    customer = customers.get(offer.customer)
    return track_key(customer) if customer is not None else None


def _visit_starts(items: Sequence[_Item], zones: ZoneTracker) -> list[float | None]:
    """The start of the visit each item of a batch belongs to.  The tracker may already be
    past the batch (the next visit begun before it was written), so the batch's own visit
    events decide first: a `visit_start` before the item, else a `visit_end` after it (its
    `started_at`); only then the tracker's current visit."""
    ending: dict[str, float] = {}
    later: list[float | None] = []
    for item in reversed(items):
        event, device = item.event, item.device
        if event is not None and device is not None and event.kind is EventKind.VISIT_START:
            ending.pop(device, None)
        elif event is not None and device is not None and event.kind is EventKind.VISIT_END:
            started = event.reason.get("started_at")
            if started is not None:
                ending[device] = started
        later.append(ending.get(device) if device is not None else None)
    later.reverse()
    begun: dict[str, float] = {}
    out: list[float | None] = []
    for item, end in zip(items, later, strict=True):
        device = item.device
        if device is None:
            out.append(None)
            continue
        if item.event is not None and item.event.kind is EventKind.VISIT_START:
            begun[device] = item.event.at
        out.append(begun.get(device, end if end is not None else zones.visit_started(device)))
    return out
