"""`rayon calibrate` (the command: `gateway.offline.calibraterun`): fit each anchor's
`rssi_at_1m` and `path_loss_exponent` from a trace.

    rayon calibrate TRACE -c config.yaml                 # (a) store beacons heard by scanners
    rayon calibrate TRACE -c config.yaml --truth TRUTH   # (b) a walk with known positions
    rayon calibrate WALK --truth TRUTH -c config.yaml --map-out radio-map.json   # (c) a map

The model is the locator's: `rssi = rssi_at_1m − 10 n log10(d)`.  Each sample is one RSSI with
the distance it was measured at:

* (a) a store beacon (an anchor of kind beacon) heard by a scanner anchor: the distance between
  the two anchors; the RSSI is corrected by the beacon's advertised power at 1 m relative to the
  phones' −59 dBm, so a beacon set louder than the phones does not bias the scanner.  Only
  scanner anchors are fitted.
* (b) a walk: the device's true position at the advert's time, interpolated linearly in the
  ground-truth JSONL (`{"at","device","x","y"}`, as `rayon simulate --truth` writes; no sample
  where the truth has a gap over 5 s; `gateway.offline.truth`).  Scanner anchors are fitted from
  the adverts; store beacons from the phones' sightings when `--customers` maps their tokens to
  the walking devices.
* (c) with `--map-out FILE`, (b) also learns the radio map of `locate.radio_map` from the walk
  (`gateway.offline.mapwalk`): truth lines may then also be `{"at","device","zone"}`, prints its
  accuracy on held-back segments and the zones walked too thinly, and refuses a walk that never
  enters some zone.

Distances are in the floor plan, as the locator uses them; `--height` adds a vertical
difference (√(d² + h²)) when the physical model is wanted.  Samples nearer than 0.3 m or farther
than `--max-distance` are left out (far away, the adverts that are heard are the lucky ones, which
would flatten the slope).  The fit is robust: a Theil–Sen start (the median of pairwise slopes,
which a cluster of mislabelled samples cannot drag) refined by Tukey's biweight (iteratively
reweighted least squares, scale from the MAD), so reflections and deep fades do not drag it.
On the recorded data sets of docs/accuracy.md it differs from least squares by a median
0.04 in n (116 anchors, p90 0.17).  An exponent from 0.2 (rooms with walls fit 0.2–0.5) to
6 is accepted.

An anchor with fewer than `--min-samples` samples, distances spanning less than a factor of
`--min-spread`, or an exponent outside that range is not refused but *pooled*: it takes the
exponent of all the anchors' samples fitted together, and its `rssi_at_1m` is its own samples'
level under that exponent shrunk towards the pool's (weight m / (m + 10) for m samples).  Only
an anchor with no sample at all, or a pool that itself cannot be fitted, is reported with what
it lacks.  The output is a YAML snippet of the fitted anchors, to paste into config.yaml, with
the fit quality of each (and why it was pooled) as a comment.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

import numpy as np

from gateway.config.model import PATH_LOSS_EXPONENTS, Anchor, AnchorKind, Config
from gateway.decode.inbound import parse_scanner_adv, parse_sightings
from gateway.decode.jsonvalues import InboundError
from gateway.decode.privacy import PrivacyFilter
from gateway.errors import InvalidInput
from gateway.events import Advertisement, Observation, TraceItem
from gateway.offline.truth import Truth
from gateway.sources.trace import TraceError
from gateway.topics import TopicKind, Topics

PHONE_TX_POWER_1M = -59
MIN_DISTANCE_M = 0.3
PLAUSIBLE_EXPONENT = PATH_LOSS_EXPONENTS
BIWEIGHT_C = 4.685  # Tukey's constant: 95 % of least squares' efficiency on Gaussian residuals
MAX_PAIRS = 50_000  # Theil–Sen: all pairs up to this many, else this many drawn (fixed seed)
MIN_POOL_SPREAD = 1.5  # d_max / d_min of the pool
PRIOR_SAMPLES = 10.0  # a pooled anchor's rssi_at_1m: its own level weighs m / (m + this)
POOLED = "pooled (all anchors' exponent, rssi_at_1m shrunk towards theirs)"


@dataclass(frozen=True, slots=True)
class Criteria:
    """What a fit of an anchor's own needs (else it is pooled), and which samples it uses."""

    min_samples: int = 30
    # d_max / d_min; 3, not 2: a simulated walk heard one scanner at 6.5–14.9 m only and its
    # own fit gave n 0.24 (true 2.4) once exponents under 1 were accepted; pooled, 1.98
    min_spread: float = 3.0
    max_distance_m: float = 15.0
    height_m: float = 0.0


