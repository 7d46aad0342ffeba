"""``jamwave granular ...``: DEM of bidisperse sphere packings, jamming, bulk modulus, diagram.

Subcommands: ``jam`` (jam a random packing, write an H5MD file), ``show`` (summary and slice PNG of
a packing file), ``modulus`` (bulk modulus of a packing file, appended to it), ``diagram`` (the
jamming diagram sweep over delta, X_S and seeds). Units are reduced: d_L = 1, grain density 1,
k_n = 1 unless set.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from granular.backend import BACKENDS
from jamwave.argtypes import bounded_float, bounded_int, float_list
from jamwave.commands import add_group


def register(groups) -> None:
    """Add the ``granular`` group and its subcommands to ``groups``."""
    sub = add_group(
        groups, "granular", "DEM of bidisperse sphere packings: jamming, bulk modulus, jamming diagram."
    )
    _register_jam(sub)
    _register_show(sub)
    _register_modulus(sub)
    _register_diagram(sub)
    _register_diagram_report(sub)


def _mixture_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--delta", type=bounded_float(0, 1, lo_open=True), required=True,
                   help="size ratio r_small / r_large, in (0, 1]")
    p.add_argument("--xs", type=bounded_float(0, 1, hi_open=True), required=True,
                   help="X_S, volume fraction of small particles among all solids, in [0, 1)")
    size = p.add_mutually_exclusive_group(required=True)
    size.add_argument("--n", type=bounded_int(2), help="total number of particles")
    size.add_argument("--n-large", type=bounded_int(1), help="number of large particles")


def _group_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--group", default=None,
                   help="particle group under /particles (default: 'all', or the only group)")


def _common_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--k-n", type=bounded_float(0, lo_open=True), default=1.0,
                   help="normal contact stiffness k_n (default: 1; units force / d_L)")
    p.add_argument("--backend", choices=BACKENDS, default="auto",
                   help="DEM backend (default: auto, or $JAMWAVE_BACKEND)")
    p.add_argument("--method", choices=("bisection", "compress", "ladder", "enthalpy"), default="bisection",
                   help="jamming protocol: FIRE-relaxed bisection in phi (O'Hern et al. 2003), "
                        "compression-decompression with damped dynamics, a pressure ladder "
                        "(relaxed states at target pressures 1e-3..1e-5 k_n/d_L, phi_J from the zero "
                        "of the fitted line P(phi)), or the same ladder with states reached by "
                        "minimising the enthalpy U + P V with the box as a degree of freedom, from "
                        "the bisection's first jammed state (CPU only) (default: bisection)")
    p.add_argument("--minimizer", choices=("fire", "lbfgs"), default="fire",
                   help="minimiser of the fixed-box relaxations: FIRE 2.0 (both backends) or L-BFGS with a "
                        "Jacobi preconditioner (CPU only; 2.4-6.5x fewer force evaluations, a lower "
                        "monodisperse phi_J: see benchmarks/RESULTS.md) (default: fire)")


def _register_jam(sub) -> None:
    p = sub.add_parser("jam", help="Jam a random bidisperse packing and write it as H5MD.",
                       description="Generate a random packing at phi = 0.3, find its jamming point "
                                   "phi_J, optionally compress it to phi_J + DPHI, and write an H5MD "
                                   "1.1 file with the packing, the protocol and the results.")
    _mixture_args(p)
    p.add_argument("--seed", type=bounded_int(0), default=0, help="random seed (default: 0)")
    p.add_argument("--out", required=True, help="output H5MD file (.h5)")
    _common_args(p)
    p.add_argument("--excess-phi", type=bounded_float(0, 0.2), default=0.0,
                   help="after jamming, compress to phi_J + DPHI and relax (default: 0)")
    p.add_argument("--force", action="store_true", help="overwrite an existing output file")
    p.set_defaults(func=_jam)


def _jam(args) -> int:
    from granular.contact import ContactLaw
    from granular.protocol import jam_run, summary

    results, _, jam = jam_run(
        args.delta, args.xs, n=args.n, n_large=args.n_large, seed=args.seed, out=args.out,
        method=args.method, minimizer=args.minimizer, excess_phi=args.excess_phi,
        law=ContactLaw(k_n=args.k_n),
        backend=args.backend, overwrite=args.force, progress=True,
    )
    print(summary(results, args.out))
    print(f"criterion         {jam.criterion} ({jam.method}, {len(jam.history['phi'])} relaxed states, "
          f"backend {jam.backend})")
    return 0


def _register_show(sub) -> None:
    p = sub.add_parser("show", help="Summary of a packing file and a PNG of a slice through it.",
                       description="Print the results stored in a packing file and draw the spheres "
                                   "cut by the plane z = L_z / 2 (large and small in two colours).")
    p.add_argument("file", help="H5MD packing file")
    _group_arg(p)
    p.add_argument("--png", default=None, help="slice image (default: FILE_slice.png beside the file)")
    p.add_argument("--force", action="store_true", help="overwrite an existing PNG")
    p.set_defaults(func=_show)


def _show(args) -> int:
    from granular.h5md import MissingGroupError, read_group, read_packing, read_parameters
    from granular.protocol import summary
    from granular.slice_plot import plot_slice
    from jamcommon.files import check_writable

    path = Path(args.file)
    png = Path(args.png) if args.png else path.with_name(path.stem + "_slice.png")
    packing = read_packing(path, group=args.group)  # refuses a missing or malformed file first
    check_writable(png, overwrite=args.force)
    try:
        results = read_group(path, "results")
        print(summary(results, path))
    except (MissingGroupError, KeyError):  # a packing written by another tool: what the file itself holds
        print(_plain_summary(packing, path))
    try:
        params = read_parameters(path)
        print(f"parameters        seed {params.get('seed')}, method {params.get('method')}, "
              f"backend {params.get('backend')}, jamwave {params.get('version')}")
    except MissingGroupError:
        print("parameters        none stored (/parameters/jamwave absent)")
    try:
        m = read_group(path, "modulus")
        print(f"bulk modulus      K = {m['K']:.5g} (strain {m['strain']:g}), linear response "
              f"{m['K_linear_response']:.5g}, K* = {m['K_star']:.5g}; K_SS {m['K_SS']:.4g}, "
              f"K_SL {m['K_SL']:.4g}, K_LL {m['K_LL']:.4g}")
    except KeyError:
        print("bulk modulus      not measured (jamwave granular modulus --in FILE)")
    plot_slice(packing, png, title=path.name)
    print(f"slice image       {png}")
    return 0


def _plain_summary(packing, path: Path) -> str:
    radii = sorted({float(r) for r in packing.radius})
    return "\n".join([
        f"packing file      {path}  (no /jamwave/results: not written by jamwave granular jam)",
        f"particles         {packing.n} ({int((packing.species == 0).sum())} species 0, "
        f"{int((packing.species != 0).sum())} others), radii {radii[0]:.4g}-{radii[-1]:.4g}",
        f"stored state      phi = {packing.packing_fraction:.6f}  box = "
        f"{' x '.join(f'{b:.4f}' for b in packing.box)}",
    ])


def _register_modulus(sub) -> None:
    p = sub.add_parser("modulus", help="Bulk modulus of a jammed packing file (appended to it).",
                       description="K = dP/d(epsilon_v) from small isotropic strains of both signs "
                                   "with FIRE relaxation, partial moduli K_SS, K_SL, K_LL from the "
                                   "pressure split, K* = K d_L / k_n, and the Hessian linear response "
                                   "as a cross-check; written to /jamwave/modulus of the file.")
    p.add_argument("--in", dest="input", required=True, help="H5MD packing file above jamming")
    _group_arg(p)
    p.add_argument("--k-n", type=bounded_float(0, lo_open=True), default=None,
                   help="normal contact stiffness k_n the packing was made with (force / d_L); default: "
                        "the file's /parameters/jamwave/law or /jamwave/results/k_n, an error if neither")
    p.add_argument("--strain", type=bounded_float(0, 1e-2, lo_open=True), default=1e-5,
                   help="volumetric strain amplitude, in (0, 0.01] (default: 1e-5)")
    p.add_argument("--method", choices=("both", "strain", "linear_response"), default="both",
                   help="which method(s) to run (default: both)")
    p.add_argument("--backend", choices=BACKENDS, default="auto", help="DEM backend (default: auto)")
    p.add_argument("--force", action="store_true", help="replace an existing /jamwave/modulus")
    p.set_defaults(func=_modulus)


def _modulus(args) -> int:
    from granular.backend import resolve_engine
    from granular.elasticity import bulk_modulus
    from granular.h5md import append_group, open_packing_file, read_packing
    from jamcommon.files import OutputExistsError

    path = Path(args.input)
    packing = read_packing(path, group=args.group)  # refuses a missing or malformed file first
    law, origin = _contact_law(path, args.k_n)
    with open_packing_file(path) as f:
        if "jamwave/modulus" in f and not args.force:
            raise OutputExistsError(f"{path} already holds /jamwave/modulus; pass --force to replace it")
    engine = resolve_engine(args.backend)
    m = bulk_modulus(packing, law, strain=args.strain, method=args.method, backend=engine)
    append_group(path, "modulus", {**m.as_dict(), **engine.record()}, overwrite=True)
    print(f"packing file      {path}  (phi = {m.phi:.6f}, P = {m.pressure:.4e}, Z = {m.z_backbone:.3f})")
    print(f"contact law       {law.model}, k_n = {law.k_n:g} ({origin})")
    print(f"strain method     K = {m.K:.6g}  K_SS = {m.K_SS:.4g}  K_SL = {m.K_SL:.4g}  K_LL = {m.K_LL:.4g}"
          f"  (epsilon_v = +-{m.strain:g})")
    print(f"linear response   K = {m.K_linear_response:.6g}  K_SS = {m.K_linear_response_SS:.4g}  "
          f"K_SL = {m.K_linear_response_SL:.4g}  K_LL = {m.K_linear_response_LL:.4g}")
    print(f"dimensionless     K* = K d_L / k_n = {m.K_star:.6g}")
    return 0


def _contact_law(path: Path, k_n: float | None):
    """The contact law of a packing file: ``--k-n`` if given, else the file's; never a silent default."""
    import numpy as np

    from granular.contact import ContactLaw
    from granular.h5md import read_contact_stiffness

    stored, where = read_contact_stiffness(path)
    if k_n is not None:
        if stored is None:
            return ContactLaw(k_n=k_n), "from --k-n"
        if not np.isclose(stored["k_n"], k_n, rtol=1e-12, atol=0):
            raise ValueError(f"--k-n {k_n:g} disagrees with {path}:{where} k_n = {stored['k_n']:g}; "
                             f"omit --k-n to use the file's")
    if stored is None:
        raise ValueError(f"{path} does not store its contact law (no /parameters/jamwave/law/k_n nor "
                         f"/jamwave/results/k_n); pass --k-n, the normal stiffness the packing was made with")
    return ContactLaw(**stored), f"from {path}:{where}"


