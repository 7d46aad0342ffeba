"""Energy minimisation at fixed box by L-BFGS (Nocedal, Math. Comp. 35, 773, 1980; Liu and
Nocedal, Math. Prog. 45, 503, 1989), compiled on the CPU.

Why a second minimiser: FIRE is damped dynamics with a global velocity reset on every uphill
step. Below the jamming point at strong size asymmetry (delta 0.15, X_S >= 0.2) thousands of
light small spheres rattle in the cages of the large-sphere skeleton; somewhere one of them always
goes uphill, FIRE resets every ~30-300 steps, and the slow collective motion of the skeleton is
stopped again and again (benchmarks/RESULTS.md, "Enthalpy minimisation": 3-5e6 FIRE steps for one
relaxation near phi_J at X_S 0.25). L-BFGS has no velocities to lose: it builds a model of the
curvature from the last ``memory`` steps and moves along it, so a floppy collective mode is
crossed in a few long steps.

One iteration, from x with forces F = -grad U:

1. Direction d = H F by the two-loop recursion over the stored pairs (s_k = x_{k+1} - x_k,
   y_k = F_k - F_{k+1}), H_0 = gamma I with gamma = s.y / y.y of the newest pair. If d is not a
   descent direction (F.d <= 0) the memory is dropped and d = gamma F.
2. Step length a = 1, reduced so that no particle moves more than ``max_move`` (the model of a
   nearly flat energy asks for huge steps that would cross many contacts at once).
3. Line search, backtracking with quadratic interpolation (factor clamped to [0.1, 0.5]): accept
   a when the Armijo condition U(x + a d) <= U(x) - c1 a F.d holds, or, where the energy change is
   below its round-off (near a minimum U changes by ~1e-24 on U ~ 1e-10), the upper half of the
   approximate Wolfe conditions of Hager and Zhang (SIAM J. Optim. 16, 170, 2005):
   U(x + a d) <= U(x) + eps |U(x)| and F_new.d >= -0.8 F.d (no large overshoot). Their lower half
   (the derivative shrank by 10 %) is not required: a step too short for it still goes downhill,
   and backtracking would only shorten it (with it, 8.7 force calls per iteration near phi_J at
   delta 0.15, X_S 0.2, seed 1, and no convergence in 30 000 iterations). An overshoot is
   shortened by the secant of the directional derivative.
4. Store (s, y) if s.y > 0 (the energy of frictionless spheres is not convex: the tangential part
   of a compressed contact's Hessian is negative).

Positions leave the box between list builds (the minimum image is valid for displacements below
half a box); a build wraps them and shifts the stored step start by the same lattice vectors, so
the differences s stay exact. Converged: max_i |F_i| <= force_tol, the criterion of FIRE
(:mod:`granular.minimize`), so both stop at the same kind of state; ``energy_tol`` stops early with
``stop="energy"`` (the unjammed certificate of :func:`granular.minimize.relax`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numba
import numpy as np

from granular.accumulators import ACC_ENERGY, N_ACC
from granular.contact import DEFAULT_LAW, ContactLaw
from granular.kernels_cpu import (
    contact_forces,
    rebuild,
    sum_accumulators,
    wrap_inplace,
)
from granular.loops_cpu import jacobi_refresh
from granular.partition import radius_levels
from granular.space import Packing

STOP_CONVERGED, STOP_MAX_ITER, STOP_NONFINITE, STOP_LINE_SEARCH, STOP_ENERGY = range(5)
STOPS = {STOP_CONVERGED: "converged", STOP_MAX_ITER: "max_steps", STOP_NONFINITE: "nonfinite",
         STOP_LINE_SEARCH: "stuck", STOP_ENERGY: "energy"}
C_ARMIJO = 1e-4
WOLFE_SIGMA = 0.9
WOLFE_DELTA = 0.1
ENERGY_ROUNDOFF = 1e-6
MAX_TRIALS = 40
JACOBI_REFRESH = 20
"""Iterations between two refreshes of the Jacobi preconditioner (the stored pairs stay valid)."""
PRECONDITIONERS = ("none", "jacobi")


@dataclass(frozen=True)
class LbfgsParams:
    """Parameters of :func:`lbfgs_minimize`.

    Parameters
    ----------
    memory : int
        Number of stored step pairs (s, y), in [1, 100].
    max_move : float
        Largest displacement of one particle in one iteration, as a fraction of the smallest
        sphere diameter, in (0, 1].
    preconditioner : {"jacobi", "none"}
        H_0 of the recursion: ``"jacobi"`` gamma diag(1 / K_i), K_i the sum of the contact
        stiffnesses of particle i (at least the mean of one contact), refreshed every
        ``JACOBI_REFRESH`` iterations; ``"none"`` gamma I.
    """

    memory: int = 8
    max_move: float = 0.1
    preconditioner: str = "jacobi"

    def __post_init__(self):
        if isinstance(self.memory, bool) or int(self.memory) != self.memory or not 1 <= self.memory <= 100:
            raise ValueError(f"memory must be an integer in [1, 100], got {self.memory!r}")
        if not (np.isfinite(self.max_move) and 0 < self.max_move <= 1):
            raise ValueError(f"max_move must be in (0, 1] (fraction of the smallest diameter), "
                             f"got {self.max_move!r}")
        if self.preconditioner not in PRECONDITIONERS:
            raise ValueError(f"preconditioner must be one of {PRECONDITIONERS}, got {self.preconditioner!r}")


DEFAULT_LBFGS = LbfgsParams()


@dataclass
class LbfgsResult:
    """Outcome of :func:`lbfgs_minimize`; ``converged`` means max |F_i| <= force_tol (k_n d_L).

    ``iterations`` L-BFGS iterations cost ``force_evaluations`` force calls (line-search trials
    included); ``stop`` is ``"converged"``, ``"energy"``, ``"max_steps"`` or ``"stuck"`` (the line
    search found no acceptable step: the energy is flat to round-off along the direction).
    """

    packing: Packing
    converged: bool
    iterations: int
    force_evaluations: int
    max_force: float
    energy: float
    force: np.ndarray
    rebuilds: int
    stop: str
    backend: str = "cpu"

    @property
    def steps(self) -> int:
        """Force evaluations, the unit the FIRE counters use (one force call per step)."""
        return self.force_evaluations


@numba.njit(cache=True, fastmath=True)
def _dot(a, b):
    """Dot product of two flat arrays (flat loops vectorise; (N, 3) indexing does not)."""
    s = 0.0
    for i in range(a.size):
        s += a[i] * b[i]
    return s


@numba.njit(cache=True, fastmath=True)
def _axpy(alpha, x, y):
    """y += alpha x (flat arrays)."""
    for i in range(x.size):
        y[i] += alpha * x[i]


@numba.njit(cache=True)
def _max_row_norm(a):
    """Largest |a_i| over the rows of a flat array of 3-vectors (NaN if any is NaN)."""
    m = 0.0
    for i in range(a.size // 3):
        r = a[3 * i] ** 2 + a[3 * i + 1] ** 2 + a[3 * i + 2] ** 2
        if not r <= m:  # NaN wins
            m = r
    return math.sqrt(m)


@numba.njit(cache=True)
def _direction(force, s_hist, y_hist, rho, coef, newest, stored, gamma, inv_diag, out):
    """out = H F by the two-loop recursion (H_0 = gamma diag(inv_diag), ``inv_diag`` (N,) one value
    per particle), flat arrays (s_hist, y_hist: (memory, 3N)); ``newest`` is the ring index of the
    newest pair, ``stored`` how many are held."""
    memory = rho.shape[0]
    out[:] = force
    k = newest
    for _ in range(stored):
        coef[k] = rho[k] * _dot(s_hist[k], out)
        _axpy(-coef[k], y_hist[k], out)
        k = (k - 1) % memory
    for i in range(out.size):
        out[i] *= gamma * inv_diag[i // 3]
    k = (newest - stored + 1) % memory
    for _ in range(stored):
        beta = rho[k] * _dot(y_hist[k], out)
        _axpy(coef[k] - beta, s_hist[k], out)
        k = (k + 1) % memory


@numba.njit(cache=True, fastmath=True)
def _trial(x, x0, step, d, ref):
    """x = x0 + step d; returns the largest squared displacement from ``ref`` (flat arrays)."""
    moved2 = 0.0
    for i in range(x.size // 3):
        r2 = 0.0
        for c in range(3 * i, 3 * i + 3):
            x[c] = x0[c] + step * d[c]
            u = x[c] - ref[c]
            r2 += u * u
        moved2 = max(moved2, r2)
    return moved2


@numba.njit(cache=True)
def _line_search(position, force, x0, d, slope, e0, step, start, neighbours, bounds, ref, radius, species,
                 box, level, level_rmax, skin, k_n, model, buf, acc, totals, n_chunks):
    """Backtracking from x0 along d (module docstring, step 3), moving ``position`` and filling
    ``force``; rebuilds the list when a particle moved more than half the skin.

    Returns (accepted, step, energy, force calls, list builds, start, neighbours, bounds, ref).
    """
    x = position.reshape(-1)
    f = force.reshape(-1)
    velocity = np.zeros((1, 3))  # no dashpot (gamma_n = 0): never read
    half_skin2 = (0.5 * skin) ** 2
    energy = e0
    trials = 0
    builds = 0
    for _ in range(MAX_TRIALS):
        if _trial(x, x0, step, d, ref.reshape(-1)) > half_skin2:
            before = x.copy()
            start, neighbours, bounds, ref = rebuild(position, radius, box, level, level_rmax, skin, n_chunks)
            builds += 1
            for i in range(x.size):  # shift the step start by the lattice vectors of the wrap
                x0[i] += x[i] - before[i]
        contact_forces(position, velocity, radius, species, box, start, neighbours, bounds, k_n, 0.0,
                       model, buf, acc, force)
        sum_accumulators(acc, totals)
        energy = totals[ACC_ENERGY]
        trials += 1
        if not math.isfinite(energy):
            break
        if energy <= e0 - C_ARMIJO * step * slope:
            return True, step, energy, trials, builds, start, neighbours, bounds, ref
        new_slope = _dot(f, d)
        flat = energy <= e0 + ENERGY_ROUNDOFF * abs(e0)  # the energy change is round-off
        if flat and new_slope >= (2.0 * WOLFE_DELTA - 1.0) * slope:
            # approximate Wolfe; a step too short for its curvature part still goes downhill
            # (new_slope > 0), and shrinking it would only make it shorter: accept it too
            return True, step, energy, trials, builds, start, neighbours, bounds, ref
        if flat:  # overshot: secant of the directional derivative
            shrink = min(0.5, max(0.1, slope / (slope - new_slope)))
        else:  # the quadratic through U(0), U'(0), U(step)
            curvature = energy - e0 + step * slope
            shrink = 0.5
            if curvature > 0.0:
                shrink = min(0.5, max(0.1, 0.5 * slope * step / curvature))
        step *= shrink
    return False, step, energy, trials, builds, start, neighbours, bounds, ref


@numba.njit(cache=True)
def _steepest_scale(force, inv_diag, max_move):
    """gamma such that the largest |gamma inv_diag_i F_i| is ``max_move``."""
    largest = 0.0
    for i in range(inv_diag.size):
        g = inv_diag[i] * math.sqrt(force[3 * i] ** 2 + force[3 * i + 1] ** 2 + force[3 * i + 2] ** 2)
        largest = max(largest, g)
    return max_move / largest


@numba.njit(cache=True)
def _store_pair(s_k, y_k, step, d, f0, f, inv_diag, rho, k):
    """Write s = step d and y = F_0 - F into the ring slot ``k``; keep it (rho[k] = 1 / s.y, return
    True) only if s.y > 0 (module docstring, step 4)."""
    for i in range(s_k.size):
        s_k[i] = step * d[i]
        y_k[i] = f0[i] - f[i]
    sy = _dot(s_k, y_k)
    yy = _dot(y_k, y_k)
    if sy > 1e-12 * math.sqrt(_dot(s_k, s_k) * yy) and yy > 0.0:
        rho[k] = 1.0 / sy
        return True
    return False


@numba.njit(cache=True)
def _weighted_norm2(y, inv_diag):
    """y . diag(inv_diag) y (one weight per particle): the scale of H_0 in the preconditioner's metric."""
    total = 0.0
    for i in range(inv_diag.size):
        total += inv_diag[i] * (y[3 * i] ** 2 + y[3 * i + 1] ** 2 + y[3 * i + 2] ** 2)
    return total


