"""The console's figures: its resident memory, the map's load time with N tracked devices, and
the latency from a live event published on the broker to its line on the page.

    .venv/bin/python bench/bench_console.py [--devices 200] [--runs 5] [--events 100]

A private Mosquitto and a store folder (tests/consolelab.py: the reference store, the console's
users); the simulated store runs one minute of store time first (`rayon demo`, so the database
holds visits, offers and zone events), then `rayon console` starts as its own process and a
publisher stands in for the gateway: `console/positions` with `--devices` dots once a second
and `console/ticker` lines, as docs/mqtt.md defines them.  Chromium (Playwright, Debian's
/usr/bin/chromium) is the store manager:

* **load**: a logged-in browser opens `/` until every one of the `--devices` dots is drawn
  (navigation start → the last dot in the DOM), `--runs` times;
* **latency**: on the open map, `--events` ticker lines are published 50 ms apart; the page
  notes when each line enters the DOM (a MutationObserver, wall clock); the latency is that
  minus the publish time (both clocks are this machine's);
* **end to end**: the simulated store in real time (speed 1, from now) for `--end-to-end`
  seconds, the map open: for every ticker line, the time it entered the DOM minus its `at`,
  the store-clock time of the advert (or timer) that made the event — the whole way through
  the gateway (pipeline, the 0.2 s write batch, MQTT), the broker, the console and the browser;
* **memory**: the console's VmRSS and VmHWM after every page was served (map, rules, KPIs,
  a visit trace).

Prints each figure's median (and the latency's p50 / p99 over all runs).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.broker import Mosquitto, find_mosquitto  # noqa: E402
from tests.browser import chromium_path  # noqa: E402
from tests.consolelab import ConsoleLab, log_in  # noqa: E402

TOPIC = "rayon/paris-11/console/"
OBSERVER = """() => {
    window.__seen = {};
    new MutationObserver(ms => ms.forEach(m => m.addedNodes.forEach(n => {
        if (n.dataset && n.dataset.visit) window.__seen[n.dataset.visit] = Date.now();
    }))).observe(document.getElementById("ticker"), {childList: true});
}"""


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def positions(devices: int) -> bytes:
    dots = [
        {
            "visit": f"v-{i:012x}",
            "x": 2.0 + (i * 7 % 360) / 10.0,
            "y": 2.0 + (i * 13 % 210) / 10.0,
            "accuracy_m": 1.5 + (i % 5) / 2.0,
            "zone": None,
        }
        for i in range(devices)
    ]
    return json.dumps({"type": "positions", "v": 1, "at": now_iso(), "devices": dots}).encode()


def tick(visit: str) -> bytes:
    line = {"type": "zone_event", "v": 1, "at": now_iso(), "kind": "enter", "zone": "aisle-tv"}
    return json.dumps({**line, "visit": visit}).encode()


class Gateway:
    """Publishes what the gateway publishes for the console, on the lab's broker."""

    def __init__(self, broker: Mosquitto) -> None:
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id="bench-gateway")
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()

    def publish(self, leaf: str, payload: bytes) -> None:
        self.client.publish(TOPIC + leaf, payload, qos=0).wait_for_publish(5)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@contextmanager
def live_map(browser: Any, lab: ConsoleLab) -> Iterator[Any]:
    """A fresh browser context logged in as ops, on the live map once its stream is ready."""
    context = browser.new_context()
    try:
        page = context.new_page()
        log_in(page, lab, "olga")
        page.wait_for_selector("body[data-live=ready]")
        yield page
    finally:
        context.close()


def load_time(browser: Any, lab: ConsoleLab, devices: int) -> float:
    """Seconds from navigation start to the last of `devices` dots drawn, in a fresh tab."""
    with live_map(browser, lab) as page:
        page.goto("about:blank")
        started = time.perf_counter()
        page.goto(lab.url + "/")
        # the last dot (no wait_for_function: the console's CSP refuses its string eval)
        page.locator("#dots [data-visit]").nth(devices - 1).wait_for(state="attached")
        return time.perf_counter() - started


def latencies(
    browser: Any, lab: ConsoleLab, gateway: Gateway, events: int, run: int
) -> list[float]:
    """Milliseconds from publish to the ticker line in the DOM, for `events` lines."""
    with live_map(browser, lab) as page:
        page.evaluate(OBSERVER)
        sent: dict[str, float] = {}
        for i in range(events):
            visit = f"v-{run:04x}{i:08x}"
            sent[visit] = time.time() * 1000.0
            gateway.publish("ticker", tick(visit))
            time.sleep(0.05)
        last = f"v-{run:04x}{events - 1:08x}"
        page.locator(f'#ticker li[data-visit="{last}"]').wait_for(state="attached")
        seen: dict[str, float] = page.evaluate("window.__seen")
        return [seen[v] - t for v, t in sent.items() if v in seen]


