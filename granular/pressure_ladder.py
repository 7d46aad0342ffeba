"""The jamming point from a pressure ladder: relaxed states at target pressures, P(phi) fitted to zero.

For Hookean (linear) contacts the relaxed pressure rises linearly above the jamming point,
P = s (phi - phi_J) (O'Hern et al., PRE 68, 011306, 2003; the bulk modulus K = phi dP/dphi stays
finite at phi_J). So phi_J need not be bracketed down to a pressure band of 1e-6 k_n/d_L, where a
FIRE relaxation is slowest (the lowest vibrational frequencies vanish with P): relaxed states at
higher pressures, on a straight line, extrapolate to the same zero.

:func:`ladder_search` (``find_jamming(..., method="ladder")``):

1. Approach: compress in steps of ``phi_step`` (affine rescaling, FIRE relaxation) until a relaxed
   state is jammed (pressure above the lower end of the band), as the bisection does. Optionally
   (``approach_steps``) each of these relaxations is capped: a capped state is not measured (its
   history row has NaN pressure and contact number; its steps count) and is compressed further
   as it stands. That skips the slow unjammed states just below phi_J but overshoots, and at
   strong size asymmetry the decompression path from far above phi_J jams elsewhere (see
   :class:`LadderSettings`), so the default is the full relaxation.
2. Descend a ladder of target pressures (default :data:`DEFAULT_PRESSURES`, 1e-3 ... 1e-5 k_n/d_L):
   each rung rescales the lowest-pressure jammed state to the packing fraction predicted for the
   target and relaxes it. The prediction is a Newton step, phi_t = phi - (P - P_t) / (dP/dphi),
   with the larger of the tangent dP/dphi = K / phi (Hessian linear response, :func:`tangent_slope`)
   and the secant through the two lowest states, so that it stops short
   of phi_J where P(phi) bends. A rung is a fit point whatever pressure it
   lands on. Its relaxation is capped at ``rung_cap`` times the most steps a jammed state has
   needed; a state that comes out unjammed (certified, P below the band: it raises the lower
   bracket) or reaches the cap is not used, and the rung is retried halfway back toward the
   lowest jammed state.
3. Optionally (``land=True``) one more Newton step into the pressure band, so that the stored
   packing is a state at the jamming point as the bisection's is (backbone Z, jammed fractions).
4. phi_J is the zero of the weighted straight-line fit (relative weights, sigma_i ~ P_i) of
   P(phi) over the jammed states with P <= ``fit_max``, with its standard error from the fit
   (:func:`fit_pressure_line`); criterion ``"ladder fit"``.

The bracket of the result is what was observed: ``phi_low`` the largest packing fraction found
unjammed, ``phi_high`` the lowest found jammed; phi_J is clipped into it (an unjammed state may
lie up to p_low / s above the line's zero, since "unjammed" means P below the band's lower end).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from granular.space import scale_to_phi

DEFAULT_PRESSURES = (1e-3, 3e-4, 1e-4, 3e-5, 1e-5)
CRITERION = "ladder fit"
MAX_RUNG_TRIES = 6


def check_ladder(pressures, fit_max) -> tuple:
    """Validate a ladder's target pressures (>= 2 finite values > 0, strictly decreasing) and its
    ``fit_max`` (None or a finite value > 0); returns the pressures as a tuple of float."""
    p = tuple(float(v) for v in pressures)
    if len(p) < 2 or not all(math.isfinite(v) and v > 0 for v in p) or any(b >= a for a, b in zip(p, p[1:])):
        raise ValueError(f"ladder pressures must be >= 2 finite values > 0, strictly decreasing, "
                         f"got {pressures}")
    if fit_max is not None and not (math.isfinite(fit_max) and fit_max > 0):
        raise ValueError(f"fit_max must be a finite number > 0, got {fit_max}")
    return p


@dataclass(frozen=True)
class LadderSettings:
    """Parameters of the pressure ladder (pressures in units of k_n / d_L).

    Attributes
    ----------
    pressures : tuple of float
        Target pressures, strictly decreasing, each > 0.
    land : bool
        Finish with a relaxed state inside the pressure band (one or a few extra relaxations at
        the lowest pressure, the most expensive ones), stored as the result's packing.
    fit_max : float, optional
        Largest pressure of a state used in the fit (default: twice the first target).
    approach_steps : int, optional
        Cap on the FIRE steps of one relaxation while compressing toward the first jammed state
        (>= 1). None (the default): full relaxations, the bisection's own compression, so both
        methods start their search from the same states. A cap saves the slow unjammed states
        below phi_J but overshoots into the jammed range, and decompressing from there follows
        another path: measured at delta 0.15, X_S 0.2, 40 large spheres, a cap of 2e4 steps
        overshot to P = 0.04 and gave phi_J = 0.7876 against 0.7757 (bisection and uncapped
        ladder), with 7x the force evaluations (benchmarks/RESULTS.md).
    rung_cap : float
        Cap on the FIRE steps of a rung's relaxation, as a multiple of the most steps a jammed
        state of this search has needed (>= 1); a rung that reaches it is retried closer.
    freeze_rattlers : bool
        Leave particles without contacts out of each rung's relaxation (:func:`relax_frozen`; the
        same FIRE trajectory until a frozen one is touched, 3x cheaper steps at delta 0.15,
        X_S 0.2, where two thirds of the particles have no contact). Off by default: its gain
        over a whole search is not measured yet.
    """

    pressures: tuple = DEFAULT_PRESSURES
    land: bool = True
    fit_max: float | None = None
    approach_steps: int | None = None
    rung_cap: float = 5.0
    freeze_rattlers: bool = False

    def __post_init__(self):
        object.__setattr__(self, "pressures", check_ladder(self.pressures, self.fit_max))
        if self.approach_steps is not None and (int(self.approach_steps) != self.approach_steps
                                                or self.approach_steps < 1):
            raise ValueError(f"approach_steps must be an integer >= 1, got {self.approach_steps}")
        if not (math.isfinite(self.rung_cap) and self.rung_cap >= 1):
            raise ValueError(f"rung_cap must be a finite number >= 1, got {self.rung_cap}")

    @property
    def fit_limit(self) -> float:
        return float(self.fit_max) if self.fit_max is not None else 2.0 * self.pressures[0]


@dataclass(frozen=True)
class LineFit:
    """Straight line P = slope (phi - phi_j) through relaxed jammed states.

    Attributes
    ----------
    phi_j, phi_j_error : float
        Zero of the line and its standard error (NaN with fewer than three points).
    slope, slope_error : float
        dP/dphi (units k_n / d_L) and its standard error.
    n_points : int
    rms_relative_residual : float
        Root mean square of (P_i - line) / P_i.
    """

    phi_j: float
    phi_j_error: float
    slope: float
    slope_error: float
    n_points: int
    rms_relative_residual: float


def fit_pressure_line(phi, pressure) -> LineFit:
    """Weighted least-squares line P = a + b phi with sigma_i proportional to P_i; zero at -a / b.

    Relative weights make the low-pressure states (nearest phi_J, where the linear law is most
    accurate) count most. The standard errors scale the covariance by the residual variance
    (n - 2 degrees of freedom); the error of the zero follows from the covariance of (a, b).

    Parameters
    ----------
    phi, pressure : array_like, shape (n,)
        Packing fractions and relaxed pressures (> 0) of jammed states, n >= 2.
    """
    phi = np.asarray(phi, dtype=np.float64)
    p = np.asarray(pressure, dtype=np.float64)
    if phi.shape != p.shape or phi.ndim != 1 or phi.size < 2:
        raise ValueError("phi and pressure must be 1-d arrays of the same length >= 2")
    if not np.all(np.isfinite(p) & (p > 0)) or not np.all(np.isfinite(phi)):
        raise ValueError("pressure must be finite and > 0, phi finite")
    if np.ptp(phi) <= 0:
        raise ValueError("phi must hold at least two distinct values")
    w = 1.0 / p
    design = np.stack([np.ones_like(phi), phi], axis=1) * w[:, None]
    coef, *_ = np.linalg.lstsq(design, p * w, rcond=None)
    a, b = float(coef[0]), float(coef[1])
    relative = (p - (a + b * phi)) / p
    n = phi.size
    rms = float(np.sqrt(np.mean(relative**2)))
    if b <= 0:
        return LineFit(float("nan"), float("nan"), b, float("nan"), n, rms)
    phi_j = -a / b
    if n > 2:
        cov = np.linalg.inv(design.T @ design) * float(np.sum(relative**2)) / (n - 2)
        gradient = np.array([-1.0 / b, a / b**2])  # d(phi_j)/d(a, b)
        phi_err = float(np.sqrt(max(gradient @ cov @ gradient, 0.0)))
        slope_err = float(np.sqrt(max(cov[1, 1], 0.0)))
    else:
        phi_err = slope_err = float("nan")
    return LineFit(float(phi_j), phi_err, b, slope_err, n, rms)


@dataclass(frozen=True)
class RelaxedState:
    """A relaxed state of a capped relaxation (the fields of the states ``evaluate`` returns)."""

    packing: object
    pressure: float
    split: tuple
    z: float
    steps: int


def capped_relaxer(record: Callable, law, *, force_tol: float, backend: str, p_low: float,
                   bound: Callable, freeze: bool = True, minimizer: str = "fire") -> Callable:
    """``capped(packing, max_steps)`` for :func:`ladder_search`, recording through ``record``.

    ``record(phi, pressure, (P_SS, P_SL, P_LL), z, steps)`` appends one history row. A relaxation
    that converges (max |F| <= force_tol) or is certified unjammed within the cap (the energy
    bound ``bound(packing, energy, law)``, :func:`granular.jamming.pressure_bound`, below
    ``p_low``) is measured and recorded as
    a relaxed state; otherwise the row holds NaN pressures and Z, and its steps.

    With ``freeze``, particles without any contact are left out of the relaxation of a state
    expected jammed (``capped(packing, cap, jammed=True)``, the default; :func:`relax_frozen`):
    FIRE never moves them, so the trajectory is the same until one is touched, at a cost per step
    that falls with their number (below X*_S most small spheres rattle). Not while approaching
    jamming from below (``jammed=False``): there most particles are contact-free but many get
    touched, and each touch restarts FIRE on the whole packing, changing the path.

    ``minimizer="lbfgs"`` relaxes by L-BFGS (:func:`granular.lbfgs.lbfgs_minimize`, CPU only; the
    cap counts its iterations, ``freeze`` does not apply) instead of FIRE.
    """
    from granular.lbfgs import lbfgs_minimize
    from granular.measure import contacts, pressure
    from granular.minimize import unjammed_energy

    def capped(packing, cap: int, jammed: bool = True):
        if minimizer == "lbfgs":
            res = lbfgs_minimize(packing, law, force_tol=force_tol, max_steps=cap, backend=backend,
                                 energy_tol=unjammed_energy(packing, p_low, law))
            out, steps, converged, energy = res.packing, res.force_evaluations, res.converged, res.energy
        else:
            out, steps, converged, energy = relax_frozen(packing, law, force_tol=force_tol, max_steps=cap,
                                                         backend=backend, freeze=freeze and jammed)
        phi = out.packing_fraction
        if converged or bound(out, energy, law) < p_low:
            split = pressure(out, law, backend=backend)
            z = 2.0 * contacts(out, law, backend=backend).m / out.n
            state = RelaxedState(out, float(split.total), (split.ss, split.sl, split.ll), z, steps)
            record(phi, state.pressure, state.split, z, steps)
            return state, out
        nan = float("nan")
        record(phi, nan, (nan, nan, nan), nan, steps)
        return None, out

    return capped


FREEZE_BELOW = 0.8  # freeze only when at most this fraction of the particles touches another


def near_contact(packing, law, margin: float, *, backend: str = "auto") -> np.ndarray:
    """Mask (N,) of the particles with a neighbour closer than ``margin`` surface to surface."""
    from granular.measure import contacts

    near = packing.copy()
    near.radius = packing.radius + 0.5 * margin
    c = contacts(near, law, backend=backend)
    active = np.zeros(packing.n, dtype=bool)
    active[c.i] = active[c.j] = True
    return active


def relax_frozen(packing, law, *, force_tol: float, max_steps: int, backend: str, freeze: bool = True):
    """FIRE (:func:`granular.simulate.fire_minimize`) with the contact-free particles frozen.

    Particles without an overlap feel no force, and FIRE's velocity mixing keeps their velocity
    at zero, so they do not move: relaxing only the others, with the time step and skin of the
    whole packing, gives the same trajectory as long as no frozen particle is touched. Afterwards
    they are put back; if one of them now overlaps a moved particle, FIRE continues on the whole
    packing with the steps left (a restart: a different path, to a minimum of the same kind; a
    margin of the Verlet skin, which would avoid most restarts, freezes almost nothing in the
    packed pores of a bidisperse packing).
    Freezing is skipped when more than ``FREEZE_BELOW`` of the particles touch (no gain).

    Returns
    -------
    (packing, steps, converged, energy)
    """
    from granular.measure import contacts
    from granular.minimize import fire_minimize
    from granular.simulate import default_skin
    from granular.space import Packing, wrap

    dt = law.default_dt(float(packing.radius.min()))
    skin = default_skin(packing)
    steps = 0
    current = packing
    if freeze:
        active = near_contact(packing, law, 0.0, backend=backend)
        if 2 <= active.sum() <= FREEZE_BELOW * packing.n:
            sub = Packing(packing.position[active], packing.velocity[active], packing.radius[active],
                          packing.species[active], packing.box.copy())
            res = fire_minimize(sub, law, force_tol=force_tol, max_steps=max_steps, dt=dt, skin=skin,
                                backend=backend)
            current = packing.copy()
            current.position[active] = wrap(res.packing.position, current.box)
            current.velocity[:] = 0.0
            steps = int(res.steps)
            after = contacts(current, law, backend=backend)
            if not np.any(~active[after.i] | ~active[after.j]):
                return current, steps, bool(res.converged), float(res.energy)
    res = fire_minimize(current, law, force_tol=force_tol, max_steps=max(max_steps - steps, 1), dt=dt,
                        skin=skin, backend=backend)
    return res.packing, steps + int(res.steps), bool(res.converged), float(res.energy)


def tangent_slope(packing, law) -> float:
    """Tangent dP/dphi = K / phi of a relaxed jammed state, K by Hessian linear response
    (:func:`granular.elasticity.linear_response`).

    Where the non-affine solve fails (K not finite or not positive, e.g. a state with too few
    backbone contacts) the affine upper bound (K_affine + 2P/3) / phi is returned instead:
    K = K_affine - K_nonaffine + 2P/3 with K_nonaffine >= 0, so a Newton step with the bound stops
    short of its target (measured: it roughly doubles the rungs, monodisperse N 1000 213k against
    122k FIRE steps).
    """
    from granular.elasticity import linear_response
    from granular.measure import contacts

    phi = packing.packing_fraction
    try:
        k = linear_response(packing, law).K
    except (ValueError, RuntimeError, np.linalg.LinAlgError):
        k = float("nan")
    if np.isfinite(k) and k > 0:
        return k / phi
    c = contacts(packing, law)
    stiffness = law.k_n * (1.5 * np.sqrt(c.overlap) if law.model == "hertz" else 1.0)
    k_affine = float(np.sum(stiffness * c.distance**2)) / (9.0 * packing.volume)
    p = float(np.sum(c.force * c.distance)) / (3.0 * packing.volume)
    return (k_affine + 2.0 * p / 3.0) / phi


@dataclass
class _Ladder:
    """Mutable bookkeeping of one search: jammed states (any P) and the lower bracket."""

    jammed: list
    phi_low: float = -math.inf

    @property
    def lowest(self):
        return min(self.jammed, key=lambda s: s.pressure)

    def secant(self) -> tuple[float, float] | None:
        """(phi_J estimate, slope) from the two lowest-pressure jammed states, or None."""
        states = sorted(self.jammed, key=lambda s: s.pressure)[:2]
        if len(states) < 2:
            return None
        (p0, f0), (p1, f1) = ((s.pressure, s.packing.packing_fraction) for s in states)
        if f0 == f1 or (p1 - p0) / (f1 - f0) <= 0:
            return None
        slope = (p1 - p0) / (f1 - f0)
        return f0 - p0 / slope, slope


def ladder_search(packing, evaluate: Callable, capped: Callable, law, *, p_low: float, p_high: float,
                  phi_step: float, settings: LadderSettings):
    """Run the ladder (module docstring).

    ``evaluate(packing)`` relaxes one state fully and records it (the bisection's relaxation,
    used by the approach when ``settings.approach_steps`` is None);
    ``capped(packing, max_steps)`` relaxes with a step cap and returns (the recorded state, its
    packing), or (None, the partly relaxed packing) when the cap was reached
    (:func:`capped_relaxer`).

    Returns
    -------
    (phi_j, phi_low, phi_high, criterion, state, fit) : the fields of a JammingResult and the
    :class:`LineFit`; pressures are in the units of ``law`` (already multiplied by k_n).
    """
    ladder = _Ladder(jammed=[])
    if settings.approach_steps is None:
        def full(p, cap, jammed):  # noqa: ARG001 - the approach's interface, uncapped
            state = evaluate(p)
            return state, state.packing

        state = _approach(packing, ladder, full, p_low, phi_step, 0)
    else:
        state = _approach(packing, ladder, capped, p_low, phi_step, int(settings.approach_steps))
    ladder.jammed.append(state)
    targets = [t * law.k_n for t in settings.pressures]
    if settings.land:
        targets.append(math.sqrt(p_low * p_high))
    for k, target in enumerate(targets):
        landing = settings.land and k == len(targets) - 1
        if not landing and target >= 0.8 * ladder.lowest.pressure:
            continue  # already a state at or below this rung
        _climb(ladder, capped, law, target, settings.rung_cap, p_low, p_high if landing else None)
    fit_states = [s for s in ladder.jammed if s.pressure <= settings.fit_limit * law.k_n]
    if len(fit_states) < 2:
        fit_states = sorted(ladder.jammed, key=lambda s: s.pressure)[:2]
    fit = fit_pressure_line([s.packing.packing_fraction for s in fit_states],
                            [s.pressure for s in fit_states])
    final = ladder.lowest
    phi_high = min(s.packing.packing_fraction for s in ladder.jammed)
    phi_low = max(ladder.phi_low, 0.0)
    phi_j = fit.phi_j if np.isfinite(fit.phi_j) else phi_high
    return float(np.clip(phi_j, phi_low, phi_high)), phi_low, phi_high, CRITERION, final, fit


def _approach(packing, ladder: _Ladder, capped, p_low: float, phi_step: float, cap: int):
    """Compress in steps of phi_step, relaxations capped, until a relaxed state is jammed."""
    state, current = capped(packing, cap, False)
    while state is None or state.pressure < p_low:
        if state is not None:
            current = state.packing
            ladder.phi_low = max(ladder.phi_low, current.packing_fraction)
        phi = current.packing_fraction + phi_step
        if phi >= 1.0:
            raise RuntimeError(f"no jamming point below phi = 1 (last phi = {phi - phi_step:.6f})")
        state, current = capped(scale_to_phi(current, phi), cap, False)
    return state


def _relax_toward(capped, packing, cap: int, target: float, law, keep_fraction: float = 0.3):
    """Relax in chunks of ``cap`` steps while the unfinished state still looks jammed near the
    target: its (unrelaxed) contact-virial pressure at least ``keep_fraction`` times the target.

    A jammed state converges to a pressure near the target; an unjammed one drains toward zero,
    so a state whose pressure has fallen far below the target is given up (None). Every accepted
    state is converged; the chunks only decide when to stop waiting.
    """
    from granular.measure import pressure

    state, current = capped(packing, cap)
    while state is None and pressure(current, law).total >= keep_fraction * target:
        state, current = capped(current, cap)
    return state


def _climb(ladder: _Ladder, capped, law, target: float, cap_factor: float, p_low: float, band_high):
    """Relax toward pressure ``target`` from the lowest jammed state (one Newton step); retry
    halfway after an unjammed or unfinished state.

    The step uses the larger of the tangent dP/dphi at the lowest state and
    the secant through the two lowest states: where P(phi) bends (its slope falls toward phi_J, as
    at strong size asymmetry when small spheres leave the backbone) the larger slope keeps the
    step short of phi_J. A relaxation is capped at ``cap_factor`` times the most steps a jammed
    state has needed so far: unjammed states just below phi_J drain slowly, jammed ones do not.
    With ``band_high`` (landing) retry until the pressure lies in [p_low, band_high]; otherwise a
    single jammed state, whatever its pressure, ends the rung.
    """
    floor = ladder.phi_low  # no prediction at or below a state found unjammed or unfinished
    for _ in range(MAX_RUNG_TRIES):
        start = ladder.lowest
        phi_now, p_now = start.packing.packing_fraction, start.pressure
        slope = tangent_slope(start.packing, law)
        secant = ladder.secant()
        if secant is not None:
            slope = max(slope, secant[1])
        phi_t = phi_now - (p_now - target) / slope
        if phi_t <= floor:
            phi_t = 0.5 * (floor + phi_now)
        cap = max(int(cap_factor * max(s.steps for s in ladder.jammed)), 1000)
        state = _relax_toward(capped, scale_to_phi(start.packing, phi_t), cap, target, law)
        if state is None or state.pressure < p_low:
            floor = max(floor, phi_t)
            if state is not None:
                ladder.phi_low = max(ladder.phi_low, phi_t)
            continue
        ladder.jammed.append(state)
        if band_high is None or state.pressure <= band_high:
            return
    if band_high is None:
        raise RuntimeError(f"pressure ladder: no jammed state near P = {target:.3g} after "
                           f"{MAX_RUNG_TRIES} tries (unjammed or unfinished down to phi = {floor:.6f})")