@numba.njit(cache=True)
def lbfgs_loop(position, force, radius, species, box, level, level_rmax, skin, k_n, model, memory, max_move,
               jacobi, force_tol, energy_tol, max_iter, counters, n_chunks):
    """L-BFGS at fixed box, in place on ``position`` (N, 3) and ``force`` (N, 3) (module docstring).

    ``counters`` (5,) receives iterations, force evaluations, list builds, the stop code and the
    final energy. Positions are wrapped at the end.
    """
    n = position.shape[0]
    start, neighbours, bounds, ref = rebuild(position, radius, box, level, level_rmax, skin, n_chunks)
    rebuilds = 1
    buf = np.empty((n_chunks, n, 3)) if n_chunks > 1 else force.reshape((1, n, 3))
    acc = np.zeros((n_chunks, N_ACC))
    totals = np.zeros(N_ACC)
    velocity = np.zeros((1, 3))  # no dashpot (gamma_n = 0): never read
    x = position.reshape(-1)
    f = force.reshape(-1)
    s_hist, y_hist = np.zeros((memory, 3 * n)), np.zeros((memory, 3 * n))
    rho, coef = np.zeros(memory), np.zeros(memory)
    d, x0, f0 = np.empty(3 * n), np.empty(3 * n), np.empty(3 * n)
    newest, stored, gamma = -1, 0, 1.0
    stiffness, inv_diag = np.zeros(n), np.ones(n)
    contact_forces(position, velocity, radius, species, box, start, neighbours, bounds, k_n, 0.0, model,
                   buf, acc, force)
    sum_accumulators(acc, totals)
    energy = totals[ACC_ENERGY]
    evals = 1
    iteration = 0
    stop = -1
    while True:
        fmax = _max_row_norm(f)
        if not (math.isfinite(fmax) and math.isfinite(energy)):
            stop = STOP_NONFINITE
            break
        if fmax <= force_tol:
            stop = STOP_CONVERGED
            break
        if energy <= energy_tol:
            stop = STOP_ENERGY
            break
        if iteration >= max_iter:
            stop = STOP_MAX_ITER
            break
        if jacobi and iteration % JACOBI_REFRESH == 0:
            jacobi_refresh(position, radius, box, start, neighbours, k_n, model, 1.0, stiffness, inv_diag)
            inv_diag *= k_n  # H_0 in units of 1 / k_n
        if stored == 0:  # first step: the largest preconditioned force moves its particle by max_move
            gamma = _steepest_scale(f, inv_diag, max_move)
        _direction(f, s_hist, y_hist, rho, coef, newest, stored, gamma, inv_diag, d)
        slope = _dot(f, d)  # -dU/da at a = 0
        if not slope > 0.0:  # not a descent direction: drop the memory
            stored = 0
            gamma = _steepest_scale(f, inv_diag, max_move)
            _direction(f, s_hist, y_hist, rho, coef, newest, 0, gamma, inv_diag, d)
            slope = _dot(f, d)
        dmax = _max_row_norm(d)
        step = max_move / dmax if dmax > max_move else 1.0
        x0[:] = x
        f0[:] = f
        e0 = energy
        accepted, step, energy, trials, builds, start, neighbours, bounds, ref = _line_search(
            position, force, x0, d, slope, e0, step, start, neighbours, bounds, ref, radius, species, box,
            level, level_rmax, skin, k_n, model, buf, acc, totals, n_chunks)
        evals += trials
        rebuilds += builds
        if not accepted:
            x[:] = x0
            f[:] = f0
            stop = STOP_NONFINITE if not math.isfinite(energy) else STOP_LINE_SEARCH
            energy = e0
            break
        iteration += 1
        k = (newest + 1) % memory
        if _store_pair(s_hist[k], y_hist[k], step, d, f0, f, inv_diag, rho, k):
            newest = k
            stored = min(stored + 1, memory)
            gamma = 1.0 / (rho[k] * _weighted_norm2(y_hist[k], inv_diag))
    wrap_inplace(position, box)
    counters[:] = np.array([float(iteration), float(evals), float(rebuilds), float(stop), energy])


