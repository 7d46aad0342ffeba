"""Time to the jamming point: cost and answer of each phi_J protocol on the reference systems.

For every (system, method, seed): wall time, CPU time, force evaluations (FIRE, MD and enthalpy
minimisation steps, the load-independent cost), relaxations (relaxed states of the protocol), phi_J
and the backbone of the stored packing. Then per (system, method): means over the seeds that
finished and the standard error of phi_J. Each run goes in its own process with a wall-time cap
(``--cap``): a run still going at the cap is stopped and recorded as "not finished in T s" with
the force evaluations done so far (a lower bound), so a slow baseline does not block the table.

Methods are those of :func:`granular.find_jamming` (``bisection``, ``compress``, ``ladder``,
``enthalpy`` with its default settings; ``enthalpy-enthalpy`` and ``enthalpy-compress`` name its
approach explicitly) and
``lammps``: LAMMPS (Debian ``lammps``, executable ``lmp``) running the stepwise-compression input
``benchmarks/lammps_jam.lmp`` (compress by dphi, FIRE-minimise, record P; phi_J from the zero of the
straight-line fit of P(phi) over its jammed states) on the same starting packing, written as a
LAMMPS data file. It is skipped with a note when ``lmp`` is absent. ``--minimizer`` names the
relaxations of ``find_jamming`` (its ``minimizer`` argument: ``fire`` or ``lbfgs``, a comma list
runs each).

Systems (``--systems``, names below): monodisperse N 1000; the 50:50-by-number mixture of diameter
ratio 1.4, N 2000; delta 0.5, X_S 0.5, N 4000; delta 0.15 at X_S 0.20 / 0.25 / 0.30 with 40 and 100
large spheres. Seeds 0-2 by default. All runs single-threaded (``--threads``) on the CPU backend.

Usage::

    python -m benchmarks.time_to_jamming --systems mono_N1000,mix14_N2000 --methods bisection,ladder \\
        --seeds 0,1,2 --cap 1800 --name time_to_jamming
"""

from __future__ import annotations

import argparse
import inspect
import math
import multiprocessing as mp
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.harness import Report, print_table, write_results

MIX_DELTA = 1 / 1.4
MIX_XS = MIX_DELTA**3 / (1 + MIX_DELTA**3)  # 50:50 by number
SYSTEMS = {
    "mono_N1000": {"delta": 1.0, "x_small": 0.0, "n": 1000},
    "mix14_N2000": {"delta": MIX_DELTA, "x_small": MIX_XS, "n": 2000},
    "d0.5_xs0.5_N4000": {"delta": 0.5, "x_small": 0.5, "n": 4000},
    **{f"d0.15_xs{x:.2f}_nl{nl}": {"delta": 0.15, "x_small": x, "n_large": nl}
       for nl in (40, 100) for x in (0.20, 0.25, 0.30)},
}
METHODS = ("bisection", "compress", "ladder", "enthalpy", "enthalpy-enthalpy", "enthalpy-compress", "lammps")
LAMMPS_INPUT = Path(__file__).resolve().parent / "lammps_jam.lmp"
MAX_STEPS = 10**8  # one relaxation; the wall-time cap bounds a run instead


def start_packing(system: str | dict, seed: int):
    """The random packing at phi = 0.3 of a system (a name of SYSTEMS, or its spec)."""
    from granular import make_packing

    s = SYSTEMS[system] if isinstance(system, str) else system
    return make_packing(s["delta"], s["x_small"], n=s.get("n"), n_large=s.get("n_large"), phi=0.3,
                        seed=seed)


def _count_steps(counter) -> None:
    """Make every FIRE, MD, enthalpy-minimisation and L-BFGS call of this process add its force
    evaluations to ``counter`` (callers look these functions up in their modules at call time)."""
    import granular.enthalpy as enth
    import granular.lbfgs as lbfgs
    import granular.minimize as mini
    import granular.simulate as sim

    fire, md, enthalpy = mini.fire_minimize, sim.run_md, enth.enthalpy_minimize
    quasi_newton = lbfgs.lbfgs_minimize

    def fire_counted(*args, **kwargs):
        res = fire(*args, **kwargs)
        with counter.get_lock():
            counter.value += int(res.steps)
        return res

    def md_counted(*args, **kwargs):
        res = md(*args, **kwargs)
        with counter.get_lock():
            counter.value += int(res.steps)
        return res

    def enthalpy_counted(*args, **kwargs):
        res = enthalpy(*args, **kwargs)
        with counter.get_lock():
            counter.value += int(res.steps)
        return res

    def lbfgs_counted(*args, **kwargs):
        res = quasi_newton(*args, **kwargs)
        with counter.get_lock():
            counter.value += int(res.force_evaluations)
        return res

    mini.fire_minimize, sim.run_md, enth.enthalpy_minimize = fire_counted, md_counted, enthalpy_counted
    lbfgs.lbfgs_minimize = lbfgs_counted


