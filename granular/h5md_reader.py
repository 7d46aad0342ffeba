"""Reading packings from H5MD 1.1 files in every form the specification allows.

H5MD (https://www.nongnu.org/h5md/h5md.html) lets a writer store a particle property either as a
*time-independent* element (a plain dataset, e.g. ``/particles/all/radius`` of shape (N,)) or as a
*time-dependent* one (a group ``step``, ``time``, ``value``; ``step`` and ``time`` may be scalars
for a fixed interval, with an ``offset`` attribute). Accepted here:

- any particle group under ``/particles`` (``all`` by default, or the only one, or named);
- ``box`` with ``dimension`` = 3 and ``boundary`` periodic on every axis; ``edges`` a dataset of
  shape (3,) or a diagonal (3, 3), or a time series of either; an optional ``offset`` (same forms),
  subtracted from the positions before they are wrapped into ``[0, edges)``;
- ``position`` (required), ``velocity`` and ``force`` (optional; zeros when absent), ``radius``
  (required: the DEM needs sizes; a scalar applies to every particle), ``species`` (optional: when
  absent, the particles of the largest radius are species 0, all others 1), each fixed or a time
  series. A time series supplies the frame at the selected position step, or its last frame before
  that step (the H5MD meaning of a sampled value).

Every problem raises :class:`PackingFileError` (a ``ValueError``) with one line that names the path
in the file and what was expected.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

import h5py
import numpy as np

from jamcommon.hdf5 import first_line, open_hdf5

DEFAULT_GROUP = "all"


class PackingFileError(ValueError):
    """A packing file that is missing, not HDF5, truncated, or lacks a piece of the H5MD layout."""


class MissingGroupError(PackingFileError, KeyError):
    """A readable packing file without a requested group (also a ``KeyError``, for lookups)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


def read_mapping(group: h5py.Group) -> dict:
    """Read a group of scalar (or small array) datasets, nested groups as dicts."""
    out: dict = {}
    for key, item in group.items():
        if isinstance(item, h5py.Group):
            out[key] = read_mapping(item)
            continue
        if not isinstance(item, h5py.Dataset):
            continue
        value = item[()]
        if isinstance(value, bytes):
            value = value.decode()
        elif isinstance(value, np.ndarray) and value.dtype.kind == "O":
            value = [v.decode() if isinstance(v, bytes) else v for v in value.tolist()]
        elif isinstance(value, np.generic):
            value = value.item()
        out[key] = value
    return out


@contextmanager
def open_packing_file(path: str | os.PathLike):
    """Open ``path`` read-only; turn a missing, empty, junk or truncated file into one clear error.

    Yields
    ------
    h5py.File

    Raises
    ------
    PackingFileError
        If the file is absent, is not HDF5, or cannot be read to the end (truncated, damaged).
    """
    path = Path(path)
    handle = open_hdf5(path, role="packing file", error=PackingFileError)
    try:
        with handle:
            yield handle
    except MissingGroupError:
        raise
    except (OSError, RuntimeError, KeyError) as exc:  # h5py's errors on damaged or truncated content
        raise PackingFileError(f"packing file {str(path)!r} cannot be read (truncated or damaged?): "
                               f"{first_line(exc)}") from None


def particle_group_name(f: h5py.File, group: str | None = None) -> str:
    """The particle group to read: ``group`` if given, else ``all``, else the only one present."""
    where = f.filename
    if "particles" not in f or not isinstance(f["particles"], h5py.Group):
        raise PackingFileError(f"{where}: no /particles group (expected an H5MD file with "
                               f"/particles/<group>/position)")
    names = sorted(k for k, v in f["particles"].items() if isinstance(v, h5py.Group))
    if group is not None:
        if group not in names:
            raise PackingFileError(f"{where}: no particle group /particles/{group} (groups present: "
                                   f"{', '.join(names) or 'none'})")
        return group
    if DEFAULT_GROUP in names:
        return DEFAULT_GROUP
    if len(names) == 1:
        return names[0]
    raise PackingFileError(f"{where}: /particles holds {len(names)} groups ({', '.join(names) or 'none'}) "
                           f"and none is 'all'; choose one (option --group)")


