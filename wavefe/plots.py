"""PNG figures of wave fields (matplotlib, Agg backend)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from jamcommon.files import atomic_path


def plot_snapshots(path, u: np.ndarray, c: np.ndarray, t: np.ndarray, extent, *, n_panels: int = 6,
                   title: str = "", overwrite: bool = False) -> Path:
    """Write a PNG with the speed map and ``n_panels`` snapshots of ``u``.

    Parameters
    ----------
    u : ndarray, shape (n_frames, ny, nx)
        Frames on the node grid.
    c : ndarray, shape (ny, nx)
        Wave speed (length/time).
    t : ndarray, shape (n_frames,)
        Frame times.
    extent : (xmin, xmax, ymin, ymax)
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if u.ndim != 3 or u.shape[1:] != c.shape or len(t) != len(u):
        raise ValueError(f"u (F, ny, nx), c (ny, nx) and t (F,) disagree: {u.shape}, {c.shape}, {len(t)}")
    picks = np.unique(np.linspace(0, len(u) - 1, min(n_panels, len(u))).round().astype(int))
    vmax = float(np.abs(u).max()) or 1.0
    fig, axes = plt.subplots(1, len(picks) + 1, figsize=(2.6 * (len(picks) + 1), 2.8), dpi=110,
                             constrained_layout=True)
    im = axes[0].imshow(c, origin="lower", extent=extent, cmap="viridis")
    axes[0].set_title("speed c")
    fig.colorbar(im, ax=axes[0], shrink=0.8)
    for ax, k in zip(axes[1:], picks):
        ax.imshow(u[k], origin="lower", extent=extent, cmap="RdBu_r", vmin=-vmax, vmax=vmax)
        ax.set_title(f"u, t = {t[k]:.3g}")
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    if title:
        fig.suptitle(title)
    with atomic_path(path, overwrite=overwrite) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return Path(path)
