"""The jamming point phi_J of a packing: FIRE-relaxed bisection (O'Hern et al. 2003) and
compression-decompression with damped dynamics.

Both methods change the packing fraction by affine rescaling of box and positions and relax every
state to mechanical equilibrium before its pressure is read; a relaxation counts only if it
converged (max |F_i| <= ``force_tol`` k_n d_L, and for damped dynamics also a kinetic energy per
particle below ``kinetic_tol``), never after a fixed number of steps: a cut-short relaxation leaves
overlaps that read as pressure and puts phi_J about 0.008 too low.

``method="bisection"`` (O'Hern et al., PRE 68, 011306, 2003): compress in steps of ``phi_step``
until the relaxed pressure exceeds the upper end of ``pressure_band``, then bisect between the
largest unjammed and the smallest over-jammed packing fraction, always starting from the most
recent relaxed configuration. Stops when the relaxed pressure falls inside ``pressure_band``
(criterion ``"pressure band"``) or when the bracket is narrower than ``phi_tol`` (``"bracket"``).
A state is unjammed when its relaxed pressure is below the lower end of the band.

``method="compress"``: compress in steps of ``phi_step`` with damped-dynamics relaxation (finished
by FIRE where damped dynamics creeps, near phi_J, so that every state meets the same criterion) until
the pressure exceeds ``decompress_from``, then decompress in steps of ``decompress_step`` until
the pressure vanishes (below the band); phi_J is where the straight line through the last jammed
states (P is linear in phi - phi_J for harmonic contacts) reaches zero, bracketed by the last
jammed and the first unjammed state (criterion ``"decompression"``).

``method="ladder"`` (:mod:`granular.pressure_ladder`): relaxed states at a ladder of target
pressures (1e-3 ... 1e-5 k_n/d_L by default) reached by Newton steps in phi from above, and
phi_J as the zero of the straight line fitted to P(phi) (criterion ``"ladder fit"``, with the
standard error of the fit in ``phi_j_error``); no relaxation of an unjammed state just below
phi_J, the slowest kind, is needed.

``method="enthalpy"`` (:mod:`granular.enthalpy_ladder`): the same ladder and fit with states
reached by minimising the enthalpy U + P V over the positions and the box at each target
pressure (:mod:`granular.enthalpy`; criterion ``"enthalpy fit"``), descending from the first
jammed state of the bisection's compression or, as another protocol, from a pressure quench of
the start at the first target (``EnthalpySettings.approach``).

``minimizer``: the fixed-box relaxations by FIRE (:mod:`granular.minimize`, both backends, the
default) or L-BFGS with a Jacobi preconditioner (:mod:`granular.lbfgs`, CPU only; also the
ladder's rungs). L-BFGS needs 2.4-6.5x fewer force evaluations per bisection (monodisperse N 1000,
1:1.4 mixture N 2000, delta 0.15 X_S 0.2 n_large 40, seeds 0-2; benchmarks/RESULTS.md "L-BFGS
relaxations") and is 1.5-3.7x faster in wall time, but it is another protocol: its monodisperse
phi_J is 0.6363 +- 0.0003 against FIRE's 0.6377 +- 0.0002, outside the seed scatter, so the default
stays FIRE and keeps today's answers; at the 1:1.4 mixture and at delta 0.15 the two agree within
the seed scatter.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import numpy as np

from granular.contact import ContactLaw
from granular.minimize import (
    DEFAULT_FIRE,
    DEFAULT_PRECONDITIONER,
    FireParams,
    _Relaxed,
    pressure_bound,
    relax,
)
from granular.space import Packing, scale_to_phi

METHODS = ("bisection", "compress", "ladder", "enthalpy")
MINIMIZERS = ("fire", "lbfgs")
JAMMING_HISTORY_KEYS = ("phi", "pressure", "pressure_SS", "pressure_SL", "pressure_LL", "Z", "steps")


@dataclass
class JammingResult:
    """Outcome of :func:`find_jamming`.

    Attributes
    ----------
    phi_j : float
        Jamming packing fraction.
    phi_low, phi_high : float
        Bracket: the largest packing fraction found unjammed and the smallest found jammed above
        the band (``phi_low <= phi_j <= phi_high``).
    criterion : str
        ``"pressure band"``, ``"bracket"`` or ``"decompression"``.
    method : str
        ``"bisection"`` or ``"compress"``.
    packing : Packing
        The relaxed jammed packing at ``phi_j`` (in the band) or at ``phi_high``.
    pressure : float
        Its contact-virial pressure (units k_n / d_L).
    history : dict of ndarray
        Every relaxed state in order: phi, pressure, pressure_SS/SL/LL, Z (mean contacts per
        particle, all particles), steps (relaxation steps).
    backend : str
        Backend that ran the relaxations.
    phi_j_error : float
        Standard error of phi_J from the fit of P(phi) (``method="ladder"``; NaN otherwise).
    fit : granular.pressure_ladder.LineFit or None
        The straight-line fit of P(phi) (``method="ladder"``).
    """

    phi_j: float
    phi_low: float
    phi_high: float
    criterion: str
    method: str
    packing: Packing
    pressure: float
    history: dict = field(default_factory=dict)
    backend: str = "cpu"
    phi_j_error: float = float("nan")
    fit: object = None

    @property
    def bracket_width(self) -> float:
        return self.phi_high - self.phi_low


def check_pressure_band(pressure_band) -> tuple[float, float]:
    low, high = (float(v) for v in pressure_band)
    if not (np.isfinite(low) and np.isfinite(high) and 0 < low < high):
        raise ValueError(f"pressure_band must be (low, high) with 0 < low < high, got {pressure_band}")
    return low, high


def spring_forces(packing: Packing, law: ContactLaw, *, backend="auto") -> np.ndarray:
    """Net elastic contact force on every particle, shape (N, 3), units k_n d_L (linear law).

    ``backend``: a name or a :class:`granular.backend.Engine` (the contacts are found there)."""
    from granular.measure import contacts, net_forces, pair_forces

    c = contacts(packing, law, backend=backend)
    return net_forces(c, pair_forces(c.overlap, law), packing.n)


def find_jamming(
    packing: Packing,
    law: ContactLaw | None = None,
    *,
    method: str = "bisection",
    pressure_band: tuple[float, float] = (1e-6, 2e-6),
    phi_step: float = 1e-2,
    phi_tol: float = 1e-7,
    force_tol: float = 1e-12,
    max_steps: int = 10**6,
    max_relaxations: int = 400,
    decompress_from: float = 1e-4,
    decompress_step: float = 2e-4,
    damping: float = 0.5,
    preconditioner: str = DEFAULT_PRECONDITIONER,
    fire_params: FireParams = DEFAULT_FIRE,
    certify: str = "chunk",
    minimizer: str = "fire",
    ladder=None,
    backend: str = "auto",
    progress: bool = False,
) -> JammingResult:
    """Find the jamming packing fraction of ``packing`` (see the module docstring).

    Parameters
    ----------
    packing : Packing
        Starting configuration, normally unjammed (e.g. from :func:`granular.make_packing`).
    law : ContactLaw, optional
        Contact law; default linear, k_n = 1.
    method : {"bisection", "compress", "ladder", "enthalpy"}
        FIRE-relaxed bisection, compression-decompression with damped dynamics, the pressure
        ladder (:mod:`granular.pressure_ladder`) or its enthalpy form (:mod:`granular.enthalpy_ladder`).
    pressure_band : (float, float)
        Target pressure band (units k_n / d_L); a state below its lower end counts as unjammed.
    phi_step : float
        Compression step in packing fraction before jamming is bracketed, in (0, 0.1].
    phi_tol : float
        Stop when the bracket is narrower than this (bisection).
    force_tol : float
        Convergence of each relaxation, max |F_i| in units of k_n d_L (scaled by law.k_n).
    max_steps, max_relaxations : int
        Step cap of one relaxation (reaching it is an error, not a result); cap on relaxed states.
    decompress_from, decompress_step : float
        ``method="compress"``: pressure at which compression turns into decompression, and the
        decompression step in packing fraction.
    damping : float
        Background viscous damping of the damped dynamics (``method="compress"``).
    preconditioner, fire_params, certify, minimizer : str, FireParams, {"chunk", "step"}, str
        FIRE's masses and parameters, when the unjammed certificate is checked (:func:`relax`), and
        the minimiser, "fire" or "lbfgs" (module docstring: why FIRE is the default).
    ladder : LadderSettings or EnthalpySettings, optional
        Options of ``method="ladder"`` (:class:`granular.pressure_ladder.LadderSettings`) or
        ``"enthalpy"`` (:class:`granular.enthalpy_ladder.EnthalpySettings`); default: their defaults.
    backend : {"auto", "cpu", "cuda"}
    progress : bool
        Show a tqdm progress bar.

    Returns
    -------
    JammingResult
    """
    from granular.backend import resolve_backend

    law = ContactLaw() if law is None else law
    p_low, p_high = (p * law.k_n for p in check_pressure_band(pressure_band))
    ladder = _check_method(method, ladder, phi_step, phi_tol, force_tol)
    backend = _check_minimizer(minimizer, resolve_backend(backend))
    tol = force_tol * law.k_n
    history = {key: [] for key in JAMMING_HISTORY_KEYS}
    with _progress_bar(progress, method) as bar:
        record = _recorder(history, bar, max_relaxations)
        evaluate = _evaluator(record, law, tol=tol, max_steps=max_steps, backend=backend, damping=damping,
                              p_low=p_low, preconditioner=preconditioner, params=fire_params,
                              certify=certify, minimizer=minimizer)
        result, fit = _run_method(method, packing, evaluate, record, law, tol, backend, p_low, p_high,
                                  phi_step, phi_tol, decompress_from * law.k_n, decompress_step, ladder,
                                  minimizer)
    return _jamming_result(result, fit, method, history, backend)


def _evaluator(record, law, *, tol, max_steps, backend, damping, p_low, preconditioner, params, certify,
               minimizer="fire"):
    """``evaluate(packing, relaxer="fire")``: one converged relaxation (:func:`relax`), recorded;
    ``evaluate(packing, pressure=P, box=BoxParams)``: at pressure P instead
    (:func:`granular.enthalpy.relax_at_pressure`)."""

    def evaluate(p: Packing, relaxer: str | None = None, pressure: float | None = None, box=None) -> _Relaxed:
        if pressure is not None:
            from granular.enthalpy import relax_at_pressure

            r = relax_at_pressure(p, law, pressure=pressure, force_tol=tol, max_steps=max_steps,
                                  backend=backend, preconditioner=preconditioner, params=params, box=box)
        else:
            r = relax(p, law, force_tol=tol, max_steps=max_steps, backend=backend,
                      relaxer=minimizer if relaxer is None else relaxer,
                      damping=damping, unjammed_pressure=p_low, preconditioner=preconditioner,
                      params=params, certify=certify)
        record(r.packing.packing_fraction, r.pressure, r.split, r.z, r.steps)
        return r

    return evaluate


def _jamming_result(result, fit, method: str, history: dict, backend: str) -> JammingResult:
    """A :class:`JammingResult` from a method's ``(phi_j, phi_low, phi_high, criterion, state)``."""
    phi_j, phi_low, phi_high, criterion, state = result
    return JammingResult(
        phi_j=float(phi_j), phi_low=float(phi_low), phi_high=float(phi_high), criterion=criterion,
        method=method, packing=state.packing, pressure=state.pressure,
        history={k: np.asarray(v) for k, v in history.items()}, backend=backend,
        phi_j_error=float("nan") if fit is None else fit.phi_j_error, fit=fit,
    )


