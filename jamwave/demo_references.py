"""Committed benchmark results that the demo's summary sets beside its own numbers.

The demo's packings and models are small; the repository's committed benchmarks (under
``benchmarks/results/``, next to the package in a clone) measured the same quantities at larger
sizes or with more seeds. Each reader returns ``None`` when its file is absent (an installed
package without the repository), and the summary then leaves the row out.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results"
JAMMING_FILE = "time_to_jamming_idle.json"
DIAGRAM_FILE = "diagram_reduced_nl20/report/report.json"
PRUNING_FILE = "pruning_study_cp.json"


def _read(relative: str, root: Path | None = None) -> dict | None:
    path = (RESULTS if root is None else Path(root)) / relative
    return json.loads(path.read_text()) if path.is_file() else None


def mean_and_error(values) -> tuple[float, float]:
    """Mean and standard error of the mean (NaN error for fewer than two values)."""
    values = np.asarray(values, float)
    error = values.std(ddof=1) / math.sqrt(len(values)) if len(values) > 1 else math.nan
    return float(values.mean()), float(error)


def jamming_benchmark(root: Path | None = None) -> dict | None:
    """phi_J of the committed time-to-jamming benchmark on the reference systems.

    Returns ``{system: {method: {"mean", "error", "seeds", "n"}}}`` over the finished rows (systems
    ``mono_N1000``, ``mix14_N2000``; methods ``bisection``, ``ladder``, ``lammps``), or ``None``.
    """
    data = _read(JAMMING_FILE, root)
    if data is None:
        return None
    groups: dict = {}
    for row in data["rows"]:
        if row.get("status") == "finished" and math.isfinite(row.get("phi_J", math.nan)):
            groups.setdefault(row["system"], {}).setdefault(row["method"], []).append(row)
    out: dict = {}
    for system, methods in groups.items():
        for method, rows in methods.items():
            mean, error = mean_and_error([r["phi_J"] for r in rows])
            out.setdefault(system, {})[method] = {"mean": mean, "error": error, "seeds": len(rows),
                                                  "n": rows[0]["n"]}
    return out


def reduced_diagram(root: Path | None = None) -> dict | None:
    """The committed delta 0.15 diagram's estimates (X*_S, the K* jump: value and 95 % interval),
    its ``delta``, ``seeds`` and ``n_large``; ``None`` when absent."""
    data = _read(DIAGRAM_FILE, root)
    if data is None:
        return None
    return {"delta": data["delta"], "seeds": len(data["seeds"]), "n_large": data["settings"]["n_large"],
            "file": f"benchmarks/results/{DIAGRAM_FILE}", **data["estimates"]}


def pruning_study(scope: str = "global", magnitude: str = "cp-aware",
                  root: Path | None = None) -> dict | None:
    """The committed pruning study's CP rows at ``scope`` and ``magnitude``: ``{method: summary}``
    with ``best_fraction_mean``, ``best_fraction_sd``, ``best_iteration_mean``, ``seeds`` and
    ``censored``, plus ``"tolerance"``; ``None`` when absent."""
    data = _read(PRUNING_FILE, root)
    if data is None:
        return None
    rows = {r["method"]: r for r in data["notes"]["summary"]
            if r["scope"] == scope and r["magnitude"] == magnitude}
    if not rows:
        return None
    return {"tolerance": data["notes"]["settings"]["tolerance"], "file": f"benchmarks/results/{PRUNING_FILE}",
            **rows}
