"""The `console:` section of config.yaml (docs/config.md#console): where `rayon console` listens,
its users file, session secret, audit log, TLS and floor-plan picture, read into `ConsoleConfig`.

Paths are relative to the config file's folder.  The floor plan's picture is the one file
looked at here: a missing one is reported at `console.floor_plan.image` (the console would
draw the plan without it, silently).  Refusing a non-loopback `listen` without `tls` is
`rayon console`'s job (it says how to fix it where the operator runs it).
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path

from gateway.config.floorplan import POINT_XY
from gateway.config.model import ConsoleConfig, FloorPlanImage, TlsConfig
from gateway.config.yamlconv import STR, MapReader, duration_in, float_in, path_under
from gateway.config.yamlsrc import Diagnostics, Node

_KEYS = ("listen", "users_file", "secret_file", "audit_log", "session_ttl", "tls", "floor_plan")
_LISTEN = re.compile(r"^(?:\[(?P<v6>[^\]]+)\]|(?P<host>[^:\[\]\s]+)):(?P<port>\d{1,5})$")
_LISTEN_FORM = "write host:port, e.g. 127.0.0.1:8080, 0.0.0.0:8443 or [::1]:8080"
SESSION_TTL = duration_in(60.0, 30 * 86400.0)


def read_console(node: Node | None, base: Path, diags: Diagnostics) -> ConsoleConfig:
    """`console:` (absent: the defaults, listening on 127.0.0.1:8080)."""
    d = ConsoleConfig()
    r = MapReader.of(node, "console", diags, _KEYS)
    if r is None:
        return d
    under = path_under(base)
    return ConsoleConfig(
        listen=r.opt("listen", listen_address, d.listen),
        users_file=r.opt("users_file", under, d.users_file),
        tls=_tls(r.value("tls"), r.at("tls"), base, diags),
        secret_file=r.opt("secret_file", under, d.secret_file),
        audit_log=r.opt("audit_log", under, d.audit_log),
        floor_plan=_floor_plan(r.value("floor_plan"), r.at("floor_plan"), base, diags),
        session_ttl=r.opt("session_ttl", SESSION_TTL, d.session_ttl),
    )


def listen_address(node: Node, path: str, diags: Diagnostics) -> str | None:
    """`host:port`, an IPv6 address in brackets (`[::1]:8080`), a port in 1-65535."""
    text = STR(node, path, diags)
    m = _LISTEN.match(text.strip()) if text is not None else None
    if text is None:
        return None
    if m is None or not 0 < int(m["port"]) < 65536 or not _is_v6(m["v6"]):
        diags.at(node, f"bad address {text!r}: {_LISTEN_FORM}", path)
        return None
    return text.strip()


def _is_v6(text: str | None) -> bool:
    """No bracketed part, or an IPv6 address in it."""
    if text is None:
        return True
    try:
        return isinstance(ipaddress.ip_address(text), ipaddress.IPv6Address)
    except ValueError:
        return False


def _tls(node: Node | None, path: str, base: Path, diags: Diagnostics) -> TlsConfig | None:
    """`tls: {cert_file, key_file}` — the certificate the browsers see, and its key."""
    keys = ("cert_file", "key_file")
    r = MapReader.of(node, path, diags, keys, required=keys)
    if r is None:
        return None
    cert, key = (r.req(k, path_under(base)) for k in keys)
    return TlsConfig(cert_file=cert, key_file=key) if cert and key else None


def _floor_plan(
    node: Node | None, path: str, base: Path, diags: Diagnostics
) -> FloorPlanImage | None:
    """`floor_plan: {image, origin: [x, y], metres_per_pixel}` — the picture under the plan."""
    keys = ("image", "origin", "metres_per_pixel")
    r = MapReader.of(node, path, diags, keys, required=("image",))
    if r is None:
        return None
    d = FloorPlanImage(Path())
    image = r.req("image", path_under(base))
    if image is not None and not image.is_file():
        msg = f"no picture at {image}: put the floor plan's image there or remove floor_plan"
        diags.at(r.value("image") or r.node, msg, r.at("image"))
    origin = r.opt("origin", POINT_XY, d.origin)
    scale = r.opt("metres_per_pixel", float_in(0.0001, 10.0), d.metres_per_pixel)
    return FloorPlanImage(image, origin, scale) if image is not None else None