def _run_method(method, packing, evaluate, record, law, tol, backend, p_low, p_high, phi_step, phi_tol,
                decompress_from, decompress_step, ladder, minimizer="fire"):
    """Dispatch to one method; returns ((phi_j, phi_low, phi_high, criterion, state), fit or None)."""
    if method == "bisection":
        return _bisection(packing, evaluate, p_low, p_high, phi_step, phi_tol), None
    if method == "ladder":
        *result, fit = _ladder(packing, evaluate, record, law, tol, backend, p_low, p_high, phi_step, ladder,
                               minimizer)
        return result, fit
    if method == "enthalpy":
        from granular.enthalpy_ladder import enthalpy_search

        if backend != "cpu":  # before the compression spends any work
            raise ValueError("method 'enthalpy' runs on the CPU only (no CUDA loop yet); use backend='cpu'")
        *result, fit = enthalpy_search(packing, evaluate, law, p_low=p_low, p_high=p_high, phi_step=phi_step,
                                       settings=ladder)
        return result, fit
    return _compress_decompress(packing, evaluate, p_low, decompress_from, phi_step, decompress_step), None


def _recorder(history: dict, bar, max_relaxations: int):
    """``record(phi, pressure, split, z, steps)``: append one row to ``history``, update ``bar``."""

    def record(phi: float, p: float, split, z: float, steps: int) -> None:
        if len(history["phi"]) >= max_relaxations:
            raise RuntimeError(f"no jamming point after {max_relaxations} relaxations (max_relaxations)")
        for key, value in zip(JAMMING_HISTORY_KEYS, (phi, p, *split, z, steps)):
            history[key].append(value)
        if bar is not None:
            bar.update(1)
            bar.set_postfix(phi=f"{phi:.6f}", P=f"{p:.3g}")

    return record


