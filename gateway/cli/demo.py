"""`rayon demo`: the reference store simulated, through the same Gateway as `rayon run`.

Shoppers walk the floor on an accelerated clock; an embedded broker stands in when none answers
at the configured address; a phone-like subscriber prints each offer as the app would show it;
a live view shows who is in which zone; a summary per rule closes the run.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import logging
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack
from datetime import datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import yaml
from paho.mqtt.enums import CallbackAPIVersion

from gateway.clock import AcceleratedClock, Clock
from gateway.config.commandline import config_of, local_time
from gateway.config.model import Config, DatabaseConfig
from gateway.deliver.connect import connect_link
from gateway.errors import InvalidInput
from gateway.events import Advertisement, TraceItem
from gateway.identity.model import Customer
from gateway.runtime.app import Gateway
from gateway.sim.customers import demo_customers
from gateway.sim.simulator import StoreSimulator
from gateway.store.repo import Store
from gateway.topics import Topics


def broker_answers(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


class SimulatorSource:
    """Plays a simulation's adverts when the (accelerated) clock reaches their time."""

    name = "simulator"

    def __init__(self, adverts: Iterator[Advertisement], clock: Clock) -> None:
        self._adverts = adverts
        self._clock = clock
        self.done = asyncio.Event()

    async def items(self) -> AsyncIterator[TraceItem]:
        for adv in self._adverts:
            delay = adv.at - self._clock.now()
            if delay > 0.005:
                await asyncio.sleep(delay)
            yield adv
        self.done.set()


class Phone:
    """What the store's app would show: a paho v5 subscriber on every offers/<token> topic."""

    def __init__(self, host: str, port: int, topics: Topics, names: dict[str, str]) -> None:
        self.received: list[dict[str, Any]] = []
        self._names = names
        self._client = paho.Client(
            CallbackAPIVersion.VERSION2, client_id="rayon-demo-phone", protocol=paho.MQTTv5
        )
        self._client.on_message = self._on_message
        self._client.connect(host, port)
        self._client.subscribe(topics.offers_filter(), qos=1)
        self._client.loop_start()

    def _on_message(self, client: paho.Client, userdata: Any, msg: paho.MQTTMessage) -> None:
        offer = json.loads(msg.payload)
        self.received.append(offer)
        token = msg.topic.rsplit("/", 1)[-1]
        expiry = getattr(msg.properties, "MessageExpiryInterval", None)
        at = offer["created_at"][11:16]
        who = self._names.get(token, token[:8])
        code = f"  code {offer['code']}" if offer.get("code") else ""
        left = f"  (expires in {expiry // 60} min)" if expiry else ""
        print(f"  📱 {at} {who:<17} « {offer['title']} » — {offer['body']}{code}{left}", flush=True)

    def close(self) -> None:
        self._client.loop_stop()
        self._client.disconnect()


def live_view(config: Config, gateway: Gateway, clock: Clock) -> str:
    occ = gateway.pipeline.zones.occupancy()
    local = datetime.fromtimestamp(clock.now(), config.store.timezone).strftime("%H:%M:%S")
    cells = [
        f"{z.id.removeprefix('aisle-')}:{occ.get(z.id, 0)}"
        for z in config.zones
        if occ.get(z.id, 0)
    ]
    return f"  [{local}] in store: {occ.get('store', 0):>3} | " + "  ".join(cells)


