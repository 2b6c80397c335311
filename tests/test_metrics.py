"""The Prometheus endpoint of `rayon run`, scraped as Prometheus would."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from gateway.runtime.metrics import Sample, counters_as_samples, render
from tests.broker import Mosquitto, Subscriber, free_port
from tests.stores import reference_store
from tests.test_run import entrance_reports, start_daemon, stop_daemon

BASE = "rayon/paris-11"


def test_render_is_the_text_exposition_format() -> None:
    text = render(
        [
            Sample("offers", "gauge", "Offers by state", [({"state": "sent"}, 3.0)]),
            *counters_as_samples({"inputs": 5, "source_failures:ble:hci0": 2}),
        ]
    )
    assert text.splitlines() == [
        "# HELP rayon_offers Offers by state",
        "# TYPE rayon_offers gauge",
        'rayon_offers{state="sent"} 3',
        "# HELP rayon_inputs_total Count of inputs",
        "# TYPE rayon_inputs_total counter",
        "rayon_inputs_total 5",
        "# HELP rayon_source_failures_total Count of source_failures",
        "# TYPE rayon_source_failures_total counter",
        'rayon_source_failures_total{detail="ble:hci0"} 2',
    ]


def scrape(port: int, path: str = "/metrics") -> str:
    deadline = time.monotonic() + 20
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
                return str(r.read().decode())
        except urllib.error.URLError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


@pytest.mark.mqtt
def test_rayon_run_serves_metrics_per_anchor(
    tmp_path: Path, mosquitto: Mosquitto, subscriber: Callable[..., Subscriber]
) -> None:
    port = free_port()
    config = reference_store(tmp_path, port=mosquitto.port, metrics={"listen": f"127.0.0.1:{port}"})
    status = subscriber(f"{BASE}/gateway/status")
    proc = start_daemon(config)
    try:
        status.wait(1, timeout=30)
        sender = subscriber(f"{BASE}/nothing")
        for node, adverts in entrance_reports(config, time.time()).items():
            sender.publish(f"{BASE}/scanners/{node}/adv", json.dumps(adverts).encode(), qos=0)
        deadline, text = time.monotonic() + 15, ""
        while 'rayon_anchor_adverts_total{anchor="pi-entrance"} 0' in (text := scrape(port)):
            assert time.monotonic() < deadline, text
            time.sleep(0.2)
        lines = text.splitlines()
        assert "# TYPE rayon_anchor_last_advert_age_seconds gauge" in lines
        ages = {
            line.split('"')[1]: float(line.rsplit(" ", 1)[1])
            for line in lines
            if line.startswith("rayon_anchor_last_advert_age_seconds{")
        }
        assert 0 <= ages["pi-entrance"] < 60 and set(ages) >= {"node-photo", "node-tv"}
        assert any(line.startswith("rayon_rules_in_force ") for line in lines)
        assert any(line.startswith("rayon_input_queue_depth ") for line in lines)
        with pytest.raises(urllib.error.HTTPError) as missing:
            scrape(port, "/other")
        assert missing.value.code == 404
        missing.value.close()
    finally:
        stop_daemon(proc)