def _check_minimizer(minimizer: str, backend: str) -> str:
    """Validate find_jamming's minimiser for ``backend``; return the backend."""
    if minimizer not in MINIMIZERS:
        raise ValueError(f"minimizer must be one of {MINIMIZERS}, got {minimizer!r}")
    if minimizer == "lbfgs" and backend != "cpu":
        raise ValueError("minimizer 'lbfgs' runs on the CPU only (no CUDA loop yet); use backend='cpu'")
    return backend


def _check_method(method, ladder, phi_step, phi_tol, force_tol):
    """Validate find_jamming's method and step arguments; return the ladder settings."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if method == "ladder":
        from granular.pressure_ladder import LadderSettings

        ladder = LadderSettings() if ladder is None else ladder
        if not isinstance(ladder, LadderSettings):
            raise ValueError(f"ladder must be a granular.pressure_ladder.LadderSettings, got {ladder!r}")
    if method == "enthalpy":
        from granular.enthalpy_ladder import EnthalpySettings

        ladder = EnthalpySettings() if ladder is None else ladder
        if not isinstance(ladder, EnthalpySettings):
            raise ValueError(f"ladder must be a granular.enthalpy_ladder.EnthalpySettings for method "
                             f"'enthalpy', got {ladder!r}")
    if not (np.isfinite(phi_step) and 0 < phi_step <= 0.1):
        raise ValueError(f"phi_step must be in (0, 0.1], got {phi_step}")
    if not (np.isfinite(phi_tol) and 0 < phi_tol < phi_step):
        raise ValueError(f"phi_tol must be in (0, phi_step), got {phi_tol}")
    if not (np.isfinite(force_tol) and force_tol > 0):
        raise ValueError(f"force_tol must be > 0, got {force_tol}")
    return ladder


def _ladder(packing, evaluate, record, law, tol, backend, p_low, p_high, phi_step, ladder, minimizer):
    """method="ladder": :func:`granular.pressure_ladder.ladder_search` with this module's relaxations."""
    from granular.pressure_ladder import capped_relaxer, ladder_search

    capped = capped_relaxer(record, law, force_tol=tol, backend=backend, p_low=p_low, bound=pressure_bound,
                            freeze=ladder.freeze_rattlers, minimizer=minimizer)
    return ladder_search(packing, evaluate, capped, law, p_low=p_low, p_high=p_high, phi_step=phi_step,
                         settings=ladder)


