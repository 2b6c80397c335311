"""Where `rayon replay` puts what the pipeline decided: the --*-out files and, with --publish,
the store (`OutputWriter`, also the replay benchmarks' sink).  Called once per input that
decided something, so it is among the compiled build's modules (HOT_MODULES)."""

from __future__ import annotations

from collections.abc import Callable
from typing import IO

from gateway.config.model import Config
from gateway.deliver.payloads import event_record, offer_payload
from gateway.identity.model import Customer
from gateway.offline.replay import fix_record, write_jsonl
from gateway.pipeline import Output
from gateway.rules.codepools import MemoryCodePools
from gateway.store.persist import PositionSampler, persist
from gateway.store.repo import Position, Store
from gateway.zones.index import ZoneIndex

BATCH = 5000


class OutputWriter:
    """Writes what the pipeline decided to the --*-out files and, unless dry, to the store."""

    def __init__(
        self,
        config: Config,
        store: Store | None,
        files: dict[str, IO[str] | None],
        pools: MemoryCodePools,
        customer_of: Callable[[str], Customer | None],
        on_offers: Callable[[float], None] | None = None,
    ) -> None:
        self._config = config
        self._pools = pools
        self._store = store
        self._out = (files.get("fixes"), files.get("events"), files.get("offers"))
        self._zones = ZoneIndex(config.zones) if files.get("fixes") else None
        self._pending = Output()
        self._customer_of = customer_of
        self._sampler = PositionSampler()
        self._positions: list[Position] = []
        self._on_offers = on_offers  # publish now: the trace's time of the offers just written

    def __call__(self, out: Output) -> None:
        if self._out != (None, None, None):
            self._write_files(out)
        if self._store is not None:
            self._positions.extend(self._sampler.sample(out.fixes, self._customer_of))
            pending = self._pending  # fixes are sampled above, not all kept
            if out.erased:
                pending.forget(out.erased)
            pending.events.extend(out.events)
            pending.offers.extend(out.offers)
            pending.upserted.extend(out.upserted)
            pending.erased.extend(out.erased)
            sent = [o.created_at for o in out.offers if not o.holdout]
            if sent and self._on_offers is not None:
                self.flush()
                self._on_offers(max(sent))
            elif len(self._pending.events) + len(self._pending.offers) >= BATCH:
                self.flush()

    def _write_files(self, out: Output) -> None:
        fixes, events, offers = self._out
        if fixes is not None and self._zones is not None:
            for fix in out.fixes:
                write_jsonl(fixes, fix_record(fix, self._zones))
        if events is not None:
            for event in out.events:
                write_jsonl(events, event_record(event))
        if offers is not None:
            tz = self._config.store.timezone
            for offer in out.offers:
                if not offer.holdout:
                    write_jsonl(offers, {**offer_payload(offer, tz), "token": offer.token})

    def flush(self) -> None:
        pending, self._pending = self._pending, Output()
        if self._store is not None and pending:
            positions, self._positions = self._positions, []
            persist(self._store, pending, assignments=self._pools.take_new(), positions=positions)
