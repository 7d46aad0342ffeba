"""Wave datasets for the surrogates: windows ``(u^{n-1}, u^n, c) -> u^{n+1}`` read from HDF5 by schema.

The files are the ``jamwave.wave2d/1`` datasets that ``wavefe`` writes (one file per split), but this
module never imports ``wavefe``: it reads them with plain h5py and the layout alone:

- root attribute ``schema = "jamwave.wave2d/1"``; ``dt`` (s), ``save_every`` (solver steps per saved
  frame), ``h`` (grid spacing, m) when present;
- ``/fields/u`` of shape ``(n_samples, n_frames, ny, nx)`` (float32, displacement);
- ``/fields/c`` of shape ``(n_samples, ny, nx)`` (wave speed, m/s);
- optionally ``/fields/f`` of shape ``(n_samples, n_frames, ny, nx)``: the frame forcing, the sources'
  share of ``u^{n+1} - 2 u^n + u^{n-1}`` (same units as ``u``; written for Ricker point sources).
  Files without it (pulse datasets, older files) read as before.

Public API
----------
``read_info(path) -> WaveFileInfo``
    Check the schema and shapes of a file (``ValueError`` naming the problem) and return its sizes.
``WaveWindows(path, *, samples=None, frames=None, preload=False, steps=1)``
    A torch ``Dataset`` of training windows in physical units: item ``i`` is ``(x, y)`` with ``x`` of
    shape ``(3, ny, nx)`` (``u^{n-1}``, ``u^n``, ``c``) and ``y`` of shape ``(steps, ny, nx)``
    (``u^{n+1} .. u^{n+steps}``, for unrolled training), float32. With ``forcing=True`` ``x`` has
    ``3 + steps`` channels, the last ``f^n .. f^{n+steps-1}``. Lazy: one h5py handle per process
    (so per DataLoader worker), opened on first access.
``as_trajectories(data, *, samples=None, frames=None) -> Trajectories``
    The one boundary for rollout and normalisation data: a path (opened and checked once), a
    :class:`WaveWindows` (its selection, no reopening), ``(u, c)`` arrays or a :class:`Trajectories`
    become a :class:`Trajectories` (``u``, ``c``, grid spacing ``h``, frame interval and the frame
    forcing ``f`` or None).
``as_windows(data, *, preload="auto", steps=1) -> Dataset``
    The one boundary for training data: a path becomes a :class:`WaveWindows` (opened once).
``load_trajectories(source, *, samples=None, frames=None, with_forcing=False) -> (u, c) | (u, c, f)``
    Whole trajectories as numpy arrays, ``u`` (S, F, ny, nx) and ``c`` (S, ny, nx), for rollouts;
    ``with_forcing`` adds ``f`` (S, F, ny, nx), or None when the data have none.
``Normalisation``
    Scales computed on the training split (RMS of ``u``, mean and spread of ``c``, RMS of the
    second time difference ``u^{n+1} - 2 u^n + u^{n-1}``) that a model stores as buffers.
"""

from __future__ import annotations

import contextlib
import copy
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import h5py
import numpy as np
import torch
from torch.utils.data import Dataset

from jamcommon.hdf5 import first_line, open_hdf5

SCHEMA = "jamwave.wave2d/1"

# h5py chunk cache per open file: windows of neighbouring frames hit the same decompressed chunk.
_CHUNK_CACHE_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class WaveFileInfo:
    """Sizes and time step of a wave dataset file.

    Attributes
    ----------
    path : str
    n_samples, n_frames, ny, nx : int
        Shape of ``/fields/u``.
    dt : float
        Solver time step (s); ``nan`` when the file does not say.
    save_every : int
        Solver steps between saved frames (1 when the file does not say).
    h : float
        Grid spacing (m), from the ``h`` attribute or from ``/x``; ``nan`` when neither exists.
    has_forcing : bool
        The file holds the frame forcing ``/fields/f``.
    """

    path: str
    n_samples: int
    n_frames: int
    ny: int
    nx: int
    dt: float
    save_every: int
    h: float
    has_forcing: bool = False

    @property
    def frame_dt(self) -> float:
        """Time between saved frames (s)."""
        return self.dt * self.save_every


def _attr_str(value) -> str:
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.ndarray) and value.shape == ():
        return _attr_str(value.item())
    return str(value)


