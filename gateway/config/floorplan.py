"""The floor plan of config.yaml: `anchors`, `zones` (store metres) and `geofences` (GPS).

Part of the config loader (`gateway.config.load`): it reads the three lists, checks their ids
are unique (anchors apart; zones and geofences together) and that a beacon is one anchor only,
and checks outlines are simple polygons (gateway.config.outline, no shapely; geofences keep
(lon, lat), as GeoJSON orders them).  A zone's own belief thresholds are checked against
`locate`'s where it sets only one (`check_probabilities`).
"""

from __future__ import annotations

from typing import TypeVar

from gateway.config.model import (
    PATH_LOSS_EXPONENTS,
    Anchor,
    AnchorKind,
    Geofence,
    LatLon,
    LocateConfig,
    Outline,
    Polyline,
    Zone,
)
from gateway.config.outline import closed_outline, outline_problem
from gateway.config.yamlconv import (
    ID,
    PROBABILITY,
    STR,
    Conv,
    MapReader,
    duration_in,
    enum_of,
    float_in,
    iter_items,
    list_of,
)
from gateway.config.yamlsrc import (
    Diagnostics,
    MapNode,
    Node,
    ScalarNode,
    SeqNode,
    describe,
    is_null,
)
from gateway.ids import canonical_device_id

_BEACON_FORMS = "ibeacon:<uuid>:<major>:<minor>, eddystone:<ns>:<instance> or altbeacon:<40 hex>"
LAT = float_in(-90.0, 90.0)
LON = float_in(-180.0, 180.0)
DURATION = duration_in()
T = TypeVar("T")


def read_floor_plan(
    top: MapReader, locate: LocateConfig
) -> tuple[tuple[Anchor, ...], tuple[Zone, ...], tuple[Geofence, ...]]:
    """The anchors, zones and geofences of the top-level mapping; problems go to its diags.
    `locate` gives the belief thresholds a zone that sets only one of its own is checked with."""
    diags = top.diags

    def zone(node: Node, path: str, d: Diagnostics) -> Zone | None:
        return _zone(node, path, d, locate)

    anchors = _anchors(top.value("anchors"), diags)
    zones = tuple(z for z in _each(top, "zones", zone, diags) if z is not None)
    geofences = tuple(g for g in _each(top, "geofences", _geofence, diags) if g is not None)
    _check_unique("anchor", top, ("anchors",), diags)
    _check_unique("zone or geofence", top, ("zones", "geofences"), diags)
    return anchors, zones, geofences


def _beacon_id(node: Node, path: str, diags: Diagnostics) -> str | None:
    text = STR(node, path, diags)
    device = canonical_device_id(text) if text is not None else None
    if text is not None and (device is None or device.startswith("phone:")):
        diags.at(node, f"'{text}' is not a beacon id: write {_BEACON_FORMS}", path)
        return None
    return device


def latlon(node: Node, path: str, diags: Diagnostics) -> LatLon | None:
    """A `{lat, lon}` mapping (the store's GPS origin)."""
    r = MapReader.of(node, path, diags, ("lat", "lon"), required=("lat", "lon"))
    return _latlon_of(r) if r is not None else None


def _point(x: Conv[float], y: Conv[float], form: str) -> Conv[tuple[float, float]]:
    def conv(node: Node, path: str, diags: Diagnostics) -> tuple[float, float] | None:
        if not isinstance(node, SeqNode) or len(node.items) != 2:
            diags.at(node, f"expected a point {form}, got {describe(node)}", path)
            return None
        a, b = x(node.items[0], f"{path}[0]", diags), y(node.items[1], f"{path}[1]", diags)
        return (a, b) if a is not None and b is not None else None

    return conv


POINT_XY = _point(float_in(), float_in(), "[x, y] in metres")
XY = list_of(POINT_XY, min_len=3)
_POLYLINE = list_of(_point(float_in(), float_in(), "[x, y] in metres"), min_len=2)


def walls(node: Node, path: str, diags: Diagnostics) -> tuple[Polyline, ...] | None:
    """`walls:` — polylines of ≥ 2 [x, y] points in floor metres (a door is a gap)."""
    lines = list_of(_POLYLINE)(node, path, diags)
    return tuple(tuple(line) for line in lines) if lines is not None else None


LATLON = list_of(_point(LAT, LON, "[lat, lon]"), min_len=3)


