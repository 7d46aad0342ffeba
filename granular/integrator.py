"""The per-particle velocity-Verlet update and FIRE's adaptation, one source for both targets.

Like the pair law in :mod:`granular.contact`, :func:`verlet_update` is plain Python compiled twice:
with ``numba.njit`` for the CPU pass (:func:`granular.kernels_cpu.verlet_pass`, as
:data:`verlet_update_cpu`) and with ``numba.cuda.jit(device=True)`` for the GPU kernel
(:func:`granular.kernels_cuda.verlet_kernel`), so both backends integrate identically.
"""

from __future__ import annotations

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


def fire_adapt(power, step, n_positive, dt, alpha, n_delay, f_inc, f_dec, f_alpha, alpha_start, dt_max,
               dt_min):
    """FIRE's step-size and mixing adaptation after a force call (Bitzek et al. 2006; FIRE 2.0).

    Downhill (power F.v > 0): after ``n_delay`` downhill steps grow dt (up to ``dt_max``) and shrink
    alpha. Uphill: reset the count and, past the initial delay, shrink dt (down to ``dt_min``) and
    reset alpha; the caller then steps back half a step and zeroes the velocities.

    Returns
    -------
    (n_positive, dt, alpha, uphill)
    """
    if power > 0.0:
        n_positive += 1
        if n_positive > n_delay:
            dt = min(dt * f_inc, dt_max)
            alpha *= f_alpha
        return n_positive, dt, alpha, False
    if step >= n_delay:
        dt = max(dt * f_dec, dt_min)
        alpha = alpha_start
    return 0, dt, alpha, True


verlet_update_cpu = numba.njit(inline="always", cache=True)(verlet_update)
# Host-side scalar logic: the CPU loop inlines it, the CUDA host loop calls the same compiled function.
fire_adapt_cpu = numba.njit(cache=True)(fire_adapt)