DEMO_START = "2026-03-03T14:45:00"  # a Tuesday afternoon: every shipped rule may fire
# The simulated store's radio (anchor offsets, shadowing) whatever --seed draws the shoppers: the
# store radio-map.example.json was walked in (`./dev radio-map`); another radio would make its
# map wrong (dwell in the right zone 59 % against 82 % without the map, seed 8's radio)
DEMO_STORE_SEED = 7


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `rayon demo`."""
    parser.add_argument("--shoppers", type=int, default=24, help="simulated shoppers (default 24)")
    parser.add_argument(
        "--minutes", type=float, default=30.0, help="simulated minutes (default 30)"
    )
    parser.add_argument(
        "--speed",
        type=float,
        default=30.0,
        help="how many times faster than real time (default 30)",
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--start",
        default=None,
        help="simulated local start time in the store's timezone (ISO 8601, or `now`; "
        f"default {DEMO_START}, or now with --console)",
    )
    parser.add_argument(
        "--quiet", action="store_true", help="no live view, only offers and summary"
    )
    parser.add_argument(
        "--console",
        nargs="?",
        const="127.0.0.1:8080",
        metavar="HOST:PORT",
        help="also run the web console on the demo store (default 127.0.0.1:8080), with a "
        "one-time ops login printed; the store's time then starts now unless --start is given",
    )
    parser.add_argument(
        "--radio-map",
        metavar="FILE",
        type=Path,
        help="locate with this radio map instead of the config's locate.radio_map (`./dev demo` "
        "gives radio-map.example.json, the reference store's from a simulated calibration "
        "walk: docs/calibration.md)",
    )
    parser.add_argument(
        "--database",
        metavar="PATH",
        type=Path,
        help="keep the demo's SQLite database at PATH (for `rayon report` or `rayon console` "
        "afterwards); default: a new temporary folder",
    )


def starts_now(args: argparse.Namespace) -> bool:
    """The store's time starts at the wall clock's: `--start now`, or `--console` without
    `--start` (the console reads the database as the store's present)."""
    return bool(args.start == "now" or (args.start is None and args.console))


def run(args: argparse.Namespace) -> int:
    """`rayon demo`: until the simulated time is over, Ctrl-C or SIGTERM."""
    try:
        return asyncio.run(run_demo(config_of(args), args))
    except asyncio.CancelledError:  # SIGTERM: stopped as by Ctrl-C, its console with it
        return 128 + signal.SIGTERM


def _stop_on_sigterm() -> None:
    """SIGTERM cancels the demo's task, so that its exit stack runs (the console process, the
    embedded broker, the database): by default the interpreter would just die, leaving the
    console serving."""
    task = asyncio.current_task()
    if task is not None:
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)


async def run_demo(config: Config, args: argparse.Namespace) -> int:
    _stop_on_sigterm()
    if not args.verbose:  # the live view and the phone are the demo's output, not the logs
        logging.getLogger("gateway").setLevel(logging.WARNING)
    database = args.database or Path(tempfile.mkdtemp(prefix="rayon-demo-")) / "demo.db"
    database = database.absolute()
    config = dataclasses.replace(config, database=DatabaseConfig(f"sqlite:///{database}"))
    if args.radio_map is not None:
        config = _with_radio_map(config, args.radio_map)
    start = time.time() if starts_now(args) else local_time(args.start or DEMO_START, config)
    sim = StoreSimulator(
        config,
        shoppers=args.shoppers,
        minutes=args.minutes,
        seed=args.seed,
        start_at=start,
        store_seed=DEMO_STORE_SEED,
    )
    customers = demo_customers(sim.devices(), args.seed)
    store = Store(config.database.url)
    async with AsyncExitStack() as stack:
        stack.callback(store.close)  # also if the demo stops before it runs (_run closes it too)
        for customer in customers:
            store.upsert_customer(customer)
        config = await _with_broker(config, stack)
        if args.console:
            _with_console(config, args.console, database.parent / "console", stack)
        print(
            f"Rayon demo — {config.store.name}: {args.shoppers} shoppers, {args.minutes:g} "
            f"simulated minutes at ×{args.speed:g}; broker {config.mqtt.host}:{config.mqtt.port}; "
            f"database {database}",
            flush=True,
        )
        return await _run(config, args, sim, customers, store, start)


def _with_radio_map(config: Config, path: Path) -> Config:
    """The config locating with the radio map at `path` (read when the pipeline is built)."""
    if not path.is_file():
        raise InvalidInput(
            f"--radio-map {path}: no such file (the reference store's is radio-map.example.json; "
            "make one with `rayon calibrate … --map-out`, docs/calibration.md)"
        )
    locate = dataclasses.replace(config.locate, radio_map=path.absolute())
    return dataclasses.replace(config, locate=locate)


