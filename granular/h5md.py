"""Packing files in H5MD 1.1 (https://www.nongnu.org/h5md/h5md.html), readable by other tools.

Layout of one file (reduced units: d_L = 1, grain density 1, k_n = 1; no ``unit`` attributes)::

    /h5md                       attrs version=[1, 1]; groups author (name), creator (name, version)
    /particles/all/box          attrs dimension=3, boundary=["periodic"]*3
    /particles/all/box/edges    time series: step (F,), time (F,), value (F, 3)
    /particles/all/position     time series: value (F, N, 3) float64, inside [0, box)
    /particles/all/velocity     time series: value (F, N, 3)
    /particles/all/force        time series: value (F, N, 3) (spring part of the contact force)
    /particles/all/species      time series: value (F, N) int8, 0 large / 1 small
    /particles/all/radius       time series: value (F, N) float64
    /observables/<name>         time series along the protocol: step (T,), time (T,), value (T,)
    /parameters/jamwave/...     every input of the run (nested groups of scalar datasets)
    /jamwave/results/<name>     scalar datasets: the results of the run
    /jamwave/<other>/<name>     further result groups appended later (e.g. ``modulus``)

A "time series" is the H5MD element layout (``step``, ``time``, ``value``). Files are written
atomically (:func:`jamcommon.files.atomic_path`); appending a group copies the file and renames, so a
crash never leaves a half-written packing.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from pathlib import Path

import h5py
import numpy as np

from granular.h5md_reader import (  # noqa: F401 - re-exported: the reading half of this module
    MissingGroupError,
    PackingFileError,
    open_packing_file,
    read_contact_stiffness,
    read_frame,
    read_mapping,
)
from jamcommon import __version__
from jamcommon.files import atomic_path

H5MD_VERSION = (1, 1)
PARTICLE_GROUP = "all"


def _write_series(group: h5py.Group, name: str, values: np.ndarray, steps, times) -> None:
    element = group.create_group(name)
    element.create_dataset("step", data=np.asarray(steps, dtype=np.int64))
    element.create_dataset("time", data=np.asarray(times, dtype=np.float64))
    element.create_dataset("value", data=values)


def _write_mapping(group: h5py.Group, mapping: Mapping) -> None:
    """Write a nested mapping as groups of scalar (or small array) datasets."""
    for key, value in mapping.items():
        key = str(key)
        if isinstance(value, Mapping):
            _write_mapping(group.create_group(key), value)
        elif value is None:
            group.create_dataset(key, data="none")
        elif isinstance(value, str):
            group.create_dataset(key, data=value)
        elif isinstance(value, (list, tuple)) and value and all(isinstance(v, str) for v in value):
            group.create_dataset(key, data=np.array(value, dtype=h5py.string_dtype()))
        else:
            group.create_dataset(key, data=np.asarray(value))


def write_packing(
    path: str | os.PathLike,
    packing,
    *,
    force: np.ndarray | None = None,
    observables: Mapping[str, np.ndarray] | None = None,
    observable_step: np.ndarray | None = None,
    observable_time: np.ndarray | None = None,
    parameters: Mapping | None = None,
    results: Mapping[str, float] | None = None,
    groups: Mapping[str, Mapping] | None = None,
    step: int = 0,
    time: float = 0.0,
    author: str = "jamwave",
    overwrite: bool = False,
) -> Path:
    """Write one packing (a single frame) and its protocol history to an H5MD 1.1 file.

    Parameters
    ----------
    path : path-like
        Destination ``.h5`` file, written atomically.
    packing : granular.space.Packing
        Positions (N, 3), velocities (N, 3), radii (N,), species (N,) and box edges (3,).
    force : ndarray, shape (N, 3), optional
        Contact force on each particle (units k_n d_L); zeros when omitted.
    observables : mapping of name -> ndarray (T,), optional
        Quantities recorded along the protocol (pressure, partial pressures, Z, phi, ...), all of
        the same length T.
    observable_step, observable_time : ndarray (T,), optional
        Step counter and time of each record (default ``arange(T)`` and ``phi`` if present).
    parameters : mapping, optional
        Every input of the run, nested mappings allowed; stored under ``/parameters/jamwave``.
    results : mapping of name -> float, optional
        Scalar results stored under ``/jamwave/results``.
    groups : mapping of group name -> mapping, optional
        Further result groups, stored as ``/jamwave/<group name>`` in the same atomic write.
    step, time : int, float
        Step and time of the stored frame.
    author : str
        Name in ``/h5md/author``.
    overwrite : bool
        Replace an existing file.

    Returns
    -------
    pathlib.Path
    """
    frame = _frame_arrays(packing, force)
    observables, observable_step, observable_time = _observable_series(
        observables, observable_step, observable_time)
    with atomic_path(path, overwrite=overwrite) as tmp:
        with h5py.File(tmp, "w") as f:
            _write_header(f, author)
            _write_particles(f, frame, step, time)
            obs_group = f.create_group("observables")
            for name, values in observables.items():
                _write_series(obs_group, name, np.asarray(values, dtype=np.float64),
                              observable_step, observable_time)
            _write_mapping(f.create_group("parameters/jamwave"), parameters or {})
            _write_mapping(f.create_group("jamwave/results"), results or {})
            for name, values in (groups or {}).items():
                _write_mapping(f.create_group(f"jamwave/{name}"), values)
    return Path(path)


def _frame_arrays(packing, force: np.ndarray | None) -> dict[str, np.ndarray]:
    """The per-particle arrays of one frame, checked and in their stored dtypes.

    Parameters
    ----------
    packing : granular.space.Packing
        Positions (N, 3), velocities (N, 3), radii (N,), species (N,) and box edges (3,).
    force : ndarray, shape (N, 3), or None
        Contact force on each particle (units k_n d_L); zeros when None.

    Returns
    -------
    dict
        ``box`` (3,) float64 and ``position``, ``velocity``, ``force`` (N, 3) float64,
        ``species`` (N,) int8, ``radius`` (N,) float64.

    Raises
    ------
    ValueError
        If the positions are not (N, 3) or the force is not (N, 3).
    """
    position = np.ascontiguousarray(packing.position, dtype=np.float64)
    n = position.shape[0]
    if position.shape != (n, 3):
        raise ValueError(f"packing.position must have shape (N, 3), got {position.shape}")
    frame = {
        "box": np.asarray(packing.box, dtype=np.float64),
        "position": position,
        "velocity": np.ascontiguousarray(packing.velocity, dtype=np.float64),
        "species": np.ascontiguousarray(packing.species, dtype=np.int8),
        "radius": np.ascontiguousarray(packing.radius, dtype=np.float64),
    }
    force = np.zeros((n, 3)) if force is None else np.asarray(force, dtype=np.float64)
    if force.shape != (n, 3):
        raise ValueError(f"force must have shape ({n}, 3), got {force.shape}")
    frame["force"] = force
    return frame


def _observable_series(
    observables: Mapping[str, np.ndarray] | None,
    observable_step: np.ndarray | None,
    observable_time: np.ndarray | None,
) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """Check the protocol history and fill in its default step and time axes.

    Parameters
    ----------
    observables : mapping of name -> ndarray (T,), or None
        Quantities recorded along the protocol, all of the same length T.
    observable_step, observable_time : ndarray (T,) or None
        Step counter and time of each record; default ``arange(T)`` and the ``phi`` observable
        (``arange(T)`` as float64 if there is none).

    Returns
    -------
    observables : dict
    observable_step, observable_time : ndarray (T,)

    Raises
    ------
    ValueError
        If the observables differ in length.
    """
    observables = dict(observables or {})
    lengths = {len(np.atleast_1d(v)) for v in observables.values()}
    if len(lengths) > 1:
        raise ValueError(f"observables must all have the same length, got lengths {sorted(lengths)}")
    t_len = lengths.pop() if lengths else 0
    if observable_step is None:
        observable_step = np.arange(t_len)
    if observable_time is None:
        observable_time = observables.get("phi", np.arange(t_len, dtype=np.float64))
    return observables, observable_step, observable_time


def _write_header(f: h5py.File, author: str) -> None:
    """Write ``/h5md``: the H5MD version, ``author`` (name) and ``creator`` (jamwave and its version)."""
    h5md = f.create_group("h5md")
    h5md.attrs["version"] = np.array(H5MD_VERSION, dtype=np.int32)
    h5md.create_group("author").attrs["name"] = author
    creator = h5md.create_group("creator")
    creator.attrs["name"] = "jamwave"
    creator.attrs["version"] = __version__


def _write_particles(f: h5py.File, frame: Mapping[str, np.ndarray], step: int, time: float) -> None:
    """Write ``/particles/all``: the periodic box and one frame of every array of :func:`_frame_arrays`.

    Each array becomes a time series with a single record (value shape (1, ...)) at ``step`` and
    ``time``.
    """
    particles = f.create_group(f"particles/{PARTICLE_GROUP}")
    box_group = particles.create_group("box")
    box_group.attrs["dimension"] = np.int32(3)
    box_group.attrs["boundary"] = np.array(["periodic"] * 3, dtype=h5py.string_dtype())
    _write_series(box_group, "edges", frame["box"][None, :], [step], [time])
    for name in ("position", "velocity", "force", "species", "radius"):
        _write_series(particles, name, frame[name][None, ...], [step], [time])


def read_packing(path: str | os.PathLike, frame: int = -1, group: str | None = None):
    """Read one frame (default: the last) of an H5MD packing file as a :class:`granular.space.Packing`.

    Any form of the packing that H5MD 1.1 allows is accepted (:mod:`granular.h5md_reader`); a
    missing or malformed piece raises :class:`PackingFileError` naming its path in the file.
    """
    from granular.space import Packing

    a = read_frame(path, frame, group)
    try:
        return Packing(position=a["position"], velocity=a["velocity"], radius=a["radius"],
                       species=a["species"], box=a["box"])
    except ValueError as exc:
        raise PackingFileError(f"{path}: /particles/{a['group']} is not a valid packing: {exc}") from None


def read_group(path: str | os.PathLike, group: str) -> dict:
    """Read ``/jamwave/<group>`` (e.g. ``results``, ``modulus``) or any absolute group as a dict.

    Raises
    ------
    MissingGroupError
        (a ``KeyError`` and a :class:`PackingFileError`) if the file has no such group.
    """
    name = group if group.startswith("/") else f"jamwave/{group}"
    with open_packing_file(path) as f:
        if name not in f or not isinstance(f[name], h5py.Group):
            raise MissingGroupError(f"{path}: no group /{name.lstrip('/')}")
        return read_mapping(f[name])


def read_results(path: str | os.PathLike) -> dict:
    """The scalar results of the run, ``/jamwave/results``."""
    return read_group(path, "results")


def read_parameters(path: str | os.PathLike) -> dict:
    """The inputs of the run, ``/parameters/jamwave``."""
    return read_group(path, "/parameters/jamwave")


def read_observables(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """The protocol history: ``{name: value (T,)}`` for every ``/observables`` element."""
    with open_packing_file(path) as f:
        if not isinstance(f.get("observables"), h5py.Group):
            raise MissingGroupError(f"{path}: no group /observables")
        return {name: np.array(item["value"]) for name, item in f["observables"].items()
                if isinstance(item, h5py.Group) and "value" in item}


def append_group(path: str | os.PathLike, group: str, values: Mapping, *, overwrite: bool = False) -> None:
    """Add ``/jamwave/<group>`` to an existing file, atomically (copy, write, rename).

    Raises
    ------
    FileExistsError
        If the group exists and ``overwrite`` is false.
    """
    path = Path(path)
    name = f"jamwave/{group}"
    with open_packing_file(path) as f:
        exists = name in f
    if exists and not overwrite:
        from jamcommon.files import OutputExistsError

        raise OutputExistsError(f"{path} already holds /{name}; pass --force to replace it")
    with atomic_path(path, overwrite=True) as tmp:
        shutil.copyfile(path, tmp)
        with h5py.File(tmp, "a") as f:
            if exists:
                del f[name]
            _write_mapping(f.create_group(name), values)