def _check_file(handle: h5py.File, path) -> WaveFileInfo:
    schema = handle.attrs.get("schema")
    if schema is None or _attr_str(schema) != SCHEMA:
        found = "no schema attribute" if schema is None else f"schema {_attr_str(schema)!r}"
        raise ValueError(f"data file {str(path)!r} has {found}; expected schema {SCHEMA!r}")
    if "fields/u" not in handle or "fields/c" not in handle:
        raise ValueError(f"data file {str(path)!r} lacks /fields/u or /fields/c")
    u, c = handle["fields/u"], handle["fields/c"]
    for name, item in (("/fields/u", u), ("/fields/c", c)):
        if not isinstance(item, h5py.Dataset) or item.dtype.kind not in "fiu":
            kind = f"dtype {item.dtype}" if isinstance(item, h5py.Dataset) else "a group"
            raise ValueError(f"data file {str(path)!r}: {name} is {kind}, expected a numeric dataset")
    if u.ndim != 4:
        raise ValueError(f"data file {str(path)!r}: /fields/u must be (n_samples, n_frames, ny, nx), "
                         f"got shape {u.shape}")
    n_samples, n_frames, ny, nx = u.shape
    if c.shape != (n_samples, ny, nx):
        raise ValueError(f"data file {str(path)!r}: /fields/c must have shape {(n_samples, ny, nx)}, "
                         f"got {c.shape}")
    if n_frames < 3 or n_samples < 1:
        raise ValueError(f"data file {str(path)!r}: need >= 1 sample and >= 3 frames, got {u.shape}")
    has_forcing = "fields/f" in handle
    if has_forcing and handle["fields/f"].shape != u.shape:
        raise ValueError(f"data file {str(path)!r}: /fields/f must have the shape of /fields/u {u.shape}, "
                         f"got {handle['fields/f'].shape}")
    dt = float(handle.attrs.get("dt", np.nan))
    save_every = int(handle.attrs.get("save_every", 1))
    h = float(handle.attrs.get("h", np.nan))
    if not np.isfinite(h) and "x" in handle and handle["x"].shape[0] > 1:
        x = handle["x"][:2]
        h = float(x[1] - x[0])
    return WaveFileInfo(str(path), n_samples, n_frames, ny, nx, dt, save_every, h, has_forcing)


@contextlib.contextmanager
def _checked_file(path: str | os.PathLike):
    """Open ``path`` once, check its schema and shapes, and yield ``(handle, info)``.

    Raises
    ------
    ValueError
        If the file does not exist, is not HDF5, has another schema, or fields of the wrong shape.
    """
    path = Path(path)
    handle = open_hdf5(path, role="data file")
    with handle:
        try:
            info = _check_file(handle, path)
        except (OSError, RuntimeError, KeyError) as exc:  # h5py's errors on truncated or damaged files
            raise ValueError(f"data file {str(path)!r} is not a readable HDF5 file "
                             f"({first_line(exc)})") from None
        yield handle, info


def read_info(path: str | os.PathLike) -> WaveFileInfo:
    """Check that ``path`` is a ``jamwave.wave2d/1`` file and return its sizes.

    Raises
    ------
    ValueError
        If the file does not exist, has another schema, or fields of the wrong shape.
    """
    with _checked_file(path) as (_, info):
        return info


def _fits_in_memory(info: WaveFileInfo) -> bool:
    """Whether a file's fields take less than 512 MiB as float32 (``preload="auto"``)."""
    fields = 2 if info.has_forcing else 1
    return fields * info.n_samples * info.n_frames * info.ny * info.nx * 4 < 512 * 2**20


def _select(n: int, selection, name: str) -> np.ndarray:
    """Turn ``None``, an int (the first k), a slice or a sequence into sorted unique indices."""
    if selection is None:
        return np.arange(n)
    if isinstance(selection, int | np.integer):
        if not 1 <= selection <= n:
            raise ValueError(f"{name} must be in [1, {n}], got {selection}")
        return np.arange(int(selection))
    if isinstance(selection, slice):
        idx = np.arange(n)[selection]
    else:
        idx = np.asarray(list(selection), dtype=np.int64)
    if idx.size == 0:
        raise ValueError(f"{name} selects nothing")
    if idx.min() < 0 or idx.max() >= n:
        raise ValueError(f"{name} indices must be in [0, {n - 1}], got {idx.min()}..{idx.max()}")
    return np.unique(idx)


