"""`ZoneIndex`: the store's zone polygons prepared once for point-in-zone tests.  Pure."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import shapely

from gateway.config import Zone


class ZoneIndex:
    """The zones' polygons, prepared once, with their margin buffers."""

    def __init__(self, zones: Sequence[Zone]) -> None:
        self.zones = tuple(zones)
        self.ids = tuple(z.id for z in self.zones)
        raw = [z.polygon for z in self.zones]
        grown = [z.polygon.buffer(z.margin_m) if z.margin_m > 0 else z.polygon for z in zones]
        self._geoms = np.array(raw + grown, dtype=object)
        shapely.prepare(self._geoms)

    def masks(self, x: float, y: float) -> tuple[np.ndarray, np.ndarray]:
        """Per zone: is (x, y) inside the polygon; is it inside the polygon grown by margin."""
        hit = shapely.intersects_xy(self._geoms, x, y)
        n = len(self.zones)
        return hit[:n], hit[n:]

    def containing(self, x: float, y: float) -> tuple[str, ...]:
        """Ids of the zones whose polygon contains (x, y), boundary included."""
        inside, _ = self.masks(x, y)
        return tuple(self.ids[i] for i in np.flatnonzero(inside))

    def containing_many(self, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
        """A (zones × points) boolean matrix of containment, boundary included."""
        geoms = self._geoms[: len(self.zones), None]
        return np.asarray(shapely.intersects_xy(geoms, xs[None, :], ys[None, :]), dtype=bool)
