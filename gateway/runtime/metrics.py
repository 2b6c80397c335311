"""A Prometheus endpoint (`GET /metrics`, text exposition format 0.0.4) for the store's ops team.

Served by a tiny asyncio HTTP responder: one request per connection, no dependency.  What it
shows is read from the running gateway at scrape time; nothing here keeps state of its own.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field

from gateway.deliver.payloads import inbound_table

log = logging.getLogger(__name__)

_NAME = re.compile(r"[^a-zA-Z0-9_]")


@dataclass(slots=True)
class Sample:
    """One metric family: name, type, help and its labelled values."""

    name: str
    kind: str  # counter | gauge
    help: str
    values: list[tuple[Mapping[str, str], float]] = field(default_factory=list)


def metric_name(text: str) -> str:
    """A Prometheus-safe metric name part ("source_failures:ble:hci0" → "source_failures")."""
    return _NAME.sub("_", text.split(":", 1)[0]).strip("_").lower() or "unnamed"


def render(samples: Iterable[Sample]) -> str:
    out: list[str] = []
    for s in samples:
        out += [f"# HELP rayon_{s.name} {s.help}", f"# TYPE rayon_{s.name} {s.kind}"]
        for labels, value in s.values:
            text = ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(labels.items()))
            out.append(
                f"rayon_{s.name}{{{text}}} {value:g}" if text else f"rayon_{s.name} {value:g}"
            )
    return "\n".join(out) + "\n"


def counters_as_samples(counters: Mapping[str, int]) -> list[Sample]:
    """Gateway counters ("name" or "name:label") as `rayon_<name>_total{detail=…}` families."""
    families: dict[str, Sample] = {}
    for key, value in sorted(counters.items()):
        name = metric_name(key) + "_total"
        family = families.setdefault(name, Sample(name, "counter", f"Count of {key.split(':')[0]}"))
        detail = key.split(":", 1)[1] if ":" in key else ""
        family.values.append(({"detail": detail} if detail else {}, float(value)))
    return list(families.values())


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class MetricsServer:
    """Answers `GET /metrics` with what `collect` returns at that moment."""

    def __init__(self, host: str, port: int, collect: Callable[[], Awaitable[str]]) -> None:
        self.host, self.port = host, port
        self._collect = collect
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("metrics on http://%s:%d/metrics", self.host, self.port)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(reader.readline(), 5)
            while (await asyncio.wait_for(reader.readline(), 5)).strip():
                pass  # headers
            path = request.split()[1].decode("latin-1") if len(request.split()) > 1 else ""
            if request.startswith(b"GET ") and path.split("?")[0] == "/metrics":
                body = await self._body()
                _reply(writer, "200 OK", "text/plain; version=0.0.4; charset=utf-8", body)
            else:
                _reply(writer, "404 Not Found", "text/plain", "only GET /metrics here\n")
            await writer.drain()
        except (TimeoutError, ConnectionError, OSError) as exc:
            log.debug("metrics request failed: %s", exc)
        finally:
            writer.close()

    async def _body(self) -> str:
        return await self._collect()


def _reply(writer: asyncio.StreamWriter, status: str, kind: str, body: str) -> None:
    data = body.encode()
    head = f"HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {len(data)}\r\n"
    writer.write((head + "Connection: close\r\n\r\n").encode() + data)


@dataclass(frozen=True, slots=True)
class GatewayFigures:
    """What a scrape shows, read from the gateway at that moment."""

    now: float
    counters: Mapping[str, int]
    anchor_adverts: Mapping[str, int]
    anchor_last: Mapping[str, float]
    anchors: Iterable[str]
    queue_depth: int
    offers_by_state: Mapping[str, int]
    rules_in_force: int
    devices: Mapping[str, int] = field(default_factory=dict)
    occupancy: Mapping[str, int] = field(default_factory=dict)  # zone → devices in it now
    offers_by: Mapping[tuple[str, str], int] = field(default_factory=dict)  # (rule, state) → n


def store_samples(f: GatewayFigures) -> list[Sample]:
    """What a Grafana board of the store shows: devices in each zone now, and the offers
    decided and their later states by rule (`rayon_offers_total`, which replaces the plain
    `offers` counter's family of the same name)."""
    zones = Sample("zone_occupancy", "gauge", "Devices in each zone now (after hysteresis)")
    zones.values += [({"zone": z}, float(n)) for z, n in sorted(f.occupancy.items())]
    offers = Sample(
        "offers_total",
        "counter",
        "Offers by rule and state: each decision in the state it was recorded in (pending, "
        "holdout, dropped), then each later change (sent, expired, cancelled, delivered)",
    )
    by = sorted(f.offers_by.items())
    offers.values += [({"rule": rule, "state": state}, float(n)) for (rule, state), n in by]
    return [zones, offers]


def gateway_samples(f: GatewayFigures) -> list[Sample]:
    """The metric families of `metrics.listen` (docs/config.md): adverts and silence per anchor,
    queue depth, offers by state, occupancy per zone, offers by rule and state, rules in
    force, and every counter."""
    adverts = Sample("anchor_adverts_total", "counter", "Adverts heard by each anchor")
    age = Sample(
        "anchor_last_advert_age_seconds",
        "gauge",
        "Seconds since each anchor last heard an advert (-1: never since start)",
    )
    for anchor in f.anchors:
        adverts.values.append(({"anchor": anchor}, float(f.anchor_adverts.get(anchor, 0))))
        last = f.anchor_last.get(anchor)
        age.values.append(({"anchor": anchor}, -1.0 if last is None else max(0.0, f.now - last)))
    offers = Sample("offers", "gauge", "Offers in the outbox and log, by state")
    offers.values += [({"state": s}, float(n)) for s, n in sorted(f.offers_by_state.items())]
    flat, table = inbound_table(f.counters)
    flat.pop("offers", None)  # its family name is `rayon_offers_total{rule,state}`'s
    inbound = Sample(
        "inbound_messages_total",
        "counter",
        "Inbound MQTT messages by topic class and outcome (received, rejected, not_ours, "
        "too_old, too_new, dropped)",
    )
    for cls, outcomes in table.items():
        inbound.values += [({"class": cls, "outcome": o}, float(n)) for o, n in outcomes.items()]
    devices = Sample("tracked_devices", "gauge", "Radio devices tracked now, and the cap")
    devices.values += [({"of": k}, float(n)) for k, n in f.devices.items() if k != "shed"]
    return [
        adverts, age, offers, inbound, devices,
        Sample("input_queue_depth", "gauge", "Inputs waiting for the pipeline",
               [({}, float(f.queue_depth))]),
        Sample("rules_in_force", "gauge", "Rules in the set in force", [({}, f.rules_in_force)]),
        *store_samples(f),
        *counters_as_samples(flat),
    ]  # fmt: skip
