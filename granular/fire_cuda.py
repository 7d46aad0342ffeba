"""FIRE on the GPU: the kernels and the host loop, with the step logic on the device.

The per-particle update, the reductions and the scalar control are the functions of
:mod:`granular.integrator` compiled as device functions, so both backends run the same FIRE. One
step is five launches (six with the Jacobi preconditioner) and no host synchronisation: the
fused reductions (F.v, |F|^2 in the chosen metric and max |F_i|^2, one block tree per sum), the
control (one thread: convergence, dt, alpha, mixing ratio, all in a device state vector), with
the Jacobi preconditioner the contact-stiffness sums, the kick (mass refresh, half step back,
v += dt F / m, the norm of the new velocities), the update (mixing, move, and zeroing the forces
it has used) and the forces (:func:`fire_force_kernel`, the body of MD's force kernel,
:func:`granular.kernels_cuda.pair_forces`).

The host reads the state vector once per block of steps, at most :data:`CHECK_EVERY` = 64 (one
read per 64 steps in steady state). Once a halt is set (converged, energy below the unjammed
certificate, step cap, non-finite value, too many uphill steps, or a particle moved past half
the skin: a list rebuild) every kernel of the remaining steps of the block returns at once,
the force kernel included (the halt is read from device memory by every thread, so it is
uniform over the grid and the block reductions stay safe), so the loop stops exactly where a
per-step check would have stopped, with the forces of the final positions in place; on a move
the host rebuilds the list, recomputes the forces and resumes. A block never runs past the step
cap, and after a list build the blocks grow from :data:`FIRST_BLOCK` by the steps done since
the build (4, 4, 8, 16, 32, 64, 64, ...), so a halt that comes soon after a build (frequent
rebuilds early in a minimisation, the end of a short one) wastes few launches.
"""

from __future__ import annotations

import math

import numpy as np
from numba import cuda

from granular import integrator as I
from granular import kernels_cuda as K
from granular.contact import pair_stiffness
from granular.kernels_cuda import FLAG_MOVED, FLAG_NONFINITE, THREADS, verlet_update_cuda
from granular.space import pair_separation

CHECK_EVERY = 64  # most steps between two reads of the device state (steady state)
FIRST_BLOCK = 4  # steps of the first block after a list build

fire_norms_cuda = cuda.jit(device=True)(I.fire_norms)
fire_control_cuda = cuda.jit(device=True)(I.fire_control)
fire_update_cuda = cuda.jit(device=True)(I.make_fire_update(verlet_update_cuda))
fire_kick_cuda = cuda.jit(device=True)(I.fire_kick)
fire_ratio_cuda = cuda.jit(device=True)(I.fire_ratio)
jacobi_mass_cuda = cuda.jit(device=True)(I.jacobi_mass)
pair_stiffness_cuda = cuda.jit(device=True)(pair_stiffness)


@cuda.jit
def norms_kernel(force, velocity, inv_mass, par, state, flags, sums):
    """Add the block sums of :func:`granular.integrator.fire_norms` into ``sums`` (zeroed by the
    control kernel) and the atomic max of |F_i|^2."""
    if state[I.S_HALT] != I.HALT_RUNNING or flags[FLAG_MOVED] != 0:
        return
    shared = cuda.shared.array(THREADS, dtype=np.float64)
    i = cuda.grid(1)
    tid = cuda.threadIdx.x
    p = 0.0
    f2 = 0.0
    if i < force.shape[0]:
        p, f2, fi2 = fire_norms_cuda(i, force, velocity, inv_mass, par[I.P_CONSISTENT] != 0.0)
        cuda.atomic.max(sums, I.R_FMAX2, fi2)
    K.add_block_sum(shared, p, tid, sums, I.R_POWER)
    K.add_block_sum(shared, f2, tid, sums, I.R_F2)


@cuda.jit
def control_kernel(par, state, sums, acc, flags):
    """One thread: the flags of the last step, then :func:`granular.integrator.fire_control`
    with the energy in ``acc[0]`` (the force kernel's sums, zeroed here for the next call)."""
    if cuda.grid(1) != 0 or state[I.S_HALT] != I.HALT_RUNNING:
        return
    if flags[FLAG_NONFINITE] != 0:
        state[I.S_HALT] = I.HALT_NONFINITE
        return
    if flags[FLAG_MOVED] != 0:
        state[I.S_HALT] = I.HALT_MOVED
        return
    fire_control_cuda(state, par, sums, acc[0], 0)
    state[I.S_F2] = sums[I.R_F2]
    for q in range(I.N_SUMS):
        sums[q] = 0.0
    for q in range(acc.shape[0]):
        acc[q] = 0.0
    if state[I.S_UPHILL] != 0.0:
        state[I.S_STIFFNESS] = 0.0


