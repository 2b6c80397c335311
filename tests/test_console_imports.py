"""`rayon console` is a light process: what it needs of the product imports no numerics nor
geometry (docs/design.md; the import contract in pyproject.toml says it for gateway.console).

Loading config.yaml and the rules, and importing the store and the report's query and KPI code,
leaves numpy, shapely and matplotlib out of the interpreter; the zones keep their outline and
build their shapely polygon only when the gateway asks for it, once per zone.
"""

from __future__ import annotations

from pathlib import Path

from gateway.config.load import load_config
from tests.stores import ROOT
from tests.test_cli_imports import modules_after, under

HEAVY = ("numpy", "shapely", "matplotlib")


def test_loading_config_and_rules_and_reading_the_store_imports_no_numerics() -> None:
    loaded = modules_after(
        """
        from pathlib import Path
        from gateway.config.load import load_config
        from gateway.rules.load import load_rules
        config = load_config(Path("config.example.yaml"))
        rules = load_rules(config.rules_dir, config)
        assert config.zones and config.geofences and rules.rules
        assert all(len(z.outline) >= 3 for z in config.zones)
        import gateway.store.repo
        import gateway.report.kpis
        import gateway.report.query
        """
    )
    assert "gateway.rules.load" in loaded and "gateway.store.repo" in loaded
    assert under(loaded, HEAVY) == []


def test_asking_a_zone_for_its_polygon_imports_shapely() -> None:
    """The check above is no accident of a test run: the gateway's users of `zone.polygon`
    do bring shapely in."""
    loaded = modules_after(
        """
        from pathlib import Path
        from gateway.config.load import load_config
        config = load_config(Path("config.example.yaml"))
        assert config.zones[0].polygon.area > 0
        """
    )
    assert "shapely" in loaded


def test_a_zone_builds_its_polygon_once() -> None:
    config = load_config(ROOT / "config.example.yaml")
    zone = config.zones[0]
    first = zone.polygon
    assert zone.polygon is first  # kept: the shapely build is paid once per zone
    assert list(first.exterior.coords)[:-1] == list(zone.outline)
    fence = next(g for g in config.geofences if g.outline is not None)
    assert fence.polygon is fence.polygon
    circle = next(g for g in config.geofences if g.outline is None)
    assert circle.polygon is None


def test_zones_compare_by_their_outline_not_their_cache() -> None:
    a = load_config(ROOT / "config.example.yaml").zones[0]
    b = load_config(Path(ROOT / "config.example.yaml")).zones[0]
    _ = a.polygon  # a has built its polygon, b not
    assert a == b and hash(a) == hash(b)
