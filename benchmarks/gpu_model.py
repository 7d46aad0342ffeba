"""Performance model of the CUDA MD step: bytes, flops, launches -> particle-steps per second.

The per-particle counts that set the traffic are measured on the dense states of
``benchmarks/dem_throughput.py`` (same builder, law, skin): half-list candidates per particle c,
touching contacts per particle (half) k, particles scanned per particle in the neighbour build,
and the size levels. Bytes and flops per particle-step of each kernel are read off the kernels in
``granular/kernels_cuda.py`` (listed in :data:`KERNELS`); the hardware figures and the efficiency
assumptions are in :data:`HARDWARE` and :data:`ASSUMPTIONS`, stated, not measured: the GPU check
(``benchmarks/gpu_check.sh``) measures what they stand for.

Model. One MD step launches ``verlet_kernel``, ``zero_kernel`` and ``force_kernel``; a list
rebuild (``wrap``, ``bin``, ``neighbour`` plus host work) is amortised over ``rebuild_interval``
steps; the host reads the flags once per ``check_every`` steps (:class:`granular.loops_cuda._MDLoop`).
Streamed bytes move at ``stream_eff`` of the DRAM bandwidth; gathered bytes (partners' positions,
radii, velocities, species, atomics) come from L2 while the gathered arrays fit in half of it, and
otherwise miss in proportion; gathers move whole 32-byte sectors at ``gather_eff`` of the L2 or
DRAM bandwidth.
GPU time of a kernel is max(bytes / bandwidth, flops / FP64 rate, minimum kernel time); the host
issues launches asynchronously, so a step costs max(GPU time, host launch time) plus the amortised
flag read.

Run: ``python -m benchmarks.gpu_model`` (builds the two N = 4000 states with FIRE; ``--stats JSON``
reuses the measured counts) -> ``benchmarks/results/gpu_model.json`` and a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "gpu_model.json"

HARDWARE = {  # public data-sheet figures (SXM parts)
    "H100": {"bandwidth": 3.35e12, "l2_bytes": 50e6, "fp64": 34e12, "l2_bandwidth": 5.5e12},
    "H200": {"bandwidth": 4.8e12, "l2_bytes": 50e6, "fp64": 34e12, "l2_bandwidth": 5.5e12},
}  # L2 bandwidth: same die (GH100); a round figure from published microbenchmarks, not a data sheet
ASSUMPTIONS = {
    "stream_eff": 0.8,  # fraction of DRAM bandwidth reached by coalesced streams
    "gather_eff": 0.5,  # ... by 32-byte sector gathers at the kernels' 25-40 % occupancy
    "l2_share": 0.5,  # fraction of L2 that can hold the gathered arrays
    "launch_host_s": 20e-6,  # Numba-CUDA host cost of one kernel launch (argument marshalling)
    "kernel_min_s": 3e-6,  # shortest GPU time of a kernel (launch latency and tail)
    "sync_s": 30e-6,  # one flag read: drain the queue and copy 32 bytes back
    "rebuild_host_s": 400e-6,  # rebuild host work: 2 flag reads, grid arrays, allocations, H2D copy
    "rebuild_interval": 50,  # MD steps between list rebuilds (assumed; 0-velocity states never rebuild)
    "check_every": 64,
    "fp64_eff": 0.3,
}
SECTOR = 32.0
POS_SECTORS = 1.5  # a 24-byte row spans 1 or 2 sectors (rows at 24 k bytes: half of them cross)


def kernel_costs(c: float, k: float, scanned: float, cells_per_particle: float, measured: bool = False):
    """Bytes (streamed, gathered) and flops per particle for each kernel of a step and a rebuild.

    c: half-list candidates per particle; k: touching contacts per particle (half); scanned:
    particles examined per particle in the neighbour build. The force kernel of MD reads partner
    velocities (dashpot) and always evaluates species and energy (``measured`` changes nothing:
    the sums are accumulated every call, reduced only when measured).
    """
    del measured
    pos_row = POS_SECTORS * SECTOR
    return {
        # x, v, F, 1/m, reference read; x, v written; ~45 flops (3 x (kick, drift, scale) + image)
        "verlet_kernel": {"stream": 5 * 24 + 8 + 24, "gather": 0.0, "flops": 45.0, "per": "step"},
        "zero_kernel": {"stream": 24.0, "gather": 0.0, "flops": 0.0, "per": "step"},
        # x_i, v_i, r_i, species_i, count_i, neighbours (int64, coalesced), 3 atomics on F_i;
        # per candidate x_j (1.5 sectors) and r_j; per contact v_j, species_j, 3 atomics on F_j
        "force_kernel": {"stream": 24 + 24 + 8 + 1 + 8 + 8 * c + 24,
                         "gather": c * (pos_row + SECTOR) + k * (pos_row + SECTOR + 3 * SECTOR),
                         "flops": 18 * c + 70 * k, "per": "step"},
        "wrap_kernel": {"stream": 24 + 24 + 24, "gather": 0.0, "flops": 6.0, "per": "rebuild"},
        "bin_kernel": {"stream": 24 + 8 + 8, "gather": SECTOR, "flops": 12.0, "per": "rebuild"},
        "neighbour_kernel": {"stream": 24 + 8 + 8 + 8 + 8 * c + 8 * cells_per_particle,
                             "gather": scanned * (8 + pos_row + SECTOR) + 27 * SECTOR,
                             "flops": 18 * scanned, "per": "rebuild"},
    }


def l2_hit(n: int, hw: dict, sort: bool = False) -> float:
    """Fraction of gathered bytes served by L2: x, r, v, species, F (81 B per particle) vs L2.

    ``sort``: particles renumbered along a space-filling curve at each rebuild (not done today), so
    partners sit in nearby rows and the gathers hit L2 whatever N."""
    if sort:
        return 1.0
    working_set = 81.0 * n
    return min(1.0, ASSUMPTIONS["l2_share"] * hw["l2_bytes"] / working_set)


def kernel_time(cost: dict, n: int, hw: dict, sort: bool = False) -> float:
    bw = hw["bandwidth"]
    hit = l2_hit(n, hw, sort)
    t_mem = n * (cost["stream"] / (ASSUMPTIONS["stream_eff"] * bw)
                 + (1.0 - hit) * cost["gather"] / (ASSUMPTIONS["gather_eff"] * bw)
                 + hit * cost["gather"] / (ASSUMPTIONS["gather_eff"] * hw["l2_bandwidth"]))
    t_flop = n * cost["flops"] / (ASSUMPTIONS["fp64_eff"] * hw["fp64"])
    return max(t_mem, t_flop, ASSUMPTIONS["kernel_min_s"])


def predict(stats: dict, n: int, hw: dict, sort: bool = False) -> dict:
    """Step time split and particle-steps per second for N = ``n`` with the counts of ``stats``."""
    a = ASSUMPTIONS
    costs = kernel_costs(stats["c_half"], stats["k_half"], stats["scanned"], stats["cells_per_particle"])
    step = {name: kernel_time(cost, n, hw, sort) for name, cost in costs.items() if cost["per"] == "step"}
    rebuild = sum(kernel_time(cost, n, hw, sort) for cost in costs.values() if cost["per"] == "rebuild")
    t_gpu = sum(step.values()) + rebuild / a["rebuild_interval"]
    t_host = len(step) * a["launch_host_s"] + 3 * a["launch_host_s"] / a["rebuild_interval"]
    t_step = (max(t_gpu, t_host) + a["sync_s"] / a["check_every"]
              + a["rebuild_host_s"] / a["rebuild_interval"])
    if t_host > t_gpu:
        limit = "host launches"
    else:
        limit = "DRAM gathers" if l2_hit(n, hw, sort) < 0.5 else "L2 gathers"
    bytes_step = sum((c["stream"] + (1 - l2_hit(n, hw, sort)) * c["gather"]) for c in costs.values()
                     if c["per"] == "step")
    return {"n": n, "rate": n / t_step, "t_step_us": t_step * 1e6, "t_gpu_us": t_gpu * 1e6,
            "t_host_us": t_host * 1e6, "force_share": step["force_kernel"] / t_gpu,
            "l2_hit": l2_hit(n, hw, sort),
            "dram_bytes_per_particle_step": bytes_step, "limit": limit}


def measure_stats(delta: float, x_small: float, phi: float, n: int) -> dict:
    """Counts of the dense dem_throughput state (FIRE-relaxed) that set the traffic."""
    import numpy as np

    from benchmarks.dem_throughput import law_for, make_state
    from granular.kernels_cpu import rebuild
    from granular.loops_cpu import pairs
    from granular.partition import grid_dims, radius_levels

    packing = make_state(delta, x_small, n, phi)
    _, _, skin = law_for(packing)
    level, level_rmax = radius_levels(packing.radius)
    pos = np.ascontiguousarray(packing.position)
    start, _, _, _ = rebuild(pos, packing.radius, packing.box, level, level_rmax, skin, 1)
    touching, _ = pairs(pos, packing.radius, packing.box)
    counts = np.bincount(level, minlength=level_rmax.size)
    cells = [int(np.prod(grid_dims(packing.box, 2 * r + skin, int(m)))) for r, m in zip(level_rmax, counts)]
    # a particle of level a scans 27 cells of every grid b <= a
    per_cell = [m / c for m, c in zip(counts, cells)]
    scanned = sum(counts[a] * sum(min(27, cells[b]) * per_cell[b] for b in range(a + 1))
                  for a in range(level_rmax.size)) / packing.n
    return {"delta": delta, "x_small": x_small, "phi": phi, "n": int(packing.n),
            "c_half": float(start[-1] / packing.n), "k_half": float(touching.size / packing.n),
            "scanned": float(scanned), "cells_per_particle": float(sum(cells) / packing.n),
            "levels": int(level_rmax.size), "skin": float(skin)}


SIZES = (32_000, 256_000, 1_000_000, 4_000_000)


def table(stats_list, results) -> str:
    rows = ["| state | c | k | hardware | N | t_step (us) | GPU / host (us) | L2 hit | DRAM B/step "
            "| particle-steps/s | limited by | if sorted |",
            "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---|---:|"]
    for r in results:
        s = stats_list[r["state"]]
        rows.append(f"| delta {s['delta']}, X_S {s['x_small']}, phi {s['phi']} | {s['c_half']:.1f} | "
                    f"{s['k_half']:.1f} | {r['hw']} | {r['n']:.3g} | {r['t_step_us']:.1f} | "
                    f"{r['t_gpu_us']:.1f} / {r['t_host_us']:.1f} | {r['l2_hit']:.2f} | "
                    f"{r['dram_bytes_per_particle_step']:.0f} | {r['rate']:.2e} | {r['limit']} | "
                    f"{r['rate_sorted']:.2e} |")
    return "\n".join(rows)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--stats", help="reuse the counts of a previous gpu_model.json")
    parser.add_argument("--n", type=int, default=4000, help="particles of the measured states (default 4000)")
    parser.add_argument("--out", default=str(OUT))
    args = parser.parse_args(argv)
    if args.stats:
        stats_list = json.loads(Path(args.stats).read_text())["states"]
    else:
        from benchmarks.dem_throughput import PHI

        stats_list = [measure_stats(d, x, phi, args.n) for (d, x), phi in PHI.items()]
    results = [dict(predict(s, n, HARDWARE[hw]), hw=hw, state=i,
                    rate_sorted=predict(s, n, HARDWARE[hw], sort=True)["rate"])
               for i, s in enumerate(stats_list) for hw in HARDWARE for n in SIZES]
    from jamcommon.files import atomic_write_text

    atomic_write_text(args.out, json.dumps({"states": stats_list, "hardware": HARDWARE,
                                            "assumptions": ASSUMPTIONS, "predictions": results}, indent=1),
                      overwrite=True)
    print(table(stats_list, results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
