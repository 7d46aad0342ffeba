"""The pieces of the surrogate study (``benchmarks/surrogate_compression.py``): data, one training
run, statistics, solver timing and the Pareto figure.

Data: per family (``layered``, ``random``) a train / val / test file from ``wavefe.generate_dataset``
(Ricker point sources by default, so the files carry the frame forcing ``/fields/f``), plus one test
split of layered granular media whose materials come from jammed packings
(``wavefe.media.read_material`` of ``granular`` packing files, speeds scaled so the fastest is 2, the
other families' fastest, which keeps dt and the stride the same).
A run trains one model on the two training files together (the normalisation from both), with early
stopping on the rollout nRMSE of both validation files, and scores it on the test files.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from pathlib import Path

import numpy as np

FAMILIES = ("layered", "random")


def dataset_settings(a: dict, speed: str) -> dict:
    return {"grid": a["grid"], "n_frames": a["frames"], "save_every": a["save_every"], "speed": speed,
            "source": a["source"], "boundary": a["boundary"], "frequency": tuple(a["frequency"]),
            "width": (0.04, 0.08)}


def _key(obj) -> str:
    return hashlib.sha1(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:10]


def packing_files(a: dict, root: Path) -> list[str]:
    """The packings of the granular split: given ones, or jammed here once (cached by settings)."""
    if a["packings"]:
        return [str(p) for p in a["packings"]]
    from granular.diagram import DiagramSettings, jamming_diagram, point_name

    xs, delta = (0.2, 0.5, 0.8), 0.5
    folder = root / f"surrogate_packings_n{a['packing_n']}"
    files = [folder / point_name(delta, x, 0) for x in xs]
    if not all(f.is_file() for f in files):
        tick = time.perf_counter()
        jamming_diagram([delta], list(xs), [0], folder, DiagramSettings(n=a["packing_n"], n_large=None,
                                                                       excess_phi=1e-2), workers=1)
        print(f"jammed {len(xs)} packings of {a['packing_n']} particles in "
              f"{time.perf_counter() - tick:.0f} s -> {folder}", flush=True)
    return [str(f) for f in files]


def make_data(a: dict, root: Path) -> dict[str, Path]:
    """Generate (once; reused when the settings match) every split; returns name -> path."""
    from wavefe import media
    from wavefe.dataset import generate_dataset

    sizes = {"train": a["train"], "val": a["val"], "test": a["test"]}
    directory = Path(a["data_dir"] or root / f"surrogate_study_{_key([a[k] for k in DATA_KEYS])}")
    paths = {}
    for k, family in enumerate(FAMILIES):
        settings = dataset_settings(a, family)
        for split, n in sizes.items():
            path = directory / f"{family}_{split}.h5"
            if not path.is_file():
                generate_dataset(path, n, seed=a["data_seed"] + k, split=split, workers=a["jobs"],
                                 xdmf=False, **settings)
            paths[f"{family}_{split}"] = path
    path = directory / "granular_test.h5"
    if a["granular_test"] and not path.is_file():
        files = packing_files(a, root)
        speeds = [media.read_material(f).speed for f in files]
        # Scaled so the fastest material runs at the other families' c_max (2): the same dt and stride.
        settings = dataset_settings(a, "granular") | {"granular": tuple(files), "n_layers": 3,
                                                      "speed_scale": 2.0 / max(speeds)}
        generate_dataset(path, a["granular_test"], seed=a["data_seed"] + 7, split="test",
                         workers=a["jobs"], xdmf=False, **settings)
    if a["granular_test"]:
        paths["granular_test"] = path
    return paths


DATA_KEYS = ("grid", "frames", "save_every", "source", "boundary", "frequency", "train", "val", "test",
             "granular_test", "data_seed", "packing_n", "packings")


def _concat(paths, forcing: bool):
    from surrogate.data import load_trajectories

    parts = [load_trajectories(p, with_forcing=True) for p in paths]
    u = np.concatenate([p[0] for p in parts])
    c = np.concatenate([p[1] for p in parts])
    f = np.concatenate([p[2] for p in parts]) if forcing else None
    return u, c, f


def wrapper_options(a: dict) -> dict:
    """The wrapper's options every model of the study shares: the data's Dirichlet sides continued
    oddly (``boundary="dirichlet"``), the reversible form."""
    return {"boundary": "dirichlet" if a["boundary"] == "dirichlet" else "zero",
            "reversible": bool(a["reversible"])}


def build(a: dict, conv: str, rank, seed: int, forcing: bool):
    import surrogate

    options = wrapper_options(a) | {"seed": seed, "forcing": forcing}
    if conv == "fno":
        return surrogate.build_model("fno", width=a["fno_width"], depth=a["fno_depth"], modes=a["fno_modes"],
                                     **options)
    if conv == "unet":
        return surrogate.build_model("unet", width=a["unet_width"], depth=a["unet_depth"], **options)
    return surrogate.build_model(conv, rank, width=a["width"], depth=a["depth"], kernel_size=a["kernel_size"],
                                 body=a["body"], **options)


def train_one(a: dict, paths: dict, conv: str, rank, seed: int, forcing: bool) -> dict:
    """Train and score one model (a worker task; returns plain data)."""
    import torch
    from torch.utils.data import ConcatDataset

    import surrogate
    from surrogate.costs import model_costs
    from surrogate.data import Normalisation, WaveWindows

    torch.set_num_threads(a["threads"])
    model = build(a, conv, rank, seed, forcing)
    train_paths = [paths[f"{fam}_train"] for fam in FAMILIES]
    u, c, _ = _concat(train_paths, False)
    model.set_normalisation(Normalisation.from_arrays(u, c))
    del u, c
    windows = ConcatDataset([WaveWindows(p, preload=True, steps=a["unroll"], forcing=forcing)
                             for p in train_paths])
    val = _concat([paths[f"{fam}_val"] for fam in FAMILIES], forcing)
    val = val if forcing else val[:2]
    tick = time.perf_counter()
    history = surrogate.fit(model, windows, val, epochs=a["epochs"], lr=a["lr"], batch_size=a["batch_size"],
                            seed=seed, patience=a["patience"], min_delta=a["min_delta"],
                            min_epochs=a["min_epochs"],
                            val_horizon=a["horizon"], val_start=a["start"], unroll=a["unroll"],
                            noise=a["noise"], windows_per_epoch=a["windows_per_epoch"], device=a["device"],
                            schedule=a["schedule"])
    seconds = time.perf_counter() - tick
    run = {"conv": conv, "rank": rank, "seed": seed, "forcing": forcing, "train_s": seconds,
           "epochs_run": len(history["epoch"]), "best_epoch": history["best_epoch"],
           "stopped_early": history["stopped_early"], "val_nrmse": history["best_val_nrmse"],
           "train_loss_per_epoch": history["train_loss"], "val_nrmse_per_epoch": history["val_nrmse"]}
    tests = {"test": [paths[f"{fam}_test"] for fam in FAMILIES]}
    if "granular_test" in paths:
        tests["granular"] = [paths["granular_test"]]
    for name, files in tests.items():
        data = _concat(files, forcing)
        data = data if forcing else data[:2]
        metrics, _ = surrogate.evaluate(model, data, a["horizon"], start=a["start"], with_costs=False)
        for key in ("nrmse", "vrmse", "rel_l2_final", "rel_l2_per_step", "vrmse_per_step", "band_high",
                    "max_error_rel"):
            run[f"{name}_{key}"] = metrics[key]
    ny, nx = val[0].shape[2:]
    run.update(model_costs(model, ny, nx, timing_repeats=a["repeats"]))
    return run


def interval(values) -> tuple[float, float, float]:
    """Mean and the 95 % Student-t interval (lo, hi) of ``values``; (x, nan, nan) for one value."""
    from scipy import stats

    v = np.asarray(values, dtype=float)
    m = float(v.mean())
    if len(v) < 2:
        return m, math.nan, math.nan
    half = float(stats.t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / math.sqrt(len(v)))
    return m, m - half, m + half


def welch_p(a, b) -> float:
    """Two-sided Welch t-test p-value of equal means (nan with fewer than two values each)."""
    from scipy import stats

    if len(a) < 2 or len(b) < 2:
        return math.nan
    return float(stats.ttest_ind(a, b, equal_var=False).pvalue)


def solver_timing(a: dict, batch: int) -> dict:
    """wavefe's explicit solver at the study's grid: median seconds per step and per simulated time
    unit, per medium, advancing ``batch`` media together (one thread)."""
    from benchmarks.harness import measure
    from wavefe.explicit import ExplicitWave
    from wavefe.samples import DatasetConfig, sample_inputs

    config = DatasetConfig(**dataset_settings(a, "layered"))
    mesh = config.mesh()
    drawn = [sample_inputs(config, mesh.points, np.random.default_rng([99, 2, i])) for i in range(batch)]
    sim = ExplicitWave(mesh, np.stack([d[0] for d in drawn]), dt=config.dt(), boundary=config.boundary,
                       sources=[d[1] for d in drawn], dtype=np.float32, check_cfl=False)
    steps = 64
    timing = measure(lambda: sim.advance(steps), warmup=2, repeats=9)
    per_step = timing.median / (steps * batch)
    return {"batch": batch, "dt": config.dt(), "seconds_per_step": per_step,
            "seconds_per_time_unit": per_step / config.dt()}


def pareto_figure(groups: list[dict], path: Path, title: str) -> None:
    """Test nRMSE (mean and 95 % interval over seeds) against trainable parameters, every model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from jamcommon.files import atomic_path

    fig, ax = plt.subplots(figsize=(7, 4.6), layout="constrained")
    markers = {"dense": "s", "cp": "o", "cp-layer": "v", "fno": "D", "unet": "^"}
    for g in groups:
        lo, hi = g["test_nrmse_lo"], g["test_nrmse_hi"]
        err = None if math.isnan(lo) else [[g["test_nrmse"] - lo], [hi - g["test_nrmse"]]]
        ax.errorbar(g["parameters"], g["test_nrmse"], yerr=err, marker=markers.get(g["conv"], "x"),
                    capsize=3, linestyle="none", label=f"{g['model']} ({g['seeds']} seeds)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("trainable parameters")
    ax.set_ylabel("test nRMSE (rollout, mean over seeds, 95 % interval)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, ncol=2)
    ax.grid(True, which="both", alpha=0.3)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path, overwrite=True) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)


def load_average() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]
