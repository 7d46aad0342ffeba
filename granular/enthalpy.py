"""Pressure-controlled relaxation: FIRE on the enthalpy H = U + P V with the box as a coordinate.

At fixed box FIRE minimises the elastic energy U (:mod:`granular.minimize`). Here the box length
q = V^(1/3) joins the positions as one more coordinate (isotropic: every edge scales with it, and
the particles move affinely with the box), and FIRE minimises H = U + P_t V at a target pressure
P_t. The box force is

    F_q = -dH/dq = (W - 3 V P_t) / q = 3 q^2 (P - P_t),

with W = sum_c f_c |r_c| the contact virial that every force call already sums
(:mod:`granular.accumulators`) and P = W / (3 V): positive (the box grows) above the target,
negative below, constant -3 q^2 P_t while nothing touches. A minimum of H is a mechanically
stable state at pressure P_t: max_i |F_i| <= force_tol and |P - P_t| <= pressure_tol P_t. It is
reached from either side: from a jammed state at another pressure by a relaxation of the same
kind as a fixed-box one, from an unjammed state by a compaction at constant pressure, which at
strong size asymmetry creeps (delta 0.15: hundreds of thousands of steps, benchmarks/RESULTS.md
"Enthalpy minimisation"). :mod:`granular.enthalpy_ladder` builds the jamming search on it.

**The box in FIRE** (:mod:`granular.integrator`, ``box_*``): its power F_q v_q and its norms
join FIRE's sums like one more particle; with q a length, F_q is a force, so the Euclidean
mixing of the default variant stays in one set of units. Its half step back rescales the
particles; its move per step is limited to ``max_strain`` (relative), so a dilute start
collapses at most that fast and the list stays valid (rebuilt past
:func:`granular.partition.rebuild_threshold`, the bound that already serves affine compression).

**Box mass.** The box's stiffness is S / q^2 with S = sum_c k_c |r_c|^2 over the touching pairs
(the affine stiffness; k_c the tangent stiffness d f / d xi). With M_q = box_mass m_ref S / (k_n q^2)
the box oscillates like a particle of mass m_ref (the lightest particle with physical masses, 1
with unit masses) on one spring k_n, times sqrt(box_mass): as fast as FIRE's time step allows,
so P follows its target closely while the particles rearrange. S is recomputed at every velocity
reset (as the Jacobi masses are) and floored at k_n sum_i d_i^2 / 2 (while nothing touches the
box force is constant and the strain limit sets the pace). Measured at delta 0.15, X_S 0.2 from
the dilute start at P_t = 1e-3: box_mass 1 compacts fastest (phi 0.777 after 6e4 steps; 0.01:
0.633, 100: 0.761).

**CPU only.** The step logic is written once (:mod:`granular.integrator`), but the CUDA loop is
missing: the GPU kernels take the box edges as scalar arguments from the host
(:class:`granular.loops_cuda.DeviceSystem`), so a box that moves every step needs the force and
update kernels to read it from a device array (or a host round trip per step); the box's scalars
would sit in the device state beside FIRE's, driven by the one-thread control kernel, with the
rebuild threshold of the deformed box, a rescaling pass for the box's half step back and an
affine-stiffness pass at resets (like the Jacobi one) added.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from granular import integrator as I
from granular.contact import DEFAULT_LAW, ContactLaw
from granular.minimize import (
    DEFAULT_FIRE,
    DEFAULT_PRECONDITIONER,
    FIRE_CHUNK,
    STOPS,
    FireParams,
    _check_range,
    _Relaxed,
    start_dt,
)
from granular.space import Packing

PRECONDITIONERS = ("physical", "unit")
ENTHALPY_STOPS = {**STOPS, I.HALT_BOX: "box"}


@dataclass(frozen=True)
class BoxParams:
    """The box coordinate of :func:`enthalpy_minimize` (pressures relative to the target).

    Attributes
    ----------
    pressure_tol : float
        Converged when |P - P_t| <= pressure_tol P_t (and max |F_i| <= force_tol), in (0, 1).
    box_mass : float
        Box mass relative to the default (module docstring), in (0, 1e6]; larger: a slower box.
    max_strain : float
        Largest relative change of the box length in one step, in (0, 0.01].
    """

    pressure_tol: float = 1e-6
    box_mass: float = 1.0
    max_strain: float = 1e-3

    def __post_init__(self):
        _check_range("pressure_tol", self.pressure_tol, 0.0, 1.0)
        _check_range("box_mass", self.box_mass, 0.0, 1e6, high_open=False)
        _check_range("max_strain", self.max_strain, 0.0, 0.01, high_open=False)

    def as_array(self, pressure: float, mass_scale: float, stiffness_floor: float) -> np.ndarray:
        """The box parameter vector the compiled loop reads (indices ``BP_*`` of
        :mod:`granular.integrator`); ``mass_scale`` = m_ref / k_n."""
        bpar = np.zeros(I.N_BOX_PAR)
        bpar[I.BP_PRESSURE] = pressure
        bpar[I.BP_PRESSURE_TOL] = self.pressure_tol
        bpar[I.BP_MAX_STRAIN] = self.max_strain
        bpar[I.BP_MASS_SCALE] = self.box_mass * mass_scale
        bpar[I.BP_STIFFNESS_FLOOR] = stiffness_floor
        return bpar


DEFAULT_BOX = BoxParams()


@dataclass
class EnthalpyResult:
    """Outcome of :func:`enthalpy_minimize`; ``converged``: max |F_i| <= force_tol (k_n d_L) and
    |P - P_t| <= pressure_tol P_t.

    ``packing`` has the relaxed box; ``pressure`` is its contact-virial pressure (k_n / d_L) at the
    last force call; ``steps`` FIRE steps cost steps + 1 force calls; ``box_mass`` is the last M_q;
    ``stop`` is ``"converged"``, ``"max_steps"``, ``"stuck"`` or ``"box"`` (the box shrank below
    twice the largest interaction range).
    """

    packing: Packing
    converged: bool
    steps: int
    max_force: float
    pressure: float
    target: float
    energy: float
    backend: str
    force: np.ndarray
    resets: int = 0
    rebuilds: int = 0
    box_mass: float = math.nan
    stop: str = "converged"

    @property
    def force_evaluations(self) -> int:
        return self.steps + 1


def _check_inputs(pressure, force_tol, params, box, preconditioner, backend):
    from granular.backend import resolve_backend

    if not (np.isfinite(pressure) and pressure > 0):
        raise ValueError(f"pressure must be a finite number > 0 (units k_n / d_L), got {pressure}")
    if not (np.isfinite(force_tol) and force_tol > 0):
        raise ValueError(f"force_tol must be a finite number > 0, got {force_tol}")
    if not isinstance(params, FireParams):
        raise ValueError(f"params must be a granular.FireParams, got {type(params).__name__}")
    if not isinstance(box, BoxParams):
        raise ValueError(f"box must be a granular.enthalpy.BoxParams, got {type(box).__name__}")
    if preconditioner not in PRECONDITIONERS:
        raise ValueError(f"preconditioner must be one of {PRECONDITIONERS} for the enthalpy minimisation, "
                         f"got {preconditioner!r}")
    if resolve_backend(backend) != "cpu":
        raise ValueError("enthalpy minimisation runs on the CPU only (no CUDA loop yet); use backend='cpu'")


def enthalpy_minimize(packing: Packing, law: ContactLaw = DEFAULT_LAW, *, pressure: float,
                      force_tol: float = 1e-12, max_steps: int = 10**6, dt: float | None = None,
                      skin: float | None = None, preconditioner: str = DEFAULT_PRECONDITIONER,
                      params: FireParams = DEFAULT_FIRE, box: BoxParams = DEFAULT_BOX,
                      backend: str = "auto") -> EnthalpyResult:
    """Minimise the enthalpy U + P V over the positions and the box length (module docstring).

    Parameters
    ----------
    packing : Packing
        Start (not modified); the box keeps its aspect ratio.
    law : ContactLaw
    pressure : float
        Target pressure P_t (units k_n / d_L: the law's k_n is not applied), > 0.
    force_tol : float
        Convergence threshold on max_i |F_i| (units k_n d_L), > 0.
    max_steps : int
        Step cap (>= 0); reaching it returns ``converged=False``.
    dt, skin, params
        As for :func:`granular.minimize.fire_minimize`.
    preconditioner : {"physical", "unit"}
        The particles' masses (the Jacobi masses are not supported here).
    box : BoxParams
        Pressure tolerance, box mass and strain limit.
    backend : {"auto", "cpu"}
        The CPU loop (:mod:`granular.enthalpy_cpu`); a CUDA backend is refused.

    Returns
    -------
    EnthalpyResult
    """
    from granular.enthalpy_cpu import run_enthalpy
    from granular.simulate import _check_steps, _raise_status, _setup

    _check_inputs(pressure, force_tol, params, box, preconditioner, backend)
    max_steps = _check_steps("max_steps", max_steps)
    _, skin, name, _ = _setup(packing, law, None, skin, backend)
    dt = start_dt(packing, law, preconditioner, dt)
    out = packing.copy()
    inv_mass = 1.0 / out.mass if preconditioner == "physical" else np.ones(out.n)
    m_ref = float(1.0 / inv_mass.max())
    floor = law.k_n * float(np.sum((2.0 * out.radius) ** 2)) / 2.0
    bpar = box.as_array(float(pressure), m_ref / law.k_n, floor)
    par = params.as_array(dt, force_tol, max_steps, False)
    state = np.zeros(I.N_STATE)
    state[I.S_DT], state[I.S_ALPHA] = dt, params.alpha_start
    bstate = np.zeros(I.N_BOX)
    bstate[I.B_LENGTH] = out.volume ** (1.0 / 3.0)
    bstate[I.B_INV_MASS] = 1.0 / (bpar[I.BP_MASS_SCALE] * floor) * bstate[I.B_LENGTH] ** 2
    out.velocity[:] = 0.0
    rebuilds, force, totals = run_enthalpy(out.position, out.velocity, out.radius, out.species, out.box,
                                           law.k_n, law.model_code, skin, inv_mass, par, state, bpar, bstate)
    steps, halt = int(state[I.S_STEP]), int(state[I.S_HALT])
    _raise_status(1 if halt == I.HALT_NONFINITE else 0, steps, "enthalpy_minimize")
    out.velocity[:] = 0.0
    return EnthalpyResult(out, halt == I.HALT_CONVERGED, steps, float(state[I.S_MAX_FORCE]),
                          float(bstate[I.B_PRESSURE]), float(pressure), float(totals[0]), name, force,
                          int(state[I.S_RESETS]), int(rebuilds), float(1.0 / bstate[I.B_INV_MASS]),
                          ENTHALPY_STOPS[halt])


def relax_at_pressure(packing: Packing, law: ContactLaw, *, pressure: float, force_tol: float, max_steps: int,
                      backend: str, preconditioner: str = DEFAULT_PRECONDITIONER,
                      params: FireParams = DEFAULT_FIRE, box: BoxParams = DEFAULT_BOX) -> _Relaxed:
    """Relax ``packing`` to a minimum of the enthalpy at ``pressure`` and measure it; raise if it
    does not converge within ``max_steps``.

    Like :func:`granular.minimize.relax`, FIRE restarts every ``FIRE_CHUNK`` steps (dt, alpha and
    the velocities, the box's included, reset; the box mass recomputed). The measurement (pressure
    split, contact number Z over all particles) is that of the fixed-box relaxations.
    """
    from granular.measure import contacts
    from granular.measure import pressure as measure_pressure

    out, steps = packing, 0
    while True:
        res = enthalpy_minimize(out, law, pressure=pressure, force_tol=force_tol,
                                max_steps=min(FIRE_CHUNK, max_steps - steps), backend=backend,
                                preconditioner=preconditioner, params=params, box=box)
        out, steps = res.packing, steps + int(res.steps)
        if res.converged:
            break
        if steps >= max_steps or res.stop in ("stuck", "box"):
            raise RuntimeError(
                f"enthalpy minimisation at P = {pressure:.3g} did not converge in {steps} steps (max |F| = "
                f"{res.max_force:.3g}, P = {res.pressure:.6g}, stop: {res.stop}) at phi = "
                f"{out.packing_fraction:.6f}; raise max_steps")
    split = measure_pressure(out, law, backend=backend)
    n_contacts = contacts(out, law, backend=backend).i.size
    return _Relaxed(out, float(split.total), (float(split.ss), float(split.sl), float(split.ll)),
                    2.0 * n_contacts / out.n, steps)
