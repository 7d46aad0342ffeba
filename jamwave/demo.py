"""The end-to-end demo behind ``jamwave demo``: from grains to a pruned wave surrogate.

Stages, each writing files the next one reads (so any stage reruns alone, and an interrupted demo
resumes at the first stage whose output is missing):

1. ``packings/``: bidisperse packings jammed at two or three X_S for one size ratio delta, each
   followed under compression and measured at phi_J + excess_phi (phi_J, K*, partial moduli); this is
   a small jamming-diagram sweep (:func:`granular.diagram.jamming_diagram`).
2. ``medium.png``: the granular media, c = sqrt(K / rho) per mixture (:mod:`wavefe.media`).
3. ``waves/{train,val,test}.h5``: wave datasets in layered granular media (:mod:`wavefe.dataset`).
4. ``models/{dense,cp}.pt``: a dense and a CP-compressed surrogate (:func:`surrogate.train_model`), each
   scored on the test split (``models/*.json``, ``models/*.png``).
5. ``pruning/{sap,lt}/``: the CP surrogate pruned by SAP and by lottery ticket
   (:func:`surrogate.pruning.prune_iteratively`), compared in ``pruning/compare.png``.
6. ``report.md`` and ``report.html``: the numbers of each stage, the plots, and the command that
   reproduces each stage.

Each stage is one function ``<name>_stage(run, report, *inputs) -> outputs``: it reads the run's
settings (:class:`DemoRun`), takes what the stages before it returned (file paths), appends its
section to the report (:class:`jamwave.report.Document`) and returns what the next stages need.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from granular.backend import BACKENDS
from jamcommon.files import atomic_write_text
from jamwave.demo_plots import plot_media, plot_pressure_path, plot_wave_sample
from jamwave.demo_sizes import SIZES, DemoSize
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
        Dask scheduler address; the packing sweep and the wave generation then run on that cluster.
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
    intro = report.section("Overview")
    intro.text(
        "From grains to waves to a pruned neural surrogate. Each stage below writes files that the "
        "next stage reads; rerunning the demo skips finished stages, and each stage's command "
        "reruns it alone."
    )
    intro.table([{"setting": k, "value": str(v)} for k, v in asdict(run.preset).items()])
    timings = {}
    start = time.perf_counter()
    packing_files = packings_stage(run, report)
    timings["packings"], start = _lap(start)
    medium_stage(run, report, packing_files)
    timings["medium"], start = _lap(start)
    splits = waves_stage(run, report, packing_files)
    timings["waves"], start = _lap(start)
    models = surrogates_stage(run, report, splits)
    timings["surrogates"], start = _lap(start)
    pruning_stage(run, report, splits, models["cp"][0])
    timings["pruning"], _ = _lap(start)
    intro.table([{"stage": k, "seconds": v} for k, v in timings.items()])
    md, _ = report.write(run.out)
    run.say(f"report: {md}")
    return md


def _lap(start: float) -> tuple[float, float]:
    """(seconds since ``start`` rounded to 0.1, the time now)."""
    now = time.perf_counter()
    return round(now - start, 1), now


@dataclass(frozen=True)
class DemoRun:
    """The settings every stage of one demo run reads (see :func:`run_demo` for their meaning)."""

    out: Path
    preset: DemoSize
    backend: str = "auto"
    scheduler: str | None = None
    workers: int | None = None
    seed: int = 0
    force: bool = False
    progress: bool = False

    def say(self, message: str) -> None:
        """Print a progress line on stderr when ``progress`` is on."""
        if self.progress:
            import sys

            print(f"[jamwave demo] {message}", file=sys.stderr, flush=True)


# 1. packings, jamming, bulk modulus ------------------------------------------------------------
def packings_stage(run: DemoRun, report: Document) -> list[Path]:
    """Jam and measure one packing per X_S (a small jamming-diagram sweep); return their files."""
    from granular.diagram import DiagramSettings, jamming_diagram, point_name, read_diagram

    p = run.preset
    run.say(f"1/5 jamming {len(p.x_small)} packings (N = {p.n_particles}, delta = {p.delta})")
    folder = run.out / "packings"
    settings = DiagramSettings(n=p.n_particles, n_large=None, excess_phi=p.excess_phi, backend=run.backend)
    table = jamming_diagram([p.delta], list(p.x_small), [run.seed], folder, settings,
                            scheduler=run.scheduler, workers=run.workers, force=run.force,
                            progress=run.progress)
    packing_files = [folder / point_name(p.delta, x, run.seed) for x in p.x_small]
    rows = [_packing_row(path) for path in packing_files]
    plot_pressure_path(packing_files, rows, folder / "pressure_path.png")
    _plot_middle_slice(run, packing_files, rows)
    sec = report.section("1. Packings, jamming and bulk modulus")
    sec.text(
        f"Random bidisperse packings of {p.n_particles} frictionless spheres (size ratio delta = "
        f"{p.delta}) jammed by FIRE-relaxed bisection in phi, followed under compression to the "
        f"second transition, and measured at phi_J + {p.excess_phi}: K* = K d_L / k_n from strains "
        "of both signs and, independently, from the Hessian (affine minus non-affine)."
    )
    sec.table(rows)
    sec.figure("packings/slice.png", "Slice through the middle of a packing at phi_J + excess_phi")
    sec.figure("packings/pressure_path.png", "P and Z of the relaxed states near jamming")
    if (folder / "diagram.png").exists():
        sec.figure("packings/diagram.png", "phi_J and K* against X_S")
    axes = ", ".join(f"{v:g}" for v in read_diagram(table)["x_small"])
    sec.text(f"The sweep's table is packings/diagram.h5 (delta = {p.delta}; X_S = {axes}).")
    xs = ",".join(f"{x:g}" for x in p.x_small)
    sec.command(f"jamwave granular diagram --delta {p.delta} --xs {xs} --seeds 1 --n {p.n_particles} "
                f"--excess-phi {p.excess_phi} --out {folder}")
    return packing_files


def _packing_row(path: Path) -> dict:
    """The report's table row of one packing file (results and moduli)."""
    res, mod = _read_results(path)
    return {
        "X_S (realised)": res["x_small"], "N_S + N_L": int(res["n_small"] + res["n_large"]),
        "phi_J": res["phi_J"], "phi_J second": res.get("phi_J_second", math.nan),
        "phi": res["phi"], "Z backbone": res["Z_backbone"],
        "jammed frac. small": res["jammed_fraction_small"],
        "K*": mod["K_star"], "K* (Hessian)": mod.get("K_linear_response", math.nan),
        "K_SS": mod["K_SS"], "K_SL": mod["K_SL"], "K_LL": mod["K_LL"],
    }


