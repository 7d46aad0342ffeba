"""Training: Adam on one-step windows, early stopping on the validation rollout error.

``fit(model, train_data, val_data=None, *, epochs=20, lr=1e-3, batch_size=16, seed=0, patience=5,
val_horizon=None, val_samples=None, unroll=1, noise=0.0, lr_factor=0.5, lr_patience=2, min_lr=1e-5,
schedule="plateau", checkpoint=None, progress=False) -> history``
    Trains an existing model in place and leaves it holding the weights of its best validation epoch.
    Works on models whose parameters are reparametrised by ``torch.nn.utils.prune`` (``X_orig`` +
    ``X_mask``): only ``X_orig`` is optimised, so pruned entries stay pruned. Each call makes a
    fresh optimiser (so rewinding and re-fitting starts clean) unless it resumes from ``checkpoint``.
    The model's normalisation is computed from ``train_data`` when not yet set.
``train_model(train_data, val_data, out, *, conv="dense", rank=None, width=32, depth=3,
kernel_size=5, seed=0, overwrite=False, checkpoint=None, progress=False, forcing=None, modes=16,
model_options=None, **fit_options) -> Stepper``
    Build, fit and save a new model (what ``jamwave surrogate train`` runs).

Data: ``train_data`` goes through :func:`surrogate.data.as_windows` and ``val_data`` through
:func:`surrogate.data.as_trajectories` once, at the start of :func:`fit`; a file is opened and
checked there and not again (pass a :class:`~surrogate.data.WaveWindows` and a
:class:`~surrogate.data.Trajectories` to reuse them across calls, as the pruning schedule does).

Loss: mean squared error of ``(u_hat^{n+j} - u^{n+j}) / du_scale`` over windows and the ``unroll``
steps ``j = 1 .. unroll`` of an autoregressive unroll from the true ``u^{n-1}, u^n`` (backpropagated
through; ``unroll=1`` is teacher forcing). ``noise`` adds Gaussian noise of standard deviation
``noise * u_scale`` to the two input frames (a standard remedy for rollout drift).
Validation metric: nRMSE of a rollout over ``val_horizon`` frames (:func:`surrogate.evaluate.rollout`)
on the validation split; without ``val_data`` the training loss stands in. Learning rate
(``schedule``): ``"plateau"`` reduces it by ``lr_factor`` after ``lr_patience`` epochs without
improvement of the validation metric (``ReduceLROnPlateau``); ``"cosine"`` anneals it from ``lr`` to
``min_lr`` over ``epochs`` (``CosineAnnealingLR``), whatever the metric does. Use ``"cosine"`` when the
early rollouts diverge: their errors then stall for many epochs while the one-step fit still improves,
and the plateau rule halves the rate to ``min_lr`` within a few epochs (issue 18). Training stops
after ``patience`` epochs without improvement (:class:`surrogate.stopping.EarlyStopping`, with a
relative ``min_delta``). ``windows_per_epoch`` fixes the windows seen per epoch (a seeded random
subset), so an epoch costs the same however large the training split. A model with ``forcing`` trains
on windows that carry the frame forcing (:class:`surrogate.data.WaveWindows`).

Determinism: with the same ``seed`` and data, training on the CPU gives bit-identical weights: the
window order of epoch ``e`` comes from a generator seeded by ``(seed, e)``, so a run resumed from a
checkpoint (written atomically after every epoch, with optimiser, scheduler and early-stopping state)
ends exactly where an uninterrupted run ends.

The history is a dict: per epoch lists ``epoch``, ``train_loss``, ``val_nrmse``, ``lr``, ``seconds``;
and ``best_epoch``, ``best_val_nrmse``, ``stopped_early``, ``settings``.
"""

from __future__ import annotations

import copy
import math
import os
import sys
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from jamcommon.files import atomic_path, check_writable
from surrogate.data import Normalisation, WaveWindows, as_trajectories, as_windows, read_info
from surrogate.evaluate import rollout, rollout_metrics
from surrogate.io import save
from surrogate.models import build_model
from surrogate.stopping import EarlyStopping

SCHEDULES = ("plateau", "cosine")


def _check_positive(name: str, value, integer: bool = False, allow_zero: bool = False) -> None:
    bad = not isinstance(value, int | float) or not math.isfinite(value)
    if not bad and integer and int(value) != value:
        bad = True
    if bad or (value < 0 if allow_zero else value <= 0):
        kind = "an integer" if integer else "a number"
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be {kind} {bound}, got {value!r}")


def _epoch_seed(seed: int, epoch: int) -> int:
    return (int(seed) * 1_000_003 + int(epoch)) % (2**63)


