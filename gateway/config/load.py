"""config.yaml -> `Config` (docs/config.md); every problem reported with file:line:col, key path.

`parse_config(path)` reads one file and has no other effect: it checks nothing on disk besides
the config itself (the files it names are resolved, not opened; the console's floor-plan picture
and `locate.radio_map` alone must be there), so `rayon check` can run it on a laptop.  Relative
paths in the file (`rules_dir`, `mqtt.password_file`, `mqtt.tls.*`, the `console:` files,
`locate.radio_map`, a relative sqlite `database.url`) are resolved against the folder of the
config file.  The floor plan (anchors,
zones, geofences) is read by `gateway.config.floorplan`, `console:` by `gateway.config.console`.

Beyond the contract (docs/design.md §3): `sources.ble.anchor` names the scanner anchor the Pi's
own radio stands for (default: the first anchor of kind scanner).
"""

from __future__ import annotations

import re
import zoneinfo
from dataclasses import replace
from pathlib import Path
from types import MappingProxyType
from zoneinfo import ZoneInfo

from gateway.config.chain import read_central
from gateway.config.console import read_console
from gateway.config.floorplan import check_probabilities, latlon, read_floor_plan, walls
from gateway.config.model import (
    DEFAULT_TRACKED_DEVICES,
    Anchor,
    AnchorKind,
    AttributeType,
    BleSourceConfig,
    Config,
    CustomersConfig,
    DatabaseConfig,
    FilterKind,
    IdentityConfig,
    LimitsConfig,
    LocateConfig,
    LoginConfig,
    MetricsConfig,
    MqttConfig,
    PositionMethod,
    RecordConfig,
    RetentionConfig,
    ScanningMode,
    SourcesConfig,
    StoreConfig,
    TlsConfig,
    VisitsConfig,
)
from gateway.config.yamlconv import (
    BOOL,
    ID,
    PROBABILITY,
    STR,
    Conv,
    MapReader,
    duration_in,
    enum_of,
    float_in,
    int_in,
    list_of,
    path_under,
)
from gateway.config.yamlsrc import (
    Diagnostics,
    MapNode,
    Mark,
    Node,
    ScalarNode,
    did_you_mean,
    is_null,
    load_yaml,
)
from gateway.errors import ConfigError
from gateway.ids import format_uuid

_TOP = (
    "store mqtt database sources identity anchors zones geofences visits retention rules_dir "
    "metrics limits locate walls customers record central console"
)
# As many attributes as one CRM record may carry (gateway/identity/customers.py).
MAX_ATTRIBUTES = 50
_NAMESPACE = re.compile(r"^[0-9a-fA-F]{20}$")
_SQLITE = re.compile(r"^(sqlite(?:\+\w+)?):///(?!/)([^?]+)(\?.*)?$")
_DEFAULT_DB = "sqlite:///rayon.db"
_DATABASES = ("sqlite:", "sqlite+", "postgresql:", "postgresql+")  # what Store runs on
POSITIVE = duration_in(0.001)


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


def load_config(path: Path) -> Config:
    """Parse and validate `path`; raise ConfigError with every problem found."""
    return parse_config(path)


def _build(top: MapReader, path: Path, diags: Diagnostics) -> Config | None:
    base = path.absolute().parent
    locate = _locate(top.value("locate"), base, diags)
    anchors, zones, geofences = read_floor_plan(top, locate)
    store = _store(top.value("store"), diags)
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
        rules_dir=top.opt("rules_dir", _rules_dir(base), base / "rules"),
        metrics=_metrics(top.value("metrics"), diags),
        limits=_limits(top.value("limits"), diags),
        locate=locate,
        walls=top.opt("walls", walls, ()),
        customers=_customers(top.value("customers"), diags),
        record=_record(top.value("record"), base, diags),
        central=read_central(top.value("central"), base, diags),
        console=read_console(top.value("console"), base, diags),
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


# ---------------------------------------------------------------------------------- sections


def _store(node: Node | None, diags: Diagnostics) -> StoreConfig | None:
    keys = ("id", "name", "timezone", "origin")
    r = MapReader.of(node, "store", diags, keys, required=("id", "timezone"))
    if r is None:
        return None
    sid, tz = r.req("id", ID), r.req("timezone", _timezone)
    name, origin = r.opt("name", STR, sid or ""), r.maybe("origin", latlon)
    return StoreConfig(sid, name, tz, origin) if sid is not None and tz is not None else None