def _plot_middle_slice(run: DemoRun, packing_files: list[Path], rows: list[dict]) -> None:
    """``packings/slice.png``: a slice through the middle packing (kept unless ``force``)."""
    slice_png = run.out / "packings" / "slice.png"
    if run.force or not slice_png.exists():
        from granular.h5md import read_packing
        from granular.slice_plot import plot_slice

        middle = packing_files[len(packing_files) // 2]
        plot_slice(read_packing(middle), slice_png,
                   title=f"delta = {run.preset.delta}, X_S = {rows[len(rows) // 2]['X_S (realised)']:.2f}")


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
    _generate_splits(run, packing_files, splits, sizes)
    plot_wave_sample(splits["test"], folder / "snapshots.png")
    sec = report.section("3. Wave datasets")
    sec.text(
        f"P1 finite elements, explicit central differences with lumped mass, absorbing sides, "
        f"{p.grid} x {p.grid} cells, {p.n_frames} frames every {p.save_every} steps; Gaussian "
        f"initial pulses in {len(packing_files)} granular layers. Files follow the schema "
        "jamwave.wave2d/1 (plain h5py, with an .xdmf side-car for ParaView)."
    )
    sec.table([{"split": k, "samples": v, "file": f"waves/{k}.h5"} for k, v in sizes.items()])
    sec.figure("waves/snapshots.png", "A test sample: speed map and wave snapshots")
    packings = " ".join(str(f) for f in packing_files)
    for split, n in sizes.items():
        sec.command(
            f"jamwave wavefe dataset --samples {n} --grid {p.grid} --frames {p.n_frames} "
            f"--save-every {p.save_every} --speed granular --granular {packings} --source pulse "
            f"--boundary absorbing --seed {run.seed} --split {split} --out {folder}/{split}.h5"
        )
    return splits


def _generate_splits(run: DemoRun, packing_files: list[Path], splits: dict[str, Path],
                     sizes: dict[str, int]) -> None:
    """Write the split files that are missing (all of them with ``force``)."""
    from wavefe.dataset import generate_dataset
    from wavefe.samples import DatasetConfig

    p = run.preset
    config = DatasetConfig(grid=p.grid, n_frames=p.n_frames, save_every=p.save_every,
                           speed="granular", source="pulse", boundary="absorbing",
                           n_layers=len(packing_files), granular=tuple(str(f) for f in packing_files))
    todo = [split for split, path in splits.items() if run.force or not path.exists()]
    executor, close = _executor(run.scheduler) if todo else (None, None)
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
    rows = [{"model": name, "parameters": m["parameters"], "MACs/frame": m["macs_per_frame"],
             "nRMSE": m["nrmse"], "VRMSE": m["vrmse"], "energy drift": m.get("energy_drift", math.nan),
             "ms/frame": 1e3 * m["seconds_per_frame"]} for name, (_, m) in models.items()]
    dense, cp = models["dense"][1], models["cp"][1]
    sec = report.section("4. Dense and CP-compressed surrogates")
    sec.text(
        f"Residual CNNs mapping (u^(n-1), u^n, c) to u^(n+1), trained on the train split and "
        f"scored by autoregressive rollout over {p.horizon} predicted frames of the test split. "
        f"The CP model (rank {p.rank}: each kernel a sum of rank-one channel x vertical x "
        f"horizontal filters, trained directly) has {dense['parameters'] / cp['parameters']:.1f}x "
        f"fewer trainable parameters; its nRMSE is {cp['nrmse'] / dense['nrmse']:.2f}x the dense one."
    )
    sec.table(rows)
    for name in ("dense", "cp"):
        sec.figure(f"models/{name}.png", f"{name} surrogate: true vs predicted rollout, error curve")
        conv = "dense" if name == "dense" else f"cp --rank {p.rank}"
        sec.command(
            f"jamwave surrogate train --data {splits['train']} --val {splits['val']} "
            f"--conv {conv} --width {p.width} --depth {p.depth} --epochs {p.epochs} "
            f"--lr {p.lr} --noise {p.noise} --seed {run.seed} --out {folder}/{name}.pt"
        )
        sec.command(f"jamwave surrogate evaluate --model {folder}/{name}.pt --data "
                    f"{splits['test']} --horizon {p.horizon} --out {folder}/{name}.json")
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
                                      width=p.width, depth=p.depth, seed=run.seed, epochs=p.epochs,
                                      lr=p.lr, noise=p.noise, overwrite=True, progress=run.progress)
    metrics_path = folder / f"{name}.json"
    if metrics_path.exists() and not run.force:
        return path, json.loads(metrics_path.read_text())
    metrics, result = surrogate.evaluate(model, splits["test"], p.horizon)
    plot_rollout(result, metrics, folder / f"{name}.png", overwrite=True)
    atomic_write_text(metrics_path, json.dumps(metrics, indent=2, default=float), overwrite=True)
    return path, metrics


