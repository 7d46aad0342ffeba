"""``jamwave surrogate prune`` and ``compare-pruning``: PQI-driven SAP and its baselines."""

from __future__ import annotations

import json
from pathlib import Path

from jamwave.argtypes import bounded_float, bounded_int
from jamwave.commands.fit_arguments import add_fit_arguments, fit_options


def register(sub) -> None:
    """Add the pruning subcommands to the ``surrogate`` group's subparsers ``sub``."""
    _register_prune(sub)
    _register_compare(sub)


def _register_prune(sub) -> None:
    p = sub.add_parser(
        "prune", help="Iterative pruning of a surrogate: SAP (PQ Index), lottery ticket or one-shot.",
        description="Iterative pruning (Diao et al., ICLR 2023): train, measure the PQ Index and the "
        "validation rollout nRMSE, prune, rewind the surviving weights to their initial values, repeat "
        "ITERATIONS times. Writes OUT/history.json, OUT/pruning.png, OUT/iter_XX.pt (model of each "
        "iteration, with masks), OUT/model.pt (the last), and OUT/checkpoint.pt after every iteration: "
        "rerunning the same command resumes, and a larger --iterations continues a finished run.")
    p.add_argument("--model", required=True,
                   help="model file (`jamwave surrogate train`): gives the architecture and normalisation")
    p.add_argument("--data", required=True, help="training split, a jamwave.wave2d/1 HDF5 file")
    p.add_argument("--val", required=True, help="validation split (rollout nRMSE)")
    p.add_argument("--method", choices=("sap", "lt", "oneshot"), default="sap",
                   help="sap: PQI-driven count; lt: lottery ticket, --amount of the remaining weights per "
                   "iteration ranked by trained magnitude; oneshot: the same counts ranked once by the "
                   "trained dense weights (default sap)")
    p.add_argument("--scope", choices=("global", "layer", "neuron"), default="global",
                   help="unit the count and ranking apply to: all prunable weights, each tensor, or each "
                   "output row (default global)")
    p.add_argument("--iterations", type=bounded_int(0, 1000), default=5, help="pruning steps T (default 5)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--rewind", choices=("init", "model"), default="init",
                   help="init: survivors rewind to a fresh initialisation (seeded by --seed) and iteration 0 "
                   "trains the dense model from it (lottery ticket); model: they rewind to the weights in "
                   "--model (default init)")
    add_fit_arguments(p, epochs_help="maximum training epochs per iteration (default 20)")
    p.add_argument("--p", type=bounded_float(0, None, lo_open=True), default=0.5,
                   help="PQ Index p, 0 < p < q (default 0.5)")
    p.add_argument("--q", type=bounded_float(0, None, lo_open=True), default=1.0,
                   help="PQ Index q (default 1)")
    p.add_argument("--eta-r", type=bounded_float(0, None), default=0.0,
                   help="SAP eta_r >= 0; larger keeps fewer weights (default 0)")
    p.add_argument("--gamma", type=bounded_float(0, None, lo_open=True), default=1.0,
                   help="SAP step size gamma > 0 (default 1)")
    p.add_argument("--beta", type=bounded_float(0, 1), default=0.9,
                   help="SAP cap on the pruned fraction per iteration, in [0, 1] (default 0.9)")
    p.add_argument("--amount", type=bounded_float(0, 1), default=0.2,
                   help="lt/oneshot: fraction of the remaining weights pruned per iteration (default 0.2)")
    p.add_argument("--magnitude", choices=("plain", "cp-aware"), default="plain",
                   help="ranking scores: plain |w|, or cp-aware: for a CP factor entry, the norm of the "
                   "kernel change its pruning causes (invariant to rescaling the factors of a rank-one "
                   "term; SAP's PQ Index uses the same scores) (default plain)")
    p.add_argument("--seed", type=bounded_int(0, 2**63 - 1), default=0, help="random seed (default 0)")
    p.add_argument("--force", action="store_true", help="start again even if OUT holds a run")
    p.set_defaults(func=_prune)


