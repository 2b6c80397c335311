"""The pure pipeline: inputs in, fixes, zone events and offers out (docs/design.md §2).

sources ─▶ decode ─▶ identity ─▶ locate ─▶ zones ─▶ rules

No IO here: the caller (replay, the daemon, the demo) persists what comes out and publishes it.
Time comes only from the inputs.

One track per customer: the locator and the zone tracker follow a *track key*, not a radio
device.  A customer's observations — mode A (their phone's or tag's iBeacon heard by the
scanners) and mode B (their phone, `phone:<token>`, reporting the store beacons) — all feed
the track of `track_key(customer)`: their first CRM device, or `phone:<token>` when they have
none.  So the links of both modes (scanner and beacon anchors have distinct ids) fuse in one
locator track, and a customer is in one place, with one visit and one `enter` per zone.
Fixes and events carry the key as their `device` (a canonical device id of the customer, so
`--events-out`, the stored rows and the KPIs resolve it to them); a device bound to no
customer keeps a track of its own.  GPS geofences stay on `phone:<token>`, the only GPS source.
"""

from __future__ import annotations

import logging
import math
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from gateway.clock import MAX_AHEAD_S, out_of_window, window_problem
from gateway.config.model import AnchorKind, Config
from gateway.decode.inbound import (
    parse_espresense,
    parse_owntracks_location,
    parse_owntracks_transition,
    parse_scanner_adv,
    parse_sightings,
)
from gateway.decode.jsonvalues import InboundError, Problem, decode, guarded
from gateway.decode.privacy import PrivacyFilter
from gateway.errors import InvalidInput
from gateway.events import Advertisement, Fix, MqttInput, Observation, Offer, TraceItem, ZoneEvent
from gateway.identity.customers import customer_from_obj
from gateway.identity.model import Customer, CustomerRegistry
from gateway.livestate import StateDelta
from gateway.locate.locator import Locator
from gateway.locate.radiomap import RadioMap
from gateway.rules.codepools import CodePools
from gateway.rules.engine import RuleEngine
from gateway.rules.model import RuleSet
from gateway.throttle import Throttle
from gateway.topics import INBOUND_CLASS, OTHER_CLASS, TopicKind, Topics
from gateway.zones.geofences import GeofenceTracker
from gateway.zones.tracker import ZoneTracker

log = logging.getLogger(__name__)

read_json = guarded(decode)  # size limit, then JSON; an InboundError instead of raising

PRUNE_EVERY_S = 60.0  # how often `tick` evicts idle device state (event time)
LOCATOR_IDLE_S = 60.0  # RSSI links and positions of a device not heard for this long go
GEOFENCE_IDLE_S = 12 * 3600.0  # a phone silent this long is forgotten by the geofences


@dataclass(slots=True)
class Output:
    """What one input made the pipeline decide."""

    fixes: list[Fix] = field(default_factory=list)
    events: list[ZoneEvent] = field(default_factory=list)
    offers: list[Offer] = field(default_factory=list)
    upserted: list[Customer] = field(default_factory=list)
    erased: list[str] = field(default_factory=list)

    def __init__(
        self,
        fixes: list[Fix] | None = None,
        events: list[ZoneEvent] | None = None,
        offers: list[Offer] | None = None,
        upserted: list[Customer] | None = None,
        erased: list[str] | None = None,
    ) -> None:
        """The dataclass's own __init__, written out: most adverts make an empty Output, and
        in the mypyc build (rayon_tooling/benchmarks/compiled.py) only a written __init__
        is compiled, the generated one runs interpreted and costs more than in pure Python."""
        self.fixes = [] if fixes is None else fixes
        self.events = [] if events is None else events
        self.offers = [] if offers is None else offers
        self.upserted = [] if upserted is None else upserted
        self.erased = [] if erased is None else erased

    def extend(self, other: Output) -> None:
        """Add what came next; its erasures drop what was decided before about the erased
        customers (`forget`)."""
        if other.erased:
            self.forget(other.erased)
        self.fixes.extend(other.fixes)
        self.events.extend(other.events)
        self.offers.extend(other.offers)
        self.upserted.extend(other.upserted)
        self.erased.extend(other.erased)

    def forget(self, customer_ids: Iterable[str]) -> None:
        """Drop the events, offers and CRM updates of customers erased after them: `persist`
        erases first, so written with the erasure they would outlive it."""
        gone = set(customer_ids)
        if self.upserted:
            self.upserted = [c for c in self.upserted if c.id not in gone]
        if self.events:
            self.events = [e for e in self.events if e.customer not in gone]
        if self.offers:
            self.offers = [o for o in self.offers if o.customer not in gone]

    def __bool__(self) -> bool:
        return bool(self.fixes or self.events or self.offers or self.upserted or self.erased)


