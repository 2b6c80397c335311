"""The recorded data sets the accuracy benchmark knows, by name."""

from __future__ import annotations

from rayon_tooling.accuracy import kolakowski, tetam, uci, uji
from rayon_tooling.accuracy.datasets import Loader

LOADERS: dict[str, Loader] = {
    "tetam": tetam.load,
    "kolakowski": kolakowski.load,
    "uci": uci.load,
    "uji-lib": uji.load_lib,
    "uji-geo": uji.load_geo,
}
