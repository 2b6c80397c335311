"""What one store's pipeline holds and logs at most, whatever it is sent."""

from __future__ import annotations

import dataclasses
import logging

import pytest

from gateway.clock import parse_local_time
from gateway.config.model import Config, LimitsConfig
from gateway.decode.beacons import encode_ibeacon
from gateway.events import Advertisement, MqttInput
from tests.test_pipeline import TUESDAY_3PM, config, fan, pipeline, run_walk
from tests.walks import STORE_UUID

__all__ = ["config"]  # the fixture, shared with test_pipeline


def invented(i: int, at: float) -> Advertisement:
    """An advert of a device id made up for the flood (the store's UUID, minor `i`)."""
    return Advertisement(
        at, "pi-entrance", "02:00:00:00:00:01", -70, {76: encode_ibeacon(STORE_UUID, 7, i, -59)}
    )


def test_beyond_the_cap_the_least_recently_heard_device_goes(config: Config) -> None:
    capped = dataclasses.replace(config, limits=LimitsConfig(tracked_devices=100))
    p = pipeline(capped, fan())
    start = parse_local_time(TUESDAY_3PM, capped.store.timezone)
    for i in range(1000):
        p.feed(invented(i, start + i * 0.01))
    assert p.tracked_devices() == 100 and p.counters["devices_shed"] == 900
    # the customer walking in afterwards is tracked and gets their offer
    out = run_walk(p, capped)
    assert [o.rule for o in out.offers] == ["tv-aisle-dwell"]
    assert p.tracked_devices() <= 100


def test_a_thousand_bad_messages_write_a_few_log_lines(
    config: Config, caplog: pytest.LogCaptureFixture
) -> None:
    p = pipeline(config)
    with caplog.at_level(logging.WARNING, logger="gateway.pipeline"):
        for i in range(1000):
            p.feed(MqttInput(float(i), "rayon/paris-11/phones/t-bad/sightings", b"{not json"))
    assert p.counters["inbound_rejected:sightings"] == 1000
    assert len(caplog.records) == 10 and p.counters["log_suppressed"] == 990
    assert all("sightings" in r.getMessage() for r in caplog.records)
