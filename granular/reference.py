"""Brute-force O(N^2) numpy reference for forces, contacts and the contact virial.

Plain, obviously-correct code used by the tests to check the optimised kernels (cell grids,
Verlet lists, both backends). Every pair i < j is examined with the minimum-image convention.
This module is the independent check, so on purpose it shares no code with what it checks: the
image is the general rounding formula (any displacement, unwrapped positions included), not the
kernels' :func:`granular.space.nearest_image`, and the pair law is written out in numpy.
"""

from __future__ import annotations

import numpy as np


def reference_pairs(position: np.ndarray, radius: np.ndarray, box: np.ndarray, *, block: int = 512):
    """All touching pairs i < j (overlap > 0), sorted by (i, j).

    Returns
    -------
    i, j : ndarray (M,) int64
    vector : ndarray (M, 3)
        Minimum-image r_j - r_i.
    """
    position = np.asarray(position, dtype=np.float64)
    radius = np.asarray(radius, dtype=np.float64)
    box = np.asarray(box, dtype=np.float64)
    n = radius.size
    out_i, out_j, out_v = [], [], []
    for lo in range(0, n, block):
        rows = np.arange(lo, min(lo + block, n))
        vec = position[None, :, :] - position[rows, None, :]
        vec -= box * np.rint(vec / box)
        dist = np.sqrt(np.einsum("abk,abk->ab", vec, vec))
        touching = (dist < radius[rows, None] + radius[None, :]) & (np.arange(n)[None, :] > rows[:, None])
        a, b = np.nonzero(touching)
        out_i.append(rows[a])
        out_j.append(b)
        out_v.append(vec[a, b])
    return (np.concatenate(out_i).astype(np.int64), np.concatenate(out_j).astype(np.int64),
            np.concatenate(out_v).reshape(-1, 3))


def reference_contacts(position, radius, box, *, k_n=1.0, model="linear", species=None,
                       velocity=None, gamma_n=0.0) -> dict:
    """Contacts as a dict of arrays: i, j, overlap, normal, distance, force, pair_type."""
    i, j, vec = reference_pairs(position, radius, box)
    distance = np.sqrt(np.sum(vec**2, axis=1))
    normal = vec / distance[:, None]
    overlap = radius[i] + radius[j] - distance
    spring = k_n * overlap * (np.sqrt(overlap) if model == "hertz" else 1.0)
    rate = np.zeros_like(overlap)
    if velocity is not None:
        rate = -np.sum((velocity[j] - velocity[i]) * normal, axis=1)
    force = spring + gamma_n * rate
    species = np.zeros(len(radius), np.int8) if species is None else np.asarray(species)
    pair_type = species[i].astype(np.int64) + species[j].astype(np.int64)
    return {"i": i, "j": j, "overlap": overlap, "normal": normal, "distance": distance, "force": force,
            "pair_type": pair_type}


def reference_forces(position, radius, box, *, k_n=1.0, model="linear", velocity=None,
                     gamma_n=0.0) -> np.ndarray:
    """Net contact force on every particle, shape (N, 3)."""
    c = reference_contacts(position, radius, box, k_n=k_n, model=model, velocity=velocity,
                           gamma_n=gamma_n)
    out = np.zeros((len(radius), 3))
    pair = c["force"][:, None] * c["normal"]
    np.add.at(out, c["i"], -pair)
    np.add.at(out, c["j"], pair)
    return out


def reference_pressure(position, radius, box, species, *, k_n=1.0, model="linear") -> dict:
    """Contact-virial pressure P = sum_c f_c |r_ij| / (3 V), total and split by pair type."""
    c = reference_contacts(position, radius, box, k_n=k_n, model=model, species=species)
    volume = float(np.prod(box))
    w = c["force"] * c["distance"] / (3.0 * volume)
    split = {name: float(w[c["pair_type"] == t].sum()) for t, name in enumerate(("ll", "sl", "ss"))}
    return {"total": float(w.sum()), **split}