def _polygon(
    points: list[tuple[float, float]], node: Node, path: str, d: Diagnostics
) -> Outline | None:
    """The outline of `points` if they make a simple polygon; else say why at `node`."""
    ring = closed_outline(points)
    problem = outline_problem(ring)
    if problem is not None:
        d.at(node, problem, path)
        return None
    return ring


def _each(top: MapReader, key: str, build: Conv[T], d: Diagnostics) -> list[T | None]:
    return [build(item, path, d) for item, path in iter_items(top.value(key), key, d)]


def _check_unique(what: str, top: MapReader, keys: tuple[str, ...], diags: Diagnostics) -> None:
    """Report a repeated `id` among the items of the lists under `keys`."""
    seen: dict[str, int] = {}
    for key in keys:
        for item, path in _quiet_items(top.value(key)):
            node = item.get("id")
            if node is None or not isinstance(node.value, ScalarNode) or not node.value.raw:
                continue
            ident, mark = node.value.raw, node.value.mark
            if ident in seen:
                msg = f"duplicate {what} id '{ident}' (first on line {seen[ident]}): rename one"
                diags.add(mark, msg, f"{key}{path}.id")
            seen.setdefault(ident, mark.line)


def _quiet_items(node: Node | None) -> list[tuple[MapNode, str]]:
    """The mapping items of a list, with their `[i]` suffix; other shapes are reported elsewhere."""
    if not isinstance(node, SeqNode):
        return []
    return [(n, f"[{i}]") for i, n in enumerate(node.items) if isinstance(n, MapNode)]


def _anchors(node: Node | None, diags: Diagnostics) -> tuple[Anchor, ...]:
    anchors: list[Anchor] = []
    beacons: dict[str, str] = {}
    for item, path in iter_items(node, "anchors", diags):
        a = _anchor(item, path, diags)
        if a is None or not isinstance(item, MapNode):
            continue
        entry = item.get("beacon")
        if a.beacon is not None and a.beacon in beacons and entry is not None:
            msg = f"beacon {a.beacon} is already anchor '{beacons[a.beacon]}': list it once"
            diags.at(entry.value, msg, f"{path}.beacon")
        beacons.setdefault(a.beacon or "", a.id)
        anchors.append(a)
    return tuple(anchors)


_ANCHOR_KEYS = ("id", "kind", "x", "y", "rssi_at_1m", "path_loss_exponent", "beacon")


def _anchor(node: Node, path: str, diags: Diagnostics) -> Anchor | None:
    r = MapReader.of(node, path, diags, _ANCHOR_KEYS, required=("id", "kind", "x", "y"))
    if r is None:
        return None
    aid, kind = r.req("id", ID), r.req("kind", enum_of(AnchorKind))
    x, y = r.req("x", float_in()), r.req("y", float_in())
    beacon = r.maybe("beacon", _beacon_id)
    if kind is AnchorKind.BEACON and not r.has("beacon"):
        msg = "a beacon anchor needs 'beacon: ibeacon:<uuid>:<major>:<minor>' (its device id)"
        diags.at(r.node, msg, r.at("beacon"))
    if kind is AnchorKind.SCANNER and r.has("beacon"):
        msg = "only anchors of kind beacon take 'beacon'; remove it or set kind: beacon"
        diags.add(r.key_mark("beacon"), msg, r.at("beacon"))
    rssi = r.opt("rssi_at_1m", float_in(-100.0, -20.0), -59.0)
    exponent = r.opt("path_loss_exponent", float_in(*PATH_LOSS_EXPONENTS), 2.0)
    if aid is None or kind is None or x is None or y is None:
        return None
    return Anchor(aid, kind, x, y, rssi, exponent, beacon if kind is AnchorKind.BEACON else None)


_ZONE_KEYS = (
    "id",
    "name",
    "polygon",
    "enter_after",
    "exit_after",
    "margin",
    "enter_probability",
    "exit_probability",
)


