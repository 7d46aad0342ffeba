"""The iterative pruning schedule: train, measure, prune, rewind, repeat; checkpointed.

Iteration ``t = 0 .. T`` trains the model (``t = 0`` dense, or with the masks it came with),
records the PQ Index in the three scopes, the remaining weights and the validation rollout error,
and, for ``t < T``, prunes with the chosen method and rewinds the surviving weights to their values
at the start (lottery-ticket rewinding). So ``T`` iterations give ``T + 1`` trained models, the
last at the remaining fraction reached after ``T`` pruning steps (``0.8^T`` for the lottery ticket
when every unit of the scope holds a multiple of ``5^T`` weights: the counts are exact integers, see
:mod:`.methods`).

Files in ``out`` (written atomically):

- ``history.json``: the history (:mod:`.history` describes it), rewritten after every iteration;
- ``checkpoint.pt``: model state with masks, initial values, one-shot scores, history; written
  after every iteration, and read back when the same ``out`` is used again (resume);
- ``iter_XX.pt``: the model trained in iteration ``XX`` with the masks it was trained with
  (:func:`surrogate.io.save` format for wave surrogates, a ``state_dict`` otherwise), its ``extra``
  holds the pruning history; ``model.pt`` is the last one;
- ``pruning.png``: PQI and validation nRMSE against remaining weights (at the end of a call).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import torch
from torch import nn
from torch.nn.utils import prune

from jamwave.files import OutputExistsError, atomic_path, atomic_write_text

from .control import GaussianControl
from .history import HISTORY_FORMAT, history_entry
from .methods import METHODS, _exact_fraction, prune_model, remaining_weights
from .pqi import SCOPES, check_pq, check_sap, prunable_parameters
from .scores import check_magnitude, importance_scores

__all__ = ["CHECKPOINT_FORMAT", "prune_iteratively", "rewind"]

CHECKPOINT_FORMAT = "jamwave.pruning-checkpoint/1"


def _named_parameters(model: nn.Module):
    """``(plain name, parameter)``: a pruned ``m.weight_orig`` is listed as ``m.weight``."""
    for mod_name, module in model.named_modules():
        for pname, param in module.named_parameters(recurse=False):
            base = pname
            if pname.endswith("_orig") and hasattr(module, pname[: -len("_orig")] + "_mask"):
                base = pname[: -len("_orig")]
            yield (f"{mod_name}.{base}" if mod_name else base), param


def _initial_values(model: nn.Module) -> dict[str, torch.Tensor]:
    """Parameter values keyed by their plain name (``weight`` for a pruned ``weight_orig``)."""
    return {name: param.detach().clone() for name, param in _named_parameters(model)}


def rewind(model: nn.Module, initial: dict[str, torch.Tensor]) -> None:
    """Set every parameter back to ``initial`` (from :func:`_initial_values`); masks stay as they are.

    Pruned entries keep their initial value in ``X_orig`` but stay zero in the model, as the mask
    multiplies them. Buffers (masks, normalisation, running statistics) are not touched.
    """
    current = _initial_values(model)
    if set(current) != set(initial):
        raise ValueError("the model's parameters do not match the stored initial values")
    with torch.no_grad():
        for name, param in _named_parameters(model):
            param.copy_(initial[name])


def _reparametrise(model: nn.Module) -> None:
    """Give every prunable tensor a mask (``prune.identity`` where none yet), so states load."""
    for _, module, name in prunable_parameters(model):
        if not hasattr(module, name + "_mask"):
            prune.identity(module, name)


def _default_train_fn(epochs: int, options: dict):
    def train_fn(model, train, val, *, seed, checkpoint):
        from surrogate.train import fit

        return fit(model, train, val, epochs=epochs, seed=seed, checkpoint=checkpoint, progress=False,
                   **options)
    return train_fn


def _default_eval_fn(horizon):
    def eval_fn(model, val):
        from surrogate.evaluate import evaluate

        metrics, _ = evaluate(model, val, horizon, with_costs=False)
        return metrics
    return eval_fn


def _save_model(model: nn.Module, path: Path, history: dict) -> None:
    try:
        from surrogate.io import save
        from surrogate.models import WaveSurrogate
    except ImportError:  # pragma: no cover - the surrogate package is one distribution
        WaveSurrogate = ()
    if isinstance(model, WaveSurrogate):
        save(model, path, overwrite=True, extra={"pruning": history})
    else:
        with atomic_path(path, overwrite=True) as tmp:
            torch.save({"state_dict": model.state_dict(), "extra": {"pruning": history}}, tmp)


def _prune_step(model: nn.Module, method: str, scope: str, scores, magnitude: str, hyper: dict) -> dict:
    """One pruning step: one-shot ranks by its fixed ``scores``; the others by the current weights
    (``plain``) or their CP-aware magnitude."""
    if method != "oneshot" and magnitude != "plain":
        scores = importance_scores(model, magnitude)
    return prune_model(model, method, scope, importance_scores=scores, **hyper)


def _config(method, scope, hyper, seed) -> dict:
    return {"method": method, "scope": scope, "hyper": hyper, "seed": int(seed)}


def prune_iteratively(model: nn.Module, data, method: str = "sap", scope: str = "global",
                      iterations: int = 5, *, out: str | os.PathLike, epochs: int = 20, p: float = 0.5,
                      q: float = 1.0, eta_r: float = 0.0, gamma: float = 1.0, beta: float = 0.9,
                      amount: float = 0.2, seed: int = 0, horizon: int | None = None, train_fn=None,
                      eval_fn=None, train_options: dict | None = None, overwrite: bool = False,
                      plot: bool = True, progress: bool = False, magnitude: str = "plain",
                      control: bool = True) -> dict:
    """Iteratively train, measure, prune and rewind ``model`` in place; return the history.

    Parameters
    ----------
    model : nn.Module
        The model at the rewinding point (normally freshly initialised); its parameter values now
        are the "initial values" survivors are rewound to. It may already carry pruning masks.
    data : (train, val)
        Passed to ``train_fn`` and ``eval_fn``; for the defaults, wave dataset paths or datasets
        accepted by :func:`surrogate.train.fit` and :func:`surrogate.evaluate.evaluate`.
    method : {"sap", "lt", "oneshot"}
        SAP; lottery ticket (prune ``amount`` of the remaining weights, rank by trained magnitude);
        one-shot (the same counts, ranked once by the trained dense weights of iteration 0).
    scope : {"global", "layer", "neuron"}
    iterations : int
        Pruning steps ``T >= 0``; ``T + 1`` models are trained.
    out : path-like
        Output folder (see the module docstring). If it holds a checkpoint of the same method,
        scope, hyperparameters and seed, the run resumes from it (``iterations`` may be raised).
    epochs : int
        Training epochs per iteration for the default ``train_fn``.
    p, q, eta_r, gamma, beta : float
        SAP hyperparameters (Diao et al.: 0.5, 1, 0, 1, 0.9).
    amount : float
        Fraction of the remaining weights the lottery ticket and one-shot prune per step (0.2).
    seed : int
        Training seed, the same in every iteration.
    horizon : int, optional
        Rollout length of the default ``eval_fn`` (all frames by default).
    train_fn : callable, optional
        ``train_fn(model, train, val, *, seed, checkpoint)`` trains in place (``checkpoint`` is a
        path it may use to resume an interrupted iteration); its returned dict's scalar entries are
        recorded. Default: :func:`surrogate.train.fit` with ``epochs`` and ``train_options``.
    eval_fn : callable, optional
        ``eval_fn(model, val) -> dict`` with at least ``"nrmse"``. Default:
        :func:`surrogate.evaluate.evaluate` over ``horizon`` frames, without costs.
    train_options : dict, optional
        Extra keyword arguments of :func:`surrogate.train.fit` (``lr``, ``batch_size``, ...).
    overwrite : bool
        Start from scratch even if ``out`` holds a run.
    plot : bool
        Write ``pruning.png`` when the call ends.
    progress : bool
        Show a tqdm bar over iterations.
    magnitude : {"plain", "cp-aware"}
        Ranking (and, for SAP, PQ Index) scores: the weights, or the CP-aware kernel-contribution
        magnitude of :mod:`.scores` (invariant to the scale ambiguity of CP factors).
    control : bool
        Record in each entry, under ``"control"``, the PQ Index of untrained Gaussian weights pruned
        to the same counts per unit of ``scope`` (:class:`~.control.GaussianControl`).

    Returns
    -------
    dict
        The history written to ``history.json``.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {tuple(METHODS)}, got {method!r}")
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {SCOPES}, got {scope!r}")
    if int(iterations) != iterations or iterations < 0:
        raise ValueError(f"iterations must be an integer >= 0, got {iterations}")
    iterations = int(iterations)
    check_pq(p, q)
    check_sap(eta_r, gamma, beta)
    _exact_fraction(amount)
    check_magnitude(magnitude)
    try:
        train, val = data
    except (TypeError, ValueError):
        raise ValueError("data must be a pair (train, val)") from None
    if method == "sap":
        hyper = {"p": float(p), "q": float(q), "eta_r": float(eta_r), "gamma": float(gamma),
                 "beta": float(beta)}
    else:
        hyper = {"amount": float(amount)}
    train_fn = train_fn or _default_train_fn(epochs, dict(train_options or {}))
    eval_fn = eval_fn or _default_eval_fn(horizon)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    ckpt_path, history_path = out / "checkpoint.pt", out / "history.json"
    config = _config(method, scope, hyper, seed)
    if magnitude != "plain":  # absent for the default, so runs written before the option resume
        config["magnitude"] = magnitude

    _reparametrise(model)
    if ckpt_path.is_file() and not overwrite:
        state = torch.load(ckpt_path, map_location="cpu", weights_only=True)
        if state.get("format") != CHECKPOINT_FORMAT or state.get("config") != config:
            raise ValueError(f"{str(out)!r} holds a pruning run with other settings "
                             f"({state.get('config')}); choose another output folder or pass --force")
        model.load_state_dict(state["model"])
        initial, scores = state["initial"], state["scores"]
        twin = GaussianControl.from_state(state["control"]) if state.get("control") else None
        history = json.loads(state["history"])
        start = int(state["next_iteration"])
    else:
        if history_path.exists() and not overwrite:
            raise OutputExistsError(f"{str(history_path)!r} exists without a checkpoint; pass --force "
                                    f"to start again")
        initial, scores, start = _initial_values(model), None, 0
        twin = None
        sizes = {qn: total for qn, (_, total) in remaining_weights(model).items()}
        history = {"format": HISTORY_FORMAT, **config, "iterations": iterations, "sizes": sizes,
                   "total": sum(sizes.values()), "entries": [], "complete": False}
    history["iterations"] = iterations
    if control and twin is None:  # the control is path-independent: a late start matches exactly
        twin = GaussianControl({qn: initial[qn] for qn, _, _ in prunable_parameters(model)}, scope,
                               seed=seed, p=p, q=q)
    history["complete"] = start > iterations

    bar = None
    if progress and start <= iterations:
        from tqdm.auto import tqdm

        bar = tqdm(total=iterations + 1, initial=start, desc=f"pruning {method}/{scope}", unit="iter",
                   file=sys.stderr, dynamic_ncols=True)
    try:
        for t in range(start, iterations + 1):
            tick = time.perf_counter()
            if t > 0:
                previous = history["entries"][t - 1]
                if "pruned" not in previous:  # the run was complete before ``iterations`` was raised
                    previous["pruned"] = _prune_step(model, method, scope, scores, magnitude, hyper)
                    previous["pruned_total"] = sum(previous["pruned"].values())
                rewind(model, initial)
            fit_ckpt = out / f"fit_iter_{t:02d}.pt"
            trained = train_fn(model, train, val, seed=seed, checkpoint=fit_ckpt)
            metrics = eval_fn(model, val)
            if "nrmse" not in metrics:
                raise ValueError("eval_fn must return a dict with the key 'nrmse'")
            entry = history_entry(model, t, metrics, trained, p=p, q=q)
            if twin is not None:
                entry["control"] = twin.record(model)
            history["entries"] = history["entries"][:t] + [entry]
            history["complete"] = t == iterations
            if method == "oneshot" and scores is None:
                scores = importance_scores(model, magnitude)
            _save_model(model, out / f"iter_{t:02d}.pt", history)
            if t == iterations:
                _save_model(model, out / "model.pt", history)
            if t < iterations:
                pruned = _prune_step(model, method, scope, scores, magnitude, hyper)
                entry["pruned"] = pruned
                entry["pruned_total"] = sum(pruned.values())
            entry["seconds"] = time.perf_counter() - tick
            with atomic_path(ckpt_path, overwrite=True) as tmp:
                torch.save({"format": CHECKPOINT_FORMAT, "config": config, "model": model.state_dict(),
                            "initial": initial, "scores": scores, "history": json.dumps(history),
                            "control": None if twin is None else twin.state_dict(),
                            "next_iteration": t + 1}, tmp)
            atomic_write_text(history_path, json.dumps(history, indent=1), overwrite=True)
            fit_ckpt.unlink(missing_ok=True)
            if bar is not None:
                bar.set_postfix(remaining=f"{entry['remaining_fraction']:.3f}",
                                nrmse=f"{entry['val_nrmse']:.3g}")
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    if plot:
        _write_plot(history, out / "pruning.png")
    return history


def _write_plot(history: dict, path: Path) -> None:
    from .plots import plot_histories

    plot_histories([history], path, overwrite=True)