def method_kwargs(method: str) -> dict:
    """find_jamming's arguments for a method name of METHODS (``enthalpy-APPROACH`` sets the
    enthalpy search's approach)."""
    if not method.startswith("enthalpy-"):
        return {"method": method}
    from granular.enthalpy_ladder import EnthalpySettings

    return {"method": "enthalpy", "ladder": EnthalpySettings(approach=method.split("-", 1)[1])}


def minimizer_kwargs(minimizer: str) -> dict:
    """Keyword arguments that select ``minimizer`` in find_jamming (none for today's ``fire``)."""
    from granular.jamming import find_jamming

    if "minimizer" in inspect.signature(find_jamming).parameters:
        from granular.jamming import MINIMIZERS

        if minimizer not in MINIMIZERS:
            raise ValueError(f"--minimizer {minimizer!r}: not one of {', '.join(MINIMIZERS)}")
        return {"minimizer": minimizer}
    if minimizer != "fire":
        raise ValueError(f"--minimizer {minimizer!r}: find_jamming has no minimizer argument (only 'fire')")
    return {}


def _run_ours(spec, method, seed, minimizer, threads, counter, queue) -> None:
    """Child process: compile (untimed), then one find_jamming run; puts "ready", then a result
    dict on ``queue``."""
    import numba

    numba.set_num_threads(threads)
    _warm_up()
    _count_steps(counter)
    from granular.jamming import find_jamming
    from granular.measure import backbone

    packing = start_packing(spec, seed)
    queue.put("ready")
    wall, cpu = time.perf_counter(), time.process_time()
    r = find_jamming(packing, max_steps=MAX_STEPS, backend="cpu", **method_kwargs(method),
                     **minimizer_kwargs(minimizer))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    bb = backbone(r.packing)
    relaxed = np.isfinite(r.history["pressure"])
    queue.put({"wall_s": wall, "cpu_s": cpu, "relaxations": int(relaxed.sum()),
               "capped_relaxations": int((~relaxed).sum()), "phi_J": r.phi_j,
               "phi_J_error": r.phi_j_error, "phi_J_low": r.phi_low, "phi_J_high": r.phi_high,
               "criterion": r.criterion, "pressure": r.pressure, "Z_backbone": bb.z_backbone,
               "jammed_fraction_small": bb.jammed_fraction_small, "n": r.packing.n,
               "history_steps": int(np.sum(r.history["steps"]))})


def run_one(system: str, method: str, seed: int, *, minimizer: str, threads: int, cap: float) -> dict:
    """One run with a wall-time cap; a row for the report."""
    row = {"system": system, "method": method, "seed": seed, "load_before": _load(),
           "minimizer": minimizer if method != "lammps" else "lammps fire"}
    if method == "lammps":
        row.update(run_lammps(system, seed, cap=cap))
        row["load_after"] = _load()
        return row
    # spawn, not fork: Numba's OpenMP layer refuses a fork; the child compiles (from the cache)
    # before it says "ready", and the cap counts from there
    ctx = mp.get_context("spawn")
    counter, queue = ctx.Value("q", 0), ctx.Queue()
    proc = ctx.Process(target=_run_ours, args=(SYSTEMS[system], method, seed, minimizer, threads, counter,
                                               queue))
    proc.start()
    result, start = None, None
    while result is None and (start is None or time.perf_counter() - start < cap):
        try:
            message = queue.get(timeout=1.0)
        except Exception:  # queue.Empty, or the child died: check below
            if not proc.is_alive() and queue.empty():
                break
            continue
        if message == "ready":
            start = time.perf_counter()
        else:
            result = message
    if result is None and proc.is_alive():
        proc.kill()  # SIGKILL: a compiled FIRE loop does not return to Python for SIGTERM
    proc.join()
    start = time.perf_counter() if start is None else start
    row["force_evaluations"] = int(counter.value)
    row["load_after"] = _load()
    if result is None:
        row["status"] = (f"not finished in {cap:g} s" if proc.exitcode in (None, -9)
                         else f"failed (exit {proc.exitcode})")
        row["wall_s"] = time.perf_counter() - start
        return row
    row.update(result, status="finished")
    return row


