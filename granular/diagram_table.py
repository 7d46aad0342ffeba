"""The combined table of a jamming diagram: ``diagram.h5`` from the point files.

:func:`combine` reads every point file of a sweep (:mod:`granular.diagram_point`) and its failure
records, and :func:`write_table` writes the arrays (n_delta, n_x_small, n_seed) with their seed
means and standard errors, the point status and the sweep settings, atomically.
:func:`read_diagram` and :func:`read_diagram_settings` read it back.
"""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np

from granular.diagram_point import point_name, read_failure
from jamcommon.files import atomic_path

TABLE_KEYS = ("phi_J", "phi_J_second", "K_star", "K_SS", "K_SL", "K_LL", "K_linear_response",
              "jammed_fraction_small", "jammed_fraction_large", "Z_backbone", "x_small_realised", "n_small",
              "n_large", "jammed_fraction_small_excess", "jammed_fraction_large_excess",
              "second_phi", "second_K_star", "second_K_SS", "second_K_SL", "second_K_LL",
              "second_jammed_fraction_small", "second_jammed_fraction_large", "second_Z_backbone",
              "wall_s", "jam_fire_steps",
              "cross_K_below", "cross_K_above", "cross_K_SS_below", "cross_K_SS_above",
              "cross_K_SL_below", "cross_K_SL_above", "cross_K_LL_below", "cross_K_LL_above")
STATUS = {"done": 0, "timeout": 1, "error": 2, "missing": -1}




def _point_values(path: Path) -> dict[str, float]:
    """The table entries of one finished point file (NaN for what an older point file lacks).

    Raises
    ------
    granular.h5md.PackingFileError
        (a ``ValueError``) if the file is unreadable or lacks a result, naming it and the way out.
    """
    from granular.h5md import PackingFileError

    try:
        return _entries(path)
    except (PackingFileError, KeyError, TypeError) as exc:
        reason = str(exc) if isinstance(exc, PackingFileError) else f"lacks the result {exc}"
        raise PackingFileError(f"point file {str(path)!r} is not a finished diagram point ({reason}); "
                               f"delete it, or pass --force to recompute every point") from None


def _entries(path: Path) -> dict[str, float]:
    from granular.diagram_point import _moduli_star
    from granular.h5md import read_group

    results = read_group(path, "results")
    modulus = read_group(path, "modulus")
    try:
        timing = read_group(path, "timing")
    except KeyError:  # point files written before timings were recorded
        timing = {}
    k_n, nan = results["k_n"], float("nan")
    values = {
        "phi_J": results["phi_J"], "phi_J_second": results["phi_J_second"],
        **_moduli_star(modulus, k_n), "K_linear_response": modulus["K_linear_response"] / k_n,
        "jammed_fraction_small": results["jammed_fraction_small_at_phi_J"],
        "jammed_fraction_large": results["jammed_fraction_large_at_phi_J"],
        "Z_backbone": results["Z_backbone_at_phi_J"], "x_small_realised": results["x_small"],
        "n_small": results["n_small"], "n_large": results["n_large"],
        "jammed_fraction_small_excess": results.get("jammed_fraction_small", nan),
        "jammed_fraction_large_excess": results.get("jammed_fraction_large", nan),
        "wall_s": timing.get("total_s", nan), "jam_fire_steps": timing.get("jam_fire_steps", nan),
    }
    values.update({key: results.get(key, nan) for key in TABLE_KEYS if key.startswith("second_")})
    try:
        values.update(_across_second(read_group(path, "follow"), k_n))
    except KeyError:  # a point file without its followed path
        values.update(_across_second({}, k_n))
    return values


def _across_second(follow: dict, k_n: float) -> dict[str, float]:
    """Linear-response K, K_SS, K_SL, K_LL (units k_n / d_L) of the followed states just below and
    just above the second transition (the last state with fewer than half of the small particles
    jammed and the next one); NaN where the path has no such crossing."""
    from granular.follow import SECOND_TRANSITION_THRESHOLD

    keys = ("K", "K_SS", "K_SL", "K_LL")
    out = {f"cross_{k}_{side}": float("nan") for k in keys for side in ("below", "above")}
    fs = np.asarray(follow.get("jammed_fraction_small", []), dtype=float)
    above = np.nonzero(fs >= SECOND_TRANSITION_THRESHOLD)[0]
    if above.size == 0 or above[0] == 0:
        return out
    k = int(above[0])
    for key in keys:
        series = np.asarray(follow[key], dtype=float) / k_n
        out[f"cross_{key}_below"], out[f"cross_{key}_above"] = float(series[k - 1]), float(series[k])
    return out