@cuda.jit
def stiffness_kernel(position, radius, lx, ly, lz, neighbours, counts, k_n, model, par, state, stiffness):
    """Jacobi preconditioner at a velocity reset: contact-stiffness sums per particle into
    ``stiffness`` (zero on entry), their total and the number of contact ends into the state."""
    if (state[I.S_HALT] != I.HALT_RUNNING or state[I.S_UPHILL] == 0.0
            or not par[I.P_JACOBI_FLOOR] > 0.0):
        return
    shared = cuda.shared.array((2, THREADS), dtype=np.float64)
    i = cuda.grid(1)
    tid = cuda.threadIdx.x
    n = position.shape[0]
    total = 0.0
    ends = 0.0
    if i < n:
        for k in range(counts[i]):
            j = neighbours[k * n + i]
            touching, _, overlap, _, _, _ = pair_separation(
                position[i, 0], position[i, 1], position[i, 2],
                position[j, 0], position[j, 1], position[j, 2],
                lx, ly, lz, radius[i] + radius[j])
            if touching:
                s = pair_stiffness_cuda(overlap, k_n, model)
                cuda.atomic.add(stiffness, i, s)
                cuda.atomic.add(stiffness, j, s)
                total += 2.0 * s
                ends += 2.0
    shared[0, tid] = total
    shared[1, tid] = ends
    cuda.syncthreads()
    stride = THREADS // 2
    while stride > 0:
        if tid < stride:
            shared[0, tid] += shared[0, tid + stride]
            shared[1, tid] += shared[1, tid + stride]
        cuda.syncthreads()
        stride //= 2
    if tid == 0:
        cuda.atomic.add(state, I.S_STIFFNESS, shared[0, 0])
        cuda.atomic.add(state, I.S_CONTACTS, shared[1, 0])


@cuda.jit
def kick_kernel(position, velocity, force, inv_mass, stiffness, k_n, par, state, sums):
    """Mass refresh (Jacobi, at a reset) and :func:`granular.integrator.fire_kick`; the norm of
    the new velocities added into ``sums[R_VKICK]``."""
    if state[I.S_HALT] != I.HALT_RUNNING:
        return
    shared = cuda.shared.array(THREADS, dtype=np.float64)
    i = cuda.grid(1)
    tid = cuda.threadIdx.x
    uphill = state[I.S_UPHILL] != 0.0
    v2 = 0.0
    if i < position.shape[0]:
        if uphill and par[I.P_JACOBI_FLOOR] > 0.0:
            inv_mass[i] = 1.0 / jacobi_mass_cuda(stiffness[i], state[I.S_STIFFNESS], state[I.S_CONTACTS],
                                                 par[I.P_JACOBI_FLOOR], k_n)
            stiffness[i] = 0.0
        v2 = fire_kick_cuda(i, position, velocity, force, inv_mass, state[I.S_DT], uphill,
                            par[I.P_HALF_STEP_BACK] != 0.0, par[I.P_CONSISTENT] != 0.0, 0.0)
    K.add_block_sum(shared, v2, tid, sums, I.R_VKICK)


@cuda.jit
def update_kernel(position, velocity, force, inv_mass, reference, lx, ly, lz, threshold, par, state, sums,
                  flags):
    """FIRE's mixing and move (:func:`granular.integrator.make_fire_update`); flags a move past
    ``threshold`` and non-finite positions, and zeroes ``force`` for :func:`fire_force_kernel`."""
    if state[I.S_HALT] != I.HALT_RUNNING:
        return
    i = cuda.grid(1)
    if i >= position.shape[0]:
        return
    consistent = par[I.P_CONSISTENT] != 0.0
    ratio = fire_ratio_cuda(state[I.S_F2], sums[I.R_VKICK], state[I.S_DT], state[I.S_UPHILL] != 0.0,
                            consistent)
    d2 = fire_update_cuda(i, position, velocity, force, inv_mass, reference, lx, ly, lz, state[I.S_DT],
                          state[I.S_ALPHA], ratio, consistent)
    for d in range(3):  # used: zeroed for the force kernel, which adds into it
        force[i, d] = 0.0
    if not d2 <= threshold * threshold:
        flags[FLAG_MOVED] = 1
        if not math.isfinite(d2):
            flags[FLAG_NONFINITE] = 1


