"""Compiled FIRE loop with the box as a degree of freedom (enthalpy minimisation) on the CPU.

The step is :func:`granular.loops_cpu.fire_loop`'s with the box's share added at each stage (the
shared scalar functions ``box_*`` of :mod:`granular.integrator`): the reductions of the force call
plus the box's power and norm, the control (convergence also asks |P - P_t| <= pressure_tol P_t),
at a velocity reset the box mass refreshed from the contacts' affine stiffness, the kick of the
particles and the box (the box's half step back rescales the particles), the box's mixing and
move, then the particles' mixing and move inside the rescaled box (x = s (x + dt v)). The Verlet
list is rebuilt when a particle has moved past :func:`granular.partition.rebuild_threshold` of
the deformed box (the bound that already serves the MD loop's affine compression); a box smaller
than the minimum-image convention allows halts the loop (``HALT_BOX``).
"""

from __future__ import annotations

import math

import numba
import numpy as np
from numba import prange

from granular.accumulators import ACC_VIRIAL_LL, ACC_VIRIAL_SL, ACC_VIRIAL_SS, N_ACC
from granular.integrator import (
    B_INV_MASS,
    B_LENGTH,
    B_VELOCITY,
    BP_MAX_STRAIN,
    BP_PRESSURE,
    HALT_BOX,
    HALT_NONFINITE,
    HALT_RUNNING,
    P_CONSISTENT,
    P_HALF_STEP_BACK,
    R_F2,
    R_VKICK,
    S_ALPHA,
    S_DT,
    S_HALT,
    S_UPHILL,
    box_control_cpu,
    box_fire_update_cpu,
    box_force_cpu,
    box_inverse_mass_cpu,
    box_kick_cpu,
    box_move_cpu,
    box_norms_cpu,
    fire_ratio_cpu,
)
from granular.kernels_cpu import (
    contact_forces,
    pair_contact_stiffness,
    rebuild,
    sum_accumulators,
    wrap_inplace,
)
from granular.loops_cpu import _fire_buffers, _fire_kick, _fire_norms, _levels, _threads
from granular.partition import rebuild_threshold


@numba.njit(cache=True)
def box_stiffness(position, radius, box, start, neighbours, k_n, model):
    """Affine stiffness of the box, sum over touching pairs of (d f / d xi) |r_ij|^2 (units
    k_n d_L^2): d^2 U / d(ln L)^2 at fixed scaled positions, less the virial."""
    total = 0.0
    for i in range(position.shape[0]):
        for k in range(start[i], start[i + 1]):
            stiffness, r = pair_contact_stiffness(position, radius, box, i, neighbours[k], k_n, model)
            total += stiffness * r * r
    return total


@numba.njit(parallel=True, cache=True)
def _scale_positions(position, scale):
    """x = scale x for every particle (the box's half step back)."""
    for i in prange(position.shape[0]):
        for d in range(3):
            position[i, d] *= scale


