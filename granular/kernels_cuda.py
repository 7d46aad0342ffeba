"""CUDA launch layer (Numba-CUDA): cell grids, Verlet lists, forces, Verlet passes (FIRE:
:mod:`granular.fire_cuda`).

The pair law is the same Python source as on the CPU (:mod:`granular.contact`), compiled here as a
device function. The neighbour scheme is the CPU one (size levels, one grid per level, half list
owned by the smaller particle), with fixed capacities instead of two-pass CSR: cells hold at most
``cell_cap`` particles (``cell_list[c * cell_cap + slot]``), particles at most ``max_nbr`` partners
(``neighbours[k * N + i]``, coalesced). Kernels cannot raise: they write error flags
(``flags[FLAG_CELL]`` / ``flags[FLAG_NBR]``: the count that did not fit, ``flags[FLAG_NONFINITE]``,
``flags[FLAG_MOVED]``: a particle moved past the rebuild threshold) which the host reads; on
overflow it reallocates with the needed capacity and rebuilds, on a non-finite value it raises
with the step number. Forces are accumulated with float64 atomics (each pair
once); scalar sums use a block reduction in shared memory and one atomic per block.

The host loops (:mod:`granular.loops_cuda`) launch a few kernels per step; MD reads the flags
back once per chunk of up to 64 steps (restoring and redoing a flagged chunk), FIRE its device
state once per block of up to 64 steps (:mod:`granular.fire_cuda`, whose kernels return at once
after a halt).
Under ``NUMBA_ENABLE_CUDASIM=1`` the same code runs in Numba's simulator, which the tests use to
check agreement with the CPU to 1e-10.
"""

from __future__ import annotations

import math

import numpy as np
from numba import config, cuda

from granular.accumulators import ACC_ENERGY, ACC_TOUCHING, ACC_VIRIAL, N_ACC
from granular.contact import pair_energy, pair_force
from granular.integrator import verlet_update
from granular.partition import cell_index, scan_partners
from granular.space import pair_separation, wrap_coordinate

pair_force_cuda = cuda.jit(device=True)(pair_force)
verlet_update_cuda = cuda.jit(device=True)(verlet_update)
pair_energy_cuda = cuda.jit(device=True)(pair_energy)
scan_partners_cuda = cuda.jit(device=True)(scan_partners)

# threads per block; the simulator runs every thread as a Python thread, so keep blocks small there
THREADS = 32 if config.ENABLE_CUDASIM else 128
FLAG_CELL, FLAG_NBR, FLAG_NONFINITE, FLAG_MOVED = 0, 1, 2, 3


@cuda.jit
def bin_kernel(position, level, dims, offset, lx, ly, lz, cell_count, cell_list, cell_cap, flags):
    i = cuda.grid(1)
    if i >= position.shape[0]:
        return
    b = level[i]
    c = offset[b] + cell_index(position[i, 0], position[i, 1], position[i, 2], lx, ly, lz, dims[b, 0],
                               dims[b, 1], dims[b, 2])
    slot = cuda.atomic.add(cell_count, c, 1)
    if slot < cell_cap:
        cell_list[c * cell_cap + slot] = i
    else:
        cuda.atomic.max(flags, FLAG_CELL, slot + 1)


@cuda.jit
def neighbour_kernel(position, radius, level, dims, offset, lx, ly, lz, skin, cell_count, cell_list,
                     cell_cap, neighbours, counts, max_nbr, flags):
    """Half list of particle i (:func:`granular.partition.scan_partners`) into
    ``neighbours[k * N + i]``, k < max_nbr; a longer list sets ``flags[FLAG_NBR]``."""
    i = cuda.grid(1)
    n = position.shape[0]
    if i >= n:
        return
    count = scan_partners_cuda(i, position, radius, level, lx, ly, lz, skin, dims, offset, cell_count,
                               cell_cap, cell_list, i, neighbours, i, n, max_nbr)
    counts[i] = count
    if count > max_nbr:
        cuda.atomic.max(flags, FLAG_NBR, count)


@cuda.jit(device=True)
def _block_sum(shared, value, tid):
    """Sum ``value`` over the block (THREADS threads); the result is valid in thread 0."""
    shared[tid] = value
    cuda.syncthreads()
    stride = THREADS // 2
    while stride > 0:
        if tid < stride:
            shared[tid] += shared[tid + stride]
        cuda.syncthreads()
        stride //= 2
    return shared[0]


@cuda.jit(device=True)
def add_block_sum(shared, value, tid, out, q):
    """Add the sum of ``value`` over the block into ``out[q]`` (one atomic per block)."""
    total = _block_sum(shared, value, tid)
    if tid == 0:
        cuda.atomic.add(out, q, total)
    cuda.syncthreads()


