"""`Collector`: `rayon central`, one of the chain's collectors.

It reads every store's `chain/batch` through the shared subscription
`$share/rayon-central/<prefix>/+/chain/batch`, so that several collectors split the load,
writes each batch into PostgreSQL (`CentralDb.ingest`, off the event loop), and only then
publishes the store's mark, retained, on `chain/ack`.  A store whose records wait beyond its
mark for `backfill_after` is asked for the missing range on `chain/backfill` (at most once per
`backfill_after` and store).  Survival never rests on the broker: Mosquitto does not hand a
dead shared subscriber's in-flight messages to another member
(https://github.com/eclipse/mosquitto/issues/2662); what a dead collector had not committed
is not in the mark, so the store sends it again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar, TypeVarTuple

from sqlalchemy.exc import SQLAlchemyError

from gateway.central.ingest import CentralDb, Ingested
from gateway.central.wire import Ack, Backfill, ChainPayloadError, Erased, encode, parse_batch
from gateway.deliver.mqtt import Message, MqttLink
from gateway.deliver.mqtterrors import LinkError
from gateway.errors import RuntimeFailure
from gateway.topics import ChainLeaf, Topics, chain_filter, parse_chain

log = logging.getLogger(__name__)

__all__ = ["Collector", "CollectorCounts"]

T = TypeVar("T")
Ts = TypeVarTuple("Ts")
GAP_CHECK_S = 0.5
DB_RETRY_S = 1.0


@dataclass(slots=True)
class CollectorCounts:
    """Batches and rows written, batches refused (malformed, wrong store), database
    failures, backfill requests and erasures applied by this collector."""

    batches: int = 0
    rows: int = 0
    rejected: int = 0
    db_errors: int = 0
    backfills: int = 0
    erasures: int = 0


class Collector:
    """Collects `prefix`'s stores from `link` into `db`."""

    def __init__(
        self,
        db: CentralDb,
        link: MqttLink,
        prefix: str = "rayon",
        *,
        backfill_after: float = 2.0,
        workers: int = 2,
        retention: float | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._db, self._link, self._prefix = db, link, prefix.strip("/")
        self._backfill_after, self._workers = backfill_after, workers
        self._retention, self._clock = retention, clock
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="central-db")
        self._asked: dict[str, float] = {}
        self.counts = CollectorCounts()
        self.ready = asyncio.Event()  # subscribed: batches published from now on reach us

    async def run(self) -> None:
        """Subscribe, then collect forever (until cancelled)."""
        shared = chain_filter(self._prefix, ChainLeaf.BATCH, shared=True)
        await self._link.subscribe([shared])
        self.ready.set()
        log.info("central: collecting %s as %s", shared, self._link.client_id)
        try:
            async with asyncio.TaskGroup() as tg:
                for i in range(self._workers):
                    tg.create_task(self._consume(), name=f"central-ingest-{i}")
                tg.create_task(self._watch_gaps(), name="central-gaps")
                if self._retention is not None:
                    tg.create_task(self._expire(self._retention), name="central-retention")
        finally:
            self._pool.shutdown(wait=True)

    async def _call(self, fn: Callable[[*Ts], T], *args: *Ts) -> T:
        """`fn(*args)` on a database thread, off the event loop."""
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    async def _consume(self) -> None:
        async for message in self._link.messages():
            await self._handle(message)

    async def _handle(self, message: Message) -> None:
        found = parse_chain(self._prefix, message.topic)
        if found is None or found[1] is not ChainLeaf.BATCH:
            self.counts.rejected += 1
            return
        store = found[0]
        try:
            batch = parse_batch(store, message.payload)
        except ChainPayloadError as exc:
            self.counts.rejected += 1
            log.warning("central: refused a batch: %s", exc)
            return
        try:
            result = await self._call(self._db.ingest, batch, self._clock())
        except (RuntimeFailure, SQLAlchemyError) as exc:
            self.counts.db_errors += 1
            log.error(
                "central: batch (%d, %d] of %s not written: %s; the store sends it again",
                batch.after,
                batch.last,
                store,
                exc,
            )
            await asyncio.sleep(DB_RETRY_S)
            return
        self.counts.batches += 1
        self.counts.rows += result.written
        await self._acknowledge(result)

    async def _acknowledge(self, result: Ingested) -> None:
        topics = Topics(self._prefix, result.store)
        now = self._clock()
        try:
            for seq, rows in result.erased:
                self.counts.erasures += 1
                erased = encode(Erased(result.store, seq, rows, now))
                await self._link.publish(topics.chain(ChainLeaf.ERASED), erased, qos=1)
            ack = encode(Ack(result.store, result.hwm, now))
            await self._link.publish(topics.chain(ChainLeaf.ACK), ack, qos=1, retain=True)
        except LinkError as exc:  # the next batch (or the store's resend) acknowledges again
            log.warning("central: could not acknowledge %s: %s", result.store, exc)

    async def _watch_gaps(self) -> None:
        while True:
            await asyncio.sleep(GAP_CHECK_S)
            try:
                gaps = await self._call(self._db.gaps)
            except (RuntimeFailure, SQLAlchemyError) as exc:
                log.error("central: cannot read the gaps: %s", exc)
                continue
            for gap in gaps:
                await self._ask(gap.store, gap.hwm, gap.lo, gap.seen)

    async def _ask(self, store: str, hwm: int, lo: int, seen: float) -> None:
        """Ask `store` for `(hwm, lo]` if it has waited long enough and was not just asked."""
        now = self._clock()
        wait = self._backfill_after
        if now - seen < wait or now - self._asked.get(store, 0.0) < wait:
            return
        self._asked[store] = now
        request = encode(Backfill(store, hwm + 1, lo, now))
        try:
            await self._link.publish(
                Topics(self._prefix, store).chain(ChainLeaf.BACKFILL), request, qos=1
            )
        except LinkError as exc:
            log.warning("central: could not ask %s for a backfill: %s", store, exc)
            return
        self.counts.backfills += 1
        log.info(
            "central: asked %s for its journal again from %d (held from %d)", store, hwm + 1, lo
        )
        await self._call(self._db.note_backfill, store)

    async def _expire(self, retention: float) -> None:
        while True:
            gone = await self._call(self._db.expire, self._clock() - retention)
            if gone:
                log.info("central: retention deleted %s records", gone)
            await asyncio.sleep(3600)
