"""Registers, spills and theoretical occupancy of every CUDA kernel of granular, without a GPU.

Records the launch signatures of the host code under Numba's simulator
(``python -m granular.cuda_launches``), compiles each kernel for real for sm_80 (A100) and sm_90
(H100, H200) and assembles it with ``ptxas -v`` (``python -m granular.cuda_compile``), then derives
the theoretical occupancy from registers, static shared memory and the block size. Needs the
``cuda-compile`` extra. Writes ``benchmarks/results/cuda_resources.json`` and prints a Markdown table.

Run: ``python -m benchmarks.cuda_resources``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "cuda_resources.json"

# Per-SM limits (CUDA occupancy calculator; A100 = sm_80, H100/H200 = sm_90)
LIMITS = {
    "sm_80": {"regs": 65536, "warps": 64, "blocks": 32, "smem": 167936, "reg_unit": 256},
    "sm_90": {"regs": 65536, "warps": 64, "blocks": 32, "smem": 233472, "reg_unit": 256},
}
RESERVED_SMEM = 1024  # bytes the driver reserves per block (sm_80 and later)


def occupancy(registers: int, smem: int, threads: int, target: str) -> tuple[float, str]:
    """Theoretical occupancy (active warps / maximum warps per SM) and the limiting resource."""
    lim = LIMITS[target]
    warps_per_block = math.ceil(threads / 32)
    regs_per_warp = math.ceil(registers * 32 / lim["reg_unit"]) * lim["reg_unit"]
    by = {  # on a tie the first listed is named
        "warps": lim["warps"] // warps_per_block,
        "blocks": lim["blocks"],
        "registers": (lim["regs"] // regs_per_warp) // warps_per_block,
        "shared memory": lim["smem"] // (smem + RESERVED_SMEM),
    }
    limit = min(by, key=by.get)
    return by[limit] * warps_per_block / lim["warps"], limit


def measure(ccs=("80", "90")) -> dict:
    """Run the capture and the compile step (subprocesses) and return the compile result."""
    with tempfile.TemporaryDirectory() as tmp:
        sig, res = Path(tmp, "signatures.json"), Path(tmp, "resources.json")
        for module, args, sim in (("granular.cuda_launches", [sig], "1"),
                                  ("granular.cuda_compile", [sig, res, "--cc", *ccs], "0")):
            env = dict(os.environ, NUMBA_ENABLE_CUDASIM=sim)
            subprocess.run([sys.executable, "-m", module, *map(str, args)], cwd=ROOT, env=env, check=True)
        return json.loads(res.read_text())


def _cells(results: list, threads: int) -> list[str]:
    """Table cells of one kernel signature; ``results`` holds (target, resources or None) pairs."""
    def join(f):
        return " / ".join("-" if r is None else f(t, r) for t, r in results)

    return [join(lambda t, r: str(r["registers"])),
            join(lambda t, r: f"{r['spill_stores']}/{r['spill_loads']}"),
            join(lambda t, r: str(r["stack"])),
            join(lambda t, r: str(r["smem"])),
            join(lambda t, r: "{:.0%} ({})".format(*occupancy(r["registers"], r["smem"], threads, t)))]


def table(result: dict, threads: int) -> str:
    """One row per kernel (and signature), the targets side by side."""
    targets = sorted(result["targets"])
    rows = ["| kernel | registers | spill stores/loads (B) | stack (B) | static smem (B) "
            f"| occupancy, {threads} threads/block (limit) |", "|---|---:|---:|---:|---:|---|"]
    for name in sorted({n for t in targets for n in result["targets"][t]}):
        per = [result["targets"][t].get(name, []) for t in targets]
        for k in range(max(len(p) for p in per)):
            results = [(t, p[k] if k < len(p) else None) for t, p in zip(targets, per)]
            rows.append("| " + " | ".join([name.rsplit(".", 1)[-1], *_cells(results, threads)]) + " |")
    return "\n".join(rows) + f"\n\nEach cell: {' / '.join(targets)}."


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=str(OUT), help="JSON output (overwritten)")
    args = parser.parse_args(argv)
    from granular.cuda_compile import compile_tools_missing

    why = compile_tools_missing()
    if why:
        print(why, file=sys.stderr)
        return 3
    os.environ["NUMBA_ENABLE_CUDASIM"] = "0"  # THREADS of the real target, not the simulator's
    from granular.kernels_cuda import THREADS

    result = measure()
    result["threads_per_block"] = THREADS
    for target, kernels in result["targets"].items():
        for results in kernels.values():
            for r in results:
                r["occupancy"], r["occupancy_limit"] = occupancy(r["registers"], r["smem"], THREADS, target)
    from jamcommon.files import atomic_write_text

    atomic_write_text(args.out, json.dumps(result, indent=1), overwrite=True)
    print(table(result, THREADS))
    problems = result["errors"] + result["not_launched"] + result["device_functions_unused"]
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