def _steps(element: h5py.Group, where: str) -> np.ndarray | None:
    """Step of each frame of a time-dependent element (``None`` if the element has no ``step``)."""
    if "step" not in element:
        return None
    step = element["step"]
    n = element["value"].shape[0]
    if step.shape == ():  # fixed interval: step_i = offset + i * step
        offset = int(step.attrs.get("offset", 0))
        return offset + int(step[()]) * np.arange(n)
    steps = np.asarray(step[()]).reshape(-1)
    if steps.shape[0] != n:
        raise PackingFileError(f"{where}/step has {steps.shape[0]} entries, expected one per frame of "
                               f"the value dataset ({n})")
    return steps


def _frame_index(element: h5py.Group, where: str, frame: int | None, step: int | None) -> int:
    n = element["value"].shape[0] if element["value"].ndim else 0
    if n == 0:
        raise PackingFileError(f"{where}/value holds no frame (expected shape (frames, ...))")
    if step is None:
        index = -1 if frame is None else frame
        if not -n <= index < n:
            raise PackingFileError(f"{where}/value has {n} frames; frame {frame} does not exist")
        return index % n
    steps = _steps(element, where)
    if steps is None:
        return n - 1 if n == 1 else _frame_index(element, where, frame, None)
    earlier = np.flatnonzero(steps <= step)
    if earlier.size == 0:
        raise PackingFileError(f"{where}: no frame at or before step {step} (first step {steps[0]})")
    return int(earlier[-1])


def read_element(particles: h5py.Group, name: str, *, frame: int | None = None,
                 step: int | None = None, required: bool = True) -> np.ndarray | None:
    """One H5MD element of ``particles``: a fixed dataset, or the chosen frame of a time series.

    Parameters
    ----------
    particles : h5py.Group
        A particle group (or the box group).
    name : str
        Element name (``position``, ``radius``, ``edges``...).
    frame : int, optional
        Frame index of a time series (default: the last).
    step : int, optional
        Take the frame at this step, or the last one before it (overrides ``frame``).
    required : bool
        Raise if absent; otherwise return ``None``.
    """
    where = f"{particles.name}/{name}"
    if name not in particles:
        if required:
            raise PackingFileError(f"{particles.file.filename}: no {where} (expected a dataset or a "
                                   f"step/time/value group)")
        return None
    item = particles[name]
    if isinstance(item, h5py.Dataset):
        return np.asarray(item[()])
    if "value" not in item or not isinstance(item["value"], h5py.Dataset):
        raise PackingFileError(f"{particles.file.filename}: {where} is a group without a 'value' dataset "
                               f"(expected an H5MD time series: step, time, value)")
    index = _frame_index(item, f"{particles.file.filename}: {where}", frame, step)
    return np.asarray(item["value"][index])


def position_step(particles: h5py.Group, frame: int | None) -> int | None:
    """The step of the selected position frame (``None`` when position is fixed or has no step)."""
    item = particles.get("position")
    if not isinstance(item, h5py.Group) or "value" not in item:
        return None
    where = f"{item.file.filename}: {item.name}"
    index = _frame_index(item, where, frame, None)
    steps = _steps(item, where)
    return None if steps is None else int(steps[index])


def _boundary(box: h5py.Group) -> list[str]:
    raw = box.attrs.get("boundary")
    if raw is None:
        raise PackingFileError(f"{box.file.filename}: {box.name} lacks the attribute 'boundary' "
                               f"(expected ['periodic', 'periodic', 'periodic'])")
    values = np.atleast_1d(raw).tolist()
    return [v.decode() if isinstance(v, bytes) else str(v) for v in values]