def _validation_metric(model, val, horizon, start) -> float:
    result = rollout(model, val, horizon, h=math.nan, frame_dt=math.nan, start=start)
    value = rollout_metrics(result)["nrmse"]
    return value if math.isfinite(value) else math.inf


def _unrolled_loss(model, x, y, du_scale: float, u_noise: float) -> torch.Tensor:
    """Windows ``x`` (N, 3 [+ steps], ny, nx): the channels after the third are the forcing of each step."""
    prev, cur, speed = x[:, 0:1], x[:, 1:2], x[:, 2:3]
    forcing = bool(getattr(model, "forcing", False))
    if u_noise > 0:
        prev = prev + u_noise * torch.randn_like(prev)
        cur = cur + u_noise * torch.randn_like(cur)
    loss = 0.0
    for j in range(y.shape[1]):
        extra = [x[:, 3 + j : 4 + j]] if forcing else []
        nxt = model(torch.cat([prev, cur, speed, *extra], dim=1))
        loss = loss + ((nxt - y[:, j : j + 1]) / du_scale).square().mean()
        prev, cur = cur, nxt
    return loss / y.shape[1]


def _check_fit_arguments(*, epochs, lr, batch_size, patience, lr_patience, num_workers, unroll, noise,
                         lr_factor, windows_per_epoch=None, min_delta=0.0, min_epochs=0,
                         schedule="plateau") -> None:
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}")
    if windows_per_epoch is not None:
        _check_positive("windows_per_epoch", windows_per_epoch, integer=True)
    EarlyStopping(patience, min_delta, min_epochs=min_epochs)  # checks the three
    _check_positive("epochs", epochs, integer=True)
    _check_positive("lr", lr)
    _check_positive("batch_size", batch_size, integer=True)
    _check_positive("patience", patience, integer=True)
    _check_positive("lr_patience", lr_patience, integer=True, allow_zero=True)
    _check_positive("num_workers", num_workers, integer=True, allow_zero=True)
    _check_positive("unroll", unroll, integer=True)
    _check_positive("noise", noise, allow_zero=True)
    if not 0 < lr_factor < 1:
        raise ValueError(f"lr_factor must be in (0, 1), got {lr_factor}")


def _make_scheduler(optimiser, schedule: str, epochs: int, lr_factor: float, lr_patience: int,
                    min_lr: float):
    """The learning-rate schedule of :func:`fit` (module docstring)."""
    if schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=int(epochs), eta_min=min_lr)
    return torch.optim.lr_scheduler.ReduceLROnPlateau(optimiser, mode="min", factor=lr_factor,
                                                      patience=lr_patience, min_lr=min_lr)


def _resume(checkpoint, model, optimiser, scheduler, history: dict):
    """Load ``checkpoint`` into model, optimiser and scheduler if it exists.

    Returns ``(history, best_state, bad_epochs, start_epoch)``: the fresh ``history`` and epoch 0
    when there is nothing to resume.
    """
    if checkpoint is None or not Path(checkpoint).is_file():
        return history, None, 0, 0
    from surrogate.io import read_checkpoint

    state = read_checkpoint(checkpoint, ("model", "optimiser", "scheduler", "history", "best_state",
                                         "bad_epochs"), what="training checkpoint")
    if not isinstance(state["model"], dict) or set(state["model"]) != set(model.state_dict()):
        raise ValueError(f"checkpoint {str(checkpoint)!r} belongs to another model; delete it "
                         f"or pass another checkpoint path")
    try:
        model.load_state_dict(state["model"])
        optimiser.load_state_dict(state["optimiser"])
        scheduler.load_state_dict(state["scheduler"])
    except (RuntimeError, KeyError, TypeError, ValueError) as exc:
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ValueError(f"checkpoint {str(checkpoint)!r} does not fit this model ({reason}); "
                         f"delete it to start again") from None
    history = state["history"]
    return history, state["best_state"], state["bad_epochs"], len(history["epoch"])


def _prepare_data(model, train_data, val_data, val_samples, unroll: int):
    """The training windows and validation trajectories, opened once; sets the normalisation."""
    forcing = bool(getattr(model, "forcing", False))
    dataset = as_windows(train_data, steps=unroll, forcing=forcing)
    if len(dataset) == 0:
        raise ValueError("training data holds no windows")
    if hasattr(model, "normalised") and not bool(model.normalised):
        if not isinstance(dataset, WaveWindows):
            raise ValueError(f"cannot compute normalisation from {type(dataset).__name__}; pass a path "
                             f"or a WaveWindows, or a model whose normalisation is set")
        model.set_normalisation(Normalisation.from_arrays(*dataset.trajectories()))
    val = None if val_data is None else as_trajectories(val_data, samples=val_samples)
    if forcing and val is not None and val.f is None:
        raise ValueError("the model takes the frame forcing but the validation data have none (/fields/f)")
    return dataset, val


