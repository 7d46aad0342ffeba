"""CPU launch layer: ``numba.njit(parallel=True)`` kernels and the compiled MD / FIRE loops.

The pair physics comes from :mod:`granular.contact` (one source for both targets). Forces use the
half Verlet list of :mod:`granular.partition`: the particles are split into as many contiguous
chunks as there are threads (balanced by pair count); each chunk accumulates the reaction forces
of its pairs into its own buffer, and the buffers are summed at the end (no atomics, deterministic
for a given thread count).

The time loops (:func:`md_loop`, :func:`fire_loop`) run entirely in compiled code: many steps per
host call, with the Verlet-list rebuild criterion checked every step. They report problems
through a status code and the step at which it happened, which the host turns into an error:
``STATUS_OK`` or ``STATUS_NONFINITE`` (a position, velocity or force became NaN/inf).

Accumulators per force call (``acc`` rows summed over chunks): 0 elastic energy, 1-3 contact
virial sum_c f_c |r_ij| for pair types LL, SL, SS (species_i + species_j), 4 number of touching
pairs (overlap > 0).
"""

from __future__ import annotations

import math

import numba
import numpy as np
from numba import prange

from granular.contact import pair_energy_cpu, pair_force_cpu
from granular.partition import balanced_chunks, build_half_list, rebuild_threshold

STATUS_OK = 0
STATUS_NONFINITE = 1
N_ACC = 5


@numba.njit(parallel=True, cache=True)
def contact_forces(position, velocity, radius, species, box, start, neighbours, bounds, k_n, gamma_n,
                   model, buf, acc, force):
    """Contact forces into ``force`` (N, 3); per-chunk sums into ``acc`` (n_chunks, 5).

    ``buf`` is scratch of shape (n_chunks, N, 3).
    """
    n = position.shape[0]
    n_chunks = bounds.size - 1
    for c in prange(n_chunks):
        b = buf[c]
        b[:, :] = 0.0
        energy = 0.0
        w_ll = 0.0
        w_sl = 0.0
        w_ss = 0.0
        touching = 0.0
        for i in range(bounds[c], bounds[c + 1]):
            xi = position[i, 0]
            yi = position[i, 1]
            zi = position[i, 2]
            ri = radius[i]
            fx = 0.0
            fy = 0.0
            fz = 0.0
            for k in range(start[i], start[i + 1]):
                j = neighbours[k]
                dx = position[j, 0] - xi
                dy = position[j, 1] - yi
                dz = position[j, 2] - zi
                dx -= box[0] * math.floor(dx / box[0] + 0.5)
                dy -= box[1] * math.floor(dy / box[1] + 0.5)
                dz -= box[2] * math.floor(dz / box[2] + 0.5)
                rsum = ri + radius[j]
                r2 = dx * dx + dy * dy + dz * dz
                if r2 >= rsum * rsum:
                    continue
                r = math.sqrt(r2)
                overlap = rsum - r
                nx = dx / r
                ny = dy / r
                nz = dz / r
                rate = 0.0
                if gamma_n != 0.0:
                    rate = -((velocity[j, 0] - velocity[i, 0]) * nx + (velocity[j, 1] - velocity[i, 1]) * ny
                             + (velocity[j, 2] - velocity[i, 2]) * nz)
                f = pair_force_cpu(overlap, rate, k_n, gamma_n, model)
                fx -= f * nx
                fy -= f * ny
                fz -= f * nz
                b[j, 0] += f * nx
                b[j, 1] += f * ny
                b[j, 2] += f * nz
                energy += pair_energy_cpu(overlap, k_n, model)
                pair_type = species[i] + species[j]
                if pair_type == 0:
                    w_ll += f * r
                elif pair_type == 1:
                    w_sl += f * r
                else:
                    w_ss += f * r
                touching += 1.0
            b[i, 0] += fx
            b[i, 1] += fy
            b[i, 2] += fz
        acc[c, 0] = energy
        acc[c, 1] = w_ll
        acc[c, 2] = w_sl
        acc[c, 3] = w_ss
        acc[c, 4] = touching
    for i in prange(n):
        for d in range(3):
            s = 0.0
            for c in range(n_chunks):
                s += buf[c, i, d]
            force[i, d] = s


@numba.njit(cache=True)
def wrap_inplace(position, box):
    for i in range(position.shape[0]):
        for d in range(3):
            x = position[i, d] % box[d]
            if x >= box[d]:
                x -= box[d]
            position[i, d] = x


@numba.njit(cache=True)
def rebuild(position, radius, box, level, level_rmax, skin, n_chunks):
    """Wrap positions, build the half list and its chunks; returns (start, neighbours, bounds, ref)."""
    wrap_inplace(position, box)
    start, neighbours = build_half_list(position, radius, box, level, level_rmax, skin)
    bounds = balanced_chunks(start, n_chunks)
    return start, neighbours, bounds, position.copy()


