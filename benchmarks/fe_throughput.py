"""FE throughput: the explicit wave step (point-steps per second) against its peers and bounds.

Rows, on the same structured grid (N x N cells, (N + 1)^2 nodes), same number of steps:

* ``stencil``: the matrix-free Numba kernel of :mod:`wavefe.stencil` (float32 and float64, 1 and 2
  threads), heterogeneous speed, Dirichlet sides.
* ``csr-fused``: wavefe's CSR path for general meshes (one Numba loop per step, float64).
* ``scipy-csr``: the same step with scipy's CSR mat-vec plus numpy updates (preallocated).
* ``devito``: Devito's 2D acoustic operator ``m u_tt = lap u`` (float32, space order 2), when
  installed, compiled for one thread (language C) and for OpenMP.

Each row states the bytes it must move per point-step and the bound that the measured memory
bandwidth (a triad with the same number of threads, measured in the same run) puts on it.
The dataset row times :func:`wavefe.dataset.generate_dataset` end to end (processes, compression,
writing) and extrapolates linearly to 1000 samples (labelled as such).

    python -m benchmarks.fe_throughput --sizes 256,512,1024 --dataset-samples 64
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.harness import Report, measure, print_table, write_results

# point_steps_per_s: best wall-clock rate over the repeats; cpu_rate (1-thread rows): points per
# second of process CPU time, a load-robust estimate on a shared machine (labelled as such).


def _triad_bandwidth(n_bytes: int, threads: int) -> float:
    """Bytes/s of ``a = b + s c`` (3 streams; write-allocate not counted, as in STREAM)."""
    import numba
    from numba import njit, prange

    @njit(parallel=True, fastmath=True)
    def triad(a, b, c, s):
        for i in prange(a.size):
            a[i] = b[i] + s * c[i]

    n = n_bytes // 8
    a, b, c = np.zeros(n), np.ones(n), np.ones(n)
    numba.set_num_threads(threads)
    t = measure(lambda: triad(a, b, c, 0.5), warmup=1, repeats=5)
    return 3 * 8 * n / t.best


def _copy_bandwidth(n_bytes: int) -> float:
    n = n_bytes // 8
    a, b = np.zeros(n), np.ones(n)
    t = measure(lambda: np.copyto(a, b), warmup=1, repeats=5)
    return 2 * 8 * n / t.best


def _medium(mesh):
    from wavefe import media

    rng = np.random.default_rng(0)
    return media.random_smooth(mesh.points, rng, 1.0, 2.0, correlation_length=0.2)


def _wavefe_runners(N, steps, threads):
    """(name, dtype, threads, points per call, bytes per point, callable) for wavefe's paths."""
    from wavefe import mesh as meshes
    from wavefe.explicit import ExplicitWave, stable_dt

    m = meshes.rectangle(N)
    c = _medium(m)
    dt = 0.5 * stable_dt(m, c)
    u0 = np.exp(-((m.points - 0.5) ** 2).sum(axis=1) / 0.01)
    out = []
    for method, dtype in (("stencil", np.float32), ("stencil", np.float64), ("csr", np.float64)):
        sim = ExplicitWave(m, c, dt=dt, method=method, dtype=dtype)
        sim.set_state(u0)
        size = np.dtype(dtype).itemsize
        if method == "stencil":
            name, per = "stencil", 5 * size  # read u, u_old, wx, wy; write u_old
        else:  # indptr (int64), 5 x (value, int32 index), u, u_old read + write, dt^2/M
            name, per = "csr-fused", 8 + (8 + 4) * 5 + 4 * 8
        for th in threads:
            out.append((name, np.dtype(dtype).name, th, m.n_nodes * steps, per,
                        lambda sim=sim: sim.advance(steps)))
    return out


def _scipy_runner(N, steps):
    import scipy.sparse as sp
    from scipy.sparse import _sparsetools

    from wavefe import assemble
    from wavefe import mesh as meshes
    from wavefe.explicit import stable_dt

    m = meshes.rectangle(N)
    c = _medium(m)
    K = assemble.stiffness(m, assemble.element_c2(m, c))
    K.eliminate_zeros()
    K = sp.csr_matrix(K)
    gamma = (0.5 * stable_dt(m, c)) ** 2 / assemble.lumped_mass(m)  # stable: no inf/NaN slow paths
    n = m.n_nodes
    state = [np.random.default_rng(0).random(n), np.zeros(n)]
    y = np.zeros(n)

    def run():
        u, uo = state
        for _ in range(steps):
            y.fill(0.0)
            _sparsetools.csr_matvec(n, n, K.indptr, K.indices, K.data, u, y)
            np.multiply(y, gamma, out=y)
            np.subtract(u, uo, out=uo)
            np.add(uo, u, out=uo)
            np.subtract(uo, y, out=uo)
            u, uo = uo, u
        state[:] = [u, uo]

    idx = K.indices.itemsize
    per = 8 + (idx + (8 + idx) * 5 + 8 + 16) + 24 + 3 * 24  # zero y; mat-vec; 4 numpy passes
    return [("scipy-csr", "float64", 1, n * steps, per, run)]


