"""config.yaml -> `Config` (DESIGN.md §3), reporting every problem with file:line:col and key path.

`parse_config(path)` reads one file and has no other effect: it checks nothing on disk besides
the config itself (the files it names are resolved, not opened), so `rayon check` can run it on a
laptop.  Relative paths in the file (`rules_dir`, `mqtt.password_file`, `mqtt.tls.*`, a relative
sqlite `database.url`) are resolved against the folder of the config file.

Extension of DESIGN §3: `sources.ble.anchor` names the scanner anchor the Pi's own radio stands
for (default: the first anchor of kind scanner).
"""

from __future__ import annotations

import re
import zoneinfo
from dataclasses import replace
from pathlib import Path
from typing import TypeVar
from zoneinfo import ZoneInfo

from shapely.geometry import Polygon
from shapely.validation import explain_validity

from gateway.config import (
    Anchor,
    AnchorKind,
    BleSourceConfig,
    Config,
    DatabaseConfig,
    Geofence,
    IdentityConfig,
    LatLon,
    MqttConfig,
    RetentionConfig,
    ScanningMode,
    SourcesConfig,
    StoreConfig,
    TlsConfig,
    VisitsConfig,
    Zone,
)
from gateway.errors import ConfigError
from gateway.ids import canonical_device_id, format_uuid
from gateway.yamlsrc import (
    BOOL,
    ID,
    STR,
    Conv,
    Diagnostics,
    MapNode,
    MapReader,
    Mark,
    Node,
    ScalarNode,
    SeqNode,
    describe,
    did_you_mean,
    duration_in,
    enum_of,
    float_in,
    int_in,
    is_null,
    iter_items,
    list_of,
    load_yaml,
    path_under,
)

_TOP = "store mqtt database sources identity anchors zones geofences visits retention rules_dir"
_NAMESPACE = re.compile(r"^[0-9a-fA-F]{20}$")
_SQLITE = re.compile(r"^(sqlite(?:\+\w+)?):///(?!/)([^?]+)(\?.*)?$")
_DEFAULT_DB = "sqlite:///rayon.db"
_BEACON_FORMS = "ibeacon:<uuid>:<major>:<minor>, eddystone:<ns>:<instance> or altbeacon:<40 hex>"
LAT = float_in(-90.0, 90.0)
LON = float_in(-180.0, 180.0)
POSITIVE = duration_in(0.001)
DURATION = duration_in()
T = TypeVar("T")


def parse_config(path: Path) -> Config:
    """Parse and validate `path`; raise ConfigError listing every problem found."""
    diags = Diagnostics(str(path))
    root = load_yaml(path, diags)
    if root is None and not diags.errors:
        diags.add(Mark(1, 1), "the file is empty: a config needs at least a 'store' section")
    top = MapReader.of(root, "", diags, _TOP.split(), required=("store",))
    config = _build(top, path, diags) if top is not None else None
    diags.raise_if_errors()
    if config is None:  # pragma: no cover - a missing piece always left an error
        raise ConfigError(diags.items)
    return config


def _build(top: MapReader, path: Path, diags: Diagnostics) -> Config | None:
    base = path.absolute().parent
    anchors = _anchors(top.value("anchors"), diags)
    store = _store(top.value("store"), diags)
    zones = tuple(z for z in _each(top, "zones", _zone, diags) if z is not None)
    geofences = tuple(g for g in _each(top, "geofences", _geofence, diags) if g is not None)
    _check_unique("anchor", top, ("anchors",), diags)
    _check_unique("zone or geofence", top, ("zones", "geofences"), diags)
    config = Config(
        path=path,
        store=store or StoreConfig("", "", ZoneInfo("UTC")),
        mqtt=_mqtt(top.value("mqtt"), base, diags),
        database=DatabaseConfig(_database(top.value("database"), base, diags)),
        sources=_sources(top.value("sources"), anchors, diags),
        identity=_identity(top.value("identity"), diags),
        anchors=anchors,
        zones=zones,
        geofences=geofences,
        visits=_visits(top.value("visits"), diags),
        retention=_retention(top.value("retention"), diags),
        rules_dir=top.opt("rules_dir", path_under(base), base / "rules"),
    )
    return config if store is not None else None


# ---------------------------------------------------------------------------------- converters


def _timezone(node: Node, path: str, diags: Diagnostics) -> ZoneInfo | None:
    text = STR(node, path, diags)
    if text is None:
        return None
    try:
        return ZoneInfo(text)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        hint = did_you_mean(text, zoneinfo.available_timezones())
        fix = "" if hint else "; use an IANA name such as Europe/Paris"
        diags.at(node, f"unknown time zone '{text}'{hint}{fix}", path)
        return None


def _uuid(node: Node, path: str, diags: Diagnostics) -> str | None:
    text = STR(node, path, diags)
    try:
        return format_uuid(text) if text is not None else None
    except ValueError:
        diags.at(node, f"'{text}' is not a UUID: write 32 hex digits as 8-4-4-4-12", path)
        return None