def _register_diagram(sub) -> None:
    p = sub.add_parser("diagram", help="Jamming diagram sweep over delta, X_S and seeds.",
                       description="Each (delta, X_S, seed) point jams a packing, follows it to the "
                                   "second transition and measures K at phi_J + DPHI, writing its own "
                                   "file; a rerun skips finished points. Writes OUT/diagram.h5 (axes "
                                   "delta, x_small, seed; means and standard errors) and diagram.png.")
    p.add_argument("--delta", type=float_list(0, 1, lo_open=True), required=True,
                   help="size ratios: a,b,c or start:stop:step, each in (0, 1]")
    p.add_argument("--xs", type=float_list(0, 1, hi_open=True), required=True,
                   help="X_S values: a,b,c or start:stop:step, each in [0, 1)")
    p.add_argument("--seeds", type=bounded_int(1), default=3, help="seeds per point (default: 3)")
    size = p.add_mutually_exclusive_group(required=True)
    size.add_argument("--n", type=bounded_int(2), help="total number of particles per packing")
    size.add_argument("--n-large", type=bounded_int(1), help="number of large particles per packing")
    p.add_argument("--out", required=True, help="output folder")
    _common_args(p)
    p.add_argument("--excess-phi", type=bounded_float(0, 0.2, lo_open=True), default=5e-3,
                   help="K is measured at phi_J + DPHI (default: 0.005)")
    p.add_argument("--follow-step", type=bounded_float(0, 0.05, lo_open=True), default=5e-3,
                   help="compression step when following to the second transition (default: 0.005)")
    p.add_argument("--follow-range", type=bounded_float(0, 0.4, lo_open=True), default=0.1,
                   help="follow up to phi_J + RANGE (default: 0.1)")
    p.add_argument("--modulus-method", choices=("both", "strain", "linear_response"), default="both",
                   help="K on both lines: strains of both signs, Hessian linear response (one "
                        "relaxation fewer per sign), or both (default: both)")
    p.add_argument("--max-steps", type=bounded_int(1000), default=10**7,
                   help="FIRE step cap of one relaxation (default: 1e7)")
    p.add_argument("--time-limit", type=bounded_float(0, lo_open=True), default=None,
                   help="wall-time cap of one point in seconds: a slower point is killed and recorded "
                        "as failed (default: none)")
    p.add_argument("--retry-failed", action="store_true",
                   help="rerun points with a failure record (timeouts rerun anyway with a larger "
                        "--time-limit)")
    p.add_argument("--scheduler", default=None, help="Dask scheduler address (default: local processes)")
    p.add_argument("--workers", type=bounded_int(1), default=None, help="local worker processes")
    p.add_argument("--force", action="store_true", help="recompute points whose files exist")
    p.set_defaults(func=_diagram)


