"""The pruning history (``history.json``): what each iteration recorded, reading it back, summaries.

Layout (``format = "jamwave.pruning-history/1"``)::

    {"format", "method", "scope", "hyper": {...}, "seed", "iterations",
     "sizes": {tensor: n_weights}, "total": n_prunable, "complete": bool,
     "entries": [                                   # one per trained model, t = 0 .. T
        {"iteration": t,
         "remaining": {tensor: alive}, "remaining_total": int, "remaining_fraction": float,
         "pqi": {"global": float,
                 "layer": {tensor: float},
                 "neuron": {tensor: [float per output row]},      # NaN written as null
                 "neuron_mean": {tensor: float}},
         "val_nrmse": float, "metrics": {scalar rollout metrics}, "train": {scalar fit results},
         "pruned": {tensor: int}, "pruned_total": int,   # pruned after training (absent at t = T)
         "seconds": float}
     ]}

PQI values are those of the trained model of iteration ``t`` over its alive weights (with
``p = q``'s of the run for SAP, the defaults 0.5 and 1 otherwise): the values SAP prunes from.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

from torch import nn

from .methods import remaining_weights
from .pqi import pq_index_model

__all__ = ["HISTORY_FORMAT", "history_entry", "load_history", "pqi_trend", "summarise_history"]

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


def history_entry(model: nn.Module, iteration: int, metrics: dict, trained=None, p: float = 0.5,
                  q: float = 1.0) -> dict:
    """Record of one trained model: remaining weights, PQI in every scope, metrics (see module doc)."""
    remaining = {qn: alive for qn, (alive, _) in remaining_weights(model).items()}
    total = sum(n for _, n in remaining_weights(model).values())
    neuron = pq_index_model(model, "neuron", p, q)
    neuron_mean = {}
    for qn, v in neuron.items():
        alive = v[~v.isnan()]
        neuron_mean[qn] = float(alive.mean()) if len(alive) else None
    return {
        "iteration": int(iteration),
        "remaining": remaining,
        "remaining_total": sum(remaining.values()),
        "remaining_fraction": sum(remaining.values()) / total,
        "pqi": {
            "global": _finite_or_none(pq_index_model(model, "global", p, q)),
            "layer": {qn: _finite_or_none(v) for qn, v in pq_index_model(model, "layer", p, q).items()},
            "neuron": {qn: [_finite_or_none(x) for x in v.tolist()] for qn, v in neuron.items()},
            "neuron_mean": neuron_mean,
        },
        "val_nrmse": float(metrics["nrmse"]),
        "metrics": _scalars(metrics),
        "train": _scalars(trained),
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
    the start qualifies), ``best_iteration`` (the iteration reaching it), ``final_fraction``,
    ``final_nrmse`` and ``pqi_trend`` of the global PQI.
    """
    if not tolerance >= 1:
        raise ValueError(f"tolerance must be >= 1, got {tolerance}")
    entries = history["entries"]
    if not entries:
        raise ValueError("the history has no entries")
    dense = entries[0]["val_nrmse"]
    ok = [e for e in entries if math.isfinite(e["val_nrmse"]) and e["val_nrmse"] <= tolerance * dense]
    best = min(ok, key=lambda e: (e["remaining_fraction"], e["iteration"])) if ok else entries[0]
    return {
        "method": history["method"], "scope": history["scope"], "dense_nrmse": dense,
        "best_fraction": best["remaining_fraction"], "best_iteration": best["iteration"],
        "best_nrmse": best["val_nrmse"],
        "final_fraction": entries[-1]["remaining_fraction"], "final_nrmse": entries[-1]["val_nrmse"],
        "iterations_done": len(entries) - 1,
        "pqi_trend": pqi_trend([e["pqi"]["global"] for e in entries]),
    }
