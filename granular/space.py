"""The periodic box, the packing state and the periodic geometry: one source for every target.

A :class:`Packing` holds the state of N spheres as arrays (jax-md style: the state is data, the
physics lives in functions). Reduced units: large diameter d_L = 2 r_L = 1, grain density 1.
Species label 0 = large, 1 = small; the kernels only use the per-particle radius, so polydisperse
radii are accepted everywhere (species then only labels the pair type of the pressure split).

The periodic geometry of one coordinate or one pair (:func:`nearest_image`,
:func:`wrap_coordinate`, :func:`pair_separation`) is written once, as scalar ``numba.njit``
functions: the CPU kernels call them directly, and so do the CUDA kernels (Numba-CUDA compiles an
``njit`` function for the device when a kernel calls it; under the simulator it runs as compiled
CPU code on scalars). The host-side array versions (:func:`wrap`, :func:`minimum_image`) are numpy
ufuncs made from the same functions. Cell grids and the neighbour scan are in
:mod:`granular.partition`; random packings in :mod:`granular.generate`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numba
import numpy as np


@dataclass
class Packing:
    """State of N spheres in a periodic orthorhombic box.

    Attributes
    ----------
    position : ndarray, shape (N, 3), float64
        Centres, in [0, box) per axis (units of d_L).
    velocity : ndarray, shape (N, 3), float64
    radius : ndarray, shape (N,), float64
    species : ndarray, shape (N,), int8
        0 large, 1 small.
    box : ndarray, shape (3,), float64
        Edge lengths of the periodic box.
    """

    position: np.ndarray
    velocity: np.ndarray
    radius: np.ndarray
    species: np.ndarray
    box: np.ndarray

    def __post_init__(self):
        self.position = np.ascontiguousarray(self.position, dtype=np.float64)
        self.radius = np.ascontiguousarray(self.radius, dtype=np.float64)
        n = self.radius.shape[0] if self.radius.ndim == 1 else -1
        if self.radius.ndim != 1 or n < 1:
            raise ValueError(f"radius must have shape (N,) with N >= 1, got {self.radius.shape}")
        if self.velocity is None:
            self.velocity = np.zeros((n, 3))
        self.velocity = np.ascontiguousarray(self.velocity, dtype=np.float64)
        self.species = np.ascontiguousarray(self.species, dtype=np.int8)
        self.box = np.ascontiguousarray(self.box, dtype=np.float64).reshape(-1)
        if self.box.shape != (3,):
            raise ValueError(f"box must have 3 edge lengths, got shape {self.box.shape}")
        if not np.all(np.isfinite(self.box) & (self.box > 0)):
            raise ValueError(f"box edge lengths must be finite and > 0, got {self.box}")
        for name in ("position", "velocity"):
            if getattr(self, name).shape != (n, 3):
                raise ValueError(f"{name} must have shape ({n}, 3), got {getattr(self, name).shape}")
        if self.species.shape != (n,):
            raise ValueError(f"species must have shape ({n},), got {self.species.shape}")
        if not np.all((self.species == 0) | (self.species == 1)):
            raise ValueError("species must be 0 (large) or 1 (small)")
        if not np.all(np.isfinite(self.radius) & (self.radius > 0)):
            raise ValueError("radius must be finite and > 0")

    @property
    def n(self) -> int:
        return int(self.radius.shape[0])

    @property
    def n_small(self) -> int:
        return int(np.count_nonzero(self.species == 1))

    @property
    def n_large(self) -> int:
        return int(np.count_nonzero(self.species == 0))

    @property
    def volume(self) -> float:
        """Box volume (d_L^3)."""
        return float(np.prod(self.box))

    @property
    def mass(self) -> np.ndarray:
        """Particle masses (4/3) pi r^3 (grain density 1), shape (N,)."""
        return (4.0 / 3.0) * np.pi * self.radius**3

    @property
    def solid_volume(self) -> float:
        return float(self.mass.sum())

    @property
    def packing_fraction(self) -> float:
        """phi = sum of sphere volumes / box volume (overlaps not subtracted)."""
        return self.solid_volume / self.volume

    @property
    def x_small(self) -> float:
        """Realised volume fraction of small particles among all solids, X_S."""
        volumes = self.radius**3
        total = volumes.sum()
        return float(volumes[self.species == 1].sum() / total)

    @property
    def delta(self) -> float:
        """Size ratio r_small / r_large (1.0 when one species is absent)."""
        if self.n_small == 0 or self.n_large == 0:
            return 1.0
        return float(self.radius[self.species == 1].mean() / self.radius[self.species == 0].mean())

    def copy(self) -> Packing:
        return Packing(self.position.copy(), self.velocity.copy(), self.radius.copy(),
                       self.species.copy(), self.box.copy())


@numba.njit(inline="always", cache=True)
def nearest_image(dx, length, half):
    """Minimum image of one coordinate difference ``dx`` for a period ``length`` (``half`` = length / 2).

    Valid for |dx| < 1.5 length (positions wrapped at the last list build and moved less than a
    skin since); comparisons instead of a rounding division, so it is cheap and NaN propagates.
    """
    if dx > half:
        return dx - length
    if dx < -half:
        return dx + length
    return dx


@numba.njit(inline="always", cache=True)
def wrap_coordinate(x, length):
    """``x`` mapped into [0, length) (Python's modulo, then the one case where it returns length)."""
    x = x % length
    if x >= length:
        x -= length
    return x


@numba.njit(inline="always", cache=True)
def pair_separation(xi, yi, zi, xj, yj, zj, lx, ly, lz, rsum):
    """Geometry of a pair of spheres at minimum image, box (lx, ly, lz), radii summing to ``rsum``.

    Returns
    -------
    touching : bool
        |r_ij| < rsum (overlap > 0); the other values are zero when false.
    distance, overlap : float
        |r_ij| and xi = rsum - |r_ij|.
    nx, ny, nz : float
        Unit vector from i to j.
    """
    dx = nearest_image(xj - xi, lx, 0.5 * lx)
    dy = nearest_image(yj - yi, ly, 0.5 * ly)
    dz = nearest_image(zj - zi, lz, 0.5 * lz)
    r2 = dx * dx + dy * dy + dz * dz
    if r2 >= rsum * rsum:
        return False, 0.0, 0.0, 0.0, 0.0, 0.0
    r = math.sqrt(r2)
    inv_r = 1.0 / r
    return True, r, rsum - r, dx * inv_r, dy * inv_r, dz * inv_r


_image_ufunc = numba.vectorize(["float64(float64, float64, float64)"], cache=True)(nearest_image.py_func)
_wrap_ufunc = numba.vectorize(["float64(float64, float64)"], cache=True)(wrap_coordinate.py_func)


def wrap(position: np.ndarray, box: np.ndarray) -> np.ndarray:
    """Positions (N, 3) mapped into [0, box) per axis (a new array)."""
    return _wrap_ufunc(np.asarray(position, dtype=np.float64), np.asarray(box, dtype=np.float64))


def minimum_image(displacement: np.ndarray, box: np.ndarray) -> np.ndarray:
    """Displacements (..., 3) between wrapped positions mapped to their nearest periodic image.

    Each component must be below 1.5 box edges in magnitude (differences of wrapped positions are).
    """
    box = np.asarray(box, dtype=np.float64)
    return _image_ufunc(np.asarray(displacement, dtype=np.float64), box, 0.5 * box)


def scale_to_phi(packing: Packing, phi: float) -> Packing:
    """A new packing with box and positions rescaled affinely to packing fraction ``phi``."""
    if not (np.isfinite(phi) and 0 < phi < 1):
        raise ValueError(f"phi must be in (0, 1), got {phi}")
    factor = (packing.packing_fraction / phi) ** (1.0 / 3.0)
    out = packing.copy()
    out.box = packing.box * factor
    out.position = wrap(packing.position * factor, out.box)
    return out


def check_box(box: np.ndarray, radius_max: float, skin: float) -> None:
    """Raise ValueError unless every box edge is at least twice the largest interaction range.

    The minimum-image convention needs a pair range 2 r_max + skin below half of each edge.
    """
    need = 2.0 * (2.0 * radius_max + skin)
    if np.any(box < need):
        raise ValueError(f"box edges {np.asarray(box)} must be >= {need:.6g} (twice the largest "
                         f"diameter plus skin) for the minimum-image convention; use more particles")
