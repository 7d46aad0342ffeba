"""A picture of a packing: the discs cut from the spheres by a plane through the periodic box."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from jamcommon.files import atomic_path


def slice_discs(packing, *, axis: int = 2, height: float | None = None):
    """Discs cut by the plane ``x[axis] = height`` (default: mid-box), periodic images included.

    Returns
    -------
    centres : ndarray (K, 2)
        Disc centres in the two remaining coordinates (images may lie outside [0, L)).
    radii : ndarray (K,)
        sqrt(r^2 - dz^2).
    species : ndarray (K,)
    """
    if axis not in (0, 1, 2):
        raise ValueError(f"axis must be 0, 1 or 2, got {axis}")
    box = np.asarray(packing.box)
    height = 0.5 * box[axis] if height is None else float(height)
    dz = packing.position[:, axis] - height
    dz -= box[axis] * np.rint(dz / box[axis])
    cut = np.abs(dz) < packing.radius
    plane = [k for k in range(3) if k != axis]
    centres = packing.position[cut][:, plane]
    radii = np.sqrt(packing.radius[cut] ** 2 - dz[cut] ** 2)
    species = packing.species[cut]
    edge = box[plane]
    out_c, out_r, out_s = [centres], [radii], [species]
    for sx in (-1, 0, 1):
        for sy in (-1, 0, 1):
            if sx == 0 and sy == 0:
                continue
            shifted = centres + np.array([sx, sy]) * edge
            near = np.all((shifted + radii[:, None] > 0) & (shifted - radii[:, None] < edge), axis=1)
            out_c.append(shifted[near])
            out_r.append(radii[near])
            out_s.append(species[near])
    return np.concatenate(out_c), np.concatenate(out_r), np.concatenate(out_s)


def plot_slice(packing, png: str | os.PathLike, *, axis: int = 2, title: str = "",
               overwrite: bool = True) -> Path:
    """Write a PNG of the slice through the middle of the box (large spheres blue, small orange)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.collections import PatchCollection
    from matplotlib.patches import Circle, Rectangle

    centres, radii, species = slice_discs(packing, axis=axis)
    plane = [k for k in range(3) if k != axis]
    edge = np.asarray(packing.box)[plane]
    fig, ax = plt.subplots(figsize=(6, 6 * edge[1] / edge[0]))
    for label, colour, name in ((0, "tab:blue", "large"), (1, "tab:orange", "small")):
        sel = species == label
        discs = [Circle(c, r) for c, r in zip(centres[sel], radii[sel])]
        ax.add_collection(PatchCollection(discs, facecolor=colour, edgecolor="k", linewidth=0.3,
                                          label=name))
    ax.add_patch(Rectangle((0, 0), edge[0], edge[1], fill=False, lw=1.0, ls="--"))
    ax.set_xlim(0, edge[0])
    ax.set_ylim(0, edge[1])
    ax.set_aspect("equal")
    axes = "xyz"
    ax.set(xlabel=f"{axes[plane[0]]} / d_L", ylabel=f"{axes[plane[1]]} / d_L",
           title=(title + "\n" if title else "") + f"slice {axes[axis]} = L/2, phi = "
           f"{packing.packing_fraction:.4f}")
    fig.tight_layout()
    with atomic_path(png, overwrite=overwrite) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return Path(png)