def _load() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0]) if Path("/proc/loadavg").exists() else math.nan


def run_lammps(system: str, seed: int, *, cap: float) -> dict:
    """LAMMPS stepwise compression with FIRE on our starting packing (k_n = 1, d_L = 1)."""
    if shutil.which("lmp") is None:
        return {"status": "skipped: lmp not found"}
    from benchmarks.dem_throughput import write_lammps_data
    from granular.contact import ContactLaw
    from granular.pressure_ladder import fit_pressure_line

    packing = start_packing(system, seed)
    dt = ContactLaw().default_dt(float(packing.radius.min()))
    phi_guess = {1.0: 0.60, 0.5: 0.63}.get(SYSTEMS[system]["delta"], 0.60)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        write_lammps_data(packing, work / "start.data")
        cmd = ["lmp", "-in", str(LAMMPS_INPUT), "-screen", "none", "-log", "log.lammps",
               "-var", "data", "start.data", "-var", "phia", str(phi_guess), "-var", "dphi", "0.002",
               "-var", "dt", f"{dt:.10g}", "-var", "skin", f"{0.4 * packing.radius.min():.6g}",
               "-var", "ftol", "1e-12", "-var", "nrel", "10000000", "-var", "pstop", "1e-4",
               "-var", "nafter", "3", "-var", "npts", "400", "-var", "vsolid",
               f"{packing.solid_volume:.17g}"]
        wall, cpu0 = time.perf_counter(), os.times()
        try:
            subprocess.run(cmd, cwd=work, capture_output=True, text=True, timeout=cap, check=True)
        except subprocess.TimeoutExpired:
            return {"status": f"not finished in {cap:g} s", "wall_s": time.perf_counter() - wall}
        except subprocess.CalledProcessError as exc:
            return {"status": f"failed (exit {exc.returncode})"}
        wall = time.perf_counter() - wall
        cpu1 = os.times()
        log = (work / "log.lammps").read_text()
        table = np.loadtxt(work / "steps.txt", ndmin=2)
    minimised = re.findall(r"Iterations, force evaluations\s*=\s*(\d+)\s+(\d+)", log)
    loops = sum(int(s) for s in re.findall(r"Loop time of [0-9.eE+-]+ on \d+ procs for (\d+) steps", log))
    # a minimisation's loop counts its iterations; its force evaluations replace them
    evals = loops + sum(int(b) - int(a) for a, b in minimised)
    phi, p = table[:, 1], table[:, 2]
    jammed = p > 1e-6
    row = {"status": "finished", "wall_s": wall, "cpu_s": cpu1.children_user - cpu0.children_user,
           "relaxations": int(phi.size), "force_evaluations": evals,
           "n": packing.n, "criterion": "LAMMPS: zero of the line P(phi) over its jammed states"}
    if jammed.sum() >= 2:
        fit = fit_pressure_line(phi[jammed], p[jammed])
        row.update(phi_J=fit.phi_j, phi_J_error=fit.phi_j_error,
                   phi_J_low=float(phi[~jammed].max()) if (~jammed).any() else math.nan,
                   phi_J_high=float(phi[jammed].min()))
    return row


def summarise(rows: list[dict]) -> list[dict]:
    """Per (system, method, minimizer): means over finished seeds, s.e. of phi_J."""
    out = []
    keys = list(dict.fromkeys((r["system"], r["method"], r["minimizer"]) for r in rows))
    for system, method, minimizer in keys:
        group = [r for r in rows if (r["system"], r["method"], r["minimizer"]) == (system, method, minimizer)]
        done = [r for r in group if r.get("status") == "finished" and "phi_J" in r]
        row = {"system": system, "method": method, "minimizer": minimizer,
               "finished": f"{len(done)}/{len(group)}"}
        if done:
            phi = np.array([r["phi_J"] for r in done])
            row.update({
                "wall_s": float(np.mean([r["wall_s"] for r in done])),
                "cpu_s": float(np.mean([r.get("cpu_s", math.nan) for r in done])),
                "force_evals": float(np.mean([r.get("force_evaluations", math.nan) for r in done])),
                "relaxations": float(np.mean([r["relaxations"] for r in done])),
                "phi_J": float(phi.mean()),
                "phi_J_sem": float(phi.std(ddof=1) / math.sqrt(phi.size)) if phi.size > 1 else math.nan,
                "Z_backbone": float(np.mean([r.get("Z_backbone", math.nan) for r in done])),
            })
        unfinished = [r for r in group if r.get("status") != "finished"]
        if unfinished:
            row["note"] = "; ".join(sorted({r["status"] for r in unfinished}))
            evals = [r.get("force_evaluations") for r in unfinished if r.get("force_evaluations")]
            if evals:
                row["note"] += f" (>= {min(evals):.3g} force evaluations)"
        out.append(row)
    return out