def _diagram(args) -> int:
    from granular.diagram import DiagramSettings, jamming_diagram, read_diagram

    settings = DiagramSettings(
        n_large=args.n_large, n=args.n, method=args.method, minimizer=args.minimizer,
        excess_phi=args.excess_phi,
        follow_step=args.follow_step, follow_range=args.follow_range, k_n=args.k_n,
        modulus_method=args.modulus_method, max_steps=args.max_steps, backend=args.backend, threads=1,
    )
    failed = None
    try:
        table = jamming_diagram(args.delta, args.xs, args.seeds, args.out, settings,
                                scheduler=args.scheduler, workers=args.workers, force=args.force,
                                time_limit=args.time_limit, retry_failed=args.retry_failed, progress=True)
    except RuntimeError as exc:  # failed points are recorded and NaN in the table, which is written
        failed, table = str(exc), Path(args.out) / "diagram.h5"
    t = read_diagram(table)
    print(f"{'delta':>6} {'X_S':>6} {'phi_J':>16} {'phi_J second':>16} {'K*':>14} {'f_small':>8}")
    for a, delta in enumerate(t["delta"]):
        for b, xs in enumerate(t["x_small"]):
            print(f"{delta:6.3f} {xs:6.3f} {t['phi_J_mean'][a, b]:8.5f}+-{t['phi_J_sem'][a, b]:.5f} "
                  f"{t['phi_J_second_mean'][a, b]:8.5f}+-{t['phi_J_second_sem'][a, b]:.5f} "
                  f"{t['K_star_mean'][a, b]:7.4f}+-{t['K_star_sem'][a, b]:.4f} "
                  f"{t['jammed_fraction_small_mean'][a, b]:8.3f}")
    print(f"table {table}, plot {table.with_suffix('.png')}")
    if failed:
        print(failed)
        return 1
    return 0