@cuda.jit
def zero_kernel(array):
    i = cuda.grid(1)
    if i < array.shape[0]:
        for d in range(array.shape[1]):
            array[i, d] = 0.0


@cuda.jit
def force_kernel(position, velocity, radius, species, lx, ly, lz, neighbours, counts, k_n, gamma_n, model,
                 force, acc, flags, measure):
    """Half-list forces with atomics; force must be zeroed first; sums added into ``acc`` (N_ACC,)
    when ``measure`` is nonzero (:func:`pair_forces`)."""
    shared = cuda.shared.array(THREADS, dtype=np.float64)
    pair_forces(shared, position, velocity, radius, species, lx, ly, lz, neighbours, counts, k_n, gamma_n,
                model, force, acc, flags, measure)


@cuda.jit(device=True)
def pair_forces(shared, position, velocity, radius, species, lx, ly, lz, neighbours, counts, k_n, gamma_n,
                model, force, acc, flags, measure):
    """The body of the force kernels (MD's :func:`force_kernel`, FIRE's
    :func:`granular.fire_cuda.fire_force_kernel`): thread i adds the forces of its half-list
    pairs into ``force`` (N, 3) with atomics, flags a non-finite force and, when ``measure`` is
    nonzero, adds the block sums of energy, virials and contacts into ``acc`` (N_ACC,).
    ``shared`` is the block's (THREADS,) float64 scratch; every thread of the grid must call."""
    i = cuda.grid(1)
    tid = cuda.threadIdx.x
    n = position.shape[0]
    sums = cuda.local.array(N_ACC, dtype=np.float64)
    for q in range(N_ACC):
        sums[q] = 0.0
    if i < n:
        xi = position[i, 0]
        yi = position[i, 1]
        zi = position[i, 2]
        ri = radius[i]
        fx = 0.0
        fy = 0.0
        fz = 0.0
        for k in range(counts[i]):
            j = neighbours[k * n + i]
            touching, r, overlap, nx, ny, nz = pair_separation(
                xi, yi, zi, position[j, 0], position[j, 1], position[j, 2], lx, ly, lz, ri + radius[j])
            if not touching:
                continue
            rate = 0.0
            if gamma_n != 0.0:
                rate = -((velocity[j, 0] - velocity[i, 0]) * nx + (velocity[j, 1] - velocity[i, 1]) * ny
                         + (velocity[j, 2] - velocity[i, 2]) * nz)
            f = pair_force_cuda(overlap, rate, k_n, gamma_n, model)
            fx -= f * nx
            fy -= f * ny
            fz -= f * nz
            cuda.atomic.add(force, (j, 0), f * nx)
            cuda.atomic.add(force, (j, 1), f * ny)
            cuda.atomic.add(force, (j, 2), f * nz)
            sums[ACC_ENERGY] += pair_energy_cuda(overlap, k_n, model)
            sums[ACC_VIRIAL + species[i] + species[j]] += f * r
            sums[ACC_TOUCHING] += 1.0
        cuda.atomic.add(force, (i, 0), fx)
        cuda.atomic.add(force, (i, 1), fy)
        cuda.atomic.add(force, (i, 2), fz)
        if not (math.isfinite(fx) and math.isfinite(fy) and math.isfinite(fz)):
            flags[FLAG_NONFINITE] = 1
    if measure:  # uniform over the grid, so every thread of a block takes the same branch
        for q in range(N_ACC):
            add_block_sum(shared, sums[q], tid, acc, q)


@cuda.jit
def verlet_kernel(position, velocity, force, inv_mass, reference, sx, sy, sz, lx, ly, lz, dt, kick,
                  ke_kick, damping, scale, threshold, kinetic, flags):
    """The fused pass of :func:`granular.kernels_cpu.verlet_pass`, one thread per particle."""
    shared = cuda.shared.array(THREADS, dtype=np.float64)
    i = cuda.grid(1)
    tid = cuda.threadIdx.x
    ke = 0.0
    if i < position.shape[0]:
        ke, d2 = verlet_update_cuda(i, position, velocity, force, inv_mass, reference, sx, sy, sz, lx, ly,
                                    lz, dt, kick, ke_kick, damping, scale)
        if not d2 <= threshold * threshold:
            flags[FLAG_MOVED] = 1
            if not (math.isfinite(d2) and math.isfinite(ke)):
                flags[FLAG_NONFINITE] = 1
    total = _block_sum(shared, ke, tid)
    if tid == 0:
        cuda.atomic.add(kinetic, 0, total)


@cuda.jit
def wrap_kernel(position, lx, ly, lz, reference):
    """Wrap into the box and store the build positions."""
    i = cuda.grid(1)
    if i < position.shape[0]:
        for d in range(3):
            x = wrap_coordinate(position[i, d], lx if d == 0 else (ly if d == 1 else lz))
            position[i, d] = x
            reference[i, d] = x
