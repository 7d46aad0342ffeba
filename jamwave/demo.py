"""The end-to-end demo behind ``jamwave demo``: from grains to a pruned wave surrogate.

Stages, each writing files the next one reads (so any stage reruns alone, and an interrupted demo
resumes at the first stage whose output is missing):

1. ``packings/``: bidisperse packings jammed at two or three X_S for one size ratio delta, each
   followed under compression and measured at phi_J + excess_phi (phi_J, K*, partial moduli); this is
   a small jamming-diagram sweep (:func:`granular.diagram.jamming_diagram`).
2. ``medium.png``: the granular media, c = sqrt(K / rho) per mixture (:mod:`wavefe.media`).
3. ``waves/{train,val,test}.h5``: wave datasets in layered granular media (:mod:`wavefe.dataset`).
4. ``models/{dense,cp}.pt``: a dense and a CP-compressed surrogate (:func:`surrogate.train`), each
   scored on the test split (``models/*.json``, ``models/*.png``).
5. ``pruning/{sap,lt}/``: the CP surrogate pruned by SAP and by lottery ticket
   (:func:`surrogate.pruning.prune_iteratively`), compared in ``pruning/compare.png``.
6. ``report.md`` and ``report.html``: the numbers of each stage, the plots, and the command that
   reproduces each stage.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from jamcommon.files import atomic_write_text
from jamwave.demo_plots import plot_media, plot_pressure_path, plot_wave_sample
from jamwave.report import Report


@dataclass(frozen=True)
class DemoSize:
    """Problem sizes of one demo preset.

    Attributes
    ----------
    delta : float
        Size ratio r_S / r_L of the packings.
    x_small : tuple of float
        Small-particle volume fractions X_S, one packing (granular material) each.
    n_particles : int
        Particles per packing.
    excess_phi : float
        The modulus is measured at phi_J + excess_phi.
    grid, n_frames, save_every : int
        Wave dataset: cells per side, stored frames, time steps between frames.
    samples : tuple of int
        Samples in the train, val and test splits.
    width, depth, rank : int
        Surrogate channels, residual blocks, CP rank.
    epochs : int
        Training epochs of the dense and CP surrogates.
    lr, noise : float
        Adam learning rate and the relative input noise of training (stabilises rollouts).
    prune_iterations, prune_epochs : int
        Pruning steps and training epochs per pruning iteration.
    horizon : int
        Rollout frames scored on the test split.
    """

    delta: float
    x_small: tuple
    n_particles: int
    excess_phi: float
    grid: int
    n_frames: int
    save_every: int
    samples: tuple
    width: int
    depth: int
    rank: int
    epochs: int
    lr: float
    noise: float
    prune_iterations: int
    prune_epochs: int
    horizon: int


SIZES = {
    # "tiny" is the smoke-test size of the end-to-end test (about a minute); its numbers are not
    # meant to be read.
    "tiny": DemoSize(delta=0.5, x_small=(0.3, 0.7), n_particles=96, excess_phi=1e-2,
                     grid=16, n_frames=12, save_every=2, samples=(6, 2, 2), width=6, depth=1,
                     rank=1, epochs=2, lr=2e-3, noise=0.02, prune_iterations=1, prune_epochs=1,
                     horizon=8),
    "small": DemoSize(delta=0.5, x_small=(0.2, 0.5, 0.8), n_particles=400, excess_phi=1e-2,
                      grid=32, n_frames=16, save_every=2, samples=(32, 6, 6), width=12, depth=2,
                      rank=2, epochs=16, lr=2e-3, noise=0.02, prune_iterations=2, prune_epochs=8,
                      horizon=10),
    "medium": DemoSize(delta=0.3, x_small=(0.1, 0.3, 0.6), n_particles=2000, excess_phi=1e-2,
                       grid=64, n_frames=40, save_every=2, samples=(200, 25, 25), width=24, depth=3,
                       rank=4, epochs=25, lr=2e-3, noise=0.02, prune_iterations=5, prune_epochs=10,
                       horizon=20),
    "large": DemoSize(delta=0.15, x_small=(0.1, 0.21, 0.4), n_particles=20000, excess_phi=1e-2,
                      grid=128, n_frames=100, save_every=2, samples=(1000, 100, 100), width=32,
                      depth=4, rank=4, epochs=60, lr=1e-3, noise=0.02, prune_iterations=10,
                      prune_epochs=30, horizon=40),
}


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
    if backend not in ("auto", "cpu", "cuda"):
        raise ValueError(f"backend must be one of ('auto', 'cpu', 'cuda'), got {backend!r}")
    if int(seed) != seed or seed < 0:
        raise ValueError(f"seed must be an integer >= 0, got {seed}")
    preset = SIZES[size]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    stages = _Stages(out, preset, size=size, backend=backend, scheduler=scheduler, workers=workers,
                     seed=int(seed), force=force, progress=progress)
    report = Report(f"jamwave demo ({size})")
    intro = report.section("Overview")
    intro.text(
        "From grains to waves to a pruned neural surrogate. Each stage below writes files that the "
        "next stage reads; rerunning the demo skips finished stages, and each stage's command "
        "reruns it alone."
    )
    intro.table([{"setting": k, "value": str(v)} for k, v in asdict(preset).items()])
    for stage in (stages.packings, stages.medium, stages.waves, stages.surrogates, stages.pruning):
        stage(report)
    intro.table([{"stage": k, "seconds": v} for k, v in stages.timings.items()])
    md, _ = report.write(out)
    stages.say(f"report: {md}")
    return md


class _Stages:
    """The demo's stages; each appends its section to the report."""

    def __init__(self, out: Path, preset: DemoSize, *, size, backend, scheduler, workers, seed, force,
                 progress):
        self.out, self.preset, self.size = out, preset, size
        self.backend, self.scheduler, self.workers = backend, scheduler, workers
        self.seed, self.force, self.progress = seed, force, progress
        self.timings: dict[str, float] = {}

    def say(self, message: str) -> None:
        if self.progress:
            import sys

            print(f"[jamwave demo] {message}", file=sys.stderr, flush=True)

    def _timed(self, name: str, start: float) -> None:
        self.timings[name] = round(time.perf_counter() - start, 1)

    # 1. packings, jamming, bulk modulus --------------------------------------------------------
    def packings(self, report: Report) -> None:
        from granular.diagram import DiagramSettings, jamming_diagram, point_name, read_diagram

        p = self.preset
        start = time.perf_counter()
        self.say(f"1/5 jamming {len(p.x_small)} packings (N = {p.n_particles}, delta = {p.delta})")
        folder = self.out / "packings"
        settings = DiagramSettings(n=p.n_particles, n_large=None, excess_phi=p.excess_phi,
                                   backend=self.backend)
        table = jamming_diagram([p.delta], list(p.x_small), [self.seed], folder, settings,
                                scheduler=self.scheduler, workers=self.workers, force=self.force,
                                progress=self.progress)
        self.packing_files = [folder / point_name(p.delta, x, self.seed) for x in p.x_small]
        self._timed("packings", start)
        diagram = read_diagram(table)
        rows = []
        for path in self.packing_files:
            res, mod = _read_results(path)
            rows.append({
                "X_S (realised)": res["x_small"], "N_S + N_L": int(res["n_small"] + res["n_large"]),
                "phi_J": res["phi_J"], "phi_J second": res.get("phi_J_second", math.nan),
                "phi": res["phi"], "Z backbone": res["Z_backbone"],
                "jammed frac. small": res["jammed_fraction_small"],
                "K*": mod["K_star"], "K* (Hessian)": mod.get("K_linear_response", math.nan),
                "K_SS": mod["K_SS"], "K_SL": mod["K_SL"], "K_LL": mod["K_LL"],
            })
        plot_pressure_path(self.packing_files, rows, self.out / "packings" / "pressure_path.png")
        slice_png = self.out / "packings" / "slice.png"
        if self.force or not slice_png.exists():
            from granular.h5md import read_packing
            from granular.slice_plot import plot_slice

            middle = self.packing_files[len(self.packing_files) // 2]
            plot_slice(read_packing(middle), slice_png,
                       title=f"delta = {p.delta}, X_S = {rows[len(rows) // 2]['X_S (realised)']:.2f}")
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
        axes = ", ".join(f"{v:g}" for v in diagram["x_small"])
        sec.text(f"The sweep's table is packings/diagram.h5 (delta = {p.delta}; X_S = {axes}).")
        xs = ",".join(f"{x:g}" for x in p.x_small)
        sec.command(f"jamwave granular diagram --delta {p.delta} --xs {xs} --seeds 1 --n {p.n_particles} "
                    f"--excess-phi {p.excess_phi} --out {folder}")

    # 2. granular media -------------------------------------------------------------------------
    def medium(self, report: Report) -> None:
        from wavefe import media

        start = time.perf_counter()
        self.say("2/5 granular media: c = sqrt(K / rho)")
        materials = [media.read_packing(path) for path in self.packing_files]
        self.materials = materials
        rows = [{"X_S": m.x_small, "K*": m.K_star, "rho = phi": m.phi, "c = sqrt(K*/phi)": m.speed}
                for m in materials]
        plot_media(materials, self.out / "medium.png")
        self._timed("medium", start)
        sec = report.section("2. Granular media")
        sec.text(
            "Each packing becomes a granular material with bulk density rho = phi * rho_grain and "
            "longitudinal wave speed c = sqrt(K / rho) (reduced units: d_L = 1, grain density 1, "
            "k_n = 1). The wave datasets stack these materials in layers."
        )
        sec.table(rows)
        sec.figure("medium.png", "Wave speed of each granular mixture")

    # 3. wave datasets --------------------------------------------------------------------------
    def waves(self, report: Report) -> None:
        from wavefe.dataset import generate_dataset
        from wavefe.samples import DatasetConfig

        p = self.preset
        start = time.perf_counter()
        self.say(f"3/5 wave datasets ({'/'.join(map(str, p.samples))} samples, {p.grid}^2 cells)")
        folder = self.out / "waves"
        config = DatasetConfig(grid=p.grid, n_frames=p.n_frames, save_every=p.save_every,
                               speed="granular", source="pulse", boundary="absorbing",
                               n_layers=len(self.packing_files),
                               granular=tuple(str(f) for f in self.packing_files))
        sizes = dict(zip(("train", "val", "test"), p.samples))
        self.splits = {split: folder / f"{split}.h5" for split in sizes}
        todo = [split for split, path in self.splits.items() if self.force or not path.exists()]
        executor, close = _executor(self.scheduler) if todo else (None, None)
        try:
            # generate_dataset resumes a split whose generation was interrupted.
            for split in todo:
                generate_dataset(self.splits[split], sizes[split], config=config, seed=self.seed,
                                 split=split, workers=self.workers, executor=executor,
                                 overwrite=self.force, progress=self.progress)
        finally:
            if close is not None:
                close()
        self._timed("waves", start)
        png = self.out / "waves" / "snapshots.png"
        plot_wave_sample(self.splits["test"], png)
        sec = report.section("3. Wave datasets")
        sec.text(
            f"P1 finite elements, explicit central differences with lumped mass, absorbing sides, "
            f"{p.grid} x {p.grid} cells, {p.n_frames} frames every {p.save_every} steps; Gaussian "
            f"initial pulses in {len(self.packing_files)} granular layers. Files follow the schema "
            "jamwave.wave2d/1 (plain h5py, with an .xdmf side-car for ParaView)."
        )
        sec.table([{"split": k, "samples": v, "file": f"waves/{k}.h5"} for k, v in sizes.items()])
        sec.figure("waves/snapshots.png", "A test sample: speed map and wave snapshots")
        packings = " ".join(str(f) for f in self.packing_files)
        for split, n in sizes.items():
            sec.command(
                f"jamwave wavefe dataset --samples {n} --grid {p.grid} --frames {p.n_frames} "
                f"--save-every {p.save_every} --speed granular --granular {packings} --source pulse "
                f"--boundary absorbing --seed {self.seed} --split {split} --out {folder}/{split}.h5"
            )

    # 4. surrogates -----------------------------------------------------------------------------
    def surrogates(self, report: Report) -> None:
        import torch

        import surrogate
        from surrogate.plots import plot_rollout

        # The demo's tensors are small: one thread is as fast, and far faster on a busy machine.
        torch.set_num_threads(1)
        p = self.preset
        start = time.perf_counter()
        folder = self.out / "models"
        folder.mkdir(exist_ok=True)
        rows = []
        self.models = {}
        for name, conv, rank in (("dense", "dense", None), ("cp", "cp", p.rank)):
            self.say(f"4/5 training the {name} surrogate ({p.epochs} epochs)")
            path = folder / f"{name}.pt"
            if path.exists() and not self.force:
                model = surrogate.load(path)
            else:
                model = surrogate.train(self.splits["train"], self.splits["val"], path, conv=conv,
                                        rank=rank, width=p.width, depth=p.depth, seed=self.seed,
                                        epochs=p.epochs, lr=p.lr, noise=p.noise, overwrite=True,
                                        progress=self.progress)
            metrics_path = folder / f"{name}.json"
            if metrics_path.exists() and not self.force:
                metrics = json.loads(metrics_path.read_text())
            else:
                metrics, result = surrogate.evaluate(model, self.splits["test"], p.horizon)
                plot_rollout(result, metrics, folder / f"{name}.png", overwrite=True)
                atomic_write_text(metrics_path, json.dumps(metrics, indent=2, default=float),
                                  overwrite=True)
            self.models[name] = (path, metrics)
            rows.append({"model": name, "parameters": metrics["parameters"],
                         "MACs/frame": metrics["macs_per_frame"], "nRMSE": metrics["nrmse"],
                         "VRMSE": metrics["vrmse"], "energy drift": metrics.get("energy_drift", math.nan),
                         "ms/frame": 1e3 * metrics["seconds_per_frame"]})
        self._timed("surrogates", start)
        dense, cp = self.models["dense"][1], self.models["cp"][1]
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
                f"jamwave surrogate train --data {self.splits['train']} --val {self.splits['val']} "
                f"--conv {conv} --width {p.width} --depth {p.depth} --epochs {p.epochs} "
                f"--lr {p.lr} --noise {p.noise} --seed {self.seed} --out {folder}/{name}.pt"
            )
            sec.command(f"jamwave surrogate evaluate --model {folder}/{name}.pt --data "
                        f"{self.splits['test']} --horizon {p.horizon} --out {folder}/{name}.json")

    # 5. pruning --------------------------------------------------------------------------------
    def pruning(self, report: Report) -> None:
        import surrogate
        from surrogate.pruning import prune_iteratively
        from surrogate.pruning.plots import plot_histories

        p = self.preset
        start = time.perf_counter()
        folder = self.out / "pruning"
        histories = []
        for method in ("sap", "lt"):
            self.say(f"5/5 pruning the CP surrogate with {method} ({p.prune_iterations} iterations)")
            # Rewinding point: the CP architecture freshly initialised with the demo's seed.
            model = surrogate.build_model("cp", p.rank, width=p.width, depth=p.depth, seed=self.seed)
            history = prune_iteratively(
                model, (self.splits["train"], self.splits["val"]), method, "global",
                p.prune_iterations, out=folder / method, epochs=p.prune_epochs, seed=self.seed,
                horizon=p.horizon, train_options={"lr": p.lr, "noise": p.noise},
                overwrite=self.force, progress=self.progress,
            )
            histories.append(history)
        plot_histories(histories, folder / "compare.png", overwrite=True)
        self._timed("pruning", start)
        rows = []
        for method, history in zip(("SAP", "lottery ticket"), histories):
            for entry in history["entries"]:
                rows.append({"method": method, "iteration": entry["iteration"],
                             "remaining": entry["remaining_fraction"],
                             "PQI (global)": entry["pqi"]["global"], "val nRMSE": entry["val_nrmse"]})
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
                f"jamwave surrogate prune --model {self.models['cp'][0]} --data {self.splits['train']} "
                f"--val {self.splits['val']} --method {method} --scope global --iterations "
                f"{p.prune_iterations} --epochs {p.prune_epochs} --lr {p.lr} --noise {p.noise} "
                f"--out {folder}/{method}"
            )


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