class WaveWindows(Dataset):
    """Windows ``(u^{n-1}, u^n, c) -> u^{n+1}`` of a wave dataset file, in physical units.

    Parameters
    ----------
    path : path-like
        A ``jamwave.wave2d/1`` HDF5 file.
    samples : int, slice or sequence of int, optional
        Samples to use (an int means the first ``samples``); all by default.
    frames : int, optional
        Use only the first ``frames`` frames of each sample (>= 3); all by default.
    preload : bool or "auto"
        Read the selected fields into memory at construction (fast for small files); otherwise
        every item is read lazily through one h5py handle per process. ``"auto"`` preloads a file
        whose fields take less than 512 MiB.
    steps : int
        Target frames per window (>= 1): 1 for next-frame training, more for unrolled training.
    forcing : bool
        Append the frame forcing ``f^n .. f^{n+steps-1}`` to ``x`` (the file must hold ``/fields/f``).

    Notes
    -----
    ``len(ds) = n_samples * (n_frames - 1 - steps)``. Item ``i`` returns ``(x, y)``: ``x`` float32
    ``(3, ny, nx)`` stacking ``u^{n-1}``, ``u^n`` and ``c``; ``y`` float32 ``(steps, ny, nx)``.
    """

    def __init__(self, path, *, samples=None, frames=None, preload: bool | str = False, steps: int = 1,
                 forcing: bool = False):
        self.path = str(path)
        self._handle = None
        self._pid = None
        self._u = self._c = self._f = None
        # One open: check the file, select, and read the fields when preloading.
        with _checked_file(path) as (handle, info):
            self.info = info
            self._set_selection(samples, frames, steps)
            self._set_forcing(forcing)
            if preload == "auto":
                preload = _fits_in_memory(info)
            if preload:
                self._u, self._c, self._f = _read_fields(handle, self.samples, self.frames)

    def _set_forcing(self, forcing: bool) -> None:
        if forcing and not self.info.has_forcing:
            raise ValueError(f"data file {self.path!r} has no forcing field /fields/f; use forcing=False "
                             f"(a model without the forcing channel) or a dataset with point sources")
        self.forcing = bool(forcing)

    def _set_selection(self, samples, frames, steps) -> None:
        self.samples = _select(self.info.n_samples, samples, "samples")
        if frames is None:
            frames = self.info.n_frames
        if not 3 <= int(frames) <= self.info.n_frames:
            raise ValueError(f"frames must be in [3, {self.info.n_frames}], got {frames}")
        self.frames = int(frames)
        if int(steps) != steps or not 1 <= steps <= self.frames - 2:
            raise ValueError(f"steps must be an integer in [1, {self.frames - 2}], got {steps}")
        self.steps = int(steps)

    def with_steps(self, steps: int, forcing: bool | None = None) -> WaveWindows:
        """The same file, selection and preloaded fields with ``steps`` target frames per window (and
        the forcing channels on or off; unchanged by default).

        Nothing is read again: the copy shares this one's checked sizes and arrays.
        """
        forcing = self.forcing if forcing is None else bool(forcing)
        if int(steps) == self.steps and forcing == self.forcing:
            return self
        other = copy.copy(self)
        other._handle = other._pid = None
        other._set_selection(self.samples, self.frames, steps)
        other._set_forcing(forcing)
        return other

    @property
    def windows_per_sample(self) -> int:
        return self.frames - 1 - self.steps

    def __len__(self) -> int:
        return len(self.samples) * self.windows_per_sample

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_handle"] = None  # h5py handles do not cross process boundaries
        state["_pid"] = None
        return state

    def _file(self) -> h5py.File:
        if self._handle is None or self._pid != os.getpid():
            self._handle = h5py.File(self.path, "r", rdcc_nbytes=_CHUNK_CACHE_BYTES)
            self._pid = os.getpid()
        return self._handle

    def close(self) -> None:
        """Close this process's file handle (it reopens on the next access)."""
        if self._handle is not None and self._pid == os.getpid():
            self._handle.close()
        self._handle = None

    def _read_all(self) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        with h5py.File(self.path, "r") as handle:
            return _read_fields(handle, self.samples, self.frames)

    def trajectories(self) -> tuple[np.ndarray, np.ndarray]:
        """Return the selected fields: ``u`` (S, frames, ny, nx) and ``c`` (S, ny, nx), float32."""
        return self.fields()[:2]

    def fields(self) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """``u`` (S, frames, ny, nx), ``c`` (S, ny, nx) and the forcing ``f`` (S, frames, ny, nx) or
        None when the file has none; float32."""
        if self._u is not None:
            return self._u, self._c, self._f
        return self._read_all()

    def __getitem__(self, index: int):
        if not -len(self) <= index < len(self):
            raise IndexError(f"window index {index} out of range for {len(self)} windows")
        index %= len(self)
        row, n = divmod(index, self.windows_per_sample)
        n += 1
        stop = n + 1 + self.steps
        forcing = ()
        if self._u is not None:
            frames = self._u[row, n - 1 : stop]
            c = self._c[row]
            if self.forcing:
                forcing = tuple(self._f[row, n : n + self.steps])
        else:
            handle = self._file()
            s = int(self.samples[row])
            frames = handle["fields/u"][s, n - 1 : stop].astype(np.float32)
            c = handle["fields/c"][s].astype(np.float32)
            if self.forcing:
                forcing = tuple(handle["fields/f"][s, n : n + self.steps].astype(np.float32))
        x = torch.from_numpy(np.stack([frames[0], frames[1], c, *forcing]))
        y = torch.from_numpy(np.ascontiguousarray(frames[2:]))
        return x, y


