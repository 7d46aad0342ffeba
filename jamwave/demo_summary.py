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
from jamwave.demo_references import JAMMING_FILE, jamming_benchmark, pruning_study, reduced_diagram
from jamwave.demo_run import DemoRun
from jamwave.report import Section

Z_ISOSTATIC = 6.0  # 3D frictionless spheres at jamming
OHERN_PHI_J_MONO = 0.639  # O'Hern et al. 2003: monodisperse spheres, 3D, large N
X_STAR_RESOLVED = 0.05  # an X*_S interval of half-width above this does not resolve the value
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
    rows += _committed_diagram_rows()
    rows += _surrogate_rows(models)
    rows += _pruning_rows(pruning)
    return rows


def _row(quantity: str, value, reference, source: str, agreement: str) -> dict:
    return {"quantity": quantity, "this run": value, "reference": reference, "source": source,
            "agreement": agreement}


def _jamming_rows(packings: Packings) -> list[dict]:
    ref = packings.sweeps.get("reference")
    bench = jamming_benchmark()
    rows = []
    if ref is not None:
        row, n = ref.rows[0], ref.rows[0]["N_S + N_L"]
        rows += [
            _row(f"phi_J, 50:50 mixture of diameter ratio 1.4 (N = {n})", row["phi_J"], OHERN_PHI_J,
                 "O'Hern et al. 2003 (large N)" + _benchmark_text(bench, "mix14_N2000"),
                 within(row["phi_J"], OHERN_PHI_J, PHI_J_TOLERANCE)),
            _row(f"backbone Z at phi_J (N = {n})", row["Z at phi_J"], Z_ISOSTATIC,
                 "isostatic value 2d = 6 (frictionless, 3D)",
                 within(row["Z at phi_J"], Z_ISOSTATIC, Z_TOLERANCE)),
        ]
    mono = (bench or {}).get("mono_N1000", {}).get("bisection")
    if mono is not None:
        rows.append(_row(f"phi_J, monodisperse (not run by the demo: committed benchmark, N = {mono['n']}, "
                         f"{mono['seeds']} seeds, mean)", mono["mean"], OHERN_PHI_J_MONO,
                         "O'Hern et al. 2003 (large N)" + _benchmark_text(bench, "mono_N1000", ("lammps",)),
                         within(mono["mean"], OHERN_PHI_J_MONO, PHI_J_TOLERANCE)))
    return rows


