"""The `central:` section of config.yaml (docs/config.md#central): the store's link to the
chain's centre, read into `CentralConfig`."""

from __future__ import annotations

from pathlib import Path

from gateway.config.model import BridgeConfig, CentralConfig
from gateway.config.yamlconv import BOOL, STR, MapReader, duration_in, int_in, path_under
from gateway.config.yamlsrc import Diagnostics, Node

_KEYS = ("enabled", "batch", "in_flight", "resend_after", "keep", "bridge")
_BRIDGE_KEYS = ("host", "port", "ca_file", "cert_file", "key_file")


def read_central(node: Node | None, base: Path, diags: Diagnostics) -> CentralConfig:
    """`central:` (absent: off, the defaults)."""
    d = CentralConfig()
    r = MapReader.of(node, "central", diags, _KEYS)
    if r is None:
        return d
    return CentralConfig(
        enabled=r.opt("enabled", BOOL, d.enabled),
        batch=r.opt("batch", int_in(1, 5000), d.batch),
        in_flight=r.opt("in_flight", int_in(1, 100), d.in_flight),
        resend_after=r.opt("resend_after", duration_in(1.0, 3600.0), d.resend_after),
        keep=r.opt("keep", duration_in(3600.0, 366 * 86400.0), d.keep),
        bridge=_bridge(r.value("bridge"), r.at("bridge"), base, diags),
    )


def _bridge(node: Node | None, path: str, base: Path, diags: Diagnostics) -> BridgeConfig | None:
    r = MapReader.of(node, path, diags, _BRIDGE_KEYS, required=("host",))
    if r is None:
        return None
    host = r.req("host", STR)
    if r.has("cert_file") != r.has("key_file"):
        diags.at(r.node, "give both cert_file and key_file (the store's certificate and key)", path)
    files = [r.maybe(k, path_under(base)) for k in ("ca_file", "cert_file", "key_file")]
    if host is None:
        return None
    return BridgeConfig(host, r.opt("port", int_in(1, 65535), 8883), *files)
