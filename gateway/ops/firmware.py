"""ESPHome firmware for the store's ESP32 nodes, rendered from config.yaml and checked against it.

`firmware_configs/` holds two ESPHome templates: `scanner-node.yaml` (mode A: hears the phones'
iBeacon, publishes `scanners/<node>/adv`) and `store-beacon.yaml` (mode B: a fixed iBeacon).
Every per-anchor value is an ESPHome substitution at the top of the template.

    render_all(config, out_dir)      one `<anchor id>.yaml` per anchor, except the Pi's own radio
    check_firmware(config, folder)   every disagreement between those files and config.yaml

A rendered file is recognised by its `anchor_kind` and `anchor_id` substitutions; other YAML
files of the folder (secrets.yaml) are left alone.  ESPHome's custom tags (`!secret`, `!lambda`,
`!include` …) load through `ESPHomeLoader` as `Tagged` values.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode

from gateway.config.commandline import config_of
from gateway.config.model import Anchor, AnchorKind, Config
from gateway.config.yamlsrc import did_you_mean
from gateway.errors import Diagnostic, Severity
from gateway.ids import canonical_device_id

TEMPLATES = Path(__file__).resolve().parents[2] / "firmware_configs"
TEMPLATE_FILES = {AnchorKind.SCANNER: "scanner-node.yaml", AnchorKind.BEACON: "store-beacon.yaml"}
NODE_TLS_PORT = 8883  # deploy/mosquitto: nodes reach the broker on its LAN TLS listener
_TEMPLATE_NOTE = "# This is a TEMPLATE."  # the paragraph it starts is left out of rendered files
_PASSWORD = re.compile(r"!secret mqtt_password(?=\s|$)", re.MULTILINE)
_SUB_LINE = re.compile(r"^(  (\w+): )(\S.*?)(\s+#.*)?$")
_ESPHOME_TAGS = (
    "!secret", "!lambda", "!include", "!include_dir_list", "!include_dir_merge_list",
    "!include_dir_named", "!include_dir_merge_named", "!env_var", "!extend", "!remove", "!force",
)  # fmt: skip


# -- loading ESPHome YAML --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Tagged:
    """A value under one of ESPHome's custom tags: `!secret wifi_ssid` → Tagged("!secret", …)."""

    tag: str
    value: object


class ESPHomeLoader(yaml.SafeLoader):
    """A SafeLoader that also reads ESPHome's custom tags, as `Tagged` values."""


def _construct_tagged(loader: yaml.SafeLoader, node: Node) -> Tagged:
    if isinstance(node, ScalarNode):
        return Tagged(node.tag, loader.construct_scalar(node))
    if isinstance(node, MappingNode):
        return Tagged(node.tag, loader.construct_mapping(node, deep=True))
    return Tagged(node.tag, loader.construct_sequence(node, deep=True))  # type: ignore[arg-type]


for _tag in _ESPHOME_TAGS:
    ESPHomeLoader.add_constructor(_tag, _construct_tagged)


def load_esphome(text: str) -> object:
    """The value of an ESPHome YAML document; yaml.YAMLError when it is not YAML."""
    return yaml.load(text, Loader=ESPHomeLoader)


# -- rendering -------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `rayon firmware render`."""
    parser.add_argument("-o", "--output", help="folder (default: firmware/ beside config.yaml)")


def run(args: argparse.Namespace) -> int:
    """`rayon firmware render`: write the files, say how to flash them; 0."""
    config = config_of(args)
    folder = Path(args.output) if args.output else firmware_folder(config)
    for path in render_all(config, folder):
        print(f"wrote {path}", file=sys.stderr)
    print(
        f"flash each with `esphome run <file>`; secrets go in {folder / 'secrets.yaml'}",
        file=sys.stderr,
    )
    return 0


def firmware_folder(config: Config) -> Path:
    """Where `rayon firmware render` writes and `rayon check` looks: beside config.yaml."""
    return config.path.parent / "firmware"


def pi_anchor(config: Config) -> str | None:
    """The scanner anchor that is the Pi's own radio (no firmware), or None without one."""
    ble = config.sources.ble
    if ble is None:
        return None
    scanners = [a.id for a in config.anchors if a.kind is AnchorKind.SCANNER]
    return ble.anchor or (scanners[0] if scanners else None)


def firmware_anchors(config: Config) -> tuple[Anchor, ...]:
    """The anchors that need an ESP32: scanners but the Pi's radio, and iBeacon store beacons."""
    pi = pi_anchor(config)
    return tuple(
        a
        for a in config.anchors
        if (a.kind is AnchorKind.SCANNER and a.id != pi) or ibeacon_parts(a) is not None
    )


def ibeacon_parts(anchor: Anchor) -> tuple[str, int, int] | None:
    """(uuid, major, minor) of a beacon anchor whose device id is an iBeacon, else None."""
    if anchor.kind is not AnchorKind.BEACON or anchor.beacon is None:
        return None
    canonical = canonical_device_id(anchor.beacon) or ""
    parts = canonical.split(":")
    if len(parts) != 4 or parts[0] != "ibeacon":
        return None
    return parts[1], int(parts[2]), int(parts[3])