@numba.njit(parallel=True, cache=True)
def _box_fire_update(position, velocity, force, inv_mass, reference, box_ref, box, dt, alpha, ratio,
                     consistent, scale, chunk):
    """Mixing and move of every particle in the new ``box`` (:func:`make_box_fire_update`); the
    largest squared displacement from the rescaled build positions into ``chunk[:, 1]``."""
    n = position.shape[0]
    n_chunks = chunk.shape[0]
    sx, sy, sz = box[0] / box_ref[0], box[1] / box_ref[1], box[2] / box_ref[2]
    for c in prange(n_chunks):
        moved = 0.0
        for i in range(c * n // n_chunks, (c + 1) * n // n_chunks):
            d2 = box_fire_update_cpu(i, position, velocity, force, inv_mass, reference, sx, sy, sz, box[0],
                                     box[1], box[2], dt, alpha, ratio, consistent, scale)
            if not d2 <= moved:
                moved = d2 if d2 == d2 else np.inf
        chunk[c, 1] = moved


@numba.njit(cache=True)
def _force_call(position, velocity, radius, species, box, start, neighbours, bounds, k_n, model, buf, acc,
                force, totals, bstate, p_target):
    """Contact forces and sums, then the pressure and the box force into ``bstate``."""
    contact_forces(position, velocity, radius, species, box, start, neighbours, bounds, k_n, 0.0, model,
                   buf, acc, force)
    sum_accumulators(acc, totals)
    virial = totals[ACC_VIRIAL_LL] + totals[ACC_VIRIAL_SL] + totals[ACC_VIRIAL_SS]
    box_force_cpu(bstate, virial, box[0] * box[1] * box[2], p_target)


@numba.njit(cache=True)
def enthalpy_loop(position, velocity, force, radius, species, inv_mass, box, level, level_rmax, skin, k_n,
                  model, par, state, bpar, bstate, totals, n_chunks):
    """FIRE on the positions and the box length at target pressure ``bpar[BP_PRESSURE]``.

    ``box`` (3,) is updated in place, ``bstate`` (N_BOX,) holds q = V^(1/3) on entry (the box's
    velocity is zeroed) and the box's state on exit; ``par``/``state`` as for
    :func:`granular.loops_cpu.fire_loop`. Returns the number of list builds.
    """
    n = position.shape[0]
    radius_max = radius.max()
    smallest = 2.0 * (2.0 * radius_max + skin)  # the minimum-image convention (space.check_box)
    start, neighbours, bounds, ref = rebuild(position, radius, box, level, level_rmax, skin, n_chunks)
    box_ref = box.copy()
    rebuilds = 1
    buf, acc, partial, sums, chunk = _fire_buffers(n, n_chunks, force)
    consistent = par[P_CONSISTENT] != 0.0
    half_back = par[P_HALF_STEP_BACK] != 0.0
    p_target = bpar[BP_PRESSURE]
    velocity[:, :] = 0.0
    bstate[B_VELOCITY] = 0.0
    _force_call(position, velocity, radius, species, box, start, neighbours, bounds, k_n, model, buf, acc,
                force, totals, bstate, p_target)
    while True:
        _fire_norms(force, velocity, inv_mass, consistent, partial, sums)
        box_norms_cpu(sums, bstate, consistent)
        box_control_cpu(state, par, sums, totals[0], 0 if math.isfinite(totals[0]) else 1, bstate, bpar)
        if state[S_HALT] != HALT_RUNNING:
            break
        uphill = state[S_UPHILL] != 0.0
        if uphill:  # a velocity reset: the box mass follows the contacts (v_q = 0 now)
            bstate[B_INV_MASS] = box_inverse_mass_cpu(
                box_stiffness(position, radius, box, start, neighbours, k_n, model), bstate[B_LENGTH], bpar)
        dt = state[S_DT]
        _fire_kick(position, velocity, force, inv_mass, state, half_back, consistent, partial, sums)
        v2, back = box_kick_cpu(bstate, dt, uphill, half_back, consistent)
        sums[R_VKICK] += v2
        if back != 1.0:
            _scale_positions(position, back)
            box *= back
        ratio = fire_ratio_cpu(sums[R_F2], sums[R_VKICK], dt, uphill, consistent)
        scale = box_move_cpu(bstate, dt, state[S_ALPHA], ratio, consistent, bpar[BP_MAX_STRAIN])
        box *= scale
        _box_fire_update(position, velocity, force, inv_mass, ref, box_ref, box, dt, state[S_ALPHA], ratio,
                         consistent, scale, chunk)
        moved = math.sqrt(chunk[:, 1].max())
        if not (math.isfinite(moved) and math.isfinite(scale)):
            state[S_HALT] = HALT_NONFINITE
            break
        if moved > rebuild_threshold(box, box_ref, skin, radius_max):
            if box.min() < smallest:
                state[S_HALT] = HALT_BOX
                break
            start, neighbours, bounds, ref = rebuild(position, radius, box, level, level_rmax, skin,
                                                     n_chunks)
            box_ref[:] = box
            rebuilds += 1
        _force_call(position, velocity, radius, species, box, start, neighbours, bounds, k_n, model, buf,
                    acc, force, totals, bstate, p_target)
    if state[S_HALT] != HALT_NONFINITE:
        wrap_inplace(position, box)
    return rebuilds


def run_enthalpy(position, velocity, radius, species, box, k_n, model, skin, inv_mass, par, state, bpar,
                 bstate):
    """Run :func:`enthalpy_loop` in place on (position, velocity, box, state, bstate).

    Returns (rebuilds, force (N, 3), totals (N_ACC,)); the outcome is in ``state`` and ``bstate``.
    """
    level, level_rmax = _levels(radius)
    totals = np.zeros(N_ACC)
    force = np.zeros_like(position)
    with _threads(len(radius)) as n_chunks:
        rebuilds = enthalpy_loop(position, velocity, force, radius, species, inv_mass, box, level, level_rmax,
                                 float(skin), float(k_n), int(model), par, state, bpar, bstate, totals,
                                 n_chunks)
    return rebuilds, force, totals