def _mqtt(node: Node | None, base: Path, diags: Diagnostics) -> MqttConfig:
    keys = ("host", "port", "username", "password", "password_file", "tls", "topic_prefix")
    logins = ("crm", "tools", "console")
    r = MapReader.of(node, "mqtt", diags, (*keys, "client_id", "keepalive", *logins))
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
        crm=_login(r.value("crm"), "mqtt.crm", base, diags),
        tools=_login(r.value("tools"), "mqtt.tools", base, diags),
        console=_login(r.value("console"), "mqtt.console", base, diags),
    )


def _login(node: Node | None, at: str, base: Path, diags: Diagnostics) -> LoginConfig | None:
    r = MapReader.of(node, at, diags, ("username", "password_file"), required=("username",))
    if r is None:
        return None
    return LoginConfig(r.maybe("username", STR), r.maybe("password_file", path_under(base)))


def _limits(node: Node | None, diags: Diagnostics) -> LimitsConfig:
    r = MapReader.of(node, "limits", diags, ("tracked_devices",))
    if r is None:
        return LimitsConfig()
    devices = r.opt("tracked_devices", int_in(100, 1_000_000), DEFAULT_TRACKED_DEVICES)
    return LimitsConfig(tracked_devices=devices)


_LOCATE_KEYS = (
    "method",
    "filter",
    "fresh",
    "max_speed",
    "cell",
    "centroid_power",
    "radio_map",
    "enter_probability",
    "exit_probability",
)


def _locate(node: Node | None, base: Path, diags: Diagnostics) -> LocateConfig:
    r = MapReader.of(node, "locate", diags, _LOCATE_KEYS)
    if r is None:
        return LocateConfig()
    d = LocateConfig()
    enter = r.opt("enter_probability", PROBABILITY, d.enter_probability)
    leave = r.opt("exit_probability", PROBABILITY, d.exit_probability)
    if not check_probabilities(r, enter, leave, ""):
        enter, leave = d.enter_probability, d.exit_probability  # the zones' checks go on
    return LocateConfig(
        method=r.opt("method", enum_of(PositionMethod), d.method),
        filter=r.opt("filter", enum_of(FilterKind), d.filter),
        fresh_s=r.opt("fresh", duration_in(0.5, 60.0), d.fresh_s),
        max_speed=r.opt("max_speed", float_in(0.3, 10.0), d.max_speed),
        cell_m=r.opt("cell", float_in(0.25, 5.0), d.cell_m),
        centroid_power=r.opt("centroid_power", float_in(0.5, 6.0), d.centroid_power),
        radio_map=r.maybe("radio_map", _radio_map(base)),
        enter_probability=enter,
        exit_probability=leave,
    )


def _radio_map(base: Path) -> Conv[Path]:
    """`locate.radio_map`: a file that must be there (its content is read, and checked, when
    the pipeline is built: gateway.locate.radiomap)."""
    under = path_under(base)

    def conv(node: Node, path: str, diags: Diagnostics) -> Path | None:
        file = under(node, path, diags)
        if file is not None and not file.is_file():
            msg = (
                f"no radio map at {file}: make it with `rayon calibrate WALK --truth TRUTH "
                f"-c CONFIG --map-out {file.name}` (docs/calibration.md), or remove radio_map"
            )
            diags.at(node, msg, path)
        return file

    return conv