def _benchmark_text(bench: dict | None, system: str, methods=("bisection", "lammps")) -> str:
    """``; committed benchmark (N = 2000, 3 seeds): bisection 0.6453 +- 0.0014, ...`` or ``""``."""
    found = (bench or {}).get(system, {})
    parts = [f"{'LAMMPS' if m == 'lammps' else m} {found[m]['mean']:.4f} +- {found[m]['error']:.4f}"
             for m in methods if m in found]
    if not parts:
        return ""
    first = found[next(m for m in methods if m in found)]
    return (f"; committed benchmark {JAMMING_FILE} (N = {first['n']}, {first['seeds']} seeds, mean +- "
            f"standard error): " + ", ".join(parts))


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
    lines = cross.get("x_lines_meet", math.nan)
    how = ("where straight lines through the two transition lines meet; half of the small spheres "
           f"jam at the first transition from X_S = {estimate:.3g}, interpolated") if math.isfinite(lines) \
        else "where half of the small spheres jam at the first transition, interpolated"
    rows = [_row(f"X*_S at delta = {result.sweep.delta:g} ({how})",
                 lines if math.isfinite(lines) else estimate, PETIT_X_STAR,
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


def _committed_diagram_rows() -> list[dict]:
    """X*_S and the K* jump of the committed reduced delta 0.15 diagram (several seeds, 95 %
    intervals), which a demo-sized sweep cannot resolve."""
    diagram = reduced_diagram()
    if diagram is None:
        return []
    where = (f"committed diagram, delta = {diagram['delta']:g}, {diagram['n_large']} large spheres, "
             f"{diagram['seeds']} seeds; not this run")
    x, k = diagram["x_star_lines"], diagram["k_jump"]
    inside = x["low"] <= PETIT_X_STAR <= x["high"]
    if not math.isclose(diagram["delta"], PETIT_DELTA):
        word = f"not comparable: delta = {diagram['delta']:g}"
    elif x["half_width"] > X_STAR_RESOLVED:
        word = (f"{'consistent' if inside else 'not consistent'} but not resolved: the 95 % interval "
                f"[{x['low']:.3g}, {x['high']:.3g}] {'holds' if inside else 'misses'} the published "
                f"value, its half-width {x['half_width']:.2g} > {X_STAR_RESOLVED:g}")
    else:
        word = (f"{'agrees' if inside else 'differs'}: the 95 % interval [{x['low']:.3g}, "
                f"{x['high']:.3g}] {'holds' if inside else 'misses'} the published value")
    if k["low"] >= K_JUMP_RATIO:
        k_word = f"jump seen: the 95 % interval [{k['low']:.3g}, {k['high']:.3g}] lies above {K_JUMP_RATIO:g}"
    else:
        k_word = (f"not resolved: the 95 % interval [{k['low']:.3g}, {k['high']:.3g}] reaches below "
                  f"{K_JUMP_RATIO:g}")
    return [
        _row(f"X*_S where the two transition lines meet ({where})", x["value"], PETIT_X_STAR,
             f"Petit et al. (delta = {PETIT_DELTA}); ours: {diagram['file']}", word),
        _row(f"K* jump across X*_S ({where})", k["value"], f">= {K_JUMP_RATIO:g} (a jump)",
             f"Petit et al.: K* jumps at X*_S; ours: {diagram['file']}", k_word),
    ]


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
        rows.append(_row(f"{name}: weights left by SAP within {s['tolerance']:g}x the unpruned val nRMSE",
                         sap["best_fraction"], lt["best_fraction"],
                         "peer: lottery ticket, same model, scope and limit; Diao et al. (ICLR 2023) "
                         "claim SAP prunes further", _claim_word(sap, lt)))
        if name == "cp":
            rows += _committed_pruning_rows()
        step = sap["first_step_pruned"]
        rows.append(_row(f"{name}: fraction pruned by SAP's first step", step, GAUSSIAN_SAP_STEP,
                         "i.i.d. Gaussian weights: 1 - Gamma(3/4)^2 / sqrt(pi)",
                         f"{step / GAUSSIAN_SAP_STEP:.3g}x the Gaussian value" if math.isfinite(step)
                         else "not measured"))
    return rows


def _claim_word(sap: dict, lt: dict) -> str:
    """SAP against the lottery ticket at the accuracy limit, and whether that settles the claim
    (a run that has not reached the limit could still prune further)."""
    sap_f, lt_f = sap["best_fraction"], lt["best_fraction"]
    if sap_f < lt_f:
        word, settled = "SAP prunes further, as Diao et al. claim", lt["reached_limit"]
    elif sap_f > lt_f:
        word = "the lottery ticket prunes further, contrary to Diao et al.'s claim"
        settled = sap["reached_limit"]
    else:
        word, settled = "equal", sap["reached_limit"] and lt["reached_limit"]
    if settled:
        return word
    open_runs = [f"{m} ({r['iterations_done']} iterations)"
                 for m, r in (("SAP", sap), ("the lottery ticket", lt)) if not r["reached_limit"]]
    return f"not resolved, so far {word}: the limit was not reached by " + " and ".join(open_runs)


def _committed_pruning_rows() -> list[dict]:
    """SAP against the lottery ticket in the committed pruning study (CP model, several seeds)."""
    study = pruning_study()
    if study is None or not {"sap", "lt"} <= study.keys():
        return []
    sap, lt = study["sap"], study["lt"]
    mean_s, sd_s, mean_l, sd_l = (sap["best_fraction_mean"], sap["best_fraction_sd"],
                                  lt["best_fraction_mean"], lt["best_fraction_sd"])
    if mean_s + sd_s < mean_l - sd_l and not lt["censored"]:
        word = "as Diao et al. claim: SAP's mean + sd lies below the lottery ticket's mean - sd"
    elif mean_s < mean_l:
        word = ("SAP prunes further on the mean, as Diao et al. claim, but the seed spreads overlap "
                "(not resolved)")
    else:
        word = "the lottery ticket prunes at least as far on the mean, contrary to Diao et al.'s claim"
    return [_row(f"cp: weights left by SAP within {study['tolerance']:g}x (committed pruning study, global "
                 f"scope, CP-aware ranking, {sap['seeds']} seeds, mean +- sd; SAP reached the limit after "
                 f"{sap['best_iteration_mean']:.1f} iterations; not this run)",
                 f"{mean_s:.3g} +- {sd_s:.2g}", f"{mean_l:.3g} +- {sd_l:.2g}",
                 f"peer: lottery ticket in the same study ({study['file']})", word)]


def write_summary(run: DemoRun, section: Section, rows: list[dict]) -> None:
    """Fill the report's summary section and write ``summary.json``."""
    section.text("Headline numbers of this run beside the published value or the peer method's; the "
                 "agreement column is computed from the two numbers with the tolerance it states.")
    section.table(rows, ["quantity", "this run", "reference", "agreement", "source"])
    atomic_write_text(run.out / "summary.json", json.dumps(rows, indent=1, default=float), overwrite=True)
