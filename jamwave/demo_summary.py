"""The summary at the top of the demo report: headline numbers beside published or peer values.

Each row holds a number this run measured, the value it is compared with (published, analytic, or
the peer method's in the same run), the source of that value, and a word on agreement computed
from the two numbers with the tolerance stated in the row (never fixed text). ``summary.json``
holds the same rows for scripts and tests.
"""

from __future__ import annotations

import json
import math

from jamcommon.files import atomic_write_text
from jamwave.demo_packings import OHERN_PHI_J, PETIT_DELTA, PETIT_X_STAR, Packings
from jamwave.demo_run import DemoRun
from jamwave.report import Section

Z_ISOSTATIC = 6.0  # 3D frictionless spheres at jamming
GAUSSIAN_SAP_STEP = 0.152787  # 1 - Gamma(3/4)^2 / sqrt(pi): PQI of i.i.d. Gaussian weights, (p, q) = (0.5, 1)
PHI_J_TOLERANCE = 0.01  # finite-N spread of phi_J at a few hundred particles
Z_TOLERANCE = 0.3
K_JUMP_RATIO = 2.0
SMALL_AGAINST = 0.5  # "small against K at X*_S": at most half of it


def within(value: float, reference: float, tolerance: float) -> str:
    """``"agrees (within t)"`` or ``"differs by d (beyond t)"``; ``"not measured"`` for NaN."""
    if not math.isfinite(value):
        return "not measured"
    diff = value - reference
    if abs(diff) <= tolerance:
        return f"agrees (|difference| {abs(diff):.3g} <= {tolerance:g})"
    return f"differs by {diff:+.3g} (beyond {tolerance:g})"


def summary_rows(run: DemoRun, packings: Packings, models: dict, pruning: dict) -> list[dict]:
    """The headline rows: ``quantity``, ``this run``, ``reference``, ``source``, ``agreement``."""
    rows = _jamming_rows(packings)
    rows += _asymmetry_rows(packings)
    rows += _surrogate_rows(models)
    rows += _pruning_rows(pruning)
    return rows


def _row(quantity: str, value, reference, source: str, agreement: str) -> dict:
    return {"quantity": quantity, "this run": value, "reference": reference, "source": source,
            "agreement": agreement}


def _jamming_rows(packings: Packings) -> list[dict]:
    ref = packings.sweeps.get("reference")
    if ref is None:
        return []
    row, n = ref.rows[0], ref.rows[0]["N_S + N_L"]
    return [
        _row(f"phi_J, 50:50 mixture of diameter ratio 1.4 (N = {n})", row["phi_J"], OHERN_PHI_J,
             "O'Hern et al. 2003 (large N); LAMMPS here: 0.642-0.644 at N = 2000",
             within(row["phi_J"], OHERN_PHI_J, PHI_J_TOLERANCE)),
        _row(f"backbone Z at phi_J (N = {n})", row["Z at phi_J"], Z_ISOSTATIC,
             "isostatic value 2d = 6 (frictionless, 3D)",
             within(row["Z at phi_J"], Z_ISOSTATIC, Z_TOLERANCE)),
    ]


