"""Aggregation and verdicts of the pruning study (:mod:`benchmarks.pruning_study`).

Input: one row per run (conv, scope, method label, magnitude, seed) with the fields of
:func:`surrogate.pruning.summarise_history` plus ``test_nrmse`` (the model of ``best_iteration`` on
the test split) and ``censored`` (the run ended inside the tolerance: its best fraction is only an
upper bound of what the method reaches).

:func:`aggregate` gives, per group over seeds, mean and standard deviation (sample, ``n - 1``) of
the best remaining fraction, the iterations and total training epochs to reach it, and the test
nRMSE of that model. :func:`verdict_table` sets SAP, LT and one-shot side by side for each conv,
scope and magnitude. :func:`claims` decides the paper's claims, per conv and scope:

* **SAP more efficient than LT** (smaller remaining fraction within the tolerance). Reproduced when
  SAP's mean + sd is below LT's mean - sd and LT is not censored (a censored LT could go lower);
  not reproduced when LT's mean + sd is below SAP's mean - sd and SAP is not censored; otherwise
  not resolved.
* **SAP more robust than LT**: the worst validation nRMSE / dense nRMSE along the run, over the
  remaining fractions both methods reached (fraction >= the larger of their final fractions, so
  the longer-pruning method is not penalised for going further). Reproduced when SAP's mean + sd is
  below LT's mean - sd, not reproduced for the reverse, otherwise not resolved; also not resolved
  when a run has fewer than two pruned models in that common range.
* **PQ Index decreases, increases, decreases** (for SAP and, as "a generic pruning procedure", for
  LT): per run, the trained trajectory in the run's scope has exactly the phases ``-+-``
  (:func:`surrogate.pruning.pqi_trend`; an oscillation such as ``-+-+-+`` is not the paper's single
  rise) and the untrained control of the same counts has no increase. Reproduced when every seed
  shows it; not reproduced when no seed shows it although every run went past the accuracy limit
  and stayed there (its last two models outside the tolerance: the collapse where the paper places
  the last decrease, not one noisy retraining); otherwise (runs that did not collapse, or seeds
  that disagree) not resolved.
"""

from __future__ import annotations

import math
import statistics

__all__ = ["aggregate", "claims", "verdict_table"]

REPRODUCED, NOT_REPRODUCED, NOT_RESOLVED = "reproduced", "not reproduced", "not resolved"


def _mean_sd(values) -> tuple[float | None, float | None]:
    values = [v for v in values if v is not None and math.isfinite(v)]
    if not values:
        return None, None
    return statistics.mean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def _key(row: dict) -> tuple:
    return row["conv"], row["scope"], row["magnitude"], row["label"]


def aggregate(rows: list[dict]) -> list[dict]:
    """Mean and sd over seeds per (conv, scope, magnitude, method label); see the module docstring."""
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault(_key(row), []).append(row)
    out = []
    for (conv, scope, magnitude, label), runs in groups.items():
        g = {"conv": conv, "scope": scope, "magnitude": magnitude, "label": label,
             "method": runs[0]["method"], "seeds": len(runs),
             "censored": sum(bool(r["censored"]) for r in runs)}
        for field in ("best_fraction", "best_iteration", "best_epochs", "test_nrmse", "dense_nrmse",
                      "max_nrmse_ratio"):
            g[field + "_mean"], g[field + "_sd"] = _mean_sd(r.get(field) for r in runs)
        out.append(g)
    return out


def _fmt(mean, sd, digits=3) -> str:
    if mean is None:
        return "n/a"
    return f"{mean:.{digits}g} +- {sd:.2g}"


def verdict_table(groups: list[dict]) -> list[dict]:
    """One row per (conv, scope, magnitude, method label): the figures that the verdicts compare."""
    rows = []
    for g in sorted(groups, key=lambda g: (g["conv"], g["scope"], g["magnitude"], g["label"])):
        bound = "<= " if g["censored"] else ""
        rows.append({
            "conv": g["conv"], "scope": g["scope"], "magnitude": g["magnitude"], "method": g["label"],
            "seeds": g["seeds"],
            "best_fraction": bound + _fmt(g["best_fraction_mean"], g["best_fraction_sd"]),
            "iterations": _fmt(g["best_iteration_mean"], g["best_iteration_sd"]),
            "epochs": _fmt(g["best_epochs_mean"], g["best_epochs_sd"]),
            "test_nrmse": _fmt(g["test_nrmse_mean"], g["test_nrmse_sd"]),
            "censored_seeds": g["censored"],
        })
    return rows