@dataclass(frozen=True, slots=True)
class AnchorFit:
    """The fitted calibration of one anchor and how well the model fits its samples.
    `pooled`: empty for a fit of the anchor's own samples, else why it took the pooled
    exponent (and a shrunk `rssi_at_1m`) and how to get a fit of its own."""

    anchor: Anchor
    rssi_at_1m: float
    path_loss_exponent: float
    rms_db: float
    samples: int
    min_distance_m: float
    max_distance_m: float
    pooled: str = ""


@dataclass(frozen=True, slots=True)
class Shortfall:
    """An anchor that could not be fitted, and why (what it lacks, how to get it)."""

    anchor: str
    reason: str

    def __str__(self) -> str:
        return f"{self.anchor}: {self.reason}"


@dataclass(slots=True)
class Samples:
    """(distance m, rssi dBm) pairs per anchor id."""

    by_anchor: dict[str, tuple[list[float], list[float]]] = field(default_factory=dict)
    bad_lines: int = 0

    def add(self, anchor: str, distance: float, rssi: float) -> None:
        d, r = self.by_anchor.setdefault(anchor, ([], []))
        d.append(distance)
        r.append(rssi)


def fit_log_distance(
    distances: Iterable[float], rssi: Iterable[float]
) -> tuple[float, float, float]:
    """(rssi_at_1m, path_loss_exponent, RMS residual dB) of rssi = A + n·(−10 log10 d):
    Theil–Sen, then Tukey's biweight by iteratively reweighted least squares with the scale
    fixed at the start's MAD.  Needs ≥ 2 distinct distances."""
    x = -10.0 * np.log10(np.asarray(list(distances), dtype=float))
    y = np.asarray(list(rssi), dtype=float)
    a0, n0 = theil_sen(x, y)
    coef = np.array([a0, n0])
    res = y - (a0 + n0 * x)
    scale = 1.4826 * float(np.median(np.abs(res - np.median(res)))) or 1e-6
    design = np.column_stack([np.ones_like(x), x])
    for _ in range(50):
        u = (y - design @ coef) / (BIWEIGHT_C * scale)
        w = np.where(np.abs(u) < 1.0, np.square(1.0 - u * u), 0.0)
        live = w > 0
        if not live.any() or np.ptp(x[live]) <= 0.0:  # nothing left to pin a slope
            break
        sw = np.sqrt(w)
        new, *_ = np.linalg.lstsq(design * sw[:, None], y * sw, rcond=None)
        done = bool(np.allclose(new, coef, atol=1e-4))
        coef = new
        if done:
            break
    res = y - design @ coef
    return float(coef[0]), float(coef[1]), float(np.sqrt(np.mean(res * res)))


