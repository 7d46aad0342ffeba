"""The end-to-end demo behind ``jamwave demo``: from grains to a pruned wave surrogate.

Stages, each writing files the next one reads (so any stage reruns alone, and an interrupted demo
resumes at the first stage whose output is missing):

1. ``packings/{media,asymmetric,reference}/``: three small jamming-diagram sweeps
   (:mod:`jamwave.demo_packings`): delta 0.5 (the media), delta 0.15 on both sides of X*_S (first
   and second transitions, K on each), and O'Hern et al.'s mixture; ``packings/diagram.png``.
2. ``medium.png``: the granular media, c = sqrt(K / rho) per mixture (:mod:`wavefe.media`).
3. ``waves/{train,val,test}.h5``: wave datasets in layered granular media (:mod:`wavefe.dataset`).
4. ``models/{dense,cp}.pt``: a dense and a CP-compressed surrogate (:func:`surrogate.train_model`), each
   scored on the test split (``models/*.json``, ``models/*.png``).
5. ``pruning/<model>/{sap,lt}/``: the trained surrogates of stage 4 pruned by SAP and by lottery
   ticket to their accuracy limit (:mod:`jamwave.demo_pruning`).
6. ``report.md`` and ``report.html``: a summary of the headline numbers beside published or peer
   values (:mod:`jamwave.demo_summary`), the numbers of each stage, the plots, and the command that
   reproduces each stage; ``summary.json``.

Each stage is one function ``<name>_stage(run, report, *inputs) -> outputs``: it reads the run's
settings (:class:`jamwave.demo_run.DemoRun`), takes what the stages before it returned, appends its
section to the report (:class:`jamwave.report.Document`) and returns what the next stages need.
"""

from __future__ import annotations

import json
import math
import os
import resource
import time
from dataclasses import asdict
from pathlib import Path

from granular.backend import BACKENDS
from jamcommon.files import atomic_write_text
from jamwave.demo_packings import packings_stage
from jamwave.demo_plots import plot_media, plot_wave_sample
from jamwave.demo_pruning import pruning_stage
from jamwave.demo_run import DemoRun, dask_executor
from jamwave.demo_sizes import SIZES
from jamwave.demo_summary import summary_rows, write_summary
from jamwave.report import Document


def run_demo(out, *, size: str = "small", backend: str = "auto", scheduler: str | None = None,
             workers: int | None = None, seed: int = 0, force: bool = False,
             progress: bool = False) -> Path:
    """Run (or resume) the demo into folder ``out`` and return the path of ``report.md``.

    Parameters
    ----------
    out : path-like
        Output folder; created if missing.
    size : {"tiny", "small", "medium", "large"}
        Preset (:data:`SIZES`): ``small`` takes minutes on two CPU cores, ``large`` is for a GPU
        or a cluster; ``tiny`` is a smoke test.
    backend : {"auto", "cpu", "cuda"}
        DEM backend.
    scheduler : str, optional
        Dask scheduler address; the packing sweeps and the wave generation then run on that cluster.
    workers : int, optional
        Local worker processes (default: all cores).
    seed : int
        Root seed of packings, waves and training.
    force : bool
        Recompute every stage (otherwise finished stages are reused).
    progress : bool
        Show stage-by-stage progress on stderr.
    """
    if size not in SIZES:
        raise ValueError(f"size must be one of {tuple(SIZES)}, got {size!r}")
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if int(seed) != seed or seed < 0:
        raise ValueError(f"seed must be an integer >= 0, got {seed}")
    run = DemoRun(Path(out), SIZES[size], backend=backend, scheduler=scheduler, workers=workers,
                  seed=int(seed), force=force, progress=progress)
    run.out.mkdir(parents=True, exist_ok=True)
    report = Document(f"jamwave demo ({size})")
    summary = report.section("Summary")
    intro = report.section("Overview")
    intro.text(
        "From grains to waves to a pruned neural surrogate. Each stage below writes files that the "
        "next stage reads; rerunning the demo skips finished stages, and each stage's command "
        "reruns it alone."
    )
    intro.table([{"setting": k, "value": str(v)} for k, v in asdict(run.preset).items()])
    clock = _StageClock()
    packings = clock.time("packings", packings_stage, run, report)
    clock.time("medium", medium_stage, run, report, packings.media_files)
    splits = clock.time("waves", waves_stage, run, report, packings.media_files)
    models = clock.time("surrogates", surrogates_stage, run, report, splits)
    pruning = clock.time("pruning", pruning_stage, run, report, splits, models)
    write_summary(run, summary, summary_rows(run, packings, models, pruning))
    intro.text(f"Stage times of this invocation (a stage reused from an earlier run takes about 0 s); "
               f"load average {os.getloadavg()[0]:.1f} at the end on {os.cpu_count()} CPU cores. CPU "
               "seconds count this process and its finished worker processes.")
    intro.table(clock.rows)
    md, _ = report.write(run.out)
    run.say(f"report: {md}")
    return md