def _lower(a: tuple, b: tuple) -> bool:
    """Mean +- sd of ``a`` entirely below that of ``b``."""
    return a[0] + a[1] < b[0] - b[1]


def _efficiency(sap: list[dict], lt: list[dict]) -> tuple[str, str]:
    s, lt_ = _mean_sd(r["best_fraction"] for r in sap), _mean_sd(r["best_fraction"] for r in lt)
    s_cens, l_cens = any(r["censored"] for r in sap), any(r["censored"] for r in lt)
    figures = (f"best fraction SAP {_fmt(*s)}{' (censored)' if s_cens else ''}, "
               f"LT {_fmt(*lt_)}{' (censored)' if l_cens else ''}")
    if _lower(s, lt_) and not l_cens:
        return REPRODUCED, figures
    if _lower(lt_, s) and not s_cens:
        return NOT_REPRODUCED, figures
    return NOT_RESOLVED, figures


def _worst_ratio(row: dict, floor: float) -> float:
    ratios = [e / row["dense_nrmse"] for f, e in zip(row["fractions"], row["nrmse"]) if f >= floor - 1e-12]
    return max(ratios)


def _robustness(sap: list[dict], lt: list[dict]) -> tuple[str, str]:
    floor = max(max(r["final_fraction"] for r in sap), max(r["final_fraction"] for r in lt))
    s = _mean_sd(_worst_ratio(r, floor) for r in sap)
    lt_ = _mean_sd(_worst_ratio(r, floor) for r in lt)
    figures = f"worst nRMSE/dense down to fraction {floor:.3g}: SAP {_fmt(*s)}, LT {_fmt(*lt_)}"
    pruned_in_range = min(sum(f >= floor - 1e-12 for f in r["fractions"][1:]) for r in sap + lt)
    if pruned_in_range < 2:
        return NOT_RESOLVED, figures + f" (common range holds {pruned_in_range} pruned model(s) of a run)"
    if _lower(s, lt_):
        return REPRODUCED, figures
    if _lower(lt_, s):
        return NOT_REPRODUCED, figures
    return NOT_RESOLVED, figures


def _collapsed(row: dict, tolerance: float) -> bool:
    """The run's last two models are both outside the tolerance."""
    return len(row["nrmse"]) >= 3 and all(e > tolerance * row["dense_nrmse"] for e in row["nrmse"][-2:])


def _pqi_story(runs: list[dict], tolerance: float) -> tuple[str, str]:
    shows = [r["scope_trend"] == "-+-" and "+" not in (r.get("control_trend") or "") for r in runs]
    collapsed = [_collapsed(r, tolerance) for r in runs]
    figures = ("trends " + " ".join(r["scope_trend"] or "." for r in runs) + "; control "
               + " ".join(r.get("control_trend") or "." for r in runs)
               + f"; {sum(collapsed)}/{len(runs)} runs collapsed")
    if all(shows):
        return REPRODUCED, figures
    if not any(shows) and all(collapsed):
        return NOT_REPRODUCED, figures
    return NOT_RESOLVED, figures


def claims(rows: list[dict], magnitude: str = "plain", tolerance: float = 1.1) -> list[dict]:
    """The paper's claims per conv and scope, from the rows of SAP (default hyperparameters) and LT
    with ``magnitude``; see the module docstring for the criteria."""
    out = []
    pairs = sorted({(r["conv"], r["scope"]) for r in rows})
    for conv, scope in pairs:
        pick = {lab: [r for r in rows if (r["conv"], r["scope"], r["magnitude"], r["label"])
                      == (conv, scope, magnitude, lab)] for lab in ("sap", "lt")}
        if not pick["sap"] or not pick["lt"]:
            continue
        for claim, (verdict, figures) in (
                ("SAP more efficient than LT", _efficiency(pick["sap"], pick["lt"])),
                ("SAP more robust than LT", _robustness(pick["sap"], pick["lt"])),
                ("PQI decrease-increase-decrease (SAP)", _pqi_story(pick["sap"], tolerance)),
                ("PQI decrease-increase-decrease (LT)", _pqi_story(pick["lt"], tolerance))):
            out.append({"conv": conv, "scope": scope, "magnitude": magnitude, "claim": claim,
                        "verdict": verdict, "figures": figures})
    return out
