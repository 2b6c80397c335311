"""The simulator half of `rayon bench accuracy`: simulate, replay through the real `Pipeline`,
score the zone decisions against the ground truth.

Every shopper is a customer with consent (the demo's profiles and tokens, so mode B sightings
resolve to them) and the rule set is empty: this measures locate and zones, not the rules.
A customer may be seen by several devices (their phone's iBeacon, `phone:<token>`); the
pipeline's state for a shopper is the union of the zones of every track that resolves to them.

Definitions (all on the truth's 1 Hz samples; "leaf zones" are the zones whose polygon contains
no other zone's polygon — aisles, entrance, checkout, not the store outline):

* **stay**: a maximal run of consecutive truth samples of one shopper inside one leaf zone that
  lasts at least the zone's `enter_after` + `MIN_STAY_EXTRA_S` (a visit to the zone, not a walk
  through it).
* **dwell time in the correct zone**: over the samples of every stay from its start +
  `enter_after` on (the delay the operator asked for is not an error), the share where the
  pipeline has the shopper in that zone.  `dwell_exclusive` asks in addition that the pipeline
  holds no other leaf zone at that moment.
* **false enter**: an `enter` event into a zone that the shopper's truth is not in at any
  sample within ±`window_s` of the event; counted per device-hour of truth (first to last sample
  of each shopper).
* **enter latency**: for each stay, the first `enter` into its zone from `window_s` before the
  stay starts to its end, minus the stay's start (so it includes `enter_after`).  A stay with
  none is *missed* (unless the pipeline already had the shopper in the zone when it began).
"""

from __future__ import annotations

import bisect
import contextlib
import dataclasses
import io
import statistics
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gateway.clock import parse_local_time
from gateway.config.model import Config, Zone
from gateway.errors import InvalidInput
from gateway.events import EventKind, ZoneEvent
from gateway.identity.model import Consent, CustomerRegistry
from gateway.offline.replay import replay
from gateway.pipeline import Output, Pipeline
from gateway.rules.model import RuleSet
from gateway.sim.radio import RadioModel
from gateway.sim.simulator import PhoneModel, StoreSimulator, TruthRecord

MIN_STAY_EXTRA_S = 10.0
WINDOW_S = 10.0
START = "2026-03-03T15:00:00"


@dataclass(frozen=True, slots=True)
class ZoneScore:
    """How zone decisions did against a ground truth (module docstring)."""

    dwell_seconds: int  # truth seconds scored
    dwell_correct: float  # share of them in the right zone
    dwell_exclusive: float  # ... and in no other leaf zone
    enters: int
    false_enters: int
    device_hours: float
    stays: int
    stays_missed: int
    latency_median_s: float | None
    latency_p90_s: float | None

    @property
    def false_enters_per_device_hour(self) -> float:
        return self.false_enters / self.device_hours if self.device_hours > 0 else 0.0


@dataclass(frozen=True, slots=True)
class SimulatedScore:
    """One simulated run and its score."""

    shoppers: int
    minutes: float
    seed: int
    score: ZoneScore
    seconds: float  # wall time of simulation + replay + scoring
    label: str = "defaults"  # or "calibration walk": with a radio map walked in that store


def walked(config: Config, seed: int, folder: Path) -> Config:
    """`config` with `locate.radio_map` learned from a simulated calibration walk in the radio
    store of `seed` (the store its shoppers are simulated in): an iPhone carried through every
    zone, its adverts and sightings, as `rayon simulate --calibration-walk --customers` writes
    it, and the map as `rayon calibrate --map-out` learns it (both run here, quietly)."""
    from gateway.cli.main import main  # the bench's own commands, not the daemon's

    if config.path is None:
        raise InvalidInput("the simulator's calibration walk needs the config's file (-c)")
    walk, truth, who, out = (
        folder / n for n in ("walk.jsonl", "truth.jsonl", "who.jsonl", "map.json")
    )
    common = ["-c", str(config.path)]
    quiet = io.StringIO()
    with contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet):
        simulate = ["simulate", "--calibration-walk", "--seed", str(seed), "-o", str(walk)]
        if main([*simulate, "--truth", str(truth), "--customers", str(who), *common]) != 0:
            raise InvalidInput(f"the calibration walk could not be simulated:\n{quiet.getvalue()}")
        learn = ["calibrate", str(walk), "--truth", str(truth), "--customers", str(who)]
        if main([*learn, "--map-out", str(out), *common]) != 0:
            raise InvalidInput(f"the calibration walk's map could not be made:\n{quiet.getvalue()}")
    locate = dataclasses.replace(config.locate, radio_map=out.resolve())
    return dataclasses.replace(config, locate=locate)


