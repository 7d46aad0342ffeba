"""CPU launch layer: ``numba.njit(parallel=True)`` kernels and the compiled MD / FIRE loops.

The pair physics comes from :mod:`granular.contact` (one source for both targets). Forces use the
half Verlet list of :mod:`granular.partition`: the particles are split into as many contiguous
chunks as there are threads (balanced by pair count); each chunk accumulates the reaction forces
of its pairs into its own buffer, and the buffers are summed at the end (no atomics, deterministic
for a given thread count).

The time loops that call these kernels are in :mod:`granular.loops_cpu`.

Accumulators per force call (``acc`` rows summed over chunks): the slots of
:mod:`granular.accumulators` (elastic energy, contact virial by pair type, touching pairs).
"""

from __future__ import annotations

import numba
import numpy as np
from numba import prange

from granular.accumulators import (
    ACC_ENERGY,
    ACC_TOUCHING,
    ACC_VIRIAL_LL,
    ACC_VIRIAL_SL,
    ACC_VIRIAL_SS,
    N_ACC,
)
from granular.contact import pair_energy_cpu, pair_force_cpu, pair_stiffness_cpu
from granular.integrator import verlet_update_cpu
from granular.partition import balanced_chunks, build_half_list
from granular.space import pair_separation, wrap_coordinate


@numba.njit(parallel=True, fastmath={"contract", "arcp", "nsz"}, cache=True)
def contact_forces(position, velocity, radius, species, box, start, neighbours, bounds, k_n, gamma_n,
                   model, buf, acc, force, measure=True):
    """Contact forces into ``force`` (N, 3); per-chunk sums into ``acc`` (n_chunks, N_ACC) when
    ``measure`` (the MD loop skips them on steps it does not record).

    ``buf`` is scratch of shape (n_chunks, N, 3); with a single chunk pass ``force[None]`` (the
    same memory) and no reduction pass is made.
    """
    n = position.shape[0]
    n_chunks = bounds.size - 1
    lx, ly, lz = box[0], box[1], box[2]
    damped = gamma_n != 0.0
    for c in prange(n_chunks):
        b = buf[c]
        b[:, :] = 0.0
        energy = 0.0
        w_ll = 0.0
        w_sl = 0.0
        w_ss = 0.0
        n_touching = 0.0
        for i in range(bounds[c], bounds[c + 1]):
            xi = position[i, 0]
            yi = position[i, 1]
            zi = position[i, 2]
            ri = radius[i]
            si = species[i]
            vxi = velocity[i, 0]
            vyi = velocity[i, 1]
            vzi = velocity[i, 2]
            fx = 0.0
            fy = 0.0
            fz = 0.0
            for k in range(start[i], start[i + 1]):
                j = neighbours[k]
                touching, r, overlap, nx, ny, nz = pair_separation(
                    xi, yi, zi, position[j, 0], position[j, 1], position[j, 2], lx, ly, lz, ri + radius[j])
                if not touching:
                    continue
                rate = 0.0
                if damped:
                    rate = -((velocity[j, 0] - vxi) * nx + (velocity[j, 1] - vyi) * ny
                             + (velocity[j, 2] - vzi) * nz)
                f = pair_force_cpu(overlap, rate, k_n, gamma_n, model)
                px = f * nx
                py = f * ny
                pz = f * nz
                fx -= px
                fy -= py
                fz -= pz
                b[j, 0] += px
                b[j, 1] += py
                b[j, 2] += pz
                if measure:
                    energy += pair_energy_cpu(overlap, k_n, model)
                    # branch-free split by pair type (0 LL, 1 SL, 2 SS): the type is unpredictable
                    pair_type = si + species[j]
                    fr = f * r
                    w_ll += fr * (pair_type == 0)
                    w_sl += fr * (pair_type == 1)
                    w_ss += fr * (pair_type == 2)
                    n_touching += 1.0
            b[i, 0] += fx
            b[i, 1] += fy
            b[i, 2] += fz
        acc[c, ACC_ENERGY] = energy
        acc[c, ACC_VIRIAL_LL] = w_ll
        acc[c, ACC_VIRIAL_SL] = w_sl
        acc[c, ACC_VIRIAL_SS] = w_ss
        acc[c, ACC_TOUCHING] = n_touching
    if n_chunks > 1:
        for i in prange(n):
            for d in range(3):
                s = 0.0
                for c in range(n_chunks):
                    s += buf[c, i, d]
                force[i, d] = s


@numba.njit(cache=True)
def pair_contact_stiffness(position, radius, box, i, j, k_n, model):
    """Tangent stiffness d f / d xi of the pair (i, j) (units k_n) and its centre distance r (units
    d_L); stiffness 0.0 when the two do not touch."""
    touching, r, overlap, _, _, _ = pair_separation(
        position[i, 0], position[i, 1], position[i, 2], position[j, 0], position[j, 1], position[j, 2],
        box[0], box[1], box[2], radius[i] + radius[j])
    if not touching:
        return 0.0, r
    return pair_stiffness_cpu(overlap, k_n, model), r


@numba.njit(parallel=True, cache=True)
def verlet_pass(position, velocity, force, inv_mass, reference, box_ref, box, dt, kick, ke_kick, damping,
                scale, chunk):
    """One fused velocity-Verlet pass per particle (LAMMPS-style: two half kicks merged).

    With a = (F_contact - damping v) / m from the last force call and v the velocity it saw:
    kinetic energy of v + ke_kick a (the on-step velocity) into ``chunk[:, 0]``; then
    v += kick a; x = scale (x + dt v); the largest squared displacement from the affinely rescaled
    build positions (box = new box) into ``chunk[:, 1]`` (inf if not finite).
    """
    n = position.shape[0]
    n_chunks = chunk.shape[0]
    sx = box[0] / box_ref[0]
    sy = box[1] / box_ref[1]
    sz = box[2] / box_ref[2]
    lx, ly, lz = box[0], box[1], box[2]
    for c in prange(n_chunks):
        kinetic = 0.0
        moved = 0.0
        for i in range(c * n // n_chunks, (c + 1) * n // n_chunks):
            ke, d2 = verlet_update_cpu(i, position, velocity, force, inv_mass, reference, sx, sy, sz,
                                       lx, ly, lz, dt, kick, ke_kick, damping, scale)
            kinetic += ke
            if not d2 <= moved:  # also catches NaN
                moved = d2 if d2 == d2 else np.inf
        chunk[c, 0] = kinetic
        chunk[c, 1] = moved


@numba.njit(cache=True)
def wrap_inplace(position, box):
    for i in range(position.shape[0]):
        for d in range(3):
            position[i, d] = wrap_coordinate(position[i, d], box[d])


@numba.njit(cache=True)
def rebuild(position, radius, box, level, level_rmax, skin, n_chunks):
    """Wrap positions, build the half list and its chunks; returns (start, neighbours, bounds, ref)."""
    wrap_inplace(position, box)
    start, neighbours = build_half_list(position, radius, box, level, level_rmax, skin)
    bounds = balanced_chunks(start, n_chunks)
    return start, neighbours, bounds, position.copy()


@numba.njit(cache=True)
def sum_accumulators(acc, out):
    """Sum the per-chunk accumulators ``acc`` (n_chunks, N_ACC) into ``out`` (N_ACC,)."""
    out[:] = 0.0
    for c in range(acc.shape[0]):
        for q in range(N_ACC):
            out[q] += acc[c, q]
