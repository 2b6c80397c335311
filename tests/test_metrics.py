"""The Prometheus endpoint of `rayon run`, scraped as Prometheus would."""

from __future__ import annotations

import dataclasses
import json
import re
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from gateway.runtime.metrics import (
    GatewayFigures,
    Sample,
    counters_as_samples,
    gateway_samples,
    render,
)
from tests.broker import Mosquitto, Subscriber, free_port
from tests.stores import ROOT, reference_store
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


def figures(**changes: Any) -> GatewayFigures:
    base = GatewayFigures(
        now=100.0,
        counters={"offers": 5, "inputs": 7},
        anchor_adverts={},
        anchor_last={},
        anchors=(),
        queue_depth=0,
        offers_by_state={"sent": 1},
        rules_in_force=3,
    )
    return dataclasses.replace(base, **changes)


def test_zone_occupancy_and_offers_by_rule_and_state_with_escaped_labels() -> None:
    text = render(
        gateway_samples(
            figures(
                occupancy={"aisle-tv": 2, 'a "b" \\ c\nd': 0},
                offers_by={("tv-aisle-dwell", "pending"): 3, ("tv-aisle-dwell", "sent"): 2},
            )
        )
    )
    lines = text.splitlines()
    assert "# TYPE rayon_zone_occupancy gauge" in lines
    assert 'rayon_zone_occupancy{zone="aisle-tv"} 2' in lines
    assert 'rayon_zone_occupancy{zone="a \\"b\\" \\\\ c\\nd"} 0' in lines
    assert 'rayon_offers_total{rule="tv-aisle-dwell",state="pending"} 3' in lines
    assert 'rayon_offers_total{rule="tv-aisle-dwell",state="sent"} 2' in lines
    # one family of that name: the plain `offers` counter no longer renders as a second one
    assert lines.count("# TYPE rayon_offers_total counter") == 1
    assert [line for line in lines if line.startswith("rayon_offers_total ")] == []
    assert "rayon_inputs_total 7" in lines


def test_the_new_families_are_there_before_anything_happened() -> None:
    lines = render(gateway_samples(figures())).splitlines()
    assert "# TYPE rayon_zone_occupancy gauge" in lines
    assert "# TYPE rayon_offers_total counter" in lines


# -- the Grafana dashboard (deploy/grafana/rayon.json) ---------------------------------------

DASHBOARD = ROOT / "deploy" / "grafana" / "rayon.json"


def dashboard_metrics() -> set[str]:
    """Every metric name a panel or variable of the dashboard queries."""
    board = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    exprs = [t["expr"] for p in board["panels"] for t in p["targets"]]
    exprs += [v["definition"] for v in board["templating"]["list"]]
    return {name for e in exprs for name in re.findall(r"\brayon_[a-z0-9_]+", e)}


def families(exposition: str) -> set[str]:
    return {line.split()[2] for line in exposition.splitlines() if line.startswith("# TYPE ")}


def test_the_dashboard_is_a_grafana_model_with_a_prometheus_input() -> None:
    board = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert 36 <= board["schemaVersion"] <= 41 and board["uid"] and board["title"]
    assert [i["name"] for i in board["__inputs"]] == ["DS_PROMETHEUS"]
    assert board["__inputs"][0]["pluginId"] == "prometheus"
    sources = [p["datasource"] for p in board["panels"]]
    sources += [t["datasource"] for p in board["panels"] for t in p["targets"]]
    assert {s["uid"] for s in sources} == {"${DS_PROMETHEUS}"}
    assert len({p["id"] for p in board["panels"]}) == len(board["panels"])
    assert all(p["type"] == "timeseries" and p["gridPos"]["w"] > 0 for p in board["panels"])
    assert dashboard_metrics() >= {
        "rayon_zone_occupancy",
        "rayon_offers_total",
        "rayon_tracked_devices",
        "rayon_anchor_adverts_total",
        "rayon_inbound_messages_total",
    }


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
        assert 'rayon_zone_occupancy{zone="aisle-tv"} 0' in lines
        lacking = dashboard_metrics() - families(text)
        assert not lacking, f"deploy/grafana/rayon.json queries what /metrics lacks: {lacking}"
        with pytest.raises(urllib.error.HTTPError) as missing:
            scrape(port, "/other")
        assert missing.value.code == 404
        missing.value.close()
    finally:
        stop_daemon(proc)