def _read_fields(handle: h5py.File, samples: np.ndarray, frames: int):
    """``u`` (S, frames, ny, nx), ``c`` (S, ny, nx) and the forcing ``f`` (S, frames, ny, nx) or None
    of the rows ``samples``, float32."""
    u = np.stack([handle["fields/u"][s, :frames] for s in samples]).astype(np.float32)
    c = np.stack([handle["fields/c"][s] for s in samples]).astype(np.float32)
    f = None
    if "fields/f" in handle:
        f = np.stack([handle["fields/f"][s, :frames] for s in samples]).astype(np.float32)
    return u, c, f


@dataclass(frozen=True)
class Trajectories:
    """Whole trajectories in memory, the one form rollouts and normalisation work on.

    Attributes
    ----------
    u : ndarray, float32, shape (S, F, ny, nx)
        Displacement frames (m).
    c : ndarray, float32, shape (S, ny, nx)
        Wave speed (m/s).
    h, frame_dt : float
        Grid spacing (m) and time between frames (s); NaN when unknown (arrays given directly).
    f : ndarray, float32, shape (S, F, ny, nx), or None
        The frame forcing (the sources' share of each frame's second difference), when the data
        have one.
    """

    u: np.ndarray
    c: np.ndarray
    h: float = math.nan
    frame_dt: float = math.nan
    f: np.ndarray | None = None

    def select(self, samples=None, frames=None) -> Trajectories:
        """A copy holding the selected samples and the first ``frames`` frames (as :class:`WaveWindows`)."""
        rows = _select(self.u.shape[0], samples, "samples")
        if frames is None:
            frames = self.u.shape[1]
        if not 3 <= int(frames) <= self.u.shape[1]:
            raise ValueError(f"frames must be in [3, {self.u.shape[1]}], got {frames}")
        f = None if self.f is None else self.f[rows, : int(frames)]
        return Trajectories(self.u[rows, : int(frames)], self.c[rows], self.h, self.frame_dt, f)


def as_trajectories(data, *, samples=None, frames=None) -> Trajectories:
    """Return rollout data as :class:`Trajectories`: the one place its accepted forms are told apart.

    Parameters
    ----------
    data : path-like, WaveWindows, Trajectories or tuple (u, c) or (u, c, f)
        A dataset file (opened and checked once), a window dataset (its selection and its file's
        spacing, nothing reopened), trajectories, or arrays ``u`` (S, F, ny, nx), ``c`` (S, ny, nx)
        and optionally the forcing ``f`` (S, F, ny, nx) or None.
    samples, frames
        Further selection, as in :class:`WaveWindows` (applied after the source's own).
    """
    if isinstance(data, Trajectories):
        return data.select(samples, frames)
    if isinstance(data, WaveWindows):
        u, c, f = data.fields()
        return Trajectories(u, c, data.info.h, data.info.frame_dt, f).select(samples, frames)
    if isinstance(data, str | os.PathLike):
        windows = WaveWindows(data, samples=samples, frames=frames, preload=True)
        return Trajectories(windows._u, windows._c, windows.info.h, windows.info.frame_dt, windows._f)
    if isinstance(data, tuple | list) and len(data) in (2, 3):
        u, c = (np.asarray(a, dtype=np.float32) for a in data[:2])
        if u.ndim != 4 or c.shape != (u.shape[0], *u.shape[2:]):
            raise ValueError(f"trajectories must be u (S, F, ny, nx) and c (S, ny, nx), "
                             f"got {u.shape} and {c.shape}")
        f = None if len(data) == 2 or data[2] is None else np.asarray(data[2], dtype=np.float32)
        if f is not None and f.shape != u.shape:
            raise ValueError(f"forcing f must have the shape of u {u.shape}, got {f.shape}")
        return Trajectories(u, c, f=f).select(samples, frames)
    raise ValueError(f"data must be a file path, a WaveWindows, a Trajectories or a (u, c) tuple, "
                     f"got {type(data).__name__}")


