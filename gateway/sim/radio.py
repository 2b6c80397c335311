"""The simulator's radio: how unkind it is (`RadioModel`), shadowing fields over the floor,
noise correlated along a walk, Rician fading, and which adverts are heard at all.

All vectorised with numpy over a whole link (one shopper, one anchor) at a time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

FIELD_STEP_M = 0.5
FIELD_FEATURES = 64


@dataclass(frozen=True, slots=True)
class RadioModel:
    """How unkind the radio is (see the module docstring).  dB unless named otherwise."""

    shadow_sigma: float = 4.0  # spatially correlated shadowing field, one per anchor
    shadow_corr_m: float = 3.0  # its correlation length over the floor
    path_sigma: float = 2.0  # shadowing that moves with the shopper
    path_corr_m: float = 3.0  # its decorrelation distance along the walk
    shadow_white_sigma: float = 1.5  # uncorrelated part
    anchor_offset_sigma: float = 2.0  # per-anchor calibration error
    phone_offset_sigma: float = 2.0  # per-phone transmit / receive offset
    body_share: float = 0.5  # shoppers with the phone in a pocket or bag
    body_loss: tuple[float, float] = (4.0, 10.0)  # loss range with the anchor behind them
    rician_k: float = 4.0  # fast fading (K factor, linear)
    drop_base: float = 0.1  # fraction of adverts missed even when loud
    drop_weak: float = 0.5  # extra drop fraction as the signal falls to sensitivity
    sensitivity_dbm: float = -95.0


@dataclass(frozen=True, slots=True)
class ShadowField:
    """A shadowing field (dB) gridded over the floor, read by bilinear interpolation."""

    x0: float
    y0: float
    grid: np.ndarray  # (ny, nx), FIELD_STEP_M apart

    def at(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        ny, nx = self.grid.shape
        fx = np.clip((np.asarray(x) - self.x0) / FIELD_STEP_M, 0.0, nx - 1.000001)
        fy = np.clip((np.asarray(y) - self.y0) / FIELD_STEP_M, 0.0, ny - 1.000001)
        i, j = fx.astype(int), fy.astype(int)
        u, v = fx - i, fy - j
        g = self.grid
        top = g[j, i] * (1 - u) + g[j, i + 1] * u
        bottom = g[j + 1, i] * (1 - u) + g[j + 1, i + 1] * u
        out: np.ndarray = top * (1 - v) + bottom * v
        return out


def kept(rssi: np.ndarray, m: RadioModel, rng: np.random.Generator) -> np.ndarray:
    """Which of these are heard: above the sensitivity, and not dropped (more when weak)."""
    weak = np.clip((-70.0 - rssi) / (-70.0 - m.sensitivity_dbm), 0.0, 1.0)
    keep: np.ndarray = (rssi >= m.sensitivity_dbm) & (
        rng.random(len(rssi)) >= m.drop_base + m.drop_weak * weak
    )
    return keep


def correlated(
    along: np.ndarray, sigma: float, corr: float, rng: np.random.Generator
) -> np.ndarray:
    """Gaussian noise correlated along `along` (knots every `corr`, linearly interpolated)."""
    start = float(along[0]) if len(along) else 0.0
    length = float(along[-1]) - start if len(along) else 0.0
    knots = np.arange(0.0, length + 2 * corr, corr) + start
    out: np.ndarray = np.interp(along, knots, rng.normal(0.0, sigma, len(knots)))
    return out


def fading(n: int, k: float, rng: np.random.Generator, looks: int) -> np.ndarray:
    """Rician fading in dB (line of sight plus a scattered complex Gaussian part), the power
    averaged over `looks` independent packets."""
    los = math.sqrt(k / (k + 1.0))
    scatter = math.sqrt(1.0 / (2.0 * (k + 1.0)))
    re = los + scatter * rng.standard_normal((max(looks, 1), n))
    im = scatter * rng.standard_normal((max(looks, 1), n))
    power = (re * re + im * im).mean(axis=0)
    out: np.ndarray = np.maximum(10.0 * np.log10(power + 1e-12), -25.0)
    return out


def shadow_field(
    bounds: tuple[float, float, float, float], m: RadioModel, rng: np.random.Generator
) -> ShadowField:
    """A stationary Gaussian field of standard deviation `shadow_sigma` and squared-exponential
    correlation exp(-r²/2ℓ²), ℓ = `shadow_corr_m`, by random Fourier features, on a grid."""
    x0, y0, x1, y1 = bounds
    w = rng.normal(0.0, 1.0 / max(m.shadow_corr_m, 0.1), (FIELD_FEATURES, 2))
    b = rng.uniform(0.0, 2.0 * math.pi, FIELD_FEATURES)
    gx = x0 + FIELD_STEP_M * np.arange(int((x1 - x0) / FIELD_STEP_M) + 2)
    gy = y0 + FIELD_STEP_M * np.arange(int((y1 - y0) / FIELD_STEP_M) + 2)
    phase = gx[None, :, None] * w[:, 0] + gy[:, None, None] * w[:, 1] + b
    scale = m.shadow_sigma * math.sqrt(2.0 / FIELD_FEATURES)
    return ShadowField(x0, y0, scale * np.cos(phase).sum(axis=2))
