"""The store's floor plan as SVG, from the config: outline, zones with their live counts,
walls, anchors coloured by health, and `console.floor_plan`'s picture under it.

Units are floor metres. The floor's y grows from the shop front to the back, SVG's y grows
downwards, so every point is drawn at (x, -y): the plan then reads like the floor (y up) with
upright text, and the browser draws a device at floor (x, y) at SVG (x, -y) (`data-flip="y"`).
Hooks for the page's script and the browser tests: `data-zone`, `data-count-for`,
`data-anchor` (class `anchor-ok` | `anchor-silent` | `anchor-unknown`), `#dots`.
"""

from __future__ import annotations

import logging
import re
import struct
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from html import escape
from pathlib import Path

from gateway.config.model import Config, FloorPlanImage, Zone

log = logging.getLogger(__name__)

Point = tuple[float, float]
FLOOR_PLAN_URL = "/floorplan"
MARGIN_M = 1.0
ANCHOR_R = 0.35


@dataclass(frozen=True, slots=True)
class Box:
    """A bounding box in floor metres."""

    x0: float
    y0: float
    x1: float
    y1: float

    @staticmethod
    def around(points: Iterable[Point]) -> Box:
        xs, ys = zip(*points, strict=True)
        return Box(min(xs), min(ys), max(xs), max(ys))

    def union(self, other: Box) -> Box:
        return Box(
            min(self.x0, other.x0),
            min(self.y0, other.y0),
            max(self.x1, other.x1),
            max(self.y1, other.y1),
        )

    def contains(self, other: Box) -> bool:
        return (
            self.x0 <= other.x0
            and self.y0 <= other.y0
            and other.x1 <= self.x1
            and other.y1 <= self.y1
        )


def zone_outline(zone: Zone) -> tuple[Point, ...]:
    """A zone's corners in floor metres."""
    return tuple((float(x), float(y)) for x, y in zone.outline)


def area(points: Sequence[Point]) -> float:
    """The polygon's area (shoelace formula)."""
    pairs = zip(points, (*points[1:], points[0]), strict=True)
    return abs(sum(x0 * y1 - x1 * y0 for (x0, y0), (x1, y1) in pairs)) / 2


def image_size(path: Path) -> tuple[int, int] | None:
    """Width and height in pixels of a PNG, GIF, JPEG or SVG file, or None (unreadable,
    other)."""
    try:
        with path.open("rb") as f:
            head = f.read(26)
            if path.suffix.lower() == ".svg":
                return _svg_size(head + f.read(8192))
            if head.startswith(b"\x89PNG\r\n\x1a\n") and len(head) >= 24:
                w, h = struct.unpack(">II", head[16:24])
                return int(w), int(h)
            if head[:6] in (b"GIF87a", b"GIF89a"):
                w, h = struct.unpack("<HH", head[6:10])
                return int(w), int(h)
            if head.startswith(b"\xff\xd8"):
                f.seek(2)
                return _jpeg_size(f.read(1 << 20))
    except OSError:
        return None
    return None


_SVG_TAG = re.compile(rb"<svg\b[^>]*>", re.S)
_SVG_ATTR = re.compile(rb'\b(width|height|viewBox)\s*=\s*["\']([^"\']*)["\']')


def _svg_size(data: bytes) -> tuple[int, int] | None:
    """An SVG's size in user units: its viewBox, else its width and height in plain numbers."""
    tag = _SVG_TAG.search(data)
    if tag is None:
        return None
    attrs = {k.decode(): v.decode(errors="replace") for k, v in _SVG_ATTR.findall(tag.group(0))}
    try:
        if "viewBox" in attrs:
            _x, _y, w, h = (float(v) for v in attrs["viewBox"].replace(",", " ").split())
        else:
            w, h = (
                float(attrs["width"].removesuffix("px")),
                float(attrs["height"].removesuffix("px")),
            )
    except (KeyError, ValueError):
        return None
    return (round(w), round(h)) if w > 0 and h > 0 else None


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    """The frame size in a JPEG's start-of-frame segment (after the SOI marker)."""
    i = 0
    while i + 9 < len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        length = struct.unpack(">H", data[i + 2 : i + 4])[0]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            h, w = struct.unpack(">HH", data[i + 5 : i + 9])
            return int(w), int(h)
        i += 2 + length
    return None


@dataclass(frozen=True, slots=True)
class Picture:
    """Where the floor plan's picture lies, in floor metres (top-left corner, size)."""

    x: float
    y: float
    width: float
    height: float

    @property
    def box(self) -> Box:
        return Box(self.x, self.y - self.height, self.x + self.width, self.y)