def _prune(args) -> int:
    from surrogate.data import read_info
    from surrogate.io import load
    from surrogate.models import build_model
    from surrogate.pruning import prune_iteratively, summarise_history

    if not args.p < args.q:
        raise ValueError(f"--q must be greater than --p = {args.p}, got {args.q}")
    for option, name in (("--data", args.data), ("--val", args.val)):
        try:  # both splits checked before any work or output
            read_info(name)
        except ValueError as exc:
            raise ValueError(f"{option}: {exc}") from None
    model = load(args.model)
    if args.rewind == "init":
        fresh = build_model(**model.config, seed=args.seed)
        norm = model.normalisation
        if norm is not None:
            fresh.set_normalisation(norm)
        model = fresh
    options = fit_options(args)
    history = prune_iteratively(
        model, (args.data, args.val), args.method, args.scope, args.iterations, out=args.out,
        epochs=args.epochs, p=args.p, q=args.q, eta_r=args.eta_r, gamma=args.gamma, beta=args.beta,
        amount=args.amount, seed=args.seed, horizon=args.val_horizon, train_options=options,
        overwrite=args.force, progress=True, magnitude=args.magnitude)
    _print_entries(history)
    s = summarise_history(history)
    print(f"smallest remaining fraction within 1.1 x dense nRMSE: {s['best_fraction']:.4g} "
          f"(iteration {s['best_iteration']}); wrote {Path(args.out) / 'history.json'}")
    return 0


def _print_entries(history: dict) -> None:
    print(f"{'iter':>4}  {'remaining':>9}  {'fraction':>8}  {'PQI global':>10}  {'val nRMSE':>9}  "
          f"{'pruned':>7}")
    for e in history["entries"]:
        pqi = e["pqi"]["global"]
        print(f"{e['iteration']:>4}  {e['remaining_total']:>9}  {e['remaining_fraction']:>8.4f}  "
              f"{(pqi if pqi is not None else float('nan')):>10.4f}  {e['val_nrmse']:>9.4g}  "
              f"{e.get('pruned_total', 0):>7}")


def _register_compare(sub) -> None:
    p = sub.add_parser(
        "compare-pruning", help="Plot and tabulate several pruning runs together.",
        description="Read the history.json of each run folder, print per run the dense nRMSE, the "
        "smallest remaining fraction within --tolerance x the dense nRMSE and the iteration reaching it, "
        "and the trend of the global PQ Index ('-+-' is decrease-increase-decrease); write one figure "
        "with all runs (PQI and validation nRMSE against remaining weights).")
    p.add_argument("runs", nargs="+",
                   help="run folders written by `jamwave surrogate prune` (or their history.json files)")
    p.add_argument("--out", required=True, help="PNG file to write")
    p.add_argument("--labels", default=None, help="comma-separated legend labels, one per run")
    p.add_argument("--tolerance", type=bounded_float(1, None), default=1.1,
                   help="allowed nRMSE ratio to the dense model, >= 1 (default 1.1)")
    p.add_argument("--json", default=None, help="also write the summary table to this JSON file")
    p.add_argument("--force", action="store_true", help="overwrite outputs that exist")
    p.set_defaults(func=_compare)


def _compare(args) -> int:
    from jamcommon.files import atomic_write_text, check_writable
    from surrogate.pruning import load_history, plot_histories, summarise_history

    check_writable(args.out, overwrite=args.force)
    if args.json:
        check_writable(args.json, overwrite=args.force)
    histories = [load_history(r) for r in args.runs]
    labels = None
    if args.labels is not None:
        labels = [x.strip() for x in args.labels.split(",")]
        if len(labels) != len(histories):
            raise ValueError(f"--labels must name each of the {len(histories)} runs, got {len(labels)}")
    rows = []
    print(f"{'run':<28} {'dense nRMSE':>11} {'best frac':>9} {'iter':>4} {'best nRMSE':>10} "
          f"{'final frac':>10} {'final nRMSE':>11}  PQI trend")
    for run, history in zip(args.runs, histories):
        s = {"run": str(run), **summarise_history(history, args.tolerance)}
        rows.append(s)
        print(f"{str(run)[-28:]:<28} {s['dense_nrmse']:>11.4g} {s['best_fraction']:>9.4f} "
              f"{s['best_iteration']:>4} {s['best_nrmse']:>10.4g} {s['final_fraction']:>10.4f} "
              f"{s['final_nrmse']:>11.4g}  {s['pqi_trend'] or '(flat)'}")
    plot_histories(histories, args.out, labels=labels, tolerance=args.tolerance, overwrite=args.force)
    if args.json:
        atomic_write_text(args.json, json.dumps(rows, indent=1), overwrite=args.force)
    print(f"wrote {args.out}")
    return 0