def load_trajectories(source, *, samples=None, frames=None, with_forcing: bool = False):
    """Return whole trajectories for rollouts (the arrays of :func:`as_trajectories`).

    Parameters
    ----------
    source : path-like, WaveWindows, Trajectories or tuple (u, c) or (u, c, f)
        A dataset file, a window dataset (its selection is used), or arrays ``u`` (S, F, ny, nx),
        ``c`` (S, ny, nx) and optionally the forcing ``f``.
    samples, frames
        Further selection, as in :class:`WaveWindows` (applied after the source's own).
    with_forcing : bool
        Also return the forcing (None when the data have none).

    Returns
    -------
    u : ndarray, float32, shape (S, F, ny, nx)
    c : ndarray, float32, shape (S, ny, nx)
    f : ndarray, float32, shape (S, F, ny, nx), or None (only with ``with_forcing``)
    """
    traj = as_trajectories(source, samples=samples, frames=frames)
    return (traj.u, traj.c, traj.f) if with_forcing else (traj.u, traj.c)


@dataclass(frozen=True)
class Normalisation:
    """Scales of the training split, stored with a model (as buffers) and in its file.

    Attributes
    ----------
    u_scale : float
        RMS of ``u`` over all training frames (m).
    c_mean, c_scale : float
        Mean and standard deviation of ``c`` (m/s); ``c_scale`` falls back to ``c_mean`` (or 1)
        for a uniform medium so the speed channel is finite.
    du_scale : float
        RMS of the second time difference ``u^{n+1} - 2 u^n + u^{n-1}`` (m): the model predicts
        this correction to the leapfrog extrapolation, in units of ``du_scale``.
    """

    u_scale: float
    c_mean: float
    c_scale: float
    du_scale: float

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> Normalisation:
        return cls(**{k: float(values[k]) for k in ("u_scale", "c_mean", "c_scale", "du_scale")})

    @classmethod
    def from_arrays(cls, u: np.ndarray, c: np.ndarray) -> Normalisation:
        """Compute the scales from ``u`` (S, F, ny, nx) and ``c`` (S, ny, nx), in float64."""
        u = np.asarray(u)
        sq = du_sq = 0.0
        for s in range(u.shape[0]):
            us = u[s].astype(np.float64)
            sq += float(np.sum(us * us))
            d2 = us[2:] - 2.0 * us[1:-1] + us[:-2]
            du_sq += float(np.sum(d2 * d2))
        n_u = u.size
        n_du = u.shape[0] * (u.shape[1] - 2) * u.shape[2] * u.shape[3]
        u_scale = float(np.sqrt(sq / n_u))
        du_scale = float(np.sqrt(du_sq / n_du))
        c64 = np.asarray(c, dtype=np.float64)
        c_mean = float(c64.mean())
        c_std = float(c64.std())
        if c_std <= 1e-6 * max(abs(c_mean), 1e-30):
            c_std = abs(c_mean) if c_mean != 0 else 1.0
        if not (np.isfinite(u_scale) and u_scale > 0 and np.isfinite(du_scale) and du_scale > 0):
            raise ValueError("training data has all-zero or non-finite fields u; cannot normalise")
        return cls(u_scale, c_mean, c_std, du_scale)

    @classmethod
    def from_dataset(cls, data) -> Normalisation:
        """Compute the scales from a training split: anything :func:`as_trajectories` accepts."""
        traj = as_trajectories(data)
        return cls.from_arrays(traj.u, traj.c)


def as_windows(data, *, preload: bool | str = "auto", steps: int = 1, forcing: bool = False) -> Dataset:
    """Return training data as a window dataset: the one place its accepted forms are told apart.

    Parameters
    ----------
    data : path-like, WaveWindows or torch Dataset
        A path becomes a :class:`WaveWindows` (the file opened once; with ``preload="auto"`` read
        into memory when its fields take less than 512 MiB); a :class:`WaveWindows` with another
        ``steps`` is re-windowed without reading again; any other ``Dataset`` is used as it is.
    steps : int
        Target frames per window.
    forcing : bool
        Windows carry the frame forcing (:class:`WaveWindows`); another ``Dataset`` must already.
    """
    if isinstance(data, str | os.PathLike):
        return WaveWindows(data, preload=preload, steps=steps, forcing=forcing)
    if isinstance(data, WaveWindows):
        return data.with_steps(steps, forcing)
    if isinstance(data, Dataset):
        return data
    raise ValueError(f"training data must be a file path or a torch Dataset, got {type(data).__name__}")
