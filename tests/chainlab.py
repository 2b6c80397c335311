"""A chain of stores on one machine, for the end-to-end test and bench/bench_chain.py.

Each store: its SQLite database (journal on), its own Mosquitto bridged — through a TCP proxy
that plays the WAN and can be cut — to a central Mosquitto (the cluster's stand-in: the same
protocol), and its sender as a process (`tests.chainsender`) that can be killed.  The
collectors are `rayon central` processes on the real PostgreSQL.  The bridge sections are
the ones `rayon bridge render` writes (without TLS: everything is on 127.0.0.1).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import create_engine, text

from gateway.central.bridge import render_bridge
from gateway.config.load import load_config
from gateway.store.repo import Store
from tests.broker import Mosquitto, find_mosquitto
from tests.chain import zone_events
from tests.tcpproxy import TcpProxy

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Site:
    """One store of the lab."""

    id: str
    workdir: Path
    broker: Mosquitto
    proxy: TcpProxy
    store: Store
    produced: int = 0
    t0: float = field(default_factory=lambda: float(int(time.time())) - 86400.0)
    sender: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"sqlite:///{self.workdir / 'rayon.db'}"

    def produce(
        self, n: int, chunk: int = 100, pause: float = 0.0, customer: str | None = None
    ) -> None:
        """Write `n` more zone events (distinct times), `chunk` per transaction."""
        while n > 0:
            k = min(chunk, n)
            start = self.t0 + self.produced  # one second apart: every event is distinct
            device = f"ibeacon:{self.id}:{customer or 'anonymous'}"
            self.store.record_events(zone_events(k, start, device, customer))
            self.produced += k
            n -= k
            if pause:
                time.sleep(pause)

    def last_seq(self) -> int:
        """The last number the journal handed out (trimmed rows included)."""
        with self.store.reading() as session:
            found = (
                session.connection()
                .execute(text("SELECT seq FROM sqlite_sequence WHERE name = 'uplink'"))
                .scalar()
            )
        return int(found or 0)

    def events(self) -> list[tuple[float, str, str]]:
        """(at, kind, device) of every zone event in the store's database."""
        return sorted((e.at, e.kind.value, e.device) for e in self.store.events())


@dataclass
class ChainLab:
    """`stores` bridged to one centre, `collectors` collecting into `pg_url`."""

    workdir: Path
    pg_url: str
    stores: Sequence[str] = ("paris-11", "lyon-2")
    collectors: int = 2
    batch: int = 500
    in_flight: int = 8
    resend_after: float = 30.0
    backfill_after: float = 1.0
    sites: dict[str, Site] = field(default_factory=dict)
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self) -> ChainLab:
        binary = find_mosquitto()
        if binary is None:
            raise RuntimeError("mosquitto is not installed")
        self.central = Mosquitto(binary, self.workdir / "central")
        self.central.start()
        for i in range(self.collectors):
            self.start_collector(i)
        for store in self.stores:
            self._add_site(binary, store)
        for site in self.sites.values():
            self.start_sender(site)
        return self

    def _add_site(self, binary: Path, store: str) -> None:
        workdir = self.workdir / store
        workdir.mkdir(parents=True)
        proxy = TcpProxy(self.central.port)
        config = workdir / "config.yaml"
        config.write_text(f"store: {{id: {store}, name: {store}, timezone: UTC}}\n")
        section = render_bridge(
            load_config(config), address=f"127.0.0.1:{proxy.port}", plain=True, restart="1 2"
        )
        lines = [line for line in section.splitlines() if line and not line.startswith("#")]
        broker = Mosquitto(binary, workdir / "mosquitto", extra_config=lines)
        broker.start()
        db = Store(f"sqlite:///{workdir / 'rayon.db'}", journal=True)
        self.sites[store] = Site(store, workdir, broker, proxy, db)

    # --- processes ----------------------------------------------------------------------

    def _spawn(self, name: str, argv: list[str]) -> subprocess.Popen[bytes]:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        with (self.workdir / f"{name}.log").open("ab") as log:  # the child keeps its own copy
            proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
        self.procs[name] = proc
        return proc

    def start_collector(self, i: int) -> None:
        argv = [sys.executable, "-m", "gateway", "central", "--db", self.pg_url]
        argv += ["--port", str(self.central.port), "--client-id", f"rayon-central-{i}"]
        argv += ["--backfill-after", str(self.backfill_after), "-v"]
        self._spawn(f"collector-{i}", argv)
        log = self.workdir / f"collector-{i}.log"
        self.wait(
            lambda: "central: collecting" in log.read_text(errors="replace"),
            60,
            f"collector {i} subscribed",
        )

    def pause_collector(self, i: int) -> None:
        """SIGSTOP: the collector hangs, holding what the broker hands it."""
        self.procs[f"collector-{i}"].send_signal(signal.SIGSTOP)

    def kill_collector(self, i: int) -> None:
        proc = self.procs[f"collector-{i}"]
        proc.kill()
        proc.wait(10)

    def start_sender(self, site: Site) -> None:
        argv = [sys.executable, "-m", "tests.chainsender", "--db", site.url]
        argv += ["--port", str(site.broker.port), "--store", site.id, "--batch", str(self.batch)]
        argv += ["--in-flight", str(self.in_flight), "--resend-after", str(self.resend_after)]
        site.sender = self._spawn(f"sender-{site.id}", argv)

    def kill_sender(self, site: Site) -> None:
        assert site.sender is not None
        site.sender.kill()
        site.sender.wait(10)

    # --- the centre ---------------------------------------------------------------------

    def query(self, sql: str, **params: object) -> list[tuple[object, ...]]:
        engine = create_engine(self.pg_url)
        try:
            with engine.connect() as conn:
                return [tuple(r) for r in conn.execute(text(sql), params)]
        except Exception:  # the collectors may not have created the tables yet
            return []
        finally:
            engine.dispose()

    def marks(self) -> dict[str, int]:
        return {str(s): int(str(h)) for s, h in self.query("SELECT store, hwm FROM chain_marks")}

    def backfills(self) -> int:
        rows = self.query("SELECT coalesce(sum(backfills), 0) FROM chain_marks")
        return int(str(rows[0][0])) if rows else 0

    def central_events(self, store: str) -> list[tuple[float, str, str]]:
        rows = self.query(
            "SELECT (body->>'at')::float8, body->>'kind', device FROM chain_records "
            "WHERE store = :s AND kind = 'event'",
            s=store,
        )
        return sorted((float(str(a)), str(k), str(d)) for a, k, d in rows)

    def caught_up(self, store: str) -> bool:
        return self.marks().get(store, -1) >= self.sites[store].last_seq()

    def wait(self, check: Callable[[], bool], timeout: float, what: str) -> float:
        """Seconds until `check()`, or TimeoutError naming `what` (and the logs to read)."""
        start = time.monotonic()
        while not check():
            if time.monotonic() - start > timeout:
                raise TimeoutError(f"{what} not within {timeout} s; logs in {self.workdir}")
            time.sleep(0.05)
        return time.monotonic() - start

    def close(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGCONT)
                proc.kill()
                proc.wait(10)
        for site in self.sites.values():
            site.proxy.close()
            site.broker.kill()
            site.store.close()
        self.central.kill()
