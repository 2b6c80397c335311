"""config.yaml loading: the reference store, located errors, relative paths, robustness."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from shapely.geometry import Point

from gateway.config.load import load_config, parse_config
from gateway.config.model import (
    AnchorKind,
    Config,
    ConsoleConfig,
    FilterKind,
    FloorPlanImage,
    LocateConfig,
    LoginConfig,
    MetricsConfig,
    PositionMethod,
    ScanningMode,
    TlsConfig,
)
from gateway.errors import ConfigError
from gateway.ids import canonical_device_id

EXAMPLE = Path(__file__).resolve().parent.parent / "config.example.yaml"
STORE_UUID = "8d8c1a2e-5b3f-4c1d-9e2a-0f6b7c8d9e10"
AISLES = ("tv", "audio", "smartphones", "computing", "gaming", "photo", "appliances", "accessories")


@pytest.fixture(scope="module")
def example() -> Config:
    return load_config(EXAMPLE)


# ---------------------------------------------------------------------------------- example


def test_example_store_and_services(example: Config) -> None:
    assert example.store.id == "paris-11"
    assert str(example.store.timezone) == "Europe/Paris"
    assert example.store.origin is not None
    assert abs(example.store.origin.lat - 48.8589) < 0.01
    assert abs(example.store.origin.lon - 2.3791) < 0.01
    assert (example.mqtt.host, example.mqtt.port, example.mqtt.topic_prefix) == (
        "localhost",
        1883,
        "rayon",
    )
    assert example.database.url == "sqlite:////var/lib/rayon/rayon.db"
    assert example.identity.proximity_uuids == (STORE_UUID,)
    assert (example.visits.gap, example.visits.timeout) == (1800.0, 300.0)
    assert example.retention.offers == 3 * 365 * 86400.0
    assert example.rules_dir == EXAMPLE.parent / "rules"


def test_example_console(example: Config) -> None:
    assert example.console.listen == "127.0.0.1:8080" and example.console.tls is None
    assert example.console.users_file == Path("/var/lib/rayon-console/users")
    assert example.console.secret_file.parent == example.console.users_file.parent
    assert example.mqtt.console == LoginConfig(
        "rayon-paris-11-console", Path("/etc/rayon/mqtt-console.secret")
    )


def test_example_zones(example: Config) -> None:
    ids = {z.id for z in example.zones}
    expected = {"store", "entrance", "checkout", "click-collect"} | {f"aisle-{a}" for a in AISLES}
    assert expected <= ids
    store = example.zone("store")
    assert store is not None
    assert (store.enter_after, store.exit_after) == (3.0, 60.0)
    minx, miny, maxx, maxy = store.polygon.bounds
    assert 35 <= maxx - minx <= 45 and 20 <= maxy - miny <= 30
    aisles = [z for z in example.zones if z.id.startswith("aisle-")]
    for z in aisles:
        x0, y0, x1, y1 = z.polygon.bounds
        assert 4.0 <= min(x1 - x0, y1 - y0) <= 6.0, z.id
        assert 3.0 <= z.enter_after <= 5.0 and 8.0 <= z.exit_after <= 12.0
        assert store.polygon.covers(z.polygon)
    for a, b in itertools.combinations(aisles, 2):
        assert a.polygon.distance(b.polygon) >= 1.5, (a.id, b.id)  # walkways between aisles


def test_example_anchors(example: Config) -> None:
    scanners = [a for a in example.anchors if a.kind is AnchorKind.SCANNER]
    beacons = [a for a in example.anchors if a.kind is AnchorKind.BEACON]
    assert len(scanners) >= 10 and len(beacons) == 8
    assert "pi-entrance" in {a.id for a in scanners}
    store = example.zone("store")
    assert store is not None
    assert all(store.polygon.covers(Point(a.x, a.y)) for a in example.anchors)
    for b in beacons:
        assert b.beacon is not None and b.beacon.startswith(f"ibeacon:{STORE_UUID}:1:")
        assert canonical_device_id(b.beacon) == b.beacon
    assert len({b.beacon for b in beacons}) == 8
    assert example.sources.ble is not None
    assert example.sources.ble.anchor == "pi-entrance"
    assert example.sources.ble.scanning_mode is ScanningMode.ACTIVE


def test_example_geofences(example: Config) -> None:
    assert len(example.geofences) == 2
    circle = next(g for g in example.geofences if g.center is not None)
    polygon = next(g for g in example.geofences if g.polygon is not None)
    assert circle.radius_m == 300.0 and circle.center is not None
    assert abs(circle.center.lat - 48.8592) < 0.01 and abs(circle.center.lon - 2.3795) < 0.01
    assert polygon.polygon is not None
    lon, lat = polygon.polygon.centroid.coords[0]
    assert abs(lat - 48.8589) < 0.005 and abs(lon - 2.3791) < 0.005  # stored as (lon, lat)


# ---------------------------------------------------------------------------------- errors

VALID_STORE = "store: {id: s1, timezone: UTC}\n"
SQUARE = "[[0, 0], [4, 0], [4, 4], [0, 4]]"

# (name, config text, expected diagnostics as "line:col: message (at path)")
BAD = [
    (
        "did-you-mean",
        VALID_STORE + f"zones:\n  - id: a\n    polygon: {SQUARE}\n    enter_afer: 3s\n",
        ["5:5: error: unknown key 'enter_afer' (did you mean 'enter_after'?) "
         "(at zones[0].enter_afer)"],
    ),
    (
        "unknown key without a near name lists the allowed ones",
        "store: {id: s1, timezone: UTC, colour: red}\n",
        ["1:32: error: unknown key 'colour'; allowed keys: id, name, timezone, origin "
         "(at store.colour)"],
    ),
    (
        "yaml syntax error",
        "store:\n  id: s1\n   timezone: UTC\n",
        ["3:4: error: invalid YAML: 'timezone' is indented more than 'id' above, which already "
         "has a value: align 'timezone' with 'id' (2 spaces)"],
    ),
    (
        "tabs",
        "store:\n\tid: s1\n",
        ["2:1: error: invalid YAML: a tab character: YAML is indented with spaces only; "
         "replace the tab by spaces"],
    ),
    (
        "unknown locate method",
        VALID_STORE + "locate: {method: gird}\n",
        ["2:18: error: unknown value 'gird' (did you mean 'grid'?) (at locate.method)"],
    ),
    (
        "grid cell out of range",
        VALID_STORE + "locate: {cell: 0.1}\n",
        ["2:16: error: 0.1 is out of range: must be between 0.25 and 5.0 (at locate.cell)"],
    ),
    (
        "a wall of one point",
        VALID_STORE + "walls:\n  - [[0, 0], [5, 0]]\n  - [[1, 1]]\n",
        ["4:5: error: expected at least 2 items, got 1 (at walls[1])"],
    ),
    (
        "duplicate key",
        VALID_STORE + "visits: {gap: 30m}\nvisits: {timeout: 5m}\n",
        ["3:1: error: duplicate key 'visits' (first given on line 2): keep one (at visits)"],
    ),
    (
        "bad duration",
        VALID_STORE + "visits: {gap: 30 minutes}\n",
        ["2:15: error: expected a duration such as 30s, 5m, 2h, 90d or 1h30m (a bare number is "
         "seconds), got '30 minutes' (at visits.gap)"],
    ),
    (
        "self-intersecting polygon",
        VALID_STORE + "zones:\n  - {id: bow, polygon: [[0, 0], [4, 4], [4, 0], [0, 4]]}\n",
        ["3:24: error: invalid polygon (Self-intersection[2 2]): list the corners in order along "
         "the outline (at zones[0].polygon)"],
    ),
    (
        "polygon touching itself at a corner",
        VALID_STORE
        + "zones:\n  - {id: t, polygon: [[0, 0], [4, 0], [2, 2], [4, 4], [0, 4], [2, 2]]}\n",
        ["3:22: error: invalid polygon (Ring Self-intersection[2 2]): list the corners in order "
         "along the outline (at zones[0].polygon)"],
    ),
    (
        "polygon crossing itself off the grid",
        VALID_STORE + "zones:\n  - {id: x, polygon: [[0, 0], [3, 1], [3, 0], [0, 1.1]]}\n",
        ["3:22: error: invalid polygon (Self-intersection[1.57142857142857 0.523809523809524]): "
         "list the corners in order along the outline (at zones[0].polygon)"],
    ),
    (
        "polygon with a corner twice in a row",
        VALID_STORE + "zones:\n  - {id: r, polygon: [[0, 0], [4, 0], [4, 0], [4, 4]]}\n",
        ["3:22: error: invalid polygon (Repeated point[4 0]): list each corner once "
         "(at zones[0].polygon)"],
    ),
    (
        "polygon on a line",
        VALID_STORE + "zones:\n  - {id: l, polygon: [[0, 0], [1, 1], [2, 2]]}\n",
        ["3:22: error: invalid polygon (Self-intersection[0 0]): list the corners in order "
         "along the outline (at zones[0].polygon)"],
    ),
    (
        "geofence crossing itself",
        VALID_STORE
        + "geofences:\n  - {id: g, polygon: [[48, 2], [48.1, 2.1], [48, 2.1], [48.1, 2]]}\n",
        ["3:22: error: invalid polygon (Self-intersection[2.05 48.05]): list the corners in order "
         "along the outline (at geofences[0].polygon)"],
    ),
    (
        "polygon of two points",
        VALID_STORE + "zones:\n  - {id: line, polygon: [[0, 0], [4, 4]]}\n",
        ["3:25: error: expected at least 3 items, got 2 (at zones[0].polygon)"],
    ),
    (
        "unknown timezone",
        "store: {id: s1, timezone: Europe/Pari}\n",
        ["1:27: error: unknown time zone 'Europe/Pari' (did you mean 'Europe/Paris'?) "
         "(at store.timezone)"],
    ),
    (
        "password in the yaml",
        VALID_STORE + "mqtt:\n  host: broker\n  password: hunter2\n",
        ["4:3: error: secrets never live in the YAML: put it in a file and name it in "
         "mqtt.password_file (at mqtt.password)"],
    ),
    (
        "several errors reported together",
        VALID_STORE + "mqtt: {port: 99999}\nanchors:\n  - {id: a1, kind: scaner, x: 1, y: 2}\n"
        "zone: []\n",
        [
            "2:14: error: 99999 is out of range: must be between 1 and 65535 (at mqtt.port)",
            "4:20: error: unknown value 'scaner' (did you mean 'scanner'?) (at anchors[0].kind)",
            "5:1: error: unknown key 'zone' (did you mean 'zones'?) (at zone)",
        ],
    ),
    (
        "missing required keys",
        "store: {name: Shop}\n",
        [
            "1:8: error: missing required key 'id' (at store.id)",
            "1:8: error: missing required key 'timezone' (at store.timezone)",
        ],
    ),
    (
        "beacon anchor without its beacon id",
        VALID_STORE + "anchors:\n  - {id: b1, kind: beacon, x: 1, y: 1}\n",
        ["3:5: error: a beacon anchor needs 'beacon: ibeacon:<uuid>:<major>:<minor>' (its device "
         "id) (at anchors[0].beacon)"],
    ),
    (
        "unrecognisable beacon id",
        VALID_STORE
        + "anchors:\n  - {id: b1, kind: beacon, beacon: 'ibeacon:xyz:1:2', x: 1, y: 1}\n",
        ["3:36: error: 'ibeacon:xyz:1:2' is not a beacon id: write ibeacon:<uuid>:<major>:<minor>, "
         "eddystone:<ns>:<instance> or altbeacon:<40 hex> (at anchors[0].beacon)"],
    ),
    (
        "duplicate anchor id",
        VALID_STORE + "anchors:\n  - {id: n1, kind: scanner, x: 1, y: 1}\n"
        "  - {id: n1, kind: scanner, x: 5, y: 1}\n",
        ["4:10: error: duplicate anchor id 'n1' (first on line 3): rename one (at anchors[1].id)"],
    ),
    (
        "ble anchor must be a scanner",
        VALID_STORE + "anchors:\n  - {id: n1, kind: scanner, x: 1, y: 1}\n"
        "  - {id: b1, kind: beacon, beacon: 'ibeacon:" + "ab" * 16 + ":1:1', x: 2, y: 2}\n"
        "sources:\n  ble: {anchor: b1}\n",
        ["6:9: error: 'b1' is not a scanner anchor; scanner anchors: n1 (at sources.ble.anchor)"],
    ),
    (
        "ble without any scanner",
        VALID_STORE + "sources:\n  ble: true\n",
        ["3:3: error: the Pi's radio needs a scanner anchor: add one (kind: scanner) or set "
         "ble: false (at sources.ble)"],
    ),
    (
        "geofence with both shapes",
        VALID_STORE + "geofences:\n  - id: g\n    circle: {lat: 48.8, lon: 2.3, radius_m: 100}\n"
        "    polygon: [[48.8, 2.3], [48.9, 2.3], [48.9, 2.4]]\n",
        ["3:5: error: a geofence needs 'polygon: [[lat, lon], …]' or 'circle: {lat, lon, "
         "radius_m}', not both (at geofences[0])"],
    ),
    (
        "latitude out of range",
        VALID_STORE + "geofences:\n  - {id: g, circle: {lat: 148.8, lon: 2.3, radius_m: 100}}\n",
        ["3:27: error: 148.8 is out of range: must be between -90.0 and 90.0 "
         "(at geofences[0].circle.lat)"],
    ),
    (
        "zone and geofence ids share one namespace",
        VALID_STORE + f"zones:\n  - {{id: front, polygon: {SQUARE}}}\n"
        "geofences:\n  - {id: front, circle: {lat: 48.8, lon: 2.3, radius_m: 100}}\n",
        ["5:10: error: duplicate zone or geofence id 'front' (first on line 3): rename one "
         "(at geofences[0].id)"],
    ),
    (
        "bad proximity uuid",
        VALID_STORE + "identity:\n  proximity_uuids: [8d8c1a2e-5b3f]\n",
        ["3:21: error: '8d8c1a2e-5b3f' is not a UUID: write 32 hex digits as 8-4-4-4-12 "
         "(at identity.proximity_uuids[0])"],
    ),
    (
        "quoted number is not a number",
        VALID_STORE + "anchors:\n  - {id: n1, kind: scanner, x: '3', y: 1}\n",
        ["3:32: error: expected a number, got '3' (at anchors[0].x)"],
    ),
    (
        "empty file",
        "# nothing yet\n",
        ["1:1: error: the file is empty: a config needs at least a 'store' section"],
    ),
    (
        "top level is a list",
        "- store\n",
        ["1:1: error: expected a mapping of {store, mqtt, database, sources, identity, anchors, "
         "…}, got a list"],
    ),
    (
        "console: a misspelt key",
        VALID_STORE + "console: {listn: 127.0.0.1:8080}\n",
        ["2:11: error: unknown key 'listn' (did you mean 'listen'?) (at console.listn)"],
    ),
    (
        "console: listen without a port",
        VALID_STORE + "console: {listen: localhost}\n",
        ["2:19: error: bad address 'localhost': write host:port, e.g. 127.0.0.1:8080, "
         "0.0.0.0:8443 or [::1]:8080 (at console.listen)"],
    ),
    (
        "console: listen on a port out of range",
        VALID_STORE + "console: {listen: '[::1]:70000'}\n",
        ["2:19: error: bad address '[::1]:70000': write host:port, e.g. 127.0.0.1:8080, "
         "0.0.0.0:8443 or [::1]:8080 (at console.listen)"],
    ),
    (
        "console: listen on a bracketed name",
        VALID_STORE + "console: {listen: '[shop]:8080'}\n",
        ["2:19: error: bad address '[shop]:8080': write host:port, e.g. 127.0.0.1:8080, "
         "0.0.0.0:8443 or [::1]:8080 (at console.listen)"],
    ),
    (
        "console: tls without its key",
        VALID_STORE + "console: {tls: {cert_file: console.pem}}\n",
        ["2:16: error: missing required key 'key_file' (at console.tls.key_file)"],
    ),
    (
        "console: tls is files, not a switch",
        VALID_STORE + "console: {tls: true}\n",
        ["2:16: error: expected a mapping of {cert_file, key_file}, got the boolean true "
         "(at console.tls)"],
    ),
    (
        "console: a session shorter than a minute",
        VALID_STORE + "console: {session_ttl: 10s}\n",
        ["2:24: error: 10.0 is out of range: must be between 60.0 and 2592000.0 "
         "(at console.session_ttl)"],
    ),
    (
        "console: a floor plan without its image",
        VALID_STORE + "console: {floor_plan: {origin: [1, 2]}}\n",
        ["2:23: error: missing required key 'image' (at console.floor_plan.image)"],
    ),
    (
        "mqtt.console: a misspelt key",
        VALID_STORE + "mqtt: {console: {username: c, pasword_file: x}}\n",
        ["2:31: error: unknown key 'pasword_file' (did you mean 'password_file'?) "
         "(at mqtt.console.pasword_file)"],
    ),
    (
        "mqtt.console: no username",
        VALID_STORE + "mqtt: {console: {password_file: x}}\n",
        ["2:17: error: missing required key 'username' (at mqtt.console.username)"],
    ),
    (
        "bad id characters",
        "store: {id: 'paris/11', timezone: UTC}\n",
        ["1:13: error: invalid id 'paris/11': use up to 64 letters, digits, '-', '_' or '.' "
         "(at store.id)"],
    ),
]  # fmt: skip


@pytest.mark.parametrize(("name", "text", "expected"), BAD, ids=[b[0] for b in BAD])
def test_malformed_config_is_located(
    tmp_path: Path, name: str, text: str, expected: list[str]
) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        parse_config(path)
    assert [str(d) for d in info.value.diagnostics] == [f"{path}:{e}" for e in expected]
    assert str(info.value) == "\n".join(f"{path}:{e}" for e in expected)


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(tmp_path / "nope.yaml")
    (d,) = info.value.diagnostics
    assert (d.line, d.col) == (1, 1) and d.message.startswith("cannot read the file")


def test_errors_keep_their_key_path_fields(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(VALID_STORE + "zones:\n  - {id: z, polygon: " + SQUARE + ", margin: -1}\n")
    with pytest.raises(ConfigError) as info:
        parse_config(path)
    (d,) = info.value.diagnostics
    assert (d.file, d.line, d.key_path) == (str(path), 3, "zones[0].margin")


# ---------------------------------------------------------------------------------- paths


def test_relative_paths_resolve_against_the_config_folder(tmp_path: Path) -> None:
    folder = tmp_path / "etc" / "rayon"
    folder.mkdir(parents=True)
    path = folder / "config.yaml"
    path.write_text(
        VALID_STORE
        + "mqtt:\n  password_file: secrets/mqtt.secret\n"
        + "  tls: {ca_file: ca.pem, cert_file: /abs/client.pem, key_file: client.key}\n"
        + "database: {url: 'sqlite:///data/rayon.db'}\n"
        + "rules_dir: campaigns/\n"
    )
    config = parse_config(path)
    assert config.mqtt.password_file == folder / "secrets" / "mqtt.secret"
    assert config.mqtt.tls is not None
    assert config.mqtt.tls.ca_file == folder / "ca.pem"
    assert config.mqtt.tls.cert_file == Path("/abs/client.pem")
    assert config.mqtt.tls.key_file == folder / "client.key"
    assert config.database.url == f"sqlite:///{folder}/data/rayon.db"
    assert config.database.url.startswith("sqlite:////")
    assert config.rules_dir == folder / "campaigns"


@pytest.mark.parametrize(
    "url",
    ["sqlite:////var/lib/rayon/rayon.db", "postgresql+psycopg://rayon@db/rayon", "sqlite://"],
)
def test_absolute_and_server_urls_stay(tmp_path: Path, url: str) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(VALID_STORE + f"database: {{url: '{url}'}}\n")
    assert parse_config(path).database.url == url


def test_minimal_config_has_the_documented_defaults(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(VALID_STORE + "zones:\n  - {id: z, polygon: " + SQUARE + "}\n")
    config = parse_config(path)
    assert config.store.name == "s1"
    assert config.sources.ble is None and config.sources.scanner_nodes
    assert config.database.url == f"sqlite:///{tmp_path}/rayon.db"
    assert config.rules_dir == tmp_path / "rules"
    (zone,) = config.zones
    assert (zone.name, zone.enter_after, zone.exit_after, zone.margin_m) == ("z", 2.0, 10.0, 0.0)
    assert zone.polygon.area == 16.0


def test_aliases_and_case_are_normalised(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(
        VALID_STORE
        + "identity:\n  proximity_uuids: [8D8C1A2E5B3F4C1D9E2A0F6B7C8D9E10]\n"
        + "  eddystone_namespaces: [EDD1EBEAC04E5DEFA017]\n"
        + "anchors:\n  - {id: b1, kind: beacon, x: 1, y: 1,\n"
        + "     beacon: 'iBeacon:8D8C1A2E-5B3F-4C1D-9E2A-0F6B7C8D9E10-1-7'}\n"
    )
    config = parse_config(path)
    assert config.identity.proximity_uuids == (STORE_UUID,)
    assert config.identity.eddystone_namespaces == ("edd1ebeac04e5defa017",)
    assert config.anchors[0].beacon == f"ibeacon:{STORE_UUID}:1:7"
    assert (config.anchors[0].rssi_at_1m, config.anchors[0].path_loss_exponent) == (-59.0, 2.0)


def test_an_outline_written_closed_is_one_corner_shorter(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        VALID_STORE + "zones:\n  - {id: z, polygon: [[0, 0], [4, 0], [4, 4], [0, 0]]}\n"
    )
    (zone,) = load_config(path).zones
    assert zone.outline == ((0.0, 0.0), (4.0, 0.0), (4.0, 4.0))
    assert zone.polygon.area == 8.0


def test_geofence_polygon_is_stored_lon_lat(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(
        VALID_STORE + "geofences:\n  - {id: p, polygon: [[48.0, 2.0], [48.0, 2.1], [48.1, 2.1]]}\n"
    )
    (fence,) = parse_config(path).geofences
    assert fence.polygon is not None
    assert list(fence.polygon.exterior.coords)[:3] == [(2.0, 48.0), (2.1, 48.0), (2.1, 48.1)]


# ---------------------------------------------------------------------------------- robustness

_TOKENS = [*"az09 :-[]{},'\"#&*!|>\n\t~.%@?\x00é", "store", "zones", "anchors", "id", "polygon"]
_TOKENS += ["timezone", "UTC", "\n  ", "- ", ": ", "&a ", "*a", "!!int ", "!!binary ", "<<: ", "3s"]
YAMLISH = st.one_of(st.text(), st.lists(st.sampled_from(_TOKENS), max_size=40).map("".join))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=YAMLISH)
def test_arbitrary_yamlish_text_raises_only_config_error(
    tmp_path_factory: pytest.TempPathFactory, text: str
) -> None:
    path = tmp_path_factory.getbasetemp() / "fuzz.yaml"
    path.write_text(text, encoding="utf-8")
    try:
        parse_config(path)
    except ConfigError as exc:
        assert exc.diagnostics and all(d.line >= 1 and d.col >= 1 for d in exc.diagnostics)


EXAMPLE_LINES = EXAMPLE.read_text(encoding="utf-8").splitlines()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    cut=st.integers(0, len(EXAMPLE_LINES) - 1),
    pos=st.integers(0, 80),
    junk=st.text(alphabet=st.sampled_from(list(" :-[]{},'\"x9#\n")), max_size=4),
)
def test_a_damaged_example_raises_only_config_error(
    tmp_path_factory: pytest.TempPathFactory, cut: int, pos: int, junk: str
) -> None:
    lines = list(EXAMPLE_LINES)
    lines[cut] = lines[cut][:pos] + junk + lines[cut][pos + len(junk) :]
    path = tmp_path_factory.getbasetemp() / "damaged.yaml"
    text = "\n".join(lines)
    path.write_text(text, encoding="utf-8")
    try:
        parse_config(path)
    except ConfigError as exc:
        last = text.count("\n") + 2  # the junk may add lines; YAML may point just past the end
        assert all(1 <= d.line <= last for d in exc.diagnostics)


def test_metrics_listen_address(tmp_path: Path) -> None:
    base = EXAMPLE.read_text(encoding="utf-8")
    ok = tmp_path / "ok.yaml"
    ok.write_text(
        base.replace('metrics: {listen: "127.0.0.1:9108"}', "")
        + '\nmetrics: {listen: "0.0.0.0:9200"}\n',
        encoding="utf-8",
    )
    metrics = parse_config(ok).metrics
    assert metrics is not None and (metrics.host, metrics.port) == ("0.0.0.0", 9200)
    assert parse_config(EXAMPLE).metrics == MetricsConfig("127.0.0.1", 9108)
    bad = tmp_path / "bad.yaml"
    base = base.replace('metrics: {listen: "127.0.0.1:9108"}', "")
    bad.write_text(base + '\nmetrics: {listen: "9200"}\n', encoding="utf-8")
    with pytest.raises(ConfigError) as exc:
        parse_config(bad)
    line = base.count("\n") + 2
    assert str(exc.value.diagnostics[0]) == (
        f"{bad}:{line}:19: error: bad address '9200': write host:port, e.g. 127.0.0.1:9108 "
        "(at metrics.listen)"
    )


CONSOLE = """console:
  listen: "[::]:8443"
  users_file: console-users
  secret_file: state/session.key
  audit_log: /var/log/rayon-console/audit.log
  session_ttl: 8h
  tls: {cert_file: tls/console.pem, key_file: tls/console.key}
  floor_plan: {image: plan.png, origin: [-1.5, 26], metres_per_pixel: 0.02}