def _with_console(config: Config, listen: str, folder: Path, stack: AsyncExitStack) -> None:
    """`rayon console` on the demo's broker and database, as its own process (as in a store),
    with a one-time `demo` login of role ops; stopped with the demo."""
    from gateway.console.users import Role, UsersFile

    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(_console_config(config, listen, folder), allow_unicode=True))
    password = secrets.token_urlsafe(12)
    UsersFile(folder / "users").add("demo", Role.OPS, password)
    with (folder / "console.log").open("ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gateway", "console", "-c", str(path)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    stack.callback(_end, proc)
    print(f"console: http://{listen}/ — log in as demo / {password} (log: {log.name})")


def _console_config(config: Config, listen: str, folder: Path) -> dict[str, Any]:
    """The demo's config.yaml for the console: the broker the demo uses (without a login when
    it is the embedded one), the demo's database, the console's files in `folder`."""
    raw = yaml.safe_load(config.path.read_text(encoding="utf-8"))
    mqtt = dict(raw.get("mqtt") or {}, host=config.mqtt.host, port=config.mqtt.port)
    if config.mqtt.username is None:  # the embedded broker takes anyone
        for key in ("username", "password_file", "tls", "crm", "tools", "console"):
            mqtt.pop(key, None)
    raw["mqtt"] = mqtt
    raw["database"] = {"url": config.database.url}
    raw["rules_dir"] = str(config.rules_dir.absolute())
    if config.locate.radio_map is not None:  # the copy is in another folder: name it absolutely
        raw["locate"] = dict(raw.get("locate") or {}, radio_map=str(config.locate.radio_map))
    console = dict(raw.get("console") or {}, listen=listen)
    console.update(users_file=str(folder / "users"), secret_file=str(folder / "session.key"))
    console["audit_log"] = str(folder / "audit.log")
    if config.console.floor_plan is not None:
        plan = config.console.floor_plan
        console["floor_plan"] = {
            "image": str(plan.image.absolute()),
            "origin": list(plan.origin),
            "metres_per_pixel": plan.metres_per_pixel,
        }
    raw["console"] = console
    return dict(raw)


def _end(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


async def _with_broker(config: Config, stack: AsyncExitStack) -> Config:
    m = config.mqtt
    secret_missing = m.password_file is not None and not m.password_file.is_file()
    if not secret_missing and broker_answers(m.host, m.port):
        return config
    from gateway.sim.devbroker import DevBroker

    broker = await stack.enter_async_context(DevBroker("127.0.0.1", 0))
    why = (
        f"the password file {m.password_file} is missing"
        if secret_missing
        else f"no broker answers at {m.host}:{m.port}"
    )
    print(f"({why}: using an embedded broker on port {broker.port})")
    mqtt = dataclasses.replace(
        m, host="127.0.0.1", port=broker.port, username=None, password_file=None, tls=None
    )
    return dataclasses.replace(config, mqtt=mqtt)


async def _run(
    config: Config,
    args: argparse.Namespace,
    sim: StoreSimulator,
    customers: list[Customer],
    store: Store,
    start: float,
) -> int:
    adverts = sim.adverts()
    if starts_now(args):  # "now" is when the store opens, not when its setup began
        shift = time.time() - start
        start += shift
        adverts = (dataclasses.replace(adv, at=adv.at + shift) for adv in adverts)
    clock = AcceleratedClock(start, args.speed)
    source = SimulatorSource(adverts, clock)
    topics = Topics(config.mqtt.topic_prefix, config.store.id)
    phone = Phone(
        config.mqtt.host,
        config.mqtt.port,
        topics,
        {c.token: f"{c.first_name or ''} ({c.id})".strip() for c in customers},
    )
    link = await connect_link(config, client_suffix="demo")
    gateway = await Gateway.start(config, store=store, link=link, clock=clock, sources=[source])
    stop = asyncio.Event()
    runner = asyncio.create_task(gateway.run(stop), name="gateway")
    try:
        await _watch(config, args, gateway, source, clock)
        stop.set()
        await runner
    finally:
        await link.disconnect()
        await asyncio.sleep(0.3)
        phone.close()
        store.close()
    _summary(gateway, store_url=config.database.url, phone=phone)
    return 0


async def _watch(
    config: Config,
    args: argparse.Namespace,
    gateway: Gateway,
    source: SimulatorSource,
    clock: Clock,
) -> None:
    last = 0.0
    while not source.done.is_set():
        await asyncio.sleep(0.25)
        if not args.quiet and time.monotonic() - last >= 3.0:
            last = time.monotonic()
            print(live_view(config, gateway, clock), flush=True)
    await asyncio.sleep(1.5)  # the last adverts through the pipeline, the outbox drained


def _summary(gateway: Gateway, *, store_url: str, phone: Phone) -> None:
    store = Store(store_url)
    try:
        offers = store.offers()
    finally:
        store.close()
    per_rule: Counter[str] = Counter()
    holdout: Counter[str] = Counter()
    reached: dict[str, set[str]] = {}
    for o in offers:
        (holdout if o.holdout else per_rule)[o.rule] += 1
        reached.setdefault(o.rule, set()).add(o.customer)
    print("\nSummary per rule (offers sent / holdout / customers reached):")
    for rule in sorted(set(per_rule) | set(holdout)):
        print(f"  {rule:<24} {per_rule[rule]:>4} / {holdout[rule]:>3} / {len(reached[rule]):>3}")
    print(
        f"The phone received {len(phone.received)} offer(s); "
        f"{gateway.state.counters['inputs']} inputs processed.",
        file=sys.stdout,
        flush=True,
    )