def _edges(box: h5py.Group, values: np.ndarray | None, what: str) -> np.ndarray:
    where = f"{box.file.filename}: {box.name}/{what}"
    if values is None:
        raise PackingFileError(f"{where} is missing (expected 3 edge lengths)")
    values = np.asarray(values, dtype=np.float64)
    if values.shape == (3, 3):
        if np.any(values[~np.eye(3, dtype=bool)] != 0):
            raise PackingFileError(f"{where} is a triclinic box; only orthorhombic boxes are supported")
        values = np.diag(values).copy()
    if values.shape != (3,):
        raise PackingFileError(f"{where} has shape {values.shape}, expected (3,) or a diagonal (3, 3)")
    return values


def read_box(particles: h5py.Group, *, frame: int | None = None, step: int | None = None):
    """Edges (3,) and offset (3,) of the periodic box of a particle group."""
    where = f"{particles.file.filename}: {particles.name}/box"
    if "box" not in particles or not isinstance(particles["box"], h5py.Group):
        raise PackingFileError(f"{where} is missing (expected a group with dimension, boundary, edges)")
    box = particles["box"]
    dimension = np.asarray(box.attrs.get("dimension", "absent")).reshape(-1)
    if dimension.size != 1 or dimension.dtype.kind not in "iu" or int(dimension[0]) != 3:
        shown = dimension[0] if dimension.size == 1 else dimension.tolist()
        raise PackingFileError(f"{where} attribute 'dimension' is {shown}, expected 3")
    boundary = _boundary(box)
    if boundary != ["periodic"] * 3:
        raise PackingFileError(f"{where} attribute 'boundary' is {boundary}, expected periodic on all "
                               f"3 axes")
    edges = _edges(box, read_element(box, "edges", frame=frame, step=step, required=False), "edges")
    if not np.all(np.isfinite(edges) & (edges > 0)):
        raise PackingFileError(f"{where}/edges = {edges.tolist()}, expected 3 finite lengths > 0")
    offset = read_element(box, "offset", frame=frame, step=step, required=False)
    offset = np.zeros(3) if offset is None else _edges(box, offset, "offset")
    return edges, offset


def _per_particle(values, n: int, where: str, shape: tuple, kind: str) -> np.ndarray:
    values = np.asarray(values)
    if kind == "f" and values.dtype.kind not in "fiu":
        raise PackingFileError(f"{where} holds {values.dtype}, expected numbers")
    if kind == "i" and values.dtype.kind not in "iu":
        raise PackingFileError(f"{where} holds {values.dtype}, expected integers")
    if values.shape == () and len(shape) == 1:
        values = np.full(n, values)
    if values.shape != (n, *shape[1:]):
        raise PackingFileError(f"{where} has shape {values.shape}, expected {(n, *shape[1:])}")
    if kind == "f" and not np.all(np.isfinite(values)):
        raise PackingFileError(f"{where} holds non-finite values")
    return values


def _particle_arrays(particles: h5py.Group, frame: int | None, step: int | None, name_of) -> dict:
    position = read_element(particles, "position", frame=frame)
    n = position.shape[0] if position.ndim == 2 else -1
    if n < 1 or position.shape != (n, 3):
        raise PackingFileError(f"{name_of('position')} has shape {position.shape} per frame, "
                               f"expected (N, 3) with N >= 1")
    out = {"position": _per_particle(position, n, name_of("position"), (n, 3), "f")}
    for name in ("velocity", "force"):
        values = read_element(particles, name, frame=frame, step=step, required=False)
        out[name] = np.zeros((n, 3)) if values is None else _per_particle(values, n, name_of(name),
                                                                          (n, 3), "f")
    radius = read_element(particles, "radius", frame=frame, step=step)
    out["radius"] = _per_particle(radius, n, name_of("radius"), (n,), "f").astype(np.float64)
    if not np.all(out["radius"] > 0):
        raise PackingFileError(f"{name_of('radius')} holds radii <= 0, expected every radius > 0")
    species = read_element(particles, "species", frame=frame, step=step, required=False)
    if species is None:
        species = (out["radius"] < out["radius"].max()).astype(np.int8)
    out["species"] = _per_particle(species, n, name_of("species"), (n,), "i")
    return out


