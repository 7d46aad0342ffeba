"""Dense vs CP-compressed surrogates on a wavefe dataset: parameters, costs and held-out rollout error.

Generates (once, reused) train / val / test splits with ``wavefe.generate_splits``, then trains the same
architecture with the same budget (epochs, learning rate, batch, seed) as a dense model and as
per-filter CP models of ranks 1, 2, 3, 4 (optionally layer-level CP), for several seeds; scores each
on the test split by rollout from the two true first frames; and times wavefe's explicit solver per
saved frame at the same resolution against the surrogate's time per frame. CP models are timed both
ways they can compute (``CPConv2d.compute``): factored (fewest multiply-adds) and through the
assembled kernel (one dense convolution; the path they train on).

Goal (issue 7): a CP model with >= 5x fewer trainable parameters whose test nRMSE is within 1.2x of
the dense model's.

    .venv/bin/python -m benchmarks.surrogate_compression            # defaults: about an hour, 1 core
    .venv/bin/python -m benchmarks.surrogate_compression --epochs 2 --seeds 0 --ranks 1 --train 8
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.harness import RESULTS_DIR, Report, measure, print_table, write_results
from surrogate.layers import CPConv2d


def _int_list(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v.strip()]


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--grid", type=int, default=32, help="cells per side (nodes: grid + 1)")
    p.add_argument("--frames", type=int, default=30, help="frames per sample")
    p.add_argument("--save-every", type=int, default=2, help="solver steps per saved frame")
    p.add_argument("--speed", default="layered")
    p.add_argument("--source", default="pulse")
    p.add_argument("--boundary", default="dirichlet")
    p.add_argument("--train", type=int, default=32, help="training samples")
    p.add_argument("--val", type=int, default=16, help="validation samples")
    p.add_argument("--test", type=int, default=32, help="test samples")
    p.add_argument("--data-seed", type=int, default=0)
    p.add_argument("--width", type=int, default=32)
    p.add_argument("--depth", type=int, default=2)
    p.add_argument("--kernel-size", type=int, default=5)
    p.add_argument("--epochs", type=int, default=16)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--patience", type=int, default=5)
    p.add_argument("--unroll", type=int, default=1)
    p.add_argument("--noise", type=float, default=0.02)
    p.add_argument("--horizon", type=int, default=10, help="test rollout frames (predicted)")
    p.add_argument("--seeds", type=_int_list, default=[0, 1, 2])
    p.add_argument("--ranks", type=_int_list, default=[1, 2, 3, 4])
    p.add_argument("--layer-ranks", type=_int_list, default=[], help="layer-level CP ranks (optional)")
    p.add_argument("--repeats", type=int, default=30, help="timing repeats")
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    p.add_argument("--data-dir", type=Path, default=None)
    p.add_argument("--name", default="surrogate_compression")
    return p.parse_args(argv)


def dataset_settings(args) -> dict:
    return {"grid": args.grid, "n_frames": args.frames, "save_every": args.save_every,
            "speed": args.speed, "source": args.source, "boundary": args.boundary,
            "width": (0.05, 0.1)}


def make_data(args) -> dict[str, Path]:
    from wavefe.dataset import generate_splits

    settings = dataset_settings(args)
    sizes = {"train": args.train, "val": args.val, "test": args.test}
    text = json.dumps([settings, sizes, args.data_seed], sort_keys=True)
    key = hashlib.sha1(text.encode()).hexdigest()[:10]
    directory = args.data_dir or RESULTS_DIR / f"surrogate_data_{key}"
    paths = {name: directory / f"{name}.h5" for name in sizes}
    if all(p.is_file() for p in paths.values()):
        return paths
    tick = time.perf_counter()
    paths = generate_splits(directory, sizes, seed=args.data_seed, overwrite=True, workers=1, **settings)
    print(f"generated {sizes} at grid {args.grid} in {time.perf_counter() - tick:.1f} s -> {directory}")
    return paths


def solver_seconds_per_frame(args, batch: int) -> float:
    """wavefe's explicit solver: median time to advance ``batch`` media by one saved frame, per frame."""
    from wavefe.explicit import ExplicitWave
    from wavefe.samples import DatasetConfig, sample_inputs

    config = DatasetConfig(**dataset_settings(args))
    mesh = config.mesh()
    drawn = [sample_inputs(config, mesh.points, np.random.default_rng([99, 2, i])) for i in range(batch)]
    sim = ExplicitWave(mesh, np.stack([d[0] for d in drawn]), dt=config.dt(), boundary=config.boundary,
                       dtype=np.float32, check_cfl=False)
    sim.set_state(np.stack([d[2] for d in drawn]))
    frames = 20
    timing = measure(lambda: sim.run(frames, config.save_every), warmup=2, repeats=7)
    return timing.median / (frames * batch)


def surrogate_seconds_per_frame(model, ny, nx, batch: int, repeats: int, compute: str = "auto") -> float:
    """Median inference time per frame (s) at ``batch``; ``compute`` is set on every CP layer."""
    x = torch.randn(batch, 3, ny, nx)
    x[:, 2] = 1.5
    model.eval()
    layers = [m for m in model.modules() if isinstance(m, CPConv2d)]
    saved = [layer.compute for layer in layers]
    for layer in layers:
        layer.compute = compute
    try:
        with torch.no_grad():
            timing = measure(lambda: model(x), warmup=3, repeats=repeats)
    finally:
        for layer, value in zip(layers, saved, strict=True):
            layer.compute = value
    return timing.median / batch