def _gather(out_dir: Path, deltas, xs, seeds) -> tuple[dict, np.ndarray, dict]:
    """(values per key, status array, settings of the first point found) from the point files."""
    from granular.h5md import read_parameters

    shape = (len(deltas), len(xs), len(seeds))
    data = {key: np.full(shape, np.nan) for key in TABLE_KEYS}
    status = np.full(shape, STATUS["missing"], dtype=np.int8)
    settings = {}
    for a, d in enumerate(deltas):
        for b, x in enumerate(xs):
            for c, s in enumerate(seeds):
                path = out_dir / point_name(d, x, s)
                if path.exists():
                    for key, value in _point_values(path).items():
                        data[key][a, b, c] = value
                    status[a, b, c] = STATUS["done"]
                    if not settings:
                        params = read_parameters(path)
                        settings = dict(params.get("settings", {}))
                        settings["jamwave_version"] = params.get("version", "")
                elif (failure := read_failure(path)) is not None:
                    status[a, b, c] = STATUS.get(failure["kind"], STATUS["error"])
    return data, status, settings


def mean_sem(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard error over the last axis, ignoring NaN (sem NaN with fewer than two)."""
    count = np.sum(np.isfinite(values), axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(count > 0, np.nansum(values, axis=-1) / np.maximum(count, 1), np.nan)
        dev = np.where(np.isfinite(values), values - mean[..., None], 0.0)
        var = np.sum(dev**2, axis=-1) / np.maximum(count - 1, 1)
        sem = np.where(count > 1, np.sqrt(var / np.maximum(count, 1)), np.nan)
    return mean, sem


def combine(out_dir: str | os.PathLike, deltas, xs, seeds) -> Path:
    """Gather the point files into ``out_dir/diagram.h5``; missing or failed points are NaN.

    Datasets of shape (n_delta, n_x_small, n_seed) for every key of :data:`TABLE_KEYS`, with
    ``<key>_mean`` and ``<key>_sem`` (standard error over seeds, NaN with fewer than two) of shape
    (n_delta, n_x_small); axes ``delta``, ``x_small``, ``seed`` attached as HDF5 dimension scales;
    ``status`` (int8, :data:`STATUS`: 0 done, 1 timeout, 2 error, -1 missing). Moduli are
    dimensionless (K d_L / k_n). Unprefixed jammed fractions and Z are taken at phi_J;
    ``*_excess`` at phi_J + excess_phi; ``second_*`` at phi_J_second + excess_phi (the state
    ``second_phi``). The settings of the sweep are root attributes ``setting_<name>``.
    """
    out_dir = Path(out_dir)
    data, status, settings = _gather(out_dir, deltas, xs, seeds)
    return write_table(out_dir / "diagram.h5", deltas, xs, seeds, data, status, settings)


def write_table(target: Path, deltas, xs, seeds, data: dict, status: np.ndarray, settings: dict) -> Path:
    """Write a ``diagram.h5`` (layout of :func:`combine`) from per-seed arrays, atomically.

    ``data`` maps table keys to arrays (n_delta, n_x_small, n_seed); ``status`` is int8 of the same
    shape; ``settings`` become root attributes ``setting_<name>``.
    """
    with atomic_path(target, overwrite=True) as tmp:
        with h5py.File(tmp, "w") as f:
            f.attrs["schema"] = "jamwave.jamming_diagram/2"
            f.attrs["dims"] = np.array(["delta", "x_small", "seed"], dtype=h5py.string_dtype())
            f.attrs["status_codes"] = str(STATUS)
            for name, value in settings.items():
                f.attrs[f"setting_{name}"] = _attr_value(value)
            axes = {"delta": np.asarray(deltas, float), "x_small": np.asarray(xs, float),
                    "seed": np.asarray(seeds, np.int64)}
            for name, values in axes.items():
                f.create_dataset(name, data=values)
                f[name].make_scale(name)
            f.create_dataset("status", data=status)
            for key, values in data.items():
                f.create_dataset(key, data=values)
                mean, sem = mean_sem(values)
                f.create_dataset(f"{key}_mean", data=mean)
                f.create_dataset(f"{key}_sem", data=sem)
            for key in ("status", *data):
                for axis, name in enumerate(("delta", "x_small", "seed")):
                    f[key].dims[axis].attach_scale(f[name])
            for key in data:
                for axis, name in enumerate(("delta", "x_small")):
                    f[f"{key}_mean"].dims[axis].attach_scale(f[name])
                    f[f"{key}_sem"].dims[axis].attach_scale(f[name])
    return target


def _attr_value(value):
    """An HDF5 attribute for a setting: numbers and strings as they are, anything else as JSON."""
    import json

    if isinstance(value, (bool, int, float, str, np.integer, np.floating)):
        return value
    return json.dumps(value, default=str)


def read_diagram_settings(path: str | os.PathLike) -> dict:
    """The sweep settings stored as root attributes of a ``diagram.h5`` (``setting_<name>``)."""
    with h5py.File(path, "r") as f:
        return {k[len("setting_"):]: (v.item() if hasattr(v, "item") else v)
                for k, v in f.attrs.items() if k.startswith("setting_")}


def read_diagram(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """All datasets of a ``diagram.h5`` as arrays."""
    with h5py.File(path, "r") as f:
        return {name: np.array(f[name]) for name in f}