def read_frame(path: str | os.PathLike, frame: int = -1, group: str | None = None) -> dict:
    """Arrays of one frame of a packing file: position, velocity, force, radius, species, box.

    Parameters
    ----------
    path : path-like
        H5MD 1.1 file in any of the forms of the module docstring.
    frame : int
        Frame of the position time series (default: the last).
    group : str, optional
        Particle group under ``/particles`` (default: ``all``, or the only group).

    Returns
    -------
    dict
        ``position`` (N, 3) wrapped into ``[0, box)``, ``velocity`` (N, 3), ``force`` (N, 3),
        ``radius`` (N,), ``species`` (N,) int8, ``box`` (3,), ``group`` (the group's name).

    Raises
    ------
    PackingFileError
        With the path in the file and what was expected.
    """
    with open_packing_file(path) as f:
        name = particle_group_name(f, group)
        particles = f["particles"][name]
        step = position_step(particles, frame)

        def name_of(element):
            return f"{f.filename}: {particles.name}/{element}"

        arrays = _particle_arrays(particles, frame, step, name_of)
        box, offset = read_box(particles, frame=frame, step=step)
    arrays["position"] = np.mod(arrays["position"] - offset, box)
    arrays["position"][arrays["position"] >= box] = 0.0  # mod can round up to box exactly
    arrays["species"] = arrays["species"].astype(np.int8)
    arrays.update(box=box, group=name)
    return arrays


def read_contact_stiffness(path: str | os.PathLike) -> tuple[dict | None, str | None]:
    """The contact law stored in a packing file, and where it was found.

    Looks at ``/parameters/jamwave/law`` (a group of ``k_n``, ``gamma_n``, ``model``), then at
    ``/jamwave/results/k_n``. Returns ``(None, None)`` when the file holds neither: the caller must
    then be told the law (``--k-n``), never assume one.

    Returns
    -------
    (dict or None, str or None)
        Keyword arguments of :class:`granular.contact.ContactLaw` and the path in the file.
    """
    with open_packing_file(path) as f:
        law = f.get("parameters/jamwave/law")
        if isinstance(law, h5py.Group) and "k_n" in law:
            where = "/parameters/jamwave/law"
            values = read_mapping(law)
            out = {"k_n": _positive(values["k_n"], f"{f.filename}: {where}/k_n")}
            if "gamma_n" in values:
                out["gamma_n"] = _positive(values["gamma_n"], f"{f.filename}: {where}/gamma_n", zero=True)
            if "model" in values:
                if not isinstance(values["model"], str):
                    raise PackingFileError(f"{f.filename}: {where}/model is {values['model']!r}, "
                                           f"expected a string ('linear' or 'hertz')")
                out["model"] = values["model"]
            return out, where
        k_n = f.get("jamwave/results/k_n")
        if isinstance(k_n, h5py.Dataset):
            value = _positive(k_n[()], f"{f.filename}: /jamwave/results/k_n")
            return {"k_n": value}, "/jamwave/results/k_n"
    return None, None


def _positive(value, where: str, zero: bool = False) -> float:
    array = np.asarray(value)
    if array.dtype.kind not in "fiu" or array.size != 1 or not np.isfinite(array).all():
        raise PackingFileError(f"{where} is {value!r}, expected one finite number")
    number = float(array.reshape(-1)[0])
    if number < 0 or (number == 0 and not zero):
        raise PackingFileError(f"{where} = {number}, expected a number {'>=' if zero else '>'} 0")
    return number