def _asymmetry_rows(packings: Packings) -> list[dict]:
    result, cross = packings.sweeps["asymmetric"], packings.crossover
    low, high = cross["x_star_low"], cross["x_star_high"]
    estimate = cross.get("x_transitions_meet_interpolated", math.nan)
    if not math.isclose(result.sweep.delta, PETIT_DELTA):
        agreement = f"not comparable: this preset's sweep is at delta = {result.sweep.delta:g}"
    elif math.isfinite(low) and math.isfinite(high):
        word = ("consistent: the published value lies between" if low < PETIT_X_STAR <= high
                else "not consistent: the published value lies outside")
        agreement = f"{word} X_S = {low:g} (apart) and {high:g} (coincident)"
    else:
        agreement = "not resolved: the sweep does not straddle X*_S"
    rows = [_row(f"X*_S at delta = {result.sweep.delta:g} (where half of the small spheres jam at the "
                 "first transition, interpolated)", estimate, PETIT_X_STAR,
                 f"Petit et al. (delta = {PETIT_DELTA})", agreement)]
    by_x = {x: r for x, r in zip(result.sweep.x_small, result.rows)}
    if math.isfinite(low) and math.isfinite(high):
        ratio = by_x[high]["K* at phi_J+dphi"] / by_x[low]["K* at phi_J+dphi"]
        word = "jump seen" if ratio >= K_JUMP_RATIO else "no jump"
        rows.append(_row(f"K* jump across X*_S: K*(X_S = {high:g}) / K*(X_S = {low:g})", ratio,
                         f">= {K_JUMP_RATIO:g} (a jump)", "Petit et al.: K* jumps at X*_S",
                         f"{word} ({ratio:.3g}-fold)"))
        first = by_x[min(by_x)]
        k1, k2, k_star = first["K* first"], first["K* second"], by_x[high]["K* first"]
        if not math.isfinite(k2):
            word = "not measured: the second transition was not reached in the followed range"
        elif k1 < k2 <= SMALL_AGAINST * k_star:
            word = f"as published (K* second = {k2 / k_star:.2g} of K* at X*_S)"
        else:
            word = (f"not as published: K* rises {'above' if k2 > k1 else 'not above'} the first, and is "
                    f"{k2 / k_star:.2g} of K* at X*_S (small means <= {SMALL_AGAINST:g})")
        rows.append(_row(f"K* at the second / first transition (X_S = {min(by_x):g})",
                         k2 / k1 if k1 > 0 else math.nan,
                         f"> 1, K* second <= {SMALL_AGAINST:g} x K* at X*_S ({k_star:.3g})",
                         "Petit et al.: K rises along the second transition, small against K at X*_S", word))
    return rows


def _surrogate_rows(models: dict) -> list[dict]:
    dense, cp = models["dense"][1], models["cp"][1]
    ratio = dense["parameters"] / cp["parameters"]
    err = cp["nrmse"] / dense["nrmse"]
    word = "comparable accuracy" if err <= 1.5 else "less accurate"
    return [
        _row("CP compression: dense / CP trainable parameters", ratio, dense["parameters"],
             "peer: the dense CNN of section 4 (its parameter count)", f"{ratio:.3g}x fewer parameters"),
        _row("CP / dense test nRMSE", err, dense["nrmse"], "peer: the dense CNN's test nRMSE",
             f"{word} (ratio {err:.3g}; comparable means <= 1.5)"),
    ]


def _pruning_rows(pruning: dict) -> list[dict]:
    rows = []
    for name, s in pruning.items():
        sap, lt = s["methods"]["sap"], s["methods"]["lt"]
        tol = s["tolerance"]
        if sap["best_fraction"] < lt["best_fraction"]:
            word = "SAP prunes further"
        elif sap["best_fraction"] > lt["best_fraction"]:
            word = "the lottery ticket prunes further"
        else:
            word = "equal"
        if not (sap["reached_limit"] and lt["reached_limit"]):
            word += (f" (within {sap['iterations_done']} / {lt['iterations_done']} iterations; the limit was "
                     "not reached by " + " and ".join(m for m, r in (("SAP", sap), ("the lottery ticket", lt))
                                                      if not r["reached_limit"]) + ")")
        rows.append(_row(f"{name}: weights left by SAP within {tol:g}x the unpruned val nRMSE",
                         sap["best_fraction"], lt["best_fraction"],
                         "peer: lottery ticket, same model and limit", word))
        step = sap["first_step_pruned"]
        rows.append(_row(f"{name}: fraction pruned by SAP's first step", step, GAUSSIAN_SAP_STEP,
                         "i.i.d. Gaussian weights: 1 - Gamma(3/4)^2 / sqrt(pi)",
                         f"{step / GAUSSIAN_SAP_STEP:.3g}x the Gaussian value" if math.isfinite(step)
                         else "not measured"))
    return rows


def write_summary(run: DemoRun, section: Section, rows: list[dict]) -> None:
    """Fill the report's summary section and write ``summary.json``."""
    section.text("Headline numbers of this run beside the published value or the peer method's; the "
                 "agreement column is computed from the two numbers with the tolerance it states.")
    section.table(rows, ["quantity", "this run", "reference", "agreement", "source"])
    atomic_write_text(run.out / "summary.json", json.dumps(rows, indent=1, default=float), overwrite=True)