def score_simulated_walk(
    config: Config, shoppers: int = 50, minutes: float = 30.0, seed: int = 1
) -> SimulatedScore:
    """`score_simulated` with a radio map walked in that seed's store (`walked`)."""
    with tempfile.TemporaryDirectory(prefix="rayon-walk-") as tmp:
        got = score_simulated(walked(config, seed, Path(tmp)), shoppers, minutes, seed)
    return dataclasses.replace(got, label="calibration walk")


def score_simulated(
    config: Config,
    shoppers: int = 50,
    minutes: float = 30.0,
    seed: int = 1,
    *,
    radio: RadioModel | None = None,
    phones: PhoneModel | None = None,
    window_s: float = WINDOW_S,
) -> SimulatedScore:
    """Simulate `shoppers` for `minutes` (seeded), replay through `Pipeline`, score."""
    started = time.perf_counter()
    start = parse_local_time(START, config.store.timezone)
    sim = StoreSimulator(config, shoppers, minutes, seed, start, radio, phones=phones)
    owner, registry = _customers(sim, seed)
    pipeline = Pipeline(config, RuleSet(rules=()), registry)
    events: list[ZoneEvent] = []

    def keep(out: Output) -> None:
        events.extend(out.events)

    replay(pipeline, sim.items(), keep)

    def shopper_of(e: ZoneEvent) -> str | None:
        customer = registry.get(e.customer) if e.customer else registry.by_device(e.device)
        return owner.get(customer.id) if customer is not None else None

    score = score_events(config.zones, sim.truth(), events, shopper_of, window_s)
    return SimulatedScore(shoppers, minutes, seed, score, time.perf_counter() - started)


def score_events(
    zones: Sequence[Zone],
    truth: Iterable[TruthRecord],
    events: Iterable[ZoneEvent],
    shopper_of: Callable[[ZoneEvent], str | None],
    window_s: float = WINDOW_S,
) -> ZoneScore:
    """Score zone `events` against `truth`; `shopper_of` says which truth device an event is
    about (None: no shopper, ignored)."""
    by_device = _by_device(truth)
    state = _State(zones, events, shopper_of)
    stays = _qualifying(
        (s for d, recs in by_device.items() for s in _stays(d, recs, state.leaves)), state
    )
    dwell_n, dwell_ok, dwell_alone = _dwell(stays, by_device, state)
    latencies, missed = _latencies(stays, state, window_s)
    times = {d: [r.at for r in recs] for d, recs in by_device.items()}
    false = sum(
        not _truth_in(by_device.get(d, []), times.get(d, []), z, at, window_s)
        for d, z, at in state.enters
    )
    return ZoneScore(
        dwell_seconds=dwell_n,
        dwell_correct=dwell_ok / dwell_n if dwell_n else 0.0,
        dwell_exclusive=dwell_alone / dwell_n if dwell_n else 0.0,
        enters=len(state.enters),
        false_enters=false,
        device_hours=sum(r[-1].at - r[0].at + 1.0 for r in by_device.values()) / 3600.0,
        stays=len(stays),
        stays_missed=missed,
        latency_median_s=statistics.median(latencies) if latencies else None,
        latency_p90_s=float(np.percentile(latencies, 90)) if latencies else None,
    )


def format_simulated(score: SimulatedScore) -> str:
    """The simulator's figures against the issue's targets, as a few lines of text."""
    s = score.score

    def sec(v: float | None) -> str:
        return "n/a" if v is None else f"{v:.1f} s"

    return "\n".join(
        [
            f"simulator ({score.label}): {score.shoppers} shoppers × {score.minutes:g} min, "
            f"seed {score.seed}; "
            f"{s.dwell_seconds:,} s of dwell scored, {s.device_hours:.1f} device-hours "
            f"({score.seconds:.1f} s)",
            f"  dwell time in the correct zone     {s.dwell_correct:6.1%}   target ≥ 95 %"
            f"   (exclusive: {s.dwell_exclusive:.1%})",
            f"  false enter events / device-hour   {s.false_enters_per_device_hour:6.2f}"
            f"   target ≤ 0.5    ({s.false_enters} of {s.enters} enters)",
            f"  enter latency median               {sec(s.latency_median_s):>6}   target ≤ 5 s"
            f"    (p90 {sec(s.latency_p90_s)}; {s.stays_missed} of {s.stays} stays missed)",
        ]
    )


# -- the pipeline's view ---------------------------------------------------------------------


