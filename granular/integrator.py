"""Per-particle updates of velocity Verlet and FIRE, one source for both targets.

Like the pair law in :mod:`granular.contact`, these are plain Python functions compiled twice:
with ``numba.njit`` for the CPU passes (:mod:`granular.kernels_cpu`, :mod:`granular.loops_cpu`)
and with ``numba.cuda.jit(device=True)`` for the GPU kernels (:mod:`granular.kernels_cuda`,
:mod:`granular.fire_cuda`), so both backends integrate identically.

FIRE (see :mod:`granular.minimize` for the algorithm and its metric) is split into pieces:
:func:`fire_norms` (one particle's share of the reductions after a force call),
:func:`fire_control` (the scalar logic of one step: convergence, the adaptation of dt and alpha;
it reads and writes small float64 arrays so that the CUDA loop can keep it on the device),
:func:`fire_kick` (half step back and velocity reset when uphill, kick, the norm of the new
velocity), :func:`fire_ratio` (the mixing ratio) and the per-particle mixing and move built by
:func:`make_fire_update`. The arithmetic, and its order, is that of the loop before them, so the
Euclidean variant repeats its trajectories bit for bit.

FIRE with the box as one more coordinate (enthalpy minimisation, :mod:`granular.enthalpy`) adds
scalar pieces for the box length q: :func:`box_force` (pressure and box force from the force
call's virial), :func:`box_norms` (its share of the reductions), :func:`make_box_control` (the
control, converged only at the target pressure), :func:`box_kick`, :func:`box_move` (mixing and a
strain-limited move) and :func:`box_inverse_mass`; the particles' move inside the rescaled box is
:func:`make_box_fire_update`. They run on the CPU (:mod:`granular.enthalpy_cpu`); the CUDA loop
has not been written (see :mod:`granular.enthalpy`).
"""

from __future__ import annotations

import math

import numba

from granular.space import nearest_image


def verlet_update(i, position, velocity, force, inv_mass, reference, sx, sy, sz, lx, ly, lz, dt, kick,
                  ke_kick, damping, scale):
    """Advance particle ``i`` by one fused velocity-Verlet pass (two half kicks merged).

    With a = (F - damping v) / m from the last force call and v the velocity it saw: v += kick a;
    x = scale (x + dt v). Positions are in the box (lx, ly, lz) after an affine rescaling by
    ``scale``; ``reference`` holds the positions at the last list build in the box before the
    rescaling (factors sx, sy, sz).

    Returns
    -------
    kinetic : float
        Kinetic energy of the on-step velocity v + ke_kick a.
    moved2 : float
        Squared minimum-image displacement from the rescaled build position (NaN if not finite:
        the image is taken with comparisons, not floor(), so NaN propagates).
    """
    m_inv = inv_mass[i]
    v2 = 0.0
    for d in range(3):
        v = velocity[i, d]
        a = (force[i, d] - damping * v) * m_inv
        w = v + ke_kick * a
        v2 += w * w
        v += kick * a
        velocity[i, d] = v
        position[i, d] = scale * (position[i, d] + dt * v)
    dx = nearest_image(position[i, 0] - reference[i, 0] * sx, lx, 0.5 * lx)
    dy = nearest_image(position[i, 1] - reference[i, 1] * sy, ly, 0.5 * ly)
    dz = nearest_image(position[i, 2] - reference[i, 2] * sz, lz, 0.5 * lz)
    return 0.5 * v2 / m_inv, dx * dx + dy * dy + dz * dz


# ---------------------------------------------------------------- FIRE
# Parameter vector (float64), filled by granular.minimize.FireParams.as_array().
(P_N_DELAY, P_F_INC, P_F_DEC, P_ALPHA_START, P_F_ALPHA, P_DT_MAX, P_DT_MIN, P_INITIAL_DELAY, P_MAX_UPHILL,
 P_HALF_STEP_BACK, P_CONSISTENT, P_CLAMP_DT_MIN, P_FORCE_TOL, P_MAX_STEPS, P_JACOBI_FLOOR,
 P_ENERGY_TOL) = range(16)
N_PAR = 16
# State vector (float64): the adaptive scalars and the outcome.
(S_DT, S_ALPHA, S_N_POSITIVE, S_N_UPHILL, S_STEP, S_UPHILL, S_HALT, S_MAX_FORCE, S_RESETS, S_STIFFNESS,
 S_CONTACTS, S_F2) = range(12)
N_STATE = 12
# Reductions: after a force call (fire_norms) and after the kick (fire_kick).
R_POWER, R_F2, R_FMAX2, R_VKICK = range(4)
N_SUMS = 4
# Why a loop stopped (S_HALT); HALT_MOVED is the CUDA loop's request for a list rebuild.
HALT_RUNNING, HALT_CONVERGED, HALT_MAX_STEPS, HALT_NONFINITE, HALT_STUCK, HALT_MOVED, HALT_ENERGY = range(7)