mqtt:
  console: {username: rayon-s1-console, password_file: mqtt-console.secret}
"""


def test_the_console_section_with_paths_beside_the_config(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    (tmp_path / "plan.png").write_bytes(b"\x89PNG")
    path.write_text(VALID_STORE + CONSOLE, encoding="utf-8")
    config = parse_config(path)
    assert config.console == ConsoleConfig(
        listen="[::]:8443",
        users_file=tmp_path / "console-users",
        tls=TlsConfig(
            cert_file=tmp_path / "tls/console.pem", key_file=tmp_path / "tls/console.key"
        ),
        secret_file=tmp_path / "state/session.key",
        audit_log=Path("/var/log/rayon-console/audit.log"),
        floor_plan=FloorPlanImage(tmp_path / "plan.png", (-1.5, 26.0), 0.02),
        session_ttl=8 * 3600.0,
    )
    assert config.mqtt.console == LoginConfig("rayon-s1-console", tmp_path / "mqtt-console.secret")


def test_the_console_defaults_listen_on_the_loopback(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(VALID_STORE + "console: {}\n", encoding="utf-8")
    config = parse_config(path)
    assert config.console == ConsoleConfig() and config.console.listen == "127.0.0.1:8080"
    assert config.mqtt.console is None
    assert config.console.tls is None and config.console.floor_plan is None


def test_a_floor_plan_image_that_is_not_there_is_named(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(VALID_STORE + "console:\n  floor_plan: {image: plans/shop.png}\n")
    with pytest.raises(ConfigError) as info:
        parse_config(path)
    assert [str(d) for d in info.value.diagnostics] == [
        f"{path}:3:23: error: no picture at {tmp_path / 'plans/shop.png'}: put the floor plan's "
        "image there or remove floor_plan (at console.floor_plan.image)"
    ]


def test_locate_and_walls_are_read_with_their_defaults(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(VALID_STORE)
    config = parse_config(path)
    assert config.locate == LocateConfig() and config.walls == ()
    assert config.locate.method is PositionMethod.AUTO
    path.write_text(
        VALID_STORE
        + "locate: {method: auto, filter: raw, fresh: 2s, max_speed: 1.5, cell: 0.5}\n"
        + "walls:\n  - [[0, 0], [5, 0], [5, 3]]\n"
    )
    config = parse_config(path)
    assert config.locate == LocateConfig(
        PositionMethod.AUTO, FilterKind.RAW, fresh_s=2.0, max_speed=1.5, cell_m=0.5
    )
    assert config.walls == (((0.0, 0.0), (5.0, 0.0), (5.0, 3.0)),)
