"""The floor plan as SVG: metres with y up, every zone with its count hook, anchors by health,
walls, the background picture placed by origin and scale, and text escaped."""

from __future__ import annotations

import struct
import xml.etree.ElementTree as ET
import zlib
from dataclasses import replace
from pathlib import Path

import pytest

from gateway.config.model import Config, FloorPlanImage
from gateway.console.plan import area, image_size, render_plan, zone_outline
from tests.consolekit import console_config

NS = {"svg": "http://www.w3.org/2000/svg"}


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return console_config(tmp_path)


def parse(svg: str) -> ET.Element:
    return ET.fromstring(svg)


def health(anchor: str) -> str:
    return "silent" if anchor == "node-tv" else "ok"


def png(path: Path, width: int, height: int) -> Path:
    """A real (blank) PNG of that size."""
    row = b"\x00" + b"\xff" * width * 3
    raw = zlib.compress(row * height)

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", raw) + chunk(b"IEND", b"")
    )
    return path


def test_the_view_box_is_in_metres_with_y_flipped(config: Config) -> None:
    root = parse(render_plan(config, health))
    x, y, w, h = (float(v) for v in root.attrib["viewBox"].split())
    # the reference store is 40 m x 25 m; a 1 m margin around it
    assert (x, y, w, h) == (-1.0, -26.0, 42.0, 27.0)
    assert root.attrib["data-flip"] == "y"


def test_each_zone_is_drawn_with_its_name_and_a_count_hook(config: Config) -> None:
    root = parse(render_plan(config, health, {"aisle-tv": 3}))
    zones = root.findall("svg:g[@data-zone]", NS)
    assert {z.attrib["data-zone"] for z in zones} == {z.id for z in config.zones}
    tv = next(z for z in zones if z.attrib["data-zone"] == "aisle-tv")
    points = tv.find("svg:polygon", NS)
    assert points is not None
    assert points.attrib["points"] == "23,-7 28,-7 28,-14 23,-14"  # floor y up → SVG -y
    count = tv.find("svg:text[@data-count-for='aisle-tv']", NS)
    assert count is not None and count.text == "3"
    assert any(t.text == "Rayon TV" for t in tv.findall("svg:text", NS))
    # the store, which holds every other zone, is drawn first (under them)
    assert zones[0].attrib["data-zone"] == "store"


def test_anchors_carry_their_id_and_health_class(config: Config) -> None:
    root = parse(render_plan(config, health))
    anchors = {a.attrib["data-anchor"]: a for a in root.findall("svg:circle", NS)}
    assert set(anchors) == {a.id for a in config.anchors}
    assert "anchor-silent" in anchors["node-tv"].attrib["class"].split()
    assert "anchor-ok" in anchors["pi-entrance"].attrib["class"].split()
    assert (
        anchors["pi-entrance"].attrib["cx"] == "20"
        and anchors["pi-entrance"].attrib["cy"] == "-1.5"
    )


def test_walls_and_the_dots_layer(config: Config) -> None:
    walled = replace(config, walls=(((10.0, 0.0), (10.0, 12.0)),))
    root = parse(render_plan(walled, health))
    walls = root.findall("svg:polyline[@class='wall']", NS)
    assert [w.attrib["points"] for w in walls] == ["10,0 10,-12"]
    assert root.find("svg:g[@id='dots']", NS) is not None


def test_the_floor_picture_lies_under_the_plan_at_its_origin_and_scale(
    config: Config, tmp_path: Path
) -> None:
    picture = png(tmp_path / "plan.png", 840, 520)
    placed = FloorPlanImage(image=picture, origin=(-1.0, 25.5), metres_per_pixel=0.05)
    cfg = replace(config, console=replace(config.console, floor_plan=placed))
    root = parse(render_plan(cfg, health))
    image = root.find("svg:image", NS)
    assert image is not None and list(root).index(image) == 0  # drawn first: under the rest
    assert image.attrib["href"] == "/floorplan"
    assert (image.attrib["x"], image.attrib["y"]) == ("-1", "-25.5")
    assert (image.attrib["width"], image.attrib["height"]) == ("42", "26")
    # the view box grows to hold the picture: 42 m wide from x = -1, plus the margin
    assert root.attrib["viewBox"].split()[:3] == ["-2", "-26.5", "44"]


def test_image_size_reads_png_gif_jpeg_and_svg(tmp_path: Path) -> None:
    assert image_size(png(tmp_path / "a.png", 12, 34)) == (12, 34)
    gif = tmp_path / "a.gif"
    gif.write_bytes(b"GIF89a" + struct.pack("<HH", 7, 9) + b"\x00" * 16)
    assert image_size(gif) == (7, 9)
    jpeg = tmp_path / "a.jpg"
    app0 = b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\x00" + b"\x00" * 9
    sof = b"\xff\xc0" + struct.pack(">HBHH", 17, 8, 480, 640) + b"\x00" * 10
    jpeg.write_bytes(b"\xff\xd8" + app0 + sof)
    assert image_size(jpeg) == (640, 480)
    svg = tmp_path / "a.svg"
    svg.write_text(
        '<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" '
        'viewBox="0 0 800 500.4" width="20cm"><rect/></svg>'
    )
    assert image_size(svg) == (800, 500)
    svg.write_text('<svg width="640px" height="480"></svg>')
    assert image_size(svg) == (640, 480)
    other = tmp_path / "a.txt"
    other.write_text("not a picture")
    assert image_size(other) is None
    assert image_size(tmp_path / "missing.png") is None


def test_names_are_escaped(config: Config) -> None:
    zone = replace(config.zones[1], name='<script>alert("x")</script> & co')
    root = parse(render_plan(replace(config, zones=(zone,)), health))
    names = [t.text for t in root.iter("{http://www.w3.org/2000/svg}text")]
    assert '<script>alert("x")</script> & co' in names  # parsed back: it was text, not markup
    assert root.find(".//svg:script", NS) is None


def test_outline_and_area(config: Config) -> None:
    tv = next(z for z in config.zones if z.id == "aisle-tv")
    assert zone_outline(tv) == ((23.0, 7.0), (28.0, 7.0), (28.0, 14.0), (23.0, 14.0))
    assert area(zone_outline(tv)) == 35.0
