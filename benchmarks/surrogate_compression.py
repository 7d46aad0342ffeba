"""Surrogate study: dense vs a priori CP-compressed CNNs against an FNO and a U-Net, same data and budget.

Data (``benchmarks/surrogate_study.py``): layered and random media with Ricker point sources (the
frame forcing is an input channel of every model), a frame every ``--save-every`` solver steps (the
surrogate replaces that many steps), Dirichlet sides; a held-out test split of granular media whose
materials come from jammed packings. Protocol:

1. Selection (seed 0 only, validation data only): dense, CP ranks ``--ranks``, FNO, U-Net, and a dense
   model without the forcing channel (the control). The CP ranks carried on are chosen on validation
   nRMSE: the best rank with at least 5x fewer parameters than dense, and the best rank overall.
2. Seeds ``--seeds`` (>= 5 by default) for dense, the chosen CP ranks, FNO and U-Net.

Models: every one inside the same wrapper (``surrogate.models``: forcing as an input, the reversible
form, Dirichlet walls continued oddly); dense and CP networks with the medium-gated body (``--body``).
Budget rule, identical for every model: Adam (lr, ``--schedule``: cosine by default),
``--windows-per-epoch`` windows per epoch, batch, input noise, at most ``--epochs`` epochs, early
stopping on the validation rollout nRMSE with ``--patience`` epochs and relative ``--min-delta``, never
before ``--min-epochs`` (the rollout error of an autoregressive model can rise early in training before
it falls); the best validation epoch
is kept (the epoch each run stopped at is reported). Scores: rollouts of ``--horizon`` frames from the
true frames ``--start``, ``--start + 1`` (Ricker sources start from rest: the first frames are near
zero), test nRMSE, VRMSE and error at the last frame, mean and 95 % Student-t interval over seeds;
parameters (a complex FNO weight counts twice), multiply-adds (FFTs estimated), training and inference
activation memory, time per frame; a Pareto figure; wavefe's solver per simulated time unit and the
break-even stride.

    python -m benchmarks.surrogate_compression                 # the full study (see RESULTS.md for time)
    python -m benchmarks.surrogate_compression --preset quick  # minutes: half the full preset's resolution
    python -m benchmarks.surrogate_compression --device cuda   # the larger GPU preset
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import multiprocessing
import time
from pathlib import Path

from benchmarks import surrogate_study as study
from benchmarks.harness import RESULTS_DIR, Report, print_table, write_results

# Shared by every preset (the flags override them); see RESULTS.md, issue 18, for the evidence. Every
# preset simulates the same physics (unit square, speeds 1-2, Ricker peaks 2-4, a frame every 0.035
# time units at grids 32 and 64) and resolves it more finely.
COMMON = dict(frequency=(2.0, 4.0), body="gated", reversible=True, noise=0.05, schedule="cosine")
PRESETS = {
    # Sized for about an hour on the loaded 2-core machine (2 training processes); see RESULTS.md.
    "full": COMMON | dict(grid=64, frames=32, start=8, horizon=22, save_every=8, train=100, val=8, test=20,
                          granular_test=20, width=16, depth=2, kernel_size=5, ranks=[1, 2, 3, 4],
                          fno_width=12, fno_depth=4, fno_modes=12, unet_width=8, unet_depth=2, epochs=50,
                          min_epochs=40, patience=8, windows_per_epoch=192, seeds=[0, 1, 2, 3, 4],
                          packing_n=400),
    # Minutes: the full preset at half its resolution (grid 32, a frame every 4 solver steps).
    "quick": COMMON | dict(grid=32, frames=32, start=8, horizon=22, save_every=4, train=12, val=3, test=4,
                           granular_test=4, width=12, depth=1, kernel_size=5, ranks=[1, 2], fno_width=8,
                           fno_depth=2, fno_modes=8, unet_width=4, unet_depth=2, epochs=90, min_epochs=45,
                           patience=10, windows_per_epoch=256, seeds=[0, 1], packing_n=200),
    "gpu": COMMON | dict(grid=128, frames=42, start=8, horizon=32, save_every=8, train=400, val=40, test=50,
                         granular_test=50, width=32, depth=3, kernel_size=5, ranks=[1, 2, 3, 4, 6, 8],
                         fno_width=32, fno_depth=4, fno_modes=16, unet_width=16, unet_depth=3, epochs=200,
                         min_epochs=100, patience=15, windows_per_epoch=4096, seeds=[0, 1, 2, 3, 4],
                         packing_n=2000),
}


def _int_list(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v.strip()]


def parse_args(argv) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", choices=tuple(PRESETS), default=None,
                   help="sizes (default full; gpu with --device cuda); the flags below override it")
    for name in ("grid", "frames", "start", "horizon", "save_every", "train", "val", "test", "granular_test",
                 "width", "depth", "kernel_size", "fno_width", "fno_depth", "fno_modes", "unet_width",
                 "unet_depth", "epochs", "min_epochs", "patience", "windows_per_epoch", "packing_n"):
        p.add_argument(f"--{name.replace('_', '-')}", type=int, default=None)
    p.add_argument("--ranks", type=_int_list, default=None, help="CP ranks tried in the selection")
    p.add_argument("--seeds", type=_int_list, default=None)
    p.add_argument("--source", choices=("ricker", "pulse"), default="ricker")
    p.add_argument("--boundary", default="dirichlet",
                   help="sides (default dirichlet: the field keeps its size, so relative errors stay "
                   "well-posed over the rollout; absorbing sides empty the domain)")
    p.add_argument("--frequency", type=float, nargs=2, default=None,
                   help="Ricker peak frequency range (preset 2-4)")
    p.add_argument("--data-seed", type=int, default=0)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--min-delta", type=float, default=0.01, help="relative improvement that resets patience")
    p.add_argument("--unroll", type=int, default=2,
                   help="autoregressive steps per training window (2: a cheap guard against rollout drift)")
    p.add_argument("--noise", type=float, default=None,
                   help="input noise relative to u_scale (preset 0.05: it keeps the rollouts stable)")
    p.add_argument("--body", choices=("gated", "gelu"), default=None,
                   help="body of the dense / CP networks (preset gated: linear in the fields, the medium "
                   "gates each layer)")
    p.add_argument("--reversible", action=argparse.BooleanOptionalAction, default=None,
                   help="the networks see u^n but not u^{n-1} (preset: yes)")
    p.add_argument("--schedule", choices=("cosine", "plateau"), default=None,
                   help="learning-rate schedule (preset cosine; plateau halves it while early rollouts "
                   "diverge)")
    p.add_argument("--repeats", type=int, default=20, help="timing repeats")
    p.add_argument("--threads", type=int, default=1, help="torch threads per training process")
    p.add_argument("--jobs", type=int, default=2, help="training processes in parallel")
    p.add_argument("--device", default="cpu", help="torch device of training (cpu, cuda)")
    p.add_argument("--packings", type=Path, nargs="*", default=None,
                   help="packing files of the granular split (default: jam three here)")
    p.add_argument("--data-dir", type=Path, default=None)
    p.add_argument("--name", default=None, help="results name (default surrogate_compression[_preset])")
    args = vars(p.parse_args(argv))
    preset = args["preset"] or ("gpu" if args["device"].startswith("cuda") else "full")
    args["preset"] = preset
    for key, value in PRESETS[preset].items():
        if args.get(key) is None:
            args[key] = value
    if args["source"] == "pulse" and "--start" not in (argv or []):
        args["start"] = 0
    if args["frames"] < args["start"] + 2 + args["horizon"]:
        p.error(f"--frames must be >= start + 2 + horizon = {args['start'] + 2 + args['horizon']}")
    if args["device"].startswith("cuda"):
        args["jobs"] = 1
    args["name"] = args["name"] or ("surrogate_compression" if preset == "full"
                                    else f"surrogate_compression_{preset}")
    return args


def run_all(a: dict, paths: dict, tasks: list[tuple]) -> list[dict]:
    """Train ``tasks`` (conv, rank, seed, forcing), ``a['jobs']`` at a time."""
    runs = []

    def report(run):
        print(f"{run['conv']:8s} R={run['rank']!s:4s} seed {run['seed']} forcing {run['forcing']!s:5s}: "
              f"val {run['val_nrmse']:.4f} test {run['test_nrmse']:.4f}, best epoch {run['best_epoch']} "
              f"of {run['epochs_run']}{' (stopped)' if run['stopped_early'] else ''}, {run['train_s']:.0f} s",
              flush=True)
        runs.append(run)

    if a["jobs"] <= 1:
        for t in tasks:
            report(study.train_one(a, paths, *t))
        return runs
    ctx = multiprocessing.get_context("spawn")
    with cf.ProcessPoolExecutor(a["jobs"], mp_context=ctx) as pool:
        for fut in cf.as_completed([pool.submit(study.train_one, a, paths, *t) for t in tasks]):
            report(fut.result())
    return runs


def choose_ranks(selection: list[dict]) -> list[int]:
    """CP ranks carried on, from validation only: the best with >= 5x fewer parameters than dense,
    and the best overall."""
    dense = next(r for r in selection if r["conv"] == "dense" and r["forcing"])
    cps = [r for r in selection if r["conv"] == "cp"]
    small = [r for r in cps if dense["parameters"] / r["parameters"] >= 5]
    chosen = {min(cps, key=lambda r: r["val_nrmse"])["rank"]}
    if small:
        chosen.add(min(small, key=lambda r: r["val_nrmse"])["rank"])
    return sorted(chosen)


def summarise(runs: list[dict]) -> list[dict]:
    """One row per model: mean and 95 % interval over seeds, costs, stop epochs."""
    keys = []
    for r in runs:
        k = (r["conv"], r["rank"], r["forcing"])
        if k not in keys:
            keys.append(k)
    dense_runs = [r for r in runs if r["conv"] == "dense" and r["forcing"]]
    dense_params = dense_runs[0]["parameters"]
    rows = []
    for conv, rank, forcing in keys:
        rs = [r for r in runs if (r["conv"], r["rank"], r["forcing"]) == (conv, rank, forcing)]
        name = conv if rank is None else f"{conv} R={rank}"
        row = {"model": name + ("" if forcing else " (no forcing)"), "conv": conv, "seeds": len(rs),
               "parameters": rs[0]["parameters"], "fewer_params": dense_params / rs[0]["parameters"],
               "macs": rs[0]["macs_per_frame"], "train_act_MiB": rs[0]["train_activation_bytes"] / 2**20,
               "infer_act_MiB": rs[0]["inference_activation_bytes"] / 2**20,
               "ms_frame": 1e3 * min(r["seconds_per_frame"] for r in rs),
               "train_s": sum(r["train_s"] for r in rs) / len(rs),
               "stop_epochs": "/".join(str(r["epochs_run"]) for r in rs),
               "best_epochs": "/".join(str(r["best_epoch"]) for r in rs)}
        for metric in ("nrmse", "vrmse", "rel_l2_final"):
            m, lo, hi = study.interval([r[f"test_{metric}"] for r in rs])
            row.update({f"test_{metric}": m, f"test_{metric}_lo": lo, f"test_{metric}_hi": hi})
        per_frame = [sum(r["test_rel_l2_per_step"][t] for r in rs) / len(rs)
                     for t in range(len(rs[0]["test_rel_l2_per_step"]))]
        row["test_rel_l2_per_frame"] = per_frame
        if "granular_nrmse" in rs[0]:
            row["granular_nrmse"] = study.interval([r["granular_nrmse"] for r in rs])[0]
        row["vs_dense"] = row["test_nrmse"] / study.interval([r["test_nrmse"] for r in dense_runs])[0]
        row["welch_p_vs_dense"] = study.welch_p([r["test_nrmse"] for r in rs],
                                                [r["test_nrmse"] for r in dense_runs])
        rows.append(row)
    return rows


def cost_line(a: dict, rows: list[dict]) -> list[dict]:
    """Surrogate vs solver per simulated time unit, and the break-even stride, per model."""
    solver = {b: study.solver_timing(a, b) for b in (1, 16)}
    frame_time = solver[1]["dt"] * a["save_every"]
    out = []
    for row in rows:
        s_frame = row["ms_frame"] / 1e3
        out.append({"model": row["model"], "surrogate_s_per_time_unit": s_frame / frame_time,
                    "wavefe_s_per_time_unit_b1": solver[1]["seconds_per_time_unit"],
                    "wavefe_s_per_time_unit_b16": solver[16]["seconds_per_time_unit"],
                    "slower_than_wavefe_b1": s_frame / frame_time / solver[1]["seconds_per_time_unit"],
                    "break_even_stride_b1": s_frame / solver[1]["seconds_per_step"],
                    "break_even_stride_b16": s_frame / solver[16]["seconds_per_step"]})
    return out


def _relative(path: Path) -> str:
    """``path`` relative to the results folder when inside it (no machine paths in results)."""
    try:
        return str(Path(path).resolve().relative_to(RESULTS_DIR))
    except ValueError:
        return Path(path).name


def main(argv=None) -> Report:
    a = parse_args(argv)
    import numba
    import torch

    torch.set_num_threads(a["threads"])
    numba.set_num_threads(min(a["threads"], numba.config.NUMBA_NUM_THREADS))
    tick = time.perf_counter()
    load_start = study.load_average()
    paths = study.make_data(a, RESULTS_DIR / "scratch")
    data_s = time.perf_counter() - tick
    forcing = a["source"] == "ricker"
    selection_tasks = [("dense", None, 0, forcing), *(("cp", r, 0, forcing) for r in a["ranks"]),
                       ("fno", None, 0, forcing), ("unet", None, 0, forcing)]
    if forcing:
        selection_tasks.append(("dense", None, 0, False))
    try:
        import neuralop  # noqa: F401
    except ImportError:
        print("FNO row skipped: the neuraloperator package is missing (pip install 'jamwave[bench]' "
              "next to your pinned torch)", flush=True)
        selection_tasks = [t for t in selection_tasks if t[0] != "fno"]
    runs = run_all(a, paths, selection_tasks)
    ranks = choose_ranks(runs)
    print(f"CP ranks chosen on validation: {ranks}", flush=True)
    more = [s for s in a["seeds"] if s != 0]
    final = [("dense", None), *(("cp", r) for r in ranks)] + [(t[0], None) for t in selection_tasks
                                                              if t[0] in ("fno", "unet")]
    runs += run_all(a, paths, [(conv, rank, s, forcing) for s in more for conv, rank in final])
    rows = summarise(runs)
    print_table(rows, ["model", "seeds", "parameters", "fewer_params", "macs", "test_nrmse", "test_nrmse_lo",
                       "test_nrmse_hi", "vs_dense", "test_vrmse", "test_rel_l2_final", "granular_nrmse",
                       "stop_epochs", "ms_frame"])
    print("test relative L2 error per predicted frame (mean over seeds), frames 1, 5, 10, 15, 20, last:")
    for row in rows:
        e = row["test_rel_l2_per_frame"]
        print(f"  {row['model']:28s}", " ".join(f"{e[t]:.3g}" for t in sorted({0, 4, 9, 14, 19, len(e) - 1})
                                               if t < len(e)))
    costs = cost_line(a, rows)
    print_table(costs)
    report = Report(a["name"], notes={"settings": {k: (str(v) if isinstance(v, Path) else v)
                                                   for k, v in a.items()},
                                      "data": {k: _relative(v) for k, v in paths.items()},
                                      "chosen_ranks": ranks, "runs": runs, "cost_line": costs,
                                      "data_seconds": data_s, "total_seconds": time.perf_counter() - tick,
                                      "load_average_start": load_start,
                                      "load_average_end": study.load_average()})
    for row in rows:
        report.add(**row)
    figure = RESULTS_DIR / f"{a['name']}_pareto.png"
    title = (f"{a['preset']}: grid {a['grid']}, {2 * a['train']} training samples, stride {a['save_every']}, "
             f"{a['horizon']} frames")
    study.pareto_figure([r for r in rows if "no forcing" not in r["model"]], figure, title)
    report.notes["figure"] = figure.name
    write_results(report)
    return report


if __name__ == "__main__":
    main()