def _zone(node: Node, path: str, diags: Diagnostics, locate: LocateConfig) -> Zone | None:
    r = MapReader.of(node, path, diags, _ZONE_KEYS, required=("id", "polygon"))
    if r is None:
        return None
    zid, points = r.req("id", ID), r.req("polygon", XY)
    poly_node = r.value("polygon")
    poly = _polygon(points, poly_node, r.at("polygon"), diags) if points and poly_node else None
    enter = r.maybe("enter_probability", PROBABILITY)
    leave = r.maybe("exit_probability", PROBABILITY)
    if enter is not None or leave is not None:
        e = locate.enter_probability if enter is None else enter
        x = locate.exit_probability if leave is None else leave
        check_probabilities(r, e, x, "locate")
    zone = Zone(
        id=zid or "",
        name=r.opt("name", STR, zid or ""),
        outline=poly or (),
        enter_after=r.opt("enter_after", DURATION, 2.0),
        exit_after=r.opt("exit_after", DURATION, 10.0),
        margin_m=r.opt("margin", float_in(0.0, 50.0), 0.0),
        enter_probability=enter,
        exit_probability=leave,
    )
    return zone if zid is not None and poly is not None else None


def check_probabilities(r: MapReader, enter: float, leave: float, inherited: str) -> bool:
    """Whether `leave` ≤ `enter` (0 < exit ≤ enter ≤ 1); else say so, and how to fix it, at the
    one of r's `exit_probability` / `enter_probability` written (the exit's if both are).
    `inherited` is the section a key r does not set comes from ("locate"), or "" for the
    default."""
    if leave <= enter:
        return True
    why = "a device must leave a zone below the probability it enters it at"
    if _written(r, "exit_probability"):
        whose = "" if _written(r, "enter_probability") else _whose(inherited, "enter_probability")
        key = "exit_probability"
        msg = f"exit_probability {leave} is above the enter probability {enter}{whose}: {why}; "
        msg += "lower exit_probability or raise enter_probability"
    else:
        key = "enter_probability"
        whose = _whose(inherited, "exit_probability")
        msg = f"enter_probability {enter} is below the exit probability {leave}{whose}: {why}; "
        msg += "raise enter_probability or set a lower exit_probability"
    node = r.value(key)
    assert node is not None  # one of the two is written, else r's values are valid
    r.diags.at(node, msg, r.at(key))
    return False


def _whose(inherited: str, key: str) -> str:
    return f" ({inherited}.{key})" if inherited else " (the default)"


def _written(r: MapReader, key: str) -> bool:
    node = r.value(key)
    return node is not None and not is_null(node)


_GEOFENCE_KEYS = ("id", "name", "polygon", "circle", "enter_after", "exit_after")


def _geofence(node: Node, path: str, diags: Diagnostics) -> Geofence | None:
    r = MapReader.of(node, path, diags, _GEOFENCE_KEYS, required=("id",))
    if r is None:
        return None
    gid = r.req("id", ID)
    if r.has("polygon") == r.has("circle"):
        both = "not both" if r.has("polygon") else "one of them"
        msg = "a geofence needs 'polygon: [[lat, lon], …]' or 'circle: {lat, lon, radius_m}', "
        diags.at(r.node, msg + both, path)
    shape = _geo_polygon(r) if r.has("polygon") else None
    center, radius = r.maybe("circle", _circle) or (None, None)
    fence = Geofence(
        id=gid or "",
        name=r.opt("name", STR, gid or ""),
        outline=shape,
        center=center,
        radius_m=radius,
        enter_after=r.opt("enter_after", DURATION, 0.0),
        exit_after=r.opt("exit_after", DURATION, 0.0),
    )
    return fence if gid is not None and (shape is not None or center is not None) else None


def _geo_polygon(r: MapReader) -> Outline | None:
    """[[lat, lon], …] in the YAML -> an outline of (lon, lat), as GeoJSON orders them."""
    points, node = r.req("polygon", LATLON), r.value("polygon")
    if not points or node is None:
        return None
    return _polygon([(lon, lat) for lat, lon in points], node, r.at("polygon"), r.diags)


def _circle(node: Node, path: str, diags: Diagnostics) -> tuple[LatLon, float] | None:
    keys = ("lat", "lon", "radius_m")
    r = MapReader.of(node, path, diags, keys, required=keys)
    if r is None:
        return None
    center, radius = _latlon_of(r), r.req("radius_m", float_in(1.0, 100_000.0))
    return (center, radius) if center is not None and radius is not None else None


def _latlon_of(r: MapReader) -> LatLon | None:
    lat, lon = r.req("lat", LAT), r.req("lon", LON)
    return LatLon(lat, lon) if lat is not None and lon is not None else None
