"""Compiled time loops on the CPU: damped velocity Verlet (with affine box scaling) and FIRE.

Many steps run per host call; the Verlet-list rebuild criterion (:func:`rebuild_threshold`) is
checked every step from the displacement computed in the same pass that moves the particles.
Problems come back as a status code with the step number (``STATUS_NONFINITE``), which
:mod:`granular.simulate` turns into an exception.
"""

from __future__ import annotations

import contextlib
import math
import os

import numba
import numpy as np
from numba import prange

from granular.accumulators import ACC_ENERGY, ACC_TOUCHING, ACC_VIRIAL_LL, ACC_VIRIAL_SL, ACC_VIRIAL_SS
from granular.integrator import (
    HALT_NONFINITE,
    HALT_RUNNING,
    N_SUMS,
    P_CONSISTENT,
    P_HALF_STEP_BACK,
    P_JACOBI_FLOOR,
    R_F2,
    R_FMAX2,
    R_POWER,
    R_VKICK,
    S_ALPHA,
    S_CONTACTS,
    S_DT,
    S_HALT,
    S_STIFFNESS,
    S_UPHILL,
    fire_control_cpu,
    fire_kick_cpu,
    fire_norms_cpu,
    fire_ratio_cpu,
    fire_update_cpu,
    jacobi_mass_cpu,
)
from granular.kernels_cpu import (
    N_ACC,
    contact_forces,
    pair_contact_stiffness,
    rebuild,
    sum_accumulators,
    verlet_pass,
    wrap_inplace,
)
from granular.partition import radius_levels, rebuild_threshold

STATUS_OK = 0
STATUS_NONFINITE = 1


@numba.njit(cache=True)
def _scratch(n, n_chunks, force):
    if n_chunks == 1:
        return force.reshape((1, n, 3))
    return np.empty((n_chunks, n, 3))


@numba.njit(cache=True)
def _fire_buffers(n, n_chunks, force):
    """Work arrays of a FIRE loop: per-chunk forces, accumulators (N_ACC), reduction partials and
    totals (N_SUMS), per-chunk extrema."""
    return (_scratch(n, n_chunks, force), np.zeros((n_chunks, N_ACC)), np.zeros((n_chunks, N_SUMS)),
            np.zeros(N_SUMS), np.zeros((n_chunks, 2)))


@numba.njit(cache=True)
def _record(records, n_rec, step, dt, solid, box, totals, kinetic, n, rebuilds):
    volume = box[0] * box[1] * box[2]
    records[n_rec, 0] = step * dt
    records[n_rec, 1] = solid / volume
    virial = totals[ACC_VIRIAL_LL] + totals[ACC_VIRIAL_SL] + totals[ACC_VIRIAL_SS]
    records[n_rec, 2] = virial / (3.0 * volume)
    records[n_rec, 3] = 2.0 * totals[ACC_TOUCHING] / n
    records[n_rec, 4] = kinetic
    records[n_rec, 5] = totals[ACC_ENERGY]
    records[n_rec, 6] = rebuilds


