"""DEM throughput at a dense state: jamwave (CPU, and GPU when present) against LAMMPS.

Same particles, contact law, time step and damping in both codes, in one run:

* a jammed packing (random positions scaled to phi, FIRE-relaxed to max |F| <= 1e-8 k_n d_L) at
  phi = 0.70 for (delta = 0.5, X_S = 0.5), and at phi = 0.85 for (delta = 0.15, X_S = 0.2), which
  jams near 0.8 (P ~ 1e-7 k_n / d_L at 0.78: hardly any contacts to compute); the
  N = 32000 (and GPU) systems are periodic replicas of the N = 4000 one, as in the LAMMPS peer
  inputs;
* linear spring k_n = 1e4, normal dashpot, background viscous damping 0.5 (LAMMPS ``fix viscous``),
  dt = t_c / 50 of the small-small contact, Verlet skin 0.2 d_S in both codes (``neighbor``);
* LAMMPS (Debian ``lammps``, executable ``lmp``): ``pair_style gran/hooke``, ``fix nve/sphere``,
  ``fix viscous``; ``neighbor ... multi`` for the size-asymmetric case. LAMMPS' dashpot is
  mass-scaled (F = m_eff g_n v_n); ours uses the constant coefficient m_eff(SS) g_n, equal for
  small-small pairs (the cost per pair is the same).

Throughput is particle-steps per second, from wall time and from CPU time (process time for us,
LAMMPS' loop time times its "% CPU use"), so that runs on a shared machine stay comparable. The
pressure of the starting configuration (contact virial, zero velocities) must agree between the
two codes; the script prints the relative difference.

Usage: ``python -m benchmarks.dem_throughput [--steps 2000] [--threads 1,2] [--gpu-sizes 1e6]``
(``--gpu-only --name NAME``: only the CUDA rows, for both states, into ``results/NAME.json``)
"""

from __future__ import annotations

import argparse
import itertools
import math
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.harness import Report, print_table, write_results

K_N = 1.0e4
G_N = 100.0  # LAMMPS gran/hooke gamma_n (1/time)
DAMPING = 0.5
PHI = {(0.5, 0.5): 0.70, (0.15, 0.2): 0.85}


def make_state(delta: float, x_small: float, n: int, phi: float, seed: int = 1):
    """A FIRE-relaxed jammed packing at ``phi`` (k_n = 1e4), zero velocities."""
    import granular

    p = granular.make_packing(delta, x_small, n=n, phi=0.3, seed=seed)
    q = granular.scale_to_phi(p, phi)
    law = granular.ContactLaw(k_n=K_N)
    r = granular.fire_minimize(q, law, force_tol=1e-8 * K_N, max_steps=200_000)
    return r.packing


def replicate(packing, k: int):
    """Periodic k x k x k replica of a packing."""
    import granular

    shifts = np.stack(np.meshgrid(*[np.arange(k)] * 3, indexing="ij"), -1).reshape(-1, 3) * packing.box
    position = (packing.position[None] + shifts[:, None]).reshape(-1, 3)
    tile = lambda a: np.tile(a, k**3)  # noqa: E731
    return granular.Packing(position, np.zeros_like(position), tile(packing.radius), tile(packing.species),
                            packing.box * k)


def law_for(packing):
    import granular

    r_s = float(packing.radius.min())
    m_eff = 0.5 * (4.0 / 3.0) * math.pi * r_s**3
    law = granular.ContactLaw(k_n=K_N, gamma_n=m_eff * G_N)
    return law, law.default_dt(r_s), 0.4 * r_s


def run_ours(packing, steps: int, threads: int, backend: str, repeats: int):
    """Best wall and CPU time of ``steps`` damped MD steps (after a compiling warm-up), with the
    set-up of a call (copies, first list build and force call, measured as a 0-step call)
    subtracted, as LAMMPS' "Loop time" excludes its set-up. Returns (wall, cpu, setup_wall)."""
    import granular

    law, dt, skin = law_for(packing)
    os.environ["JAMWAVE_THREADS"] = str(threads)

    def timed(n_steps):
        walls, cpus = [], []
        for _ in range(repeats):
            w0, c0 = time.perf_counter(), time.process_time()
            granular.run_md(packing, law, dt=dt, steps=n_steps, damping=DAMPING, skin=skin, backend=backend)
            walls.append(time.perf_counter() - w0)
            cpus.append(time.process_time() - c0)
        return min(walls), min(cpus)

    try:
        granular.run_md(packing, law, dt=dt, steps=10, damping=DAMPING, skin=skin, backend=backend)
        setup_wall, setup_cpu = timed(0)
        wall, cpu = timed(steps)
    finally:
        os.environ.pop("JAMWAVE_THREADS", None)
    return wall - setup_wall, cpu - setup_cpu, setup_wall


