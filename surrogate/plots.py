"""Pictures of a rollout: true vs predicted frames and the error curve (matplotlib, Agg)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from jamcommon.files import atomic_path
from surrogate.evaluate import Rollout


def plot_rollout(result: Rollout, metrics: dict, path: str | os.PathLike, *, sample: int = 0,
                 columns: int = 4, overwrite: bool = False, title: str | None = None) -> Path:
    """Write a PNG: rows true / predicted / error for ``columns`` frames of one sample, and the
    per-step relative L2 error (mean over samples) against the predicted frame index."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not 0 <= sample < result.true.shape[0]:
        raise ValueError(f"sample must be in [0, {result.true.shape[0] - 1}], got {sample}")
    horizon = result.true.shape[1]
    picks = np.unique(np.linspace(0, horizon - 1, min(columns, horizon)).round().astype(int))
    true, pred = result.true[sample], result.pred[sample]
    vmax = float(np.abs(true).max()) or 1.0
    fig = plt.figure(figsize=(3.0 * len(picks) + 3.5, 8.0), layout="constrained")
    grid = fig.add_gridspec(3, len(picks) + 1)
    for j, t in enumerate(picks):
        for i, (name, field) in enumerate((("true", true[t]), ("predicted", pred[t]),
                                           ("error", pred[t] - true[t]))):
            ax = fig.add_subplot(grid[i, j])
            image = ax.imshow(field, cmap="RdBu_r", vmin=-vmax, vmax=vmax, origin="lower")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"{name}, frame {t + 2}", fontsize=9)
    fig.colorbar(image, ax=fig.axes, shrink=0.6, label="u")
    ax = fig.add_subplot(grid[:, -1])
    steps = np.arange(2, horizon + 2)
    ax.plot(steps, metrics["rel_l2_per_step"], marker=".")
    ax.set_xlabel("predicted frame")
    ax.set_ylabel("relative L2 error")
    ax.set_title(f"nRMSE {metrics['nrmse']:.3g}", fontsize=10)
    ax.grid(True, alpha=0.3)
    if title:
        fig.suptitle(title)
    with atomic_path(path, overwrite=overwrite) as tmp:
        fig.savefig(tmp, format="png", dpi=90)
    plt.close(fig)
    return Path(path)
