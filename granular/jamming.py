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
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from granular.contact import ContactLaw
from granular.space import Packing, scale_to_phi

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

    @property
    def bracket_width(self) -> float:
        return self.phi_high - self.phi_low


@dataclass
class _Relaxed:
    packing: Packing
    pressure: float
    split: tuple
    z: float
    steps: int


def check_pressure_band(pressure_band) -> tuple[float, float]:
    low, high = (float(v) for v in pressure_band)
    if not (np.isfinite(low) and np.isfinite(high) and 0 < low < high):
        raise ValueError(f"pressure_band must be (low, high) with 0 < low < high, got {pressure_band}")
    return low, high


FIRE_CHUNK = 50_000


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


def relax(packing: Packing, law: ContactLaw, *, force_tol: float, max_steps: int, backend: str,
          relaxer: str = "fire", kinetic_tol: float = 1e-18, damping: float = 0.5,
          unjammed_pressure: float | None = None) -> _Relaxed:
    """Relax ``packing`` to mechanical equilibrium and measure it; raise if it does not converge.

    ``relaxer="fire"`` uses :func:`granular.simulate.fire_minimize` (in chunks of FIRE_CHUNK steps
    when ``unjammed_pressure`` is given, so that an unjammed state can be certified, see below,
    without waiting for its slow power-law drain of the last overlaps); ``"damped"`` runs damped
    dynamics (:func:`granular.simulate.run_md`) in chunks until max |F| <= force_tol and the
    kinetic energy per particle <= kinetic_tol, or until it is certified unjammed: damped dynamics
    never raises the total energy E, and every overlap obeys k xi^2 / 2 <= E, so the pressure can
    never exceed sqrt(2 M E k) d_max / (3 V) with M <= 6 N contacts; once that bound is below
    ``unjammed_pressure`` the state is unjammed whatever the remaining motion. FIRE also only
    lowers the energy (an uphill step is undone), so the same certificate applies to it.
    """
    from granular.measure import contacts, pressure
    from granular.simulate import fire_minimize

    if relaxer == "fire":
        out, steps = packing, 0
        while True:
            chunk = min(FIRE_CHUNK, max_steps - steps) if unjammed_pressure is not None else max_steps
            res = fire_minimize(out, law, force_tol=force_tol, max_steps=chunk, backend=backend)
            out, steps = res.packing, steps + int(res.steps)
            if res.converged or (unjammed_pressure is not None
                                 and pressure_bound(out, res.energy, law) < unjammed_pressure):
                break
            if steps >= max_steps:
                raise RuntimeError(
                    f"FIRE did not converge in {steps} steps (max |F| = {res.max_force:.3g} > "
                    f"force_tol = {force_tol:.3g}) at phi = {packing.packing_fraction:.6f}; raise max_steps")
    elif relaxer == "damped":
        out, steps = _relax_damped(packing, law, force_tol=force_tol, kinetic_tol=kinetic_tol,
                                   damping=damping, max_steps=max_steps, backend=backend,
                                   unjammed_pressure=unjammed_pressure)
    else:
        raise ValueError(f"relaxer must be 'fire' or 'damped', got {relaxer!r}")
    split = pressure(out, law, backend=backend)
    n_contacts = contacts(out, law, backend=backend).i.size
    return _Relaxed(out, float(split.total), (float(split.ss), float(split.sl), float(split.ll)),
                    2.0 * n_contacts / out.n, steps)