def _register_diagram_report(sub) -> None:
    p = sub.add_parser("diagram-report", help="X*_S, phi_J maximum, K jump and the paper's claims "
                                              "from a diagram.h5.",
                       description="Bootstrap over seeds (95 % intervals) of X*_S (where the two "
                                   "transition lines meet), of the phi_J maximum and of the K* jump "
                                   "at X*_S; the claims of Petit et al. decided by explicit criteria. "
                                   "Writes OUT/report.json, claims.md, lines.png, moduli.png and "
                                   "partial_moduli.png.")
    p.add_argument("table", help="diagram.h5 (from jamwave granular diagram)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--delta", type=bounded_float(0, 1, lo_open=True), default=None,
                   help="size ratio to report, in (0, 1] (required if the table holds several)")
    p.add_argument("--n-boot", type=bounded_int(100), default=2000,
                   help="bootstrap replicates, >= 100 (default: 2000)")
    p.add_argument("--seed", type=bounded_int(0), default=0, help="bootstrap seed (default: 0)")
    p.add_argument("--force", action="store_true", help="overwrite existing report files")
    p.set_defaults(func=_diagram_report)


def _diagram_report(args) -> int:
    from granular.diagram_report import claims_markdown, diagram_report

    result = diagram_report(args.table, args.out, delta=args.delta, n_boot=args.n_boot, seed=args.seed,
                            overwrite=args.force)
    print(claims_markdown(result))
    print(f"report {Path(args.out) / 'report.json'}, figures lines.png, moduli.png, partial_moduli.png")
    return 0
