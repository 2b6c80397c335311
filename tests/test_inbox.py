"""The gateway's inbox: consent first and never dropped, every other sender in turn."""

from __future__ import annotations

import asyncio

from gateway.runtime.inbox import Inbox
from gateway.throttle import Throttle, held_note


def test_a_flooding_sender_loses_its_own_messages_only() -> None:
    inbox: Inbox[str] = Inbox({"feedback": 3, "sightings": 3}, total=100)
    flooded = [inbox.put("feedback", "t-flood", f"f{i}") for i in range(1000)]
    assert flooded.count(True) == 3 and inbox.dropped["feedback"] == 997
    assert inbox.put("sightings", "t-calm", "s0") and inbox.dropped["sightings"] == 0


def test_senders_are_served_in_turn_and_consent_first() -> None:
    inbox: Inbox[str] = Inbox({"a": 10}, total=100)
    for i in range(3):
        inbox.put("a", "one", f"one-{i}")
    inbox.put("a", "two", "two-0")
    inbox.put_consent("crm-0")
    taken = [inbox.get_nowait() for _ in range(len(inbox))]
    assert taken == ["crm-0", "one-0", "two-0", "one-1", "one-2"]
    assert inbox.get_nowait() is None


def test_consent_is_never_dropped_even_when_the_inbox_is_full() -> None:
    inbox: Inbox[str] = Inbox({"a": 1}, total=2)
    assert inbox.put("a", "x", "x") and inbox.put("a", "y", "y")
    assert not inbox.put("a", "z", "z")  # the whole inbox is full
    for i in range(10_000):
        inbox.put_consent(f"crm-{i}")
    assert len(inbox) == 10_002 and inbox.get_nowait() == "crm-0"


def test_get_waits_for_the_next_message() -> None:
    async def scenario() -> str:
        inbox: Inbox[str] = Inbox({"a": 1}, total=10)
        waiting = asyncio.create_task(inbox.get())
        await asyncio.sleep(0.01)
        assert not waiting.done()
        inbox.put("a", "x", "late")
        return await asyncio.wait_for(waiting, 1)

    assert asyncio.run(scenario()) == "late"


def test_throttle_lets_a_burst_through_then_counts_what_it_holds_back() -> None:
    now = [0.0]
    throttle = Throttle(burst=3, window_s=60.0, clock=lambda: now[0])
    let = [throttle.allow("rejected:sightings") for _ in range(10)]
    assert let == [0, 0, 0, None, None, None, None, None, None, None]
    assert throttle.allow("rejected:feedback") == 0  # another kind has its own budget
    now[0] = 61.0
    held = throttle.allow("rejected:sightings")
    assert held == 7 and throttle.suppressed == 7
    assert "7 similar messages" in held_note(held)
