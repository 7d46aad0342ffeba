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
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.nn.utils import prune

from jamcommon.files import OutputExistsError, atomic_path, atomic_write_text

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


@dataclass(frozen=True)
class _Work:
    """The run's training and evaluation functions bound to the data each one reads."""

    train_fn: object
    eval_fn: object
    fit_train: object
    fit_val: object
    eval_val: object

    def train(self, model: nn.Module, *, seed: int, checkpoint: Path) -> dict:
        return self.train_fn(model, self.fit_train, self.fit_val, seed=seed, checkpoint=checkpoint)

    def evaluate(self, model: nn.Module) -> dict:
        return self.eval_fn(model, self.eval_val)


def _open_work(train, val, train_fn, eval_fn, *, epochs: int, train_options: dict | None, horizon) -> _Work:
    """Bind the training and evaluation functions to their data, opening files once for the run.

    The default functions get the training windows (:func:`surrogate.data.as_windows`) and the
    validation trajectories (:func:`surrogate.data.as_trajectories`), so no iteration opens a file
    again; a caller's own ``train_fn`` / ``eval_fn`` gets ``train`` and ``val`` exactly as passed.
    """
    fit_train, fit_val, eval_val = train, val, val
    if train_fn is None or eval_fn is None:
        from surrogate.data import as_trajectories, as_windows

        opened_val = as_trajectories(val)
        if train_fn is None:
            fit_train, fit_val = as_windows(train), opened_val
        if eval_fn is None:
            eval_val = opened_val
    return _Work(train_fn or _default_train_fn(epochs, dict(train_options or {})),
                 eval_fn or _default_eval_fn(horizon), fit_train, fit_val, eval_val)


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


def _config(method, scope, hyper, seed) -> dict:
    return {"method": method, "scope": scope, "hyper": hyper, "seed": int(seed)}


@dataclass(frozen=True)
class _Plan:
    """The settings of one pruning run: what each iteration does and where it writes."""

    method: str
    scope: str
    hyper: dict
    p: float
    q: float
    seed: int
    iterations: int
    out: Path
    magnitude: str = "plain"
    control: bool = True

    @property
    def config(self) -> dict:
        """The settings a checkpoint must match to be resumed (``magnitude`` only when not plain,
        so runs written before the option resume)."""
        config = _config(self.method, self.scope, self.hyper, self.seed)
        if self.magnitude != "plain":
            config["magnitude"] = self.magnitude
        return config


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
        Passed to ``train_fn`` and ``eval_fn`` as given; for the defaults, wave dataset paths or
        datasets accepted by :func:`surrogate.train.fit` and :func:`surrogate.evaluate.evaluate`,
        opened once for the whole run (not once per iteration).
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
    overwrite, plot, progress : bool
        Start from scratch even if ``out`` holds a run; write ``pruning.png``; show a tqdm bar.
    magnitude : {"plain", "cp-aware"}
        Ranking (and SAP's PQ Index) scores: the weights, or :func:`.scores.cp_aware_scores`.
    control : bool
        Record in each entry the untrained-Gaussian control (:class:`.control.GaussianControl`).

    Returns
    -------
    dict
        The history written to ``history.json``.
    """
    iterations = _check_settings(method, scope, iterations, p, q, eta_r, gamma, beta, amount, magnitude)
    try:
        train, val = data
    except (TypeError, ValueError):
        raise ValueError("data must be a pair (train, val)") from None
    plan = _Plan(method, scope, _hyper(method, p, q, eta_r, gamma, beta, amount), p, q, seed, iterations,
                 Path(out), magnitude, control)
    plan.out.mkdir(parents=True, exist_ok=True)
    _reparametrise(model)
    initial, scores, history, start, twin = _start_or_resume(model, plan, overwrite)
    if start <= iterations:
        work = _open_work(train, val, train_fn, eval_fn, epochs=epochs, train_options=train_options,
                          horizon=horizon)
        _run_iterations(model, plan, work, (initial, scores, twin), history, start, progress)
    if plot:
        _write_plot(history, plan.out / "pruning.png")
    return history


def _check_settings(method, scope, iterations, p, q, eta_r, gamma, beta, amount, magnitude="plain") -> int:
    """Check the method, scope, iteration count and hyperparameters; return ``iterations`` as int."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {tuple(METHODS)}, got {method!r}")
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {SCOPES}, got {scope!r}")
    if int(iterations) != iterations or iterations < 0:
        raise ValueError(f"iterations must be an integer >= 0, got {iterations}")
    check_pq(p, q)
    check_sap(eta_r, gamma, beta)
    _exact_fraction(amount)
    check_magnitude(magnitude)
    return int(iterations)


def _hyper(method, p, q, eta_r, gamma, beta, amount) -> dict:
    """The hyperparameters ``method`` uses (recorded in the history and the checkpoint)."""
    if method == "sap":
        return {"p": float(p), "q": float(q), "eta_r": float(eta_r), "gamma": float(gamma),
                "beta": float(beta)}
    return {"amount": float(amount)}


