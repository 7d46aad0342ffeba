"""The jamming diagram over (delta, X_S, seed): phi_J of both transitions, K*, partial moduli.

Each point (delta, X_S, seed) is an idempotent task (:func:`run_point`): jam a random packing
(:func:`granular.protocol.jam_run`), follow it under compression to find the second transition
(:func:`granular.follow.follow_compression`), measure the bulk modulus at phi_J + ``excess_phi``
(:func:`granular.elasticity.bulk_modulus`), and write one H5MD file atomically. A point whose file
exists is skipped, so a killed sweep resumes where it stopped. Tasks run on a
``concurrent.futures.Executor``: local processes by default, or a Dask cluster (``client=`` or
``scheduler=`` address). :func:`combine` gathers the point files into ``diagram.h5`` (axes delta,
x_small, seed; means and standard errors over seeds) and :func:`plot_diagram` draws ``diagram.png``.
Both are rebuilt from the point files on every run.
"""

from __future__ import annotations

import math
import os
from concurrent.futures import Executor, ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from pathlib import Path

import h5py
import numpy as np

from jamcommon.files import atomic_path

TABLE_KEYS = ("phi_J", "phi_J_second", "K_star", "K_SS", "K_SL", "K_LL", "K_linear_response",
              "jammed_fraction_small", "jammed_fraction_large", "Z_backbone", "x_small_realised", "n_small",
              "n_large")


@dataclass(frozen=True)
class DiagramSettings:
    """Protocol settings shared by every point of a sweep (see :func:`run_point`).

    Attributes
    ----------
    n_large, n : int
        Number of large particles (or total number; exactly one).
    method : str
        Jamming method, ``"bisection"`` or ``"compress"``.
    excess_phi : float
        The modulus is measured at phi_J + excess_phi.
    follow_step, follow_range : float
        State following from phi_J in steps of ``follow_step`` up to phi_J + ``follow_range``
        (stopping once the second transition is crossed).
    strain : float
        Volumetric strain of the strain method.
    modulus_method : str
        ``"both"``, ``"strain"`` or ``"linear_response"``.
    k_n : float
        Contact stiffness.
    force_tol : float
        FIRE convergence (max |F| in units k_n d_L).
    max_steps : int
        Step cap of one relaxation (strong size asymmetry needs more: the time step follows the
        small spheres, the slow modes the large ones).
    backend : str
        ``"auto"``, ``"cpu"`` or ``"cuda"``.
    threads : int
        Numba threads per task (1 when several tasks share the cores).
    """

    n_large: int | None = 50
    n: int | None = None
    method: str = "bisection"
    excess_phi: float = 5e-3
    follow_step: float = 5e-3
    follow_range: float = 0.1
    strain: float = 1e-5
    modulus_method: str = "both"
    k_n: float = 1.0
    force_tol: float = 1e-12
    max_steps: int = 10**7
    backend: str = "auto"
    threads: int = 1


def point_name(delta: float, x_small: float, seed: int) -> str:
    return f"point_delta{delta:.4f}_xs{x_small:.4f}_seed{int(seed)}.h5"


def check_grid(deltas, x_small_values, seeds) -> tuple[list[float], list[float], list[int]]:
    """Validate a diagram grid; raise ValueError naming the empty or out-of-range axis."""
    deltas = [float(d) for d in np.atleast_1d(deltas)]
    xs = [float(x) for x in np.atleast_1d(x_small_values)]
    seeds = list(range(int(seeds))) if np.ndim(seeds) == 0 else [int(s) for s in seeds]
    for name, values in (("deltas", deltas), ("x_small_values", xs), ("seeds", seeds)):
        if len(values) == 0:
            raise ValueError(f"the diagram grid is empty: {name} has no values")
        if len(set(values)) != len(values):
            raise ValueError(f"{name} has repeated values: {values}")
    if not all(math.isfinite(d) and 0 < d <= 1 for d in deltas):
        raise ValueError(f"deltas must be in (0, 1], got {deltas}")
    if not all(math.isfinite(x) and 0 <= x < 1 for x in xs):
        raise ValueError(f"x_small_values must be in [0, 1), got {xs}")
    if any(s < 0 for s in seeds):
        raise ValueError(f"seeds must be >= 0, got {seeds}")
    return sorted(deltas), sorted(xs), seeds


