"""Jamming diagram at strong size asymmetry (Petit, Kumar, Luding, Sperl): the X*_S study.

At delta = 0.15 the first transition (a backbone of large particles, small ones rattling) and the
second transition (the small particles join the backbone) meet near X*_S ~ 0.21, where phi_J is
largest and K* jumps. This script runs the sweep over X_S with :func:`granular.jamming_diagram`,
prints per X_S: phi_J, phi_J_second, the jammed fraction of small particles at phi_J and K*, and
locates (a) the X_S of the largest phi_J, (b) the smallest X_S at which the transitions coincide
(jammed fraction of small particles >= 1/2 at the first transition) and (c) where the straight
lines through the first and second transitions meet (:func:`granular.transition_crossover`), then
writes the report of :mod:`granular.diagram_report` (X*_S with its bootstrap interval, the phi_J
maximum, the K jump, the claims table and figures) into OUT/report.

The defaults (15 large spheres, one seed) run in minutes to an hour on 2 CPU cores, but their box is
only about 2.3 large diameters wide, so the first transition varies strongly from seed to seed
(benchmarks/RESULTS.md: phi_J 0.68-0.81 at X_S = 0.2); the second transition is reproducible. Use
``--n-large 40`` or more and several seeds for the first line. At full size on a GPU machine or a
cluster::

    python -m benchmarks.jamming_diagram --n-large 200 --seeds 5 \\
        --xs 0.05:0.5:0.025 --follow-step 0.005 --backend cuda --workers 1   # one GPU
    python -m benchmarks.jamming_diagram --n-large 200 --seeds 5 \\
        --xs 0.05:0.5:0.025 --follow-step 0.005 --scheduler tcp://HOST:8786  # Dask cluster
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from benchmarks.harness import RESULTS_DIR, Report, print_table, write_results
from granular.diagram import DiagramSettings, jamming_diagram, read_diagram, transition_crossover
from jamwave.argtypes import bounded_float, bounded_int, float_list


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--delta", type=bounded_float(0, 1, lo_open=True), default=0.15,
                        help="size ratio (default: 0.15)")
    parser.add_argument("--xs", type=float_list(0, 1, hi_open=True), default="0.05:0.35:0.05",
                        help="X_S grid (default: 0.05:0.35:0.05)")
    parser.add_argument("--seeds", type=bounded_int(1), default=1, help="seeds per point (default: 1)")
    parser.add_argument("--n-large", type=bounded_int(1), default=15,
                        help="large particles per packing (default: 15)")
    parser.add_argument("--follow-step", type=bounded_float(0, 0.05, lo_open=True), default=0.01)
    parser.add_argument("--follow-range", type=bounded_float(0, 0.4, lo_open=True), default=0.2)
    parser.add_argument("--modulus-method", choices=("both", "strain", "linear_response"),
                        default="linear_response",
                        help="K at phi_J + excess: linear response alone is one relaxation (default)")
    parser.add_argument("--excess-phi", type=bounded_float(0, 0.2, lo_open=True), default=5e-3)
    parser.add_argument("--method", default="bisection",
                        help="jamming method passed to find_jamming (default: bisection)")
    parser.add_argument("--time-limit", type=bounded_float(0, lo_open=True), default=None,
                        help="wall-time cap of one point in seconds (a slower one is recorded as failed)")
    parser.add_argument("--backend", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--workers", type=bounded_int(1), default=None)
    parser.add_argument("--scheduler", default=None)
    parser.add_argument("--out", default=str(RESULTS_DIR / "jamming_diagram"))
    args = parser.parse_args(argv)
    if isinstance(args.xs, str):
        args.xs = float_list(0, 1, hi_open=True)(args.xs)

    settings = DiagramSettings(n_large=args.n_large, follow_step=args.follow_step,
                               follow_range=args.follow_range, backend=args.backend,
                               modulus_method=args.modulus_method, excess_phi=args.excess_phi,
                               method=args.method)
    start = time.perf_counter()
    failures = ""
    try:
        table = jamming_diagram([args.delta], args.xs, args.seeds, args.out, settings,
                                workers=args.workers, scheduler=args.scheduler, time_limit=args.time_limit,
                                progress=True)
    except RuntimeError as exc:  # failed points: the table holds NaN there; report and keep the rest
        failures = str(exc)
        print(failures)
        table = Path(args.out) / "diagram.h5"
    elapsed = time.perf_counter() - start
    t = read_diagram(table)
    notes = {"delta": args.delta, "n_large": args.n_large, "seeds": args.seeds, "wall_s": elapsed,
             "table": str(table), "plot": str(Path(table).with_suffix(".png")), "failures": failures}
    report = Report("jamming_diagram", notes=notes)
    for b, x in enumerate(t["x_small"]):
        report.add(x_small=float(x), n_small=float(t["n_small_mean"][0, b]),
                   phi_J=float(t["phi_J_mean"][0, b]), phi_J_sem=float(t["phi_J_sem"][0, b]),
                   phi_J_second=float(t["phi_J_second_mean"][0, b]),
                   f_small_at_phi_J=float(t["jammed_fraction_small_mean"][0, b]),
                   K_star=float(t["K_star_mean"][0, b]), K_SS=float(t["K_SS_mean"][0, b]),
                   K_SL=float(t["K_SL_mean"][0, b]), K_LL=float(t["K_LL_mean"][0, b]),
                   K_lin_resp=float(t["K_linear_response_mean"][0, b]))
    print_table(report.rows)
    report.notes.update(transition_crossover(t["x_small"], t["phi_J_mean"][0],
                                             t["jammed_fraction_small_mean"][0], t["phi_J_second_mean"][0]))
    meeting = {k: v for k, v in report.notes.items() if k.startswith(("x_", "phi_lines"))}
    print(meeting, f"wall time {elapsed:.0f} s")
    write_results(report)
    from granular.diagram_report import claims_markdown, diagram_report

    print(claims_markdown(diagram_report(table, Path(args.out) / "report", overwrite=True)))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
