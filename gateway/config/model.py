"""config.yaml (operator-owned, docs/config.md) parsed once into typed, frozen values.

`load_config(path)` returns a `Config` or raises `ConfigError` listing every problem with
file:line:col, the key path and a "did you mean" where a near name exists.
Durations are float seconds; outlines are tuples of corner points (`Zone.polygon` builds the
shapely geometry on first use, so loading a config imports no shapely); UUIDs are lowercase
strings.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

if TYPE_CHECKING:
    from shapely.geometry import Polygon

Outline = tuple[tuple[float, float], ...]  # a polygon's corners, not repeating the first


@dataclass(frozen=True, slots=True)
class LatLon:
    lat: float
    lon: float


@dataclass(frozen=True, slots=True)
class StoreConfig:
    id: str
    name: str
    timezone: ZoneInfo
    origin: LatLon | None = None


@dataclass(frozen=True, slots=True)
class TlsConfig:
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None


@dataclass(frozen=True, slots=True)
class LoginConfig:
    """A login of its own for one of the gateway's connections (`mqtt.crm`, `mqtt.tools`)."""

    username: str | None = None
    password_file: Path | None = None


@dataclass(frozen=True, slots=True)
class MqttConfig:
    host: str = "localhost"
    port: int = 1883
    username: str | None = None
    password_file: Path | None = None
    tls: TlsConfig | None = None
    topic_prefix: str = "rayon"
    client_id: str | None = None
    keepalive_s: int = 30
    # The CRM's consent-bearing records are read on a connection of their own (its own client
    # id and persistent session); None: that connection logs in as the gateway does.
    crm: LoginConfig | None = None
    tools: LoginConfig | None = None  # forget, doctor, replay, demo: a login of their own
    console: LoginConfig | None = None  # `rayon console`: reads the live topics, nothing more


@dataclass(frozen=True, slots=True)
class DatabaseConfig:
    url: str


class ScanningMode(StrEnum):
    ACTIVE = "active"
    PASSIVE = "passive"


@dataclass(frozen=True, slots=True)
class BleSourceConfig:
    """The Pi's own radio.  `anchor` names the scanner anchor it stands for."""

    adapter: str = "hci0"
    scanning_mode: ScanningMode = ScanningMode.ACTIVE
    anchor: str | None = None


@dataclass(frozen=True, slots=True)
class SourcesConfig:
    ble: BleSourceConfig | None = None
    scanner_nodes: bool = True
    espresense: bool = False
    phone_reports: bool = True


@dataclass(frozen=True, slots=True)
class IdentityConfig:
    proximity_uuids: tuple[str, ...] = ()
    eddystone_namespaces: tuple[str, ...] = ()


class AnchorKind(StrEnum):
    SCANNER = "scanner"
    BEACON = "beacon"


@dataclass(frozen=True, slots=True)
class Anchor:
    """A fixed end of observations: a scanner (mode A) or a store beacon (mode B)."""

    id: str
    kind: AnchorKind
    x: float
    y: float
    rssi_at_1m: float = -59.0
    path_loss_exponent: float = 2.0
    beacon: str | None = None  # canonical device id of a store beacon (kind beacon only)


def _shapely_polygon(outline: Outline, kept: list[Polygon]) -> Polygon:
    """The shapely Polygon of `outline`, built on the first call and kept in `kept` (its owner's
    own cell: a frozen owner's outline never changes).  Shapely is imported here only, so the
    console loads config.yaml without it."""
    if not kept:
        from shapely.geometry import Polygon

        kept.append(Polygon(outline))
    return kept[0]


@dataclass(frozen=True, slots=True)
class Zone:
    """A polygon in floor-plan metres with hysteresis (seconds) and an optional margin.

    `outline` is its corners, (x, y) in metres; `polygon` the shapely geometry, built on first
    use and kept.  `enter_probability` / `exit_probability`: the zone's own thresholds on the
    belief's probability, or None for `locate`'s."""

    id: str
    name: str
    outline: Outline
    enter_after: float = 2.0
    exit_after: float = 10.0
    margin_m: float = 0.0
    enter_probability: float | None = None
    exit_probability: float | None = None
    _shape: list[Polygon] = field(
        default_factory=list, init=False, repr=False, compare=False, hash=False
    )

    @property
    def polygon(self) -> Polygon:
        """The outline as a shapely Polygon (built on first use, then kept)."""
        return _shapely_polygon(self.outline, self._shape)


