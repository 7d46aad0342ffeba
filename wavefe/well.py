"""Export wave datasets in The Well's HDF5 layout (``the_well.data.WellDataset`` reads them).

The Well (Ohana et al. 2024, https://github.com/PolymathicAI/the_well, ``docs/data_format.md``)
stores one physical system per folder, ``<out>/data/{train,valid,test}/*.hdf5``, each file::

    /                      attrs dataset_name, grid_type = "cartesian", n_spatial_dims = 2,
                           n_trajectories = B, simulation_parameters = [names], <name> = value
    /dimensions            attrs spatial_dims = ["x", "y"]
    /dimensions/time       float32 (T,)     sample_varying = False, time_varying = True
    /dimensions/x, /y      float32 (W,), (H,) sample_varying = False, time_varying = False
    /boundary_conditions/<axis>_boundary   attrs associated_dims = [axis], associated_fields,
                           bc_type ("wall" | "open"), sample_varying, time_varying; mask bool (W,)
                           True on the two boundary nodes, values float32 (2,) (Dirichlet: 0)
    /scalars               attrs field_names; per name float32 (B,) (sample_varying) or () (not)
    /t0_fields             attrs field_names = ["u", "c"]
    /t0_fields/u           float32 (B, T, W, H)  dim_varying = [True, True], sample_varying = True,
                           time_varying = True
    /t0_fields/c           float32 (B, W, H)     the speed: sample_varying = True, time_varying = False
    /t1_fields, /t2_fields empty (field_names = [])

Axis order: The Well builds its grid as ``meshgrid(x, y, indexing="ij")``, so fields are stored
(x, y): ``t0_fields/u[b, t, i, j] = /fields/u[b, t, j, i]`` of the jamwave file. Boundary types:
Dirichlet and Neumann sides reflect (``wall``; the Dirichlet value 0 is stored as ``values`` with
``associated_fields = ["u"]``), first-order absorbing sides are ``open``. Every per-sample input
of ``/params`` becomes a sample-varying scalar (``name`` or ``name_<k>`` per column), and the
solver constants (``dt``, ``h``, ``save_every``, ``c_max``, frame interval ``dt_frame``) become
constant scalars and root attributes listed in ``simulation_parameters``.
"""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np

from jamcommon.files import atomic_path, check_writable

