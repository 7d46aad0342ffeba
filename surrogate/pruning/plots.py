"""Pictures of pruning runs: PQ Index and validation nRMSE against the remaining weights."""

from __future__ import annotations

import math
import os
from pathlib import Path

from jamcommon.files import atomic_path

from .history import scope_pqi

__all__ = ["plot_histories", "run_label"]


def run_label(history: dict) -> str:
    """Short legend label of a run, e.g. ``sap/global`` or ``lt/layer seed 1``."""
    label = f"{history['method']}/{history['scope']}"
    if history.get("seed"):
        label += f" seed {history['seed']}"
    return label


def _nan_for_none(values) -> list[float]:
    return [float("nan") if v is None else v for v in values]


def _draw_reference(ax, reference) -> None:
    """A solid grey line at ``reference = (nRMSE, label)``."""
    value, label = reference
    if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
        raise ValueError(f"reference must be (a finite nRMSE > 0, label), got {reference!r}")
    ax.axhline(value, color="0.3", linestyle="-", linewidth=1, label=str(label))


def plot_histories(histories, path: str | os.PathLike, *, labels=None, tolerance: float | None = 1.1,
                   title: str | None = None, overwrite: bool = False, control: bool = True,
                   reference: tuple[float, str] | None = None) -> Path:
    """Write a PNG of pruning runs: three panels.

    Against the remaining fraction of prunable weights (log axis): the PQ Index of each trained
    model in its run's scope (:func:`~surrogate.pruning.history.scope_pqi`: global value, mean
    over tensors, or mean over rows), with, dashed in the same colour, the control (the same counts
    on untrained Gaussian weights) where recorded; and the validation nRMSE with ``tolerance`` x
    the first run's dense nRMSE dashed; third, the remaining fraction against the iteration (how
    fast each method prunes).

    Parameters
    ----------
    histories : sequence of dict
        Histories (:func:`~surrogate.pruning.load_history`); several runs share the axes.
    path : path-like
        PNG file.
    labels : sequence of str, optional
        Legend labels (default :func:`run_label`).
    tolerance : float or None
        Draw ``tolerance * dense nRMSE`` of the first history; None draws nothing.
    control : bool
        Draw the control trajectories.
    reference : (float, str), optional
        A validation nRMSE to draw as a solid grey line with its legend label (e.g. the error of the
        unpruned model the runs started from); drawn in addition to ``tolerance``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    histories = list(histories)
    if not histories:
        raise ValueError("histories is empty")
    labels = list(labels) if labels is not None else [run_label(h) for h in histories]
    if len(labels) != len(histories):
        raise ValueError(f"labels must have one entry per history ({len(histories)}), got {len(labels)}")
    fig, (ax_pqi, ax_err, ax_it) = plt.subplots(1, 3, figsize=(15, 4.4), layout="constrained")
    markers = "osD^v<>ph*"
    for i, (history, label) in enumerate(zip(histories, labels)):
        entries = history["entries"]
        frac = [e["remaining_fraction"] for e in entries]
        pqi = _nan_for_none(scope_pqi(e["pqi"], history["scope"]) for e in entries)
        err = [e["val_nrmse"] for e in entries]
        style = {"marker": markers[i % len(markers)], "markersize": 4, "label": label}
        (line,) = ax_pqi.plot(frac, pqi, **style)
        if control and entries and all("control" in e for e in entries):
            ax_pqi.plot(frac, _nan_for_none(scope_pqi(e["control"], history["scope"]) for e in entries),
                        linestyle="--", linewidth=1, color=line.get_color())
        ax_err.plot(frac, err, **style)
        ax_it.plot([e["iteration"] for e in entries], frac, **style)
    if tolerance is not None and histories[0]["entries"]:
        ax_err.axhline(tolerance * histories[0]["entries"][0]["val_nrmse"], color="0.4", linestyle="--",
                       linewidth=1, label=f"{tolerance:g} x dense")
    if reference is not None:
        _draw_reference(ax_err, reference)
    for ax in (ax_pqi, ax_err):
        ax.set_xscale("log")
        ax.invert_xaxis()
        ax.set_xlabel("remaining fraction of prunable weights")
        ax.grid(True, which="both", alpha=0.3)
    scopes = sorted({h["scope"] for h in histories})
    ax_pqi.set_ylabel(f"PQ Index ({', '.join(scopes)} scope){'; dashed: control' if control else ''}")
    ax_err.set_ylabel("validation nRMSE (rollout)")
    ax_err.set_yscale("log")
    ax_err.legend(fontsize=8)
    ax_it.set_yscale("log")
    ax_it.set_xlabel("iteration")
    ax_it.set_ylabel("remaining fraction of prunable weights")
    ax_it.grid(True, which="both", alpha=0.3)
    if title:
        fig.suptitle(title)
    with atomic_path(path, overwrite=overwrite) as tmp:
        fig.savefig(tmp, format="png", dpi=90)
    plt.close(fig)
    return Path(path)
