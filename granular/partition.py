"""Neighbour search for spheres of very different sizes: size levels, cell grids, Verlet lists.

A single cell grid sized by the largest diameter is slow at strong size asymmetry (at
delta = 0.15 a large sphere's cell holds ~300 small ones). We use a multi-level scheme in the
spirit of MercuryDPM's hierarchical grid and LAMMPS' ``neigh_modify multi``:

* particles are sorted into *size levels* by radius, level k holding radii in
  (r_max / 2^(k+1), r_max / 2^k] (empty levels dropped; level 0 holds the largest spheres);
* each level has its own cell grid with cells at least as wide as 2 r_max(level) + skin;
* a particle of level a looks for partners of every level b <= a (same size or larger) in the 27
  cells around it in grid b. Because r_i <= r_max(b), the pair range r_i + r_j + skin is at most the
  cell width of grid b, so 27 cells suffice. Partners of smaller levels are found by them.

Every pair is found exactly once (within a level only j > i is kept), which gives a *half*
Verlet list: particle i owns the pairs with same-level partners of higher index and with larger
partners. The list is stored as CSR (``start`` (N+1,), ``neighbours`` (M,)) built in two
parallel passes (count, then fill), so the CPU path never overflows; the GPU path
(:mod:`granular.kernels_cuda`) uses fixed capacities with overflow flags instead.
Pairs are kept when |r_ij| < r_i + r_j + skin; the list stays valid while no particle has moved
more than skin / 2 since the build (see :func:`rebuild_threshold` for box deformations).

One source for both targets: the cell coordinates (:func:`cell_coord`, :func:`cell_index`,
:func:`wrap_cell`, :func:`stencil_range`) are scalar ``numba.njit`` functions that the CUDA kernels
call as they are; the neighbour scan :func:`scan_partners` reads arrays (which the CUDA simulator
cannot hand to an ``njit`` function), so, like the pair law, it is plain Python compiled twice
(:data:`scan_partners_cpu` here, a device function in :mod:`granular.kernels_cuda`). It reads
both cell layouts: CSR (this module) and fixed capacity per cell (the GPU, and the incremental
grids of :mod:`granular.generate`).
"""

from __future__ import annotations

import numba
import numpy as np
from numba import prange

from granular.space import nearest_image