def fire_init(state, dt, alpha_start):
    """Reset the FIRE state vector ``state`` (N_STATE,) to the start of a minimisation."""
    for q in range(state.shape[0]):
        state[q] = 0.0
    state[S_DT] = dt
    state[S_ALPHA] = alpha_start


def fire_norms(i, force, velocity, inv_mass, consistent):
    """Particle ``i``'s share of the sums FIRE needs after a force call: (F.v, w |F|^2, |F|^2)
    with w = 1 / m_i (``consistent``: the mass metric) or 1 (Euclidean). A non-finite |F|^2 is
    returned as inf."""
    p = 0.0
    f2 = 0.0
    for d in range(3):
        p += force[i, d] * velocity[i, d]
        f2 += force[i, d] * force[i, d]
    if not (f2 < math.inf):
        f2 = math.inf
    if consistent:
        return p, f2 * inv_mass[i], f2
    return p, f2, f2


def fire_kick(i, position, velocity, force, inv_mass, dt, uphill, half_back, consistent, v2):
    """FIRE's kick of particle ``i``: if uphill, x -= dt v / 2 (when ``half_back``) and v = 0;
    then v += dt F / m. Returns ``v2`` plus the particle's m |v|^2 (``consistent``) or |v|^2."""
    w = inv_mass[i]
    for d in range(3):
        v = velocity[i, d]
        if uphill:
            if half_back:
                position[i, d] -= 0.5 * dt * v
            v = 0.0
        v = v + dt * force[i, d] * w
        velocity[i, d] = v
        if consistent:
            v2 += v * v / w
        else:
            v2 += v * v
    return v2


def fire_ratio(f2, v2, dt, uphill, consistent):
    """The mixing ratio |v| / |F| from the sums ``f2`` of the force call and ``v2`` after the
    kick (in the chosen metric); exactly dt after a reset in the mass metric (v = dt F / m),
    whatever the masses were when |F| was summed."""
    if consistent and uphill:
        return dt
    f_norm = math.sqrt(f2)
    return math.sqrt(v2) / f_norm if f_norm > 0.0 else 0.0


def fire_control(state, par, sums, energy, nonfinite):
    """The scalar part of one FIRE step (FIRE 2.0, Guenole et al. 2020, Algorithm 2).

    Reads the reductions ``sums`` (N_SUMS,) and the elastic ``energy`` of the last force call and
    updates ``state`` (N_STATE,) in place: stop with ``S_HALT`` set (converged when
    max |F_i| <= force_tol, energy <= energy_tol when that is > 0, step cap, non-finite force or
    ``nonfinite`` != 0, more than ``max_uphill`` uphill steps in a row);
    otherwise adapt dt and alpha on the sign of the power P = F.v and mark an uphill step
    (``S_UPHILL``: the kick steps back half a step and zeroes the velocities). Does nothing when a halt is
    already set, so a device loop can run blocks of steps and stop exactly where a per-step check
    would have stopped.
    """
    if state[S_HALT] != HALT_RUNNING:
        return
    f_max = math.sqrt(sums[R_FMAX2])
    state[S_MAX_FORCE] = f_max
    if not (f_max < math.inf) or nonfinite != 0:
        state[S_HALT] = HALT_NONFINITE
        return
    if f_max <= par[P_FORCE_TOL]:
        state[S_HALT] = HALT_CONVERGED
        return
    if par[P_ENERGY_TOL] > 0.0 and energy <= par[P_ENERGY_TOL]:
        state[S_HALT] = HALT_ENERGY
        return
    step = state[S_STEP]
    if step >= par[P_MAX_STEPS]:
        state[S_HALT] = HALT_MAX_STEPS
        return
    dt = state[S_DT]
    alpha = state[S_ALPHA]
    uphill = sums[R_POWER] <= 0.0
    if not uphill:
        state[S_N_POSITIVE] += 1.0
        state[S_N_UPHILL] = 0.0
        if state[S_N_POSITIVE] > par[P_N_DELAY]:
            dt = min(dt * par[P_F_INC], par[P_DT_MAX])
            alpha *= par[P_F_ALPHA]
    else:
        state[S_N_POSITIVE] = 0.0
        state[S_N_UPHILL] += 1.0
        if par[P_MAX_UPHILL] > 0 and state[S_N_UPHILL] > par[P_MAX_UPHILL]:
            state[S_HALT] = HALT_STUCK
            return
        if not (par[P_INITIAL_DELAY] != 0 and step < par[P_N_DELAY]):
            if par[P_CLAMP_DT_MIN] != 0:
                dt = max(dt * par[P_F_DEC], par[P_DT_MIN])
            elif dt * par[P_F_DEC] >= par[P_DT_MIN]:
                dt *= par[P_F_DEC]
            alpha = par[P_ALPHA_START]
        state[S_RESETS] += 1.0
    state[S_DT] = dt
    state[S_ALPHA] = alpha
    state[S_UPHILL] = 1.0 if uphill else 0.0
    state[S_STEP] = step + 1.0


