"""Stage 5 of the demo: prune the trained surrogates of stage 4 to their accuracy limit.

Each pruning run (:func:`surrogate.pruning.prune_iteratively`) continues from a trained model of
stage 4: its rewinding point is that model's initial weights (the same architecture built with the
demo's seed, as :func:`surrogate.train.train_model` builds it), and its iteration 0 *is* the trained
model (loaded, not retrained: training from those initial weights without masks, with the same seed
and settings, is the computation stage 4 already did). Each later iteration prunes, rewinds the
survivors and retrains with stage 4's training settings. Iterations are added one at a time until
the validation nRMSE passes ``prune_tolerance`` x the unpruned model's, or ``prune_iterations``.

Files: ``pruning/<model>/<method>/`` (the runs), ``pruning/<model>/compare.png`` (SAP against the
lottery ticket, the unpruned model's validation error drawn and labelled) and
``pruning/summary.json`` (per model and method: the reference error, its source, the fraction of
weights left at the accuracy limit).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from jamcommon.files import atomic_write_text
from jamwave.demo_plots import plot_pruning
from jamwave.demo_run import DemoRun
from jamwave.report import Document

METHODS = {"sap": "SAP", "lt": "lottery ticket"}
UNPRUNED_LABEL = "unpruned model"


def pruning_stage(run: DemoRun, report: Document, splits: dict[str, Path], models: dict) -> dict:
    """Prune each model of ``run.preset.prune_models`` by SAP and by the lottery ticket.

    ``models`` is the stage-4 output ``{name: (model file, test metrics)}``. Returns
    ``pruning/summary.json``'s content: ``{model: {"reference_nrmse", "reference_source",
    "methods": {method: summary}}}``.
    """
    from surrogate.pruning import summarise_history

    p = run.preset
    folder = run.out / "pruning"
    summary = {}
    for name in p.prune_models:
        histories = {method: prune_to_limit(run, splits, models[name][0], method, folder / name / method)
                     for method in METHODS}
        reference = histories["sap"]["entries"][0]["val_nrmse"]
        plot_pruning({f"{METHODS[m]} ({p.prune_scope})": h for m, h in histories.items()},
                     folder / name / "compare.png", reference=(reference, UNPRUNED_LABEL),
                     tolerance=p.prune_tolerance, title=f"{name} surrogate of section 4, pruned")
        summary[name] = {
            "reference_nrmse": reference, "reference_source": f"models/{name}.pt",
            "tolerance": p.prune_tolerance,
            "methods": {m: summarise_history(h, p.prune_tolerance) | {
                "first_step_pruned": _first_step(h), "reached_limit": _reached_limit(h, p.prune_tolerance)}
                for m, h in histories.items()},
        }
    atomic_write_text(folder / "summary.json", json.dumps(summary, indent=1), overwrite=True)
    _write_section(run, report, splits, models, summary)
    return summary


def _first_step(history: dict) -> float:
    """Fraction of the weights pruned by the run's first step (NaN before it)."""
    entries = history["entries"]
    return 1.0 - entries[1]["remaining_fraction"] if len(entries) > 1 else float("nan")


def prune_to_limit(run: DemoRun, splits: dict[str, Path], trained: Path, method: str, out: Path) -> dict:
    """Prune the trained model in ``trained`` by ``method`` until the accuracy limit; return the
    history (resuming a run in ``out``; nothing is recomputed when it already reached the limit)."""
    import surrogate
    from surrogate.pruning import load_history, prune_iteratively

    p = run.preset
    trained_model = surrogate.load(trained)
    history_path = out / "history.json"
    history = load_history(history_path) if history_path.exists() and not run.force else None
    overwrite = run.force
    while history is None or not _finished(history, p.prune_iterations, p.prune_tolerance,
                                                     p.prune_patience):
        if history is None:
            iterations = 1
        elif history.get("complete"):
            iterations = len(history["entries"])
        else:  # interrupted: resume the same run
            iterations = history["iterations"]
        run.say(f"5/5 pruning {trained.stem} by {method} ({p.prune_scope}), iteration {iterations}")
        model = surrogate.build_model(**trained_model.config, seed=run.seed)
        history = prune_iteratively(
            model, (splits["train"], splits["val"]), method, p.prune_scope, iterations, out=out,
            seed=run.seed, horizon=p.horizon, train_fn=_continue_from(trained_model, p),
            eval_fn=_rollout_error(p.horizon, p.start),
            magnitude=p.prune_magnitude,
            overwrite=overwrite, plot=False, progress=False)
        overwrite = False
    return history


def _finished(history: dict, max_iterations: int, tolerance: float, patience: int = 1) -> bool:
    """The run is complete and has ``patience`` iterations in a row past the accuracy limit, reached
    ``max_iterations``, or stopped pruning."""
    entries = history["entries"]
    if not history.get("complete"):
        return False
    done = len(entries) - 1
    if done >= max_iterations:
        return True
    if done == 0:
        return False
    stalled = entries[-1]["remaining_fraction"] == entries[-2]["remaining_fraction"]
    return _past_limit(history, tolerance, patience) or stalled


def _outside(entry: dict, reference: float, tolerance: float) -> bool:
    """The entry's validation nRMSE is above ``tolerance`` x ``reference`` (NaN counts as above)."""
    return not entry["val_nrmse"] <= tolerance * reference


def _past_limit(history: dict, tolerance: float, patience: int = 1) -> bool:
    """The last ``patience`` pruned models all have a validation nRMSE above ``tolerance`` x the
    unpruned model's (iteration 0)."""
    entries = history["entries"]
    last = entries[1:][-patience:]
    return len(last) == patience and all(_outside(e, entries[0]["val_nrmse"], tolerance) for e in last)