def radius_levels(radius: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Size level of every particle and the largest radius of each level.

    Parameters
    ----------
    radius : ndarray, shape (N,)

    Returns
    -------
    level : ndarray, shape (N,), int64
        0 for the largest spheres, increasing as the radius halves (empty levels dropped).
    level_rmax : ndarray, shape (L,), float64
        Largest radius in each level.
    """
    radius = np.asarray(radius, dtype=np.float64)
    rmax = radius.max()
    raw = np.floor(np.log2(rmax / radius) + 1e-12).astype(np.int64)
    used, level = np.unique(raw, return_inverse=True)
    level = level.astype(np.int64).reshape(-1)
    level_rmax = np.array([radius[level == k].max() for k in range(used.size)], dtype=np.float64)
    return level, level_rmax


@numba.njit(cache=True)
def grid_dims(box, cell_min, count):
    """Cells per axis (3,) of a grid with cells at least ``cell_min`` wide.

    The total is capped at max(64, 4 count) cells so that a level with few tiny particles does not
    allocate a huge empty grid (cells are then wider than needed, which stays correct).
    """
    dims = np.empty(3, np.int64)
    total = 1
    for d in range(3):
        dims[d] = max(1, int(box[d] / cell_min))
        total *= dims[d]
    cap = max(64, 4 * count)
    if total > cap:
        f = (cap / total) ** (1.0 / 3.0)
        for d in range(3):
            dims[d] = max(1, int(dims[d] * f))
    return dims


@numba.njit(inline="always", cache=True)
def stencil_range(n):
    """Cell offsets (lo, hi) to visit along an axis with ``n`` cells, without visiting one twice."""
    if n >= 3:
        return -1, 2
    if n == 2:
        return 0, 2
    return 0, 1


@numba.njit(inline="always", cache=True)
def cell_coord(x, length, n):
    """Cell (0 .. n-1) of coordinate ``x`` along an axis of ``length`` cut into ``n`` cells."""
    return min(max(int(x / length * n), 0), n - 1)


@numba.njit(inline="always", cache=True)
def cell_index(x, y, z, lx, ly, lz, nx, ny, nz):
    """Flat index (cx ny + cy) nz + cz of the cell holding (x, y, z) in a grid of nx x ny x nz."""
    return (cell_coord(x, lx, nx) * ny + cell_coord(y, ly, ny)) * nz + cell_coord(z, lz, nz)


@numba.njit(inline="always", cache=True)
def wrap_cell(c, n):
    """Periodic cell index for c in [-1, n] (cheaper than a signed modulo)."""
    if c < 0:
        return c + n
    if c >= n:
        return c - n
    return c


def scan_partners(i, position, radius, level, lx, ly, lz, skin, dims, offset, cell_table, cap,
                  cell_list, lowest, out, out_base, out_stride, capacity):
    """Partners j of particle ``i``: |r_ij| < r_i + r_j + skin, j in a size level b <= level[i].

    Visits the 27 cells (fewer on grids of 1 or 2 cells per axis) around particle i in the grid of
    every level b <= level[i] (``dims`` (L, 3), first global cell ``offset`` (L + 1,)). Cell
    layout: ``cap == 0``, CSR, ``cell_table`` (C + 1,) holds the offsets into ``cell_list``;
    ``cap > 0``, fixed capacity, cell c owns slots c cap .. c cap + cap - 1 and ``cell_table`` (C,)
    holds the counts (a count above ``cap`` is an overflow the caller reports; ``cap`` slots are
    read). In i's own level only partners j > ``lowest``
    are kept (``lowest = i`` gives the half list; -1 keeps all). The first ``capacity`` partners
    are written to ``out[out_base + k * out_stride]``.

    Returns
    -------
    int
        The number of partners (it may exceed ``capacity``).
    """
    count = 0
    a = level[i]
    xi = position[i, 0]
    yi = position[i, 1]
    zi = position[i, 2]
    reach = radius[i] + skin
    hx, hy, hz = 0.5 * lx, 0.5 * ly, 0.5 * lz
    for b in range(a + 1):
        nx, ny, nz = dims[b, 0], dims[b, 1], dims[b, 2]
        cx = cell_coord(xi, lx, nx)
        cy = cell_coord(yi, ly, ny)
        cz = cell_coord(zi, lz, nz)
        lox, hix = stencil_range(nx)
        loy, hiy = stencil_range(ny)
        loz, hiz = stencil_range(nz)
        for ox in range(lox, hix):
            px = wrap_cell(cx + ox, nx)
            for oy in range(loy, hiy):
                row = offset[b] + (px * ny + wrap_cell(cy + oy, ny)) * nz
                for oz in range(loz, hiz):
                    c = row + wrap_cell(cz + oz, nz)
                    if cap == 0:
                        first, last = cell_table[c], cell_table[c + 1]
                    else:
                        first = c * cap
                        last = first + min(cell_table[c], cap)
                    for slot in range(first, last):
                        j = cell_list[slot]
                        if b == a and j <= lowest:
                            continue
                        dx = nearest_image(position[j, 0] - xi, lx, hx)
                        dy = nearest_image(position[j, 1] - yi, ly, hy)
                        dz = nearest_image(position[j, 2] - zi, lz, hz)
                        cut = reach + radius[j]
                        if dx * dx + dy * dy + dz * dz < cut * cut:
                            if count < capacity:
                                out[out_base + count * out_stride] = j
                            count += 1
    return count


scan_partners_cpu = numba.njit(inline="always", cache=True)(scan_partners)


@numba.njit(cache=True)
def level_grids(box, level, level_rmax, skin):
    """One cell grid per size level, cells at least 2 r_max(level) + skin wide.

    Returns
    -------
    dims : (L, 3) int64
        Cells per axis per level (see :func:`grid_dims`).
    offset : (L + 1,) int64
        First global cell index of each level; ``offset[L]`` cells in all.
    """
    n_levels = level_rmax.size
    counts = np.zeros(n_levels, np.int64)
    for i in range(level.size):
        counts[level[i]] += 1
    dims = np.empty((n_levels, 3), np.int64)
    offset = np.zeros(n_levels + 1, np.int64)
    for b in range(n_levels):
        dims[b] = grid_dims(box, 2.0 * level_rmax[b] + skin, counts[b])
        offset[b + 1] = offset[b] + dims[b, 0] * dims[b, 1] * dims[b, 2]
    return dims, offset


@numba.njit(cache=True)
def bin_particles(position, box, level, level_rmax, skin):
    """Counting sort of particles into one cell grid per size level.

    Parameters
    ----------
    position : ndarray (N, 3), wrapped into [0, box)
    box : ndarray (3,)
    level : ndarray (N,) int64
    level_rmax : ndarray (L,)
    skin : float

    Returns
    -------
    dims : (L, 3) int64 cells per axis per level
    offset : (L + 1,) int64 first global cell index of each level
    cell_start : (C + 1,) int64 CSR offsets into ``cell_list``
    cell_list : (N,) int64 particle indices grouped by cell
    """
    n = position.shape[0]
    n_levels = level_rmax.size
    dims, offset = level_grids(box, level, level_rmax, skin)
    cell_of = np.empty(n, np.int64)
    cell_start = np.zeros(offset[n_levels] + 1, np.int64)
    for i in range(n):
        b = level[i]
        c = offset[b] + cell_index(position[i, 0], position[i, 1], position[i, 2], box[0], box[1], box[2],
                                   dims[b, 0], dims[b, 1], dims[b, 2])
        cell_of[i] = c
        cell_start[c + 1] += 1
    for c in range(offset[n_levels]):
        cell_start[c + 1] += cell_start[c]
    fill = cell_start[:-1].copy()
    cell_list = np.empty(n, np.int64)
    for i in range(n):
        c = cell_of[i]
        cell_list[fill[c]] = i
        fill[c] += 1
    return dims, offset, cell_start, cell_list


@numba.njit(parallel=True, cache=True)
def _count_pass(position, radius, box, level, dims, offset, cell_start, cell_list, skin, counts):
    empty = np.empty(0, np.int32)
    for i in prange(position.shape[0]):
        counts[i] = scan_partners_cpu(i, position, radius, level, box[0], box[1], box[2], skin, dims, offset,
                                      cell_start, 0, cell_list, i, empty, 0, 1, 0)


@numba.njit(parallel=True, cache=True)
def _fill_pass(position, radius, box, level, dims, offset, cell_start, cell_list, skin, start, out):
    for i in prange(position.shape[0]):
        scan_partners_cpu(i, position, radius, level, box[0], box[1], box[2], skin, dims, offset, cell_start,
                          0, cell_list, i, out, start[i], 1, start[i + 1] - start[i])


@numba.njit(cache=True)
def build_half_list(position, radius, box, level, level_rmax, skin):
    """Half Verlet list in CSR form for wrapped positions.

    Returns
    -------
    start : ndarray (N + 1,) int64
    neighbours : ndarray (M,) int64
        Partners j of particle i are ``neighbours[start[i]:start[i + 1]]``; each pair once.
    """
    n = position.shape[0]
    dims, offset, cell_start, cell_list = bin_particles(position, box, level, level_rmax, skin)
    counts = np.empty(n, np.int64)
    _count_pass(position, radius, box, level, dims, offset, cell_start, cell_list, skin, counts)
    start = np.zeros(n + 1, np.int64)
    for i in range(n):
        start[i + 1] = start[i] + counts[i]
    neighbours = np.empty(start[n], np.int32)
    _fill_pass(position, radius, box, level, dims, offset, cell_start, cell_list, skin, start,
               neighbours)
    return start, neighbours


@numba.njit(cache=True)
def balanced_chunks(start, n_chunks):
    """Split particles 0..N-1 into ``n_chunks`` contiguous ranges with similar pair counts."""
    n = start.size - 1
    bounds = np.empty(n_chunks + 1, np.int64)
    bounds[0] = 0
    total = start[n]
    i = 0
    for c in range(1, n_chunks):
        target = (total * c) // n_chunks
        while i < n and start[i] < target:
            i += 1
        bounds[c] = max(i, bounds[c - 1])
    bounds[n_chunks] = n
    return bounds


@numba.njit(cache=True)
def rebuild_threshold(box, box_ref, skin, radius_max):
    """Largest particle displacement (since the build) for which the list is still valid.

    Under an isotropic or axis-wise affine scaling s = box / box_ref (s_min the smallest), a pair
    not in the list had |r_ij| > r_i + r_j + skin at the build, so now
    |r_ij| > s_min (r_i + r_j + skin) - 2 d_max; it cannot touch while
    2 d_max <= s_min skin - (1 - s_min) 2 r_max. Displacements are measured from the affinely
    rescaled build positions. Without deformation this is the usual skin / 2.
    """
    s_min = 1.0
    for d in range(3):
        s_min = min(s_min, box[d] / box_ref[d])
    return 0.5 * (s_min * skin - (1.0 - s_min) * 2.0 * radius_max)