def write_lammps_data(packing, path: Path) -> None:
    lines = ["LAMMPS data file written by jamwave benchmarks/dem_throughput.py", "",
             f"{packing.n} atoms", "2 atom types", ""]
    for axis, length in zip("xyz", packing.box):
        lines.append(f"0.0 {length:.17g} {axis}lo {axis}hi")
    lines += ["", "Atoms # sphere", ""]
    for i in range(packing.n):
        x, y, z = packing.position[i]
        lines.append(f"{i + 1} {packing.species[i] + 1} {2 * packing.radius[i]:.17g} 1.0 "
                     f"{x:.17g} {y:.17g} {z:.17g}")
    path.write_text("\n".join(lines) + "\n")


LAMMPS_INPUT = """units lj
atom_style sphere
dimension 3
boundary p p p
newton off
neighbor {skin} {style}
comm_modify {comm} vel yes
read_data {data}
neigh_modify delay 0 every 1 check yes
pair_style gran/hooke {kn} 0.0 {gn} 0.0 0.0 0
pair_coeff * *
timestep {dt}
fix int all nve/sphere
fix damp all viscous {gb}
compute pv all pressure NULL virial
thermo_style custom step atoms c_pv ke cpu
thermo_modify norm no format float %.15g
thermo {thermo}
run 0
run 100
run {steps}
"""


def run_lammps(packing, steps: int, ranks: int, workdir: Path) -> dict:
    """LAMMPS on the same packing: loop time, CPU use, and the step-0 contact-virial pressure."""
    _, dt, skin = law_for(packing)
    data = workdir / f"state_{packing.n}.data"
    write_lammps_data(packing, data)
    multi = packing.delta < 0.4
    text = LAMMPS_INPUT.format(comm="mode multi" if multi else "", data=data, skin=skin,
                               style="multi" if multi else "bin", kn=K_N, gn=G_N, dt=dt, gb=DAMPING,
                               thermo=max(steps, 1), steps=steps)
    script = workdir / "in.bench"
    script.write_text(text)
    log = workdir / f"log_{packing.n}_{ranks}.lammps"
    cmd = ["lmp", "-in", str(script), "-screen", "none", "-log", str(log)]
    if ranks > 1:
        cmd = ["mpirun", "--allow-run-as-root", "--oversubscribe", "-np", str(ranks), *cmd]
    done = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True)
    out = log.read_text() if log.exists() else ""
    if done.returncode != 0:
        tail = "\n".join((out or done.stdout + done.stderr).splitlines()[-8:])
        raise RuntimeError(f"LAMMPS failed (exit {done.returncode}):\n{tail}")
    loops = re.findall(r"Loop time of ([0-9.eE+-]+) on \d+ procs for (\d+) steps", out)
    cpu_use = re.findall(r"([0-9.]+)% CPU use", out)
    thermo = re.findall(r"^\s*0\s+\d+\s+([0-9.eE+-]+)\s", out, flags=re.M)
    loop_time, loop_steps = float(loops[-1][0]), int(loops[-1][1])
    return {"wall_s": loop_time, "cpu_s": loop_time * float(cpu_use[-1]) / 100.0 * ranks,
            "steps": loop_steps, "pressure": float(thermo[0])}