@numba.njit(cache=True)
def md_loop(position, velocity, force, radius, species, inv_mass, box, level, level_rmax, skin, k_n,
            gamma_n, model, dt, damping, log_scale, steps, record_every, records, totals, n_chunks):
    """Velocity Verlet with background damping and optional affine box scaling.

    Step n -> n+1: v(n+1/2) = v(n) + dt/2 a(n); x(n+1) = s (x(n) + dt v(n+1/2)), box *= s with
    s = exp(log_scale); a(n+1) = (F_contact(x(n+1), v(n+1/2)) - damping v(n+1/2)) / m;
    v(n+1) = v(n+1/2) + dt/2 a(n+1). The two half kicks are merged into one pass per step
    (:func:`verlet_pass`), which also gives the on-step kinetic energy and the displacement.

    ``records`` (R, 7) receives rows (time, phi, pressure, z, kinetic, potential, rebuilds) at step 0
    and every ``record_every`` steps; ``totals`` (5,) the accumulators of the last force call;
    ``force`` the last contact forces. Returns (status, step, n_records, n_rebuilds).
    """
    n = position.shape[0]
    solid = 0.0
    for i in range(n):
        solid += (4.0 / 3.0) * math.pi * radius[i] ** 3
    radius_max = radius.max()
    start, neighbours, bounds, ref = rebuild(position, radius, box, level, level_rmax, skin, n_chunks)
    box_ref = box.copy()
    new_box = box.copy()
    rebuilds = 1
    buf = _scratch(n, n_chunks, force)
    acc = np.zeros((n_chunks, N_ACC))
    chunk = np.zeros((n_chunks, 2))
    contact_forces(position, velocity, radius, species, box, start, neighbours, bounds, k_n, gamma_n,
                   model, buf, acc, force)
    sum_accumulators(acc, totals)
    scale = math.exp(log_scale)
    n_rec = 0
    for step in range(steps):
        kick = 0.5 * dt if step == 0 else dt
        ke_kick = 0.0 if step == 0 else 0.5 * dt
        for d in range(3):
            new_box[d] = box[d] * scale
        verlet_pass(position, velocity, force, inv_mass, ref, box_ref, new_box, dt, kick, ke_kick, damping,
                    scale, chunk)
        kinetic = chunk[:, 0].sum()
        moved = math.sqrt(chunk[:, 1].max())
        if not (math.isfinite(moved) and math.isfinite(kinetic)):
            return STATUS_NONFINITE, step + 1, n_rec, rebuilds
        if record_every > 0 and step % record_every == 0 and n_rec < records.shape[0]:
            _record(records, n_rec, step, dt, solid, box, totals, kinetic, n, rebuilds)
            n_rec += 1
        box[:] = new_box
        if moved > rebuild_threshold(box, box_ref, skin, radius_max):
            start, neighbours, bounds, ref = rebuild(position, radius, box, level, level_rmax, skin,
                                                     n_chunks)
            box_ref[:] = box
            rebuilds += 1
        # sums (energy, virial, contacts) only for recorded steps and the last one; a non-finite
        # force shows up in the next pass (positions and kinetic energy are checked every step)
        measure = step + 1 == steps or (record_every > 0 and (step + 1) % record_every == 0)
        contact_forces(position, velocity, radius, species, box, start, neighbours, bounds, k_n, gamma_n,
                       model, buf, acc, force, measure)
        if measure:
            sum_accumulators(acc, totals)
            if not (math.isfinite(totals[0]) and math.isfinite(totals[1] + totals[2] + totals[3])):
                return STATUS_NONFINITE, step + 1, n_rec, rebuilds
    # last half kick: on-step velocities v(N)
    kick = 0.5 * dt if steps > 0 else 0.0
    verlet_pass(position, velocity, force, inv_mass, ref, box_ref, box, 0.0, kick, kick, damping, 1.0,
                chunk)
    kinetic = chunk[:, 0].sum()
    if record_every > 0 and steps % record_every == 0 and n_rec < records.shape[0]:
        _record(records, n_rec, steps, dt, solid, box, totals, kinetic, n, rebuilds)
        n_rec += 1
    wrap_inplace(position, box)
    return STATUS_OK, steps, n_rec, rebuilds