# 5. pruning ------------------------------------------------------------------------------------
def pruning_stage(run: DemoRun, report: Document, splits: dict[str, Path], cp_model: Path) -> list[dict]:
    """Prune the CP surrogate by SAP and by lottery ticket; return the two histories.

    ``cp_model`` is only quoted in the command that reruns the stage: the rewinding point is the
    CP architecture freshly initialised with the demo's seed.
    """
    import surrogate
    from surrogate.pruning import prune_iteratively
    from surrogate.pruning.plots import plot_histories

    p = run.preset
    folder = run.out / "pruning"
    histories = []
    for method in ("sap", "lt"):
        run.say(f"5/5 pruning the CP surrogate with {method} ({p.prune_iterations} iterations)")
        model = surrogate.build_model("cp", p.rank, width=p.width, depth=p.depth, seed=run.seed)
        histories.append(prune_iteratively(
            model, (splits["train"], splits["val"]), method, "global", p.prune_iterations,
            out=folder / method, epochs=p.prune_epochs, seed=run.seed, horizon=p.horizon,
            train_options={"lr": p.lr, "noise": p.noise}, overwrite=run.force, progress=run.progress,
        ))
    plot_histories(histories, folder / "compare.png", overwrite=True)
    rows = [{"method": method, "iteration": entry["iteration"], "remaining": entry["remaining_fraction"],
             "PQI (global)": entry["pqi"]["global"], "val nRMSE": entry["val_nrmse"]}
            for method, history in zip(("SAP", "lottery ticket"), histories)
            for entry in history["entries"]]
    sec = report.section("5. Pruning the CP surrogate: SAP against lottery ticket")
    sec.text(
        "SAP (Diao et al., ICLR 2023) prunes, at each iteration, the number of weights given by "
        "the PQ Index bound (p = 0.5, q = 1), then rewinds the survivors to their initial values "
        "and retrains; the lottery ticket prunes 20 % of the remaining weights per iteration."
    )
    sec.table(rows)
    sec.figure("pruning/compare.png", "PQ Index and validation error against remaining weights")
    for method in ("sap", "lt"):
        sec.command(
            f"jamwave surrogate prune --model {cp_model} --data {splits['train']} "
            f"--val {splits['val']} --method {method} --scope global --iterations "
            f"{p.prune_iterations} --epochs {p.prune_epochs} --lr {p.lr} --noise {p.noise} "
            f"--out {folder}/{method}"
        )
    return histories


def _executor(scheduler: str | None):
    """(executor, closer): a Dask client's executor for ``scheduler``, or (None, None) for the
    library's default local process pool."""
    if scheduler is None:
        return None, None
    from distributed import Client

    client = Client(scheduler)
    return client.get_executor(), client.close


def _read_results(path: Path) -> tuple[dict, dict]:
    from granular.h5md import read_group, read_results

    return read_results(path), read_group(path, "modulus")