def _customers(node: Node | None, diags: Diagnostics) -> CustomersConfig:
    """`customers: {attributes: {order_id: string, locker: string}}`."""
    r = MapReader.of(node, "customers", diags, ("attributes",))
    attributes = r.value("attributes") if r is not None else None
    if attributes is None or is_null(attributes):
        return CustomersConfig()
    path = "customers.attributes"
    if not isinstance(attributes, MapNode):
        diags.at(attributes, "expected a mapping of name: type, e.g. {order_id: string}", path)
        return CustomersConfig()
    if len(attributes.entries) > MAX_ATTRIBUTES:
        msg = f"at most {MAX_ATTRIBUTES} attributes (a CRM record carries no more)"
        diags.at(attributes, msg, path)
    declared: dict[str, AttributeType] = {}
    for entry in attributes.entries:
        where = f"{path}.{entry.key}"
        name = ID(ScalarNode(entry.key, entry.key, entry.key_mark), where, diags)
        kind = enum_of(AttributeType)(entry.value, where, diags)
        if name is not None and kind is not None:
            declared[name] = kind
    return CustomersConfig(MappingProxyType(declared))


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(B|kB|KB|MB|GB)?\s*$")
_SIZE_UNITS = {None: 1, "B": 1, "kB": 1_000, "KB": 1_000, "MB": 1_000_000, "GB": 1_000_000_000}


def _size(node: Node, path: str, diags: Diagnostics) -> int | None:
    """A size such as `500MB`, `2GB` or a bare number of bytes, at least 1 MB."""
    text = STR(node, path, diags)
    m = _SIZE.match(text) if text is not None else None
    if text is None:
        return None
    if m is None:
        diags.at(node, f"expected a size such as 500MB or 2GB, got {text!r}", path)
        return None
    size = int(float(m.group(1)) * _SIZE_UNITS[m.group(2)])
    if size < 1_000_000:
        diags.at(node, f"{text} is too small: give at least 1MB (a segment alone takes more)", path)
        return None
    return size


def _record(node: Node | None, base: Path, diags: Diagnostics) -> RecordConfig:
    """`record: false`, `record: true` or the section (docs/config.md#record)."""
    d = RecordConfig()
    if node is not None and isinstance(node, ScalarNode) and not is_null(node):
        return d if BOOL(node, "record", diags) is not False else RecordConfig(enabled=False)
    keys = ("enabled", "dir", "retention", "max_size", "segment")
    r = MapReader.of(node, "record", diags, keys)
    if r is None:
        return d
    return RecordConfig(
        enabled=r.opt("enabled", BOOL, True),
        dir=r.maybe("dir", path_under(base)),
        retention=r.opt("retention", duration_in(60.0, 366 * 86400.0), d.retention),
        max_bytes=r.opt("max_size", _size, d.max_bytes),
        segment=r.opt("segment", duration_in(60.0, 86400.0), d.segment),
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


def _rules_dir(base: Path) -> Conv[Path]:
    """`rules_dir`: a folder (said here, at the key's value, when it names a file)."""
    under = path_under(base)

    def conv(node: Node, path: str, diags: Diagnostics) -> Path | None:
        folder = under(node, path, diags)
        if folder is not None and folder.exists() and not folder.is_dir():
            msg = f"'{folder.name}' is a file, not a folder: name the folder of the rule files"
            diags.at(node, msg + " (e.g. rules/)", path)
        return folder

    return conv


def _database(node: Node | None, base: Path, diags: Diagnostics) -> str:
    r = MapReader.of(node, "database", diags, ("url",), required=("url",))
    url = (r.req("url", STR) if r is not None else None) or _DEFAULT_DB
    if r is not None and r.has("url") and "://" not in url:
        msg = f"'{url}' is not a database URL: write sqlite:///rayon.db or postgresql+psycopg://…"
        diags.add(r.key_mark("url"), msg, r.at("url"))
    elif r is not None and (given := r.value("url")) is not None and not url.startswith(_DATABASES):
        scheme = url.split("://", 1)[0]  # only the scheme: the rest may carry a password
        msg = f"{scheme!r} databases are not supported: write sqlite:///rayon.db or "
        diags.at(given, msg + "postgresql+psycopg://user@host/db", r.at("url"))
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


def _metrics(node: Node | None, diags: Diagnostics) -> MetricsConfig | None:
    r = MapReader.of(node, "metrics", diags, ("listen",), required=("listen",))
    listen = r.maybe("listen", STR) if r is not None else None
    if r is None or listen is None:
        return None
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        where = r.value("listen")
        assert where is not None
        message = f"bad address {listen!r}: write host:port, e.g. 127.0.0.1:9108"
        diags.at(where, message, "metrics.listen")
        return None
    return MetricsConfig(host.strip("[]") or "127.0.0.1", int(port))


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