def _reached_limit(history: dict, tolerance: float) -> bool:
    """A model pruned further than the best one within the limit is past the limit (so the best
    fraction is not merely where the run stopped)."""
    entries = history["entries"]
    inside = [e for e in entries if not _outside(e, entries[0]["val_nrmse"], tolerance)]
    best = min(e["remaining_fraction"] for e in inside) if inside else 1.0
    return any(_outside(e, entries[0]["val_nrmse"], tolerance) and e["remaining_fraction"] < best
               for e in entries)


def _rollout_error(horizon: int, start: int):
    """An ``eval_fn`` for :func:`prune_iteratively`: validation rollout metrics over ``horizon``
    frames from the true frames ``start``, ``start + 1`` (as stage 4 scores its models)."""
    from surrogate.evaluate import evaluate

    def eval_fn(model, val):
        return evaluate(model, val, horizon, with_costs=False, start=start)[0]

    return eval_fn


def _continue_from(trained_model, preset):
    """A ``train_fn`` for :func:`prune_iteratively` that continues from ``trained_model``.

    Without pruned weights (iteration 0) the model gets the trained weights and normalisation of
    ``trained_model``; after a pruning step it trains as stage 4 trained (same epochs, learning
    rate, noise and seed).
    """
    from surrogate.pruning.methods import remaining_weights
    from surrogate.train import fit

    def train_fn(model, train, val, *, seed, checkpoint):
        if all(alive == total for alive, total in remaining_weights(model).values()):
            load_trained(model, trained_model)
            return {"continued_from": "stage 4", **_scalar_history(trained_model.history)}
        return fit(model, train, val, seed=seed, checkpoint=checkpoint, progress=False, **preset.fit_options)

    return train_fn


def load_trained(model: torch.nn.Module, trained: torch.nn.Module) -> None:
    """Copy the parameters and buffers of ``trained`` into ``model``, whose prunable tensors may be
    reparametrised by ``torch.nn.utils.prune`` (``X_orig`` + ``X_mask``; masks are kept)."""
    target = model.state_dict()
    state = {}
    for key, value in trained.state_dict().items():
        key = key if key in target else f"{key}_orig"
        if key not in target:
            raise ValueError(f"the trained model's {key!r} has no place in the model to prune")
        state[key] = value
    masks = {k: v for k, v in target.items() if k.endswith("_mask")}
    model.load_state_dict(state | masks)


def _scalar_history(history) -> dict:
    if not isinstance(history, dict):
        return {}
    return {k: v for k, v in history.items() if isinstance(v, int | float | bool)}


def _write_section(run: DemoRun, report: Document, splits: dict, models: dict, summary: dict) -> None:
    p = run.preset
    sec = report.section("5. Pruning the trained surrogates: SAP against lottery ticket")
    sec.text(
        "Pruning continues from the trained models of section 4: iteration 0 is that model, and "
        "each later iteration prunes, rewinds the survivors to the model's initial weights and "
        "retrains with section 4's settings. SAP (Diao et al., ICLR 2023) prunes the number of "
        "weights given by the PQ Index bound (p = 0.5, q = 1, scope "
        f"'{p.prune_scope}', {p.prune_magnitude} magnitudes: where the pruning study, "
        "benchmarks/RESULTS.md, found SAP at its best on the CP model); the lottery ticket prunes "
        "20 % of the "
        "remaining weights per iteration, ranked by the same magnitudes. The dashed PQ Index lines are "
        "the control: untrained Gaussian weights pruned to the same counts (pruning alone lowers the "
        "index; training shows where a run departs from its control). "
        f"Iterations continue until the validation nRMSE exceeds {p.prune_tolerance:g} x that of the "
        f"unpruned model in {p.prune_patience} iteration{'s' if p.prune_patience > 1 else ''} in a row "
        f"(at most {p.prune_iterations}); the fraction left at the limit is the smallest whose model "
        "is within it (as in the pruning study: a retrained model's error scatters from iteration to "
        "iteration)."
    )
    for name, s in summary.items():
        rows = [{"model": name, "method": METHODS[m], "iterations": r["iterations_done"],
                 "limit reached": "yes" if r["reached_limit"] else "no",
                 "unpruned val nRMSE": s["reference_nrmse"], "first step pruned": r["first_step_pruned"],
                 f"left at {p.prune_tolerance:g}x": r["best_fraction"], "its val nRMSE": r["best_nrmse"],
                 "final left": r["final_fraction"], "final val nRMSE": r["final_nrmse"]}
                for m, r in s["methods"].items()]
        sec.table(rows)
        sec.figure(f"pruning/{name}/compare.png",
                   f"{name}: PQ Index and validation nRMSE against remaining weights; solid grey line: "
                   f"the {UNPRUNED_LABEL}'s validation error ({s['reference_nrmse']:.4g}, "
                   f"{s['reference_source']}), dashed: the accuracy limit, {p.prune_tolerance:g} x it")
        for method in METHODS:
            sec.command(
                f"jamwave surrogate prune --model {models[name][0]} --rewind init --data {splits['train']} "
                f"--val {splits['val']} --method {method} --scope {p.prune_scope} --iterations "
                f"{s['methods'][method]['iterations_done']} --epochs {p.epochs} --patience {p.patience} "
                f"--lr {p.lr} --noise {p.noise} --magnitude {p.prune_magnitude} --val-horizon {p.horizon} "
                f"--seed {run.seed} "
                f"--out {run.out / 'pruning' / name / method}"
            )