def pressure_ours(packing) -> float:
    import granular

    law, _, _ = law_for(packing)
    p = packing.copy()
    p.velocity[:] = 0.0
    return granular.pressure(p, law, backend="cpu").total


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1000, help="timed MD steps at N = 4000 (scaled down "
                        "by N / 4000 for larger systems, at least 500)")
    parser.add_argument("--threads", default="1,2", help="comma-separated CPU thread counts for jamwave")
    parser.add_argument("--ranks", default="1", help="comma-separated MPI rank counts for LAMMPS")
    parser.add_argument("--repeats", type=int, default=2, help="timed repeats (best is reported)")
    parser.add_argument("--no-lammps", action="store_true", help="skip LAMMPS even if `lmp` exists")
    parser.add_argument("--no-large", action="store_true", help="skip the N = 32000 replica")
    parser.add_argument("--gpu-sizes", default="32000,256000,1000000",
                        help="system sizes for the CUDA backend (replicas; only with a real GPU)")
    parser.add_argument("--gpu-only", action="store_true", help="only the CUDA rows (no CPU or LAMMPS rows)")
    parser.add_argument("--name", default="dem_throughput", help="results/<name>.json (default: %(default)s)")
    args = parser.parse_args(argv)
    if args.steps < 1 or args.repeats < 1:
        parser.error("--steps and --repeats must be >= 1")
    threads = [int(t) for t in args.threads.split(",")]
    ranks = [int(r) for r in args.ranks.split(",")]
    from granular.backend import gpu_present

    use_lammps = shutil.which("lmp") is not None and not args.no_lammps and not args.gpu_only
    report = Report(args.name, notes={"k_n": K_N, "g_n_lammps": G_N, "damping": DAMPING,
                                             "phi": {f"{d}_{x}": v for (d, x), v in PHI.items()},
                                             "lammps": use_lammps, "gpu": gpu_present(),
                                             "load_before": os.getloadavg()})
    base = {key: make_state(*key, 4000, phi) for key, phi in PHI.items()}
    systems = [("d0.5_xs0.5", base[(0.5, 0.5)]), ("d0.15_xs0.2", base[(0.15, 0.2)])]
    if not args.no_large:
        systems.insert(1, ("d0.5_xs0.5", replicate(base[(0.5, 0.5)], 2)))
    with tempfile.TemporaryDirectory() as tmp:
        for name, packing in [] if args.gpu_only else systems:
            steps = max(500, args.steps * 4000 // packing.n)
            p_ours = pressure_ours(packing)
            lmp_rate = None
            if use_lammps:
                for r in ranks:
                    res = run_lammps(packing, steps, r, Path(tmp))
                    rate_wall = packing.n * res["steps"] / res["wall_s"]
                    rate_cpu = packing.n * res["steps"] / res["cpu_s"]
                    lmp_rate = lmp_rate or rate_cpu
                    report.add(case=name, n=packing.n, code="lammps", workers=r, steps=res["steps"],
                               wall_s=res["wall_s"], rate_wall=rate_wall, rate_cpu=rate_cpu,
                               pressure=res["pressure"], dp_rel=abs(res["pressure"] - p_ours) / p_ours,
                               ratio_cpu="")
            for t in threads:
                wall, cpu, setup = run_ours(packing, steps, t, "cpu", args.repeats)
                rate_cpu = packing.n * steps / cpu
                report.add(case=name, n=packing.n, code="jamwave-cpu", workers=t, steps=steps, wall_s=wall,
                           setup_s=setup,
                           rate_wall=packing.n * steps / wall, rate_cpu=rate_cpu, pressure=p_ours,
                           dp_rel=0.0, ratio_cpu=rate_cpu / lmp_rate if lmp_rate else "")
    if gpu_present():
        from numba import cuda

        cases = (("d0.5_xs0.5", (0.5, 0.5)), ("d0.15_xs0.2", (0.15, 0.2)))
        sizes = [int(float(s)) for s in args.gpu_sizes.split(",")]
        for (case, key), n_target in itertools.product(cases, sizes):
            k = max(1, math.ceil((n_target / 4000) ** (1 / 3) - 1e-9))  # smallest replica with N >= target
            packing = replicate(base[key], k)
            steps = 1000
            wall, _, setup = run_ours(packing, steps, 1, "cuda", args.repeats)
            cuda.synchronize()
            report.add(case=case, n=packing.n, code="jamwave-cuda", workers=1, steps=steps,
                       wall_s=wall, setup_s=setup, rate_wall=packing.n * steps / wall, rate_cpu="",
                       pressure="", dp_rel="", ratio_cpu="")
    report.notes["load_after"] = os.getloadavg()
    print_table(report.rows, ["case", "n", "code", "workers", "steps", "wall_s", "setup_s", "rate_wall",
                              "rate_cpu", "ratio_cpu", "pressure", "dp_rel"])
    print(f"load average before/after: {report.notes['load_before']} / {report.notes['load_after']}")
    write_results(report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
