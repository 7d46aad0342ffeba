"""The jamming diagram over (delta, X_S, seed): phi_J of both transitions, K*, partial moduli.

Each point (delta, X_S, seed) is an idempotent task (:func:`granular.diagram_point.run_point`):
jam a random packing, follow it under compression to the second transition, measure the bulk
modulus, its split and the jammed fractions at phi + ``excess_phi`` on both transition lines, and
write one H5MD file atomically. A point whose file exists is skipped, so a killed sweep resumes
where it stopped; a point that failed (an error, or the optional per-point wall-time cap) leaves a
``.failed.json`` record and is not retried unless asked (or, for a timeout, given a larger cap).
Tasks run on a
``concurrent.futures.Executor``: local processes by default, or a Dask cluster (``client=`` or
``scheduler=`` address). :func:`combine` gathers the point files into ``diagram.h5`` (axes delta,
x_small, seed; means and standard errors over seeds) and :func:`plot_diagram` draws ``diagram.png``.
Both are rebuilt from the point files on every run.
"""

from __future__ import annotations

import math
import os
from concurrent.futures import Executor, ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from granular.diagram_point import (  # noqa: F401 (re-exported)
    point_name,
    read_failure,
    run_point,
    run_point_capped,
)
from granular.diagram_table import (  # noqa: F401 (re-exported)
    STATUS,
    TABLE_KEYS,
    _point_values,
    combine,
    mean_sem,
    read_diagram,
    read_diagram_settings,
    write_table,
)
from jamcommon.files import atomic_path


@dataclass(frozen=True)
class DiagramSettings:
    """Protocol settings shared by every point of a sweep (see :func:`run_point`).

    Attributes
    ----------
    n_large, n : int
        Number of large particles (or total number; exactly one).
    method : str
        Jamming method, ``"bisection"``, ``"compress"`` or ``"ladder"``
        (:func:`granular.jamming.find_jamming`).
    minimizer : str
        ``"fire"`` or ``"lbfgs"``: the minimiser of the jamming search's and of the followed path's
        fixed-box relaxations (L-BFGS on the CPU only).
    modulus_method : str
        ``"both"``, ``"strain"`` or ``"linear_response"`` (K on both lines).
    excess_phi : float
        The modulus is measured at phi_J + excess_phi.
    follow_step, follow_range : float
        State following from phi_J in steps of ``follow_step`` up to phi_J + ``follow_range``
        (stopping once the second transition is crossed).
    strain : float
        Volumetric strain of the strain method.
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
    minimizer: str = "fire"
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

    def __post_init__(self):
        from granular.jamming import METHODS, MINIMIZERS

        if self.method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {self.method!r}")
        if self.minimizer not in MINIMIZERS:
            raise ValueError(f"minimizer must be one of {MINIMIZERS}, got {self.minimizer!r}")


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


def _check_sweep(deltas, x_small_values, seeds, settings: DiagramSettings, time_limit) -> tuple:
    """The checked grid (see :func:`check_grid`); raise ValueError on any bad input before work."""
    from granular.protocol import check_run_inputs

    deltas, xs, seeds = check_grid(deltas, x_small_values, seeds)
    if time_limit is not None and not (math.isfinite(time_limit) and time_limit > 0):
        raise ValueError(f"time_limit must be > 0 seconds, got {time_limit}")
    for d in deltas:
        for x in xs:
            check_run_inputs(d, x, n=settings.n, n_large=settings.n_large, excess_phi=settings.excess_phi)
    return deltas, xs, seeds


def _should_run(path: Path, time_limit: float | None, retry_failed: bool) -> bool:
    """Whether a point still needs running: no file, and no failure record that stands.

    A recorded error stands unless ``retry_failed``; a recorded timeout stands unless
    ``retry_failed`` or the new ``time_limit`` is larger than the recorded one (None: no cap).
    """
    if path.exists():
        return False
    failure = read_failure(path)
    if failure is None or retry_failed:
        return True
    if failure["kind"] != "timeout":
        return False
    old = failure.get("time_limit")
    return time_limit is None or (old is not None and time_limit > old)


def _run_jobs(todo, n_jobs, settings, pool, time_limit, progress) -> list:
    """Submit the points to ``pool``; return [((delta, x_small, seed), error repr)] of the failures."""
    failures = []
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=n_jobs, initial=n_jobs - len(todo), desc="diagram", unit="point")
    try:
        futures = {pool.submit(run_point_capped, d, x, s, settings, str(p), time_limit): (d, x, s)
                   for d, x, s, p in todo}
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
    return failures


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
    time_limit: float | None = None,
    retry_failed: bool = False,
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
        Recompute every point (point files and failure records are removed first).
    time_limit : float, optional
        Wall-time cap of one point in seconds (see :func:`granular.diagram_point.run_point_capped`).
    retry_failed : bool
        Rerun points with a failure record (by default only timeouts given a larger cap are rerun).
    progress : bool
        tqdm bar over the points.

    Returns
    -------
    pathlib.Path
        The combined ``diagram.h5``.

    Raises
    ------
    RuntimeError
        After writing the table, if points failed in this run (they are NaN in the table).
    """
    settings = DiagramSettings() if settings is None else settings
    deltas, xs, seeds = _check_sweep(deltas, x_small_values, seeds, settings, time_limit)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    jobs = [(d, x, s, out_dir / point_name(d, x, s)) for d in deltas for x in xs for s in seeds]
    todo = _pending(jobs, force, time_limit, retry_failed)
    failures = []
    if todo:
        pool, close = _executor(executor, client, scheduler, workers)
        try:
            failures = _run_jobs(todo, len(jobs), settings, pool, time_limit, progress)
        finally:
            if close is not None:
                close()
    table = combine(out_dir, deltas, xs, seeds)
    plot_diagram(table)
    if failures:
        listed = "; ".join(f"(delta={d}, x_small={x}, seed={s}): {err}" for (d, x, s), err in failures)
        raise RuntimeError(f"{len(failures)} of {len(jobs)} points failed (recorded; rerun with "
                           f"retry_failed to retry them): {listed}")
    return table


def _pending(jobs: list, force: bool, time_limit: float | None, retry_failed: bool) -> list:
    """The jobs still to run (all of them with ``force``, whose files and failure records are
    removed), see :func:`_should_run`.

    An existing file is read first, so a damaged or foreign file under a point's name stops the
    sweep before any work, with its name (:func:`_point_values`).
    """
    from granular.diagram_point import failure_path

    for *_, path in jobs:
        if force:
            path.unlink(missing_ok=True)
            failure_path(path).unlink(missing_ok=True)
        elif path.exists():
            _point_values(path)
    return [job for job in jobs if _should_run(job[3], time_limit, retry_failed)]


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
