"""The periodic box, the packing state and the generation of random initial packings.

A :class:`Packing` holds the state of N spheres as arrays (jax-md style: the state is data, the
physics lives in functions). Reduced units: large diameter d_L = 2 r_L = 1, grain density 1.
Species label 0 = large, 1 = small; the kernels only use the per-particle radius, so polydisperse
radii are accepted everywhere (species then only labels the pair type of the pressure split).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numba
import numpy as np

from granular.partition import grid_dims, radius_levels, stencil_range


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


def wrap(position: np.ndarray, box: np.ndarray) -> np.ndarray:
    """Positions mapped into [0, box) per axis, shape (N, 3)."""
    wrapped = np.mod(position, box)
    # np.mod can return exactly box for tiny negative inputs
    wrapped[wrapped >= box] -= np.broadcast_to(box, wrapped.shape)[wrapped >= box]
    return wrapped


def minimum_image(displacement: np.ndarray, box: np.ndarray) -> np.ndarray:
    """Displacements (..., 3) mapped to their nearest periodic image."""
    return displacement - box * np.rint(displacement / box)


def species_counts(delta: float, x_small: float, *, n_large: int | None = None,
                   n: int | None = None) -> tuple[int, int]:
    """Numbers (N_L, N_S) for a size ratio and small-particle volume fraction X_S.

    N_S = round(N_L X_S / ((1 - X_S) delta^3)) given N_L; given the total N instead, N_L is the
    rounded solution of N_L (1 + X_S / ((1 - X_S) delta^3)) = N.
    """
    if not (0 < delta <= 1):
        raise ValueError(f"delta must be in (0, 1], got {delta}")
    if not (0 <= x_small <= 1):
        raise ValueError(f"x_small must be in [0, 1], got {x_small}")
    if (n_large is None) == (n is None):
        raise ValueError("give exactly one of n_large and n")
    if n_large is not None:
        if int(n_large) < 1:
            raise ValueError(f"n_large must be >= 1, got {n_large}")
        if x_small >= 1:
            raise ValueError("x_small must be < 1 when n_large is given")
        n_large = int(n_large)
        return n_large, int(round(n_large * x_small / ((1 - x_small) * delta**3)))
    if int(n) < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    n = int(n)
    if x_small >= 1:
        return 0, n
    ratio = x_small / ((1 - x_small) * delta**3)
    n_large = int(round(n / (1 + ratio)))
    n_large = min(max(n_large, 1 if x_small < 1 else 0), n)
    return n_large, n - n_large


def make_packing(delta: float, x_small: float, *, n_large: int | None = None, n: int | None = None,
                 phi: float = 0.3, seed: int = 0) -> Packing:
    """Random bidisperse packing without overlaps (random sequential addition), at rest.

    Parameters
    ----------
    delta : float
        Size ratio r_S / r_L in (0, 1]; r_L = 0.5 (d_L = 1).
    x_small : float
        Target volume fraction of small particles among all solids, in [0, 1]; the realised value
        is ``packing.x_small`` (N_S is rounded).
    n_large, n : int
        Number of large particles, or total number of particles (exactly one of them).
    phi : float
        Packing fraction of the cubic box, in (0, 0.45] (random addition jams near 0.38 for
        equal spheres; higher values may fail with a ValueError).
    seed : int
        Seed; the same arguments give the same packing.

    Returns
    -------
    Packing
        Large particles first (species 0), then small ones (species 1), each species ordered
        by position (cell by cell); zero velocities.
    """
    if not (0 < phi <= 0.45):
        raise ValueError(f"phi must be in (0, 0.45] for random insertion, got {phi}")
    n_l, n_s = species_counts(delta, x_small, n_large=n_large, n=n)
    radius = np.concatenate([np.full(n_l, 0.5), np.full(n_s, 0.5 * delta)])
    species = np.concatenate([np.zeros(n_l, np.int8), np.ones(n_s, np.int8)])
    volume = (4.0 / 3.0) * np.pi * np.sum(radius**3) / phi
    edge = volume ** (1.0 / 3.0)
    box = np.full(3, edge)
    if edge < 2.0 * radius.max() * 2.0:
        raise ValueError(
            f"too few particles: box edge {edge:.3g} is below two largest diameters; increase n or n_large")
    level, level_rmax = radius_levels(radius)
    position = np.empty((radius.size, 3))
    ok = _random_insertion(radius, level, level_rmax, box, int(seed) & 0x7FFFFFFF, position)
    if ok >= 0:
        raise ValueError(f"random insertion failed at particle {ok} of {radius.size} at phi = {phi}; "
                         "use a lower phi")
    # within each species, order particles cell by cell (cells of one large diameter), so that
    # neighbours in space are neighbours in memory: the force kernels gather far less from RAM
    cells = np.maximum(1, np.floor(box / (2.0 * radius.max()))).astype(np.int64)
    c = np.minimum((position / box * cells).astype(np.int64), cells - 1)
    key = (c[:, 0] * cells[1] + c[:, 1]) * cells[2] + c[:, 2]
    order = np.lexsort((key, species))
    return Packing(position[order], np.zeros_like(position), radius[order], species[order], box)


@numba.njit(cache=True)
def _random_insertion(radius, level, level_rmax, box, seed, position):
    """Insert spheres one by one at random non-overlapping places; returns -1 or the failing index.

    One linked-cell grid per size level (cell >= the level's largest diameter); particles are
    inserted in order of decreasing level size, so a new sphere only meets spheres of its own or
    larger levels, all found in the 27 neighbouring cells of their grids.
    """
    # numba's own generator state (seeded here, inside compiled code), not numpy's global one
    np.random.seed(seed)  # noqa: NPY002
    n = radius.size
    n_levels = level_rmax.size
    dims = np.empty((n_levels, 3), np.int64)
    offset = np.zeros(n_levels + 1, np.int64)
    for b in range(n_levels):
        cnt = 0
        for i in range(n):
            if level[i] == b:
                cnt += 1
        dims[b] = grid_dims(box, 2.0 * level_rmax[b], cnt)
        offset[b + 1] = offset[b] + dims[b, 0] * dims[b, 1] * dims[b, 2]
    head = np.full(offset[n_levels], -1, np.int64)
    nxt = np.full(n, -1, np.int64)
    order = np.argsort(level, kind="mergesort")
    max_tries = 20000
    for idx in range(n):
        p = order[idx]
        a = level[p]
        placed = False
        for _ in range(max_tries):
            x = np.random.random() * box[0]  # noqa: NPY002
            y = np.random.random() * box[1]  # noqa: NPY002
            z = np.random.random() * box[2]  # noqa: NPY002
            clash = False
            for b in range(a + 1):
                if clash:
                    break
                nx, ny, nz = dims[b, 0], dims[b, 1], dims[b, 2]
                cx = min(int(x / box[0] * nx), nx - 1)
                cy = min(int(y / box[1] * ny), ny - 1)
                cz = min(int(z / box[2] * nz), nz - 1)
                lox, hix = stencil_range(nx)
                loy, hiy = stencil_range(ny)
                loz, hiz = stencil_range(nz)
                for dx_ in range(lox, hix):
                    if clash:
                        break
                    for dy_ in range(loy, hiy):
                        if clash:
                            break
                        for dz_ in range(loz, hiz):
                            c = (offset[b] + ((cx + dx_) % nx) * ny * nz + ((cy + dy_) % ny) * nz
                                 + (cz + dz_) % nz)
                            j = head[c]
                            while j >= 0:
                                ddx = position[j, 0] - x
                                ddy = position[j, 1] - y
                                ddz = position[j, 2] - z
                                ddx -= box[0] * np.rint(ddx / box[0])
                                ddy -= box[1] * np.rint(ddy / box[1])
                                ddz -= box[2] * np.rint(ddz / box[2])
                                rs = radius[p] + radius[j]
                                if ddx * ddx + ddy * ddy + ddz * ddz < rs * rs:
                                    clash = True
                                    break
                                j = nxt[j]
                            if clash:
                                break
            if not clash:
                position[p, 0] = x
                position[p, 1] = y
                position[p, 2] = z
                nx, ny, nz = dims[a, 0], dims[a, 1], dims[a, 2]
                cx = min(int(x / box[0] * nx), nx - 1)
                cy = min(int(y / box[1] * ny), ny - 1)
                cz = min(int(z / box[2] * nz), nz - 1)
                c = offset[a] + cx * ny * nz + cy * nz + cz
                nxt[p] = head[c]
                head[c] = p
                placed = True
                break
        if not placed:
            return idx
    return -1


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


def unit_mass(radius: np.ndarray) -> np.ndarray:
    """Masses (4/3) pi r^3 for grain density 1."""
    return (4.0 / 3.0) * math.pi * np.asarray(radius, dtype=np.float64) ** 3
