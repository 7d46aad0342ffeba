"""Wave-speed fields on mesh nodes: uniform, layered, random smooth, and granular mixtures.

Every function returns nodal speeds ``c`` of shape (n_nodes,) in domain length per time unit.

Granular media (:func:`from_granular`). A region filled with a jammed bidisperse packing of
packing fraction ``phi`` and bulk modulus ``K`` gets the longitudinal speed estimate
``c = sqrt(K / rho)`` with bulk density ``rho = phi * rho_grain``. In the DEM's reduced units
(large diameter ``d_L = 1``, grain density ``rho_grain = 1``, contact stiffness ``k_n``), stresses
are measured in ``k_n / d_L`` and the dimensionless modulus is ``K* = K d_L / k_n``, so

    c = sqrt(K* k_n / (d_L phi rho_grain))   [d_L / t_0, t_0 = sqrt(rho_grain d_L^3 / k_n)]

and with ``k_n = d_L = rho_grain = 1`` simply ``c = sqrt(K* / phi)``. ``speed_scale`` then maps
these reduced speeds to the FE domain's units (``c_FE = speed_scale * c``): e.g. a unit-square
domain standing for ``L`` grain diameters traversed in FE time units of ``tau`` reduced times
needs ``speed_scale = tau / L``.

Materials come from a table (dicts with ``K`` and ``phi``, or ``K_star``, ``phi`` and optional
``k_n``, ``d_L``) or from packing files (H5MD, read by :mod:`granular.h5md`:
``/jamwave/modulus/K_star`` or ``/jamwave/modulus/K`` with the file's ``k_n``, ``/jamwave/results/phi``
or the stored packing's packing fraction, and ``/jamwave/results/delta`` and ``/jamwave/results/x_small``
recorded as the mixture).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import h5py
import numpy as np


def _xy(points) -> tuple[np.ndarray, np.ndarray]:
    points = np.asarray(points, np.float64)
    if points.ndim != 2 or points.shape[1] != 2:
        raise ValueError(f"points must have shape (n_nodes, 2), got {points.shape}")
    return points[:, 0], points[:, 1]


def uniform(points, c: float) -> np.ndarray:
    """Constant speed ``c`` > 0 at every node."""
    if not (np.isfinite(c) and c > 0):
        raise ValueError(f"c must be finite and > 0, got {c}")
    return np.full(len(points), float(c))


def layer_labels(points, interfaces, axis: int = 1) -> np.ndarray:
    """Region label per node for layers split at the increasing coordinates ``interfaces``."""
    if axis not in (0, 1):
        raise ValueError(f"axis must be 0 (x) or 1 (y), got {axis}")
    interfaces = np.asarray(interfaces, np.float64).reshape(-1)
    if np.any(np.diff(interfaces) <= 0):
        raise ValueError(f"interfaces must be strictly increasing, got {interfaces}")
    return np.searchsorted(interfaces, _xy(points)[axis], side="right")


def voronoi_labels(points, centers) -> np.ndarray:
    """Region label per node: the index of the nearest of ``centers`` (k, 2)."""
    centers = np.asarray(centers, np.float64).reshape(-1, 2)
    d2 = ((np.asarray(points)[:, None, :] - centers[None]) ** 2).sum(-1)
    return np.argmin(d2, axis=1)


def layered(points, speeds, interfaces, axis: int = 1) -> np.ndarray:
    """Piecewise-constant speed: ``speeds[k]`` in the k-th layer along ``axis``.

    ``len(speeds)`` must be ``len(interfaces) + 1``.
    """
    speeds = np.asarray(speeds, np.float64).reshape(-1)
    if len(speeds) != len(np.atleast_1d(interfaces)) + 1:
        raise ValueError(f"speeds needs len(interfaces) + 1 = {len(np.atleast_1d(interfaces)) + 1} "
                         f"values, got {len(speeds)}")
    if not np.all(np.isfinite(speeds)) or np.any(speeds <= 0):
        raise ValueError("speeds must be finite and > 0")
    return speeds[layer_labels(points, interfaces, axis)]


def random_smooth(points, rng: np.random.Generator, c_min: float = 1.0, c_max: float = 2.0,
                  correlation_length: float = 0.2, n_modes: int = 64) -> np.ndarray:
    """A smooth random field rescaled to ``[c_min, c_max]`` over the nodes.

    A sum of ``n_modes`` random Fourier features ``cos(k . x + phase)`` with wave vectors drawn
    from a Gaussian of standard deviation ``1 / correlation_length`` (a squared-exponential
    covariance), so it is defined on any mesh.
    """
    if not (np.isfinite(c_min) and 0 < c_min <= c_max and np.isfinite(c_max)):
        raise ValueError(f"need 0 < c_min <= c_max finite, got c_min={c_min}, c_max={c_max}")
    if not correlation_length > 0:
        raise ValueError(f"correlation_length must be > 0, got {correlation_length}")
    x, y = _xy(points)
    k = rng.normal(0.0, 1.0 / correlation_length, size=(n_modes, 2))
    phase = rng.uniform(0, 2 * np.pi, n_modes)
    ux, ix = np.unique(x, return_inverse=True)
    uy, iy = np.unique(y, return_inverse=True)
    if len(ux) * len(uy) == len(x):  # tensor grid: sum_k cos(.) = Re(E_y E_x^T), one small matmul
        ex = np.exp(1j * np.outer(ux, k[:, 0]))
        ey = np.exp(1j * (np.outer(uy, k[:, 1]) + phase))
        field = (ey @ ex.T).real[iy, ix]
    else:
        field = np.cos(np.outer(x, k[:, 0]) + np.outer(y, k[:, 1]) + phase).sum(axis=1)
    span = np.ptp(field)
    unit = (field - field.min()) / span if span > 0 else np.zeros_like(field)
    return c_min + (c_max - c_min) * unit


@dataclass(frozen=True)
class GranularMaterial:
    """A jammed granular mixture: reduced bulk modulus and packing fraction.

    Attributes
    ----------
    K_star : float
        ``K d_L / k_n`` (dimensionless bulk modulus), > 0.
    phi : float
        Packing fraction in (0, 1).
    k_n, d_L : float
        Contact stiffness and large diameter (reduced units, default 1).
    delta, x_small : float
        Size ratio and small-particle volume fraction of the mixture (NaN when unknown).
    source : str
        Where the numbers came from (file name or "table").
    """

    K_star: float
    phi: float
    k_n: float = 1.0
    d_L: float = 1.0
    delta: float = float("nan")
    x_small: float = float("nan")
    source: str = "table"

    def __post_init__(self):
        if not (np.isfinite(self.K_star) and self.K_star > 0):
            raise ValueError(f"K_star must be finite and > 0, got {self.K_star}")
        if not 0 < self.phi < 1:
            raise ValueError(f"phi must be in (0, 1), got {self.phi}")
        if not (self.k_n > 0 and self.d_L > 0):
            raise ValueError(f"k_n and d_L must be > 0, got {self.k_n}, {self.d_L}")

    @property
    def speed(self) -> float:
        """``sqrt(K / rho)`` in units of ``d_L / sqrt(rho_grain d_L^3 / k_n)``, i.e. ``sqrt(K*/phi)``."""
        return float(np.sqrt(self.K_star / self.phi))


def material(entry) -> GranularMaterial:
    """A :class:`GranularMaterial` from a table entry (dict) or a packing file path."""
    if isinstance(entry, GranularMaterial):
        return entry
    if isinstance(entry, str | os.PathLike):
        return read_material(entry)
    if not isinstance(entry, dict):
        raise ValueError(f"a granular material is a dict or a file path, got {type(entry).__name__}")
    k_n = float(entry.get("k_n", 1.0))
    d_L = float(entry.get("d_L", 1.0))
    if "K_star" in entry:
        K_star = float(entry["K_star"])
    elif "K" in entry:
        K_star = float(entry["K"]) * d_L / k_n
    else:
        raise ValueError(f"a granular table entry needs 'K' or 'K_star', got keys {sorted(entry)}")
    if "phi" not in entry:
        raise ValueError(f"a granular table entry needs 'phi', got keys {sorted(entry)}")
    return GranularMaterial(K_star, float(entry["phi"]), k_n, d_L, float(entry.get("delta", "nan")),
                            float(entry.get("x_small", "nan")))


def read_material(path) -> GranularMaterial:
    """The granular material of a packing file: phi, k_n, K (or K_star), delta and x_small.

    Named apart from :func:`granular.h5md.read_packing`, which reads the particles.

    ``K_star`` is ``/jamwave/modulus/K_star``, else ``/jamwave/modulus/K`` over the file's contact
    stiffness (``/parameters/jamwave/law/k_n`` or ``/jamwave/results/k_n``; an error when neither is
    stored). ``phi`` is ``/jamwave/results/phi``, else the packing fraction of the stored packing.

    Raises
    ------
    ValueError
        (:class:`granular.h5md.PackingFileError`) for a missing, unreadable or incomplete file, with
        the path in the file that is missing.
    """
    from granular.h5md import PackingFileError, open_packing_file, read_contact_stiffness

    law, _ = read_contact_stiffness(path)
    with open_packing_file(path) as f:
        def scalar(name, default=None):
            if name not in f or not isinstance(f[name], h5py.Dataset):
                if default is None:
                    raise PackingFileError(f"{path}: packing file lacks {name}")
                return default
            value = np.asarray(f[name][()])
            if value.dtype.kind not in "fiu" or value.size != 1:
                raise PackingFileError(f"{path}: {name} is not one number (dtype {value.dtype}, "
                                       f"shape {value.shape})")
            return float(value.reshape(-1)[0])

        if "/jamwave/modulus" not in f:
            raise PackingFileError(f"{path}: packing file lacks /jamwave/modulus (run `jamwave granular "
                                   f"modulus --in {path}` first)")
        k_n = law["k_n"] if law else None
        if "/jamwave/modulus/K_star" in f:
            K_star = scalar("/jamwave/modulus/K_star")
        elif k_n is None:
            raise PackingFileError(f"{path}: /jamwave/modulus has K but no K_star, and the file stores no "
                                   f"contact stiffness (/parameters/jamwave/law/k_n or /jamwave/results/k_n)")
        else:
            K_star = scalar("/jamwave/modulus/K") / k_n  # d_L = 1 in the DEM's reduced units
        phi = scalar("/jamwave/results/phi", -1.0)
        delta = scalar("/jamwave/results/delta", float("nan"))
        x_small = scalar("/jamwave/results/x_small", float("nan"))
    if phi < 0:
        from granular.h5md import read_packing

        phi = read_packing(path).packing_fraction
    try:  # k_n only labels the material when K_star is stored: the speed is sqrt(K_star / phi)
        return GranularMaterial(K_star, phi, 1.0 if k_n is None else k_n, 1.0, delta, x_small,
                                source=os.fspath(path))
    except ValueError as exc:
        raise PackingFileError(f"{path}: not a usable granular material: {exc}") from None


def from_granular(labels, materials, speed_scale: float = 1.0) -> np.ndarray:
    """Nodal speeds of regions filled with granular mixtures.

    Parameters
    ----------
    labels : ndarray of int, shape (n_nodes,)
        Region of each node (e.g. :func:`layer_labels`, :func:`voronoi_labels`), in
        ``[0, len(materials))``.
    materials : sequence
        One entry per region: a :class:`GranularMaterial`, a table dict (``{"K", "phi"}`` or
        ``{"K_star", "phi", "k_n", "d_L"}``) or a packing file path.
    speed_scale : float
        Factor from reduced speeds to the FE domain's speed units, > 0.
    """
    if not (np.isfinite(speed_scale) and speed_scale > 0):
        raise ValueError(f"speed_scale must be finite and > 0, got {speed_scale}")
    mats = [material(m) for m in materials]
    labels = np.asarray(labels)
    if labels.size and (labels.min() < 0 or labels.max() >= len(mats)):
        raise ValueError(f"labels must be in [0, {len(mats) - 1}] (one material per region)")
    speeds = np.array([m.speed for m in mats])
    return speed_scale * speeds[labels]