OBSERVER_AT = """() => {
    window.__lags = [];
    new MutationObserver(ms => ms.forEach(m => m.addedNodes.forEach(n => {
        if (n.dataset && n.dataset.at) window.__lags.push(Date.now() - Date.parse(n.dataset.at));
    }))).observe(document.getElementById("ticker"), {childList: true});
}"""


def end_to_end(browser: Any, lab: ConsoleLab, seconds: float) -> list[float]:
    """Milliseconds from each event's `at` to its ticker line in the DOM, with the simulated
    store running in real time for `seconds`."""
    with live_map(browser, lab) as page:
        page.evaluate(OBSERVER_AT)
        lab.start_store(shoppers=30, minutes=seconds / 60.0, speed=1.0, start="now")
        lab.procs[-1].wait(timeout=seconds + 120)
        lags: list[float] = page.evaluate("window.__lags")
        return lags


def memory_kb(pid: int) -> dict[str, int]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(value.split()[0])
    return fields


def visit_every_page(browser: Any, lab: ConsoleLab) -> None:
    with live_map(browser, lab) as page:
        page.goto(lab.url + "/rules")
        page.goto(lab.url + "/kpis")
        page.wait_for_selector("body[data-kpis=ready]", timeout=30_000)
        link = page.query_selector("#ticker a.visit")
        if link is not None:
            page.goto(lab.url + (link.get_attribute("href") or "/"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--devices", type=int, default=200)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--events", type=int, default=100)
    ap.add_argument("--end-to-end", type=float, default=60.0, metavar="SECONDS")
    args = ap.parse_args()
    binary, chromium = find_mosquitto(), chromium_path()
    if binary is None or chromium is None:
        sys.exit("needs mosquitto and chromium (apt-get install mosquitto chromium)")
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="rayon-bench-console-") as tmp:
        broker = Mosquitto(binary, Path(tmp) / "mosquitto")
        broker.start()
        (Path(tmp) / "store").mkdir()
        lab = ConsoleLab(Path(tmp) / "store", broker)
        try:
            lab.start_store(shoppers=20, minutes=1.0, speed=10.0, start="now")
            lab.procs[-1].wait(timeout=120)  # the store's minute is over, its database written
            console = lab.start_console()
            gateway = Gateway(broker)
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=str(chromium), args=["--no-sandbox"])
                run_figures(args, browser, lab, gateway, console.pid)
                browser.close()
            gateway.close()
        finally:
            lab.stop()
            broker.stop()


def run_figures(
    args: argparse.Namespace, browser: Any, lab: ConsoleLab, gateway: Gateway, pid: int
) -> None:
    gateway.publish("positions", positions(args.devices))
    time.sleep(0.5)
    loads, lags = [], []
    for run in range(args.runs):
        gateway.publish("positions", positions(args.devices))
        loads.append(load_time(browser, lab, args.devices))
        lags += latencies(browser, lab, gateway, args.events, run)
        print(f"run {run + 1}: map with {args.devices} dots {loads[-1] * 1000:.0f} ms", flush=True)
    e2e = end_to_end(browser, lab, args.end_to_end) if args.end_to_end > 0 else []
    visit_every_page(browser, lab)
    mem = memory_kb(pid)
    q = statistics.quantiles(lags, n=100, method="inclusive")
    print(f"map load with {args.devices} tracked devices: median {statistics.median(loads):.3f} s")
    print(
        f"event to page: p50 {q[49]:.0f} ms, p99 {q[98]:.0f} ms, max {max(lags):.0f} ms "
        f"({len(lags)} events)"
    )
    if len(e2e) >= 2:
        e = statistics.quantiles(e2e, n=100, method="inclusive")
        print(
            f"event to page, end to end (real-time store, {args.end_to_end:g} s): p50 "
            f"{e[49]:.0f} ms, p99 {e[98]:.0f} ms, max {max(e2e):.0f} ms ({len(e2e)} events)"
        )
    print(f"console memory: VmRSS {mem['VmRSS'] / 1024:.1f} MB, VmHWM {mem['VmHWM'] / 1024:.1f} MB")


if __name__ == "__main__":
    main()
