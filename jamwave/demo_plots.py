"""Figures of the demo report (matplotlib, Agg backend, written atomically)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def plot_pressure_path(packing_files, rows, png: Path) -> None:
    """P and Z of every relaxed state the protocol visited (jamming search and following)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from granular.h5md import read_group, read_observables

    fig, (ax_p, ax_z) = plt.subplots(1, 2, figsize=(9, 3.6))
    for path, row in zip(packing_files, rows):
        path_obs, follow = read_observables(path), read_group(path, "follow")
        phi = np.concatenate([path_obs["phi"], follow["phi"]])
        pressure = np.concatenate([path_obs["pressure"], follow["pressure"]])
        z = np.concatenate([path_obs["Z"], follow["Z_backbone"]])
        near = phi > row["phi_J"] - 0.03
        order = np.argsort(phi[near])
        label = f"X_S = {row['X_S (realised)']:.2f}"
        lines = ax_p.plot(phi[near][order], pressure[near][order], "o", ms=3, label=label)
        ax_z.plot(phi[near][order], z[near][order], "o", ms=3, color=lines[0].get_color())
        ax_p.axvline(row["phi_J"], color=lines[0].get_color(), lw=0.8, ls=":")
    ax_p.set(xlabel="phi", ylabel="P (k_n / d_L)", title="relaxed pressure (dotted: phi_J)")
    ax_p.set_yscale("symlog", linthresh=1e-7)
    ax_p.set_ylim(bottom=0.0)
    ax_z.set(xlabel="phi", ylabel="Z", title="contact number (backbone above phi_J)")
    ax_z.axhline(6.0, color="gray", lw=0.8, ls="--")
    ax_p.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, png)


def save_figure(fig, png: Path) -> None:
    """Write ``fig`` to ``png`` atomically (replacing an earlier figure) and close it."""
    import matplotlib.pyplot as plt

    from jamcommon.files import atomic_path

    with atomic_path(png, overwrite=True) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def plot_media(materials, png: Path) -> None:
    """Bar chart of c = sqrt(K*/phi) per granular material, annotated with K* and phi."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.4))
    xs = [m.x_small for m in materials]
    ax.bar([f"X_S={x:.2f}" for x in xs], [m.speed for m in materials], color="tab:blue")
    for i, m in enumerate(materials):
        ax.text(i, m.speed, f"K*={m.K_star:.3f}\nphi={m.phi:.3f}", ha="center", va="bottom", fontsize=8)
    ax.set(ylabel="c = sqrt(K / rho) (reduced)", title="granular wave speeds")
    ax.set_ylim(0, 1.3 * max(m.speed for m in materials))
    fig.tight_layout()
    save_figure(fig, png)


def plot_wave_sample(path, png: Path) -> None:
    """Speed map and snapshots of sample 0 of a wave dataset file."""
    import h5py

    from wavefe.plots import plot_snapshots

    with h5py.File(path, "r") as f:
        u = f["fields/u"][0]
        c = f["fields/c"][0]
        t = f["t"][:]
        x, y = f["x"][:], f["y"][:]
    plot_snapshots(png, u, c, t, (x[0], x[-1], y[0], y[-1]), overwrite=True)