def lbfgs_minimize(packing: Packing, law: ContactLaw = DEFAULT_LAW, *, force_tol: float = 1e-12,
                   max_steps: int = 10**6, params: LbfgsParams = DEFAULT_LBFGS, skin: float | None = None,
                   energy_tol: float = 0.0, backend: str = "cpu") -> LbfgsResult:
    """Minimise the elastic energy at fixed box with L-BFGS (module docstring).

    Parameters
    ----------
    packing : Packing
        Start (not modified; velocities are ignored).
    law : ContactLaw
    force_tol : float
        Convergence threshold on max_i |F_i| (units k_n d_L, > 0).
    max_steps : int
        Cap on the iterations (>= 0); reaching it returns ``converged=False``.
    params : LbfgsParams
    skin : float, optional
        Verlet skin (default 20 % of the smallest diameter).
    energy_tol : float
        Also stop (``stop="energy"``) once the elastic energy is <= this (k_n d_L^2; 0: never).
    backend : {"cpu", "auto"}
        CPU only: there is no CUDA L-BFGS ("auto" means the CPU here).

    Returns
    -------
    LbfgsResult
    """
    from granular.loops_cpu import _threads
    from granular.simulate import _raise_status, _setup, check_minimize_inputs

    if backend not in ("cpu", "auto"):
        raise ValueError(f"backend must be 'cpu' or 'auto' for L-BFGS (no CUDA loop), got {backend!r}")
    max_steps = check_minimize_inputs(force_tol, max_steps, energy_tol, params, LbfgsParams)
    _, skin, _, _ = _setup(packing, law, None, skin, "cpu")
    out = packing.copy()
    out.velocity[:] = 0.0
    force = np.zeros_like(out.position)
    counters = np.zeros(5)
    level, level_rmax = radius_levels(out.radius)
    max_move = params.max_move * 2.0 * float(out.radius.min())
    with _threads(out.n) as n_chunks:
        lbfgs_loop(out.position, force, out.radius, out.species, out.box, level, level_rmax, float(skin),
                   float(law.k_n), int(law.model_code), int(params.memory), max_move,
                   params.preconditioner == "jacobi", float(force_tol),
                   float(energy_tol), int(max_steps), counters, n_chunks)
    stop = int(counters[3])
    _raise_status(1 if stop == STOP_NONFINITE else 0, int(counters[0]), "lbfgs_minimize")
    return LbfgsResult(out, stop == STOP_CONVERGED, int(counters[0]), int(counters[1]),
                       _max_row_norm(force.reshape(-1)), float(counters[4]), force, int(counters[2]),
                       STOPS[stop])