@dataclass(frozen=True, slots=True)
class Geofence:
    """A WGS84 area: `outline` has (lon, lat) corners, as GeoJSON orders them; a circle is
    centre + radius.  `polygon` is the outline's shapely geometry (built on first use)."""

    id: str
    name: str
    outline: Outline | None = None
    center: LatLon | None = None
    radius_m: float | None = None
    enter_after: float = 0.0
    exit_after: float = 0.0
    _shape: list[Polygon] = field(
        default_factory=list, init=False, repr=False, compare=False, hash=False
    )

    @property
    def polygon(self) -> Polygon | None:
        """The outline as a shapely Polygon of (lon, lat), or None for a circle."""
        return None if self.outline is None else _shapely_polygon(self.outline, self._shape)


@dataclass(frozen=True, slots=True)
class VisitsConfig:
    gap: float = 1800.0
    timeout: float = 300.0


@dataclass(frozen=True, slots=True)
class RetentionConfig:
    observations: float = 86400.0
    events: float = 90 * 86400.0
    offers: float = 3 * 365 * 86400.0


@dataclass(frozen=True, slots=True)
class RecordConfig:
    """The rolling recording of `rayon run` (docs/config.md#record): trace segments of what the
    pipeline keeps, gzip-compressed, rotated every `segment`, kept `retention`, at most
    `max_bytes` in all.  `dir` None: the folder of the SQLite database (else of the config)."""

    enabled: bool = True
    dir: Path | None = None
    retention: float = 86400.0
    max_bytes: int = 500_000_000
    segment: float = 3600.0


DEFAULT_TRACKED_DEVICES = 5_000  # the memory budget is set at 5,000 devices (docs/performance.md)


@dataclass(frozen=True, slots=True)
class LimitsConfig:
    """What one store's gateway holds at most, whatever its inputs: beyond `tracked_devices`
    (radio devices located at once) the least recently heard is forgotten, and counted."""

    tracked_devices: int = DEFAULT_TRACKED_DEVICES


PATH_LOSS_EXPONENTS = (0.2, 6.0)  # rooms with walls fit 0.2–0.5; 2 is free space (docs/config.md)


class PositionMethod(StrEnum):
    """How the fresh links of a device become a position (`locate.method`; gateway/locate/)."""

    AUTO = "auto"
    GRID = "grid"
    CENTROID = "centroid"
    STRONGEST = "strongest"
    MULTILATERATION = "multilateration"


class FilterKind(StrEnum):
    """The RSSI filters a link can use (`locate.filter`; compared in docs/accuracy.md)."""

    MEDIAN_EMA = "median-ema"
    WINDOW_IQR = "window-iqr"
    KALMAN = "kalman"
    RAW = "raw"


Polyline = tuple[tuple[float, float], ...]
# A belief's zone: in once its probability has stayed at or above the first, out once below the
# second (`locate.enter_probability` / `exit_probability`; 0 < exit ≤ enter ≤ 1).
ENTER_PROBABILITY = 0.6
EXIT_PROBABILITY = 0.3


@dataclass(frozen=True, slots=True)
class LocateConfig:
    """How positions are computed (`locate:`, docs/config.md).  `method` auto (measured best,
    docs/accuracy.md): the 1/d^k weighted centroid of the strongest fresh links drawn part of
    the way to the grid's estimate (≥ 3 links), the pair's centroid (2), the anchor (1);
    centroid: earlier versions' method; `fresh_s`: how long a link counts; `max_speed` (m/s):
    the walking model (speed gate, grid blur); `cell_m`: the grid's cell size;
    `centroid_power`: the k of the centroid's weights; `radio_map`: the learned radio map
    (`rayon calibrate … --map-out`, docs/calibration.md), resolved against the config file's
    folder, read when the pipeline is built; `enter_probability` / `exit_probability`: the
    zones' thresholds on a belief's probability (a zone may set its own)."""

    method: PositionMethod = PositionMethod.AUTO
    filter: FilterKind = FilterKind.KALMAN
    fresh_s: float = 4.0
    max_speed: float = 2.0
    cell_m: float = 1.0
    centroid_power: float = 3.0
    radio_map: Path | None = None
    enter_probability: float = ENTER_PROBABILITY
    exit_probability: float = EXIT_PROBABILITY