def _start_or_resume(model: nn.Module, plan: _Plan, overwrite: bool):
    """Load the run's checkpoint into ``model``, or start a fresh history.

    Returns ``(initial values, one-shot scores, history, first iteration to run, control)``; the
    control (None unless ``plan.control``) is the checkpoint's, or a new one from the initial values
    (it is path-independent, so a run started before it existed gets the same values).
    """
    ckpt_path, history_path = plan.out / "checkpoint.pt", plan.out / "history.json"
    if ckpt_path.is_file() and not overwrite:
        from surrogate.io import read_checkpoint

        state = read_checkpoint(ckpt_path, ("format", "config"), what="pruning checkpoint")
        if state.get("format") != CHECKPOINT_FORMAT or state.get("config") != plan.config:
            raise ValueError(f"{str(ckpt_path)!r} holds a pruning run with other settings "
                             f"({state.get('config')}); choose another output folder or pass --force")
        try:
            model.load_state_dict(state["model"])
            initial, scores = state["initial"], state["scores"]
            twin = GaussianControl.from_state(state["control"]) if state.get("control") else None
            history = json.loads(state["history"])
            start = int(state["next_iteration"])
        except (RuntimeError, KeyError, TypeError, ValueError) as exc:
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise ValueError(f"pruning checkpoint {str(ckpt_path)!r} is damaged ({reason}); pass --force "
                             f"to start again") from None
    else:
        if history_path.exists() and not overwrite:
            raise OutputExistsError(f"{str(history_path)!r} exists without a checkpoint; pass --force "
                                    f"to start again")
        initial, scores, start, twin = _initial_values(model), None, 0, None
        sizes = {qn: total for qn, (_, total) in remaining_weights(model).items()}
        history = {"format": HISTORY_FORMAT, **plan.config, "iterations": plan.iterations, "sizes": sizes,
                   "total": sum(sizes.values()), "entries": [], "complete": False}
    history["iterations"] = plan.iterations
    history["complete"] = start > plan.iterations
    if plan.control and twin is None:
        twin = GaussianControl({qn: initial[qn] for qn, _, _ in prunable_parameters(model)}, plan.scope,
                               seed=plan.seed, p=plan.p, q=plan.q)
    return initial, scores, history, start, twin


def _run_iterations(model: nn.Module, plan: _Plan, work: _Work, state: tuple, history: dict,
                    start: int, progress: bool) -> None:
    """Run iterations ``start .. plan.iterations`` (see :func:`_iteration`), with a progress bar;
    ``state`` is ``(initial values, one-shot scores, control)``."""
    initial, scores, twin = state
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=plan.iterations + 1, initial=start, desc=f"pruning {plan.method}/{plan.scope}",
                   unit="iter", file=sys.stderr, dynamic_ncols=True)
    try:
        for t in range(start, plan.iterations + 1):
            scores, entry = _iteration(model, t, plan, work, (initial, scores, twin), history)
            if bar is not None:
                bar.set_postfix(remaining=f"{entry['remaining_fraction']:.3f}",
                                nrmse=f"{entry['val_nrmse']:.3g}")
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()


def _iteration(model: nn.Module, t: int, plan: _Plan, work: _Work, state: tuple, history: dict):
    """Iteration ``t``: prune and rewind (``t > 0``), train, measure, save, prune for the next.

    ``state`` is ``(initial values, one-shot scores, control)``. The history, the control and the
    files of the run are updated in place; returns ``(one-shot scores, the new entry)``.
    """
    initial, scores, twin = state
    tick = time.perf_counter()
    if t > 0:
        previous = history["entries"][t - 1]
        if "pruned" not in previous:  # the run was complete before ``iterations`` was raised
            _record_pruning(previous, _prune_step(model, plan, scores))
        rewind(model, initial)
    fit_ckpt = plan.out / f"fit_iter_{t:02d}.pt"
    trained = work.train(model, seed=plan.seed, checkpoint=fit_ckpt)
    metrics = work.evaluate(model)
    if "nrmse" not in metrics:
        raise ValueError("eval_fn must return a dict with the key 'nrmse'")
    entry = history_entry(model, t, metrics, trained, p=plan.p, q=plan.q)
    if twin is not None:
        entry["control"] = twin.record(model)
    history["entries"] = history["entries"][:t] + [entry]
    history["complete"] = t == plan.iterations
    if plan.method == "oneshot" and scores is None:
        scores = importance_scores(model, plan.magnitude)
    _save_model(model, plan.out / f"iter_{t:02d}.pt", history)
    if t == plan.iterations:
        _save_model(model, plan.out / "model.pt", history)
    else:
        _record_pruning(entry, _prune_step(model, plan, scores))
    entry["seconds"] = time.perf_counter() - tick
    _write_state(model, plan, (initial, scores, twin), history, t + 1)
    fit_ckpt.unlink(missing_ok=True)
    return scores, entry


def _prune_step(model: nn.Module, plan: _Plan, scores) -> dict:
    """One pruning step: one-shot ranks by its fixed ``scores``; the others by the current weights
    (``plain``) or their CP-aware magnitude."""
    if plan.method != "oneshot" and plan.magnitude != "plain":
        scores = importance_scores(model, plan.magnitude)
    return prune_model(model, plan.method, plan.scope, importance_scores=scores, **plan.hyper)


def _record_pruning(entry: dict, pruned: dict) -> None:
    entry["pruned"] = pruned
    entry["pruned_total"] = sum(pruned.values())


def _write_state(model: nn.Module, plan: _Plan, state: tuple, history: dict, next_iteration: int) -> None:
    """Write the checkpoint (resume point) and ``history.json``, each atomically; ``state`` is
    ``(initial values, one-shot scores, control)``."""
    initial, scores, twin = state
    with atomic_path(plan.out / "checkpoint.pt", overwrite=True) as tmp:
        torch.save({"format": CHECKPOINT_FORMAT, "config": plan.config, "model": model.state_dict(),
                    "initial": initial, "scores": scores, "history": json.dumps(history),
                    "next_iteration": next_iteration,
                    "control": None if twin is None else twin.state_dict()}, tmp)
    atomic_write_text(plan.out / "history.json", json.dumps(history, indent=1), overwrite=True)


def _write_plot(history: dict, path: Path) -> None:
    from .plots import plot_histories

    plot_histories([history], path, overwrite=True)
