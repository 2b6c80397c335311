"""`ChainSender`: the store's journal to the chain's centre, until the centre has it.

Store-and-forward from the database, not from broker memory: the sender reads the `uplink`
journal in ranges (`chain/batch`, QoS 1) and believes only the centre's retained mark
(`chain/ack`, published after the central commit) — a PUBACK of the store's own broker
proves nothing across the bridge.  At most `in_flight` batches go beyond the mark; when the
mark has not moved for `resend_after`, or a collector asks (`chain/backfill`), the journal is
sent again from the mark.  What the mark covers is deleted from the journal; what it never
covers is dropped after `keep` (the ranges sent later say those numbers are gone).

A restart starts from the journal's first row: it holds only what the centre has not
acknowledged (plus what it acknowledged since the last trim), so nothing is lost and the
centre skips the rows it has.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from gateway.central.wire import (
    Batch,
    ChainPayloadError,
    encode,
    parse_ack,
    parse_backfill,
    parse_erased,
)
from gateway.config.model import CentralConfig
from gateway.deliver.mqtt import MqttLink
from gateway.deliver.mqtterrors import LinkError
from gateway.errors import RuntimeFailure
from gateway.store.uplink import UplinkJournal
from gateway.topics import ChainLeaf, Topics

log = logging.getLogger(__name__)

__all__ = ["ChainSender", "SenderCounts"]

IDLE_POLL_S = 0.2  # how often an idle sender looks for new journal rows
DB_RETRY_S = 5.0  # after a database error (a locked or full disk): try again, never give up
EXPIRE_EVERY_S = 600.0  # how often rows older than `keep` are dropped


@dataclass(slots=True)
class SenderCounts:
    """What the sender did: batches and rows published, resends (after `resend_after`),
    backfills answered, journal rows trimmed (acknowledged) and expired (never were), messages
    from the centre refused, database errors survived."""

    batches: int = 0
    rows: int = 0
    resends: int = 0
    backfills: int = 0
    trimmed: int = 0
    expired: int = 0
    rejected: int = 0
    db_errors: int = 0
    rebased: int = 0


class ChainSender:
    """Sends `journal` (a store's database) over `link` (its broker) to the centre."""

    def __init__(
        self,
        journal: UplinkJournal,
        link: MqttLink,
        topics: Topics,
        config: CentralConfig,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._journal, self._link, self._topics, self._config = journal, link, topics, config
        self._store = topics.base.rsplit("/", 1)[-1]
        self._clock, self._wall = clock, wall
        self.acked = 0  # the highest mark the centre published
        self.cursor = 0  # the last seq sent
        self._inflight: deque[int] = deque()  # the `last` of each batch beyond the mark
        self._since = clock()  # when the mark last moved (or the first batch went out)
        self._wake = asyncio.Event()
        self.counts = SenderCounts()

    async def run(self) -> None:
        """Subscribe to the centre's answers, then send forever (until cancelled)."""
        leaves = (ChainLeaf.ACK, ChainLeaf.BACKFILL, ChainLeaf.ERASED)
        try:
            await self._link.subscribe([self._topics.chain(leaf) for leaf in leaves])
        except LinkError as exc:  # renewed at the next connection
            log.warning("chain: could not subscribe yet (%s); sending anyway", exc)
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._listen(), name="chain-listen")
            tg.create_task(self._send_loop(), name="chain-send")

    # --- the centre's answers -------------------------------------------------------------

    async def _listen(self) -> None:
        async for message in self._link.messages():
            leaf = message.topic.rsplit("/", 1)[-1]
            try:
                if leaf == ChainLeaf.ACK:
                    await self._on_ack(parse_ack(self._store, message.payload).hwm)
                elif leaf == ChainLeaf.BACKFILL:
                    self._on_backfill(parse_backfill(self._store, message.payload).start)
                elif leaf == ChainLeaf.ERASED:
                    erased = parse_erased(self._store, message.payload)
                    log.info(
                        "chain: the centre applied erasure %d (%d rows)", erased.seq, erased.rows
                    )
            except ChainPayloadError as exc:
                self.counts.rejected += 1
                log.warning("chain: ignored a message from the centre: %s", exc)

    async def _on_ack(self, hwm: int) -> None:
        if hwm <= self.acked:
            return  # an older mark (two collectors published out of order): ignored
        if hwm > self.cursor:  # beyond what we sent: after a restart, or a replaced database
            await self._rebase(hwm)
        self.acked = hwm
        while self._inflight and self._inflight[0] <= hwm:
            self._inflight.popleft()
        self.cursor = max(self.cursor, hwm)
        self._since = self._clock()
        self._wake.set()
        try:
            self.counts.trimmed += await self._journal.call(self._journal.uplink_trim, hwm)
        except RuntimeFailure as exc:  # trimmed with the next mark
            self.counts.db_errors += 1
            log.error("chain: could not trim the journal: %s", exc)

    async def _rebase(self, hwm: int) -> None:
        """A mark beyond every number the journal handed out means a replaced database: its
        rows are renumbered after the mark, or the centre would skip them as known."""
        moved = await self._journal.call(self._journal.uplink_rebase, hwm)
        if moved:
            self.counts.rebased += moved
            log.warning(
                "chain: the centre's mark %d is beyond this journal's numbers (the database "
                "was replaced): %d journal rows renumbered after it",
                hwm,
                moved,
            )

    def _on_backfill(self, start: int) -> None:
        self.counts.backfills += 1
        log.info("chain: the centre asks for the journal again from %d", start)
        self._rewind(max(start - 1, 0))

    def _rewind(self, to: int) -> None:
        self.cursor = min(self.cursor, to)
        self._inflight.clear()
        self._since = self._clock()
        self._wake.set()

    # --- sending --------------------------------------------------------------------------

    async def _send_loop(self) -> None:
        while True:
            try:
                await self._sending()
            except RuntimeFailure as exc:  # the database: the journal is still there later
                self.counts.db_errors += 1
                log.error("chain: %s; trying again in %.0f s", exc, DB_RETRY_S)
                await asyncio.sleep(DB_RETRY_S)

    async def _sending(self) -> None:
        expire_at = self._clock()
        while True:
            if self._clock() >= expire_at:
                expire_at = self._clock() + EXPIRE_EVERY_S
                await self._expire()
            if self._overdue():
                self.counts.resends += 1
                log.info(
                    "chain: no progress of the centre's mark for %.0f s: sending again from %d",
                    self._config.resend_after,
                    self.acked,
                )
                self._rewind(self.acked)
            if len(self._inflight) >= self._config.in_flight:
                await self._sleep(self._remaining())
                continue
            batch = await self._next_batch()
            if batch is None:
                await self._sleep(IDLE_POLL_S)
                continue
            await self._publish(batch)

    def _overdue(self) -> bool:
        waited = self._clock() - self._since
        return bool(self._inflight) and waited >= self._config.resend_after

    def _remaining(self) -> float:
        return max(0.01, self._config.resend_after - (self._clock() - self._since))

    async def _sleep(self, seconds: float) -> None:
        self._wake.clear()
        try:
            async with asyncio.timeout(seconds):
                await self._wake.wait()
        except TimeoutError:
            pass

    async def _next_batch(self) -> Batch | None:
        """The journal's next range; an empty one when only erased or expired numbers are
        left after the cursor (the centre must not wait for them); None when nothing is."""
        after = self.cursor
        journal = self._journal
        entries, last = await journal.call(journal.uplink_range, after, self._config.batch)
        if last <= after:
            return None
        return Batch(self._store, after, last, tuple(entries))

    async def _publish(self, batch: Batch) -> None:
        try:
            await self._link.publish(self._topics.chain(ChainLeaf.BATCH), encode(batch), qos=1)
        except LinkError as exc:
            log.debug("chain: batch (%d, %d] not sent: %s", batch.after, batch.last, exc)
            await self._sleep(1.0)  # the link reconnects meanwhile; the range is read again
            return
        if batch.after != self.cursor:
            return  # a backfill rewound the cursor meanwhile: this range is sent again
        if not self._inflight:
            self._since = self._clock()
        self.cursor = batch.last
        self._inflight.append(batch.last)
        self.counts.batches += 1
        self.counts.rows += len(batch.rows)

    async def _expire(self) -> None:
        before = self._wall() - self._config.keep
        gone = await self._journal.call(self._journal.uplink_expire, before)
        if gone:
            self.counts.expired += gone
            log.warning(
                "chain: dropped %d journal rows older than central.keep the centre never "
                "acknowledged; check the bridge to the centre",
                gone,
            )
