"""The JSON Schema of config.yaml (docs/config.md), for editors: `rayon schema config`.

Draft-07 keywords only (yaml-language-server validates with draft-07 semantics).  The loader
(`gateway.config.load`) stays the judge: the schema completes keys, shows their help and
underlines what one file shows wrong (an unknown key, a duration or a size written wrong); what
needs more (a `sources.ble.anchor` that is no scanner, a zone that crosses itself) is left to
`rayon check`.
"""

from __future__ import annotations

from typing import Any

from gateway.config.model import AttributeType, FilterKind, PositionMethod

Schema = dict[str, Any]

CONFIG_SCHEMA_FILE = "rayon-config.schema.json"
DURATION_PATTERN = r"^\s*(\d+(\.\d+)?\s*(ms|s|m|h|d|w|y)\s*)+$|^\s*\d+(\.\d+)?\s*$"
SIZE_PATTERN = r"^\s*\d+(\.\d+)?\s*(B|kB|KB|MB|GB)?\s*$"
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"


def _obj(props: dict[str, Schema], required: tuple[str, ...] = (), doc: str = "") -> Schema:
    schema: Schema = {"type": "object", "properties": props, "additionalProperties": False}
    if required:
        schema["required"] = list(required)
    if doc:
        schema["description"] = doc
    return schema


def _t(kind: str, doc: str, **more: Any) -> Schema:
    return {"type": kind, "description": doc, **more}


def _duration(doc: str) -> Schema:
    return {
        "description": doc + " (30s, 5m, 2h, 90d, 1h30m; a bare number is seconds)",
        "anyOf": [
            {"type": "number", "minimum": 0},
            {"type": "string", "pattern": DURATION_PATTERN},
        ],
    }


_STR = "string"
_LATLON = _obj(
    {
        "lat": _t("number", "latitude", minimum=-90, maximum=90),
        "lon": _t("number", "longitude", minimum=-180, maximum=180),
    },
    ("lat", "lon"),
)
_LOGIN = _obj(
    {"username": _t(_STR, "login"), "password_file": _t(_STR, "file holding the password")},
    ("username",),
)
_TLS = {
    "description": "true: system CAs; or the CA and a client certificate",
    "anyOf": [
        {"type": "boolean"},
        _obj(
            {
                k: _t(_STR, f"path of the {k.replace('_', ' ')}")
                for k in ("ca_file", "cert_file", "key_file")
            }
        ),
    ],
}
_POINT = {"type": "array", "minItems": 2, "maxItems": 2, "items": {"type": "number"}}
_POLYGON = {"type": "array", "minItems": 3, "description": "corner points", "items": _POINT}


def _probability(doc: str) -> Schema:
    return _t("number", doc, exclusiveMinimum=0, maximum=1)


LISTEN_PATTERN = r"^(\[[0-9A-Fa-f:.]+\]|[^:\[\]\s]+):[0-9]{1,5}$"


def _console() -> Schema:
    """`console:` (docs/config.md#console)."""
    files = {k: _t(_STR, f"path of the {k.replace('_', ' ')}") for k in ("cert_file", "key_file")}
    return _obj(
        {
            "listen": _t(
                _STR,
                "host:port (127.0.0.1:8080; [::1]:8080); off the loopback needs tls",
                pattern=LISTEN_PATTERN,
            ),
            "users_file": _t(_STR, "the console's users and password hashes"),
            "secret_file": _t(_STR, "the session secret, created 0600 when missing"),
            "audit_log": _t(_STR, "JSON lines of logins and logouts"),
            "session_ttl": _duration("a login lasts this long (12h)"),
            "tls": _obj(files, ("cert_file", "key_file"), "the certificate browsers see"),
            "floor_plan": _obj(
                {
                    "image": _t(_STR, "picture drawn under the plan (PNG, JPEG, SVG)"),
                    "origin": {**_POINT, "description": "floor metres of its top-left pixel"},
                    "metres_per_pixel": _t("number", "scale (0.05)", exclusiveMinimum=0),
                },
                ("image",),
            ),
        },
        doc="`rayon console`, the store's web console (docs/config.md#console)",
    )


