"""Energy minimisation at fixed box: FIRE 2.0 with a mass preconditioner, and relaxation to
mechanical equilibrium with a convergence certificate.

**FIRE 2.0** (Guenole et al., Comput. Mater. Sci. 175, 109584, 2020, Algorithm 2; Bitzek et al.
2006 is the original). One step, after a force call at x:

1. Power P = F.v. If P > 0: count it, and after more than ``n_delay`` downhill steps in a row
   dt <- min(f_inc dt, dt_max), alpha <- f_alpha alpha. If P <= 0 (uphill): stop after more than
   ``max_uphill`` uphill steps in a row (0: never); unless still inside the initial delay (the
   first ``n_delay`` steps, ``initial_delay``), dt <- f_dec dt if that stays >= dt_min, and
   alpha <- alpha_start; step back x <- x - dt v / 2 (``half_step_back``) and set v = 0.
2. Semi-implicit Euler with mixing: v <- v + dt M^-1 F; v <- (1 - alpha) v + alpha |v| F^ ;
   x <- x + dt v.

It stops when max_i |F_i| <= force_tol (physical forces, whatever the masses).

**Masses as a preconditioner, one metric.** The fictitious masses m_i change the path, not the
minima. Write the dynamics in scaled coordinates y = M^(1/2) x: the force is G = M^(-1/2) F, the
velocity w = M^(1/2) v, and FIRE with unit masses in y reads, mapped back to x,

- kick w <- w + dt G  is  v <- v + dt F / m;
- power G.w = F.v (the mass cancels);
- mixing w <- (1 - alpha) w + alpha (|w| / |G|) G  is
  v <- (1 - alpha) v + alpha (|v|_M / |F|_(M^-1)) F / m,
  with |v|_M^2 = sum_i m_i |v_i|^2 and |F|_(M^-1)^2 = sum_i |F_i|^2 / m_i: the mixing pulls v
  towards the *acceleration* F / m, not towards F;
- the half step back x <- x - dt v / 2 and the reset v = 0 are the same in both coordinates.

So the consistent scheme (``variant="mass-metric"``) differs from LAMMPS's (``"euclidean"``, the
loop this project ran before: v <- (1 - alpha) v + alpha (|v| / |F|) F with Euclidean norms, a
mix of metrics that turns a light particle's velocity towards a heavy particle's force) only in
the mixing. After an uphill
reset v = dt F / m exactly, whatever the metric. The norm of v after the kick follows from sums of
the force call, |v + dt F/m|_M^2 = |v|_M^2 + 2 dt P + dt^2 |F|_(M^-1)^2, so kick, mixing and move
are one pass over the particles.

Preconditioners (``preconditioner``): ``"physical"`` m_i = (4/3) pi r_i^3; ``"unit"`` m_i = 1;
``"jacobi"`` m_i = max(sum over i's contacts of the tangent stiffness d f / d xi (k for the linear
law, 1.5 k sqrt(xi) for Hertz), floor), floor = ``jacobi_floor`` x the mean stiffness of one
contact (so a particle that gains a contact stays stable), computed at the start and recomputed
only when FIRE resets the velocities (so the dynamics between two resets has fixed masses). With
m_i ~ H_ii the scaled Hessian M^(-1/2) H M^(-1/2) has eigenvalues below ~2, whatever the size
ratio, so dt is dimensionless: 0.1 by default, at most 1.

**Defaults: physical masses, Euclidean mixing** (``benchmarks/fire_variants.py``, counts of FIRE
steps, force tolerance 1e-12, benchmarks/RESULTS.md "FIRE variants"). No variant wins clearly and
consistently, so the previous loop's choices stay:

- one relaxation to the same minimum (from a relaxed state decompressed by 0.1 %; final pressures
  agree to <= 7e-11 between variants), sum over seeds 0-2, physical-euclidean / physical
  mass-metric / unit / jacobi: monodisperse N 128: 1170 / 1170 / 1170 / 1134; 1:1.4 mixture
  N 200: 3327 / 3824 / 3456 / 3307; delta 0.5 X_S 0.5 N 300: 1761 / 1865 / 3281 / 1710.
  At delta 0.15 (n_large 15, seed 0), X_S 0.2: 38 169 / 13 584 / - / 29 610; X_S 0.25:
  4975 / 4002 / - / 3855 (there the variants reach minima whose pressures differ by up to 0.8 %).
- whole bisections (:func:`granular.find_jamming`), sum over seeds 0-2: mixture 161 107 /
  190 313 / 141 534 / 151 986; delta 0.5: 227 779 / 277 770 / 301 363 / 214 286; at delta 0.15,
  X_S 0.2 seed 1: 44 252 / 103 225 steps (seed 2 ended at different phi_J, 0.683 / 0.809: at
  n_large 15 the path decides which backbone jams). phi_J agrees within the seed scatter for
  every variant (mixture 0.6426 +- 0.0030 / 0.6398 +- 0.0005 / 0.6400 +- 0.0009 /
  0.6392 +- 0.0005).
- unit masses fail at delta 0.15 (not converged after 1e5 steps where physical needs 1.4e4-4e4).
- at delta 0.15, X_S 0.2, n_large 15, seed 0 the default repeats the previous loop bit for bit
  (1 158 585 steps, phi_J 0.8076); the Jacobi preconditioner and the per-step unjammed
  certificate (``relax(certify="step")``) both left a relaxation at phi 0.81 unconverged after
  1e6 steps.

The mass-metric mixing is the consistent one, and it does win single relaxations at delta 0.15,
but it lost the whole bisections above; the Jacobi preconditioner equalises the diagonal of the
Hessian yet its time step cannot grow beyond ~1 (dt 0.14 x 10 went unstable: 5793 resets), and it
gained nothing over physical masses, whose light small spheres already relax on their own fast
time scale while the large skeleton sets the slow modes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from granular import integrator as I
from granular.contact import DEFAULT_LAW, ContactLaw
from granular.space import Packing

PRECONDITIONERS = ("physical", "unit", "jacobi")
DEFAULT_PRECONDITIONER = "physical"
VARIANTS = ("euclidean", "mass-metric")
JACOBI_DT = 0.1
"""Default starting time step with the Jacobi preconditioner (dimensionless)."""
JACOBI_DT_LIMIT = 1.0
FIRE_CHUNK = 50_000
STOPS = {I.HALT_CONVERGED: "converged", I.HALT_MAX_STEPS: "max_steps", I.HALT_STUCK: "stuck",
         I.HALT_ENERGY: "energy"}


def _check_int(name, value, low):
    if isinstance(value, bool) or int(value) != value or int(value) < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")


def _check_range(name, value, low, high, low_open=True, high_open=True):
    ok = np.isfinite(value) and (value > low if low_open else value >= low) and (
        value < high if high_open else value <= high)
    if not ok:
        bounds = f"{'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
        raise ValueError(f"{name} must be in {bounds}, got {value!r}")


@dataclass(frozen=True)
class FireParams:
    """Parameters of FIRE (defaults: Guenole et al. 2020, Table 1; LAMMPS ``min_style fire``).

    Parameters
    ----------
    variant : {"euclidean", "mass-metric"}
        ``"euclidean"`` (the default, measured best, see :func:`fire_minimize`): mixing with
        Euclidean norms towards F, as LAMMPS's ``min_style fire`` and this project's earlier loop,
        dt clamped at ``dt_min``. ``"mass-metric"``: mixing in the metric of the masses (module
        docstring) and dt never reduced below ``dt_min`` (a reduction that would cross it is
        skipped). The two agree when all masses are equal, up to the dt_min rule.
    n_delay : int
        Downhill steps before dt may grow; also the length of the initial delay (>= 0).
    f_inc : float
        Growth factor of dt, in [1, 2].
    f_dec : float
        Reduction factor of dt on an uphill step, in (0, 1).
    alpha_start : float
        Mixing parameter after a reset, in (0, 1).
    f_alpha : float
        Decay factor of alpha on a downhill step past the delay, in (0, 1].
    dt_max_factor : float
        dt_max = dt_max_factor x the starting dt, in [1, 100].
    dt_min_factor : float
        dt_min = dt_min_factor x the starting dt, in [0, 1].
    initial_delay : bool
        Do not reduce dt (nor reset alpha) on uphill steps during the first ``n_delay`` steps.
    half_step_back : bool
        On an uphill step move back x -= dt v / 2 before zeroing the velocities.
    max_uphill : int
        Stop (not converged) after more than this many uphill steps in a row; 0: no limit.
    jacobi_floor : float
        Floor of the Jacobi masses as a fraction of the mean stiffness of one contact, in (0, 1]
        (at 1 a particle that gains a contact stays stable at the largest time step).
    """

    variant: str = "euclidean"
    n_delay: int = 20
    f_inc: float = 1.1
    f_dec: float = 0.5
    alpha_start: float = 0.25
    f_alpha: float = 0.99
    dt_max_factor: float = 10.0
    dt_min_factor: float = 0.02
    initial_delay: bool = True
    half_step_back: bool = True
    max_uphill: int = 2000
    jacobi_floor: float = 1.0

    def __post_init__(self):
        if self.variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {self.variant!r}")
        _check_int("n_delay", self.n_delay, 0)
        _check_int("max_uphill", self.max_uphill, 0)
        _check_range("f_inc", self.f_inc, 1.0, 2.0, low_open=False, high_open=False)
        _check_range("f_dec", self.f_dec, 0.0, 1.0)
        _check_range("alpha_start", self.alpha_start, 0.0, 1.0)
        _check_range("f_alpha", self.f_alpha, 0.0, 1.0, high_open=False)
        _check_range("dt_max_factor", self.dt_max_factor, 1.0, 100.0, low_open=False, high_open=False)
        _check_range("dt_min_factor", self.dt_min_factor, 0.0, 1.0, low_open=False, high_open=False)
        _check_range("jacobi_floor", self.jacobi_floor, 0.0, 1.0, high_open=False)
        for name in ("initial_delay", "half_step_back"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise ValueError(f"{name} must be True or False, got {getattr(self, name)!r}")

    def as_array(self, dt: float, force_tol: float, max_steps: int, jacobi: bool,
                 energy_tol: float = 0.0) -> np.ndarray:
        """The parameter vector the compiled loops read (indices ``P_*`` of
        :mod:`granular.integrator`)."""
        par = np.zeros(I.N_PAR)
        par[I.P_N_DELAY] = self.n_delay
        par[I.P_F_INC] = self.f_inc
        par[I.P_F_DEC] = self.f_dec
        par[I.P_ALPHA_START] = self.alpha_start
        par[I.P_F_ALPHA] = self.f_alpha
        par[I.P_DT_MAX] = self.dt_max_factor * dt
        par[I.P_DT_MIN] = self.dt_min_factor * dt
        par[I.P_INITIAL_DELAY] = float(self.initial_delay)
        par[I.P_MAX_UPHILL] = self.max_uphill
        par[I.P_HALF_STEP_BACK] = float(self.half_step_back)
        par[I.P_CONSISTENT] = float(self.variant == "mass-metric")
        par[I.P_CLAMP_DT_MIN] = float(self.variant == "euclidean")
        par[I.P_FORCE_TOL] = force_tol
        par[I.P_MAX_STEPS] = max_steps
        par[I.P_JACOBI_FLOOR] = self.jacobi_floor if jacobi else 0.0
        par[I.P_ENERGY_TOL] = energy_tol
        return par


DEFAULT_FIRE = FireParams()


@dataclass
class FireResult:
    """Outcome of :func:`fire_minimize`; ``converged`` means max |F_i| <= force_tol (k_n d_L).

    ``steps`` FIRE steps cost ``force_evaluations`` = steps + 1 force calls; ``resets`` counts the
    uphill steps (velocity resets, and with ``"jacobi"`` mass refreshes); ``stop`` is
    ``"converged"``, ``"energy"`` (the elastic energy fell to ``energy_tol``), ``"max_steps"`` or
    ``"stuck"`` (more than ``max_uphill`` uphill steps in a row).
    """

    packing: Packing
    converged: bool
    steps: int
    max_force: float
    energy: float
    backend: str
    force: np.ndarray | None = None
    resets: int = 0
    rebuilds: int = 0
    preconditioner: str = "physical"
    stop: str = "converged"

    @property
    def force_evaluations(self) -> int:
        return self.steps + 1


def start_dt(packing: Packing, law: ContactLaw, preconditioner: str, dt: float | None) -> float:
    """The starting time step of FIRE with ``preconditioner`` (checked if given).

    physical: t_c / 50 of the smallest-sphere contact (at most t_c / 10); unit: t_c / 50 of a
    unit-mass contact with the stiffest spring; jacobi: ``JACOBI_DT`` (dimensionless, at most 1).
    """
    if preconditioner not in PRECONDITIONERS:
        raise ValueError(f"preconditioner must be one of {PRECONDITIONERS}, got {preconditioner!r}")
    if preconditioner == "jacobi":
        if dt is None:
            return JACOBI_DT
        if not (np.isfinite(dt) and 0 < dt <= JACOBI_DT_LIMIT):
            raise ValueError(f"dt must be in (0, {JACOBI_DT_LIMIT}] with the jacobi preconditioner "
                             f"(dimensionless), got {dt}")
        return float(dt)
    if preconditioner == "unit":
        radius, mass = float(packing.radius.max()), 1.0
    else:
        radius, mass = float(packing.radius.min()), None
    return law.default_dt(radius, mass) if dt is None else law.check_dt(dt, radius, mass)


def fire_minimize(packing: Packing, law: ContactLaw = DEFAULT_LAW, *, force_tol: float = 1e-12,
                  max_steps: int = 10**6, dt: float | None = None, skin: float | None = None,
                  preconditioner: str = DEFAULT_PRECONDITIONER, params: FireParams = DEFAULT_FIRE,
                  energy_tol: float = 0.0, backend: str = "auto") -> FireResult:
    """Minimise the elastic energy at fixed box with FIRE 2.0 (see the module docstring).

    Converged means max_i |F_i| <= ``force_tol`` (units k_n d_L); the dashpot is ignored (it does
    not change the minima). The initial velocities are discarded.

    Parameters
    ----------
    packing : Packing
        Start (not modified).
    law : ContactLaw
    force_tol : float
        Convergence threshold on max_i |F_i| (> 0).
    max_steps : int
        Step cap (>= 0); reaching it returns ``converged=False``.
    dt : float, optional
        Starting time step (see :func:`start_dt`); FIRE adapts it between
        ``params.dt_min_factor`` and ``params.dt_max_factor`` times this.
    skin : float, optional
        Verlet skin (default 20 % of the smallest diameter).
    preconditioner : {"physical", "unit", "jacobi"}
        The masses of FIRE's dynamics (module docstring). They change the path, not the minima.
        Default physical (measured best, see the module docstring).
    params : FireParams
    energy_tol : float
        Also stop (``stop="energy"``, not converged) once the elastic energy is <= this (units
        k_n d_L^2; 0: never). :func:`relax` uses it to certify unjammed states at every step.
    backend : {"auto", "cpu", "cuda"}

    Returns
    -------
    FireResult
        The relaxed packing (zero velocities), ``converged``, ``steps``, ``max_force``, the elastic
        ``energy``, the ``backend`` used, the forces (N, 3) and the counters.
    """
    from granular.simulate import _raise_status, _setup, check_minimize_inputs

    max_steps = check_minimize_inputs(force_tol, max_steps, energy_tol, params, FireParams)
    _, skin, name, layer = _setup(packing, law, None, skin, backend)
    dt = start_dt(packing, law, preconditioner, dt)
    out = packing.copy()
    if preconditioner == "physical":
        inv_mass = 1.0 / out.mass
    else:  # jacobi: replaced at the first step (v = 0 is a reset), where the mixing ratio is dt anyway
        inv_mass = np.ones(out.n)
    jacobi = preconditioner == "jacobi"
    par = params.as_array(dt, force_tol, max_steps, jacobi, energy_tol)
    state = np.zeros(I.N_STATE)
    state[I.S_DT], state[I.S_ALPHA] = dt, params.alpha_start
    out.velocity[:] = 0.0
    rebuilds, force, totals = layer.run_fire(out.position, out.velocity, out.radius, out.species, out.box,
                                             law.k_n, law.model_code, skin, inv_mass, par, state)
    steps = int(state[I.S_STEP])
    halt = int(state[I.S_HALT])
    _raise_status(1 if halt == I.HALT_NONFINITE else 0, steps, "fire_minimize")
    out.velocity[:] = 0.0
    return FireResult(out, halt == I.HALT_CONVERGED, steps, float(state[I.S_MAX_FORCE]), float(totals[0]),
                      name, force, int(state[I.S_RESETS]), int(rebuilds), preconditioner, STOPS[halt])


@dataclass
class _Relaxed:
    packing: Packing
    pressure: float
    split: tuple
    z: float
    steps: int


def pressure_bound(packing: Packing, energy: float, law: ContactLaw) -> float:
    """Largest contact-virial pressure compatible with a total energy ``energy`` (see :func:`relax`).

    Every overlap obeys k xi^2 / 2 <= E (linear law; 2 k xi^(5/2) / 5 <= E for Hertz), at most
    M = 6 N pairs touch, so P <= sum_c f_c d_max / (3 V) with sum_c f_c <= sqrt(2 M E k) (linear).
    """
    energy = max(float(energy), 0.0)
    m = 6.0 * packing.n
    if law.model == "hertz":
        force_sum = m * law.k_n * (2.5 * energy / law.k_n) ** 0.6
    else:  # Cauchy-Schwarz: sum xi <= sqrt(M sum xi^2) <= sqrt(2 M E / k)
        force_sum = math.sqrt(2.0 * m * energy * law.k_n)
    return force_sum * 2.0 * float(packing.radius.max()) / (3.0 * packing.volume)


def unjammed_energy(packing: Packing, pressure: float, law: ContactLaw) -> float:
    """The energy below which :func:`pressure_bound` is below ``pressure`` (its inverse, less a
    relative 1e-9 so that the bound stays strictly below)."""
    m = 6.0 * packing.n
    force_sum = 3.0 * packing.volume * float(pressure) / (2.0 * float(packing.radius.max()))
    if law.model == "hertz":
        energy = law.k_n / 2.5 * (force_sum / (m * law.k_n)) ** (5.0 / 3.0)
    else:
        energy = force_sum**2 / (2.0 * m * law.k_n)
    return energy * (1.0 - 1e-9)


def relax(packing: Packing, law: ContactLaw, *, force_tol: float, max_steps: int, backend: str,
          relaxer: str = "fire", kinetic_tol: float = 1e-18, damping: float = 0.5,
          unjammed_pressure: float | None = None, preconditioner: str = DEFAULT_PRECONDITIONER,
          params: FireParams = DEFAULT_FIRE, certify: str = "chunk") -> _Relaxed:
    """Relax ``packing`` to mechanical equilibrium and measure it; raise if it does not converge.

    ``relaxer="fire"`` uses :func:`fire_minimize` with ``preconditioner`` and ``params``,
    restarted every FIRE_CHUNK steps (dt, alpha and the velocities reset): near phi_J at
    delta 0.15 one long FIRE run stalls (max |F| ~ 1e-8 after 1e6 steps at n_large 15, X_S 0.2,
    seed 0, phi 0.81) where the restarted one converges (304 152 steps);
    ``"damped"`` runs damped dynamics (:func:`granular.simulate.run_md`) in chunks until
    max |F| <= force_tol and the kinetic energy per particle <= kinetic_tol, finished by FIRE.
    Either stops early once the state is certified unjammed: every overlap obeys
    k xi^2 / 2 <= E with E the elastic energy (plus the kinetic energy for damped dynamics, which
    never raises the total), so the pressure can never exceed sqrt(2 M E k) d_max / (3 V) with
    M <= 6 N contacts (:func:`pressure_bound`); once that bound is below ``unjammed_pressure`` the
    state is unjammed whatever the remaining motion. FIRE undoes uphill motion, so its energy keeps
    falling to the minimum (the certificate assumes so). ``certify="chunk"`` (the default, this
    project's earlier behaviour) checks the bound at the end of every FIRE chunk;
    ``certify="step"`` at every FIRE step (``energy_tol`` = :func:`unjammed_energy`), which makes
    unjammed relaxations far shorter but changes the states a bisection passes through: at
    delta 0.15, X_S 0.2, n_large 15, seed 0 the next relaxation (phi 0.81, just above phi_J) then
    stalled at max |F| ~ 2e-8 after 1e6 steps where the chunked path converged.
    """
    from granular.measure import contacts, pressure

    if certify not in ("chunk", "step"):
        raise ValueError(f"certify must be 'chunk' or 'step', got {certify!r}")
    fire = {"preconditioner": preconditioner, "params": params}
    if unjammed_pressure is not None and certify == "step":
        fire["energy_tol"] = unjammed_energy(packing, unjammed_pressure, law)
    if relaxer == "fire":
        out, steps = packing, 0
        while True:  # restarts every FIRE_CHUNK steps (reset dt, alpha, v): see the docstring
            res = fire_minimize(out, law, force_tol=force_tol, max_steps=min(FIRE_CHUNK, max_steps - steps),
                                backend=backend, **fire)
            out, steps = res.packing, steps + int(res.steps)
            certified = unjammed_pressure is not None and (
                res.stop == "energy" or pressure_bound(out, res.energy, law) < unjammed_pressure)
            if res.converged or certified:
                break
            if steps >= max_steps or res.stop == "stuck":
                raise RuntimeError(
                    f"FIRE did not converge in {steps} steps (max |F| = {res.max_force:.3g} > "
                    f"force_tol = {force_tol:.3g}, stop: {res.stop}) at phi = "
                    f"{packing.packing_fraction:.6f}; raise max_steps")
    elif relaxer == "lbfgs":
        from granular.lbfgs import lbfgs_minimize

        energy_tol = 0.0 if unjammed_pressure is None else unjammed_energy(packing, unjammed_pressure, law)
        res = lbfgs_minimize(packing, law, force_tol=force_tol, max_steps=max_steps, energy_tol=energy_tol,
                             backend=backend)
        out, steps = res.packing, res.force_evaluations
        if not (res.converged or res.stop == "energy"):
            raise RuntimeError(
                f"L-BFGS did not converge in {res.iterations} iterations (max |F| = {res.max_force:.3g} > "
                f"force_tol = {force_tol:.3g}, stop: {res.stop}) at phi = {packing.packing_fraction:.6f}")
    elif relaxer == "damped":
        out, steps = _relax_damped(packing, law, force_tol=force_tol, kinetic_tol=kinetic_tol,
                                   damping=damping, max_steps=max_steps, backend=backend,
                                   unjammed_pressure=unjammed_pressure, fire=fire)
    else:
        raise ValueError(f"relaxer must be 'fire', 'lbfgs' or 'damped', got {relaxer!r}")
    split = pressure(out, law, backend=backend)
    n_contacts = contacts(out, law, backend=backend).i.size
    return _Relaxed(out, float(split.total), (float(split.ss), float(split.sl), float(split.ll)),
                    2.0 * n_contacts / out.n, steps)


def _relax_damped(packing, law, *, force_tol, kinetic_tol, damping, max_steps, backend, unjammed_pressure,
                  fire, damped_steps=20000):
    """Damped dynamics for up to ``damped_steps`` steps, then FIRE to the same force criterion.

    Near phi_J the slowest modes of damped dynamics creep (overdamped rate ~ lambda_min / damping),
    so damped dynamics alone needs millions of steps there; FIRE finishes the same minimum.
    """
    from granular.simulate import run_md

    current = packing.copy()
    current.velocity[:] = 0.0
    chunk = 2000
    steps = 0
    while steps < min(damped_steps, max_steps):
        res = run_md(current, law, steps=chunk, damping=damping, backend=backend)
        current = res.packing
        steps += chunk
        kinetic = res.kinetic_energy / current.n
        max_force = float(np.max(np.linalg.norm(res.force, axis=1)))
        if max_force <= force_tol and kinetic <= kinetic_tol:
            return current, steps
        if (unjammed_pressure is not None and pressure_bound(
                current, res.kinetic_energy + res.potential_energy, law) < unjammed_pressure):
            return current, steps
    res = fire_minimize(current, law, force_tol=force_tol, max_steps=max_steps, backend=backend, **fire)
    if not (res.converged or res.stop == "energy"):
        raise RuntimeError(
            f"relaxation did not converge in {steps} damped + {res.steps} FIRE steps (max |F| = "
            f"{res.max_force:.3g} > force_tol = {force_tol:.3g}) at phi = {packing.packing_fraction:.6f}")
    return res.packing, steps + int(res.steps)
