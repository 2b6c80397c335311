"""The gateway's door for MQTT: what apps, scanner nodes and the CRM send, sorted into inboxes.

    MQTT in (phones, scanner nodes) ─▶ inbox (one bounded queue per sender, served in turn)
    MQTT in, own connection (CRM) ──▶ inbox (consent: never dropped, served first)
    MQTT in (feedback) ─────────────▶ feedback inbox ─▶ written a batch per database call

Sorting never waits, so a link's own queue never fills behind a slow consumer; a flooding sender
loses its own messages, counted per topic class (`inbound_dropped:<class>`), logged a few lines
a minute (`Throttle`).
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable, Sequence

from gateway.clock import Clock
from gateway.decode.jsonvalues import InboundError
from gateway.deliver.mqtt import MqttLink
from gateway.deliver.payloads import parse_feedback
from gateway.events import FeedbackState, MqttInput, TraceItem
from gateway.runtime.inbox import Inbox
from gateway.store.repo import Store
from gateway.throttle import Throttle
from gateway.topics import INBOUND_CLASS, OTHER_CLASS, TopicKind, Topics

log = logging.getLogger(__name__)

INBOX_SIZE = 20_000  # inputs waiting for the pipeline, all senders together
# how many messages one sender may have waiting, by class: an app reports once a second or so,
# a scanner node batches adverts several times a second, the Pi's radio hears every advert
SENDER_LIMITS = {
    "source": 10_000,
    "scanner": 500,
    "espresense": 500,
    "sightings": 50,
    "transition": 50,
    "location": 50,
    OTHER_CLASS: 100,
}
FEEDBACK_PER_TOKEN = 100  # feedback messages one app may have waiting
FEEDBACK_INBOX_SIZE = 10_000
FEEDBACK_BATCH = 500  # feedback written per database call


class Inbound:
    """The inboxes of one gateway and the tasks that fill them and write the feedback.

    `crm_apart`: the CRM is read on a connection of its own, so a CRM record arriving on the
    app connection (an old persistent session's subscription) is a copy and is skipped.
    """

    def __init__(
        self,
        topics: Topics,
        clock: Clock,
        store: Store,
        *,
        crm_apart: bool,
        on_confirmed: Callable[[Sequence[str]], None] | None = None,
    ) -> None:
        """`on_confirmed` is told the ids of the offers each written batch of feedback
        confirmed (the store marks them `delivered` unless they already were)."""
        self.topics, self.clock, self.store = topics, clock, store
        self._on_confirmed = on_confirmed
        self.crm_apart = crm_apart
        self.inbox: Inbox[TraceItem] = Inbox(SENDER_LIMITS, INBOX_SIZE)
        self.feedback_inbox: Inbox[tuple[str, bytes, float]] = Inbox(
            {"feedback": FEEDBACK_PER_TOKEN}, FEEDBACK_INBOX_SIZE
        )
        self.throttle = Throttle()
        self.counters: Counter[str] = Counter()

    def counted(self) -> Counter[str]:
        """Received, rejected and dropped messages per class, and the log lines held back."""
        out = Counter(self.counters)
        for inbox in (self.inbox, self.feedback_inbox):
            out.update({f"inbound_dropped:{k}": n for k, n in inbox.dropped.items()})
        out["log_suppressed"] += self.throttle.suppressed
        return out

    async def pump(self, link: MqttLink, *, crm_link: bool = False) -> None:
        """Sort every message of `link` (the CRM's own link with `crm_link`), forever."""
        async for topic, payload, _retained in link.messages():
            self.route(topic, payload, crm=crm_link or not self.crm_apart)

    def route(self, topic: str, payload: bytes, *, crm: bool = True) -> None:
        """Queue one inbound message for whoever handles it; `crm=False` skips a CRM record."""
        parsed = self.topics.parse(topic)
        now = self.clock.now()
        if parsed is None:
            self.inbox.put(OTHER_CLASS, "", MqttInput(now, topic, payload))
            return
        kind, sender = parsed
        if kind is TopicKind.CRM_CUSTOMER:
            if crm:
                self.counters["inbound_received:crm"] += 1
                self.inbox.put_consent(MqttInput(now, topic, payload))
            return
        cls = INBOUND_CLASS.get(kind, OTHER_CLASS)
        self.counters[f"inbound_received:{cls}"] += 1
        if kind is TopicKind.FEEDBACK:
            queued = self.feedback_inbox.put(cls, sender, (sender, payload, now))
        else:
            queued = self.inbox.put(cls, sender, MqttInput(now, topic, payload))
        if not queued:
            self._dropped(cls, sender)

    def _dropped(self, cls: str, sender: str) -> None:
        self.throttle.warn(
            log,
            f"dropped:{cls}",
            "%s message from %s dropped: that sender has too many waiting (a flood?)",
            cls,
            sender,
        )

    async def write_feedback(self) -> None:
        """Record the apps' feedback, a batch per database call; each only for an offer sent
        to that same token."""
        while True:
            batch = [await self.feedback_inbox.get()]
            while len(batch) < FEEDBACK_BATCH and (more := self.feedback_inbox.get_nowait()):
                batch.append(more)
            good: list[tuple[str, str, FeedbackState, float]] = []
            for token, payload, received in batch:
                fb = parse_feedback(payload, received)
                if isinstance(fb, InboundError):
                    self._reject_feedback(token, fb.reason)
                else:
                    good.append((token, fb.offer, fb.state, fb.at))
            if good:
                refused = await self.store.call(self.store.record_feedbacks, good)
                for i in refused:
                    token, offer = good[i][0], good[i][1]
                    self._reject_feedback(token, f"no offer {offer[:40]!r} was sent to this token")
                if self._on_confirmed is not None:
                    gone = set(refused)
                    self._on_confirmed([g[1] for i, g in enumerate(good) if i not in gone])
            await asyncio.sleep(0)  # a flood of feedback must not starve the other tasks

    def _reject_feedback(self, token: str, why: str) -> None:
        self.counters["feedback_rejected"] += 1
        self.counters["inbound_rejected:feedback"] += 1
        self.throttle.warn(log, "rejected:feedback", "rejected feedback/%s: %s", token, why)