def radio_map_of(config: Config) -> RadioMap | None:
    """The map `locate.radio_map` names, read once (when the pipeline is built); a bad file is
    InvalidInput naming the config, the key and the map's own line and column."""
    path = config.locate.radio_map
    if path is None:
        return None
    try:
        return RadioMap.load(path)
    except InvalidInput as exc:
        raise InvalidInput(f"{config.path}: locate.radio_map: {exc}") from None


class Pipeline:
    """decode → identity → locate → zones → rules for one store, one input at a time."""

    def __init__(
        self,
        config: Config,
        rules: RuleSet,
        customers: CustomerRegistry,
        engine: RuleEngine | None = None,
        pools: CodePools | None = None,
    ) -> None:
        self.config = config
        self.customers = customers
        self.counters: Counter[str] = Counter()
        self.anchor_adverts: dict[str, int] = {}  # adverts heard per anchor (all, ours or not)
        self.anchor_last: dict[str, float] = {}  # when each anchor last heard one
        self._filter = PrivacyFilter(
            config.identity.proximity_uuids, config.identity.eddystone_namespaces
        )
        self._locator = Locator.configured(
            config.anchors,
            config.locate,
            config.walls,
            radio_map=radio_map_of(config),
            zones=config.zones,
        )
        self.engine = engine if engine is not None else RuleEngine(rules, config, pools=pools)
        self.zones = ZoneTracker(
            config.zones,
            config.visits,
            self.engine.dwell_thresholds(),
            enter_probability=config.locate.enter_probability,
            exit_probability=config.locate.exit_probability,
        )
        self._topics = Topics(config.mqtt.topic_prefix, config.store.id)
        self._beacon_anchor = {
            a.beacon: a.id for a in config.anchors if a.kind is AnchorKind.BEACON and a.beacon
        }
        self._scanners = {a.id for a in config.anchors if a.kind is AnchorKind.SCANNER}
        self.geofences = GeofenceTracker(config.geofences)
        self._pruned_at = -math.inf
        self.log_throttle = Throttle()
        # devices with radio state, least recently heard first: beyond the cap, the first goes
        self._recent: OrderedDict[str, None] = OrderedDict()
        self.max_devices = config.limits.tracked_devices
        # The rolling recording (gateway/store/recording.py): told each input the pipeline
        # keeps of a customer with in-store location consent — their adverts past the privacy
        # filter and their phone's sightings, nothing else; None records nothing.
        self.keep: Callable[[Customer, TraceItem], None] | None = None
        self._handlers: dict[TopicKind, Callable[[MqttInput, str], Output]] = {
            TopicKind.CRM_CUSTOMER: self._crm,
            TopicKind.PHONE_SIGHTINGS: self._sightings,
            TopicKind.PHONE_LOCATION: self._location,
            TopicKind.PHONE_TRANSITION: self._transition,
            TopicKind.SCANNER_ADV: self._scanner_adv,
            TopicKind.ESPRESENSE: self._espresense,
        }

    @property
    def privacy_filter(self) -> PrivacyFilter:
        """The first stage: which beacons are the store's."""
        return self._filter

    def snapshot(self) -> dict[str, Any]:
        """The live state a restart must not lose: zone and visit timers, rules' visits."""
        return {"zones": self.zones.snapshot(), "rules": self.engine.snapshot()}

    def snapshot_changes(self) -> StateDelta:
        """What of `snapshot()` changed since the last call, as the store saves it: every
        device and visit on the first call and after `restore` or `resave`, then only the
        devices and customers seen or timed out since (`livestate`)."""
        complete = self.zones.all_changed or self.engine.all_changed
        zones, devices = self.zones.changes(complete)
        rules, visits = self.engine.changes(complete)
        entries = {("zones.devices", d): v for d, v in devices.items()}
        entries.update((("rules.visits", c), v) for c, v in visits.items())
        return StateDelta({"zones": zones, "rules": rules}, entries, complete)

    def resave(self) -> None:
        """The changes last taken were not saved (the write failed): take them all again."""
        self.zones.resave()
        self.engine.resave()

    def restore(self, state: Mapping[str, Any] | None, offered: Iterable[Offer]) -> None:
        """Continue after a restart: the saved live state, and every offer already decided
        (so caps, cooldowns and budgets count them).  InvalidInput on a corrupt state."""
        for offer in offered:
            self.engine.ledger.record(offer)
        if state is not None:
            self.zones.restore(state["zones"])
            self.engine.restore(state["rules"])

    def drop_future(self, now: float) -> dict[str, int]:
        """After `restore`: repair a live state dated ahead of the gateway's clock `now` by
        more than MAX_AHEAD_S (saved before the live window existed), so that no restored
        clock starts ahead.  What was repaired, by kind (empty when nothing was)."""
        return self.zones.drop_future(now, MAX_AHEAD_S) | self.engine.drop_future(now, MAX_AHEAD_S)

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
        anchor = adv.anchor
        self.anchor_adverts[anchor] = self.anchor_adverts.get(anchor, 0) + 1
        self.anchor_last[anchor] = adv.at
        hit = self._filter.identify(adv)  # the Observation's fields, without building one
        if hit is None:
            self.counters["adverts_not_ours"] += 1
            return Output()
        return self._observe(adv.at, hit[0], anchor, adv.rssi, adv)

    def on_observation(self, obs: Observation) -> Output:
        return self._observe(obs.at, obs.device, obs.anchor, obs.rssi)

    def _observe(
        self, at: float, device: str, anchor: str, rssi: float, item: TraceItem | None = None
    ) -> Output:
        """One link measurement (an Observation's fields) → locate → zones → rules; `item`,
        the input it came in, goes to the recording when the device is a consenting
        customer's."""
        track = self._track_of(device, item)
        if track is None:
            return Output()
        fix = self._locator.observe_link(at, track, anchor, rssi)
        return self._fixed([fix]) if fix is not None else Output()

    def _observe_scan(
        self, at: float, device: str, links: list[tuple[str, float]], item: MqttInput
    ) -> Output:
        """One phone scan (mode B): all its links, then one fix → zones → rules."""
        track = self._track_of(device, item)
        if track is None:
            return Output()
        fix = self._locator.observe_scan(at, track, links)
        return self._fixed([fix]) if fix is not None else Output()

    def _track_of(self, device: str, item: TraceItem | None = None) -> str | None:
        """The track key `device` feeds (None without in-store location consent); marks it
        recently heard, shedding the least recently heard track beyond the cap.  The input
        `item` of a consenting customer goes to the recording (`keep`)."""
        customer = self.customers.by_device(device)
        if customer is not None:
            if not customer.consent.instore_location:
                self.counters["observations_without_consent"] += 1
                return None
            if item is not None and self.keep is not None:
                self.keep(customer, item)
            device = track_key(customer)
        try:
            self._recent.move_to_end(device)
        except KeyError:
            self._recent[device] = None
            if len(self._recent) > self.max_devices:
                self._shed()
        return device

    def _fixed(self, fixes: list[Fix]) -> Output:
        """Fixes → zones → rules."""
        out = Output(fixes=fixes)
        for fix in fixes:
            self._decide(self.zones.update(fix), out)
        if self.zones.counters:  # the rivals' refusals and takeovers, for metrics and status
            self.counters.update(self.zones.counters)
            self.zones.counters.clear()
        return out

    def tick(self, now: float) -> Output:
        """Let time pass with no input: exits, dwell thresholds and visit ends come from here.

        Every `PRUNE_EVERY_S` of event time it also forgets the state of devices long gone
        (their RSSI links, GPS geofence stays, rules' visit contexts), so memory follows the
        devices in the store, not every device ever seen; the zone tracker forgets its own
        (`visits.gap` after a visit ends)."""
        settled = self._locator.settle(now)  # bursts that ended in silence
        out = self._fixed(settled) if settled else Output()
        self._decide(self.zones.tick(now), out)
        self._decide(self.geofences.tick(now), out)
        out.offers.extend(self.engine.on_schedule(now, self.customers.values()))  # win-back
        if now - self._pruned_at >= PRUNE_EVERY_S:
            self._prune(now)
        return out

    def _shed(self) -> None:
        """Forget the least recently heard device, silently: the cap on tracked devices
        (`limits.tracked_devices`) keeps memory bounded when one sender invents thousands
        of device ids.  Counted in `devices_shed`."""
        device, _ = self._recent.popitem(last=False)
        self._locator.forget(device)
        self.zones.forget(device)
        self.counters["devices_shed"] += 1

    def tracked_devices(self) -> int:
        """Devices with radio state now (the figure `limits.tracked_devices` caps)."""
        return len(self._recent)

    def _prune(self, now: float) -> None:
        """Evict idle devices.  A locator track idle for `LOCATOR_IDLE_S` would restart its
        links anyway (each is stale after a few seconds) and its speed gate allows any jump
        by then; a geofence stay not reported for `GEOFENCE_IDLE_S` is forgotten silently."""
        self._pruned_at = now
        self.counters["devices_evicted"] += self._locator.prune(now, LOCATOR_IDLE_S)
        self.counters["geofence_devices_evicted"] += self.geofences.prune(now, GEOFENCE_IDLE_S)
        self.engine.prune(now)
        gone = [d for d in self._recent if d not in self._locator and d not in self.zones]
        for device in gone:
            del self._recent[device]

    def state_sizes(self) -> dict[str, int]:
        """How many devices or customers each in-memory structure holds (soak, metrics)."""
        return {
            "locator_devices": self._locator.devices(),
            "zone_devices": self.zones.tracked(),
            "open_visits": self.zones.devices(),
            "geofence_devices": self.geofences.tracked(),
            "rule_visits": self.engine.tracked(),
        }

    def on_mqtt(self, msg: MqttInput) -> Output:
        """An inbound MQTT message (live or from a trace); a bad one is counted, never fatal."""
        parsed = self._topics.parse(msg.topic)
        handler = self._handlers.get(parsed[0]) if parsed is not None else None
        if parsed is None or handler is None:
            return self._reject(msg.topic, InboundError("not a topic this gateway listens to"))
        try:
            return handler(msg, parsed[1])
        except (InvalidInput, ValueError) as exc:
            return self._reject(msg.topic, InboundError(str(exc)))

    def _reject(self, topic: str, error: InboundError) -> Output:
        """Count a refused message per topic class; log why, a few lines a minute at most."""
        parsed = self._topics.parse(topic)
        cls = INBOUND_CLASS.get(parsed[0], OTHER_CLASS) if parsed is not None else OTHER_CLASS
        if error.problem is Problem.NOT_OURS:
            self.counters["inbound_not_ours"] += 1
            self.counters[f"inbound_not_ours:{cls}"] += 1
            return Output()
        self.counters["inbound_rejected"] += 1
        self.counters[f"inbound_rejected:{cls}"] += 1
        if not self.log_throttle.warn(log, cls, "rejected message on %s: %s", topic, error.reason):
            self.counters["log_suppressed"] += 1
        return Output()

    # -- decisions ------------------------------------------------------------------------

    def _decide(self, events: Iterable[ZoneEvent], out: Output) -> None:
        for event in events:
            customer = self.customers.by_device(event.device)
            if customer is not None:
                self.counters["rule_evaluations"] += 1
                event = ZoneEvent(
                    event.at,
                    event.kind,
                    event.zone,
                    event.device,
                    customer.id,
                    event.dwell_s,
                    event.reason,
                )  # dataclasses.replace, without its per-call introspection
                out.offers.extend(self.engine.on_event(event, customer))
            out.events.append(event)

    def _crm(self, msg: MqttInput, customer_id: str) -> Output:
        payload = msg.payload
        if payload is None or payload == "" or payload == b"":
            self.erase(customer_id)
            return Output(erased=[customer_id])
        body = read_json(payload)
        if isinstance(body, InboundError):
            return self._reject(msg.topic, body)
        customer = customer_from_obj(body, "the CRM record")  # the log line names the topic
        if isinstance(customer, InboundError):
            return self._reject(msg.topic, customer)
        if customer.id != customer_id:
            why = f"payload id {customer.id!r} differs from the topic's {customer_id!r}"
            return self._reject(msg.topic, InboundError(why))
        old = self.customers.get(customer.id)
        if old is not None and _tracks_invalidated(old, customer):
            self._forget_devices(old)
        self.customers.upsert(customer)
        self._drop_stray_tracks(customer)
        return Output(upserted=[customer])

    def erase(self, customer_id: str) -> None:
        """Forget a customer, as an empty CRM record does, for `rayon forget` (whose id may
        predate the id rule, so that no topic can name it)."""
        old = self.customers.remove(customer_id)
        if old is not None:
            self._forget_devices(old)

    def _forget_devices(self, customer: Customer) -> None:
        """Nothing about these devices stays in memory (erasure, consent withdrawn): their
        fused track (its key is one of them) and any track a device had of its own."""
        for device in customer.device_ids:
            self.zones.forget(device)
            self._locator.forget(device)
            self.geofences.forget(device)
            self._recent.pop(device, None)
        self.engine.forget(customer.id)

    def _drop_stray_tracks(self, customer: Customer) -> None:
        """A device tracked on its own before it was bound to `customer` would run a second
        track of them next to the fused one (two visits, two places): it ends silently.
        The key's own track carries on as the customer's."""
        key = track_key(customer)
        for device in customer.device_ids:
            if device != key:
                self.zones.forget(device)
                self._locator.forget(device)
                self._recent.pop(device, None)

    # -- phones and scanner nodes -----------------------------------------------------------

    def _outside(self, msg: MqttInput, at: float, kind: str) -> bool:
        """Whether the sender's time `at` lies outside the live window around the receive
        time `msg.at` (gateway/clock.py): then it is counted (`inbound_too_new:<kind>`,
        `inbound_too_old:<kind>`) and must be refused, so that no device can move the clocks
        of the zones and geofences more than MAX_AHEAD_S ahead of the gateway's."""
        verdict = out_of_window(at, msg.at)
        if verdict is not None:
            self.counters[f"inbound_{verdict}:{kind}"] += 1
        return verdict is not None

    def _refuse_late(self, msg: MqttInput, at: float, refused: int = 1, of: int = 1) -> Output:
        """Log a message refused (or `refused` adverts of `of`) for its time, as rejections."""
        what = f"{refused} of {of} adverts refused, the first because " if of > 1 else ""
        problem = window_problem(at, msg.at)
        if not self.log_throttle.warn(
            log, "window", "rejected message on %s: %s%s", msg.topic, what, problem
        ):
            self.counters["log_suppressed"] += 1
        return Output()

    def _sightings(self, msg: MqttInput, token: str) -> Output:
        got = parse_sightings(msg.payload, token, msg.at, self._beacon_anchor)
        if isinstance(got, InboundError):
            return self._reject(msg.topic, got)
        at = got.observations[0].at if got.observations else msg.at  # one time per report
        if self._outside(msg, at, "sightings"):
            return self._refuse_late(msg, at)
        self.counters["sightings_unknown_beacon"] += got.unknown_beacons
        if not got.observations:
            return Output()
        links = [(obs.anchor, obs.rssi) for obs in got.observations]  # one device, one time
        return self._observe_scan(at, got.observations[0].device, links, msg)

    def _scanner_adv(self, msg: MqttInput, node: str) -> Output:
        if node not in self._scanners:
            return self._reject(
                msg.topic,
                InboundError(
                    f"node {node!r} is not a scanner anchor of the config: add it under `anchors` "
                    "with kind: scanner, or fix the node's id"
                ),
            )
        got = parse_scanner_adv(msg.payload, node, msg.at)
        if isinstance(got, InboundError):
            return self._reject(msg.topic, got)
        kept = [adv for adv in got if not self._outside(msg, adv.at, "scanner")]
        if len(kept) < len(got):  # a node's batch: each advert carries its own time
            first = next(adv.at for adv in got if out_of_window(adv.at, msg.at) is not None)
            self._refuse_late(msg, first, len(got) - len(kept), len(got))
        out = Output()
        for adv in kept:
            out.extend(self.on_advertisement(adv))
        return out

    def _espresense(self, msg: MqttInput, room: str) -> Output:
        got = parse_espresense(msg.topic.split("/")[2], room, msg.payload, msg.at)
        if isinstance(got, InboundError):
            return self._reject(msg.topic, got)
        if room not in self._scanners:
            return self._reject(
                msg.topic,
                InboundError(
                    f"room {room!r} is not a scanner anchor of the config: name each "
                    "ESPresense room after its anchor id"
                ),
            )
        if not self._filter.allows(got.device):
            self.counters["adverts_not_ours"] += 1
            return Output()
        return self.on_observation(got)

    def _location(self, msg: MqttInput, token: str) -> Output:
        got = parse_owntracks_location(msg.payload, msg.at)
        if isinstance(got, InboundError):
            return self._reject(msg.topic, got)
        if self._outside(msg, got.at, "location"):
            return self._refuse_late(msg, got.at)
        device = f"phone:{token}"
        out = Output()
        if self._may_locate(device):
            self._decide(self.geofences.location(got.at, device, got.lat, got.lon, got.acc_m), out)
        return out

    def _transition(self, msg: MqttInput, token: str) -> Output:
        got = parse_owntracks_transition(msg.payload, msg.at)
        if isinstance(got, InboundError):
            return self._reject(msg.topic, got)
        if self._outside(msg, got.at, "transition"):
            return self._refuse_late(msg, got.at)
        device = f"phone:{token}"
        out = Output()
        if self._may_locate(device):
            events = self.geofences.transition(
                got.at, device, got.names, got.enter, lat=got.lat, lon=got.lon, acc_m=got.acc_m
            )
            self._decide(events, out)
        return out

    def _may_locate(self, device: str) -> bool:
        """GPS is kept only for a known customer who consented to in-store location."""
        customer = self.customers.by_device(device)
        if customer is None or not customer.consent.instore_location:
            self.counters["locations_without_consent"] += 1
            return False
        return True


def track_key(customer: Customer) -> str:
    """The one track a customer's observations of both sensing modes feed: their first
    device, or their phone (`phone:<token>`) when the CRM lists none."""
    return customer.devices[0] if customer.devices else customer.phone


def _tracks_invalidated(old: Customer, new: Customer) -> bool:
    """Whether a CRM update must end what is tracked of the customer: other devices or
    token, or in-store location consent withdrawn.  The CRM re-sends every retained
    customer at each (re)connection: those unchanged updates keep visits and caps going."""
    return old.devices != new.devices or old.token != new.token or not new.consent.instore_location