def make_fire_update(move):
    """Build FIRE's per-particle mixing and move around ``move`` (the target's compiled
    :func:`verlet_update`, used for x += dt v and the displacement since the last list build).

    After :func:`fire_kick`: v = (1 - alpha) v + alpha ratio F / m (``consistent``; alpha ratio F
    in the Euclidean metric); x += dt v. Returns the squared displacement since the build (NaN if
    not finite).
    """

    def fire_update(i, position, velocity, force, inv_mass, reference, lx, ly, lz, dt, alpha, ratio,
                    consistent):
        mix = alpha * ratio
        for d in range(3):
            f = force[i, d] * inv_mass[i] if consistent else force[i, d]
            velocity[i, d] = (1.0 - alpha) * velocity[i, d] + mix * f
        _, moved2 = move(i, position, velocity, force, inv_mass, reference, 1.0, 1.0, 1.0, lx, ly, lz, dt,
                         0.0, 0.0, 0.0, 1.0)
        return moved2

    return fire_update


def jacobi_mass(stiffness, total, contacts, floor_fraction, fallback):
    """Jacobi preconditioner mass of one particle: its contact-stiffness sum ``stiffness``, at
    least ``floor_fraction`` x the mean stiffness of one contact (``total`` stiffness over
    ``contacts`` contact ends); ``fallback`` when no particle has a contact."""
    if not (contacts > 0.0 and total > 0.0):
        return fallback
    return max(stiffness, floor_fraction * total / contacts)


# ---------------------------------------------------------------- FIRE with the box (enthalpy)
# Pressure control: FIRE minimises the enthalpy H = U + P_t V over the particle positions and one
# more coordinate, the box length q = V^(1/3) (isotropic scaling of every edge, x_i moved
# affinely with it). Its force is F_q = -dH/dq = (W - 3 V P_t) / q = 3 q^2 (P - P_t), W the
# contact virial sum_c f_c |r_c| of the force call (P = W / (3 V)): it joins the sums of FIRE's
# power and norms like one more particle, with a mass M_q (see granular.enthalpy).
# Box state vector (float64).
B_LENGTH, B_VELOCITY, B_INV_MASS, B_FORCE, B_PRESSURE = range(5)
N_BOX = 5
# Box parameter vector (float64), filled by granular.enthalpy.BoxParams.as_array().
BP_PRESSURE, BP_PRESSURE_TOL, BP_MAX_STRAIN, BP_MASS_SCALE, BP_STIFFNESS_FLOOR = range(5)
N_BOX_PAR = 5
HALT_BOX = 7
"""Why a loop stopped: the box became smaller than the minimum-image convention allows."""


def box_force(box, virial, volume, p_target):
    """Store the pressure W / (3 V) and the box force (W - 3 V P_t) / q of a force call (contact
    virial ``virial`` = W, box ``volume`` V, target ``p_target``) in the box state ``box``."""
    box[B_PRESSURE] = virial / (3.0 * volume)
    box[B_FORCE] = (virial - 3.0 * volume * p_target) / box[B_LENGTH]


def box_norms(sums, box, consistent):
    """Add the box's share to FIRE's sums after a force call: F_q v_q to the power, F_q^2 (times
    1 / M_q in the mass metric, ``consistent``) to |F|^2."""
    f = box[B_FORCE]
    sums[R_POWER] += f * box[B_VELOCITY]
    sums[R_F2] += f * f * box[B_INV_MASS] if consistent else f * f


def make_box_control(control):
    """Build FIRE's scalar control with the box around ``control`` (the target's compiled
    :func:`fire_control`).

    Converged means max_i |F_i| <= force_tol *and* |P - P_t| <= pressure_tol P_t: the relative
    pressure residual, scaled by force_tol, joins max |F_i|^2 for the test (a non-finite pressure
    halts as a non-finite force); ``S_MAX_FORCE`` keeps max_i |F_i| of the particles alone.
    """

    def box_control(state, par, sums, energy, nonfinite, box, bpar):
        f_max2 = sums[R_FMAX2]
        target = bpar[BP_PRESSURE]
        residual = abs(box[B_PRESSURE] - target) / (bpar[BP_PRESSURE_TOL] * target)
        if not (residual < math.inf and abs(box[B_FORCE]) < math.inf):
            sums[R_FMAX2] = math.inf
        else:
            r = residual * par[P_FORCE_TOL]
            sums[R_FMAX2] = max(f_max2, r * r)
        control(state, par, sums, energy, nonfinite)
        sums[R_FMAX2] = f_max2
        if state[S_HALT] != HALT_NONFINITE:
            state[S_MAX_FORCE] = math.sqrt(f_max2)

    return box_control


