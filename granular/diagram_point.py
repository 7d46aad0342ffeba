"""One point (delta, X_S, seed) of the jamming diagram: both transition lines and their moduli.

:func:`run_point` jams a random packing (:func:`granular.protocol.jam_run`, any
:func:`granular.jamming.find_jamming` method), follows it under quasi-static compression to the
second transition (:func:`granular.follow.follow_compression`), and measures the bulk modulus with
its split K_SS + K_SL + K_LL and the jammed fractions of both species at phi + ``excess_phi`` on
BOTH lines: just above the first transition (phi_J) and just above the second (phi_J_second). Where
the two transitions coincide the second-line values are those of the first (one measurement);
where the second is not reached within the followed range, or its measurement fails (recorded in
the parameter ``second_line_error``), they are NaN. Wall time per phase and the
FIRE step count of the jamming search are recorded, so a study can be costed from its points.

The point file is one H5MD packing (the state at phi_J + excess_phi) with ``/jamwave/results``,
``/jamwave/modulus`` (first line), ``/jamwave/modulus_second`` (second line), ``/jamwave/follow``
(the followed path) and ``/jamwave/timing``; it is written atomically and skipped if it exists.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

SECOND_LINE_KEYS = ("phi", "K_star", "K_SS", "K_SL", "K_LL", "jammed_fraction_small",
                    "jammed_fraction_large", "Z_backbone")


def point_name(delta: float, x_small: float, seed: int) -> str:
    return f"point_delta{delta:.4f}_xs{x_small:.4f}_seed{int(seed)}.h5"


def _moduli_star(modulus: dict, k_n: float) -> dict[str, float]:
    """K*, K*_SS, K*_SL, K*_LL (units k_n / d_L, d_L = 1) from a BulkModulus dict.

    Partial moduli come from the strain method, or from linear response when only that one ran.
    """
    prefix = "K_linear_response_" if math.isnan(modulus["K"]) else "K_"
    return {"K_star": float(modulus["K_star"]), "K_SS": modulus[prefix + "SS"] / k_n,
            "K_SL": modulus[prefix + "SL"] / k_n, "K_LL": modulus[prefix + "LL"] / k_n}


def second_line_state(follow, first_state, first_modulus: dict, settings, law, backend):
    """Modulus dict, line values and error text just above the second transition.

    The state is at phi_J_second + excess_phi, compressed from the last followed state (the first
    one past the second transition), or that followed state itself when it is already further
    (a follow step larger than excess_phi): never decompressed, so it stays jammed.

    Parameters
    ----------
    follow : granular.follow.FollowResult
        The followed path (stopped after the second transition).
    first_state : Packing
        The relaxed state at phi_J + excess_phi (used where the transitions coincide).
    first_modulus : dict
        Its :class:`granular.elasticity.BulkModulus` as a dict.
    settings : DiagramSettings
    law : ContactLaw
    backend : granular.backend.Engine or str

    Returns
    -------
    (modulus dict or None, values with keys SECOND_LINE_KEYS prefixed ``second_``, error str)
        Where the second transition is not reached, or its measurement fails (the error then
        names why), the values are NaN and the first line is kept.
    """
    from granular.elasticity import bulk_modulus
    from granular.jamming import compress_to
    from granular.measure import backbone

    nan_values = {f"second_{key}": float("nan") for key in SECOND_LINE_KEYS}
    if follow.criterion == "coincident":
        state, modulus = first_state, first_modulus
    elif follow.criterion == "crossing":
        target = max(follow.phi_second + settings.excess_phi, follow.packing.packing_fraction)
        try:
            state = compress_to(follow.packing, target, law, force_tol=settings.force_tol,
                                max_steps=settings.max_steps, backend=backend)
            modulus = bulk_modulus(state, law, strain=settings.strain, method=settings.modulus_method,
                                   force_tol=settings.force_tol * 0.1, max_steps=settings.max_steps,
                                   backend=backend).as_dict()
        except (ValueError, RuntimeError) as exc:
            return None, nan_values, repr(exc)
    else:
        return None, nan_values, ""
    bb = backbone(state, law, backend=backend)
    values = {"phi": state.packing_fraction, **_moduli_star(modulus, law.k_n),
              "jammed_fraction_small": bb.jammed_fraction_small,
              "jammed_fraction_large": bb.jammed_fraction_large, "Z_backbone": bb.z_backbone}
    return modulus, {f"second_{key}": float(values[key]) for key in SECOND_LINE_KEYS}, ""


def _point_results(jammed, state, jam, follow, law, engine) -> dict:
    """Scalar results of a point: the state at phi_J + excess_phi, and at phi_J itself."""
    from granular.protocol import results_of

    bracket = {"phi_j": jam.phi_j, "phi_low": jam.phi_low, "phi_high": jam.phi_high, "backend": engine}
    first = results_of(jammed, law, **bracket)
    results = results_of(state, law, **bracket)
    results.update({
        "phi_J_second": follow.phi_second,
        "jammed_fraction_small_at_phi_J": first["jammed_fraction_small"],
        "jammed_fraction_large_at_phi_J": first["jammed_fraction_large"],
        "Z_backbone_at_phi_J": first["Z_backbone"],
        "pressure_at_phi_J": first["pressure"],
        "second_transition_jump": follow.jump,
    })
    return results


def run_point(delta: float, x_small: float, seed: int, settings, path: str | os.PathLike) -> str:
    """Compute one point of the diagram and write its file; skip if the file exists.

    Parameters
    ----------
    delta, x_small : float
        Size ratio and volume fraction of small particles.
    seed : int
        Seed of the random initial packing.
    settings : granular.diagram.DiagramSettings
    path : path-like
        The point file.

    Returns
    -------
    str
        The path of the point file.
    """
    path = Path(path)
    if path.exists():
        return str(path)
    import numba

    from granular.backend import resolve_engine
    from granular.contact import ContactLaw
    from granular.elasticity import bulk_modulus
    from granular.follow import SECOND_TRANSITION_CRITERION, follow_compression
    from granular.h5md import write_packing
    from granular.jamming import compress_to, spring_forces
    from granular.protocol import jam_run
    from jamcommon import __version__

    threads = max(1, min(int(settings.threads), numba.config.NUMBA_NUM_THREADS)) if settings.threads else None
    engine = resolve_engine(settings.backend, threads)
    law = ContactLaw(k_n=settings.k_n)
    clock = [time.perf_counter()]

    def lap() -> float:
        clock.append(time.perf_counter())
        return clock[-1] - clock[-2]

    _, jammed, jam = jam_run(delta, x_small, n=settings.n, n_large=settings.n_large, seed=seed,
                             method=settings.method, minimizer=settings.minimizer, law=law,
                             force_tol=settings.force_tol,
                             max_steps=settings.max_steps, backend=engine)
    timing = {"jam_s": lap(), "jam_fire_steps": float(np.sum(jam.history.get("steps", [np.nan])))}
    follow = follow_compression(jammed, law, phi_step=settings.follow_step,
                                phi_max=min(jam.phi_j + settings.follow_range, 0.99),
                                stop_after_second=True, force_tol=settings.force_tol,
                                max_steps=settings.max_steps, backend=engine, minimizer=settings.minimizer)
    timing["follow_s"] = lap()
    state = compress_to(jammed, jam.phi_j + settings.excess_phi, law, force_tol=settings.force_tol,
                        max_steps=settings.max_steps, backend=engine)
    modulus = bulk_modulus(state, law, strain=settings.strain, method=settings.modulus_method,
                           force_tol=settings.force_tol * 0.1, max_steps=settings.max_steps,
                           backend=engine).as_dict()
    timing["modulus_first_s"] = lap()
    modulus_second, second, second_error = second_line_state(follow, state, modulus, settings, law, engine)
    timing["modulus_second_s"] = lap()
    timing["total_s"] = clock[-1] - clock[0]
    results = _point_results(jammed, state, jam, follow, law, engine)
    results.update(second)
    parameters = {"delta": delta, "x_small": x_small, "seed": int(seed), "settings": asdict(settings),
                  **engine.record(), "version": __version__, "jamming_criterion": jam.criterion,
                  "jamming_method": jam.method, "second_transition_criterion": SECOND_TRANSITION_CRITERION,
                  "second_transition_result": follow.criterion, "second_line_error": second_error}
    groups = {"modulus": modulus, "follow": follow.history, "timing": timing}
    if modulus_second is not None:
        groups["modulus_second"] = modulus_second
    write_packing(path, state, force=spring_forces(state, law, backend=engine),
                  observables={k: np.asarray(v, dtype=float) for k, v in jam.history.items()},
                  parameters=parameters, results=results, groups=groups)
    return str(path)


def failure_path(path: str | os.PathLike) -> Path:
    """The failure record beside a point file: ``<point>.failed.json``."""
    path = Path(path)
    return path.with_name(path.name + ".failed.json")


def read_failure(path: str | os.PathLike) -> dict | None:
    """The failure record of a point file (dict with kind, reason, time_limit, elapsed_s) or None."""
    import json

    record = failure_path(path)
    return json.loads(record.read_text()) if record.exists() else None


def _write_failure(path: Path, kind: str, reason: str, time_limit, elapsed: float) -> None:
    import json

    from jamcommon.files import atomic_write_text

    record = {"kind": kind, "reason": reason, "time_limit": time_limit, "elapsed_s": elapsed}
    atomic_write_text(failure_path(path), json.dumps(record, indent=1), overwrite=True)


def _child(conn, args) -> None:
    try:
        run_point(*args)
        conn.send(None)
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, which records it
        conn.send(repr(exc))
    finally:
        conn.close()


def run_point_capped(delta: float, x_small: float, seed: int, settings, path: str | os.PathLike,
                     time_limit: float | None = None) -> str:
    """:func:`run_point` with an optional wall-time cap; a failure is recorded beside the point.

    With ``time_limit`` (seconds) the point runs in a child process (``spawn``) that is killed when
    the limit passes: a slow point then costs at most ``time_limit`` and is recorded as failed
    (kind ``"timeout"``) instead of blocking its worker. A point that raises is recorded with kind
    ``"error"``. The record is ``<point>.failed.json`` (see :func:`read_failure`); the exception
    (RuntimeError for a timeout) is raised again so the sweep counts the failure.

    A capped point needs a worker that may start processes: local process pools can; Dask workers
    are daemonic unless configured with ``distributed.worker.daemon: False``.
    """
    import multiprocessing

    path = Path(path)
    if path.exists():
        return str(path)
    start = time.perf_counter()
    if time_limit is None:
        try:
            done = run_point(delta, x_small, seed, settings, path)
            failure_path(path).unlink(missing_ok=True)
            return done
        except Exception as exc:
            _write_failure(path, "error", repr(exc), None, time.perf_counter() - start)
            raise
    if not (math.isfinite(time_limit) and time_limit > 0):
        raise ValueError(f"time_limit must be > 0 seconds, got {time_limit}")
    if multiprocessing.current_process().daemon:
        raise RuntimeError("a time-capped point needs a non-daemonic worker (Dask: set the config "
                           "distributed.worker.daemon to False, or run without a time limit)")
    ctx = multiprocessing.get_context("spawn")
    receive, send = ctx.Pipe(duplex=False)
    child = ctx.Process(target=_child, args=(send, (delta, x_small, seed, settings, str(path))))
    child.start()
    send.close()
    child.join(time_limit)
    elapsed = time.perf_counter() - start
    if child.is_alive():
        child.kill()
        child.join()
        reason = f"time limit of {time_limit:g} s reached"
        _write_failure(path, "timeout", reason, time_limit, elapsed)
        raise RuntimeError(reason)
    error = receive.recv() if receive.poll() else f"worker process exited with code {child.exitcode}"
    if error is not None:
        _write_failure(path, "error", error, time_limit, elapsed)
        raise RuntimeError(error)
    failure_path(path).unlink(missing_ok=True)  # a retried point leaves no stale record
    return str(path)