def run_point(delta: float, x_small: float, seed: int, settings: DiagramSettings,
              path: str | os.PathLike) -> str:
    """Compute one point of the diagram and write its file; skip if the file exists.

    Returns the path of the point file. The file holds the packing at phi_J + excess_phi with
    ``/jamwave/results`` (jamming and the second transition), ``/jamwave/modulus`` and
    ``/jamwave/follow`` (the followed path).
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
    from granular.protocol import jam_run, results_of
    from jamcommon import __version__

    threads = max(1, min(int(settings.threads), numba.config.NUMBA_NUM_THREADS)) if settings.threads else None
    engine = resolve_engine(settings.backend, threads)
    law = ContactLaw(k_n=settings.k_n)
    _, jammed, jam = jam_run(delta, x_small, n=settings.n, n_large=settings.n_large, seed=seed,
                             method=settings.method, law=law, force_tol=settings.force_tol,
                             max_steps=settings.max_steps, backend=engine)
    follow = follow_compression(jammed, law, phi_step=settings.follow_step,
                                phi_max=min(jam.phi_j + settings.follow_range, 0.99),
                                stop_after_second=True, force_tol=settings.force_tol,
                                max_steps=settings.max_steps, backend=engine)
    state = compress_to(jammed, jam.phi_j + settings.excess_phi, law, force_tol=settings.force_tol,
                        max_steps=settings.max_steps, backend=engine)
    modulus = bulk_modulus(state, law, strain=settings.strain, method=settings.modulus_method,
                           force_tol=settings.force_tol * 0.1, max_steps=settings.max_steps,
                           backend=engine)
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
    parameters = {"delta": delta, "x_small": x_small, "seed": int(seed), "settings": asdict(settings),
                  **engine.record(), "version": __version__, "jamming_criterion": jam.criterion,
                  "second_transition_criterion": SECOND_TRANSITION_CRITERION,
                  "second_transition_result": follow.criterion}
    write_packing(path, state, force=spring_forces(state, law, backend=engine),
                  observables={k: np.asarray(v, dtype=float) for k, v in jam.history.items()},
                  parameters=parameters, results=results,
                  groups={"modulus": modulus.as_dict(), "follow": follow.history})
    return str(path)


def _executor(executor, client, scheduler, workers):
    """(executor, closer) for the sweep; closer releases what this module created."""
    if executor is not None:
        return executor, None
    if scheduler is not None and client is None:
        from distributed import Client

        client = Client(scheduler)
        return client.get_executor(), client.close
    if client is not None:
        return client.get_executor(), None
    import multiprocessing

    pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))
    return pool, pool.shutdown


def jamming_diagram(
    deltas,
    x_small_values,
    seeds,
    out_dir: str | os.PathLike,
    settings: DiagramSettings | None = None,
    *,
    executor: Executor | None = None,
    client=None,
    scheduler: str | None = None,
    workers: int | None = None,
    force: bool = False,
    progress: bool = False,
) -> Path:
    """Run (or resume) a jamming-diagram sweep and write ``diagram.h5`` and ``diagram.png``.

    Parameters
    ----------
    deltas : sequence of float
        Size ratios in (0, 1].
    x_small_values : sequence of float
        Volume fractions of small particles in [0, 1).
    seeds : int or sequence of int
        Seeds per point (an int n means 0..n-1).
    out_dir : path-like
        Folder of the point files and the combined table.
    settings : DiagramSettings, optional
    executor : concurrent.futures.Executor, optional
        Runs the tasks; default a local process pool (``workers`` processes).
    client : dask.distributed.Client, optional
        Run on this Dask cluster (``client.get_executor()``).
    scheduler : str, optional
        Address of a Dask scheduler to connect to.
    workers : int, optional
        Local worker processes (default: all cores).
    force : bool
        Recompute points whose files exist.
    progress : bool
        tqdm bar over the points.

    Returns
    -------
    pathlib.Path
        The combined ``diagram.h5``.
    """
    settings = DiagramSettings() if settings is None else settings
    deltas, xs, seeds = check_grid(deltas, x_small_values, seeds)
    from granular.protocol import check_run_inputs

    for d in deltas:
        for x in xs:
            check_run_inputs(d, x, n=settings.n, n_large=settings.n_large, excess_phi=settings.excess_phi)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    jobs = [(d, x, s, out_dir / point_name(d, x, s)) for d in deltas for x in xs for s in seeds]
    todo = _pending(jobs, force)
    failures = []
    if todo:
        pool, close = _executor(executor, client, scheduler, workers)
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(jobs), initial=len(jobs) - len(todo), desc="diagram", unit="point")
        try:
            futures = {pool.submit(run_point, d, x, s, settings, str(p)): (d, x, s) for d, x, s, p in todo}
            for future in as_completed(futures):
                try:
                    future.result()
                except Exception as exc:  # noqa: BLE001 - one failed point must not stop the sweep
                    failures.append((futures[future], repr(exc)))
                if bar is not None:
                    bar.update(1)
        finally:
            if bar is not None:
                bar.close()
            if close is not None:
                close()
    table = combine(out_dir, deltas, xs, seeds)
    plot_diagram(table)
    if failures:
        listed = "; ".join(f"(delta={d}, x_small={x}, seed={s}): {err}" for (d, x, s), err in failures)
        raise RuntimeError(f"{len(failures)} of {len(jobs)} points failed (rerun to retry them): {listed}")
    return table


def _pending(jobs: list, force: bool) -> list:
    """The jobs whose point file is missing (all of them with ``force``, whose files are removed).

    An existing file is read first, so a damaged or foreign file under a point's name stops the
    sweep before any work, with its name (:func:`_point_values`).
    """
    for *_, path in jobs:
        if force:
            path.unlink(missing_ok=True)
        elif path.exists():
            _point_values(path)
    return [job for job in jobs if not job[3].exists()]


def _point_values(path: Path) -> dict[str, float]:
    """The table entries of one finished point file.

    Raises
    ------
    granular.h5md.PackingFileError
        (a ``ValueError``) if the file is unreadable or lacks a result, naming it and the way out.
    """
    from granular.h5md import PackingFileError, read_group

    try:
        results = read_group(path, "results")
        modulus = read_group(path, "modulus")
        return _entries(results, modulus)
    except (PackingFileError, KeyError, TypeError) as exc:
        reason = str(exc) if isinstance(exc, PackingFileError) else f"lacks the result {exc}"
        raise PackingFileError(f"point file {str(path)!r} is not a finished diagram point ({reason}); "
                               f"delete it, or pass --force to recompute every point") from None


def _entries(results: dict, modulus: dict) -> dict[str, float]:
    k_n, d_l = results["k_n"], 1.0
    # partial moduli from the strain method, or from linear response when only that one ran
    prefix = "K_linear_response_" if math.isnan(modulus["K"]) else "K_"
    return {
        "phi_J": results["phi_J"], "phi_J_second": results["phi_J_second"], "K_star": modulus["K_star"],
        "K_SS": modulus[prefix + "SS"] * d_l / k_n, "K_SL": modulus[prefix + "SL"] * d_l / k_n,
        "K_LL": modulus[prefix + "LL"] * d_l / k_n,
        "K_linear_response": modulus["K_linear_response"] * d_l / k_n,
        "jammed_fraction_small": results["jammed_fraction_small_at_phi_J"],
        "jammed_fraction_large": results["jammed_fraction_large_at_phi_J"],
        "Z_backbone": results["Z_backbone_at_phi_J"], "x_small_realised": results["x_small"],
        "n_small": results["n_small"], "n_large": results["n_large"],
    }


def combine(out_dir: str | os.PathLike, deltas, xs, seeds) -> Path:
    """Gather the point files into ``out_dir/diagram.h5``; missing points are NaN.

    Datasets of shape (n_delta, n_x_small, n_seed) for every key of :data:`TABLE_KEYS`, with
    ``<key>_mean`` and ``<key>_sem`` (standard error over seeds, NaN with fewer than two) of shape
    (n_delta, n_x_small); axes ``delta``, ``x_small``, ``seed`` attached as HDF5 dimension scales.
    Moduli are dimensionless (K d_L / k_n); jammed fractions and Z are taken at phi_J.
    """
    out_dir = Path(out_dir)
    shape = (len(deltas), len(xs), len(seeds))
    data = {key: np.full(shape, np.nan) for key in TABLE_KEYS}
    for a, d in enumerate(deltas):
        for b, x in enumerate(xs):
            for c, s in enumerate(seeds):
                path = out_dir / point_name(d, x, s)
                if path.exists():
                    for key, value in _point_values(path).items():
                        data[key][a, b, c] = value
    target = out_dir / "diagram.h5"
    with atomic_path(target, overwrite=True) as tmp:
        with h5py.File(tmp, "w") as f:
            f.attrs["schema"] = "jamwave.jamming_diagram/1"
            f.attrs["dims"] = np.array(["delta", "x_small", "seed"], dtype=h5py.string_dtype())
            axes = {"delta": np.asarray(deltas, float), "x_small": np.asarray(xs, float),
                    "seed": np.asarray(seeds, np.int64)}
            for name, values in axes.items():
                f.create_dataset(name, data=values)
                f[name].make_scale(name)
            for key, values in data.items():
                f.create_dataset(key, data=values)
                count = np.sum(np.isfinite(values), axis=2)
                with np.errstate(invalid="ignore", divide="ignore"):
                    mean = np.where(count > 0, np.nansum(values, axis=2) / np.maximum(count, 1), np.nan)
                    dev = np.where(np.isfinite(values), values - mean[..., None], 0.0)
                    var = np.sum(dev**2, axis=2) / np.maximum(count - 1, 1)
                    sem = np.where(count > 1, np.sqrt(var / np.maximum(count, 1)), np.nan)
                f.create_dataset(f"{key}_mean", data=mean)
                f.create_dataset(f"{key}_sem", data=sem)
                for axis, name in enumerate(("delta", "x_small", "seed")):
                    f[key].dims[axis].attach_scale(f[name])
                for axis, name in enumerate(("delta", "x_small")):
                    f[f"{key}_mean"].dims[axis].attach_scale(f[name])
                    f[f"{key}_sem"].dims[axis].attach_scale(f[name])
    return target


def read_diagram(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """All datasets of a ``diagram.h5`` as arrays."""
    with h5py.File(path, "r") as f:
        return {name: np.array(f[name]) for name in f}


def transition_crossover(x: np.ndarray, phi_j: np.ndarray, f_small: np.ndarray,
                         phi_j_second: np.ndarray | None = None, separate: float = 1e-3) -> dict:
    """Where the first and second transition lines meet, estimated three ways.

    Parameters
    ----------
    x, phi_j, f_small : ndarray, shape (B,)
        X_S values (increasing), mean phi_J of the first transition, mean jammed fraction of the
        small particles at it (NaN where a point failed).
    phi_j_second : ndarray, shape (B,), optional
        Mean phi_J of the second transition (equal to ``phi_j`` where they coincide).
    separate : float
        The two lines count as distinct where phi_J_second - phi_J > ``separate``.

    Returns
    -------
    dict
        ``x_at_max_phi_J`` (X_S of the largest phi_J), ``x_transitions_meet`` (first X_S where at
        least half of the small particles jam at the first transition) and its linear
        interpolation, and, from the points where the lines are distinct, the intersection of
        straight-line fits of phi_J(X_S) and phi_J_second(X_S) (``x_lines_meet``, ``phi_lines_meet``;
        a two-point line through the two largest such X_S).
    """
    ok = np.isfinite(phi_j)
    out = {"x_at_max_phi_J": float(x[ok][np.argmax(phi_j[ok])]) if ok.any() else float("nan")}
    measured = np.isfinite(f_small)
    x_f, f_f = x[measured], f_small[measured]
    joined = np.nonzero(f_f >= 0.5)[0]
    out["x_transitions_meet"] = float(x_f[joined[0]]) if joined.size else float("nan")
    if joined.size and joined[0] > 0:
        k = joined[0]
        t = (0.5 - f_f[k - 1]) / (f_f[k] - f_f[k - 1])
        out["x_transitions_meet_interpolated"] = float(x_f[k - 1] + t * (x_f[k] - x_f[k - 1]))
    if phi_j_second is not None:
        distinct = np.nonzero(ok & np.isfinite(phi_j_second) & (phi_j_second - phi_j > separate))[0]
        if distinct.size >= 2:
            a, b = distinct[-2:]
            first = np.polyfit(x[[a, b]], phi_j[[a, b]], 1)
            second = np.polyfit(x[[a, b]], phi_j_second[[a, b]], 1)
            if first[0] != second[0]:
                x_meet = (second[1] - first[1]) / (first[0] - second[0])
                out["x_lines_meet"] = float(x_meet)
                out["phi_lines_meet"] = float(np.polyval(first, x_meet))
    return out


def plot_diagram(table: str | os.PathLike, png: str | os.PathLike | None = None) -> Path:
    """Draw phi_J(X_S) per delta with both transition lines (and where their straight-line
    extensions meet, see :func:`transition_crossover`), and K*(X_S); write a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = read_diagram(table)
    png = Path(table).with_suffix(".png") if png is None else Path(png)
    fig, (ax_phi, ax_k) = plt.subplots(1, 2, figsize=(11, 4.2))
    for a, delta in enumerate(t["delta"]):
        color = f"C{a % 10}"
        x = t["x_small"]
        ax_phi.errorbar(x, t["phi_J_mean"][a], yerr=t["phi_J_sem"][a], color=color, marker="o",
                        label=f"delta = {delta:g}, first")
        ax_phi.errorbar(x, t["phi_J_second_mean"][a], yerr=t["phi_J_second_sem"][a], color=color,
                        marker="s", mfc="none", ls="--", label=f"delta = {delta:g}, second")
        ax_k.errorbar(x, t["K_star_mean"][a], yerr=t["K_star_sem"][a], color=color, marker="o",
                      label=f"delta = {delta:g}")
        meet = transition_crossover(x, t["phi_J_mean"][a], t["jammed_fraction_small_mean"][a],
                                    t["phi_J_second_mean"][a])
        if "x_lines_meet" in meet:
            ax_phi.plot(meet["x_lines_meet"], meet["phi_lines_meet"], marker="*", ms=12, color=color,
                        ls="none", label=f"lines meet: X*_S = {meet['x_lines_meet']:.3f}")
    ax_phi.set(xlabel="X_S (volume fraction of small particles)", ylabel="phi_J",
               title="Jamming transitions")
    ax_k.set(xlabel="X_S", ylabel="K* = K d_L / k_n", title="Bulk modulus just above jamming")
    ax_phi.legend(fontsize=7)
    ax_k.legend(fontsize=7)
    fig.tight_layout()
    with atomic_path(png, overwrite=True) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)
    return png