@numba.njit(parallel=True, cache=True)
def max_displacement(position, reference, box, box_ref, chunk_max):
    """Largest displacement since the build, measured from the affinely rescaled build positions.

    Returns inf if any position is not finite (so the caller both rebuilds and sees the error).
    """
    n = position.shape[0]
    n_chunks = chunk_max.size
    sx = box[0] / box_ref[0]
    sy = box[1] / box_ref[1]
    sz = box[2] / box_ref[2]
    for c in prange(n_chunks):
        m = 0.0
        for i in range(c * n // n_chunks, (c + 1) * n // n_chunks):
            dx = position[i, 0] - reference[i, 0] * sx
            dy = position[i, 1] - reference[i, 1] * sy
            dz = position[i, 2] - reference[i, 2] * sz
            dx -= box[0] * math.floor(dx / box[0] + 0.5)
            dy -= box[1] * math.floor(dy / box[1] + 0.5)
            dz -= box[2] * math.floor(dz / box[2] + 0.5)
            d2 = dx * dx + dy * dy + dz * dz
            if not d2 <= m:  # also catches NaN
                m = d2 if d2 == d2 else np.inf
        chunk_max[c] = m
    return math.sqrt(chunk_max.max())


@numba.njit(parallel=True, cache=True)
def kick_drift(position, velocity, force, inv_mass, dt, scale):
    """v += dt/2 F/m; x = scale * (x + dt v) (scale = 1 without box deformation)."""
    half = 0.5 * dt
    for i in prange(position.shape[0]):
        for d in range(3):
            velocity[i, d] += half * force[i, d] * inv_mass[i]
            position[i, d] = scale * (position[i, d] + dt * velocity[i, d])


@numba.njit(parallel=True, cache=True)
def damp_and_kick(velocity, force, inv_mass, dt, damping):
    """F -= damping v (background viscous force); v += dt/2 F/m. Returns the kinetic energy."""
    half = 0.5 * dt
    kinetic = 0.0
    for i in prange(velocity.shape[0]):
        m = 1.0 / inv_mass[i]
        for d in range(3):
            force[i, d] -= damping * velocity[i, d]
            velocity[i, d] += half * force[i, d] * inv_mass[i]
            kinetic += 0.5 * m * velocity[i, d] * velocity[i, d]
    return kinetic


@numba.njit(cache=True)
def _sum_acc(acc, out):
    out[:] = 0.0
    for c in range(acc.shape[0]):
        for q in range(N_ACC):
            out[q] += acc[c, q]


@numba.njit(cache=True)
def md_loop(position, velocity, force, radius, species, inv_mass, box, level, level_rmax, skin, k_n,
            gamma_n, model, dt, damping, log_scale, steps, record_every, records, totals, n_chunks):
    """Velocity Verlet with background damping and optional affine box scaling, in compiled code.

    Each step: half kick with the current forces, drift, scale box and positions by
    exp(log_scale) (compression if negative), rebuild the list if needed, new contact forces
    (with the half-step velocities in the dashpot), viscous force -damping v, half kick.

    ``records`` (R, 7) receives rows (time, phi, pressure, z, kinetic, potential, rebuilds) at step 0
    and every ``record_every`` steps; ``totals`` (5,) the accumulators of the last force call.
    Returns (status, step, n_records, n_rebuilds).
    """
    n = position.shape[0]
    solid = 0.0
    for i in range(n):
        solid += (4.0 / 3.0) * math.pi * radius[i] ** 3
    radius_max = radius.max()
    start, neighbours, bounds, ref = rebuild(position, radius, box, level, level_rmax, skin, n_chunks)
    box_ref = box.copy()
    rebuilds = 1
    buf = np.empty((n_chunks, n, 3))
    acc = np.zeros((n_chunks, N_ACC))
    chunk_max = np.empty(n_chunks)
    contact_forces(position, velocity, radius, species, box, start, neighbours, bounds, k_n, gamma_n,
                   model, buf, acc, force)
    kinetic = damp_and_kick(velocity, force, inv_mass, 0.0, damping)
    _sum_acc(acc, totals)
    scale = math.exp(log_scale)
    n_rec = 0
    for step in range(steps + 1):
        if step > 0:
            kick_drift(position, velocity, force, inv_mass, dt, scale)
            if scale != 1.0:
                for d in range(3):
                    box[d] *= scale
            moved = max_displacement(position, ref, box, box_ref, chunk_max)
            if not math.isfinite(moved):
                return STATUS_NONFINITE, step, n_rec, rebuilds
            if moved > rebuild_threshold(box, box_ref, skin, radius_max):
                start, neighbours, bounds, ref = rebuild(position, radius, box, level, level_rmax, skin,
                                                         n_chunks)
                box_ref[:] = box
                rebuilds += 1
            contact_forces(position, velocity, radius, species, box, start, neighbours, bounds, k_n,
                           gamma_n, model, buf, acc, force)
            kinetic = damp_and_kick(velocity, force, inv_mass, dt, damping)
            _sum_acc(acc, totals)
            virial = totals[1] + totals[2] + totals[3]
            if not (math.isfinite(kinetic) and math.isfinite(totals[0]) and math.isfinite(virial)):
                return STATUS_NONFINITE, step, n_rec, rebuilds
        if record_every > 0 and step % record_every == 0 and n_rec < records.shape[0]:
            volume = box[0] * box[1] * box[2]
            records[n_rec, 0] = step * dt
            records[n_rec, 1] = solid / volume
            records[n_rec, 2] = (totals[1] + totals[2] + totals[3]) / (3.0 * volume)
            records[n_rec, 3] = 2.0 * totals[4] / n
            records[n_rec, 4] = kinetic
            records[n_rec, 5] = totals[0]
            records[n_rec, 6] = rebuilds
            n_rec += 1
    wrap_inplace(position, box)
    return STATUS_OK, steps, n_rec, rebuilds


@numba.njit(parallel=True, cache=True)
def _fire_norms(force, velocity, chunk):
    """Per-chunk (F.v, |F|^2, |v|^2, max |F_i|^2) in ``chunk`` (n_chunks, 4)."""
    n = force.shape[0]
    n_chunks = chunk.shape[0]
    for c in prange(n_chunks):
        p = 0.0
        f2 = 0.0
        v2 = 0.0
        fmax = 0.0
        for i in range(c * n // n_chunks, (c + 1) * n // n_chunks):
            fi = force[i, 0] * force[i, 0] + force[i, 1] * force[i, 1] + force[i, 2] * force[i, 2]
            p += force[i, 0] * velocity[i, 0] + force[i, 1] * velocity[i, 1] + force[i, 2] * velocity[i, 2]
            f2 += fi
            v2 += velocity[i, 0] ** 2 + velocity[i, 1] ** 2 + velocity[i, 2] ** 2
            if not fi <= fmax:
                fmax = fi if fi == fi else np.inf
        chunk[c, 0] = p
        chunk[c, 1] = f2
        chunk[c, 2] = v2
        chunk[c, 3] = fmax


@numba.njit(parallel=True, cache=True)
def _fire_kick(velocity, force, inv_mass, dt, chunk_v2):
    """v += dt F/m (the Euler kick); per-chunk |v|^2 of the result into ``chunk_v2``."""
    n = velocity.shape[0]
    n_chunks = chunk_v2.size
    for c in prange(n_chunks):
        v2 = 0.0
        for i in range(c * n // n_chunks, (c + 1) * n // n_chunks):
            for d in range(3):
                v = velocity[i, d] + dt * force[i, d] * inv_mass[i]
                velocity[i, d] = v
                v2 += v * v
        chunk_v2[c] = v2


@numba.njit(parallel=True, cache=True)
def _fire_mix_move(position, velocity, force, dt, alpha, ratio):
    """FIRE mixing v = (1 - alpha) v + alpha |v| F / |F| (ratio = |v| / |F|), then x += dt v."""
    for i in prange(position.shape[0]):
        for d in range(3):
            v = (1.0 - alpha) * velocity[i, d] + alpha * ratio * force[i, d]
            velocity[i, d] = v
            position[i, d] += dt * v


@numba.njit(cache=True)
def fire_loop(position, velocity, force, radius, species, inv_mass, box, level, level_rmax, skin, k_n,
              model, dt_start, dt_max, force_tol, max_steps, totals, n_chunks):
    """FIRE 2.0 minimisation (Guenole et al. 2020, semi-implicit Euler, half step back on uphill).

    Stops when max_i |F_i| <= force_tol. Returns (status, steps, converged, max_force, rebuilds).
    """
    n = position.shape[0]
    n_delay = 20
    f_inc = 1.1
    f_dec = 0.5
    alpha_start = 0.25
    f_alpha = 0.99
    dt_min = 0.02 * dt_start
    radius_max = radius.max()
    start, neighbours, bounds, ref = rebuild(position, radius, box, level, level_rmax, skin, n_chunks)
    box_ref = box.copy()
    rebuilds = 1
    buf = np.empty((n_chunks, n, 3))
    acc = np.zeros((n_chunks, N_ACC))
    chunk_max = np.empty(n_chunks)
    norms = np.zeros((n_chunks, 4))
    velocity[:, :] = 0.0
    contact_forces(position, velocity, radius, species, box, start, neighbours, bounds, k_n, 0.0,
                   model, buf, acc, force)
    _sum_acc(acc, totals)
    dt = dt_start
    alpha = alpha_start
    n_positive = 0
    step = 0
    while True:
        _fire_norms(force, velocity, norms)
        power = norms[:, 0].sum()
        f_norm = math.sqrt(norms[:, 1].sum())
        max_force = math.sqrt(norms[:, 3].max())
        if not (math.isfinite(max_force) and math.isfinite(totals[0])):
            return STATUS_NONFINITE, step, False, max_force, rebuilds
        if max_force <= force_tol:
            wrap_inplace(position, box)
            return STATUS_OK, step, True, max_force, rebuilds
        if step >= max_steps:
            wrap_inplace(position, box)
            return STATUS_OK, step, False, max_force, rebuilds
        if power > 0.0:
            n_positive += 1
            if n_positive > n_delay:
                dt = min(dt * f_inc, dt_max)
                alpha *= f_alpha
        else:
            n_positive = 0
            if step >= n_delay:
                dt = max(dt * f_dec, dt_min)
                alpha = alpha_start
            for i in range(n):
                for d in range(3):
                    position[i, d] -= 0.5 * dt * velocity[i, d]
                    velocity[i, d] = 0.0
        _fire_kick(velocity, force, inv_mass, dt, chunk_max)
        v_norm = math.sqrt(chunk_max.sum())
        ratio = v_norm / f_norm if f_norm > 0.0 else 0.0
        _fire_mix_move(position, velocity, force, dt, alpha, ratio)
        step += 1
        moved = max_displacement(position, ref, box, box_ref, chunk_max)
        if not math.isfinite(moved):
            return STATUS_NONFINITE, step, False, np.inf, rebuilds
        if moved > rebuild_threshold(box, box_ref, skin, radius_max):
            start, neighbours, bounds, ref = rebuild(position, radius, box, level, level_rmax, skin,
                                                     n_chunks)
            rebuilds += 1
        contact_forces(position, velocity, radius, species, box, start, neighbours, bounds, k_n, 0.0,
                       model, buf, acc, force)
        _sum_acc(acc, totals)


# ---------------------------------------------------------------- host-side entry points
# The same five functions exist in granular.kernels_cuda; granular.simulate and granular.measure
# call them through granular.backend.launch_layer(name).


def n_chunks_for(n: int) -> int:
    """Number of force chunks: one per thread, but no chunk smaller than ~256 particles."""
    return int(max(1, min(numba.get_num_threads(), n // 256)))


def _levels(radius):
    from granular.partition import radius_levels

    return radius_levels(radius)


def evaluate(position, velocity, radius, species, box, k_n, gamma_n, model):
    """Contact forces (N, 3) and accumulators (5,) of one configuration (positions are wrapped)."""
    position = np.array(position, dtype=np.float64, order="C")
    level, level_rmax = _levels(radius)
    n_chunks = n_chunks_for(len(radius))
    start, neighbours, bounds, _ = rebuild(position, radius, box, level, level_rmax, 0.0, n_chunks)
    force = np.empty_like(position)
    buf = np.empty((n_chunks, len(radius), 3))
    acc = np.zeros((n_chunks, N_ACC))
    contact_forces(position, velocity, radius, species, box, start, neighbours, bounds, k_n, gamma_n,
                   model, buf, acc, force)
    return force, acc.sum(axis=0)


def pairs(position, radius, box):
    """Candidate pairs (i, j) with |r_ij| < r_i + r_j, found by the cell grids and half list."""
    position = np.array(position, dtype=np.float64, order="C")
    level, level_rmax = _levels(radius)
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
    status, step, filled, rebuilds = md_loop(
        position, velocity, force, radius, species, inv_mass, box, level, level_rmax, float(skin),
        float(k_n), float(gamma_n), int(model), float(dt), float(damping), float(log_scale), int(steps),
        int(record_every), records, totals, n_chunks_for(len(radius)))
    return status, step, records[:filled], rebuilds, force, totals


def run_fire(position, velocity, radius, species, box, k_n, model, dt, dt_max, force_tol, max_steps,
             skin):
    """Run :func:`fire_loop` in place. Returns (status, steps, converged, max_force, force, totals)."""
    level, level_rmax = _levels(radius)
    totals = np.zeros(N_ACC)
    force = np.zeros_like(position)
    inv_mass = 1.0 / ((4.0 / 3.0) * np.pi * radius**3)
    status, steps, converged, max_force, _ = fire_loop(
        position, velocity, force, radius, species, inv_mass, box, level, level_rmax, float(skin),
        float(k_n), int(model), float(dt), float(dt_max), float(force_tol), int(max_steps), totals,
        n_chunks_for(len(radius)))
    return status, steps, bool(converged), float(max_force), force, totals
