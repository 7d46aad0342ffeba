"""The per-particle velocity-Verlet update, one source for both targets.

Like the pair law in :mod:`granular.contact`, :func:`verlet_update` is plain Python compiled twice:
with ``numba.njit`` for the CPU pass (:func:`granular.kernels_cpu.verlet_pass`, as
:data:`verlet_update_cpu`) and with ``numba.cuda.jit(device=True)`` for the GPU kernel
(:func:`granular.kernels_cuda.verlet_kernel`), so both backends integrate identically.
"""

from __future__ import annotations

import numba


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
    dx = position[i, 0] - reference[i, 0] * sx
    dy = position[i, 1] - reference[i, 1] * sy
    dz = position[i, 2] - reference[i, 2] * sz
    if dx > 0.5 * lx:
        dx -= lx
    elif dx < -0.5 * lx:
        dx += lx
    if dy > 0.5 * ly:
        dy -= ly
    elif dy < -0.5 * ly:
        dy += ly
    if dz > 0.5 * lz:
        dz -= lz
    elif dz < -0.5 * lz:
        dz += lz
    return 0.5 * v2 / m_inv, dx * dx + dy * dy + dz * dz


verlet_update_cpu = numba.njit(inline="always", cache=True)(verlet_update)
