"""Normal contact laws of frictionless spheres: one physics source for the CPU and the GPU.

The pair law is written once, as plain scalar Python functions (:func:`pair_force`,
:func:`pair_energy`), and compiled twice: with ``numba.njit`` for the CPU kernels
(:data:`pair_force_cpu`, :data:`pair_energy_cpu`) and with ``numba.cuda.jit(device=True)`` for
the GPU kernels (in :mod:`granular.kernels_cuda`). Parameters live in the frozen dataclass
:class:`ContactLaw`; kernels receive them as plain scalars (``k_n, gamma_n, model_code``).

Units are reduced: large diameter d_L = 1, grain density 1, so masses are (4/3) pi r^3.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numba
import numpy as np

LINEAR = 0
HERTZ = 1
MODELS = {"linear": LINEAR, "hertz": HERTZ}


def pair_force(overlap, overlap_rate, k_n, gamma_n, model):
    """Normal force magnitude of one contact (positive = repulsive).

    Parameters
    ----------
    overlap : float
        xi = r_i + r_j - |r_ij| > 0, in units of d_L.
    overlap_rate : float
        d xi / dt (positive while the grains approach).
    k_n : float
        Spring constant (force per length for the linear law, force per length^1.5 for Hertz).
    gamma_n : float
        Dashpot coefficient (force per velocity).
    model : int
        0 linear spring-dashpot f = k xi + gamma dxi/dt; 1 Hertz f = k xi^1.5 + gamma dxi/dt.
    """
    if model == 1:
        spring = k_n * overlap * math.sqrt(overlap)
    else:
        spring = k_n * overlap
    return spring + gamma_n * overlap_rate


def pair_energy(overlap, k_n, model):
    """Elastic energy stored in one contact: k xi^2 / 2 (linear) or 2 k xi^2.5 / 5 (Hertz)."""
    if model == 1:
        return 0.4 * k_n * overlap * overlap * math.sqrt(overlap)
    return 0.5 * k_n * overlap * overlap


def pair_stiffness(overlap, k_n, model):
    """Tangent stiffness d f / d xi of one contact at overlap ``overlap`` > 0: k (linear) or
    1.5 k sqrt(xi) (Hertz); FIRE's Jacobi preconditioner sums it per particle."""
    if model == 1:
        return 1.5 * k_n * math.sqrt(overlap)
    return k_n


pair_force_cpu = numba.njit(inline="always", cache=True)(pair_force)
pair_stiffness_cpu = numba.njit(inline="always", cache=True)(pair_stiffness)
pair_energy_cpu = numba.njit(inline="always", cache=True)(pair_energy)


@dataclass(frozen=True)
class ContactLaw:
    """Normal contact law between two spheres.

    Parameters
    ----------
    k_n : float
        Normal stiffness (> 0); 1 in reduced units.
    gamma_n : float
        Normal dashpot coefficient (>= 0), force per unit approach velocity.
    model : {"linear", "hertz"}
        Linear spring-dashpot (the default) or Hertzian spring k xi^1.5 with the same dashpot.
    """

    k_n: float = 1.0
    gamma_n: float = 0.0
    model: str = "linear"

    def __post_init__(self):
        if not (np.isfinite(self.k_n) and self.k_n > 0):
            raise ValueError(f"k_n must be a finite number > 0, got {self.k_n}")
        if not (np.isfinite(self.gamma_n) and self.gamma_n >= 0):
            raise ValueError(f"gamma_n must be a finite number >= 0, got {self.gamma_n}")
        if self.model not in MODELS:
            raise ValueError(f"model must be one of {sorted(MODELS)}, got {self.model!r}")

    @property
    def model_code(self) -> int:
        """Integer code of the model passed to the kernels (0 linear, 1 Hertz)."""
        return MODELS[self.model]

    def contact_duration(self, radius: float, mass: float | None = None) -> float:
        """Duration t_c of a binary collision of two spheres of ``radius`` (grain density 1).

        Linear law: t_c = pi / sqrt(k/m_eff - (gamma / (2 m_eff))^2) with m_eff = m / 2 (the
        undamped value pi sqrt(m_eff / k) if the dashpot is overdamped). The Hertz law has no
        fixed duration; we use the linear formula with the tangent stiffness 1.5 k sqrt(xi) at an
        overlap of 10 % of the diameter, a conservative (short) estimate for typical overlaps.
        ``mass`` overrides the sphere mass m = (4/3) pi r^3 (e.g. 1 for FIRE with unit masses).
        """
        if not radius > 0:
            raise ValueError(f"radius must be > 0, got {radius}")
        if mass is None:
            mass = (4.0 / 3.0) * math.pi * radius**3
        elif not (np.isfinite(mass) and mass > 0):
            raise ValueError(f"mass must be a finite number > 0, got {mass}")
        m_eff = 0.5 * mass
        stiffness = self.k_n
        if self.model == "hertz":
            stiffness = 1.5 * self.k_n * math.sqrt(0.2 * radius)
        omega0_sq = stiffness / m_eff
        beta = self.gamma_n / (2.0 * m_eff)
        omega_sq = omega0_sq - beta * beta
        if omega_sq <= 0:
            omega_sq = omega0_sq
        return math.pi / math.sqrt(omega_sq)

    def default_dt(self, radius_min: float, mass: float | None = None) -> float:
        """Time step t_c / 50 of the contact between two of the smallest spheres.

        With ``mass`` (all particles of that mass, as in unit-mass FIRE) the stiffest contact
        sets the step instead: pass the *largest* radius (it matters only for Hertz, whose
        tangent stiffness grows with the radius)."""
        return self.contact_duration(radius_min, mass) / 50.0

    def check_dt(self, dt: float, radius_min: float, mass: float | None = None) -> float:
        """Return ``dt`` after checking 0 < dt <= t_c / 10 of the smallest-sphere contact
        (of the contact ``default_dt`` uses when ``mass`` is given)."""
        limit = self.contact_duration(radius_min, mass) / 10.0
        if not (np.isfinite(dt) and 0 < dt <= limit):
            what = (f"the smallest spheres (radius {radius_min:.6g})" if mass is None else
                    f"the stiffest contact of spheres of mass {mass:.6g}")
            raise ValueError(f"dt must be in (0, t_c/10 = {limit:.6g}] for {what}, got {dt}")
        return float(dt)


DEFAULT_LAW = ContactLaw()
"""The default law (linear, k_n = 1, no dashpot), used as a default argument."""
