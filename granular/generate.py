"""Random initial packings: bidisperse spheres placed by random sequential addition.

Spheres are inserted one by one at uniformly random places, a place being refused when the new
sphere would overlap one already placed (at most ``MAX_TRIES`` draws per sphere). The overlap test
is the neighbour scan of :mod:`granular.partition` on one incremental cell grid per size level
(fixed capacity per cell, grown and the insertion rerun from the same seed if a cell fills up, so
the packing does not depend on the capacity). Spheres go in by decreasing size level, so a new one
only meets spheres of its own or a larger level, all within the 27 cells around it.
"""

from __future__ import annotations

import numba
import numpy as np

from granular.partition import cell_index, level_grids, radius_levels, scan_partners_cpu
from granular.space import Packing

MAX_TRIES = 20000
"""Draws per sphere before random insertion gives up (a ValueError: lower phi)."""


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
    edge = ((4.0 / 3.0) * np.pi * np.sum(radius**3) / phi) ** (1.0 / 3.0)
    box = np.full(3, edge)
    if edge < 2.0 * radius.max() * 2.0:
        raise ValueError(
            f"too few particles: box edge {edge:.3g} is below two largest diameters; increase n or n_large")
    position = random_positions(radius, box, seed)
    # within each species, order particles cell by cell (cells of one large diameter), so that
    # neighbours in space are neighbours in memory: the force kernels gather far less from RAM
    order = np.lexsort((_cell_keys(position, box, 2.0 * radius.max()), species))
    return Packing(position[order], np.zeros_like(position), radius[order], species[order], box)


def random_positions(radius: np.ndarray, box: np.ndarray, seed: int, *,
                     cell_capacity: int | None = None) -> np.ndarray:
    """Centres (N, 3) of non-overlapping spheres of ``radius`` (N,) in the periodic ``box`` (3,).

    ``cell_capacity`` is the first capacity of the insertion grids' cells (default: from the mean
    occupancy); it is doubled until no cell overflows and does not change the result.

    Raises
    ------
    ValueError
        If a sphere finds no free place in ``MAX_TRIES`` draws.
    """
    level, level_rmax = radius_levels(radius)
    dims, offset = level_grids(box, level, level_rmax, 0.0)
    cells = int(offset[-1])
    if cell_capacity is None:
        occupancy = max(np.bincount(level)[k] / np.prod(dims[k]) for k in range(level_rmax.size))
        cell_capacity = 4 + 2 * int(np.ceil(occupancy))
    if int(cell_capacity) < 1:
        raise ValueError(f"cell_capacity must be an integer >= 1, got {cell_capacity}")
    cap = int(cell_capacity)
    position = np.empty((radius.size, 3))
    while True:
        placed, overflow = _insert(radius, level, dims, offset, box, int(seed) & 0x7FFFFFFF,
                                   np.zeros(cells, np.int64), np.empty(cells * cap, np.int64), cap,
                                   position)
        if not overflow:
            break
        cap *= 2  # a cell filled up: rerun from the same seed with room to spare
    if placed < radius.size:
        phi = (4.0 / 3.0) * np.pi * np.sum(radius**3) / np.prod(box)
        raise ValueError(f"random insertion failed at particle {placed} of {radius.size} at phi = "
                         f"{phi:.6g}; use a lower phi")
    return position


@numba.njit(cache=True)
def _insert(radius, level, dims, offset, box, seed, cell_count, cell_list, cap, position):
    """Place every sphere, largest levels first; returns (number placed, cell overflow)."""
    # numba's own generator state (seeded here, inside compiled code), not numpy's global one
    np.random.seed(seed)  # noqa: NPY002
    order = np.argsort(level, kind="mergesort")
    for idx in range(radius.size):
        p = order[idx]
        if not _place(p, radius, level, dims, offset, box, cell_count, cell_list, cap, position):
            return idx, False
        b = level[p]
        c = offset[b] + cell_index(position[p, 0], position[p, 1], position[p, 2], box[0], box[1], box[2],
                                   dims[b, 0], dims[b, 1], dims[b, 2])
        if cell_count[c] >= cap:
            return idx, True
        cell_list[c * cap + cell_count[c]] = p
        cell_count[c] += 1
    return radius.size, False


@numba.njit(cache=True)
def _place(p, radius, level, dims, offset, box, cell_count, cell_list, cap, position):
    """Draw places for sphere ``p`` into ``position[p]`` until one is free; False after MAX_TRIES."""
    nothing = np.empty(0, np.int64)
    for _ in range(MAX_TRIES):
        for d in range(3):
            position[p, d] = np.random.random() * box[d]  # noqa: NPY002
        overlaps = scan_partners_cpu(p, position, radius, level, box[0], box[1], box[2], 0.0, dims, offset,
                                     cell_count, cap, cell_list, -1, nothing, 0, 1, 0)
        if overlaps == 0:
            return True
    return False


@numba.njit(cache=True)
def _cell_keys(position, box, cell_min):
    """Flat cell index of every position in one grid of cells at least ``cell_min`` wide, (N,)."""
    nx = max(1, int(np.floor(box[0] / cell_min)))
    ny = max(1, int(np.floor(box[1] / cell_min)))
    nz = max(1, int(np.floor(box[2] / cell_min)))
    keys = np.empty(position.shape[0], np.int64)
    for i in range(position.shape[0]):
        keys[i] = cell_index(position[i, 0], position[i, 1], position[i, 2], box[0], box[1], box[2],
                             nx, ny, nz)
    return keys
