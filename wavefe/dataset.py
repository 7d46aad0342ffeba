"""Wave datasets in HDF5 (schema ``jamwave.wave2d/1``), generated in parallel and resumable.

File layout (one file per split; everything readable with plain h5py and the attributes):

==========================  ==============================  =====================================
path                        shape, dtype                    meaning
==========================  ==============================  =====================================
``/`` attributes            scalars / strings               ``schema = "jamwave.wave2d/1"``,
                                                            ``pde``, ``element``, ``scheme``,
                                                            ``dt``, ``save_every``, ``h``,
                                                            ``c_max``, ``domain`` (xmin, xmax,
                                                            ymin, ymax), ``boundary``,
                                                            ``speed``, ``source``, ``generator``
                                                            (``jamwave.wavefe <version>``),
                                                            ``seed``, ``split``, ``n_samples``,
                                                            ``config`` (JSON of every setting)
``/fields/u``               (n_samples, n_frames, ny, nx)   displacement at the nodes; float32,
                            float32                         chunks (1, a few frames, ny, nx),
                                                            shuffle + gzip
``/fields/c``               (n_samples, ny, nx) float32     wave speed at the nodes
``/fields/f``               (n_samples, n_frames, ny, nx)   Ricker datasets only: the frame
                            float32                         forcing, the sources' share of the
                                                            frame's second difference
                                                            ``u[n+1] - 2 u[n] + u[n-1]`` (same
                                                            units as u; attribute ``meaning``;
                                                            :meth:`wavefe.ExplicitWave.frame_forcing`).
                                                            Absent in pulse datasets and in files
                                                            written before it existed
``/params/<name>``          (n_samples, ...)                every sampled input: ``source_x``,
                                                            ``source_y``, ``frequency``,
                                                            ``amplitude`` (ricker) or
                                                            ``pulse_x``, ``pulse_y``, ``width``,
                                                            ``amplitude`` (pulse), each
                                                            (n_samples, n_sources); medium:
                                                            ``c0`` | ``interfaces``,
                                                            ``layer_speed`` | ``correlation_length``
                                                            | ``interfaces``, ``material``,
                                                            ``K_star``, ``phi``, ``delta``,
                                                            ``x_small`` (per layer, bottom up)
``/t``                      (n_frames,) float64             frame times, ``k save_every dt``
``/x``, ``/y``              (nx,), (ny,) float64            node coordinates of the grid
``/mesh/points``            (n_nodes, 2) float64            node ``p = j nx + i`` is (x[i], y[j])
``/mesh/cells``             (n_cells, 3) int64              triangles (counter-clockwise)
``/granular/*``             (n_materials,)                  ``K_star``, ``phi``, ``delta``,
                                                            ``x_small``, ``source`` of the material
                                                            table (granular media only)
==========================  ==============================  =====================================

``nx``, ``ny`` are node counts (cells + 1); ``u[s, k, j, i]`` is sample s at time ``t[k]`` and
``(x[i], y[j])``; frame 0 is the initial state. Splits: sample i of split ``train | val | test``
uses the random stream ``[seed, 0 | 1 | 2, i]`` (:mod:`wavefe.samples`); :func:`generate_splits`
writes the three files. A ``.xdmf`` side-car (:mod:`wavefe.xdmf`) lets ParaView open a sample as a
time series.

Generation sends chunks of samples to a :class:`concurrent.futures.Executor` (processes by
default, or e.g. ``distributed.Client(...).get_executor()``); workers simulate and compress, and
the calling process alone writes the compressed chunks. The file is built under
``.<name>.partial`` with a completed-samples mask (``/progress/completed``) flushed after every
sample, so a killed generation resumes where it stopped when called again with the same settings,
and it is renamed onto ``path`` (mask removed) only when complete.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import multiprocessing
import os
import warnings
from pathlib import Path

import h5py
import numpy as np

from jamcommon.files import check_writable
from wavefe.samples import SPLITS, DatasetConfig, simulate

SCHEMA = "jamwave.wave2d/1"
FORCING_MEANING = ("f[s, n] = sum_{|j| < k} (k - |j|) dt^2 (M + dt/2 C)^-1 b(t_{n k + j}), k = save_every: "
                   "the source term's share of u[s, n+1] - 2 u[s, n] + u[s, n-1] (exact without "
                   "stiffness); frame 0 by the same formula")


def _version() -> str:
    try:
        from jamcommon import __version__
    except ImportError:  # pragma: no cover
        __version__ = "unknown"
    return f"jamwave.wavefe {__version__}"


def _init_worker():
    import numba

    numba.set_num_threads(1)  # one process per core already


@contextlib.contextmanager
def _single_threaded_children():
    """Spawned workers read these at start-up: one BLAS / OpenMP / Numba thread each."""
    names = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")
    saved = {k: os.environ.get(k) for k in names}
    os.environ.update(dict.fromkeys(names, "1"))
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _partial_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.partial")


def _frames_per_chunk(config: DatasetConfig) -> int:
    frame_bytes = 4 * (config.grid + 1) ** 2
    return int(min(config.n_frames, max(1, (1 << 20) // frame_bytes)))


def _create(tmp: Path, config: DatasetConfig, n_samples: int, seed: int, split: str,
            level: int | None) -> None:
    m = config.mesh()
    ny, nx = m.node_shape
    fc = _frames_per_chunk(config)
    dt = config.dt()
    with h5py.File(tmp, "w") as f:
        a = f.attrs
        a["schema"] = SCHEMA
        a["pde"] = "u_tt = div(c(x)^2 grad u) + f(x, t) on a rectangle"
        a["element"] = "P1 triangles, structured mesh (rising diagonals), lumped mass"
        a["scheme"] = "explicit central differences, lumped mass"
        a["dt"] = dt
        a["save_every"] = config.save_every
        a["h"] = m.spacing[0]
        a["c_max"] = config.c_max()
        a["domain"] = np.array(m.bounds)
        a["boundary"] = config.boundary
        a["speed"] = config.speed
        a["source"] = config.source
        a["generator"] = _version()
        a["seed"] = seed
        a["split"] = split
        a["n_samples"] = n_samples
        a["config"] = config.to_json()
        filters = {} if level is None else {"shuffle": True, "compression": "gzip",
                                            "compression_opts": level}
        f.create_dataset("fields/u", (n_samples, config.n_frames, ny, nx), np.float32,
                         chunks=(1, fc, ny, nx), **filters)
        f.create_dataset("fields/c", (n_samples, ny, nx), np.float32, chunks=(1, ny, nx))
        if config.source == "ricker":
            fd = f.create_dataset("fields/f", (n_samples, config.n_frames, ny, nx), np.float32,
                                  chunks=(1, fc, ny, nx), **filters)
            fd.attrs["meaning"] = FORCING_MEANING
            fd.attrs["units"] = "displacement (as fields/u)"
        f["t"] = dt * config.save_every * np.arange(config.n_frames)
        f["x"] = m.points[:nx, 0]
        f["y"] = m.points[::nx, 1]
        f["mesh/points"] = m.points
        f["mesh/cells"] = m.cells
        if config.speed == "granular":
            mats = config.materials()
            for name in ("K_star", "phi", "delta", "x_small"):
                f[f"granular/{name}"] = np.array([getattr(mt, name) for mt in mats])
            f["granular/source"] = np.array([mt.source for mt in mats], dtype=h5py.string_dtype())
        f.create_dataset("progress/completed", (n_samples,), bool)


def _open_partial(tmp: Path, config: DatasetConfig, n_samples: int, seed: int, split: str,
                  level: int | None) -> bool:
    """True if ``tmp`` is a readable partial file of the same settings (resume)."""
    if not tmp.exists():
        return False
    try:
        with h5py.File(tmp, "r") as f:
            same = (f.attrs["config"] == config.to_json() and int(f.attrs["seed"]) == seed
                    and f.attrs["split"] == split and int(f.attrs["n_samples"]) == n_samples
                    and f["fields/u"].compression_opts == level)
    except Exception as exc:  # a file killed mid-write may be unreadable: start over
        warnings.warn(f"{tmp}: unreadable partial file ({exc}); starting over", stacklevel=3)
        return False
    if not same:
        raise ValueError(f"{tmp} holds a partial dataset with other settings; delete it or pass "
                         "overwrite=True (--force) to start over")
    return True


def _write(f: h5py.File, result: dict, fc: int) -> None:
    i = result["index"]
    u = f["fields/u"]
    for k, chunk in enumerate(result["chunks"]):
        u.id.write_direct_chunk((i, k * fc, 0, 0), chunk)
    for k, chunk in enumerate(result.get("forcing_chunks", ())):
        f["fields/f"].id.write_direct_chunk((i, k * fc, 0, 0), chunk)
    f["fields/c"][i] = result["c"]
    n = f.attrs["n_samples"]
    for name, value in result["params"].items():
        value = np.asarray(value)
        key = f"params/{name}"
        if key not in f:
            f.create_dataset(key, (n, *value.shape), value.dtype, fillvalue=np.nan
                             if value.dtype.kind == "f" else 0)
        f[key][i] = value
    f.flush()
    f["progress/completed"][i] = True
    f.flush()


def generate_dataset(path, n_samples: int, *, config: DatasetConfig | None = None, seed: int = 0,
                     split: str = "train", workers: int | None = None, executor=None,
                     batch: int = 4, overwrite: bool = False, progress: bool = False,
                     xdmf: bool = True, compression: int | None = 1, **settings) -> Path:
    """Simulate ``n_samples`` samples and write them to ``path`` (layout in the module docstring).

    Parameters
    ----------
    path : path-like
        Output ``.h5`` file; an existing one is kept unless ``overwrite``.
    n_samples : int
        Samples, >= 1.
    config : DatasetConfig, optional
        Settings; keyword ``settings`` (``grid=..., n_frames=...``) build one otherwise.
    seed : int
        Root seed; ``split`` in ``train | val | test`` selects the random stream.
    workers : int, optional
        Worker processes of the default executor (default: all cores); 1 runs in this process.
    executor : concurrent.futures.Executor, optional
        Use this executor instead (e.g. a Dask client's ``get_executor()``); not shut down here.
    batch : int
        Samples simulated together per task.
    progress : bool
        Show a tqdm bar.
    xdmf : bool
        Also write the ParaView side-car ``<path>.xdmf`` (sample 0).
    compression : int or None
        gzip level (0-9, after the shuffle filter) of ``/fields/u``, or None for none. Simulated
        float32 fields compress by only ~1.3x and deflate costs more than the simulation, so the
        default is the fastest level; the workers compress, the writer only copies chunks.
    """
    config = config or DatasetConfig(**settings)
    if int(n_samples) != n_samples or n_samples < 1:
        raise ValueError(f"n_samples must be an integer >= 1, got {n_samples}")
    if split not in SPLITS:
        raise ValueError(f"split must be one of {tuple(SPLITS)}, got {split!r}")
    if workers is not None and workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    if compression is not None and not 0 <= compression <= 9:
        raise ValueError(f"compression must be a gzip level in [0, 9] or None, got {compression}")
    path = check_writable(path, overwrite=overwrite)
    tmp = _partial_path(path)
    if overwrite and tmp.exists():
        tmp.unlink()
    if not _open_partial(tmp, config, n_samples, seed, split, compression):
        _create(tmp, config, n_samples, seed, split, compression)
    with h5py.File(tmp, "r") as f:
        todo = np.flatnonzero(~f["progress/completed"][:])
    fc = _frames_per_chunk(config)
    tasks = [todo[k:k + batch].tolist() for k in range(0, len(todo), batch)]
    args = (config.to_json(), int(seed), SPLITS[split])
    from tqdm.auto import tqdm

    bar = tqdm(total=n_samples, initial=n_samples - len(todo), disable=not progress, unit="sample",
               desc=path.name)
    with h5py.File(tmp, "r+") as f:
        if executor is None and (workers or os.cpu_count() or 1) > 1 and len(tasks) > 1:
            n = workers or os.cpu_count()
            ctx = multiprocessing.get_context("spawn")
            with _single_threaded_children(), cf.ProcessPoolExecutor(
                    n, mp_context=ctx, initializer=_init_worker) as pool:
                _drain(pool, tasks, args, fc, compression, f, bar, window=2 * n)
        elif executor is not None:
            _drain(executor, tasks, args, fc, compression, f, bar, window=64)
        else:
            for t in tasks:
                for r in simulate(*args, t, fc, compression):
                    _write(f, r, fc)
                    bar.update()
        assert f["progress/completed"][:].all()
        del f["progress"]
    bar.close()
    os.replace(tmp, path)
    if xdmf:
        from wavefe.xdmf import write_xdmf

        write_xdmf(path, overwrite=True)
    return path


def _drain(executor, tasks, args, fc, level, f, bar, window: int) -> None:
    """Keep at most ``window`` tasks in flight; write each result as it arrives."""
    pending = set()
    queue = iter(tasks)
    for t in queue:
        pending.add(executor.submit(simulate, *args, t, fc, level))
        if len(pending) >= window:
            break
    while pending:
        done, pending = cf.wait(pending, return_when=cf.FIRST_COMPLETED)
        for fut in done:
            for r in fut.result():
                _write(f, r, fc)
                bar.update()
            nxt = next(queue, None)
            if nxt is not None:
                pending.add(executor.submit(simulate, *args, nxt, fc, level))


def generate_splits(directory, sizes: dict | None = None, *, seed: int = 0, overwrite: bool = False,
                    **kwargs) -> dict[str, Path]:
    """Write ``train.h5``, ``val.h5``, ``test.h5`` into ``directory`` (disjoint random streams).

    ``sizes`` maps split name to sample count (default 80 / 10 / 10); other keyword arguments go
    to :func:`generate_dataset`.
    """
    sizes = sizes or {"train": 80, "val": 10, "test": 10}
    unknown = set(sizes) - set(SPLITS)
    if unknown:
        raise ValueError(f"sizes keys must be among {tuple(SPLITS)}, got {sorted(unknown)}")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    return {name: generate_dataset(directory / f"{name}.h5", n, seed=seed, split=name,
                                   overwrite=overwrite, **kwargs)
            for name, n in sizes.items() if n > 0}


def read_sample(path, index: int) -> dict:
    """One sample as arrays (a convenience; plain h5py works the same); ``f`` only when the file
    has a forcing field."""
    with h5py.File(path, "r") as f:
        if f.attrs.get("schema") != SCHEMA:
            raise ValueError(f"{path}: schema is {f.attrs.get('schema')!r}, expected {SCHEMA!r}")
        n = f["fields/u"].shape[0]
        if not 0 <= index < n:
            raise ValueError(f"index must be in [0, {n - 1}], got {index}")
        return {"u": f["fields/u"][index], "c": f["fields/c"][index], "t": f["t"][:],
                "x": f["x"][:], "y": f["y"][:],
                "params": {k: v[index] for k, v in f["params"].items()},
                "attrs": dict(f.attrs),
                **({"f": f["fields/f"][index]} if "fields/f" in f else {})}


__all__ = ["SCHEMA", "generate_dataset", "generate_splits", "read_sample"]
