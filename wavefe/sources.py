"""Sources: Ricker-wavelet point sources and Gaussian initial pulses, with samplers.

A point source at ``x_s`` with time function ``g(t)`` is ``f(x, t) = g(t) delta(x - x_s)``; its
P1 load vector is ``b_i(t) = g(t) phi_i(x_s)`` (the barycentric coordinates of ``x_s`` in the
element that holds it, :func:`wavefe.assemble.point_load`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def ricker(t, frequency: float, delay: float | None = None) -> np.ndarray:
    """Ricker wavelet ``(1 - 2 a) exp(-a)``, ``a = (pi f (t - t0))^2``; peak 1 at ``t0``.

    ``delay`` (t0) defaults to ``1.5 / frequency`` so the wavelet starts from ~0 (1e-4) at t = 0.
    """
    if not frequency > 0:
        raise ValueError(f"frequency must be > 0, got {frequency}")
    t0 = 1.5 / frequency if delay is None else delay
    a = (np.pi * frequency * (np.asarray(t, np.float64) - t0)) ** 2
    return (1.0 - 2.0 * a) * np.exp(-a)


@dataclass(frozen=True)
class RickerSource:
    """A point source ``amplitude * ricker(t, frequency, delay) * delta(x - (x, y))``.

    Units: position in domain lengths, frequency in 1/time, amplitude in load units (the
    right-hand side f integrated over the domain).
    """

    x: float
    y: float
    frequency: float
    amplitude: float = 1.0
    delay: float | None = None

    def __post_init__(self):
        if not (np.isfinite(self.frequency) and self.frequency > 0):
            raise ValueError(f"frequency must be finite and > 0, got {self.frequency}")
        if not np.isfinite(self.amplitude):
            raise ValueError(f"amplitude must be finite, got {self.amplitude}")

    def __call__(self, t) -> np.ndarray:
        return self.amplitude * ricker(t, self.frequency, self.delay)


@dataclass(frozen=True)
class GaussianPulse:
    """Initial displacement ``amplitude * exp(-|x - x0|^2 / (2 width^2))`` at rest."""

    x: float
    y: float
    width: float
    amplitude: float = 1.0

    def __post_init__(self):
        if not (np.isfinite(self.width) and self.width > 0):
            raise ValueError(f"width must be finite and > 0, got {self.width}")

    def __call__(self, points: np.ndarray) -> np.ndarray:
        """Nodal values at ``points`` (n, 2)."""
        r2 = (points[:, 0] - self.x) ** 2 + (points[:, 1] - self.y) ** 2
        return self.amplitude * np.exp(-r2 / (2 * self.width**2))


def _check_range(name, lo, hi, positive=True):
    if not (np.isfinite(lo) and np.isfinite(hi) and lo <= hi and (lo > 0 or not positive)):
        raise ValueError(f"{name} must be a finite range lo <= hi{' with lo > 0' if positive else ''}, "
                         f"got ({lo}, {hi})")


def sample_ricker(rng: np.random.Generator, bounds, frequency=(3.0, 6.0), amplitude=(0.5, 1.0),
                  margin: float = 0.1) -> RickerSource:
    """A Ricker source at a uniform position inside ``bounds`` shrunk by ``margin`` (a fraction
    of each side), with uniform frequency and amplitude in the given ranges."""
    _check_range("frequency", *frequency)
    _check_range("amplitude", *amplitude)
    x, y = _position(rng, bounds, margin)
    return RickerSource(x, y, float(rng.uniform(*frequency)), float(rng.uniform(*amplitude)))


def sample_pulse(rng: np.random.Generator, bounds, width=(0.02, 0.05), amplitude=(0.5, 1.0),
                 margin: float = 0.2) -> GaussianPulse:
    """A Gaussian pulse at a uniform position inside ``bounds`` shrunk by ``margin``."""
    _check_range("width", *width)
    _check_range("amplitude", *amplitude)
    x, y = _position(rng, bounds, margin)
    return GaussianPulse(x, y, float(rng.uniform(*width)), float(rng.uniform(*amplitude)))


def _position(rng, bounds, margin):
    if not 0 <= margin < 0.5:
        raise ValueError(f"margin must be in [0, 0.5), got {margin}")
    xmin, xmax, ymin, ymax = bounds
    x = rng.uniform(xmin + margin * (xmax - xmin), xmax - margin * (xmax - xmin))
    y = rng.uniform(ymin + margin * (ymax - ymin), ymax - margin * (ymax - ymin))
    return float(x), float(y)