def theil_sen(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(intercept, slope): the median of the slopes between pairs of points (all pairs, or
    `MAX_PAIRS` drawn with a fixed seed) and the median intercept under it."""
    m = len(x)
    if m * (m - 1) // 2 <= MAX_PAIRS:
        i, j = np.triu_indices(m, 1)
    else:
        rng = np.random.default_rng(0)
        i, j = rng.integers(0, m, MAX_PAIRS), rng.integers(0, m, MAX_PAIRS)
    dx = x[j] - x[i]
    ok = np.abs(dx) > 1e-9
    slope = float(np.median((y[j] - y[i])[ok] / dx[ok])) if ok.any() else 0.0
    return float(np.median(y - slope * x)), slope


def fit_anchors(
    anchors: Iterable[Anchor], samples: Samples, criteria: Criteria
) -> tuple[list[AnchorFit], list[Shortfall]]:
    """Fit every anchor that has samples, on its own or pooled; say what each of the
    others lacks."""
    anchors = list(anchors)
    kept = {a.id: _within(samples.by_anchor.get(a.id, ([], [])), criteria) for a in anchors}
    pool = _pool(kept, criteria)
    fits: list[AnchorFit] = []
    short: list[Shortfall] = []
    for anchor in anchors:
        total = len(samples.by_anchor.get(anchor.id, ([], []))[0])
        got = _fit_one(anchor, *kept[anchor.id], total, pool, criteria)
        if isinstance(got, AnchorFit):
            fits.append(got)
        else:
            short.append(got)
    return fits, short


def _within(got: tuple[list[float], list[float]], c: Criteria) -> tuple[np.ndarray, np.ndarray]:
    d = np.asarray(got[0], dtype=float)
    keep = (d >= MIN_DISTANCE_M) & (d <= c.max_distance_m)
    return d[keep], np.asarray(got[1], dtype=float)[keep]


def _pool(
    kept: Mapping[str, tuple[np.ndarray, np.ndarray]], c: Criteria
) -> tuple[float, float] | str:
    """(rssi_at_1m, n) of every anchor's samples fitted together, or why there is none.  Its
    distances need not span `min_spread`: fixed beacons' are a few set distances."""
    d = np.concatenate([dd for dd, _ in kept.values()]) if kept else np.zeros(0)
    r = np.concatenate([rr for _, rr in kept.values()]) if kept else np.zeros(0)
    if len(d) < c.min_samples or _spread(d) < MIN_POOL_SPREAD:
        return f"all anchors together: {len(d)} sample(s) within {c.max_distance_m:g} m"
    a, n, _ = fit_log_distance(d.tolist(), r.tolist())
    if not PLAUSIBLE_EXPONENT[0] <= n <= PLAUSIBLE_EXPONENT[1]:
        return f"all anchors together: exponent {n:.2f}"
    return a, n


def _fit_one(
    anchor: Anchor,
    d: np.ndarray,
    r: np.ndarray,
    total: int,
    pool: tuple[float, float] | str,
    c: Criteria,
) -> AnchorFit | Shortfall:
    if not len(d):
        far = total - len(d)
        note = f" ({far} beyond {c.max_distance_m:g} m left out)" if far else ""
        return Shortfall(
            anchor.id,
            f"0 sample(s) within {c.max_distance_m:g} m{note}: record longer, or walk (or "
            "place beacons) nearer to it",
        )
    lo, hi = float(d.min()), float(d.max())
    if len(d) < c.min_samples:
        why = f"{len(d)} sample(s), fewer than {c.min_samples}"
        advice = "record longer near it"
    elif hi < c.min_spread * lo:
        why = f"distances only span {lo:.1f}–{hi:.1f} m, less than a factor of {c.min_spread:g}"
        advice = "add samples nearer to and farther from it"
    else:
        a, n, rms = fit_log_distance(d.tolist(), r.tolist())
        if PLAUSIBLE_EXPONENT[0] <= n <= PLAUSIBLE_EXPONENT[1]:
            return AnchorFit(anchor, round(a, 1), round(n, 2), round(rms, 2), len(d), lo, hi)
        why = f"its own fit gives an implausible exponent {n:.2f} (RMS {rms:.1f} dB)"
        advice = "check its x, y in the config and that it is not hidden"
    if isinstance(pool, str):
        return Shortfall(
            anchor.id,
            f"{why}, and no pooled fit ({pool}): record longer, walk nearer to and farther "
            "from it, and check its x, y in the config",
        )
    pool_a, pool_n = pool
    level = r + 10.0 * pool_n * np.log10(d)  # each sample's rssi_at_1m under the pool's n
    own = float(np.median(level))
    a = (len(d) * own + PRIOR_SAMPLES * pool_a) / (len(d) + PRIOR_SAMPLES)
    res = level - a
    rms = float(np.sqrt(np.mean(res * res)))
    how = f"{why}; for a fit of its own, {advice}"
    return AnchorFit(anchor, round(a, 1), round(pool_n, 2), round(rms, 2), len(d), lo, hi, how)


def _spread(d: np.ndarray) -> float:
    return float(d.max() / d.min()) if len(d) else 0.0


# -- samples from a trace ----------------------------------------------------------------------


def observations(
    config: Config, items: Iterable[TraceItem | TraceError], allow: PrivacyFilter, samples: Samples
) -> Iterator[Observation]:
    """Every observation of an allowed beacon in the trace: adverts, scanner nodes' MQTT
    adverts and phones' sightings.  Bad lines are counted in `samples.bad_lines`."""
    for got in readings(config, items, allow, samples):
        if isinstance(got, tuple):
            yield from got
        else:
            yield got


def readings(
    config: Config, items: Iterable[TraceItem | TraceError], allow: PrivacyFilter, samples: Samples
) -> Iterator[Observation | tuple[Observation, ...]]:
    """`observations`, a phone's sightings message kept together as one scan (a tuple of
    the beacons it heard, possibly empty)."""
    topics = Topics(config.mqtt.topic_prefix, config.store.id)
    beacon_anchor = {
        a.beacon: a.id for a in config.anchors if a.kind is AnchorKind.BEACON and a.beacon
    }
    for item in items:
        if isinstance(item, TraceError):
            samples.bad_lines += 1
            continue
        if isinstance(item, Advertisement):
            obs = allow.observe(item)
            if obs is not None:
                yield obs
            continue
        parsed = topics.parse(item.topic)
        if parsed is None:
            continue
        kind, arg = parsed
        if kind is TopicKind.SCANNER_ADV:
            adverts = parse_scanner_adv(item.payload, arg, item.at)
            if not isinstance(adverts, InboundError):
                yield from (o for a in adverts if (o := allow.observe(a)) is not None)
        elif kind is TopicKind.PHONE_SIGHTINGS:
            got = parse_sightings(item.payload, arg, item.at, beacon_anchor)
            if not isinstance(got, InboundError):
                yield got.observations


def beacon_samples(
    config: Config, items: Iterable[TraceItem | TraceError], height_m: float = 0.0
) -> Samples:
    """(a): store beacons heard by scanner anchors, at the distance between the two."""
    beacons = {a.beacon: a for a in config.anchors if a.kind is AnchorKind.BEACON and a.beacon}
    scanners = {a.id: a for a in config.anchors if a.kind is AnchorKind.SCANNER}
    if not beacons:
        raise InvalidInput(
            f"{config.path}: no anchor of kind beacon with a `beacon` id: calibrating from fixed "
            "beacons needs them (or pass --truth TRUTH to calibrate from a walk)"
        )
    uuids = [b.split(":")[1] for b in beacons if b.startswith("ibeacon:")]
    uuids += [b[10:42] for b in beacons if b.startswith("altbeacon:")]
    namespaces = [b.split(":")[1] for b in beacons if b.startswith("eddystone:")]
    samples = Samples()
    for obs in observations(config, items, PrivacyFilter(uuids, namespaces), samples):
        beacon, scanner = beacons.get(obs.device), scanners.get(obs.anchor)
        if beacon is None or scanner is None:
            continue
        tx = obs.tx_power if obs.tx_power is not None else PHONE_TX_POWER_1M
        d = math.hypot(beacon.x - scanner.x, beacon.y - scanner.y, height_m)
        samples.add(scanner.id, d, obs.rssi - (tx - PHONE_TX_POWER_1M))
    return samples


def walk_samples(
    config: Config,
    items: Iterable[TraceItem | TraceError],
    truth: Truth,
    height_m: float = 0.0,
    token_devices: Mapping[str, str] | None = None,
) -> Samples:
    """(b): every observation of a walking device, at its true distance from the anchor.
    `token_devices` maps `phone:<token>` to the truth's device id of that customer."""
    anchors = {a.id: a for a in config.anchors}
    allow = PrivacyFilter(config.identity.proximity_uuids, config.identity.eddystone_namespaces)
    alias = token_devices or {}
    seen: dict[tuple[str, str], tuple[list[float], list[float]]] = {}
    samples = Samples()
    for obs in observations(config, items, allow, samples):
        if obs.anchor in anchors:
            at, rssi = seen.setdefault((alias.get(obs.device, obs.device), obs.anchor), ([], []))
            at.append(obs.at)
            rssi.append(obs.rssi)
    for (device, anchor_id), (at, rssi) in sorted(seen.items()):
        anchor = anchors[anchor_id]
        x, y, known = truth.positions(device, np.asarray(at))
        d = np.hypot(np.hypot(x - anchor.x, y - anchor.y), height_m)[known]
        for dist, r in zip(d.tolist(), np.asarray(rssi)[known].tolist(), strict=True):
            samples.add(anchor_id, dist, r)
    return samples


# -- output ------------------------------------------------------------------------------------


def format_yaml(fits: list[AnchorFit], short: list[Shortfall], source: str) -> str:
    """The snippet to paste over the matching `anchors:` entries, fit quality as comments."""
    lines = [
        f"# rayon calibrate: {source}",
        "# paste over the matching entries of `anchors:` in config.yaml",
        "anchors:" if fits else "anchors: []",
    ]
    for f in fits:
        a = f.anchor
        lines.append(
            f"  # RMS {f.rms_db:.1f} dB, {f.samples} samples, {f.min_distance_m:.1f}–"
            f"{f.max_distance_m:.1f} m (config had rssi_at_1m {a.rssi_at_1m:g}, "
            f"path_loss_exponent {a.path_loss_exponent:g})"
        )
        if f.pooled:
            lines.append(f"  # {POOLED}: {f.pooled}")
        beacon = f", beacon: {json.dumps(a.beacon)}" if a.beacon else ""
        lines.append(
            f"  - {{id: {json.dumps(a.id)}, kind: {a.kind.value}{beacon}, x: {a.x:g}, "
            f"y: {a.y:g}, rssi_at_1m: {f.rssi_at_1m:g}, path_loss_exponent: "
            f"{f.path_loss_exponent:g}}}"
        )
    if short:
        lines.append("# not fitted:")
        lines.extend(f"#   {s}" for s in short)
    return "\n".join(lines) + "\n"