def _names(text: str, allowed, what: str) -> list[str]:
    names = [t.strip() for t in text.split(",") if t.strip()]
    bad = [n for n in names if n not in allowed]
    if not names or bad:
        raise argparse.ArgumentTypeError(f"{what} must be a comma list of {', '.join(allowed)}; got {text!r}")
    return names


def _seeds(text: str) -> list[int]:
    try:
        seeds = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        seeds = []
    if not seeds or min(seeds) < 0:
        raise argparse.ArgumentTypeError(f"seeds must be a comma list of integers >= 0, got {text!r}")
    return seeds


def _warm_up() -> None:
    """Compile (or load from Numba's cache) the kernels of the protocols, outside the timing."""
    from granular import find_jamming, make_packing

    for method in ("bisection", "ladder", "enthalpy"):
        find_jamming(make_packing(0.5, 0.5, n=120, phi=0.3, seed=0), method=method, backend="cpu")
    find_jamming(make_packing(0.5, 0.5, n=120, phi=0.3, seed=0), minimizer="lbfgs", backend="cpu")


def main(argv=None) -> int:
    from jamwave.argtypes import bounded_float, bounded_int

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--systems", type=lambda t: _names(t, SYSTEMS, "--systems"),
                        default="mono_N1000,mix14_N2000", help=f"comma list of {', '.join(SYSTEMS)}")
    parser.add_argument("--methods", type=lambda t: _names(t, METHODS, "--methods"),
                        default="bisection,ladder", help=f"comma list of {', '.join(METHODS)}")
    parser.add_argument("--seeds", type=_seeds, default="0,1,2", help="comma list (default: 0,1,2)")
    parser.add_argument("--minimizer", default="fire",
                        help="comma list of find_jamming's minimisers, fire and lbfgs (default: fire)")
    parser.add_argument("--cap", type=bounded_float(0, lo_open=True), default=1800.0,
                        help="wall-time cap of one run in seconds (default: 1800)")
    parser.add_argument("--threads", type=bounded_int(1), default=1, help="Numba threads (default: 1)")
    parser.add_argument("--name", default="time_to_jamming", help="results/<name>.json")
    args = parser.parse_args(argv)
    for attr, parse in (("systems", lambda t: _names(t, SYSTEMS, "--systems")),
                        ("methods", lambda t: _names(t, METHODS, "--methods")), ("seeds", _seeds)):
        if isinstance(getattr(args, attr), str):
            setattr(args, attr, parse(getattr(args, attr)))
    minimizers = [m.strip() for m in args.minimizer.split(",") if m.strip()]
    for minimizer in minimizers:
        minimizer_kwargs(minimizer)  # refuse an unknown minimiser before any work
    report = Report(args.name, notes={"cap_s": args.cap, "threads": args.threads})
    runs = [(s, m, z, seed) for s in args.systems for m in args.methods
            for z in (minimizers if m != "lammps" else ["fire"]) for seed in args.seeds]
    for system, method, minimizer, seed in runs:
        row = run_one(system, method, seed, minimizer=minimizer, threads=args.threads, cap=args.cap)
        report.add(**row)
        print(f"{system} {method} {row['minimizer']} seed {seed}: {row.get('status')}, phi_J = "
              f"{row.get('phi_J', math.nan):.6f}, force evaluations {row.get('force_evaluations')}, "
              f"wall {row.get('wall_s', math.nan):.1f} s (load {row['load_before']:.1f})", flush=True)
        write_results(report)  # after every run: an interrupted study keeps what it measured
    summary = summarise(report.rows)
    report.notes["summary"] = summary
    print_table(summary, ["system", "method", "minimizer", "finished", "wall_s", "cpu_s", "force_evals",
                          "relaxations", "phi_J", "phi_J_sem", "Z_backbone", "note"])
    write_results(report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