def _progress_bar(progress: bool, method: str):
    """A tqdm bar over relaxations as a context manager, or a null context yielding None."""
    if not progress:
        return contextlib.nullcontext()
    from tqdm.auto import tqdm

    return tqdm(desc=f"jamming ({method})", unit="relaxation")


def _bisection(packing, evaluate, p_low, p_high, phi_step, phi_tol):
    state = evaluate(packing)
    low, high = -np.inf, np.inf  # largest unjammed and smallest over-jammed phi seen so far
    jammed_state = None
    while True:
        phi = state.packing.packing_fraction
        if p_low <= state.pressure <= p_high:
            return phi, max(low, 0.0), min(high, phi), "pressure band", state
        if state.pressure > p_high:
            if phi < high:
                high, jammed_state = phi, state
        else:
            low = max(low, phi)
        if high - low < phi_tol:
            return high, low, high, "bracket", jammed_state
        if not np.isfinite(high):
            target = phi + phi_step
        elif not np.isfinite(low):
            target = phi - phi_step  # started above jamming: decompress until it unjams
        else:
            target = 0.5 * (low + high)
        if not 0.0 < target < 1.0:
            raise RuntimeError(f"no jamming point in (0, 1) (last relaxed phi = {phi:.6f})")
        state = evaluate(scale_to_phi(state.packing, target))