def _relax_damped(packing, law, *, force_tol, kinetic_tol, damping, max_steps, backend, unjammed_pressure,
                  damped_steps=20000):
    """Damped dynamics for up to ``damped_steps`` steps, then FIRE to the same force criterion.

    Near phi_J the slowest modes of damped dynamics creep (overdamped rate ~ lambda_min / damping),
    so damped dynamics alone needs millions of steps there; FIRE finishes the same minimum.
    """
    from granular.simulate import fire_minimize, run_md

    current = packing.copy()
    current.velocity[:] = 0.0
    chunk = 2000
    steps = 0
    while steps < min(damped_steps, max_steps):
        res = run_md(current, law, steps=chunk, damping=damping, backend=backend)
        current = res.packing
        steps += chunk
        kinetic = res.kinetic_energy / current.n
        force = res.force if res.force is not None else spring_forces(current, law, backend=backend)
        max_force = float(np.max(np.linalg.norm(force, axis=1)))
        if max_force <= force_tol and kinetic <= kinetic_tol:
            return current, steps
        if (unjammed_pressure is not None and pressure_bound(
                current, res.kinetic_energy + res.potential_energy, law) < unjammed_pressure):
            return current, steps
    res = fire_minimize(current, law, force_tol=force_tol, max_steps=max_steps, backend=backend)
    if not res.converged:
        raise RuntimeError(
            f"relaxation did not converge in {steps} damped + {res.steps} FIRE steps (max |F| = "
            f"{res.max_force:.3g} > force_tol = {force_tol:.3g}) at phi = {packing.packing_fraction:.6f}")
    return res.packing, steps + int(res.steps)


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
    method : {"bisection", "compress"}
        FIRE-relaxed bisection or compression-decompression with damped dynamics.
    pressure_band : (float, float)
        Target pressure band (units k_n / d_L); a state below its lower end counts as unjammed.
    phi_step : float
        Compression step in packing fraction before jamming is bracketed, in (0, 0.1].
    phi_tol : float
        Stop when the bracket is narrower than this (bisection).
    force_tol : float
        Convergence of each relaxation, max |F_i| in units of k_n d_L (scaled by law.k_n).
    max_steps : int
        Step cap of one relaxation; reaching it is an error, not a result.
    max_relaxations : int
        Cap on the number of relaxed states.
    decompress_from, decompress_step : float
        ``method="compress"``: pressure at which compression turns into decompression, and the
        decompression step in packing fraction.
    damping : float
        Background viscous damping of the damped dynamics (``method="compress"``).
    backend : {"auto", "cpu", "cuda"}
    progress : bool
        Show a tqdm progress bar.

    Returns
    -------
    JammingResult
    """
    from granular.backend import resolve_backend

    law = ContactLaw() if law is None else law
    p_low, p_high = check_pressure_band(pressure_band)
    p_low, p_high = p_low * law.k_n, p_high * law.k_n
    if method not in ("bisection", "compress"):
        raise ValueError(f"method must be 'bisection' or 'compress', got {method!r}")
    if not (np.isfinite(phi_step) and 0 < phi_step <= 0.1):
        raise ValueError(f"phi_step must be in (0, 0.1], got {phi_step}")
    if not (np.isfinite(phi_tol) and 0 < phi_tol < phi_step):
        raise ValueError(f"phi_tol must be in (0, phi_step), got {phi_tol}")
    if not (np.isfinite(force_tol) and force_tol > 0):
        raise ValueError(f"force_tol must be > 0, got {force_tol}")
    backend = resolve_backend(backend)
    tol = force_tol * law.k_n
    history = {key: [] for key in JAMMING_HISTORY_KEYS}
    bar = _progress_bar(progress, method)

    def evaluate(p: Packing, relaxer: str = "fire") -> _Relaxed:
        if len(history["phi"]) >= max_relaxations:
            raise RuntimeError(f"no jamming point after {max_relaxations} relaxations (max_relaxations)")
        r = relax(p, law, force_tol=tol, max_steps=max_steps, backend=backend, relaxer=relaxer,
                  damping=damping, unjammed_pressure=p_low)
        for key, value in zip(JAMMING_HISTORY_KEYS, (r.packing.packing_fraction, r.pressure, *r.split, r.z,
                                              r.steps)):
            history[key].append(value)
        if bar is not None:
            bar.update(1)
            bar.set_postfix(phi=f"{r.packing.packing_fraction:.6f}", P=f"{r.pressure:.3g}")
        return r

    try:
        if method == "bisection":
            result = _bisection(packing, evaluate, p_low, p_high, phi_step, phi_tol)
        else:
            result = _compress_decompress(packing, evaluate, p_low, decompress_from * law.k_n,
                                          phi_step, decompress_step)
    finally:
        if bar is not None:
            bar.close()
    phi_j, phi_low, phi_high, criterion, state = result
    return JammingResult(
        phi_j=float(phi_j), phi_low=float(phi_low), phi_high=float(phi_high), criterion=criterion,
        method=method, packing=state.packing, pressure=state.pressure,
        history={k: np.asarray(v) for k, v in history.items()}, backend=backend,
    )


def _progress_bar(progress: bool, method: str):
    if not progress:
        return None
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