@cuda.jit
def fire_force_kernel(position, velocity, radius, species, lx, ly, lz, neighbours, counts, k_n, model, force,
                      acc, flags, measure, state):
    """:func:`granular.kernels_cuda.pair_forces` without dashpot into ``force`` (zeroed by the
    update kernel); does nothing once a halt is set or a particle moved past the threshold (the
    host rebuilds the list and recomputes the forces)."""
    if state[I.S_HALT] != I.HALT_RUNNING or flags[FLAG_MOVED] != 0:
        return
    shared = cuda.shared.array(THREADS, dtype=np.float64)
    K.pair_forces(shared, position, velocity, radius, species, lx, ly, lz, neighbours, counts, k_n, 0.0,
                  model, force, acc, flags, measure)


def block_length(step, max_steps, since_build):
    """Loop iterations to launch before the next read of the device state.

    Parameters
    ----------
    step : float
        Steps done (``state[S_STEP]`` at the last read).
    max_steps : float
        The step cap (``par[P_MAX_STEPS]``): the control halts at the iteration after step
        ``max_steps``, so a block never goes further.
    since_build : float
        Steps done since the last list build.

    Returns
    -------
    int
        ``min(CHECK_EVERY, max(FIRST_BLOCK, since_build), max_steps - step + 1)``, at least 1.
    """
    n = min(CHECK_EVERY, max(FIRST_BLOCK, int(since_build)))
    return max(1, int(min(n, max_steps - step + 1)))


def _step(dev, k_n, model, measure, d_par, d_state, sums, stiffness, threshold, jacobi):
    """Launch one FIRE step (every kernel returns at once when a halt is set)."""
    lx, ly, lz = (float(v) for v in dev.box)
    dev._launch(norms_kernel, dev.force, dev.velocity, dev.inv_mass, d_par, d_state, dev.flags, sums)
    control_kernel[1, 1](d_par, d_state, sums, dev.acc, dev.flags)
    if jacobi:
        dev._launch(stiffness_kernel, dev.position, dev.radius, lx, ly, lz, dev.neighbours, dev.counts,
                    float(k_n), int(model), d_par, d_state, stiffness)
    dev._launch(kick_kernel, dev.position, dev.velocity, dev.force, dev.inv_mass, stiffness, float(k_n),
                d_par, d_state, sums)
    dev._launch(update_kernel, dev.position, dev.velocity, dev.force, dev.inv_mass, dev.reference, lx, ly, lz,
                threshold, d_par, d_state, sums, dev.flags)
    dev._launch(fire_force_kernel, dev.position, dev.velocity, dev.radius, dev.species, lx, ly, lz,
                dev.neighbours, dev.counts, float(k_n), int(model), dev.force, dev.acc, dev.flags,
                1 if measure else 0, d_state)


def fire_on_device(dev, k_n, model, par, state, stats=None):
    """Run FIRE on a :class:`granular.loops_cuda.DeviceSystem` whose list is built and forces
    computed (with sums, ``measure=True``, if ``par`` has an energy stop); ``state`` (host,
    N_STATE) is updated. ``stats``, a dict, receives ``blocks``: the loop iterations launched
    between two reads of the state, one entry per read (each halt takes one iteration, and the
    iterations of a block after its halt do nothing). Returns the number of list builds."""
    d_par, d_state = cuda.to_device(par), cuda.to_device(state)
    sums = cuda.to_device(np.zeros(I.N_SUMS))
    stiffness = cuda.to_device(np.zeros(dev.n))
    threshold, jacobi = 0.5 * dev.skin, par[I.P_JACOBI_FLOOR] > 0.0
    measure = par[I.P_ENERGY_TOL] > 0.0  # the energy stop needs the force kernel's sums
    built, blocks = state[I.S_STEP], []
    while True:
        n = block_length(state[I.S_STEP], par[I.P_MAX_STEPS], state[I.S_STEP] - built)
        for _ in range(n):
            _step(dev, k_n, model, measure, d_par, d_state, sums, stiffness, threshold, jacobi)
        state[:] = d_state.copy_to_host()
        blocks.append(n)
        if state[I.S_HALT] == I.HALT_RUNNING:
            continue
        if state[I.S_HALT] != I.HALT_MOVED:
            break
        dev.rebuild()  # clears the flags
        dev.forces(k_n, 0.0, model, measure)
        built = state[I.S_STEP]
        state[I.S_HALT] = I.HALT_RUNNING
        d_state.copy_to_device(state)
    if stats is not None:
        stats["blocks"] = blocks
    return dev.rebuilds