def _namespace(node: Node, path: str, diags: Diagnostics) -> str | None:
    text = STR(node, path, diags)
    if text is not None and not _NAMESPACE.match(text):
        diags.at(node, f"'{text}' is not an Eddystone namespace: write 20 hex digits", path)
        return None
    return text.lower() if text is not None else None


def _beacon_id(node: Node, path: str, diags: Diagnostics) -> str | None:
    text = STR(node, path, diags)
    device = canonical_device_id(text) if text is not None else None
    if text is not None and (device is None or device.startswith("phone:")):
        diags.at(node, f"'{text}' is not a beacon id: write {_BEACON_FORMS}", path)
        return None
    return device


def _latlon(node: Node, path: str, diags: Diagnostics) -> LatLon | None:
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


XY = list_of(_point(float_in(), float_in(), "[x, y] in metres"), min_len=3)
LATLON = list_of(_point(LAT, LON, "[lat, lon]"), min_len=3)


def _polygon(
    points: list[tuple[float, float]], node: Node, path: str, d: Diagnostics
) -> Polygon | None:
    poly = Polygon(points)
    if not poly.is_valid:
        why = explain_validity(poly)
        d.at(node, f"invalid polygon ({why}): list the corners in order along the outline", path)
        return None
    if poly.area <= 0:
        d.at(node, "the polygon has no area: give at least 3 corners not on a line", path)
        return None
    return poly


# ---------------------------------------------------------------------------------- sections


def _store(node: Node | None, diags: Diagnostics) -> StoreConfig | None:
    keys = ("id", "name", "timezone", "origin")
    r = MapReader.of(node, "store", diags, keys, required=("id", "timezone"))
    if r is None:
        return None
    sid, tz = r.req("id", ID), r.req("timezone", _timezone)
    name, origin = r.opt("name", STR, sid or ""), r.maybe("origin", _latlon)
    return StoreConfig(sid, name, tz, origin) if sid is not None and tz is not None else None


def _mqtt(node: Node | None, base: Path, diags: Diagnostics) -> MqttConfig:
    keys = ("host", "port", "username", "password", "password_file", "tls", "topic_prefix")
    r = MapReader.of(node, "mqtt", diags, (*keys, "client_id", "keepalive"))
    if r is None:
        return MqttConfig()
    if r.has("password"):
        msg = "secrets never live in the YAML: put it in a file and name it in mqtt.password_file"
        diags.add(r.key_mark("password"), msg, r.at("password"))
    return MqttConfig(
        host=r.opt("host", STR, "localhost"),
        port=r.opt("port", int_in(1, 65535), 1883),
        username=r.maybe("username", STR),
        password_file=r.maybe("password_file", path_under(base)),
        tls=_tls(r, base),
        topic_prefix=r.opt("topic_prefix", _topic_prefix, "rayon"),
        client_id=r.maybe("client_id", STR),
        keepalive_s=round(r.opt("keepalive", duration_in(5, 3600), 30.0)),
    )


def _topic_prefix(node: Node, path: str, diags: Diagnostics) -> str | None:
    text = STR(node, path, diags)
    if text is not None and (set(text) & {"+", "#"} or text.startswith("/") or text.endswith("/")):
        diags.at(node, f"invalid topic prefix '{text}': no '+', '#' or leading/trailing '/'", path)
        return None
    return text


def _tls(mqtt: MapReader, base: Path) -> TlsConfig | None:
    node, diags = mqtt.value("tls"), mqtt.diags
    if node is None or is_null(node):
        return None
    if isinstance(node, ScalarNode):  # `tls: true` = system CAs, `tls: false` = plain TCP
        return TlsConfig() if BOOL(node, mqtt.at("tls"), diags) else None
    r = MapReader.of(node, mqtt.at("tls"), diags, ("ca_file", "cert_file", "key_file"))
    if r is None:
        return None
    if r.has("cert_file") != r.has("key_file"):
        diags.at(
            node, "give both cert_file and key_file (a client certificate and its key)", r.path
        )
    files = [r.maybe(k, path_under(base)) for k in ("ca_file", "cert_file", "key_file")]
    return TlsConfig(*files)


def _database(node: Node | None, base: Path, diags: Diagnostics) -> str:
    r = MapReader.of(node, "database", diags, ("url",), required=("url",))
    url = (r.req("url", STR) if r is not None else None) or _DEFAULT_DB
    if r is not None and r.has("url") and "://" not in url:
        msg = f"'{url}' is not a database URL: write sqlite:///rayon.db or postgresql+psycopg://…"
        diags.add(r.key_mark("url"), msg, r.at("url"))
    m = _SQLITE.match(url)
    if m is None or m.group(2).startswith(":memory:"):
        return url
    return f"{m.group(1)}:///{base / m.group(2)}{m.group(3) or ''}"


def _sources(node: Node | None, anchors: tuple[Anchor, ...], diags: Diagnostics) -> SourcesConfig:
    keys = ("ble", "scanner_nodes", "espresense", "phone_reports")
    r = MapReader.of(node, "sources", diags, keys)
    if r is None:
        return SourcesConfig()
    return SourcesConfig(
        ble=_ble(r, anchors),
        scanner_nodes=r.opt("scanner_nodes", BOOL, True),
        espresense=r.opt("espresense", BOOL, False),
        phone_reports=r.opt("phone_reports", BOOL, True),
    )


