"""Pruning study on the wave surrogate: SAP (PQ Index) against lottery ticket and one-shot.

For each convolution type (dense, CP), scope (global, layer, neuron), ranking magnitude (plain;
for CP also ``cp-aware``, :mod:`surrogate.pruning.scores`), method (SAP with each ``eta_r``/``gamma``
of the ablation, LT 20 %/iteration, one-shot) and seed, the same initial model is pruned iteratively
(:func:`surrogate.pruning.prune_iteratively`: train, measure, prune, rewind; ``T`` iterations), with
the untrained-Gaussian control of the PQ Index recorded alongside (:mod:`surrogate.pruning.control`).

Reported per run: the smallest remaining fraction whose validation nRMSE is within ``--tolerance``
x the dense (iteration 0) one, the iterations and total training epochs to reach it, the test
nRMSE of that model, the PQ Index trend in the run's scope and the control's. Then mean and spread
over seeds, a verdict table SAP vs LT vs one-shot, and the paper's claims per scope
(:mod:`benchmarks.pruning_verdicts` states the criteria). Runs resume from their checkpoints.

Peer: ``torch.nn.utils.prune.global_unstructured`` (L1) on the same model computes the global
lottery-ticket step; masks must be identical; both are timed in the same run (median of
``--peer-repeats``, interleaved, load average recorded).

Data: ``--train``/``--val``/``--test`` files, or splits generated with ``wavefe`` into ``--data-dir``.

    python -m benchmarks.pruning_study                                  # the full study (see RESULTS.md)
    python -m benchmarks.pruning_study --methods sap --scopes layer \\
        --sap-eta-r 0,0.001,0.01 --sap-gamma 1,1.2,3 --name pruning_ablation   # the ablation
"""

from __future__ import annotations

import argparse
import copy
import itertools
import os
import statistics
import time
from pathlib import Path

import torch
from torch import nn
from torch.nn.utils import prune

from benchmarks.harness import RESULTS_DIR, Report, print_table, write_results
from benchmarks.pruning_verdicts import aggregate, claims, verdict_table
from surrogate.models import build_model
from surrogate.pruning import (
    plot_histories,
    prunable_parameters,
    prune_iteratively,
    prune_model,
    summarise_history,
)


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def _floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x.strip()]