class _State:
    """The pipeline's zone state per shopper, rebuilt from its enter and exit events."""

    def __init__(
        self,
        zones: Sequence[Zone],
        events: Iterable[ZoneEvent],
        shopper_of: Callable[[ZoneEvent], str | None],
    ) -> None:
        self.zones = {z.id: z for z in zones}
        self.leaves = _leaf_zones(zones)
        self.enters: list[tuple[str, str, float]] = []  # (shopper device, zone, at)
        opened: dict[tuple[str, str, str], float] = {}  # (shopper, track, zone) → since
        spans: dict[tuple[str, str], list[tuple[float, float]]] = defaultdict(list)
        for e in events:
            who = shopper_of(e)
            if who is None or e.zone is None or e.kind not in (EventKind.ENTER, EventKind.EXIT):
                continue
            key = (who, e.device, e.zone)
            if e.kind is EventKind.ENTER:
                self.enters.append((who, e.zone, e.at))
                opened.setdefault(key, e.at)
            elif key in opened:
                spans[(who, e.zone)].append((opened.pop(key), e.at))
        for (who, _, zone), since in opened.items():
            spans[(who, zone)].append((since, float("inf")))
        self._starts = {k: sorted(v) for k, v in spans.items()}

    def holds(self, shopper: str, zone: str, at: float) -> bool:
        """Whether any track of `shopper` is in `zone` at `at`."""
        spans = self._starts.get((shopper, zone))
        if not spans:
            return False
        k = bisect.bisect_right(spans, (at, float("inf")))
        return any(start <= at < end for start, end in spans[:k])

    def leaves_held(self, shopper: str, at: float) -> set[str]:
        return {z for z in self.leaves if self.holds(shopper, z, at)}


def _customers(sim: StoreSimulator, seed: int) -> tuple[dict[str, str], CustomerRegistry]:
    """The demo's customers, all consenting; customer id → the shopper's device id."""
    from gateway.sim.customers import demo_customers

    people = [
        dataclasses.replace(c, consent=Consent(instore_location=True, marketing_push=True))
        for c in demo_customers(sim.devices(), seed)
    ]
    return {c.id: c.devices[0] for c in people}, CustomerRegistry(people)


def _leaf_zones(zones: Sequence[Zone]) -> tuple[str, ...]:
    return tuple(
        z.id for z in zones if not any(o is not z and z.polygon.contains(o.polygon) for o in zones)
    )


# -- the truth's view ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Stay:
    device: str
    zone: str
    start: float
    end: float  # one second after the last sample inside
    scored_from: float


def _by_device(records: Iterable[TruthRecord]) -> dict[str, list[TruthRecord]]:
    out: dict[str, list[TruthRecord]] = defaultdict(list)
    for r in records:
        out[r.device].append(r)
    return dict(out)


def _stays(device: str, recs: Sequence[TruthRecord], leaves: Sequence[str]) -> list[_Stay]:
    """The truth's stays of `device` in leaf zones (maximal runs of samples inside)."""
    return [s for zone in leaves for s in _runs(device, zone, recs)]


def _runs(device: str, zone: str, recs: Sequence[TruthRecord]) -> Iterable[_Stay]:
    start: float | None = None
    last = 0.0
    for r in recs:
        if start is not None and zone in r.zones and r.at - last <= 1.5:
            last = r.at
            continue
        if start is not None:
            yield _Stay(device, zone, start, last + 1.0, start)
        start, last = (r.at if zone in r.zones else None), r.at
    if start is not None:
        yield _Stay(device, zone, start, last + 1.0, start)


def _qualifying(stays: Iterable[_Stay], state: _State) -> list[_Stay]:
    out = []
    for s in stays:
        wait = state.zones[s.zone].enter_after
        if s.end - s.start >= wait + MIN_STAY_EXTRA_S:
            out.append(dataclasses.replace(s, scored_from=s.start + wait))
    return out


def _dwell(
    stays: list[_Stay], truth: dict[str, list[TruthRecord]], state: _State
) -> tuple[int, int, int]:
    """(samples scored, in the right zone, in it alone among the leaf zones)."""
    n = ok = alone = 0
    for s in stays:
        for r in truth[s.device]:
            if s.scored_from <= r.at < s.end:
                n += 1
                held = state.leaves_held(s.device, r.at)
                ok += s.zone in held
                alone += held == {s.zone}
    return n, ok, alone


def _latencies(stays: list[_Stay], state: _State, window_s: float) -> tuple[list[float], int]:
    by_key: dict[tuple[str, str], list[float]] = defaultdict(list)
    for device, zone, at in state.enters:
        by_key[(device, zone)].append(at)
    latencies, missed = [], 0
    for s in stays:
        times = by_key.get((s.device, s.zone), [])
        hit = next((t for t in sorted(times) if s.start - window_s <= t < s.end), None)
        if hit is not None:
            latencies.append(hit - s.start)
        elif not state.holds(s.device, s.zone, s.start):
            missed += 1
    return latencies, missed


def _truth_in(
    recs: Sequence[TruthRecord], times: Sequence[float], zone: str, at: float, window_s: float
) -> bool:
    """Whether the truth has the shopper in `zone` at some sample within ±window_s of `at`."""
    lo, hi = bisect.bisect_left(times, at - window_s), bisect.bisect_right(times, at + window_s)
    return any(zone in r.zones for r in recs[lo:hi])