def _compress_decompress(packing, evaluate, p_low, p_turn, phi_step, decompress_step):
    state = evaluate(packing, "damped")
    # Compression: steps of phi_step, refined near jamming so that the turn happens at P ~ p_turn.
    step = phi_step
    while state.pressure < p_turn:
        if state.pressure > 0.0 and state.pressure >= p_low:
            step = min(step, decompress_step * 10)
        nxt = evaluate(scale_to_phi(state.packing, state.packing.packing_fraction + step), "damped")
        if nxt.pressure > 50 * p_turn and step > decompress_step:
            step /= 4  # overshot far into the jammed region: retry from the unjammed state
            continue
        state = nxt
        if state.packing.packing_fraction >= 0.99:
            raise RuntimeError("no jamming below phi = 0.99")
    jammed = [state]
    while True:
        phi = state.packing.packing_fraction - decompress_step
        state = evaluate(scale_to_phi(state.packing, phi), "damped")
        if state.pressure < p_low:
            break
        jammed.append(state)
    last = jammed[-3:] if len(jammed) >= 2 else jammed
    phis = np.array([s.packing.packing_fraction for s in last])
    ps = np.array([s.pressure for s in last])
    phi_first_unjammed = state.packing.packing_fraction
    if len(last) >= 2:
        slope, intercept = np.polyfit(phis, ps, 1)
        phi_j = -intercept / slope if slope > 0 else phis[-1]
    else:
        phi_j = phis[-1]
    phi_j = float(np.clip(phi_j, phi_first_unjammed, phis[-1]))
    return phi_j, phi_first_unjammed, phis[-1], "decompression", jammed[-1]


def compress_to(packing: Packing, phi: float, law: ContactLaw | None = None, *, force_tol: float = 1e-12,
                max_steps: int = 10**6, backend: str = "auto") -> Packing:
    """Rescale ``packing`` affinely to ``phi`` and relax it with FIRE (raises if not converged)."""
    from granular.backend import resolve_backend

    law = ContactLaw() if law is None else law
    state = relax(scale_to_phi(packing, phi), law, force_tol=force_tol * law.k_n, max_steps=max_steps,
                  backend=resolve_backend(backend))
    return state.packing