def _words(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--train", default=None, help="training split (default: generate into --data-dir)")
    p.add_argument("--val", default=None, help="validation split")
    p.add_argument("--test", default=None, help="test split (the best model's test nRMSE)")
    p.add_argument("--data-dir", default=str(RESULTS_DIR / "scratch" / "pruning_study" / "data"))
    p.add_argument("--grid", type=int, default=24, help="cells per side of generated data (24)")
    p.add_argument("--frames", type=int, default=22, help="frames per generated sample (22)")
    p.add_argument("--save-every", type=int, default=2, help="solver steps per frame (2)")
    p.add_argument("--train-samples", type=int, default=16)
    p.add_argument("--val-samples", type=int, default=4)
    p.add_argument("--test-samples", type=int, default=4)
    p.add_argument("--convs", type=_words, default=["dense", "cp"], help="dense,cp")
    p.add_argument("--rank", type=int, default=2, help="CP rank per filter (2)")
    p.add_argument("--width", type=int, default=12)
    p.add_argument("--depth", type=int, default=2)
    p.add_argument("--kernel-size", type=int, default=5)
    p.add_argument("--methods", type=_words, default=["sap", "lt", "oneshot"])
    p.add_argument("--scopes", type=_words, default=["global", "layer", "neuron"])
    p.add_argument("--magnitudes", type=_words, default=["plain", "cp-aware"],
                   help="rankings for CP models (dense models use plain only): plain,cp-aware")
    p.add_argument("--iterations", type=int, default=30, help="pruning steps T (30, as Diao et al.)")
    p.add_argument("--epochs", type=int, default=8, help="maximum epochs per iteration (8)")
    p.add_argument("--patience", type=int, default=None, help="early-stopping patience (--epochs)")
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--val-horizon", type=int, default=10)
    p.add_argument("--tolerance", type=float, default=1.1)
    p.add_argument("--amount", type=float, default=0.2, help="LT/one-shot fraction per iteration (0.2)")
    p.add_argument("--sap-eta-r", type=_floats, default=[0.0],
                   help="SAP eta_r values; the first is the baseline of the ablation (0)")
    p.add_argument("--sap-gamma", type=_floats, default=[1.0],
                   help="SAP gamma values; the first is the baseline of the ablation (1)")
    p.add_argument("--sap-grid", choices=("axes", "cross"), default="axes",
                   help="axes: vary eta_r at the first gamma and gamma at the first eta_r (the paper's "
                   "one-at-a-time ablation); cross: every pair")
    p.add_argument("--seeds", type=_ints, default=[0, 1, 2], help="comma-separated seeds (0,1,2)")
    p.add_argument("--out", default=str(RESULTS_DIR / "scratch" / "pruning_study"),
                   help="run folders (checkpoints, models; under the git-ignored results/scratch)")
    p.add_argument("--name", default="pruning_study", help="results file benchmarks/results/<name>.json")
    p.add_argument("--skip-peer", action="store_true", help="skip the torch.nn.utils.prune comparison")
    p.add_argument("--peer-only", action="store_true", help="only the torch.nn.utils.prune comparison")
    p.add_argument("--peer-repeats", type=int, default=7)
    p.add_argument("--data-only", action="store_true",
                   help="only generate the data splits (before starting parallel study processes)")
    return p.parse_args(argv)


def _data(args) -> tuple[str, str, str]:
    if args.train and args.val and args.test:
        return args.train, args.val, args.test
    from wavefe.dataset import generate_splits

    directory = Path(args.data_dir)
    sizes = {"train": args.train_samples, "val": args.val_samples, "test": args.test_samples}
    paths = {name: directory / f"{name}.h5" for name in sizes}
    if not all(p.is_file() for p in paths.values()):
        generate_splits(directory, sizes, seed=0, grid=args.grid, n_frames=args.frames,
                        save_every=args.save_every, width=(0.08, 0.14), workers=1)
    return str(paths["train"]), str(paths["val"]), str(paths["test"])


def _load() -> str:
    return " ".join(open("/proc/loadavg").read().split()[:3]) if os.path.exists("/proc/loadavg") else "n/a"


def _time_interleaved(fns: dict, model: nn.Module, repeats: int) -> dict[str, float]:
    """Median seconds of each ``fn(copy)`` on a fresh deep copy (made outside the timed region),
    the functions interleaved within each repeat so they see the same machine load."""
    times: dict[str, list[float]] = {k: [] for k in fns}
    for fn in fns.values():  # warm-up
        fn(copy.deepcopy(model))
    for _ in range(repeats):
        for key, fn in fns.items():
            m = copy.deepcopy(model)
            tick = time.perf_counter()
            fn(m)
            times[key].append(time.perf_counter() - tick)
    return {k: statistics.median(v) for k, v in times.items()}


def peer_comparison(report: Report, repeats: int = 7) -> None:
    """Global lottery-ticket step: ours against torch's global_unstructured (same masks, timing)."""
    cases = {
        "surrogate dense w32 d3": build_model("dense", None, width=32, depth=3, kernel_size=5, seed=0),
        "MLP 3 x 1024^2": nn.Sequential(*[nn.Linear(1024, 1024) for _ in range(3)]),
    }
    for name, model in cases.items():
        ours = copy.deepcopy(model)
        total = sum(prune_model(ours, "lt", "global").values())

        def peer_step(m, total=total):
            prune.global_unstructured([(a, b) for _, a, b in prunable_parameters(m)],
                                      pruning_method=prune.L1Unstructured, amount=total)

        peer = copy.deepcopy(model)
        peer_step(peer)
        same = all(torch.equal(getattr(m1, n1 + "_mask"), getattr(m2, n2 + "_mask"))
                   for (_, m1, n1), (_, m2, n2) in zip(prunable_parameters(ours), prunable_parameters(peer)))
        if not same:
            raise AssertionError(f"{name}: lottery-ticket masks differ from torch's global_unstructured")
        load_before = _load()
        t = _time_interleaved({"lt": lambda m: prune_model(m, "lt", "global"), "torch": peer_step,
                               "sap": lambda m: prune_model(m, "sap", "global")}, model, repeats)
        weights = sum(getattr(m_, n_).numel() for _, m_, n_ in prunable_parameters(model))
        report.notes.setdefault("peer", []).append({
            "case": name, "prunable": weights, "pruned": total, "masks_equal": same, "repeats": repeats,
            "ours_lt_s": t["lt"], "torch_l1_s": t["torch"], "ours_sap_s": t["sap"],
            "ratio_lt_vs_torch": t["lt"] / max(t["torch"], 1e-12),
            "loadavg_before": load_before, "loadavg_after": _load()})
    print_table(report.notes["peer"])


def _sap_variants(args) -> list[tuple[float, float]]:
    etas, gammas = args.sap_eta_r, args.sap_gamma
    if args.sap_grid == "cross":
        return list(itertools.product(etas, gammas))
    return [(e, gammas[0]) for e in etas] + [(etas[0], g) for g in gammas[1:]]


def _variants(args, method: str) -> list[tuple[str, dict]]:
    """``(label, prune_iteratively keyword arguments)`` per hyperparameter setting of ``method``."""
    if method != "sap":
        return [(method, {"amount": args.amount})]
    out = []
    for eta, gamma in _sap_variants(args):
        label = "sap" if (eta, gamma) == (0.0, 1.0) else f"sap eta{eta:g} g{gamma:g}"
        out.append((label, {"eta_r": eta, "gamma": gamma}))
    return out


def _test_nrmse(run_dir: Path, iteration: int, test: str, horizon: int) -> float:
    from surrogate.evaluate import evaluate
    from surrogate.io import load

    model = load(run_dir / f"iter_{iteration:02d}.pt")
    return float(evaluate(model, test, horizon, with_costs=False)[0]["nrmse"])


def run_one(args, data, conv: str, scope: str, magnitude: str, method: str, label: str, hyper: dict,
            seed: int) -> tuple[dict, dict]:
    """Prune one model (resuming if its folder holds a run); return its history and summary row."""
    tick = time.perf_counter()
    train, val, test = data
    model = build_model(conv, None if conv == "dense" else args.rank, width=args.width, depth=args.depth,
                        kernel_size=args.kernel_size, seed=seed)
    run_dir = Path(args.out) / f"{conv}-{scope}-{magnitude}-s{seed}-{label.replace(' ', '-')}"
    history = prune_iteratively(
        model, (train, val), method, scope, args.iterations, out=run_dir, epochs=args.epochs, seed=seed,
        horizon=args.val_horizon, progress=True, magnitude=magnitude, plot=False,
        train_options={"lr": args.lr, "batch_size": args.batch_size,
                       "patience": args.patience or args.epochs, "val_horizon": args.val_horizon},
        **hyper)
    s = summarise_history(history, args.tolerance)
    row = {"conv": conv, "scope": scope, "magnitude": magnitude, "label": label, "method": method,
           "seed": seed, "prunable": history["total"],
           **{k: s[k] for k in ("dense_nrmse", "best_fraction", "best_iteration", "best_epochs",
                                "best_nrmse", "final_fraction", "final_nrmse", "first_break_fraction",
                                "max_nrmse_ratio", "pqi_trend", "scope_trend", "scope_pqi")},
           "control_trend": s.get("control_trend"), "control_pqi": s.get("control_pqi"),
           "censored": s["best_iteration"] == s["iterations_done"],
           "test_nrmse": _test_nrmse(run_dir, s["best_iteration"], test, args.val_horizon),
           "fractions": [e["remaining_fraction"] for e in history["entries"]],
           "nrmse": [e["val_nrmse"] for e in history["entries"]],
           # the run's own wall time (per-iteration seconds in its history), also after a resume
           "seconds": sum(e.get("seconds", 0.0) for e in history["entries"]),
           "seconds_this_call": time.perf_counter() - tick}
    return history, row


def _runs(args):
    """Every (conv, scope, magnitude, method, label, hyper, seed), seed-major (a study stopped early
    holds whole seeds)."""
    for seed in args.seeds:
        for conv in args.convs:
            for scope in args.scopes:
                for magnitude in (["plain"] if conv == "dense" else args.magnitudes):
                    for method in args.methods:
                        for label, hyper in _variants(args, method):
                            yield conv, scope, magnitude, method, label, hyper, seed


def _plots(args, histories: dict) -> list[str]:
    """One PNG per (conv, scope): every method and magnitude of the first seed, control dashed."""
    written = []
    for conv in args.convs:
        for scope in args.scopes:
            keys = [k for k in histories if k[0] == conv and k[1] == scope and k[-1] == args.seeds[0]]
            if not keys:
                continue
            labels = [k[3] if k[2] == "plain" else f"{k[3]} ({k[2]})" for k in keys]
            path = RESULTS_DIR / f"{args.name}_{conv}_{scope}.png"
            plot_histories([histories[k] for k in keys], path, labels=labels, tolerance=args.tolerance,
                           overwrite=True, title=f"{conv} surrogate, {scope} scope, seed {args.seeds[0]}: "
                           "PQI (dashed: untrained control) and nRMSE vs remaining weights")
            written.append(path.name)
    return written


def main(argv=None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(1)
    if args.data_only:
        print(_data(args))
        return 0
    report = Report(args.name)
    report.notes["settings"] = dict(vars(args))
    report.notes["loadavg_start"] = _load()
    if not args.skip_peer:
        peer_comparison(report, args.peer_repeats)
    if args.peer_only:
        write_results(report)
        return 0
    data = _data(args)
    histories = {}
    for conv, scope, magnitude, method, label, hyper, seed in _runs(args):
        history, row = run_one(args, data, conv, scope, magnitude, method, label, hyper, seed)
        histories[(conv, scope, magnitude, label, seed)] = history
        report.rows.append(row)
    print_table(report.rows, ["conv", "scope", "magnitude", "label", "seed", "dense_nrmse", "best_fraction",
                              "best_iteration", "best_epochs", "test_nrmse", "censored", "scope_trend",
                              "control_trend", "seconds"])
    groups = aggregate(report.rows)
    report.notes["summary"] = groups
    report.notes["verdict_table"] = verdict_table(groups)
    report.notes["claims"] = claims(report.rows, "plain", args.tolerance)
    if "cp-aware" in args.magnitudes and "cp" in args.convs:
        report.notes["claims_cp_aware"] = [c for c in claims(report.rows, "cp-aware", args.tolerance)
                                           if c["conv"] == "cp"]
    print_table(report.notes["verdict_table"])
    print_table(report.notes["claims"] + report.notes.get("claims_cp_aware", []))
    report.notes["figures"] = _plots(args, histories)
    report.notes["loadavg_end"] = _load()
    write_results(report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