def fit(model: torch.nn.Module, train_data, val_data=None, *, epochs: int = 20, lr: float = 1e-3,
        batch_size: int = 16, seed: int = 0, patience: int = 5, val_horizon: int | None = None,
        val_samples=None, unroll: int = 1, noise: float = 0.0, lr_factor: float = 0.5,
        lr_patience: int = 2, min_lr: float = 1e-5, schedule: str = "plateau",
        checkpoint: str | os.PathLike | None = None, progress: bool = False, num_workers: int = 0,
        windows_per_epoch: int | None = None, min_delta: float = 0.0, device: str | None = None,
        val_start: int = 0, min_epochs: int = 0) -> dict:
    """Train ``model`` in place; return the history (see the module docstring).

    Parameters
    ----------
    model : WaveSurrogate
    train_data : path-like or Dataset
        Training windows (a ``jamwave.wave2d/1`` file or a :class:`~surrogate.data.WaveWindows`;
        see :func:`surrogate.data.as_windows`).
    val_data : path-like, WaveWindows, Trajectories, (u, c) or None
        Validation trajectories for the rollout error (see :func:`surrogate.data.as_trajectories`).
    epochs : int
        Maximum epochs (total, counting those done before a resume).
    lr, batch_size : float, int
        Initial Adam learning rate; windows per step.
    seed : int
        Seeds the window order and the input noise of each epoch (the caller's global torch
        generator state is left as it was).
    patience : int
        Epochs without improvement of the validation metric before stopping.
    val_horizon, val_samples : optional
        Rollout length and samples of the validation (all available by default).
    unroll : int
        Autoregressive steps per training window (1: next-frame teacher forcing).
    noise : float
        Input noise, relative to the model's ``u_scale`` (0: none).
    lr_factor, lr_patience, min_lr
        Plateau schedule of the learning rate (``min_lr`` also ends the cosine one).
    schedule : {"plateau", "cosine"}
        Learning-rate schedule (module docstring).
    checkpoint : path-like, optional
        Resume from this file if it exists; write it after every epoch.
    progress : bool
        Show a tqdm bar over epochs.
    num_workers : int
        DataLoader worker processes (each opens its own file handle).
    windows_per_epoch, min_delta, min_epochs, val_start
        Windows per epoch (a seeded random subset; all by default); relative improvement that
        resets the patience; epochs before stopping may happen; first context frame of the
        validation rollouts.
    device : str, optional
        Torch device to train on (e.g. ``"cuda"``); the model is moved there.
    """
    _check_fit_arguments(epochs=epochs, lr=lr, batch_size=batch_size, patience=patience,
                         lr_patience=lr_patience, num_workers=num_workers, unroll=unroll, noise=noise,
                         lr_factor=lr_factor, windows_per_epoch=windows_per_epoch, min_delta=min_delta,
                         min_epochs=min_epochs, schedule=schedule)
    if device is not None:
        model.to(device)
    dataset, val = _prepare_data(model, train_data, val_data, val_samples, int(unroll))
    du_scale = float(getattr(model, "du_scale", 1.0))
    u_noise = float(noise) * float(getattr(model, "u_scale", 1.0))
    optimiser = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)
    scheduler = _make_scheduler(optimiser, schedule, epochs, lr_factor, lr_patience, min_lr)
    settings = {"epochs": int(epochs), "lr": float(lr), "batch_size": int(batch_size), "seed": int(seed),
                "patience": int(patience), "val_horizon": val_horizon, "unroll": int(unroll),
                "noise": float(noise), "lr_factor": float(lr_factor), "lr_patience": int(lr_patience),
                "min_lr": float(min_lr), "schedule": schedule, "windows_per_epoch": windows_per_epoch,
                "min_delta": float(min_delta), "val_start": int(val_start), "min_epochs": int(min_epochs)}
    history = {"epoch": [], "train_loss": [], "val_nrmse": [], "lr": [], "seconds": [],
               "best_epoch": None, "best_val_nrmse": math.inf, "stopped_early": False,
               "settings": settings}
    history, best_state, bad_epochs, start = _resume(checkpoint, model, optimiser, scheduler, history)

    # Seeded epochs draw from torch's global generator; keep the caller's generator state intact.
    with torch.random.fork_rng(devices=[]):
        stopper = EarlyStopping(patience, min_delta, history["best_val_nrmse"], history["best_epoch"],
                                bad_epochs, min_epochs, len(history["epoch"]))
        return _run(model, dataset, val, optimiser, scheduler, history, best_state, stopper, start,
                    epochs=epochs, batch_size=batch_size, seed=seed, windows_per_epoch=windows_per_epoch,
                    val_horizon=val_horizon, val_start=val_start, du_scale=du_scale, u_noise=u_noise,
                    checkpoint=checkpoint, progress=progress, num_workers=num_workers)


