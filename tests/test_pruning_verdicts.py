"""The pruning study's aggregation and claim verdicts on hand-made rows."""

from __future__ import annotations

import pytest

from benchmarks.pruning_study import _sap_variants, _variants, parse_args
from benchmarks.pruning_verdicts import aggregate, claims, verdict_table


def row(label, seed, best, *, censored=False, trend="-", control="-", broke=None, nrmse=(1.0, 1.0),
        fractions=(1.0, 0.5), conv="dense", scope="layer"):
    return {"conv": conv, "scope": scope, "magnitude": "plain", "label": label, "method": label.split()[0],
            "seed": seed, "best_fraction": best, "best_iteration": 3, "best_epochs": 12, "test_nrmse": 0.5,
            "dense_nrmse": 1.0, "max_nrmse_ratio": max(nrmse), "censored": censored, "scope_trend": trend,
            "control_trend": control, "first_break_fraction": broke, "final_fraction": fractions[-1],
            "fractions": list(fractions), "nrmse": list(nrmse)}


def _verdicts(rows):
    return {c["claim"]: c["verdict"] for c in claims(rows)}


def test_efficiency_verdicts_respect_spread_and_censoring():
    sap = [row("sap", s, b) for s, b in enumerate([0.10, 0.12, 0.11])]
    lt = [row("lt", s, b) for s, b in enumerate([0.30, 0.33, 0.31])]
    assert _verdicts(sap + lt)["SAP more efficient than LT"] == "reproduced"
    assert _verdicts([dict(r, best_fraction=r["best_fraction"] + 0.5) for r in sap] + lt)[
        "SAP more efficient than LT"] == "not reproduced"
    censored_lt = [dict(r, censored=True) for r in lt]
    assert _verdicts(sap + censored_lt)["SAP more efficient than LT"] == "not resolved"
    overlapping = [row("lt", s, b) for s, b in enumerate([0.05, 0.30, 0.11])]
    assert _verdicts(sap + overlapping)["SAP more efficient than LT"] == "not resolved"


def test_robustness_compares_the_common_range_only():
    # LT is worse down to SAP's end (0.5); its collapse beyond (0.1) is not counted
    sap = [row("sap", s, 0.5, fractions=(1.0, 0.7, 0.5), nrmse=(1.0, 1.01, 1.02 + 0.01 * s))
           for s in range(3)]
    lt = [row("lt", s, 0.5, fractions=(1.0, 0.8, 0.5, 0.1), nrmse=(1.0, 1.4, 1.5 + 0.01 * s, 9.0))
          for s in range(3)]
    assert _verdicts(sap + lt)["SAP more robust than LT"] == "reproduced"
    lt = [dict(r, fractions=[1.0, 0.5, 0.1], nrmse=[1.0, 1.5, 9.0]) for r in lt]
    lt_good = [dict(r, nrmse=[1.0, 1.0, 9.0]) for r in lt]
    assert _verdicts(sap + lt_good)["SAP more robust than LT"] == "not resolved"  # one model in range
    sap3 = [row("sap", s, 0.5, fractions=(1.0, 0.7, 0.5), nrmse=(1.0, 1.2, 1.2 + 0.01 * s)) for s in range(3)]
    lt3 = [row("lt", s, 0.5, fractions=(1.0, 0.8, 0.5, 0.1), nrmse=(1.0, 1.0, 1.0, 9.0)) for s in range(3)]
    assert _verdicts(sap3 + lt3)["SAP more robust than LT"] == "not reproduced"


def test_pqi_story_needs_all_seeds_a_flat_control_and_a_collapse_to_refute():
    collapse = {"nrmse": (1.0, 1.0, 2.0, 2.5), "fractions": (1.0, 0.5, 0.2, 0.1)}
    lt = [row("lt", s, 0.3) for s in range(3)]
    sap = [row("sap", s, 0.3, trend="-+-", **collapse) for s in range(3)]
    v = _verdicts(sap + lt)
    assert v["PQI decrease-increase-decrease (SAP)"] == "reproduced"
    assert v["PQI decrease-increase-decrease (LT)"] == "not resolved"  # never collapsed
    noisy = [row("lt", s, 0.3, nrmse=(1.0, 1.0, 2.0, 1.0), fractions=(1.0, 0.5, 0.2, 0.1)) for s in range(3)]
    assert _verdicts(sap + noisy)["PQI decrease-increase-decrease (LT)"] == "not resolved"  # one bad model
    assert _verdicts(sap + [row("lt", s, 0.3, **collapse) for s in range(3)])[
        "PQI decrease-increase-decrease (LT)"] == "not reproduced"
    control_rises = [dict(r, control_trend="-+") for r in sap]
    assert _verdicts(control_rises + lt)["PQI decrease-increase-decrease (SAP)"] == "not reproduced"
    oscillating = [dict(r, scope_trend="-+-+-+") for r in sap]
    assert _verdicts(oscillating + lt)["PQI decrease-increase-decrease (SAP)"] == "not reproduced"
    mixed = sap[:2] + [dict(sap[2], scope_trend="-")]
    assert _verdicts(mixed + lt)["PQI decrease-increase-decrease (SAP)"] == "not resolved"


def test_aggregate_and_table():
    rows = [row("sap", s, b, censored=s == 0) for s, b in enumerate([0.1, 0.2, 0.3])]
    (g,) = aggregate(rows)
    assert g["seeds"] == 3 and g["censored"] == 1
    assert g["best_fraction_mean"] == pytest.approx(0.2) and g["best_fraction_sd"] == pytest.approx(0.1)
    (t,) = verdict_table([g])
    assert t["best_fraction"].startswith("<= 0.2 +- 0.1") and t["epochs"].startswith("12")


def test_ablation_variants():
    args = parse_args(["--sap-eta-r", "0,0.001,0.01", "--sap-gamma", "1,1.2,3"])
    assert _sap_variants(args) == [(0.0, 1.0), (0.001, 1.0), (0.01, 1.0), (0.0, 1.2), (0.0, 3.0)]
    assert [lab for lab, _ in _variants(args, "sap")][:2] == ["sap", "sap eta0.001 g1"]
    cross = parse_args(["--sap-eta-r", "0,0.01", "--sap-gamma", "1,3", "--sap-grid", "cross"])
    assert len(_sap_variants(cross)) == 4
    assert parse_args([]).iterations == 30 and parse_args([]).seeds == [0, 1, 2]