class _StageClock:
    """Wall and CPU seconds of each stage (CPU: this process and its reaped children)."""

    def __init__(self):
        self.rows: list[dict] = []

    @staticmethod
    def _cpu() -> float:
        own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime

    def time(self, name: str, stage, *args):
        wall, cpu = time.perf_counter(), self._cpu()
        out = stage(*args)
        self.rows.append({"stage": name, "wall s": round(time.perf_counter() - wall, 1),
                          "CPU s": round(self._cpu() - cpu, 1)})
        return out


# 2. granular media -----------------------------------------------------------------------------
def medium_stage(run: DemoRun, report: Document, packing_files: list[Path]) -> list:
    """Turn each packing into a granular material (c = sqrt(K / rho)); return the materials."""
    from wavefe import media

    run.say("2/5 granular media: c = sqrt(K / rho)")
    materials = [media.read_material(path) for path in packing_files]
    rows = [{"X_S": m.x_small, "K*": m.K_star, "rho = phi": m.phi, "c = sqrt(K*/phi)": m.speed}
            for m in materials]
    plot_media(materials, run.out / "medium.png")
    sec = report.section("2. Granular media")
    sec.text(
        "Each packing becomes a granular material with bulk density rho = phi * rho_grain and "
        "longitudinal wave speed c = sqrt(K / rho) (reduced units: d_L = 1, grain density 1, "
        "k_n = 1). The wave datasets stack these materials in layers."
    )
    sec.table(rows)
    sec.figure("medium.png", "Wave speed of each granular mixture")
    return materials


# 3. wave datasets ------------------------------------------------------------------------------
def waves_stage(run: DemoRun, report: Document, packing_files: list[Path]) -> dict[str, Path]:
    """Generate the train, val and test wave datasets in layered granular media; return their files."""
    p = run.preset
    run.say(f"3/5 wave datasets ({'/'.join(map(str, p.samples))} samples, {p.grid}^2 cells)")
    folder = run.out / "waves"
    sizes = dict(zip(("train", "val", "test"), p.samples))
    splits = {split: folder / f"{split}.h5" for split in sizes}
    config = _dataset_config(run, packing_files)
    _generate_splits(run, config, splits, sizes)
    cost_path = folder / "solver_cost.json"
    if run.force or not cost_path.exists():
        atomic_write_text(cost_path, json.dumps(solver_cost(config, run.seed), indent=1), overwrite=True)
    plot_wave_sample(splits["test"], folder / "snapshots.png")
    sec = report.section("3. Wave datasets")
    sec.text(
        f"P1 finite elements, explicit central differences with lumped mass, absorbing sides, "
        f"{p.grid} x {p.grid} cells, {p.n_frames} frames every {p.save_every} steps; "
        f"{'Ricker point sources' if p.source == 'ricker' else 'Gaussian initial pulses'} in "
        f"{len(packing_files)} granular layers. Files follow the schema "
        "jamwave.wave2d/1 (plain h5py, with an .xdmf side-car for ParaView)."
    )
    sec.table([{"split": k, "samples": v, "file": f"waves/{k}.h5"} for k, v in sizes.items()])
    sec.figure("waves/snapshots.png", "A test sample: speed map and wave snapshots")
    packings = " ".join(str(f) for f in packing_files)
    for split, n in sizes.items():
        sec.command(
            f"jamwave wavefe dataset --samples {n} --grid {p.grid} --frames {p.n_frames} "
            f"--save-every {p.save_every} --speed granular --granular {packings} --source {p.source} "
            f"--boundary absorbing --seed {run.seed} --split {split} --out {folder}/{split}.h5"
        )
    return splits