SCHEMA = "jamwave.wave2d/1"
SPLITS = ("train", "valid", "test")
BC_TYPES = {"dirichlet": "wall", "neumann": "wall", "absorbing": "open"}
CONSTANTS = ("dt", "h", "save_every", "c_max")
_STR = h5py.string_dtype()


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def check_wave_file(path: str | os.PathLike) -> tuple[int, int, int, int]:
    """Shape (n_samples, n_frames, ny, nx) of a readable ``jamwave.wave2d/1`` file.

    Raises
    ------
    ValueError
        Naming the file and what is wrong (missing, not HDF5, truncated, other schema, shapes).
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"wave dataset {str(path)!r} does not exist or is not a file")
    if path.stat().st_size == 0 or not h5py.is_hdf5(path):
        raise ValueError(f"wave dataset {str(path)!r} is not an HDF5 file")
    try:
        with h5py.File(path, "r") as f:
            schema = f.attrs.get("schema")
            if schema is None or _text(schema) != SCHEMA:
                found = "no schema attribute" if schema is None else f"schema {_text(schema)!r}"
                raise ValueError(f"wave dataset {str(path)!r} has {found}; expected {SCHEMA!r}")
            for name in ("fields/u", "fields/c", "t", "x", "y"):
                if not isinstance(f.get(name), h5py.Dataset):
                    raise ValueError(f"wave dataset {str(path)!r} lacks the dataset /{name}")
                if f[name].dtype.kind not in "fiu":
                    raise ValueError(f"wave dataset {str(path)!r}: /{name} has dtype {f[name].dtype}, "
                                     f"expected numbers")
            shape = f["fields/u"].shape
            if len(shape) != 4 or f["fields/c"].shape != (shape[0], *shape[2:]) or \
                    f["t"].shape != (shape[1],) or f["x"].shape != (shape[3],) or f["y"].shape != (shape[2],):
                raise ValueError(f"wave dataset {str(path)!r}: inconsistent shapes of /fields/u {shape}, "
                                 f"/fields/c {f['fields/c'].shape}, /t, /x, /y")
            boundary = _text(f.attrs.get("boundary", ""))
            if boundary not in BC_TYPES:
                raise ValueError(f"wave dataset {str(path)!r}: boundary attribute {boundary!r}, expected "
                                 f"one of {sorted(BC_TYPES)}")
            return tuple(int(s) for s in shape)
    except (OSError, RuntimeError, KeyError) as exc:  # h5py's errors on damaged or truncated files
        first = (str(exc).strip().splitlines() or ["unreadable"])[0].strip("'\"")
        raise ValueError(f"wave dataset {str(path)!r} cannot be read (truncated?): {first}") from None


def _flag_attrs(obj, sample: bool, time: bool) -> None:
    obj.attrs["sample_varying"] = sample
    obj.attrs["time_varying"] = time


def _names(values) -> np.ndarray:
    return np.array(list(values), dtype=_STR)


def _dimensions(dst: h5py.File, src: h5py.File) -> None:
    dims = dst.create_group("dimensions")
    dims.attrs["spatial_dims"] = _names(["x", "y"])
    dims.create_dataset("time", data=np.asarray(src["t"][:], np.float32))
    _flag_attrs(dims["time"], False, True)
    for axis in ("x", "y"):
        dims.create_dataset(axis, data=np.asarray(src[axis][:], np.float32))
        _flag_attrs(dims[axis], False, False)


def _boundaries(dst: h5py.File, boundary: str, sizes: dict[str, int]) -> None:
    group = dst.create_group("boundary_conditions")
    for axis, n in sizes.items():
        bc = group.create_group(f"{axis}_boundary")
        bc.attrs["associated_dims"] = _names([axis])
        bc.attrs["associated_fields"] = _names(["u"] if boundary == "dirichlet" else [])
        bc.attrs["bc_type"] = BC_TYPES[boundary]
        bc.attrs["jamwave_condition"] = boundary
        _flag_attrs(bc, False, False)
        mask = np.zeros(n, dtype=bool)
        mask[[0, -1]] = True
        bc.create_dataset("mask", data=mask)
        bc.create_dataset("values", data=np.zeros(2, np.float32))


def _scalars(dst: h5py.File, src: h5py.File) -> None:
    group = dst.create_group("scalars")
    names, constants = [], []
    a = src.attrs
    t = src["t"][:]
    values = {k: float(a[k]) for k in CONSTANTS if k in a}
    if t.size > 1:
        values["dt_frame"] = float(t[1] - t[0])
    for name, value in values.items():
        group.create_dataset(name, data=np.float32(value))
        _flag_attrs(group[name], False, False)
        dst.attrs[name] = value
        names.append(name)
        constants.append(name)
    for key, item in (src["params"].items() if isinstance(src.get("params"), h5py.Group) else ()):
        data = np.asarray(item[()])
        if data.dtype.kind not in "fiub" or data.ndim not in (1, 2):
            continue
        columns = data.reshape(data.shape[0], -1)
        for k in range(columns.shape[1]):
            name = key if columns.shape[1] == 1 else f"{key}_{k}"
            group.create_dataset(name, data=columns[:, k].astype(np.float32))
            _flag_attrs(group[name], True, False)
            names.append(name)
    group.attrs["field_names"] = _names(names)
    dst.attrs["simulation_parameters"] = _names(constants)


def _fields(dst: h5py.File, src: h5py.File, compression) -> None:
    n, frames, ny, nx = src["fields/u"].shape
    t0 = dst.create_group("t0_fields")
    t0.attrs["field_names"] = _names(["u", "c"])
    filters = {} if compression is None else {"compression": "gzip", "compression_opts": compression}
    u = t0.create_dataset("u", (n, frames, nx, ny), np.float32, chunks=(1, min(frames, 8), nx, ny),
                          **filters)
    for b in range(n):  # one sample at a time: memory stays one trajectory
        u[b] = np.swapaxes(src["fields/u"][b], -1, -2)
    t0.create_dataset("c", data=np.swapaxes(src["fields/c"][:], -1, -2).astype(np.float32))
    for name, time in (("u", True), ("c", False)):
        t0[name].attrs["dim_varying"] = np.array([True, True])
        _flag_attrs(t0[name], True, time)
    for order in ("t1_fields", "t2_fields"):
        dst.create_group(order).attrs["field_names"] = _names([])


def _write_one(src_path: Path, out: Path, name: str, compression, overwrite: bool) -> Path:
    with h5py.File(src_path, "r") as src, atomic_path(out, overwrite=overwrite) as tmp:
        with h5py.File(tmp, "w") as dst:
            dst.attrs["dataset_name"] = name
            dst.attrs["grid_type"] = "cartesian"
            dst.attrs["n_spatial_dims"] = 2
            dst.attrs["n_trajectories"] = int(src["fields/u"].shape[0])
            dst.attrs["jamwave_source"] = src_path.name
            for key in ("pde", "element", "scheme", "generator", "seed", "speed", "source"):
                if key in src.attrs:
                    dst.attrs[f"jamwave_{key}"] = src.attrs[key]
            _dimensions(dst, src)
            _boundaries(dst, _text(src.attrs["boundary"]), {"x": src["x"].shape[0],
                                                            "y": src["y"].shape[0]})
            _scalars(dst, src)
            _fields(dst, src, compression)
    return out


def export_the_well(splits: dict, out_dir: str | os.PathLike, *, name: str = "jamwave_wave2d",
                    compression: int | None = 1, overwrite: bool = False) -> dict[str, Path]:
    """Write ``out_dir/data/<split>/<name>.hdf5`` for each given split (see the module docstring).

    Parameters
    ----------
    splits : dict of str -> path-like
        ``{"train": ..., "valid": ..., "test": ...}`` (any non-empty subset): ``jamwave.wave2d/1`` files.
    out_dir : path-like
        Folder of the exported dataset (``WellDataset(path=out_dir, well_split_name=split)`` or
        ``WellDataset(path=out_dir/data/split)`` read it).
    name : str
        ``dataset_name`` attribute and file stem.
    compression : int or None
        gzip level of ``t0_fields/u``.
    overwrite : bool
        Replace existing exported files.

    Returns
    -------
    dict of str -> pathlib.Path
        The written file of each split.

    Raises
    ------
    ValueError
        On an unknown split, a bad input file (every input is checked before anything is written)
        or inputs of different grids or frame counts.
    """
    if not splits:
        raise ValueError("give at least one split (train, valid or test) to export")
    unknown = sorted(set(splits) - set(SPLITS))
    if unknown:
        raise ValueError(f"splits must be among {SPLITS}, got {unknown}")
    if not name or not name.replace("_", "").replace("-", "").isalnum():
        raise ValueError(f"name must be letters, digits, '_' or '-', got {name!r}")
    shapes = {split: check_wave_file(path) for split, path in splits.items()}
    if len({s[1:] for s in shapes.values()}) > 1:
        raise ValueError(f"the splits must share frames and grid, got shapes {shapes}")
    out_dir = Path(out_dir)
    targets = {split: out_dir / "data" / split / f"{name}.hdf5" for split in splits}
    for target in targets.values():
        check_writable(target, overwrite=overwrite)
    return {split: _write_one(Path(splits[split]), targets[split], name, compression, overwrite)
            for split in splits}
