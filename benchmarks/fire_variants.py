"""FIRE variants and preconditioners: steps and force evaluations to the same minimum.

Counts are load-independent, so this runs anywhere. For each system and seed the packing is
compressed by damped MD (not counted) to ``phi_hi`` above jamming, then relaxed to
max |F_i| <= 1e-12 k_n d_L by every variant:

- ``compressed``: from the compressed state itself;
- ``step``: from the relaxed minimum (the default) decompressed by 0.1 % in phi, the start of
  one bisection step of :func:`granular.find_jamming`;
- ``bisection`` (``--bisection``): the whole :func:`granular.find_jamming` from the unjammed
  packing, every relaxation with the variant; phi_J, relaxations and total FIRE steps.

For every relaxation the table gives the relative difference of the final pressure and energy
to the first variant's (the same minimum: ~1e-9), so a faster variant that lands elsewhere shows.

    python -m benchmarks.fire_variants                      # small systems, all tasks but bisection
    python -m benchmarks.fire_variants --systems d015x020 d015x025 --seeds 0 1 2 --bisection
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import granular
from benchmarks.harness import Report, print_table, write_results
from granular.minimize import FireParams

DELTA_14 = 1.0 / 1.4
SYSTEMS = {  # name: (delta, x_small, size keyword, size, phi_hi)
    "mono": (1.0, 0.0, "n", 128, 0.67),
    "mix14": (DELTA_14, DELTA_14**3 / (1.0 + DELTA_14**3), "n", 200, 0.67),  # 50:50 by number
    "d05x05": (0.5, 0.5, "n", 300, 0.70),
    "d015x020": (0.15, 0.20, "n_large", 15, 0.82),
    "d015x025": (0.15, 0.25, "n_large", 15, 0.83),
}
VARIANTS = {  # name: (preconditioner, FireParams)
    "physical-euclid": ("physical", FireParams(variant="euclidean")),
    "physical-mass": ("physical", FireParams(variant="mass-metric")),
    "unit": ("unit", FireParams()),
    "jacobi": ("jacobi", FireParams(variant="mass-metric")),
}
LAW = granular.ContactLaw()


def _relax_all(report, base_info, start, variants, max_steps):
    ref = None
    for name in variants:
        pre, params = VARIANTS[name]
        t0 = time.perf_counter()
        r = granular.fire_minimize(start, LAW, force_tol=1e-12, max_steps=max_steps, preconditioner=pre,
                                   params=params, backend="cpu")
        p = granular.pressure(r.packing, LAW).total
        ref = ref or (p, r.energy)
        report.add(**base_info, variant=name, steps=r.steps, force_evals=r.force_evaluations,
                   resets=r.resets, converged=r.converged, max_force=r.max_force, pressure=p,
                   dP_rel=abs(p - ref[0]) / max(ref[0], 1e-300),
                   dE_rel=abs(r.energy - ref[1]) / max(ref[1], 1e-300),
                   wall_s=round(time.perf_counter() - t0, 1))
        print_table(report.rows[-1:])
    return ref


def _bisection(report, base_info, packing, variants, max_steps, certify):
    for name in variants:
        pre, params = VARIANTS[name]
        t0 = time.perf_counter()
        try:
            j = granular.find_jamming(packing, LAW, preconditioner=pre, fire_params=params,
                                      max_steps=max_steps, certify=certify, backend="cpu")
        except RuntimeError as err:
            report.add(**base_info, variant=name, error=str(err)[:300])
            print(f"{base_info} {name}: {err}")
            continue
        steps = int(np.sum(j.history["steps"]))
        report.add(**base_info, variant=name, steps=steps, force_evals=steps + len(j.history["steps"]),
                   relaxations=len(j.history["steps"]), largest=int(np.max(j.history["steps"])),
                   phi_j=j.phi_j, bracket=j.bracket_width, z_backbone=granular.backbone(j.packing).z_backbone,
                   wall_s=round(time.perf_counter() - t0, 1))
        print_table(report.rows[-1:])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--systems", nargs="+", choices=sorted(SYSTEMS), default=["mono", "mix14", "d05x05"])
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--tasks", nargs="*", choices=["compressed", "step"], default=["compressed", "step"])
    parser.add_argument("--bisection", action="store_true", help="also run find_jamming per variant")
    parser.add_argument("--certify", choices=["chunk", "step"], default="chunk",
                        help="unjammed certificate of find_jamming's relaxations (default: chunk)")
    parser.add_argument("--max-steps", type=int, default=10**6, help="step cap per relaxation")
    parser.add_argument("--name", default="fire_variants", help="results file name (default: fire_variants)")
    args = parser.parse_args(argv)
    report = Report(args.name, notes={"force_tol": 1e-12, "law": "linear k_n = 1",
                                      "variants": {k: [v[0], repr(v[1])] for k, v in VARIANTS.items()}})
    for system in args.systems:
        delta, x_small, size_key, size, phi_hi = SYSTEMS[system]
        for seed in args.seeds:
            packing = granular.make_packing(delta, x_small, seed=seed, **{size_key: size})
            info = {"system": system, "seed": seed, "n": packing.n}
            if args.tasks:
                c = granular.compress(packing, LAW, target_phi=phi_hi, strain_rate=0.05, damping=0.5,
                                      record_every=10**6, backend="cpu").packing
                base = None
                if "compressed" in args.tasks:
                    _relax_all(report, {**info, "task": f"compressed {phi_hi}"}, c, args.variants,
                               args.max_steps)
                if "step" in args.tasks:
                    base = granular.fire_minimize(c, LAW, force_tol=1e-12, max_steps=args.max_steps,
                                                  backend="cpu").packing
                    phi = base.packing_fraction * (1 - 1e-3)
                    _relax_all(report, {**info, "task": f"step to {phi:.4f}"},
                               granular.scale_to_phi(base, phi), args.variants, args.max_steps)
            if args.bisection:
                _bisection(report, {**info, "task": f"bisection ({args.certify})"}, packing, args.variants,
                           args.max_steps, args.certify)
    for kind in ("relax", "bisection"):
        rows = [r for r in report.rows if r["task"].startswith("bisection") == (kind == "bisection")]
        if rows:
            print_table(rows, list(dict.fromkeys(k for r in rows for k in r)))
    write_results(report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