def device_name(anchor_id: str) -> str:
    """The anchor id as an ESPHome node name: lowercase letters, digits and hyphens, ≤ 31."""
    name = re.sub(r"[^a-z0-9-]+", "-", anchor_id.lower()).strip("-")
    return name[:31].rstrip("-") or "rayon-node"


def _is_loopback(host: str) -> bool:
    if host.lower() in ("localhost", "localhost.localdomain", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def substitutions_for(config: Config, anchor: Anchor) -> dict[str, str]:
    """The ESPHome substitutions of `anchor`'s firmware, as the template names them.

    A broker on the gateway's loopback is not one a node can reach: the node then takes the
    broker's LAN address from secrets.yaml (`mqtt_broker`) and its TLS port, 8883.
    """
    subs = {
        "anchor_kind": anchor.kind.value,
        "anchor_id": anchor.id,
        "device_name": device_name(anchor.id),
        "store_id": config.store.id,
        "topic_prefix": config.mqtt.topic_prefix,
    }
    if anchor.kind is AnchorKind.SCANNER and not _is_loopback(config.mqtt.host):
        subs |= {"mqtt_broker": config.mqtt.host, "mqtt_port": str(config.mqtt.port)}
    elif anchor.kind is AnchorKind.SCANNER:
        subs["mqtt_port"] = str(NODE_TLS_PORT)
    beacon = ibeacon_parts(anchor)
    if beacon is not None:
        uuid, major, minor = beacon
        subs |= {"beacon_uuid": uuid, "beacon_major": str(major), "beacon_minor": str(minor)}
        subs["measured_power"] = str(measured_power(anchor))
    return subs


def measured_power(anchor: Anchor) -> int:
    """The iBeacon measured power: the anchor's rssi_at_1m, rounded, within ESPHome's -128..0."""
    return max(-128, min(0, round(anchor.rssi_at_1m)))


def render(template: str, subs: dict[str, str], anchor_id: str) -> str:
    """`template` with its substitution values replaced by `subs` (comments kept) and the node's
    own MQTT password secret, `mqtt_password_<anchor id>`."""
    lines, inside, about_template = [], False, False
    for line in template.splitlines():
        about_template = line.startswith(_TEMPLATE_NOTE) or (about_template and line[:1] == "#")
        if not line.startswith((" ", "#")) and line.strip():
            inside = line.rstrip() == "substitutions:"
        m = _SUB_LINE.match(line) if inside else None
        if m is not None and m.group(2) in subs:
            value = f"{m.group(1)}{json.dumps(subs[m.group(2)])}"
            width = len(m.group(1)) + len(m.group(3))
            line = value.ljust(width) + m.group(4) if m.group(4) else value
        if not about_template:
            lines.append(line)
    text = "\n".join(lines) + "\n"
    return _PASSWORD.sub(f"!secret mqtt_password_{anchor_id}", text)


def render_all(config: Config, out_dir: Path, templates: Path = TEMPLATES) -> list[Path]:
    """Write `<anchor id>.yaml` into `out_dir` (created) for every anchor that needs an ESP32;
    return the paths written, in config order."""
    out_dir.mkdir(parents=True, exist_ok=True)
    texts = {kind: (templates / name).read_text("utf-8") for kind, name in TEMPLATE_FILES.items()}
    written = []
    for anchor in firmware_anchors(config):
        header = (
            f"# Rendered by `rayon firmware render` from firmware_configs/"
            f"{TEMPLATE_FILES[anchor.kind]} for anchor {anchor.id!r} of {config.path.name}.\n"
            "# Do not edit: change config.yaml and render again; `rayon check` compares them.\n"
        )
        body = render(texts[anchor.kind], substitutions_for(config, anchor), anchor.id)
        path = out_dir / f"{anchor.id}.yaml"
        path.write_text(header + body, "utf-8")
        written.append(path)
    return written


# -- checking --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Value:
    """One substitution of a rendered file, with its 1-based position."""

    text: str
    line: int
    col: int


def _substitutions(text: str) -> dict[str, _Value] | None:
    """The substitutions of a rendered node config, or None when the file is not one."""
    root = yaml.compose(text, Loader=ESPHomeLoader)
    if not isinstance(root, MappingNode):
        return None
    for key, value in root.value:
        if key.value == "substitutions" and isinstance(value, MappingNode):
            subs = {k.value: _value(v) for k, v in value.value if isinstance(k, ScalarNode)}
            return subs if "anchor_kind" in subs and "anchor_id" in subs else None
    return None


def _value(node: Node) -> _Value:
    text = node.value if isinstance(node, ScalarNode) else ""
    return _Value(str(text), node.start_mark.line + 1, node.start_mark.column + 1)


def check_firmware(config: Config, folder: Path) -> list[Diagnostic]:
    """Every disagreement between the rendered node configs in `folder` and `config`: unknown
    anchor, wrong kind, store, topic prefix or beacon identity; and a warning for each anchor
    that needs an ESP32 and has no file.  A missing folder is not checked (no diagnostics)."""
    if not folder.is_dir():
        return []
    diags: list[Diagnostic] = []
    seen: dict[str, Path] = {}
    for path in sorted(folder.glob("*.yaml")):
        diags.extend(_check_file(config, path, seen))
    diags.extend(_missing(config, folder, seen))
    return diags


def _check_file(config: Config, path: Path, seen: dict[str, Path]) -> Iterator[Diagnostic]:
    try:
        subs = _substitutions(path.read_text("utf-8"))
    except (yaml.YAMLError, OSError, UnicodeDecodeError) as exc:
        mark = getattr(exc, "problem_mark", None)
        line, col = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
        yield Diagnostic(str(path), line, col, f"cannot read this ESPHome file: {_reason(exc)}")
        return
    if subs is None:
        return
    where = _Where(str(path), subs)
    anchor_id, kind = subs["anchor_id"].text, subs["anchor_kind"].text
    anchor = config.anchor(anchor_id)
    if anchor is None:
        names = [a.id for a in firmware_anchors(config)]
        msg = f"unknown anchor '{anchor_id}'{did_you_mean(anchor_id, names)}"
        yield where.error("anchor_id", msg + f": not an anchor of {config.path.name}")
    elif kind != anchor.kind.value:
        msg = f"anchor '{anchor.id}' is a {anchor.kind.value} in {config.path.name}, not a {kind}"
        yield where.error("anchor_kind", msg + "; render this file again")
    elif anchor_id in seen:
        yield where.error("anchor_id", f"anchor '{anchor_id}' is also flashed by {seen[anchor_id]}")
    else:
        seen[anchor_id] = path
        yield from _check_anchor(config, anchor, where)


def _reason(exc: Exception) -> str:
    problem = getattr(exc, "problem", None)
    return str(problem) if problem else str(exc).splitlines()[0]


@dataclass(frozen=True, slots=True)
class _Where:
    """Builds diagnostics located at one substitution of one file."""

    file: str
    subs: dict[str, _Value]

    def error(self, key: str, message: str, severity: Severity = Severity.ERROR) -> Diagnostic:
        v = self.subs.get(key) or self.subs["anchor_kind"]
        return Diagnostic(self.file, v.line, v.col, message, f"substitutions.{key}", severity)


def _check_anchor(config: Config, anchor: Anchor, where: _Where) -> Iterator[Diagnostic]:
    if anchor.id == pi_anchor(config):
        msg = f"anchor '{anchor.id}' is the Pi's own radio (sources.ble.anchor): no ESP32 needed"
        yield where.error("anchor_id", msg)
    expected = substitutions_for(config, anchor)
    checked = ["store_id", "topic_prefix", "beacon_uuid", "beacon_major", "beacon_minor"]
    for key in (k for k in checked if k in expected):
        yield from _compare(where, key, expected[key], Severity.ERROR, config.path.name)
    if "measured_power" in expected:
        power = expected["measured_power"]
        yield from _compare(where, "measured_power", power, Severity.WARNING, config.path.name)


def _compare(
    where: _Where, key: str, expected: str, severity: Severity, config_name: str
) -> Iterator[Diagnostic]:
    found = where.subs.get(key)
    if found is None:
        yield where.error(key, f"missing substitution '{key}' (expected {expected!r})")
    elif found.text.lower() != expected.lower():
        msg = f"{key} is {found.text!r} but {config_name} says {expected!r}"
        yield where.error(key, msg + "; run `rayon firmware render` again", severity)


def _missing(config: Config, folder: Path, seen: dict[str, Path]) -> Iterator[Diagnostic]:
    lines = _anchor_lines(config.path)
    for anchor in firmware_anchors(config):
        if anchor.id not in seen:
            line, col = lines.get(anchor.id, (1, 1))
            msg = f"anchor '{anchor.id}' has no firmware file in {folder}"
            msg += "; run `rayon firmware render`"
            yield Diagnostic(str(config.path), line, col, msg, severity=Severity.WARNING)


def _anchor_lines(config_path: Path) -> dict[str, tuple[int, int]]:
    """Where each anchor's `id` is written in config.yaml (1-based), best effort."""
    try:
        root = yaml.compose(config_path.read_text("utf-8"), Loader=yaml.SafeLoader)
    except (yaml.YAMLError, OSError, UnicodeDecodeError):
        return {}
    anchors = _get(root, "anchors")
    found: dict[str, tuple[int, int]] = {}
    for item in anchors.value if anchors is not None and isinstance(anchors.value, list) else []:
        ident = _get(item, "id")
        if isinstance(ident, ScalarNode):
            found[ident.value] = (ident.start_mark.line + 1, ident.start_mark.column + 1)
    return found


def _get(node: Node | None, key: str) -> Node | None:
    if not isinstance(node, MappingNode):
        return None
    return next((v for k, v in node.value if getattr(k, "value", None) == key), None)
