"""What waits for the pipeline: consent first and never dropped, everyone else fairly.

One app, on its own topics, must not be able to delay or push out another sender's input, and
nothing may ever push out a CRM update: a consent withdrawal takes effect with the message that
brings it (docs/data.md).  So the gateway's inputs wait in an `Inbox`:

- **consent** (the CRM's `crm/customers/<id>`, read on a connection of its own): an unbounded
  queue, always served first.  Only the back office may write there (the broker's ACL), and
  the broker already bounds how much it queues for us.
- **everything else**, one bounded queue per *sender* (an app token, a scanner node, the Pi's
  own radio), served round-robin: a flooding sender fills its own queue and loses its own
  messages, counted per topic class; the others go on as before.

Pure asyncio (no IO); the gateway's MQTT pump and sources `put`, its pipeline task `get`s.
"""

from __future__ import annotations

import asyncio
from collections import Counter, OrderedDict, deque
from dataclasses import dataclass
from typing import Generic, TypeVar

_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class SenderLimit:
    """How many messages one sender of a class may have waiting."""

    per_sender: int


class Inbox(Generic[_T]):
    """Consent first, then one message per waiting sender in turn.

    `put(kind, sender, item)` queues `item` for `sender` (e.g. `("phones", "tok-1")`) unless
    that sender already has `limits[kind]` waiting or the inbox holds `total` messages; then the
    item is dropped and `dropped[kind]` counted.  `put_consent` never drops.
    """

    def __init__(self, limits: dict[str, int], total: int) -> None:
        self.limits = dict(limits)
        self.total = total
        self.dropped: Counter[str] = Counter()
        self._consent: deque[_T] = deque()
        self._senders: OrderedDict[tuple[str, str], deque[_T]] = OrderedDict()
        self._size = 0
        self._ready = asyncio.Event()

    def __len__(self) -> int:
        return self._size + len(self._consent)

    def put_consent(self, item: _T) -> None:
        """Queue a consent-bearing message; never dropped, always served first."""
        self._consent.append(item)
        self._ready.set()

    def put(self, kind: str, sender: str, item: _T) -> bool:
        """Queue `item` from `sender` of class `kind`; False (and counted) when dropped."""
        key = (kind, sender)
        waiting = self._senders.get(key)
        if self._size >= self.total or (
            waiting is not None and len(waiting) >= self.limits.get(kind, self.total)
        ):
            self.dropped[kind] += 1
            return False
        if waiting is None:
            waiting = self._senders[key] = deque()
        waiting.append(item)
        self._size += 1
        self._ready.set()
        return True

    def get_nowait(self) -> _T | None:
        """The next message (consent first, then the senders in turn), or None when empty."""
        if self._consent:
            return self._consent.popleft()
        if not self._senders:
            return None
        key, waiting = self._senders.popitem(last=False)
        item = waiting.popleft()
        self._size -= 1
        if waiting:  # its next message waits for every other sender's turn
            self._senders[key] = waiting
        return item

    async def get(self) -> _T:
        """The next message, waiting for one."""
        while True:
            item = self.get_nowait()
            if item is not None:
                return item
            self._ready.clear()
            await self._ready.wait()

    def waiting(self) -> int:
        """How many senders have messages waiting (for metrics)."""
        return len(self._senders)