def _sections() -> dict[str, Schema]:
    return {
        "store": _obj(
            {
                "id": _t(_STR, "store id, in topics", pattern=ID_PATTERN),
                "name": _t(_STR, "the {store_name} of offers"),
                "timezone": _t(_STR, "IANA time zone, e.g. Europe/Paris"),
                "origin": _LATLON,
            },
            ("id", "timezone"),
            "the store",
        ),
        "mqtt": _obj(
            {
                "host": _t(_STR, "broker host"),
                "port": _t("integer", "broker port", minimum=1, maximum=65535),
                "username": _t(_STR, "login"),
                "password_file": _t(_STR, "file holding the password"),
                "tls": _TLS,
                "topic_prefix": _t(_STR, "first topic level (rayon)"),
                "client_id": _t(_STR, "MQTT client id"),
                "keepalive": _duration("MQTT keepalive"),
                "crm": _LOGIN,
                "tools": _LOGIN,
                "console": _LOGIN,
            },
            doc="the store's broker",
        ),
        "database": _obj(
            {"url": _t(_STR, "sqlite:///rayon.db or postgresql+psycopg://…")}, ("url",)
        ),
        "sources": _obj(
            {
                "ble": {
                    "description": "the Pi's own radio",
                    "anyOf": [
                        {"type": "boolean"},
                        _obj(
                            {
                                "adapter": _t(_STR, "hci0"),
                                "scanning_mode": {"enum": ["active", "passive"]},
                                "anchor": _t(_STR, "the scanner anchor this radio stands for"),
                            }
                        ),
                    ],
                },
                "scanner_nodes": _t("boolean", "MQTT from the ESP32 scanner nodes"),
                "espresense": _t("boolean", "also read espresense/devices/+/+"),
                "phone_reports": _t("boolean", "mode B and GPS from the app"),
            }
        ),
        "identity": _obj(
            {
                "proximity_uuids": {"type": "array", "items": {"type": "string"}},
                "eddystone_namespaces": {"type": "array", "items": {"type": "string"}},
            }
        ),
        "anchors": {
            "type": "array",
            "items": _obj(
                {
                    "id": _t(_STR, "anchor id", pattern=ID_PATTERN),
                    "kind": {"enum": ["scanner", "beacon"]},
                    "x": _t("number", "metres"),
                    "y": _t("number", "metres"),
                    "rssi_at_1m": _t("number", "dBm at 1 m"),
                    "path_loss_exponent": _t(
                        "number", "path-loss exponent", minimum=0.2, maximum=6
                    ),
                    "beacon": _t(_STR, "a store beacon's device id"),
                },
                ("id", "kind", "x", "y"),
            ),
        },
        "zones": {
            "type": "array",
            "items": _obj(
                {
                    "id": _t(_STR, "zone id", pattern=ID_PATTERN),
                    "name": _t(_STR, "{zone_name}"),
                    "polygon": _POLYGON,
                    "enter_after": _duration("inside this long before enter"),
                    "exit_after": _duration("outside this long before exit"),
                    "margin": _t("number", "metres added for exits", minimum=0),
                    "enter_probability": _probability(
                        "this zone's locate.enter_probability (a belief's zone)"
                    ),
                    "exit_probability": _probability(
                        "this zone's locate.exit_probability (a belief's zone)"
                    ),
                },
                ("id", "polygon"),
            ),
        },
        "geofences": {
            "type": "array",
            "items": _obj(
                {
                    "id": _t(_STR, "geofence id", pattern=ID_PATTERN),
                    "name": _t(_STR, "name"),
                    "polygon": _POLYGON,
                    "circle": _obj(
                        {
                            "lat": _t("number", "latitude"),
                            "lon": _t("number", "longitude"),
                            "radius_m": _t("number", "metres"),
                        },
                        ("lat", "lon", "radius_m"),
                    ),
                    "enter_after": _duration("wait before believing an arrival"),
                    "exit_after": _duration("wait before believing a departure"),
                },
                ("id",),
            ),
        },
        "visits": _obj(
            {
                "gap": _duration("seen again after this long away = a new visit"),
                "timeout": _duration("not seen this long = the visit ended"),
            }
        ),
        "retention": _obj(
            {k: _duration(f"how long {k} are kept") for k in ("observations", "events", "offers")}
        ),
        "rules_dir": _t(_STR, "the folder of the rule files, relative to this file"),
        "metrics": _obj({"listen": _t(_STR, "host:port of /metrics")}, ("listen",)),
        "limits": _obj(
            {
                "tracked_devices": _t(
                    "integer", "radio devices located at once", minimum=100, maximum=1_000_000
                )
            }
        ),
        "locate": _obj(
            {
                "method": _t(
                    _STR,
                    "how links become a position (docs/config.md#locate)",
                    enum=[m.value for m in PositionMethod],
                ),
                "filter": _t(
                    _STR, "the RSSI filter of each link", enum=[f.value for f in FilterKind]
                ),
                "fresh": _duration("a link counts that long after it was heard (4s)"),
                "max_speed": _t("number", "walking speed, m/s (2)", minimum=0.3, maximum=10),
                "cell": _t("number", "the grid's cell, metres (1)", minimum=0.25, maximum=5),
                "centroid_power": _t(
                    "number", "k of the centroid's 1/d^k weights (3)", minimum=0.5, maximum=6
                ),
                "radio_map": _t(
                    _STR,
                    "the radio map learned from a calibration walk (`rayon calibrate … "
                    "--map-out`), relative to this file's folder (docs/calibration.md)",
                ),
                "enter_probability": _probability(
                    "a device enters a zone once the belief's probability of it has stayed at "
                    "or above this for enter_after (0.6; 1/0 for point methods)"
                ),
                "exit_probability": _probability(
                    "it exits once the probability has stayed below this for exit_after (0.3; "
                    "at most enter_probability)"
                ),
            },
            doc="how positions are computed; every key has a measured default",
        ),
        "walls": _t(
            "array",
            "polylines in floor metres that people cannot walk through (a door is a gap)",
            items={"type": "array", "minItems": 2, "items": _POINT},
        ),
        "customers": _obj(
            {
                "attributes": _t(
                    "object",
                    "CRM attributes offer texts may cite: name → string | number | boolean",
                    maxProperties=50,
                    additionalProperties={"enum": [a.value for a in AttributeType]},
                )
            }
        ),
        "central": _obj(
            {
                "enabled": _t("boolean", "send the store's journal to the chain's centre (off)"),
                "batch": _t(
                    "integer", "rows per chain/batch message (500)", minimum=1, maximum=5000
                ),
                "in_flight": _t(
                    "integer", "batches sent beyond the centre's mark (8)", minimum=1, maximum=100
                ),
                "resend_after": _duration(
                    "no progress of the centre's mark that long: resend (30s)"
                ),
                "keep": _duration("unacknowledged journal rows are dropped after this (30d)"),
                "bridge": _obj(
                    {
                        "host": _t(_STR, "the central broker"),
                        "port": _t("integer", "its TLS port (8883)", minimum=1, maximum=65535),
                        "ca_file": _t(_STR, "the centre's CA"),
                        "cert_file": _t(_STR, "the store's own client certificate"),
                        "key_file": _t(_STR, "its key"),
                    },
                    ("host",),
                    doc="for `rayon bridge render`",
                ),
            },
            doc="store-and-forward to the chain's central PostgreSQL (docs/config.md#central)",
        ),
        "console": _console(),
        "record": {
            "description": "the rolling recording of consenting customers' adverts "
            "(docs/config.md#record); false turns it off",
            "anyOf": [
                {"type": "boolean"},
                _obj(
                    {
                        "enabled": _t("boolean", "on by default"),
                        "dir": _t(_STR, "folder (default: recording/ beside the SQLite database)"),
                        "retention": _duration("how long lines are kept (24h)"),
                        "max_size": {
                            "description": "at most this much in all (500MB)",
                            "anyOf": [
                                {"type": "integer", "minimum": 1_000_000},
                                {"type": "string", "pattern": SIZE_PATTERN},
                            ],
                        },
                        "segment": _duration("one file per this much time (1h)"),
                    }
                ),
            ],
        },
    }


def config_schema() -> Schema:
    """The schema of config.yaml (draft-07 keywords)."""
    return {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "$id": "https://rayon.dev/schemas/config/v1/" + CONFIG_SCHEMA_FILE,
        "title": "Rayon config.yaml",
        **_obj(_sections(), ("store",), "the store's gateway config (docs/config.md)"),
    }