def main(argv=None) -> Report:
    import surrogate
    from surrogate.costs import model_costs
    from surrogate.data import WaveWindows, read_info

    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    import numba

    numba.set_num_threads(min(args.threads, numba.config.NUMBA_NUM_THREADS))  # same cores for both
    paths = make_data(args)
    info = read_info(paths["test"])
    train = WaveWindows(paths["train"], preload=True)
    configs = [("dense", None), *(("cp", r) for r in args.ranks),
               *(("cp-layer", r) for r in args.layer_ranks)]
    report = Report(args.name, notes={"settings": vars(args) | {"data_dir": None, "seeds": args.seeds},
                                      "data": {k: str(v) for k, v in paths.items()},
                                      "grid_nodes": [info.ny, info.nx]})
    runs = []
    for conv, rank in configs:
        for seed in args.seeds:
            model = surrogate.build_model(conv, rank, width=args.width, depth=args.depth,
                                          kernel_size=args.kernel_size, seed=seed)
            tick = time.perf_counter()
            history = surrogate.fit(model, train, paths["val"], epochs=args.epochs, lr=args.lr,
                                    batch_size=args.batch_size, seed=seed, patience=args.patience,
                                    val_horizon=args.horizon, unroll=args.unroll, noise=args.noise)
            seconds = time.perf_counter() - tick
            metrics, _ = surrogate.evaluate(model, paths["test"], args.horizon, with_costs=False)
            run = {"conv": conv, "rank": rank, "seed": seed, "train_s": seconds,
                   "epochs_run": len(history["epoch"]), "best_epoch": history["best_epoch"],
                   "val_nrmse": history["best_val_nrmse"],
                   "train_loss_per_epoch": history["train_loss"],
                   "val_nrmse_per_epoch": history["val_nrmse"],
                   **{k: v for k, v in metrics.items() if not isinstance(v, list)}}
            runs.append(run)
            print(f"{conv:8s} rank {rank!s:4s} seed {seed}: test nRMSE {metrics['nrmse']:.4f} "
                  f"(val {history['best_val_nrmse']:.4f}), {seconds:.0f} s, {run['epochs_run']} epochs",
                  flush=True)
        costs = model_costs(model, info.ny, info.nx, timing_repeats=args.repeats)
        costs["seconds_per_frame_b16"] = surrogate_seconds_per_frame(model, info.ny, info.nx, 16,
                                                                     args.repeats)
        has_cp = any(isinstance(m, CPConv2d) for m in model.modules())
        for b in (1, 16):  # only CPConv2d layers have a second way to compute: no repeat timing otherwise
            costs[f"seconds_per_frame_kernel_b{b}"] = surrogate_seconds_per_frame(
                model, info.ny, info.nx, b, args.repeats, compute="kernel") if has_cp else float("nan")
        for run in runs:
            if run["conv"] == conv and run["rank"] == rank:
                run.update(costs)
    report.notes["runs"] = runs

    dense = [r for r in runs if r["conv"] == "dense"]
    dense_err = statistics.mean(r["nrmse"] for r in dense)
    dense_params = dense[0]["parameters"]
    for conv, rank in configs:
        rows = [r for r in runs if r["conv"] == conv and r["rank"] == rank]
        errs = [r["nrmse"] for r in rows]
        first = rows[0]
        report.add(model=conv if rank is None else f"{conv} R={rank}", params=first["parameters"],
                   compression=dense_params / first["parameters"], macs=first["macs_per_frame"],
                   act_MiB=first["train_activation_bytes"] / 2**20,
                   stored_KiB=first["stored_bytes"] / 1024, ms_frame=first["seconds_per_frame"] * 1e3,
                   ms_frame_b16=first["seconds_per_frame_b16"] * 1e3,
                   ms_kernel=first["seconds_per_frame_kernel_b1"] * 1e3,
                   ms_kernel_b16=first["seconds_per_frame_kernel_b16"] * 1e3,
                   train_s=statistics.mean(r["train_s"] for r in rows),
                   nrmse=statistics.mean(errs), nrmse_sd=statistics.stdev(errs) if len(errs) > 1 else 0.0,
                   nrmse_seeds=" / ".join(f"{e:.4f}" for e in errs),
                   vs_dense=statistics.mean(errs) / dense_err,
                   vrmse=statistics.mean(r["vrmse"] for r in rows),
                   final=statistics.mean(r["rel_l2_final"] for r in rows),
                   band_high=statistics.mean(r["band_high"] for r in rows))
    print_table(report.rows)
    goal = [r for r in report.rows if r["compression"] >= 5 and r["vs_dense"] <= 1.2]
    report.notes["goal_met_by"] = [r["model"] for r in goal]
    print("goal (>= 5x fewer parameters, nRMSE <= 1.2x dense):",
          ", ".join(report.notes["goal_met_by"]) or "not met")

    solver = {b: solver_seconds_per_frame(args, b) for b in (1, 16)}
    timed = [("dense", surrogate.build_model("dense", width=args.width, depth=args.depth,
                                             kernel_size=args.kernel_size), "auto")]
    for rank in args.ranks:
        model = surrogate.build_model("cp", rank, width=args.width, depth=args.depth,
                                      kernel_size=args.kernel_size)
        timed += [(f"cp R={rank} {compute}", model, compute) for compute in ("factored", "kernel")]
    timing_rows = []
    for b in (1, 16):
        for label, m, compute in timed:
            s = surrogate_seconds_per_frame(m, info.ny, info.nx, b, args.repeats, compute=compute)
            timing_rows.append({"batch": b, "surrogate": label, "surrogate_ms": s * 1e3,
                                "wavefe_ms": solver[b] * 1e3, "surrogate/wavefe": s / solver[b]})
    print(f"time per saved frame ({args.save_every} solver steps), grid {info.ny}x{info.nx}:")
    print_table(timing_rows)
    report.notes["time_per_frame"] = timing_rows
    write_results(report)
    return report


if __name__ == "__main__":
    main()
