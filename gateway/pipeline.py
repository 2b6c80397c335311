"""The pure pipeline: inputs in, fixes, zone events and offers out (DESIGN.md §2).

sources ─▶ decode ─▶ identity ─▶ locate ─▶ zones ─▶ rules

No IO here: the caller (replay, the daemon, the demo) persists what comes out and publishes it.
Time comes only from the inputs.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from gateway.config import AnchorKind, Config
from gateway.customers import customer_from_obj
from gateway.decode import PrivacyFilter
from gateway.deliver.topics import TopicKind, Topics
from gateway.errors import InvalidInput
from gateway.events import Advertisement, Fix, Observation, Offer, ZoneEvent
from gateway.identity import Customer, CustomerRegistry
from gateway.ids import ibeacon_id
from gateway.locate import Locator
from gateway.rules import RuleEngine, RuleSet
from gateway.sources.trace import MqttInput, TraceItem, parse_adv
from gateway.zones import ZoneTracker

log = logging.getLogger(__name__)

MAX_INBOUND_BYTES = 64 * 1024


@dataclass(slots=True)
class Output:
    """What one input made the pipeline decide."""

    fixes: list[Fix] = field(default_factory=list)
    events: list[ZoneEvent] = field(default_factory=list)
    offers: list[Offer] = field(default_factory=list)
    upserted: list[Customer] = field(default_factory=list)
    erased: list[str] = field(default_factory=list)

    def extend(self, other: Output) -> None:
        self.fixes.extend(other.fixes)
        self.events.extend(other.events)
        self.offers.extend(other.offers)
        self.upserted.extend(other.upserted)
        self.erased.extend(other.erased)

    def __bool__(self) -> bool:
        return bool(self.fixes or self.events or self.offers or self.upserted or self.erased)


class Pipeline:
    """decode → identity → locate → zones → rules for one store, one input at a time."""

    def __init__(
        self,
        config: Config,
        rules: RuleSet,
        customers: CustomerRegistry,
        engine: RuleEngine | None = None,
    ) -> None:
        self.config = config
        self.customers = customers
        self.counters: Counter[str] = Counter()
        self._filter = PrivacyFilter(
            config.identity.proximity_uuids, config.identity.eddystone_namespaces
        )
        self._locator = Locator(config.anchors)
        self.engine = engine if engine is not None else RuleEngine(rules, config)
        self.zones = ZoneTracker(config.zones, config.visits, self.engine.dwell_thresholds())
        self._topics = Topics(config.mqtt.topic_prefix, config.store.id)
        self._beacon_anchor = {
            a.beacon: a.id for a in config.anchors if a.kind is AnchorKind.BEACON and a.beacon
        }

    def reload_rules(self, rules: RuleSet) -> None:
        """Swap in a new, already validated rule set; the ledger of past offers carries over."""
        self.engine = self.engine.with_rules(rules)
        self.zones.set_dwell_thresholds(self.engine.dwell_thresholds())

    # -- inputs ---------------------------------------------------------------------------

    def feed(self, item: TraceItem) -> Output:
        if isinstance(item, Advertisement):
            return self.on_advertisement(item)
        return self.on_mqtt(item)

    def on_advertisement(self, adv: Advertisement) -> Output:
        self.counters["adverts"] += 1
        obs = self._filter.observe(adv)
        if obs is None:
            self.counters["adverts_not_ours"] += 1
            return Output()
        return self.on_observation(obs)

    def on_observation(self, obs: Observation) -> Output:
        customer = self.customers.by_device(obs.device)
        if customer is not None and not customer.consent.instore_location:
            self.counters["observations_without_consent"] += 1
            return Output()
        fix = self._locator.observe(obs)
        if fix is None:
            return Output()
        out = Output(fixes=[fix])
        self._decide(self.zones.update(fix), out)
        return out

    def tick(self, now: float) -> Output:
        """Let time pass with no input: exits, dwell thresholds and visit ends come from here."""
        out = Output()
        self._decide(self.zones.tick(now), out)
        return out

    def on_mqtt(self, msg: MqttInput) -> Output:
        """An inbound MQTT message (live or from a trace); a bad one is counted, never fatal."""
        try:
            return self._on_mqtt(msg)
        except (InvalidInput, ValueError, TypeError, KeyError) as exc:
            self.counters["inbound_rejected"] += 1
            log.warning("rejected message on %s: %s", msg.topic, exc)
            return Output()

    # -- decisions ------------------------------------------------------------------------

    def _decide(self, events: Iterable[ZoneEvent], out: Output) -> None:
        for event in events:
            customer = self.customers.by_device(event.device)
            if customer is not None:
                event = dataclasses.replace(event, customer=customer.id)
                out.offers.extend(self.engine.on_event(event, customer))
            out.events.append(event)

    def _on_mqtt(self, msg: MqttInput) -> Output:
        parsed = self._topics.parse(msg.topic)
        if parsed is None:
            raise ValueError("not a topic this gateway listens to")
        kind, arg = parsed
        if kind is TopicKind.CRM_CUSTOMER:
            return self._crm(arg, msg.payload)
        if kind is TopicKind.PHONE_SIGHTINGS:
            return self._sightings(msg.at, arg, msg.payload)
        if kind is TopicKind.SCANNER_ADV:
            return self._scanner_adv(msg.at, arg, msg.payload)
        raise ValueError(f"topic kind {kind} is not handled by the pipeline")

    def _crm(self, customer_id: str, payload: Any) -> Output:
        if payload is None or payload == "" or payload == b"":
            old = self.customers.remove(customer_id)
            if old is not None:
                self._forget_devices(old)
            return Output(erased=[customer_id])
        customer = customer_from_obj(_json(payload), f"crm/customers/{customer_id}")
        if customer.id != customer_id:
            raise InvalidInput(
                f"payload id {customer.id!r} differs from the topic's {customer_id!r}"
            )
        old = self.customers.get(customer.id)
        if old is not None:
            self._forget_devices(old)  # devices may have changed; tracks restart cleanly
        self.customers.upsert(customer)
        return Output(upserted=[customer])

    def _forget_devices(self, customer: Customer) -> None:
        """Nothing about an erased customer's devices stays in memory."""
        for device in (*customer.devices, f"phone:{customer.token}"):
            self.zones.forget(device)
            self._locator.forget(device)

    def _sightings(self, at: float, token: str, payload: Any) -> Output:
        body = _json(payload)
        if not isinstance(body, Mapping) or not isinstance(body.get("beacons"), list):
            raise ValueError("sightings need {'at', 'beacons': [{uuid, major, minor, rssi}]}")
        when = float(body.get("at", at))
        out = Output()
        for b in body["beacons"]:
            anchor = self._beacon_anchor.get(
                ibeacon_id(b["uuid"], int(b["major"]), int(b["minor"]))
            )
            if anchor is None:
                self.counters["sightings_unknown_beacon"] += 1
                continue
            obs = Observation(when, f"phone:{token}", anchor, float(b["rssi"]), b.get("tx_power"))
            out.extend(self.on_observation(obs))
        return out

    def _scanner_adv(self, at: float, node: str, payload: Any) -> Output:
        body = _json(payload)
        out = Output()
        for raw in body if isinstance(body, list) else [body]:
            if not isinstance(raw, Mapping):
                raise ValueError("an advert must be a JSON object")
            when = float(raw.get("at", at))
            out.extend(self.on_advertisement(parse_adv(when, {**raw, "anchor": node})))
        return out


def _json(payload: Any) -> Any:
    """Payloads arrive as bytes (live) or already parsed (trace files)."""
    if isinstance(payload, bytes | bytearray):
        if len(payload) > MAX_INBOUND_BYTES:
            raise ValueError(f"payload of {len(payload)} bytes exceeds {MAX_INBOUND_BYTES}")
        return json.loads(payload)
    if isinstance(payload, str):
        return json.loads(payload)
    return payload
