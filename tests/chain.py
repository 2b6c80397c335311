"""Helpers of the chain's tests: a store with its journal on, and what it writes."""

from __future__ import annotations

import time

from gateway.events import EventKind, Offer, Purpose, ZoneEvent

# Recent: the sender drops journal rows older than `central.keep`.
T0 = float(int(time.time())) - 3600.0


def zone_events(
    n: int, start: float = T0, device: str = "ibeacon:aa:1:2", customer: str | None = None
) -> list[ZoneEvent]:
    """`n` enter/exit events of one device, one a second."""
    kinds = (EventKind.ENTER, EventKind.EXIT)
    return [
        ZoneEvent(
            at=start + i,
            kind=kinds[i % 2],
            zone="aisle-tv",
            device=device,
            customer=customer,
            dwell_s=1.0 if i % 2 else None,
        )
        for i in range(n)
    ]


def visit(device: str, customer: str | None, start: float, length: float) -> list[ZoneEvent]:
    """A visit's start and end events."""
    return [
        ZoneEvent(
            at=start, kind=EventKind.VISIT_START, zone=None, device=device, customer=customer
        ),
        ZoneEvent(
            at=start + length,
            kind=EventKind.VISIT_END,
            zone=None,
            device=device,
            customer=customer,
            dwell_s=length,
        ),
    ]


def offer(oid: str, customer: str = "c1", at: float = T0) -> Offer:
    return Offer(
        id=oid,
        rule="tv-aisle-dwell",
        store="paris-11",
        zone="aisle-tv",
        customer=customer,
        token=f"tok-{customer}",
        created_at=at,
        expires_at=at + 3600,
        title="-15 % sur les TV",
        body="Offre valable aujourd'hui.",
        code=None,
        url=None,
        purpose=Purpose.COMMERCIAL,
    )
