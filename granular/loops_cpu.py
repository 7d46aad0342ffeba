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
from granular.integrator import fire_adapt_cpu
from granular.kernels_cpu import (
    N_ACC,
    contact_forces,
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
def _fire_norms(force, velocity, chunk):
    """Per-chunk (F.v, |F|^2, max |F_i|^2) in ``chunk`` (n_chunks, >= 3)."""
    n = force.shape[0]
    n_chunks = chunk.shape[0]
    for c in prange(n_chunks):
        p = 0.0
        f2 = 0.0
        fmax = 0.0
        for i in range(c * n // n_chunks, (c + 1) * n // n_chunks):
            fi = force[i, 0] * force[i, 0] + force[i, 1] * force[i, 1] + force[i, 2] * force[i, 2]
            p += force[i, 0] * velocity[i, 0] + force[i, 1] * velocity[i, 1] + force[i, 2] * velocity[i, 2]
            f2 += fi
            if not fi <= fmax:
                fmax = fi if fi == fi else np.inf
        chunk[c, 0] = p
        chunk[c, 1] = f2
        chunk[c, 2] = fmax


@numba.njit(parallel=True, cache=True)
def _fire_kick(velocity, force, inv_mass, dt, chunk):
    """v += dt F/m (the Euler kick); per-chunk |v|^2 of the result into ``chunk[:, 0]``."""
    n = velocity.shape[0]
    n_chunks = chunk.shape[0]
    for c in prange(n_chunks):
        v2 = 0.0
        for i in range(c * n // n_chunks, (c + 1) * n // n_chunks):
            for d in range(3):
                v = velocity[i, d] + dt * force[i, d] * inv_mass[i]
                velocity[i, d] = v
                v2 += v * v
        chunk[c, 0] = v2


@numba.njit(cache=True)
def fire_loop(position, velocity, force, radius, species, inv_mass, box, level, level_rmax, skin, k_n,
              model, dt_start, dt_max, force_tol, max_steps, totals, n_chunks):
    """FIRE 2.0 minimisation (Guenole et al. 2020: semi-implicit Euler, mixing after the kick,
    half step back and velocity reset on uphill motion, delayed time-step growth).

    Stops when max_i |F_i| <= force_tol. Returns (status, steps, converged, max_force, rebuilds).
    """
    n = position.shape[0]
    n_delay = 20
    f_inc = 1.1
    f_dec = 0.5
    alpha_start = 0.25
    f_alpha = 0.99
    dt_min = 0.02 * dt_start
    start, neighbours, bounds, ref = rebuild(position, radius, box, level, level_rmax, skin, n_chunks)
    rebuilds = 1
    buf = _scratch(n, n_chunks, force)
    acc = np.zeros((n_chunks, N_ACC))
    norms = np.zeros((n_chunks, 3))
    chunk = np.zeros((n_chunks, 2))
    velocity[:, :] = 0.0
    contact_forces(position, velocity, radius, species, box, start, neighbours, bounds, k_n, 0.0,
                   model, buf, acc, force)
    sum_accumulators(acc, totals)
    dt = dt_start
    alpha = alpha_start
    n_positive = 0
    step = 0
    while True:
        _fire_norms(force, velocity, norms)
        power = norms[:, 0].sum()
        f_norm = math.sqrt(norms[:, 1].sum())
        max_force = math.sqrt(norms[:, 2].max())
        if not (math.isfinite(max_force) and math.isfinite(totals[0])):
            return STATUS_NONFINITE, step, False, max_force, rebuilds
        if max_force <= force_tol or step >= max_steps:
            wrap_inplace(position, box)
            return STATUS_OK, step, max_force <= force_tol, max_force, rebuilds
        n_positive, dt, alpha, uphill = fire_adapt_cpu(power, step, n_positive, dt, alpha, n_delay, f_inc,
                                                       f_dec, f_alpha, alpha_start, dt_max, dt_min)
        if uphill:
            for i in range(n):
                for d in range(3):
                    position[i, d] -= 0.5 * dt * velocity[i, d]
                    velocity[i, d] = 0.0
        _fire_kick(velocity, force, inv_mass, dt, chunk)
        v_norm = math.sqrt(chunk[:, 0].sum())
        ratio = v_norm / f_norm if f_norm > 0.0 else 0.0
        _fire_mix(velocity, force, alpha, ratio)
        # x += dt v and the displacement since the build (a Verlet pass without kick)
        verlet_pass(position, velocity, force, inv_mass, ref, box, box, dt, 0.0, 0.0, 0.0, 1.0, chunk)
        step += 1
        moved = math.sqrt(chunk[:, 1].max())
        if not math.isfinite(moved):
            return STATUS_NONFINITE, step, False, np.inf, rebuilds
        if moved > 0.5 * skin:
            start, neighbours, bounds, ref = rebuild(position, radius, box, level, level_rmax, skin,
                                                     n_chunks)
            rebuilds += 1
        contact_forces(position, velocity, radius, species, box, start, neighbours, bounds, k_n, 0.0,
                       model, buf, acc, force)
        sum_accumulators(acc, totals)


@numba.njit(parallel=True, cache=True)
def _fire_mix(velocity, force, alpha, ratio):
    for i in prange(velocity.shape[0]):
        for d in range(3):
            velocity[i, d] = (1.0 - alpha) * velocity[i, d] + alpha * ratio * force[i, d]


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


def run_fire(position, velocity, radius, species, box, k_n, model, dt, dt_max, force_tol, max_steps,
             skin, inv_mass=None):
    """Run :func:`fire_loop` in place. Returns (status, steps, converged, max_force, force, totals).

    ``inv_mass`` (N,) are the inverse masses of FIRE's dynamics (default: physical, 1 / ((4/3) pi r^3)).
    """
    level, level_rmax = _levels(radius)
    totals = np.zeros(N_ACC)
    force = np.zeros_like(position)
    if inv_mass is None:
        inv_mass = 1.0 / ((4.0 / 3.0) * np.pi * radius**3)
    inv_mass = np.ascontiguousarray(inv_mass, dtype=np.float64)
    with _threads(len(radius)) as n_chunks:
        status, steps, converged, max_force, _ = fire_loop(
            position, velocity, force, radius, species, inv_mass, box, level, level_rmax, float(skin),
            float(k_n), int(model), float(dt), float(dt_max), float(force_tol), int(max_steps), totals,
            n_chunks)
    return status, steps, bool(converged), float(max_force), force, totals