def _dataset_config(run: DemoRun, packing_files: list[Path]):
    """The :class:`wavefe.samples.DatasetConfig` of the demo's wave datasets."""
    from wavefe.samples import DatasetConfig

    p = run.preset
    return DatasetConfig(grid=p.grid, n_frames=p.n_frames, save_every=p.save_every,
                         speed="granular", source=p.source, boundary="absorbing",
                         n_layers=len(packing_files), granular=tuple(str(f) for f in packing_files))


def solver_cost(config, seed: int, repeats: int = 7) -> dict:
    """The explicit FE solver's cost of one stored frame (``save_every`` steps) of one sample, on one
    thread: median wall seconds of ``repeats`` frames, and node updates per frame."""
    import numba
    import numpy as np

    from wavefe.explicit import ExplicitWave
    from wavefe.samples import sample_inputs

    mesh = config.mesh()
    c, sources, u0, _ = sample_inputs(config, mesh.points, np.random.default_rng([seed, 99]))
    sim = ExplicitWave(mesh, c, dt=config.dt(), boundary=config.boundary, sources=sources,
                       dtype=np.float32, check_cfl=False)
    sim.set_state(u0)
    threads = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        sim.advance(config.save_every)  # compile and warm up
        times = []
        for _ in range(repeats):
            tick = time.perf_counter()
            sim.advance(config.save_every)
            times.append(time.perf_counter() - tick)
    finally:
        numba.set_num_threads(threads)
    return {"seconds_per_frame": float(np.median(times)), "steps_per_frame": int(config.save_every),
            "node_updates_per_frame": int(len(mesh.points) * config.save_every),
            "load_average": os.getloadavg()[0]}


def _generate_splits(run: DemoRun, config, splits: dict[str, Path], sizes: dict[str, int]) -> None:
    """Write the split files that are missing (all of them with ``force``)."""
    from wavefe.dataset import generate_dataset

    todo = [split for split, path in splits.items() if run.force or not path.exists()]
    executor, close = dask_executor(run.scheduler) if todo else (None, None)
    try:
        # generate_dataset resumes a split whose generation was interrupted.
        for split in todo:
            generate_dataset(splits[split], sizes[split], config=config, seed=run.seed, split=split,
                             workers=run.workers, executor=executor, overwrite=run.force,
                             progress=run.progress)
    finally:
        if close is not None:
            close()