@dataclass(frozen=True, slots=True)
class MetricsConfig:
    """Where the Prometheus endpoint listens (`GET /metrics`); off when the section is absent."""

    host: str = "127.0.0.1"
    port: int = 9108


class AttributeType(StrEnum):
    """The type a CRM attribute is declared with (`customers.attributes`)."""

    STRING = "string"
    NUMBER = "number"
    BOOLEAN = "boolean"


@dataclass(frozen=True, slots=True)
class CustomersConfig:
    """What the CRM's records carry beyond the fixed fields: `attributes` declares the
    `customer.attributes.<name>` offer texts may cite (`{customer.attributes.order_id}`)."""

    attributes: Mapping[str, AttributeType] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True, slots=True)
class BridgeConfig:
    """The store broker's bridge to the chain's central broker (`rayon bridge render`): where
    it is, the centre's CA, and the store's own client certificate and key."""

    host: str
    port: int = 8883
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None


@dataclass(frozen=True, slots=True)
class CentralConfig:
    """Store-and-forward to the chain's centre (`central:`, docs/config.md#central): off by
    default; `batch` rows per message, at most `in_flight` batches beyond the centre's mark,
    sent again from the mark after `resend_after` s without progress, unacknowledged journal
    rows kept `keep` s."""

    enabled: bool = False
    batch: int = 500
    in_flight: int = 8
    resend_after: float = 30.0
    keep: float = 30 * 86400.0
    bridge: BridgeConfig | None = None


@dataclass(frozen=True, slots=True)
class FloorPlanImage:
    """`console.floor_plan`: a picture drawn under the plan; its top-left pixel is at `origin`
    (floor metres) and one pixel is `metres_per_pixel` metres."""

    image: Path
    origin: tuple[float, float] = (0.0, 0.0)
    metres_per_pixel: float = 0.05


@dataclass(frozen=True, slots=True)
class ConsoleConfig:
    """`console:` (docs/console.md): where `rayon console` listens, its users file, the TLS it
    needs off the loopback, the session secret's file (created 0600 when missing; never in
    config.yaml), the audit log of logins, and the floor plan's background."""

    listen: str = "127.0.0.1:8080"
    users_file: Path = Path("/var/lib/rayon-console/users")
    tls: TlsConfig | None = None
    secret_file: Path = Path("/var/lib/rayon-console/session.key")
    audit_log: Path = Path("/var/lib/rayon-console/audit.log")
    floor_plan: FloorPlanImage | None = None
    session_ttl: float = 12 * 3600.0


@dataclass(frozen=True, slots=True)
class Config:
    path: Path
    store: StoreConfig
    mqtt: MqttConfig
    database: DatabaseConfig
    sources: SourcesConfig
    identity: IdentityConfig
    anchors: tuple[Anchor, ...]
    zones: tuple[Zone, ...]
    geofences: tuple[Geofence, ...]
    visits: VisitsConfig
    retention: RetentionConfig
    rules_dir: Path
    metrics: MetricsConfig | None = None
    limits: LimitsConfig = LimitsConfig()
    locate: LocateConfig = LocateConfig()
    walls: tuple[Polyline, ...] = ()  # floor metres; the grid's motion does not cross them
    customers: CustomersConfig = CustomersConfig()
    record: RecordConfig = RecordConfig()
    central: CentralConfig = CentralConfig()
    console: ConsoleConfig = ConsoleConfig()

    def zone(self, zone_id: str) -> Zone | None:
        return next((z for z in self.zones if z.id == zone_id), None)

    def anchor(self, anchor_id: str) -> Anchor | None:
        return next((a for a in self.anchors if a.id == anchor_id), None)

    @property
    def record_dir(self) -> Path:
        """Where the recording's segments are: `record.dir`, else a `recording` folder beside
        the SQLite database file, else beside the config file."""
        if self.record.dir is not None:
            return self.record.dir
        url = self.database.url
        if url.startswith("sqlite") and ":///" in url and ":memory:" not in url:
            return Path(url.split(":///", 1)[1].split("?", 1)[0]).parent / "recording"
        return self.path.absolute().parent / "recording"