def picture(image: FloorPlanImage) -> Picture | None:
    """The picture's place on the floor, or None when its size cannot be read."""
    size = image_size(image.image)
    if size is None:
        log.warning(
            "console.floor_plan: cannot read the size of %s (PNG, GIF or JPEG)", image.image
        )
        return None
    mpp = image.metres_per_pixel
    return Picture(image.origin[0], image.origin[1], size[0] * mpp, size[1] * mpp)


def _up(y: float) -> float:
    """Floor y as SVG y (y up); never "-0"."""
    return -y + 0.0


def _pts(points: Iterable[Point]) -> str:
    return " ".join(f"{x:g},{_up(y):g}" for x, y in points)


def _attr(value: str) -> str:
    return escape(value, quote=True)


def plan_bounds(config: Config, pic: Picture | None) -> Box:
    """Everything drawn: zones, anchors, walls and the picture."""
    points: list[Point] = [p for z in config.zones for p in zone_outline(z)]
    points += [(a.x, a.y) for a in config.anchors]
    points += [p for wall in config.walls for p in wall]
    box = Box.around(points or [(0.0, 0.0), (10.0, 10.0)])
    return box.union(pic.box) if pic is not None else box


def render_plan(
    config: Config, health: Callable[[str], str], counts: Mapping[str, int] | None = None
) -> str:
    """The plan's `<svg>` element; `health(anchor)` is `ok`, `silent` or `unknown`, `counts`
    each zone's occupancy now."""
    pic = picture(config.console.floor_plan) if config.console.floor_plan is not None else None
    box = plan_bounds(config, pic)
    view = Box(box.x0 - MARGIN_M, box.y0 - MARGIN_M, box.x1 + MARGIN_M, box.y1 + MARGIN_M)
    parts = [
        f'<svg id="plan" xmlns="http://www.w3.org/2000/svg" data-flip="y" '
        f'viewBox="{view.x0:g} {_up(view.y1):g} {view.x1 - view.x0:g} {view.y1 - view.y0:g}" '
        'role="img" aria-label="floor plan">',
    ]
    if pic is not None:
        parts.append(
            f'<image id="floor-image" href="{FLOOR_PLAN_URL}" x="{pic.x:g}" y="{_up(pic.y):g}" '
            f'width="{pic.width:g}" height="{pic.height:g}" preserveAspectRatio="none"/>'
        )
    parts.append(
        f'<rect class="store-outline" x="{box.x0:g}" y="{_up(box.y1):g}" '
        f'width="{box.x1 - box.x0:g}" height="{box.y1 - box.y0:g}"/>'
    )
    parts += _zones(config.zones, counts or {})
    parts += [f'<polyline class="wall" points="{_pts(w)}"/>' for w in config.walls]
    parts += [_anchor(a.id, a.kind.value, a.x, a.y, health(a.id)) for a in config.anchors]
    parts.append('<g id="dots"></g></svg>')
    return "\n".join(parts)


def _zones(zones: Sequence[Zone], counts: Mapping[str, int]) -> list[str]:
    """Largest first, so a small zone is drawn (and clicked) above the one it lies in."""
    outlines = {z.id: zone_outline(z) for z in zones}
    boxes = {z.id: Box.around(outlines[z.id]) for z in zones}
    ordered = sorted(zones, key=lambda z: -area(outlines[z.id]))
    return [_zone(z, outlines[z.id], boxes, counts.get(z.id, 0)) for z in ordered]


def _zone(zone: Zone, outline: tuple[Point, ...], boxes: dict[str, Box], count: int) -> str:
    box = boxes[zone.id]
    holds_others = any(k != zone.id and box.contains(b) for k, b in boxes.items())
    if holds_others:  # the store itself: its label in a corner, clear of the aisles
        x, y, anchor = box.x0 + 0.4, box.y1 - 1.8, "start"
    else:
        x = sum(p[0] for p in outline) / len(outline)
        y, anchor = sum(p[1] for p in outline) / len(outline), "middle"
    zid = _attr(zone.id)
    return (
        f'<g class="zone" data-zone="{zid}"><title>{escape(zone.name)}</title>'
        f'<polygon points="{_pts(outline)}"/>'
        f'<text class="zone-name" x="{x:g}" y="{_up(y) - 0.9:g}" text-anchor="{anchor}">'
        f"{escape(zone.name)}</text>"
        f'<text class="zone-count" data-count-for="{zid}" x="{x:g}" y="{_up(y) + 1.6:g}" '
        f'text-anchor="{anchor}">{count:d}</text></g>'
    )


def _anchor(anchor: str, kind: str, x: float, y: float, health: str) -> str:
    aid = _attr(anchor)
    return (
        f'<circle class="anchor anchor-{kind} anchor-{_attr(health)}" data-anchor="{aid}" '
        f'cx="{x:g}" cy="{_up(y):g}" r="{ANCHOR_R:g}"><title>{escape(anchor)}</title></circle>'
    )