# 4. surrogates ---------------------------------------------------------------------------------
def surrogates_stage(run: DemoRun, report: Document, splits: dict[str, Path]) -> dict[str, tuple]:
    """Train a dense and a CP surrogate and score them on the test split.

    Returns ``{"dense": (model file, metrics), "cp": (model file, metrics)}``.
    """
    import torch

    # The demo's tensors are small: one thread is as fast, and far faster on a busy machine.
    torch.set_num_threads(1)
    p = run.preset
    folder = run.out / "models"
    folder.mkdir(exist_ok=True)
    models = {}
    for name, conv, rank in (("dense", "dense", None), ("cp", "cp", p.rank)):
        run.say(f"4/5 training the {name} surrogate ({p.epochs} epochs)")
        models[name] = _train_and_score(run, splits, folder, name, conv, rank)
    solver = json.loads((splits["test"].parent / "solver_cost.json").read_text())
    rows = [{"model": name, "parameters": m["parameters"], "MACs/frame": m["macs_per_frame"],
             "nRMSE": m["nrmse"], "VRMSE": m["vrmse"], "energy drift": m.get("energy_drift", math.nan),
             "ms/frame": 1e3 * m["seconds_per_frame"],
             "time / solver's": m["seconds_per_frame"] / solver["seconds_per_frame"]}
            for name, (_, m) in models.items()]
    rows.append({"model": f"FE solver ({solver['steps_per_frame']} steps/frame)", "parameters": "",
                 "MACs/frame": "", "nRMSE": 0.0, "VRMSE": 0.0, "energy drift": "",
                 "ms/frame": 1e3 * solver["seconds_per_frame"], "time / solver's": 1.0})
    dense, cp = models["dense"][1], models["cp"][1]
    sec = report.section("4. Dense and CP-compressed surrogates")
    sec.text(
        f"Residual CNNs mapping (u^(n-1), u^n, c{', f^n' if p.source == 'ricker' else ''}) to u^(n+1) "
        f"{'(f^n: the frame forcing of the Ricker sources) ' if p.source == 'ricker' else ''}"
        f"with one frame = {p.save_every} solver steps, trained on the train split (at most "
        f"{p.epochs} epochs, early stopping after {p.patience} without improvement) and "
        f"scored by autoregressive rollout over {p.horizon} predicted frames of the test split "
        f"from the true frames {p.start} and {p.start + 1}. "
        f"The CP model (rank {p.rank}: each kernel a sum of rank-one channel x vertical x "
        f"horizontal filters, trained directly) has {dense['parameters'] / cp['parameters']:.1f}x "
        f"fewer trainable parameters; its nRMSE is {cp['nrmse'] / dense['nrmse']:.2f}x the dense one. "
        f"Times per frame are single-threaded medians on this machine (load average "
        f"{solver['load_average']:.1f} when the solver was timed), for one sample; the solver row is "
        f"the explicit FE scheme advancing the {solver['steps_per_frame']} time steps of one frame."
    )
    sec.table(rows)
    for name in ("dense", "cp"):
        sec.figure(f"models/{name}.png", f"{name} surrogate: true vs predicted rollout, error curve")
        conv = "dense" if name == "dense" else f"cp --rank {p.rank}"
        sec.command(
            f"jamwave surrogate train --data {splits['train']} --val {splits['val']} "
            f"--conv {conv} --width {p.width} --depth {p.depth} --epochs {p.epochs} "
            f"--lr {p.lr} --noise {p.noise} --patience {p.patience} --schedule {p.schedule} "
            f"--body {p.body} --boundary {p.boundary}{' --reversible' if p.reversible else ''} "
            f"--seed {run.seed} --out {folder}/{name}.pt"
        )
        sec.command(f"jamwave surrogate evaluate --model {folder}/{name}.pt --data "
                    f"{splits['test']} --horizon {p.horizon} --start {p.start} --out {folder}/{name}.json")
    return models


def _train_and_score(run: DemoRun, splits: dict[str, Path], folder: Path, name: str, conv: str,
                     rank: int | None) -> tuple[Path, dict]:
    """Train (or load) surrogate ``name`` and score it on the test split (or read its scores)."""
    import surrogate
    from surrogate.plots import plot_rollout

    p = run.preset
    path = folder / f"{name}.pt"
    if path.exists() and not run.force:
        model = surrogate.load(path)
    else:
        model = surrogate.train_model(splits["train"], splits["val"], path, conv=conv, rank=rank,
                                      width=p.width, depth=p.depth, seed=run.seed, overwrite=True,
                                      progress=run.progress, model_options=p.model_options,
                                      **p.fit_options)
    metrics_path = folder / f"{name}.json"
    if metrics_path.exists() and not run.force:
        return path, json.loads(metrics_path.read_text())
    metrics, result = surrogate.evaluate(model, splits["test"], p.horizon, start=p.start)
    plot_rollout(result, metrics, folder / f"{name}.png", overwrite=True)
    atomic_write_text(metrics_path, json.dumps(metrics, indent=2, default=float), overwrite=True)
    return path, metrics
