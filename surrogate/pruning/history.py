"""The pruning history (``history.json``): what each iteration recorded, reading it back, summaries.

Layout (``format = "jamwave.pruning-history/1"``)::

    {"format", "method", "scope", "hyper": {...}, "seed", ["magnitude",] "iterations",
     "sizes": {tensor: n_weights}, "total": n_prunable, "complete": bool,
     "entries": [                                   # one per trained model, t = 0 .. T
        {"iteration": t,
         "remaining": {tensor: alive}, "remaining_total": int, "remaining_fraction": float,
         "pqi": {"global": float,
                 "layer": {tensor: float},
                 "neuron": {tensor: [float per output row]},      # NaN written as null
                 "neuron_mean": {tensor: float}},
         "control": {same keys as "pqi", "remaining_total"},  # untrained Gaussian twin (.control)
         "val_nrmse": float, "metrics": {scalar rollout metrics},
         "train": {scalar fit results, "epochs": epochs run (when the fit history lists them)},
         "pruned": {tensor: int}, "pruned_total": int,   # pruned after training (absent at t = T)
         "seconds": float}
     ]}

PQI values are those of the trained model of iteration ``t`` over its alive weights (with
``p = q``'s of the run for SAP, the defaults 0.5 and 1 otherwise): the values SAP prunes from
(with ``magnitude="cp-aware"`` SAP prunes from the index of the CP-aware scores instead; the
recorded values stay those of the weights). ``magnitude`` is present only when not ``"plain"``;
``control`` only when the run records it (the default).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import torch
from torch import nn

from .methods import remaining_weights
from .pqi import alive_mask, masked_weight, pq_index_rows, prunable_parameters

__all__ = ["HISTORY_FORMAT", "history_entry", "load_history", "pqi_record", "pqi_trend", "scope_pqi",
           "summarise_history"]

HISTORY_FORMAT = "jamwave.pruning-history/1"


def _finite_or_none(x: float):
    return float(x) if math.isfinite(x) else None


def _scalars(d) -> dict:
    if not isinstance(d, dict):
        return {}
    out = {}
    for k, v in d.items():
        if isinstance(v, bool) or v is None:
            out[k] = v
        elif isinstance(v, int | float):
            out[k] = _finite_or_none(float(v)) if isinstance(v, float) else int(v)
    return out


def pqi_record(weights: dict, alive: dict, p: float = 0.5, q: float = 1.0) -> dict:
    """PQ Index in every scope of a set of tensors, as recorded in ``entry["pqi"]``.

    Parameters
    ----------
    weights : dict of str to torch.Tensor
        ``{qualified name: weights}``, each at least 2-d (rows along dimension 0).
    alive : dict of str to torch.Tensor of bool
        The same keys and shapes; True where an entry is alive.

    Returns
    -------
    dict
        ``global`` (float or None), ``layer`` ({name: float or None}), ``neuron`` ({name: [float or
        None per row]}), ``neuron_mean`` ({name: mean over defined rows, or None}).
    """
    flat = torch.cat([weights[k].reshape(-1).to(torch.float64) for k in weights])
    flat_alive = torch.cat([alive[k].reshape(-1) for k in weights])
    layer, neuron, neuron_mean = {}, {}, {}
    for k, w in weights.items():
        rows = w.shape[0]
        layer[k] = _finite_or_none(float(pq_index_rows(w.reshape(1, -1), alive[k].reshape(1, -1), p, q)[0]))
        v = pq_index_rows(w.reshape(rows, -1), alive[k].reshape(rows, -1), p, q)
        neuron[k] = [_finite_or_none(x) for x in v.tolist()]
        defined = v[~v.isnan()]
        neuron_mean[k] = float(defined.mean()) if len(defined) else None
    return {"global": _finite_or_none(float(pq_index_rows(flat[None], flat_alive[None], p, q)[0])),
            "layer": layer, "neuron": neuron, "neuron_mean": neuron_mean}


def scope_pqi(record: dict, scope: str) -> float | None:
    """One number per record for a scope: the global index, the mean over tensors of the layer
    index, or the mean over all rows of all tensors of the neuron index (undefined values skipped)."""
    if scope == "global":
        return record["global"]
    if scope == "layer":
        values = [v for v in record["layer"].values() if v is not None]
    elif scope == "neuron":
        values = [v for row in record["neuron"].values() for v in row if v is not None]
    else:
        raise ValueError(f"scope must be one of ('global', 'layer', 'neuron'), got {scope!r}")
    return sum(values) / len(values) if values else None


def history_entry(model: nn.Module, iteration: int, metrics: dict, trained=None, p: float = 0.5,
                  q: float = 1.0) -> dict:
    """Record of one trained model: remaining weights, PQI in every scope, metrics (see module doc)."""
    sizes = remaining_weights(model)
    remaining = {qn: alive for qn, (alive, _) in sizes.items()}
    total = sum(n for _, n in sizes.values())
    params = prunable_parameters(model)
    record = pqi_record({qn: masked_weight(m, n) for qn, m, n in params},
                        {qn: alive_mask(m, n) for qn, m, n in params}, p, q)
    train = _scalars(trained)
    if isinstance(trained, dict) and isinstance(trained.get("epoch"), list):
        train["epochs"] = len(trained["epoch"])  # epochs run in this iteration (early stopping)
    return {
        "iteration": int(iteration),
        "remaining": remaining,
        "remaining_total": sum(remaining.values()),
        "remaining_fraction": sum(remaining.values()) / total,
        "pqi": record,
        "val_nrmse": float(metrics["nrmse"]),
        "metrics": _scalars(metrics),
        "train": train,
    }


def load_history(path: str | os.PathLike) -> dict:
    """Read ``history.json`` (or the one inside a run folder) and check its format."""
    path = Path(path)
    if path.is_dir():
        path = path / "history.json"
    if not path.is_file():
        raise ValueError(f"no pruning history at {str(path)!r}")
    try:
        history = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{str(path)!r} is not a JSON file ({exc})") from None
    if not isinstance(history, dict) or history.get("format") != HISTORY_FORMAT:
        raise ValueError(f"{str(path)!r} is not a {HISTORY_FORMAT!r} file")
    entries = history.get("entries")
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise ValueError(f"{str(path)!r}: 'entries' must be a list of iteration records")
    return history


def pqi_trend(values, rel_tol: float = 0.05) -> str:
    """Sequence of monotone phases of ``values`` as a string of ``-`` (decrease) and ``+`` (increase).

    Changes smaller than ``rel_tol`` times the value range (5 %) are ignored as noise, so ``"-+-"``
    is the decrease-increase-decrease trajectory reported by Diao et al.
    """
    values = [v for v in values if v is not None and math.isfinite(v)]
    if len(values) < 2:
        return ""
    span = max(values) - min(values)
    if span == 0:
        return ""
    phases, anchor = [], values[0]
    for v in values[1:]:
        step = v - anchor
        if abs(step) <= rel_tol * span:
            continue
        sign = "+" if step > 0 else "-"
        if not phases or phases[-1] != sign:
            phases.append(sign)
        anchor = v
    return "".join(phases)


def summarise_history(history: dict, tolerance: float = 1.1) -> dict:
    """The smallest remaining fraction whose validation nRMSE is within ``tolerance`` x the dense one.

    The reference is iteration 0 (the dense, or starting, model). Returns ``dense_nrmse``,
    ``best_fraction`` (smallest remaining fraction with ``nrmse <= tolerance * dense``, 1.0 if only
    the start qualifies), ``best_iteration`` (the iteration reaching it), ``best_epochs`` (training
    epochs run in iterations ``0 .. best_iteration`` together, None if the history lacks them),
    ``first_break_fraction`` (remaining fraction of the first iteration outside the tolerance, None
    if none), ``max_nrmse_ratio`` (worst nRMSE over dense), ``final_fraction``, ``final_nrmse``,
    ``pqi_trend`` of the global PQI, and for the run's own scope (:func:`scope_pqi`): ``scope_pqi``
    per entry, ``scope_trend``, and where the history has a control, ``control_pqi`` and
    ``control_trend``.
    """
    if not tolerance >= 1:
        raise ValueError(f"tolerance must be >= 1, got {tolerance}")
    entries = history["entries"]
    if not entries:
        raise ValueError("the history has no entries")
    dense = entries[0]["val_nrmse"]
    inside = [math.isfinite(e["val_nrmse"]) and e["val_nrmse"] <= tolerance * dense for e in entries]
    ok = [e for e, good in zip(entries, inside) if good]
    best = min(ok, key=lambda e: (e["remaining_fraction"], e["iteration"])) if ok else entries[0]
    epochs = [e.get("train", {}).get("epochs") for e in entries[: best["iteration"] + 1]]
    broken = [e["remaining_fraction"] for e, good in zip(entries, inside) if not good]
    scope = history["scope"]
    trained = [scope_pqi(e["pqi"], scope) for e in entries]
    out = {
        "method": history["method"], "scope": scope, "dense_nrmse": dense,
        "best_fraction": best["remaining_fraction"], "best_iteration": best["iteration"],
        "best_nrmse": best["val_nrmse"],
        "best_epochs": sum(epochs) if None not in epochs else None,
        "first_break_fraction": broken[0] if broken else None,
        "max_nrmse_ratio": max(e["val_nrmse"] for e in entries) / dense,
        "final_fraction": entries[-1]["remaining_fraction"], "final_nrmse": entries[-1]["val_nrmse"],
        "iterations_done": len(entries) - 1,
        "pqi_trend": pqi_trend([e["pqi"]["global"] for e in entries]),
        "scope_pqi": trained, "scope_trend": pqi_trend(trained),
    }
    if all("control" in e for e in entries):
        control = [scope_pqi(e["control"], scope) for e in entries]
        out.update(control_pqi=control, control_trend=pqi_trend(control))
    return out