def _ble(sources: MapReader, anchors: tuple[Anchor, ...]) -> BleSourceConfig | None:
    node, path, diags = sources.value("ble"), sources.at("ble"), sources.diags
    if node is None or is_null(node):
        return None  # absent or null: the Pi's own radio is not used
    if isinstance(node, ScalarNode):
        return _ble_anchor(BleSourceConfig(), anchors, sources) if BOOL(node, path, diags) else None
    r = MapReader.of(node, path, diags, ("adapter", "scanning_mode", "anchor"))
    if r is None:
        return None
    ble = BleSourceConfig(
        adapter=r.opt("adapter", STR, "hci0"),
        scanning_mode=r.opt("scanning_mode", enum_of(ScanningMode), ScanningMode.ACTIVE),
        anchor=r.maybe("anchor", ID),
    )
    return _ble_anchor(ble, anchors, sources, r)


def _ble_anchor(
    ble: BleSourceConfig,
    anchors: tuple[Anchor, ...],
    sources: MapReader,
    r: MapReader | None = None,
) -> BleSourceConfig:
    """Default `anchor` to the first scanner; check a given one is a scanner anchor."""
    scanners = [a.id for a in anchors if a.kind is AnchorKind.SCANNER]
    if ble.anchor is None and scanners:
        return replace(ble, anchor=scanners[0])
    if ble.anchor is None and (r is None or not r.has("anchor")):
        msg = "the Pi's radio needs a scanner anchor: add one (kind: scanner) or set ble: false"
        sources.diags.add(sources.key_mark("ble"), msg, sources.at("ble"))
    elif ble.anchor is not None and ble.anchor not in scanners and r is not None:
        known = f"; scanner anchors: {', '.join(scanners)}" if scanners else "; add one"
        hint = did_you_mean(ble.anchor, scanners) or known
        msg = f"'{ble.anchor}' is not a scanner anchor{hint}"
        sources.diags.add(r.key_mark("anchor"), msg, r.at("anchor"))
    return ble


def _identity(node: Node | None, diags: Diagnostics) -> IdentityConfig:
    keys = ("proximity_uuids", "eddystone_namespaces")
    r = MapReader.of(node, "identity", diags, keys)
    if r is None:
        return IdentityConfig()
    uuids = r.opt("proximity_uuids", list_of(_uuid), list[str]())
    namespaces = r.opt("eddystone_namespaces", list_of(_namespace), list[str]())
    return IdentityConfig(tuple(dict.fromkeys(uuids)), tuple(dict.fromkeys(namespaces)))


def _visits(node: Node | None, diags: Diagnostics) -> VisitsConfig:
    r = MapReader.of(node, "visits", diags, ("gap", "timeout"))
    d = VisitsConfig()
    if r is None:
        return d
    return VisitsConfig(r.opt("gap", POSITIVE, d.gap), r.opt("timeout", POSITIVE, d.timeout))


def _retention(node: Node | None, diags: Diagnostics) -> RetentionConfig:
    r = MapReader.of(node, "retention", diags, ("observations", "events", "offers"))
    d = RetentionConfig()
    if r is None:
        return d
    return RetentionConfig(
        r.opt("observations", POSITIVE, d.observations),
        r.opt("events", POSITIVE, d.events),
        r.opt("offers", POSITIVE, d.offers),
    )


# ---------------------------------------------------------------------------------- lists


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
    exponent = r.opt("path_loss_exponent", float_in(1.0, 6.0), 2.0)
    if aid is None or kind is None or x is None or y is None:
        return None
    return Anchor(aid, kind, x, y, rssi, exponent, beacon if kind is AnchorKind.BEACON else None)


_ZONE_KEYS = ("id", "name", "polygon", "enter_after", "exit_after", "margin")


def _zone(node: Node, path: str, diags: Diagnostics) -> Zone | None:
    r = MapReader.of(node, path, diags, _ZONE_KEYS, required=("id", "polygon"))
    if r is None:
        return None
    zid, points = r.req("id", ID), r.req("polygon", XY)
    poly_node = r.value("polygon")
    poly = _polygon(points, poly_node, r.at("polygon"), diags) if points and poly_node else None
    zone = Zone(
        id=zid or "",
        name=r.opt("name", STR, zid or ""),
        polygon=poly or Polygon(),
        enter_after=r.opt("enter_after", DURATION, 2.0),
        exit_after=r.opt("exit_after", DURATION, 10.0),
        margin_m=r.opt("margin", float_in(0.0, 50.0), 0.0),
    )
    return zone if zid is not None and poly is not None else None


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
        polygon=shape,
        center=center,
        radius_m=radius,
        enter_after=r.opt("enter_after", DURATION, 0.0),
        exit_after=r.opt("exit_after", DURATION, 0.0),
    )
    return fence if gid is not None and (shape is not None or center is not None) else None


def _geo_polygon(r: MapReader) -> Polygon | None:
    """[[lat, lon], …] in the YAML -> a shapely Polygon of (lon, lat), as GeoJSON orders them."""
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