def _devito_runners(N, steps, threads, notes):
    try:
        from devito import Eq, Function, Grid, Operator, TimeFunction, configuration, solve
    except ImportError:
        notes.setdefault("devito", "not installed (pip install devito)")
        return []
    configuration["log-level"] = "ERROR"
    from wavefe import mesh as meshes

    m = meshes.rectangle(N)
    grid = Grid(shape=(N + 1, N + 1), extent=(1.0, 1.0), dtype=np.float32)
    u = TimeFunction(name="u", grid=grid, time_order=2, space_order=2)
    mfun = Function(name="m", grid=grid)
    mfun.data[:] = 1.0 / _medium(m).reshape(m.node_shape) ** 2
    eq = Eq(u.forward, solve(mfun * u.dt2 - u.laplace, u.forward))
    dt = 0.5 / N / 2.0 / np.sqrt(2)
    u.data[:] = 0.0
    u.data[:, N // 2, N // 2] = 1.0
    out = []
    for th in threads:
        language = "C" if th == 1 else "openmp"
        os.environ["OMP_NUM_THREADS"] = str(th)
        try:
            op = Operator([eq], language=language)
        except Exception as exc:  # pragma: no cover - depends on the compiler
            notes[f"devito-{language}"] = repr(exc)
            continue
        # read m, u[t], u[t-1]; write u[t+1] into a third buffer (+ its write-allocate read)
        out.append((f"devito-{language}", "float32", th, (N + 1) ** 2 * steps, 5 * 4,
                    lambda op=op: op.apply(time_m=0, time_M=steps - 1, dt=dt)))
    return out


def _time_interleaved(runners, repeats, report, N, bw):
    """Round-robin over the runners of each thread count so that load hits all of them alike."""
    import numba

    wall = {k: [] for k in range(len(runners))}
    cpu = {k: [] for k in range(len(runners))}
    for r in runners:
        numba.set_num_threads(r[2])
        r[5]()  # warm-up (compilation, first touch)
    # One thread count at a time: OpenMP workers spin for a while after a parallel region and
    # would steal the core from a single-threaded run interleaved right after it.
    for threads in sorted({r[2] for r in runners}):
        group = [k for k, r in enumerate(runners) if r[2] == threads]
        numba.set_num_threads(threads)
        for _ in range(repeats):
            for k in group:
                c0, w0 = time.process_time(), time.perf_counter()
                runners[k][5]()
                wall[k].append(time.perf_counter() - w0)
                cpu[k].append(time.process_time() - c0)
    for k, (name, dtype, th, points, per, _) in enumerate(runners):
        rate = points / min(wall[k])
        bound = bw[th] / per
        row = dict(method=name, dtype=dtype, threads=th, cells=f"{N}^2", point_steps_per_s=rate,
                   cpu_rate=points / min(cpu[k]) if th == 1 else float("nan"),
                   bytes_per_point=per, bw_bound=bound, of_bound=rate / bound,
                   median_s=float(np.median(wall[k])))
        report.add(**row)


def _dataset_row(samples, grid, frames, save_every, workers, report):
    """End-to-end generation (wall clock, ``workers`` processes), gzip level 1 and uncompressed,
    plus the CPU seconds per sample of the worker task in this process (simulate + compress)."""
    import numba

    from wavefe.dataset import generate_dataset
    from wavefe.samples import DatasetConfig, simulate

    settings = dict(grid=grid, n_frames=frames, save_every=save_every, speed="random", source="pulse")
    cfg = DatasetConfig(**settings).to_json()
    numba.set_num_threads(1)
    simulate(cfg, 0, 0, [0], 16, None)
    cpu = {}
    for level in (None, 1):
        c0 = time.process_time()
        simulate(cfg, 0, 0, list(range(8)), 16, level)
        cpu[level] = (time.process_time() - c0) / 8
    raw = samples * frames * (grid + 1) ** 2 * 4
    out = {"samples": samples, "grid": grid, "frames": frames, "save_every": save_every,
           "workers": workers, "cpu_s_per_sample_simulate": cpu[None],
           "cpu_s_per_sample_simulate_gzip1": cpu[1]}
    for label, level in (("gzip1", 1), ("none", None)):
        with tempfile.TemporaryDirectory(dir=Path(__file__).parent / "results") as tmp:
            path = Path(tmp) / "bench.h5"
            start = time.perf_counter()
            generate_dataset(path, samples, workers=workers, batch=4, xdmf=False, compression=level,
                             **settings)
            wall = time.perf_counter() - start
            size = path.stat().st_size
        out[f"wall_s_{label}"] = wall
        out[f"extrapolated_1000_s_{label}"] = wall / samples * 1000
        out[f"ratio_{label}"] = raw / size
        print(f"dataset ({label}): {samples} samples {grid}^2 x {frames} frames (save_every "
              f"{save_every}), {workers} workers: {wall:.1f} s wall, {wall / samples * 1e3:.0f} ms/sample"
              f" -> 1000 samples EXTRAPOLATED {wall / samples * 1000:.0f} s; size ratio {raw / size:.2f}")
    print(f"dataset CPU per sample in one process: simulate {cpu[None] * 1e3:.0f} ms, simulate + gzip-1 "
          f"{cpu[1] * 1e3:.0f} ms -> 1000 samples on 2 idle cores EXTRAPOLATED "
          f"{cpu[1] * 1000 / 2:.0f} s (gzip-1), {cpu[None] * 1000 / 2:.0f} s (uncompressed)")
    report.notes["dataset"] = out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", default="256,512", help="cells per side, comma separated")
    p.add_argument("--steps", type=int, default=50, help="time steps per timed call")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", default="1,2", help="thread counts, comma separated")
    p.add_argument("--bandwidth-mb", type=int, default=256, help="array size of the triad (MB)")
    p.add_argument("--no-devito", action="store_true")
    p.add_argument("--dataset-samples", type=int, default=16, help="0 skips the dataset timing")
    p.add_argument("--dataset-grid", type=int, default=128)
    p.add_argument("--dataset-frames", type=int, default=100)
    p.add_argument("--save-every", type=int, default=4)
    p.add_argument("--workers", type=int, default=2)
    args = p.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    threads = [int(s) for s in args.threads.split(",")]
    report = Report("fe_throughput")
    bw = {th: _triad_bandwidth(args.bandwidth_mb << 20, th) for th in threads}
    report.notes["triad_bandwidth_GBps"] = {th: b / 1e9 for th, b in bw.items()}
    report.notes["copy_bandwidth_GBps_numpy"] = _copy_bandwidth(args.bandwidth_mb << 20) / 1e9
    report.notes["load_average"] = os.getloadavg()
    print(f"memory bandwidth (triad): {', '.join(f'{th} thr {b / 1e9:.1f} GB/s' for th, b in bw.items())}; "
          f"numpy copy {report.notes['copy_bandwidth_GBps_numpy']:.1f} GB/s")
    for N in sizes:
        runners = _wavefe_runners(N, args.steps, threads) + _scipy_runner(N, args.steps)
        if not args.no_devito:
            runners += _devito_runners(N, args.steps, threads, report.notes)
        _time_interleaved(runners, args.repeats, report, N, bw)
    print_table(report.rows, ["method", "dtype", "threads", "cells", "point_steps_per_s", "cpu_rate",
                              "bytes_per_point", "bw_bound", "of_bound"])
    for N in sizes:
        rows = {(r["method"], r["dtype"], r["threads"]): r["point_steps_per_s"]
                for r in report.rows if r["cells"] == f"{N}^2"}
        ref = rows.get(("devito-C", "float32", 1))
        mine = rows.get(("stencil", "float32", 1))
        scipy_rate = rows.get(("scipy-csr", "float64", 1))
        if ref and mine:
            print(f"{N}^2: stencil float32 / devito (1 thread) = {mine / ref:.2f}")
            report.notes[f"ratio_stencil_devito_{N}"] = mine / ref
        if scipy_rate:
            fused = rows.get(("csr-fused", "float64", 1))
            print(f"{N}^2: stencil float64 / scipy-csr = {rows[('stencil', 'float64', 1)] / scipy_rate:.2f}, "
                  f"csr-fused / scipy-csr = {fused / scipy_rate:.2f}")
    if args.dataset_samples > 0:
        _dataset_row(args.dataset_samples, args.dataset_grid, args.dataset_frames, args.save_every,
                     args.workers, report)
    report.notes["load_average_end"] = os.getloadavg()
    write_results(report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
