"""Which zones the anchors can hear: the log-distance path-loss model at each zone's centre.

`rayon check` warns about a zone that no anchor reaches: at the zone's centroid every
anchor's modelled RSSI (`rssi_at_1m − 10·n·log10(d)`, the model `rssi_to_distance` inverts)
is below `REACH_DBM`, so fixes inside it would rest on adverts a phone or scanner rarely
hears.  Pure.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from gateway.config.model import Anchor, Config, Zone
from gateway.config.yamlsrc import Diagnostics, Mark, find, load_yaml
from gateway.errors import Diagnostic, Severity

REACH_DBM = -90.0  # below this, BLE adverts are lost more often than heard


@dataclass(frozen=True, slots=True)
class Unreached:
    """A zone out of every anchor's reach, with the best the anchors manage at its centre."""

    index: int  # position in `config.zones`
    zone: Zone
    anchor: Anchor | None  # the loudest anchor at the centre (None: the config has none)
    distance_m: float
    rssi: float


def modelled_rssi(anchor: Anchor, distance_m: float) -> float:
    """The anchor's RSSI at `distance_m` by its path-loss calibration (1 m at least)."""
    return anchor.rssi_at_1m - 10.0 * anchor.path_loss_exponent * math.log10(max(distance_m, 1.0))


def unreached_zones(config: Config) -> list[Unreached]:
    """The zones whose centroid no anchor reaches at `REACH_DBM` or louder."""
    out = []
    for index, zone in enumerate(config.zones):
        centre = zone.polygon.centroid
        heard = [
            (modelled_rssi(a, d), d, a)
            for a in config.anchors
            for d in [math.hypot(a.x - centre.x, a.y - centre.y)]
        ]
        best = max(heard, key=lambda h: h[0], default=None)
        if best is None:
            out.append(Unreached(index, zone, None, math.inf, -math.inf))
        elif best[0] < REACH_DBM:
            out.append(Unreached(index, zone, best[2], best[1], best[0]))
    return out


def lint_reach(config: Config) -> list[Diagnostic]:
    """A warning at each zone of `config.yaml` that no anchor reaches."""
    found = unreached_zones(config)
    if not found:
        return []
    diags = Diagnostics(str(config.path))
    root = load_yaml(config.path, diags)
    for item in found:
        node = find(root, f"zones[{item.index}]") if root is not None else None
        diags.add(
            node.mark if node else Mark(1, 1), _message(item), f"zones[{item.index}]", warn=True
        )
    return [d for d in diags.items if d.severity is Severity.WARNING]


def _message(item: Unreached) -> str:
    zone = f"zone '{item.zone.id}' is out of reach of every anchor"
    if item.anchor is None:
        return f"{zone}: the config has no anchors"
    return (
        f"{zone}: at its centre the loudest, '{item.anchor.id}' {item.distance_m:.0f} m away, "
        f"is modelled at {item.rssi:.0f} dBm, below {REACH_DBM:.0f} dBm; add an anchor nearer, "
        "or check the anchors' x, y and calibration"
    )
