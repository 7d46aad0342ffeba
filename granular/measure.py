"""Measurements on a configuration: forces, contacts, pressure split, rattlers and backbone.

All functions take a :class:`~granular.space.Packing` (or raw arrays for :func:`forces`) and a
:class:`~granular.contact.ContactLaw`, and run the pair search and force kernels on the chosen
backend. Units: forces in k_n d_L, pressure in k_n / d_L (linear law), lengths in d_L.

Host-side arrays of contacts use the kernels' own physics: the pair law is
:func:`granular.contact.pair_force` made a numpy ufunc (:func:`pair_forces`), the minimum image
is :func:`granular.space.minimum_image`, and the pressure split reads the kernels' accumulator
slots by name (:mod:`granular.accumulators`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

from granular.accumulators import ACC_VIRIAL_LL, ACC_VIRIAL_SL, ACC_VIRIAL_SS
from granular.backend import launch_layer, resolve_backend
from granular.contact import DEFAULT_LAW, MODELS, ContactLaw, pair_force
from granular.space import Packing, check_box, minimum_image, wrap

_pair_force_ufunc = numba.vectorize(["float64(float64, float64, float64, float64, int64)"],
                                    cache=True)(pair_force)


def pair_forces(overlap, law: ContactLaw = DEFAULT_LAW, rate=None) -> np.ndarray:
    """Normal force magnitudes of contacts by the kernels' pair law, elementwise.

    Parameters
    ----------
    overlap : array_like, shape (M,)
        xi = r_i + r_j - |r_ij| > 0 (units d_L).
    law : ContactLaw
        Its ``k_n``, ``model`` and, with ``rate``, ``gamma_n``.
    rate : array_like, shape (M,), optional
        d xi / dt; without it only the elastic (spring) part is returned.

    Returns
    -------
    ndarray, shape (M,)
        Force magnitudes, positive when repulsive (units k_n d_L for the linear law).
    """
    model = getattr(law, "model", "linear")
    if model not in MODELS:
        raise ValueError(f"law.model must be one of {sorted(MODELS)}, got {model!r}")
    k_n = float(getattr(law, "k_n", 1.0))
    gamma_n = 0.0 if rate is None else float(getattr(law, "gamma_n", 0.0))
    rate = 0.0 if rate is None else np.asarray(rate, dtype=np.float64)
    return _pair_force_ufunc(np.asarray(overlap, dtype=np.float64), rate, k_n, gamma_n, MODELS[model])


def _check_arrays(position, radius, box):
    position = np.ascontiguousarray(position, dtype=np.float64)
    radius = np.ascontiguousarray(radius, dtype=np.float64)
    box = np.ascontiguousarray(box, dtype=np.float64).reshape(-1)
    if radius.ndim != 1 or radius.size < 1:
        raise ValueError(f"radius must have shape (N,) with N >= 1, got {radius.shape}")
    if position.shape != (radius.size, 3):
        raise ValueError(f"position must have shape ({radius.size}, 3), got {position.shape}")
    if box.shape != (3,) or not np.all(np.isfinite(box) & (box > 0)):
        raise ValueError(f"box must hold 3 finite edge lengths > 0, got {box}")
    if not np.all(np.isfinite(radius) & (radius > 0)):
        raise ValueError("radius must be finite and > 0")
    if not np.all(np.isfinite(position)):
        raise ValueError("position must be finite")
    check_box(box, float(radius.max()), 0.0)
    return wrap(position, box), radius, box


def forces(position, radius, box, *, k_n: float = 1.0, backend: str = "auto") -> np.ndarray:
    """Spring part of the linear contact forces of a configuration.

    Parameters
    ----------
    position : array_like, shape (N, 3)
        Centres; positions outside the box are wrapped.
    radius : array_like, shape (N,)
    box : array_like, shape (3,)
        Periodic box edges; each must be at least two largest diameters.
    k_n : float
        Spring constant.
    backend : {"auto", "cpu", "cuda"}

    Returns
    -------
    ndarray, shape (N, 3)
        Net force on every particle, sum over contacts of k_n xi (units k_n d_L).
    """
    law = ContactLaw(k_n=k_n)
    position, radius, box = _check_arrays(position, radius, box)
    layer = launch_layer(resolve_backend(backend))
    species = np.zeros(radius.size, np.int8)
    force, _ = layer.evaluate(position, np.zeros_like(position), radius, species, box, law.k_n, 0.0,
                              law.model_code)
    return force


@dataclass(frozen=True)
class Contacts:
    """Touching pairs (overlap > 0), i < j, sorted by (i, j); M pairs.

    Attributes
    ----------
    i, j : ndarray (M,) int64
    overlap : ndarray (M,)
        r_i + r_j - |r_ij| > 0.
    normal : ndarray (M, 3)
        Unit vector from i to j (minimum image).
    distance : ndarray (M,)
        |r_ij|.
    force : ndarray (M,)
        Normal force magnitude, positive when repulsive (spring plus dashpot at the packing's
        velocities).
    pair_type : ndarray (M,) int64
        0 large-large, 1 small-large, 2 small-small.
    """

    i: np.ndarray
    j: np.ndarray
    overlap: np.ndarray
    normal: np.ndarray
    distance: np.ndarray
    force: np.ndarray
    pair_type: np.ndarray

    @property
    def m(self) -> int:
        return int(self.i.size)


def contacts(packing: Packing, law: ContactLaw = DEFAULT_LAW, *, backend: str = "auto") -> Contacts:
    """All touching pairs of ``packing`` with their geometry and normal force."""
    position, radius, box = _check_arrays(packing.position, packing.radius, packing.box)
    layer = launch_layer(resolve_backend(backend))
    a, b = layer.pairs(position, radius, box)
    i = np.minimum(a, b)
    j = np.maximum(a, b)
    vec = minimum_image(position[j] - position[i], box)
    distance = np.sqrt(np.einsum("mk,mk->m", vec, vec))
    keep = distance < radius[i] + radius[j]
    order = np.lexsort((j[keep], i[keep]))
    i, j, vec, distance = i[keep][order], j[keep][order], vec[keep][order], distance[keep][order]
    normal = vec / distance[:, None]
    overlap = radius[i] + radius[j] - distance
    rate = -np.einsum("mk,mk->m", packing.velocity[j] - packing.velocity[i], normal)
    force = pair_forces(overlap, law, rate)
    pair_type = packing.species[i].astype(np.int64) + packing.species[j].astype(np.int64)
    return Contacts(i, j, overlap, normal, distance, force, pair_type)


def net_forces(c: Contacts, magnitude: np.ndarray, n: int) -> np.ndarray:
    """Net force (N, 3) on each of ``n`` particles from contact force magnitudes (M,) of ``c``
    (repulsive: +magnitude along the normal on j, minus on i)."""
    pair = np.asarray(magnitude, dtype=np.float64)[:, None] * c.normal
    force = np.zeros((n, 3))
    np.add.at(force, c.j, pair)
    np.add.at(force, c.i, -pair)
    return force


@dataclass(frozen=True)
class PressureSplit:
    """Contact-virial pressure P = sum_c f_c |r_ij| / (3 V) (positive in compression), split by
    pair type: total = ss + sl + ll."""

    total: float
    ss: float
    sl: float
    ll: float


def pressure(packing: Packing, law: ContactLaw = DEFAULT_LAW, *, backend: str = "auto") -> PressureSplit:
    """Contact-virial pressure of ``packing`` and its split P_SS, P_SL, P_LL (force kernel sums)."""
    position, radius, box = _check_arrays(packing.position, packing.radius, packing.box)
    layer = launch_layer(resolve_backend(backend))
    _, totals = layer.evaluate(position, packing.velocity, radius, packing.species, box, law.k_n,
                               law.gamma_n, law.model_code)
    scale = 1.0 / (3.0 * float(np.prod(box)))
    ll, sl, ss = (float(totals[k] * scale) for k in (ACC_VIRIAL_LL, ACC_VIRIAL_SL, ACC_VIRIAL_SS))
    return PressureSplit(total=ll + sl + ss, ss=ss, sl=sl, ll=ll)


def contact_numbers(packing: Packing, law: ContactLaw = DEFAULT_LAW, *, backend: str = "auto") -> np.ndarray:
    """Number of force-bearing contacts (f > 0) of every particle, shape (N,)."""
    c = contacts(packing, law, backend=backend)
    bearing = c.force > 0
    return (np.bincount(c.i[bearing], minlength=packing.n) + np.bincount(c.j[bearing], minlength=packing.n))


@dataclass(frozen=True)
class Backbone:
    """Force-bearing backbone after iterative rattler removal.

    Attributes
    ----------
    jammed : ndarray (N,) bool
        Member of the backbone (not a rattler).
    z_backbone : float
        Mean number of backbone contacts per backbone particle (0 if the backbone is empty).
    n_contacts_backbone : int
        Contacts between two backbone particles.
    jammed_fraction_small, jammed_fraction_large : float
        Fraction of small (large) particles in the backbone (0 if the species is absent).
    n_rattlers : int
    """

    jammed: np.ndarray
    z_backbone: float
    n_contacts_backbone: int
    jammed_fraction_small: float
    jammed_fraction_large: float
    n_rattlers: int


def backbone(packing: Packing, law: ContactLaw = DEFAULT_LAW, min_contacts: int = 4, *,
             backend: str = "auto") -> Backbone:
    """Remove particles with fewer than ``min_contacts`` force-bearing contacts, repeatedly.

    Each removal lowers the contact numbers of the neighbours, so the loop repeats until every
    remaining particle has at least ``min_contacts`` contacts with other remaining particles.
    """
    if int(min_contacts) < 1:
        raise ValueError(f"min_contacts must be >= 1, got {min_contacts}")
    c = contacts(packing, law, backend=backend)
    bearing = c.force > 0
    i, j = c.i[bearing], c.j[bearing]
    alive = np.ones(packing.n, dtype=bool)
    while True:
        keep = alive[i] & alive[j]
        z = np.bincount(i[keep], minlength=packing.n) + np.bincount(j[keep], minlength=packing.n)
        drop = alive & (z < min_contacts)
        if not drop.any():
            break
        alive &= ~drop
    keep = alive[i] & alive[j]
    n_backbone = int(alive.sum())
    n_c = int(keep.sum())
    small = packing.species == 1
    large = ~small
    return Backbone(
        jammed=alive,
        z_backbone=2.0 * n_c / n_backbone if n_backbone else 0.0,
        n_contacts_backbone=n_c,
        jammed_fraction_small=float(alive[small].mean()) if small.any() else 0.0,
        jammed_fraction_large=float(alive[large].mean()) if large.any() else 0.0,
        n_rattlers=packing.n - n_backbone,
    )
