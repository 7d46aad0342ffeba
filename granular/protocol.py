"""Whole runs that end in a packing file: jam a new packing, optionally compress it above phi_J.

:func:`jam_run` is what ``jamwave granular jam`` and every point of the jamming diagram execute:
generate a random packing (``make_packing`` at phi = 0.3), find phi_J (:func:`find_jamming`),
optionally compress to phi_J + ``excess_phi`` and relax, measure the pressure split and the
backbone, and write one H5MD file (:mod:`granular.h5md`) with the protocol history in
``/observables``, every input in ``/parameters/jamwave`` and the results in ``/jamwave/results``.
Inputs are checked before any work, so bad input leaves no file behind.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict
from pathlib import Path

import numpy as np

from granular.backend import resolve_engine
from granular.contact import ContactLaw
from granular.generate import make_packing, species_counts

MIN_BOX_EDGE = 2.1  # two large diameters plus a skin: the minimum-image convention at phi ~ 0.85
RESULT_KEYS = ("phi_J", "phi_J_low", "phi_J_high", "phi", "pressure", "pressure_SS", "pressure_SL",
               "pressure_LL", "Z_backbone", "jammed_fraction_small", "jammed_fraction_large", "n_small",
               "n_large", "delta", "x_small", "k_n", "box_length")


def check_run_inputs(delta: float, x_small: float, *, n: int | None, n_large: int | None,
                     excess_phi: float = 0.0) -> tuple[int, int]:
    """Validate the inputs of a run and return (N_L, N_S); raise ValueError naming the parameter."""
    if not (isinstance(delta, (int, float)) and math.isfinite(delta) and 0 < delta <= 1):
        raise ValueError(f"delta must be in (0, 1], got {delta}")
    if not (isinstance(x_small, (int, float)) and math.isfinite(x_small) and 0 <= x_small < 1):
        raise ValueError(f"x_small must be in [0, 1), got {x_small}")
    if (n is None) == (n_large is None):
        raise ValueError("give exactly one of n and n_large")
    if not (math.isfinite(excess_phi) and 0 <= excess_phi <= 0.2):
        raise ValueError(f"excess_phi must be in [0, 0.2], got {excess_phi}")
    n_l, n_s = species_counts(delta, x_small, n=n, n_large=n_large)
    solid = (math.pi / 6.0) * (n_l + n_s * delta**3)
    edge = (solid / 0.85) ** (1.0 / 3.0)
    if edge < MIN_BOX_EDGE:
        name = "n" if n is not None else "n_large"
        raise ValueError(
            f"{name} is too small: {n_l} large and {n_s} small particles give a box edge of {edge:.3g} "
            f"d_L at phi = 0.85, below {MIN_BOX_EDGE} (two large diameters plus a skin)")
    return n_l, n_s


def results_of(packing, law: ContactLaw, *, phi_j: float, phi_low: float, phi_high: float,
               backend="auto", phi_j_error: float = float("nan")) -> dict:
    """The scalar results of a relaxed packing (keys RESULT_KEYS, and ``phi_J_error``: the standard
    error of phi_J from the ladder's fit, NaN for the other methods), measured on ``backend``."""
    from granular.measure import backbone, pressure

    split = pressure(packing, law, backend=backend)
    bb = backbone(packing, law, backend=backend)
    return {
        "phi_J": float(phi_j), "phi_J_low": float(phi_low), "phi_J_high": float(phi_high),
        "phi": packing.packing_fraction, "pressure": split.total, "pressure_SS": split.ss,
        "pressure_SL": split.sl, "pressure_LL": split.ll, "Z_backbone": bb.z_backbone,
        "jammed_fraction_small": bb.jammed_fraction_small,
        "jammed_fraction_large": bb.jammed_fraction_large, "n_small": packing.n_small,
        "n_large": packing.n_large, "delta": packing.delta, "x_small": packing.x_small,
        "k_n": law.k_n, "box_length": float(packing.box[0]), "n_rattlers": bb.n_rattlers,
        "phi_J_error": float(phi_j_error),
    }


def jam_run(
    delta: float,
    x_small: float,
    *,
    n: int | None = None, n_large: int | None = None,
    seed: int = 0,
    out: str | os.PathLike | None = None,
    method: str = "bisection",
    minimizer: str = "fire",
    excess_phi: float = 0.0,
    law: ContactLaw | None = None,
    phi_start: float = 0.3,
    pressure_band: tuple[float, float] = (1e-6, 2e-6),
    phi_step: float = 1e-2,
    force_tol: float = 1e-12,
    max_steps: int = 10**6,
    backend: str = "auto",
    overwrite: bool = False,
    progress: bool = False,
):
    """Jam a random bidisperse packing and write it to ``out`` (if given).

    Parameters
    ----------
    delta, x_small : float
        Size ratio r_S / r_L in (0, 1] and target volume fraction of small particles in [0, 1).
    n, n_large : int
        Total number of particles or number of large ones (exactly one).
    seed : int
        Seed of the random initial packing.
    out : path-like, optional
        H5MD file to write (atomically; an existing file needs ``overwrite``).
    method : {"bisection", "compress", "ladder", "enthalpy"}
        See :func:`granular.jamming.find_jamming` (ladder and enthalpy with their default settings).
    excess_phi : float
        After jamming, compress to phi_J + excess_phi and relax (0: keep the packing at phi_J).
    law : ContactLaw, optional
    phi_start, pressure_band, phi_step, force_tol, max_steps, backend, minimizer
        Passed on to :func:`make_packing` and :func:`find_jamming`.
    overwrite, progress : bool

    Returns
    -------
    (results, packing, jamming) : dict, Packing, JammingResult
    """
    from granular.h5md import write_packing
    from granular.jamming import compress_to, find_jamming, spring_forces
    from jamcommon import __version__
    from jamcommon.files import check_writable

    law, engine = ContactLaw() if law is None else law, resolve_engine(backend)
    check_run_inputs(delta, x_small, n=n, n_large=n_large, excess_phi=excess_phi)
    if out is not None:
        check_writable(out, overwrite=overwrite)
    start = make_packing(delta, x_small, n=n, n_large=n_large, phi=phi_start, seed=seed)
    jam = find_jamming(start, law, method=method, pressure_band=pressure_band, phi_step=phi_step,
                       force_tol=force_tol, max_steps=max_steps, backend=engine, progress=progress,
                       minimizer=minimizer)
    state = jam.packing
    history = {key: list(value) for key, value in jam.history.items()}
    if excess_phi > 0:
        state = compress_to(state, jam.phi_j + excess_phi, law, force_tol=force_tol, max_steps=max_steps,
                            backend=engine)
    results = results_of(state, law, phi_j=jam.phi_j, phi_low=jam.phi_low, phi_high=jam.phi_high,
                         backend=engine, phi_j_error=jam.phi_j_error)
    if excess_phi > 0:
        _append_compressed_state(history, results)
    if out is not None:
        parameters = {
            "delta": float(delta), "x_small": float(x_small), "n": n, "n_large": n_large,
            "seed": int(seed), "method": method, "minimizer": minimizer, "excess_phi": float(excess_phi),
            "law": asdict(law),
            "phi_start": float(phi_start), "pressure_band": np.asarray(pressure_band, dtype=float),
            "phi_step": float(phi_step), "force_tol": float(force_tol), **engine.record(),
            "version": __version__, "criterion": jam.criterion, **_ladder_parameters(method),
        }
        write_packing(out, state, force=spring_forces(state, law, backend=engine),
                      observables={k: np.asarray(v, dtype=float) for k, v in history.items()},
                      parameters=parameters, results=results, overwrite=overwrite)
    return results, state, jam


def _append_compressed_state(history: dict, results: dict) -> None:
    """Add the state compressed past phi_J (``excess_phi``) to the relaxation history as its last row
    (no contact number or step count of its own: NaN and 0)."""
    for key in ("phi", "pressure", "pressure_SS", "pressure_SL", "pressure_LL"):
        history[key].append(results[key])
    history["Z"].append(float("nan"))
    history["steps"].append(0)


def _ladder_parameters(method: str) -> dict:
    """The default settings of ``method="ladder"`` or ``"enthalpy"`` (pressures, landing flag; the
    enthalpy's approach and box parameters), for a run's parameters."""
    if method == "ladder":
        from granular.pressure_ladder import LadderSettings

        settings = LadderSettings()
    elif method == "enthalpy":
        from granular.enthalpy_ladder import EnthalpySettings

        settings = EnthalpySettings()
    else:
        return {}
    out = {"ladder_pressures": np.asarray(settings.pressures, dtype=float), "ladder_land": settings.land}
    if method == "enthalpy":
        out.update(enthalpy_approach=settings.approach, **{f"enthalpy_{k}": float(v)
                                                           for k, v in asdict(settings.box).items()})
    return out


def summary(results: dict, path: str | os.PathLike | None = None) -> str:
    """A one-screen text summary of a run's results."""
    lines = []
    if path is not None:
        lines.append(f"packing file      {Path(path)}")
    r = results
    lines += [
        f"particles         {int(r['n_large'])} large + {int(r['n_small'])} small, delta = {r['delta']:.4g}, "
        f"X_S = {r['x_small']:.4f} (realised)",
        f"jamming point     phi_J = {r['phi_J']:.6f}{_error_text(r)}  bracket [{r['phi_J_low']:.6f}, "
        f"{r['phi_J_high']:.6f}]",
        f"stored state      phi = {r['phi']:.6f}  box edge = {r['box_length']:.4f} d_L",
        f"pressure          P = {r['pressure']:.4e}  (SS {r['pressure_SS']:.3e}, SL {r['pressure_SL']:.3e}, "
        f"LL {r['pressure_LL']:.3e})  [k_n/d_L]",
        f"backbone          Z = {r['Z_backbone']:.4f}  jammed fraction small "
        f"{r['jammed_fraction_small']:.3f}, large {r['jammed_fraction_large']:.3f}",
    ]
    return "\n".join(lines)


def _error_text(results: dict) -> str:
    error = float(results.get("phi_J_error", float("nan")))
    return f" +- {error:.1e} (fit)" if math.isfinite(error) else ""
