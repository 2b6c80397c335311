"""The chain end to end: two stores, each with its own Mosquitto bridged (through a WAN that
can be cut) to a central Mosquitto, two `rayon central` processes on the real PostgreSQL.

One collector hangs and is killed mid-stream (what the broker had handed it is lost: the
broker does not give a dead shared subscriber's messages to the other); one store's WAN is cut
while it produces 10,000 events, then restored; the other store's sender is killed -9
mid-publish and restarted.  Afterwards every event of both stores' databases is in PostgreSQL
exactly once, and a backfill request was made and answered (the senders' own resend timer is
set far beyond the test, so only backfill can have filled the gaps).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.chainlab import ChainLab

pytestmark = [pytest.mark.mqtt, pytest.mark.timeout(400)]


@pytest.fixture
def lab(tmp_path: Path, postgres_url: str) -> Iterator[ChainLab]:
    chain = ChainLab(tmp_path, postgres_url, batch=200, in_flight=8, resend_after=3600.0)
    try:
        yield chain.start()
    finally:
        chain.close()


def test_every_event_arrives_exactly_once_through_kills_and_a_cut(lab: ChainLab) -> None:
    paris, lyon = lab.sites["paris-11"], lab.sites["lyon-2"]

    # 1. both stores stream; a collector hangs mid-stream, then is killed
    for _ in range(10):
        paris.produce(150)
        lyon.produce(150)
        time.sleep(0.05)
    lab.wait(lambda: sum(lab.marks().values()) > 0, 60, "a first mark")
    lab.pause_collector(0)
    for _ in range(10):
        paris.produce(100)
        lyon.produce(100)
        time.sleep(0.05)
    lab.kill_collector(0)
    lab.wait(lambda: lab.caught_up("paris-11") and lab.caught_up("lyon-2"), 120, "phase 1")
    # the dead collector's batches came back by backfill only (counted once the request went)
    lab.wait(lambda: lab.backfills() > 0, 30, "a backfill request counted")
    lab.start_collector(0)

    # 2. paris's WAN is cut while it produces 10,000 events; lyon's sender is killed -9
    paris.proxy.cut()
    paris.produce(10_000, chunk=500)
    lyon.produce(1_000, chunk=50, pause=0.01)
    lab.kill_sender(lyon)
    lyon.produce(1_000)
    lab.start_sender(lyon)
    paris.proxy.restore()
    lab.wait(lambda: lab.caught_up("paris-11") and lab.caught_up("lyon-2"), 240, "phase 2")

    # 3. exactly once: the same events, none missing, none doubled
    for site in (paris, lyon):
        stored = site.events()
        assert len(stored) == site.produced
        assert lab.central_events(site.id) == stored
    assert paris.produced == 12_500 and lyon.produced == 4_500

    # 4. `rayon forget` at lyon reaches the centre, is applied and acknowledged
    lyon.produce(40, customer="c-forget")
    lab.wait(lambda: lab.caught_up("lyon-2"), 60, "the customer's events")
    assert len(lab.central_events("lyon-2")) == 4_540
    assert lyon.store.erase_customer("c-forget")["zone_events"] == 40
    lab.wait(lambda: lab.caught_up("lyon-2"), 60, "the erasure")
    assert lab.central_events("lyon-2") == lyon.events()  # the 4,500 others
    ((body,),) = lab.query(
        "SELECT body FROM chain_records WHERE store = 'lyon-2' AND kind = 'erase'"
    )
    assert body == {"rows": 40}  # the count is kept, the customer id is not
    sender_log = (lab.workdir / "sender-lyon-2.log").read_text()
    assert "the centre applied erasure" in sender_log
