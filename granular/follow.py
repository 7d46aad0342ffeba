"""State following above jamming: quasi-static compression and the second transition.

From a jammed packing, :func:`follow_compression` compresses in steps of ``phi_step`` (affine
rescaling of box and positions), relaxes each state with FIRE to convergence, and records along phi:
the pressure and its split P_SS, P_SL, P_LL, the backbone contact number, the jammed fractions of
small and large particles, and the bulk modulus with its split by linear response
(:func:`granular.elasticity.linear_response`, exact for each relaxed state and cheap).

The second transition (Petit, Kumar, Luding, Sperl): at small size ratio and X_S below X*_S the
first transition jams a backbone made mostly of large particles while most small ones rattle;
compressing further, the small particles join the backbone. :func:`second_transition` locates it
with the criterion stated in :data:`SECOND_TRANSITION_CRITERION`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from granular.contact import ContactLaw
from granular.space import Packing, scale_to_phi

SECOND_TRANSITION_THRESHOLD = 0.5
SECOND_TRANSITION_CRITERION = (
    "phi_J_second is the packing fraction at which the jammed (non-rattler) fraction of small "
    "particles first reaches 1/2 along quasi-static compression from phi_J, linearly interpolated "
    "between relaxed states; when it is already >= 1/2 at phi_J the two transitions coincide "
    "(phi_J_second = phi_J); NaN when it is not reached within the followed range or there are no "
    "small particles"
)
FOLLOW_KEYS = ("phi", "pressure", "pressure_SS", "pressure_SL", "pressure_LL", "Z_backbone",
               "jammed_fraction_small", "jammed_fraction_large", "K", "K_SS", "K_SL", "K_LL")


@dataclass
class FollowResult:
    """Outcome of :func:`follow_compression`.

    Attributes
    ----------
    history : dict of ndarray (T,)
        One entry per relaxed state, keys :data:`FOLLOW_KEYS` (K from linear response).
    phi_second : float
        Second transition (NaN if not found), see :data:`SECOND_TRANSITION_CRITERION`.
    criterion : str
        ``"coincident"``, ``"crossing"``, ``"not reached"`` or ``"no small particles"``.
    jump : float
        Largest increase of the jammed fraction of small particles between two successive states.
    packing : Packing
        The last relaxed state.
    """

    history: dict
    phi_second: float
    criterion: str
    jump: float
    packing: Packing


def second_transition(phi: np.ndarray, jammed_fraction_small: np.ndarray, *, n_small: int = 1,
                      threshold: float = SECOND_TRANSITION_THRESHOLD) -> tuple[float, str, float]:
    """Locate the second transition along a followed path.

    Parameters
    ----------
    phi : ndarray (T,)
        Increasing packing fractions of the relaxed states (phi[0] = phi_J).
    jammed_fraction_small : ndarray (T,)
        Fraction of small particles in the backbone at each state.
    n_small : int
        Number of small particles (0 gives ``"no small particles"``).
    threshold : float
        Jammed fraction of small particles that marks the transition, in (0, 1).

    Returns
    -------
    (phi_second, criterion, jump)
    """
    phi = np.asarray(phi, dtype=np.float64)
    fs = np.asarray(jammed_fraction_small, dtype=np.float64)
    if phi.shape != fs.shape or phi.size == 0:
        raise ValueError("phi and jammed_fraction_small must be non-empty arrays of the same shape")
    if not 0 < threshold < 1:
        raise ValueError(f"threshold must be in (0, 1), got {threshold}")
    jump = float(np.max(np.diff(fs))) if fs.size > 1 else 0.0
    if n_small == 0:
        return float("nan"), "no small particles", jump
    if fs[0] >= threshold:
        return float(phi[0]), "coincident", jump
    above = np.nonzero(fs >= threshold)[0]
    if above.size == 0:
        return float("nan"), "not reached", jump
    k = int(above[0])
    t = (threshold - fs[k - 1]) / (fs[k] - fs[k - 1])
    return float(phi[k - 1] + t * (phi[k] - phi[k - 1])), "crossing", jump


def measure_state(packing: Packing, law: ContactLaw, *, backend="auto") -> dict[str, float]:
    """Pressure split, backbone and linear-response moduli of a relaxed state (keys FOLLOW_KEYS),
    measured on ``backend`` (a name or a :class:`granular.backend.Engine`)."""
    from granular.elasticity import linear_response
    from granular.measure import backbone, pressure

    split = pressure(packing, law, backend=backend)
    bb = backbone(packing, law, backend=backend)
    nan = float("nan")
    if bb.z_backbone > 0:
        lr = linear_response(packing, law, backend=backend)
        moduli = (lr.K, lr.K_SS, lr.K_SL, lr.K_LL)
    else:
        moduli = (nan, nan, nan, nan)
    values = (packing.packing_fraction, split.total, split.ss, split.sl, split.ll, bb.z_backbone,
              bb.jammed_fraction_small, bb.jammed_fraction_large, *moduli)
    return dict(zip(FOLLOW_KEYS, (float(v) for v in values)))


def follow_compression(
    packing: Packing,
    law: ContactLaw | None = None,
    *,
    phi_step: float = 2e-3,
    phi_max: float | None = None,
    n_steps: int | None = None,
    stop_after_second: bool = False,
    force_tol: float = 1e-12,
    max_steps: int = 10**6,
    backend: str = "auto",
    progress: bool = False,
    minimizer: str = "fire",
) -> FollowResult:
    """Compress a jammed packing quasi-statically and record its state along phi.

    Parameters
    ----------
    packing : Packing
        Starting state, normally the relaxed packing at phi_J from :func:`find_jamming`.
    law : ContactLaw, optional
    phi_step : float
        Increment of packing fraction per step, in (0, 0.05].
    phi_max : float, optional
        Last packing fraction (inclusive, < 1); or give ``n_steps``.
    n_steps : int, optional
        Number of compression steps (default: enough to reach ``phi_max``).
    stop_after_second : bool
        Stop once the second transition has been crossed.
    force_tol, max_steps, backend, minimizer
        Relaxation settings (max |F_i| in k_n d_L; "fire" or "lbfgs", :func:`granular.minimize.relax`).
    progress : bool
        Show a tqdm bar.
    """
    from granular.backend import resolve_backend
    from granular.minimize import relax

    law = ContactLaw() if law is None else law
    if not (np.isfinite(phi_step) and 0 < phi_step <= 0.05):
        raise ValueError(f"phi_step must be in (0, 0.05], got {phi_step}")
    phi0 = packing.packing_fraction
    if n_steps is None:
        if phi_max is None:
            raise ValueError("give phi_max or n_steps")
        if not (np.isfinite(phi_max) and phi0 <= phi_max < 1):
            raise ValueError(f"phi_max must be in [phi of the packing = {phi0:.6f}, 1), got {phi_max}")
        n_steps = int(np.floor((phi_max - phi0) / phi_step + 1e-9))
    if int(n_steps) < 0:
        raise ValueError(f"n_steps must be >= 0, got {n_steps}")
    backend = resolve_backend(backend)
    tol = force_tol * law.k_n
    history = {key: [] for key in FOLLOW_KEYS}
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=int(n_steps) + 1, desc="following", unit="state")
    state = packing
    try:
        for k in range(int(n_steps) + 1):
            target = phi0 + k * phi_step
            start = state if k == 0 else scale_to_phi(state, target)
            state = relax(start, law, force_tol=tol, max_steps=max_steps, backend=backend,
                          relaxer=minimizer).packing
            for key, value in measure_state(state, law, backend=backend).items():
                history[key].append(value)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(phi=f"{target:.4f}", f_small=f"{history['jammed_fraction_small'][-1]:.2f}")
            if stop_after_second and (packing.n_small == 0
                                      or history["jammed_fraction_small"][-1] >= SECOND_TRANSITION_THRESHOLD):
                break
    finally:
        if bar is not None:
            bar.close()
    arrays = {key: np.asarray(v) for key, v in history.items()}
    phi2, criterion, jump = second_transition(arrays["phi"], arrays["jammed_fraction_small"],
                                              n_small=packing.n_small)
    return FollowResult(arrays, phi2, criterion, jump, state)