def _run(model, dataset, val, optimiser, scheduler, history, best_state, stopper, start, *, epochs,
         batch_size, seed, windows_per_epoch, val_horizon, val_start, du_scale, u_noise, checkpoint,
         progress, num_workers):
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=epochs, initial=min(start, epochs), desc="training", unit="epoch",
                   file=sys.stderr, dynamic_ncols=True)
    try:
        for epoch in range(start, epochs):
            if history["stopped_early"]:
                break
            tick = time.perf_counter()
            torch.manual_seed(_epoch_seed(seed, epoch))
            order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(
                _epoch_seed(seed, epoch))).tolist()[:windows_per_epoch]
            loader = DataLoader(dataset, batch_size=batch_size, sampler=order, num_workers=num_workers)
            model.train()
            total, count = 0.0, 0
            for x, y in loader:
                x, y = x.to(device), y.to(device)
                optimiser.zero_grad(set_to_none=True)
                loss = _unrolled_loss(model, x, y, du_scale, u_noise)
                loss.backward()
                optimiser.step()
                total += float(loss.detach()) * len(x)
                count += len(x)
            train_loss = total / count
            metric = train_loss if val is None else _validation_metric(model, val, val_horizon, val_start)
            if not math.isfinite(metric):
                metric = math.inf
            if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                scheduler.step(metric)
            else:
                scheduler.step()
            if stopper.update(epoch, metric):
                history["best_val_nrmse"] = float(metric)
                history["best_epoch"] = epoch
                best_state = copy.deepcopy(model.state_dict())
            history["epoch"].append(epoch)
            history["train_loss"].append(train_loss)
            history["val_nrmse"].append(float(metric) if val is not None else math.nan)
            history["lr"].append(optimiser.param_groups[0]["lr"])
            history["seconds"].append(time.perf_counter() - tick)
            history["stopped_early"] = stopper.stop and epoch + 1 < epochs
            if checkpoint is not None:
                with atomic_path(checkpoint, overwrite=True) as tmp:
                    torch.save({"model": model.state_dict(), "optimiser": optimiser.state_dict(),
                                "scheduler": scheduler.state_dict(), "history": history,
                                "best_state": best_state, "bad_epochs": stopper.bad_epochs}, tmp)
            if bar is not None:
                bar.set_postfix(loss=f"{train_loss:.3g}", val_nrmse=f"{metric:.3g}")
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    model.history = history
    return history


def train_model(train_data, val_data, out: str | os.PathLike, *, conv: str = "dense",
                rank: int | None = None, width: int = 32, depth: int = 3, kernel_size: int = 5,
                seed: int = 0, overwrite: bool = False, checkpoint: str | os.PathLike | None = None,
                progress: bool = False, forcing: bool | None = None, modes: int = 16,
                model_options: dict | None = None, **fit_options):
    """Build a new model, :func:`fit` it and save it to ``out``; return the model.

    ``conv`` is any of :data:`surrogate.models.ARCHITECTURES` (``modes``: the FNO's Fourier modes).
    ``model_options`` go to :func:`surrogate.models.build_model` (``body``, ``boundary``,
    ``reversible``, ``halo``).
    ``forcing=None`` gives the model the forcing channel when the training file has one.
    The checkpoint defaults to ``<out>.ckpt``: rerunning an interrupted call resumes there. It is
    deleted once the model file is written. ``fit_options`` go to :func:`fit`.
    """
    check_writable(out, overwrite=overwrite)
    checkpoint = Path(f"{out}.ckpt") if checkpoint is None else Path(checkpoint)
    if forcing is None:
        forcing = isinstance(train_data, str | os.PathLike) and read_info(train_data).has_forcing
    model = build_model(conv, rank, width=width, depth=depth, kernel_size=kernel_size, seed=seed,
                        forcing=bool(forcing), modes=modes, **(model_options or {}))
    fit(model, train_data, val_data, seed=seed, checkpoint=checkpoint, progress=progress, **fit_options)
    model.extra = {"train_data": str(train_data), "val_data": None if val_data is None else str(val_data)}
    save(model, out, overwrite=overwrite)
    checkpoint.unlink(missing_ok=True)
    return model