def box_kick(box, dt, uphill, half_back, consistent):
    """FIRE's kick of the box, as :func:`fire_kick` of a particle: if uphill, q -= dt v_q / 2
    (``half_back``) and v_q = 0; then v_q += dt F_q / M_q.

    Returns
    -------
    v2 : float
        The box's share of |v|^2 after the kick (M_q v_q^2 in the mass metric).
    back : float
        q after the half step back over q before (1 if none): the particles must be rescaled by it.
    """
    v = box[B_VELOCITY]
    w = box[B_INV_MASS]
    back = 1.0
    if uphill:
        if half_back and v != 0.0:
            length = box[B_LENGTH]
            box[B_LENGTH] = length - 0.5 * dt * v
            back = box[B_LENGTH] / length
        v = 0.0
    v = v + dt * box[B_FORCE] * w
    box[B_VELOCITY] = v
    if consistent:
        return v * v / w, back
    return v * v, back


def box_move(box, dt, alpha, ratio, consistent, max_strain):
    """FIRE's mixing and move of the box: v_q = (1 - alpha) v_q + alpha ratio F_q (/ M_q in the
    mass metric), limited to |dt v_q| <= max_strain q; q += dt v_q. Returns the scale factor
    q_new / q_old for the particles' affine move."""
    f = box[B_FORCE] * box[B_INV_MASS] if consistent else box[B_FORCE]
    v = (1.0 - alpha) * box[B_VELOCITY] + alpha * ratio * f
    length = box[B_LENGTH]
    limit = max_strain * length / dt
    if v > limit:
        v = limit
    elif v < -limit:
        v = -limit
    box[B_VELOCITY] = v
    box[B_LENGTH] = length + dt * v
    return box[B_LENGTH] / length


def box_inverse_mass(stiffness, length, bpar):
    """1 / M_q for an affine box stiffness ``stiffness`` = sum_c k_c |r_c|^2 (tangent stiffness
    times squared distance over the touching pairs, at least ``BP_STIFFNESS_FLOOR``):
    M_q = ``BP_MASS_SCALE`` x stiffness / q^2, the scale being box_mass m_ref / k_n, so that the
    box oscillates like a particle of mass m_ref on one spring k_n (times box_mass)."""
    s = max(stiffness, bpar[BP_STIFFNESS_FLOOR])
    return length * length / (bpar[BP_MASS_SCALE] * s)


def make_box_fire_update(move):
    """Build FIRE's per-particle mixing and move with the box around ``move`` (the target's
    compiled :func:`verlet_update`): the mixing of :func:`make_fire_update`, then
    x = scale (x + dt v) in the new box (lx, ly, lz), which is (sx, sy, sz) times the box of the
    last list build. Returns the squared displacement from the rescaled build position."""

    def box_fire_update(i, position, velocity, force, inv_mass, reference, sx, sy, sz, lx, ly, lz, dt,
                        alpha, ratio, consistent, scale):
        mix = alpha * ratio
        for d in range(3):
            f = force[i, d] * inv_mass[i] if consistent else force[i, d]
            velocity[i, d] = (1.0 - alpha) * velocity[i, d] + mix * f
        _, moved2 = move(i, position, velocity, force, inv_mass, reference, sx, sy, sz, lx, ly, lz, dt,
                         0.0, 0.0, 0.0, scale)
        return moved2

    return box_fire_update


verlet_update_cpu = numba.njit(inline="always", cache=True)(verlet_update)
fire_norms_cpu = numba.njit(inline="always", cache=True)(fire_norms)
fire_control_cpu = numba.njit(cache=True)(fire_control)
fire_init_cpu = numba.njit(cache=True)(fire_init)
fire_update_cpu = numba.njit(inline="always", cache=True)(make_fire_update(verlet_update_cpu))
fire_kick_cpu = numba.njit(inline="always", cache=True)(fire_kick)
fire_ratio_cpu = numba.njit(inline="always", cache=True)(fire_ratio)
jacobi_mass_cpu = numba.njit(inline="always", cache=True)(jacobi_mass)
box_force_cpu = numba.njit(cache=True)(box_force)
box_norms_cpu = numba.njit(cache=True)(box_norms)
box_control_cpu = numba.njit(cache=True)(make_box_control(fire_control_cpu))
box_kick_cpu = numba.njit(cache=True)(box_kick)
box_move_cpu = numba.njit(cache=True)(box_move)
box_inverse_mass_cpu = numba.njit(cache=True)(box_inverse_mass)
box_fire_update_cpu = numba.njit(inline="always", cache=True)(make_box_fire_update(verlet_update_cpu))