@numba.njit(parallel=True, cache=True)
def _fire_norms(force, velocity, inv_mass, consistent, partial, sums):
    """FIRE's reductions after a force call (:func:`granular.integrator.fire_norms`) into
    ``sums``; ``partial`` (n_chunks, N_SUMS) is scratch."""
    n = force.shape[0]
    n_chunks = partial.shape[0]
    for c in prange(n_chunks):
        p = 0.0
        f2 = 0.0
        fmax = 0.0
        for i in range(c * n // n_chunks, (c + 1) * n // n_chunks):
            pi, f2i, fi2 = fire_norms_cpu(i, force, velocity, inv_mass, consistent)
            p += pi
            f2 += f2i
            if not fi2 <= fmax:
                fmax = fi2
        partial[c, R_POWER] = p
        partial[c, R_F2] = f2
        partial[c, R_FMAX2] = fmax
    sums[R_POWER] = partial[:, R_POWER].sum()
    sums[R_F2] = partial[:, R_F2].sum()
    sums[R_FMAX2] = partial[:, R_FMAX2].max()


@numba.njit(parallel=True, cache=True)
def _fire_kick(position, velocity, force, inv_mass, state, half_back, consistent, partial, sums):
    """FIRE's kick of every particle (:func:`granular.integrator.fire_kick`); the norm of the new
    velocities into ``sums[R_VKICK]``."""
    n = position.shape[0]
    n_chunks = partial.shape[0]
    dt = state[S_DT]
    uphill = state[S_UPHILL] != 0.0
    for c in prange(n_chunks):
        v2 = 0.0
        for i in range(c * n // n_chunks, (c + 1) * n // n_chunks):
            v2 = fire_kick_cpu(i, position, velocity, force, inv_mass, dt, uphill, half_back, consistent, v2)
        partial[c, R_VKICK] = v2
    sums[R_VKICK] = partial[:, R_VKICK].sum()


@numba.njit(parallel=True, cache=True)
def _fire_update(position, velocity, force, inv_mass, reference, box, dt, alpha, ratio, consistent, chunk):
    """FIRE's mixing and move of every particle (:func:`granular.integrator.make_fire_update`); the
    largest squared displacement since the build into ``chunk[:, 1]`` (inf if not finite)."""
    n = position.shape[0]
    n_chunks = chunk.shape[0]
    for c in prange(n_chunks):
        moved = 0.0
        for i in range(c * n // n_chunks, (c + 1) * n // n_chunks):
            d2 = fire_update_cpu(i, position, velocity, force, inv_mass, reference, box[0], box[1], box[2],
                                 dt, alpha, ratio, consistent)
            if not d2 <= moved:
                moved = d2 if d2 == d2 else np.inf
        chunk[c, 1] = moved


@numba.njit(cache=True)
def jacobi_refresh(position, radius, box, start, neighbours, k_n, model, floor_fraction, stiffness,
                   inv_mass):
    """Jacobi preconditioner: m_i = max(sum of the tangent stiffnesses of i's contacts, floor),
    floor = ``floor_fraction`` x the mean stiffness of one contact; ``inv_mass`` = 1 / m.
    Returns the total stiffness and the number of contact ends."""
    n = position.shape[0]
    stiffness[:] = 0.0
    ends = 0.0
    for i in range(n):
        for k in range(start[i], start[i + 1]):
            j = neighbours[k]
            s, _ = pair_contact_stiffness(position, radius, box, i, j, k_n, model)
            if s != 0.0:
                stiffness[i] += s
                stiffness[j] += s
                ends += 2.0
    total = stiffness.sum()
    for i in range(n):
        inv_mass[i] = 1.0 / jacobi_mass_cpu(stiffness[i], total, ends, floor_fraction, k_n)
    return total, ends


@numba.njit(cache=True)
def fire_loop(position, velocity, force, radius, species, inv_mass, box, level, level_rmax, skin, k_n,
              model, par, state, totals, n_chunks):
    """FIRE minimisation at fixed box (the algorithm and its parameters: :mod:`granular.minimize`).

    One step: the reductions of the last force call (:func:`_fire_norms`), the scalar control
    (:func:`granular.integrator.fire_control`), with the Jacobi preconditioner a refresh of the
    masses at a velocity reset, the kick (:func:`_fire_kick`), the mixing and move
    (:func:`_fire_update`), a list rebuild when a
    particle moved more than half the skin, and the force call. ``par`` (N_PAR,) are the
    parameters, ``state`` (N_STATE,) the initialised FIRE state, updated in place (its S_HALT says
    why the loop stopped). Returns the number of list builds.
    """
    n = position.shape[0]
    start, neighbours, bounds, ref = rebuild(position, radius, box, level, level_rmax, skin, n_chunks)
    rebuilds = 1
    buf, acc, partial, sums, chunk = _fire_buffers(n, n_chunks, force)
    stiffness = np.zeros(n)
    consistent = par[P_CONSISTENT] != 0.0
    half_back = par[P_HALF_STEP_BACK] != 0.0
    jacobi = par[P_JACOBI_FLOOR] > 0.0
    velocity[:, :] = 0.0
    contact_forces(position, velocity, radius, species, box, start, neighbours, bounds, k_n, 0.0,
                   model, buf, acc, force)
    sum_accumulators(acc, totals)
    while True:
        _fire_norms(force, velocity, inv_mass, consistent, partial, sums)
        fire_control_cpu(state, par, sums, totals[0], 0 if math.isfinite(totals[0]) else 1)
        if state[S_HALT] != HALT_RUNNING:
            break
        if jacobi and state[S_UPHILL] != 0.0:
            state[S_STIFFNESS], state[S_CONTACTS] = jacobi_refresh(
                position, radius, box, start, neighbours, k_n, model, par[P_JACOBI_FLOOR], stiffness,
                inv_mass)
        _fire_kick(position, velocity, force, inv_mass, state, half_back, consistent, partial, sums)
        ratio = fire_ratio_cpu(sums[R_F2], sums[R_VKICK], state[S_DT], state[S_UPHILL] != 0.0, consistent)
        _fire_update(position, velocity, force, inv_mass, ref, box, state[S_DT], state[S_ALPHA], ratio,
                     consistent, chunk)
        moved = math.sqrt(chunk[:, 1].max())
        if not math.isfinite(moved):
            state[S_HALT] = HALT_NONFINITE
            break
        if moved > 0.5 * skin:
            start, neighbours, bounds, ref = rebuild(position, radius, box, level, level_rmax, skin,
                                                     n_chunks)
            rebuilds += 1
        contact_forces(position, velocity, radius, species, box, start, neighbours, bounds, k_n, 0.0,
                       model, buf, acc, force)
        sum_accumulators(acc, totals)
    if state[S_HALT] != HALT_NONFINITE:
        wrap_inplace(position, box)
    return rebuilds


# ---------------------------------------------------------------- host-side entry points
# The same four functions exist in granular.kernels_cuda; granular.simulate and granular.measure
# call them through granular.backend.launch_layer(name).


MIN_PARTICLES_PER_THREAD = 2048


def threads_for(n: int) -> int:
    """Threads for N particles: all of Numba's threads, but none with fewer than
    MIN_PARTICLES_PER_THREAD particles (a parallel region costs ~10 us even on an idle machine
    and far more when the cores are shared). ``JAMWAVE_THREADS`` overrides."""
    env = os.environ.get("JAMWAVE_THREADS")
    limit = numba.config.NUMBA_NUM_THREADS
    if env:
        try:
            wanted = int(env)
        except ValueError:
            raise ValueError(f"JAMWAVE_THREADS must be an integer >= 1, got {env!r}") from None
        if wanted < 1:
            raise ValueError(f"JAMWAVE_THREADS must be an integer >= 1, got {env!r}")
        return min(wanted, limit)
    return int(max(1, min(limit, n // MIN_PARTICLES_PER_THREAD)))


@contextlib.contextmanager
def _threads(n: int):
    previous = numba.get_num_threads()
    count = threads_for(n)
    numba.set_num_threads(count)
    try:
        yield count
    finally:
        numba.set_num_threads(previous)


def _levels(radius):
    return radius_levels(radius)


def evaluate(position, velocity, radius, species, box, k_n, gamma_n, model):
    """Contact forces (N, 3) and accumulators (5,) of one configuration (positions are wrapped)."""
    position = np.array(position, dtype=np.float64, order="C")
    level, level_rmax = _levels(radius)
    force = np.empty_like(position)
    with _threads(len(radius)) as n_chunks:
        start, neighbours, bounds, _ = rebuild(position, radius, box, level, level_rmax, 0.0, n_chunks)
        buf = _scratch(len(radius), n_chunks, force)
        acc = np.zeros((n_chunks, N_ACC))
        contact_forces(position, velocity, radius, species, box, start, neighbours, bounds, k_n,
                       gamma_n, model, buf, acc, force)
    return force, acc.sum(axis=0)


def pairs(position, radius, box):
    """Candidate pairs (i, j) with |r_ij| < r_i + r_j, found by the cell grids and half list."""
    position = np.array(position, dtype=np.float64, order="C")
    level, level_rmax = _levels(radius)
    with _threads(len(radius)):
        start, neighbours, _, _ = rebuild(position, radius, box, level, level_rmax, 0.0, 1)
    owner = np.repeat(np.arange(len(radius), dtype=np.int64), np.diff(start))
    return owner, neighbours.astype(np.int64)


def run_md(position, velocity, radius, species, box, k_n, gamma_n, model, dt, damping, log_scale,
           steps, record_every, skin):
    """Run :func:`md_loop` in place on (position, velocity, box).

    Returns (status, step, records (R, 7), rebuilds, force, totals).
    """
    level, level_rmax = _levels(radius)
    n_rec = steps // record_every + 1 if record_every > 0 else 0
    records = np.zeros((n_rec, 7))
    totals = np.zeros(N_ACC)
    force = np.zeros_like(position)
    inv_mass = 1.0 / ((4.0 / 3.0) * np.pi * radius**3)
    with _threads(len(radius)) as n_chunks:
        status, step, filled, rebuilds = md_loop(
            position, velocity, force, radius, species, inv_mass, box, level, level_rmax, float(skin),
            float(k_n), float(gamma_n), int(model), float(dt), float(damping), float(log_scale),
            int(steps), int(record_every), records, totals, n_chunks)
    return status, step, records[:filled], rebuilds, force, totals


def run_fire(position, velocity, radius, species, box, k_n, model, skin, inv_mass, par, state):
    """Run :func:`fire_loop` in place on (position, velocity, inv_mass, state).

    Returns (rebuilds, force (N, 3), totals (N_ACC,)); the outcome is in ``state``.
    """
    level, level_rmax = _levels(radius)
    totals = np.zeros(N_ACC)
    force = np.zeros_like(position)
    with _threads(len(radius)) as n_chunks:
        rebuilds = fire_loop(position, velocity, force, radius, species, inv_mass, box, level, level_rmax,
                             float(skin), float(k_n), int(model), par, state, totals, n_chunks)
    return rebuilds, force, totals
