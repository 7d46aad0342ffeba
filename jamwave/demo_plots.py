"""Figures of the demo report (matplotlib, Agg backend, written atomically)."""

from __future__ import annotations

import math
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


def plot_jamming_diagram(tables: dict, png: Path, *, x_star: tuple[float, float],
                         crossover: dict, published=()) -> None:
    """phi_J of both transitions and K* against X_S, one colour per size ratio.

    Parameters
    ----------
    tables : dict
        ``{delta: diagram.h5 path}`` (:func:`granular.diagram.combine` tables, one delta each).
    png : Path
    x_star : (delta, X*_S)
        The published X*_S, drawn dashed in the colour of that delta (grey if not in ``tables``).
    crossover : dict
        :func:`granular.diagram.transition_crossover` of the sweep at ``x_star[0]``; its
        interpolated meeting point is marked.
    published : sequence of (X_S, phi_J, label)
        Published jamming points, drawn as stars.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from granular.diagram import read_diagram

    fig, (ax_phi, ax_k) = plt.subplots(1, 2, figsize=(10, 4))
    star_color = "0.4"
    for i, (delta, table) in enumerate(sorted(tables.items(), reverse=True)):
        t, color = read_diagram(table), f"C{i}"
        x = t["x_small"]
        ax_phi.plot(x, t["phi_J_mean"][0], "o-", color=color, label=f"delta = {delta:.3g}: first")
        ax_phi.plot(x, t["phi_J_second_mean"][0], "s--", mfc="none", color=color,
                    label=f"delta = {delta:.3g}: second")
        ax_k.plot(x, t["K_star_mean"][0], "o-", color=color, label=f"delta = {delta:.3g}")
        if math.isclose(delta, x_star[0]):
            star_color = color
    for ax in (ax_phi, ax_k):
        ax.axvline(x_star[1], color=star_color, ls=":", lw=1.2,
                   label=f"Petit et al. X*_S = {x_star[1]:g} (delta {x_star[0]:g})")
    for x, phi, label in published:
        ax_phi.plot([x], [phi], "*", ms=11, color="k", ls="none", label=label)
    est = crossover.get("x_transitions_meet_interpolated", math.nan)
    if math.isfinite(est):
        ax_phi.axvline(est, color=star_color, ls="-.", lw=0.8, label=f"this run: X*_S ~ {est:.2f}")
    ax_phi.set(xlabel="X_S (volume fraction of small spheres)", ylabel="phi_J",
               title="jamming transitions")
    ax_k.set(xlabel="X_S", ylabel="K* = K d_L / k_n", title="bulk modulus at phi_J + dphi")
    ax_k.set_yscale("log")
    ax_phi.legend(fontsize=7)
    ax_k.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, png)


def plot_follow(packing_files, png: Path) -> None:
    """Jammed fraction of the small spheres and K (linear response) along the followed
    compression of each packing, against phi - phi_J; the second transition dotted."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from granular.h5md import read_group

    fig, (ax_f, ax_k) = plt.subplots(1, 2, figsize=(10, 3.8))
    for i, path in enumerate(packing_files):
        res, follow = read_group(path, "results"), read_group(path, "follow")
        dphi = np.asarray(follow["phi"]) - res["phi_J"]
        label = f"X_S = {res['x_small']:.2f}"
        ax_f.plot(dphi, follow["jammed_fraction_small"], "o-", ms=3, color=f"C{i}", label=label)
        ax_k.plot(dphi, np.asarray(follow["K"]) / res["k_n"], "o-", ms=3, color=f"C{i}", label=label)
        if math.isfinite(res["phi_J_second"]):
            for ax in (ax_f, ax_k):
                ax.axvline(res["phi_J_second"] - res["phi_J"], color=f"C{i}", ls=":", lw=1)
    ax_f.set(xlabel="phi - phi_J", ylabel="jammed fraction of small spheres",
             title="second transition (dotted): half of them jammed")
    ax_k.set(xlabel="phi - phi_J", ylabel="K* (linear response)", title="bulk modulus along the path")
    ax_k.set_yscale("log")
    ax_f.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, png)


def plot_pruning(histories: dict, png: Path, *, reference: tuple[float, str], tolerance: float,
                 title: str) -> None:
    """Pruning runs against the remaining fraction of prunable weights: PQ Index (the untrained
    control dashed), validation nRMSE with the unpruned model's error and the accuracy limit drawn
    and labelled, and the remaining fraction per iteration.

    Parameters
    ----------
    histories : dict
        ``{legend label: history}`` (:func:`surrogate.pruning.load_history`), each starting from
        the same unpruned model.
    png : Path
    reference : (float, str)
        The unpruned model's validation nRMSE and its legend label.
    tolerance : float
        The accuracy limit, relative to ``reference``; drawn dashed and labelled.
    title : str
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from surrogate.pruning.history import scope_pqi

    def nan(values):
        return [math.nan if v is None else v for v in values]

    fig, (ax_pqi, ax_err, ax_it) = plt.subplots(1, 3, figsize=(15, 4.4), layout="constrained")
    for i, (label, history) in enumerate(histories.items()):
        entries, scope = history["entries"], history["scope"]
        frac = [e["remaining_fraction"] for e in entries]
        style = {"marker": "osD^v"[i % 5], "markersize": 4, "label": label, "color": f"C{i}"}
        ax_pqi.plot(frac, nan(scope_pqi(e["pqi"], scope) for e in entries), **style)
        if entries and all("control" in e for e in entries):
            ax_pqi.plot(frac, nan(scope_pqi(e["control"], scope) for e in entries), ls="--", lw=1,
                        color=f"C{i}")
        ax_err.plot(frac, [e["val_nrmse"] for e in entries], **style)
        ax_it.plot([e["iteration"] for e in entries], frac, **style)
    value, label = reference
    ax_err.axhline(value, color="0.3", lw=1, label=f"{label}: {value:.3g}")
    ax_err.axhline(tolerance * value, color="0.3", ls="--", lw=1,
                   label=f"accuracy limit: {tolerance:g} x {label}")
    for ax in (ax_pqi, ax_err):
        ax.set_xscale("log")
        ax.invert_xaxis()
        ax.set_xlabel("remaining fraction of prunable weights")
        ax.grid(True, which="both", alpha=0.3)
    scopes = ", ".join(sorted({h["scope"] for h in histories.values()}))
    ax_pqi.set_ylabel(f"PQ Index ({scopes} scope); dashed: untrained control")
    ax_err.set(ylabel="validation nRMSE (rollout)", yscale="log")
    ax_it.set(xlabel="iteration", ylabel="remaining fraction of prunable weights", yscale="log")
    ax_it.grid(True, which="both", alpha=0.3)
    ax_pqi.legend(fontsize=8)
    ax_err.legend(fontsize=8)
    fig.suptitle(title)
    save_figure(fig, png)
