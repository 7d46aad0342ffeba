"""X*_S, phi_J maximum and K jump with bootstrap intervals, and the claim criteria, on synthetic
diagrams whose truth is known."""

from __future__ import annotations

import json

import numpy as np
import pytest

from granular.diagram import STATUS, TABLE_KEYS, mean_sem, read_diagram, write_table
from granular.diagram_analysis import (
    bootstrap_diagram,
    half_jammed_crossing,
    jump_neighbours,
    k_jump,
    lines_crossing,
    phi_max_location,
    small_sample_factor,
)
from granular.diagram_claims import NOT_REPRODUCED, NOT_RESOLVED, REPRODUCED, evaluate_claims

X = np.round(np.arange(0.05, 0.401, 0.025), 4)
X_TRUE = 0.2  # the synthetic lines 0.64 + 0.8 x and 0.9 - 0.5 x meet here
K_BELOW, K_ABOVE = 0.3, 2.5


def synthetic(rng, n_seed=3, x_true=X_TRUE, noise=0.004, k_above=K_ABOVE):
    """Per-seed arrays (len(X), n_seed) of a diagram with a known crossing at ``x_true``."""
    shape = (X.size, n_seed)
    joint = np.broadcast_to(X[:, None] >= x_true, shape)
    phi_top = 0.64 + 0.8 * x_true
    first = np.where(joint, phi_top - 0.3 * (X[:, None] - x_true), 0.64 + 0.8 * X[:, None])
    first = first + noise * rng.standard_normal(shape)
    second_line = phi_top + 0.5 * (x_true - X[:, None])
    second = np.where(joint, first, second_line + noise * rng.standard_normal(shape))
    k_first = np.where(joint, k_above, K_BELOW) * (1 + 0.1 * rng.standard_normal(shape))
    k_second = np.where(joint, k_first, 0.6 + 0.5 * X[:, None]) * (1 + 0.05 * rng.standard_normal(shape))
    k_second_ss = np.where(joint, 0.8, 0.05)
    return {
        "phi_J": first, "phi_J_second": second, "K_star": k_first,
        "jammed_fraction_small": np.where(joint, 0.93, 0.01) + 0 * first,
        "jammed_fraction_large": np.full(shape, 0.98),
        "second_K_star": k_second, "second_K_SS": k_second_ss + 0 * first,
        "second_K_SL": 0.6 * k_second, "second_K_LL": 0.4 * k_second - k_second_ss,
        "cross_K_below": np.where(joint, np.nan, 0.5) + 0 * first,
        "cross_K_above": np.where(joint, np.nan, 0.7) + 0 * first,
        "cross_K_SS_below": np.where(joint, np.nan, 0.001) + 0 * first,
        "cross_K_SS_above": np.where(joint, np.nan, 0.05) + 0 * first,
    }


def test_estimators_on_exact_curves():
    first, second = 0.64 + 0.8 * X, 0.9 - 0.5 * X
    x_star, phi_star = lines_crossing(X[X < 0.2], first[X < 0.2], second[X < 0.2], n_fit=3)
    assert x_star == pytest.approx(0.2, abs=1e-12) and phi_star == pytest.approx(0.8, abs=1e-12)
    assert np.isnan(lines_crossing(X, first, first)[0])  # never distinct: undefined
    with pytest.raises(ValueError, match="n_fit"):
        lines_crossing(X, first, second, n_fit=1)
    f = np.clip((X - 0.1) / 0.2, 0, 1)  # reaches 1/2 at X_S = 0.2
    assert half_jammed_crossing(X, f) == pytest.approx(0.2, abs=1e-12)
    parabola = 0.8 - 3.0 * (X - 0.21) ** 2
    grid, refined = phi_max_location(X, parabola)
    assert grid == pytest.approx(0.2) and refined == pytest.approx(0.21, abs=1e-9)
    assert phi_max_location(X, X)[0] == pytest.approx(X[-1])  # at the edge: the grid value
    pair = jump_neighbours(X, np.where(X < 0.2, first, 0.8), np.where(X < 0.2, second, 0.8))
    assert X[pair[0]] == pytest.approx(0.175) and X[pair[1]] == pytest.approx(0.2)
    assert k_jump(np.where(X < 0.2, 0.3, 2.4), pair) == pytest.approx(8.0)
    gap = np.where(np.isclose(X, 0.2), np.nan, np.where(X < 0.2, first, 0.8))  # X_S = 0.2 failed
    assert X[jump_neighbours(X, gap, np.where(X < 0.2, second, gap))[1]] == pytest.approx(0.225)
    assert small_sample_factor(3, 0.95) == pytest.approx(np.sqrt(1.5) * 4.302653 / 1.959964, rel=1e-5)


def test_bootstrap_interval_covers_the_truth():
    covered = {True: 0, False: 0}
    trials = 40
    for trial in range(trials):
        data = synthetic(np.random.default_rng(trial))
        for small in (True, False):
            est = bootstrap_diagram(X, data, n_boot=300, seed=trial, small_sample=small)["x_star_lines"]
            covered[small] += est.low <= X_TRUE <= est.high
            assert abs(est.value - X_TRUE) < 0.02
    # nominal 95 %: the widened interval covers (measured 96/100), the plain one under-covers
    assert covered[True] >= 0.85 * trials
    assert covered[True] > covered[False]


def test_bootstrap_locates_maximum_and_jump():
    est = bootstrap_diagram(X, synthetic(np.random.default_rng(7), n_seed=5), n_boot=500)
    assert est["x_phi_max_grid"].value == pytest.approx(X_TRUE)
    assert est["x_phi_max"].low <= X_TRUE + 0.0125 and est["x_phi_max"].high >= X_TRUE - 0.0125
    assert est["k_jump"].low <= K_ABOVE / K_BELOW <= est["k_jump"].high
    assert est["k_jump"].low > 2
    assert est["x_star_half_jammed"].value == pytest.approx(0.175 + 0.025 * 0.49 / 0.92)
    assert all(e.defined == 1.0 for e in est.values())
    with pytest.raises(ValueError, match="n_boot"):
        bootstrap_diagram(X, synthetic(np.random.default_rng(0)), n_boot=10)


def _claims(data, delta=0.15):
    est = bootstrap_diagram(X, data, n_boot=300)
    stats = {k: mean_sem(v) for k, v in data.items()}
    means, sems = {k: v[0] for k, v in stats.items()}, {k: v[1] for k, v in stats.items()}
    return {row["claim"][:4]: row["verdict"] for row in evaluate_claims(X, means, sems, est, delta)}


def test_claims_follow_their_criteria():
    rng = np.random.default_rng(3)
    assert set(_claims(synthetic(rng, x_true=0.2)).values()) == {REPRODUCED}
    moved = _claims(synthetic(rng, x_true=0.3))
    assert moved["(b1)"] == NOT_REPRODUCED and moved["(a) "] == REPRODUCED
    assert _claims(synthetic(rng, k_above=0.32))["(b3)"] == NOT_REPRODUCED
    assert _claims(synthetic(rng), delta=0.1)["(b1)"] == NOT_RESOLVED  # no paper value
    assert _claims(synthetic(rng), delta=0.25)["(a) "] == NOT_REPRODUCED  # split where none expected
    few = synthetic(rng)
    few["phi_J_second"] = few["phi_J"].copy()  # no distinct second line anywhere
    verdicts = _claims(few)
    assert verdicts["(a) "] == NOT_REPRODUCED and verdicts["(b1)"] == NOT_RESOLVED
    assert verdicts["(c1)"] == NOT_RESOLVED


def _write_synthetic_table(path, rng):
    data = synthetic(rng)
    full = {key: np.full((1, X.size, 3), np.nan) for key in TABLE_KEYS}
    for key, values in data.items():
        full[key][0] = values
    full["n_small"][0] = 100.0
    status = np.zeros((1, X.size, 3), dtype=np.int8)
    status[0, 0, 2] = STATUS["timeout"]
    for key in full:
        full[key][0, 0, 2] = np.nan
    return write_table(path, [0.15], list(X), [0, 1, 2], full, status, {"n_large": 40, "method": "x"})


def test_report_writes_numbers_claims_and_figures(tmp_path):
    from granular.diagram_report import diagram_report
    from jamcommon.files import OutputExistsError
    from jamwave.cli import main

    table = _write_synthetic_table(tmp_path / "diagram.h5", np.random.default_rng(5))
    assert read_diagram(table)["status"][0, 0, 2] == STATUS["timeout"]
    result = diagram_report(table, tmp_path / "report", n_boot=300)
    assert result["costs"]["points_timeout"] == 1 and result["settings"]["n_large"] == 40
    stored = json.loads((tmp_path / "report" / "report.json").read_text())
    assert abs(stored["estimates"]["x_star_lines"]["value"] - X_TRUE) < 0.02
    text = (tmp_path / "report" / "claims.md").read_text()
    assert "| claim | ours | paper | verdict | criterion |" in text and "(d3)" in text
    for name in ("lines.png", "moduli.png", "partial_moduli.png"):
        assert (tmp_path / "report" / name).read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(OutputExistsError):
        diagram_report(table, tmp_path / "report", n_boot=300)
    assert main(["granular", "diagram-report", str(table), "--out", str(tmp_path / "r2"), "--n-boot",
                 "200"]) == 0
    with pytest.raises(SystemExit) as exc:
        main(["granular", "diagram-report", str(table), "--out", str(tmp_path / "r3"), "--n-boot", "5"])
    assert exc.value.code == 2
    with pytest.raises(ValueError, match="delta = 0.3 is not in the table"):
        diagram_report(table, tmp_path / "r4", delta=0.3)


def test_tiny_real_diagram_through_the_cli(tmp_path, capsys):
    """A real sweep (2 X_S x 2 seeds, 14 large spheres), resumed, then reported, all by the CLI."""
    from granular.diagram import point_name
    from granular.h5md import read_group, read_parameters
    from jamwave.cli import main

    out = tmp_path / "diag"
    base = ["granular", "diagram", "--delta", "0.5", "--xs", "0.2,0.3", "--seeds", "2", "--n-large", "14",
            "--follow-step", "0.005", "--follow-range", "0.05", "--modulus-method", "linear_response",
            "--workers", "1", "--out", str(out)]
    assert main(base) == 0
    t = read_diagram(out / "diagram.h5")
    assert np.all(t["status"] == STATUS["done"]) and np.all(np.isfinite(t["phi_J"]))
    assert np.all(t["wall_s"] > 0) and np.all(t["jam_fire_steps"] > 0)
    for key in ("K_star", "jammed_fraction_small", "jammed_fraction_large", "jammed_fraction_large_excess"):
        assert np.all(np.isfinite(t[key])), key
    for x in (0.2, 0.3):
        for s in (0, 1):
            path = out / point_name(0.5, x, s)
            results, params = read_group(path, "results"), read_parameters(path)
            # the second line is measured just above phi_J_second, or shares the first line's values
            if params["second_transition_result"] == "coincident":
                assert results["second_K_star"] == read_group(path, "modulus")["K_star"]
            elif params["second_transition_result"] == "crossing":
                assert results["second_phi"] >= results["phi_J_second"] + 0.005 - 1e-9
                assert read_group(path, "modulus_second")["K_star"] == results["second_K_star"]
            assert read_group(path, "timing")["total_s"] > 0
    stamp = (out / "diagram.h5").stat().st_mtime_ns
    assert main(base) == 0  # resume: nothing left to run, table rebuilt
    assert (out / "diagram.h5").stat().st_mtime_ns >= stamp
    capsys.readouterr()
    assert main(["granular", "diagram-report", str(out / "diagram.h5"), "--out", str(tmp_path / "rep"),
                 "--n-boot", "200"]) == 0
    assert "| (b1) X*_S |" in capsys.readouterr().out
    report = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert report["costs"]["points_done"] == 4 and report["settings"]["n_large"] == 14


def test_time_limit_records_a_failure_and_resume_respects_it(tmp_path):
    from granular.diagram import DiagramSettings, jamming_diagram, point_name, read_failure

    settings = DiagramSettings(n_large=14, follow_step=0.005, follow_range=0.05,
                               modulus_method="linear_response")
    with pytest.raises(RuntimeError, match="time limit"):
        jamming_diagram([0.5], [0.2], [0], tmp_path, settings, workers=1, time_limit=0.2)
    record = read_failure(tmp_path / point_name(0.5, 0.2, 0))
    assert record["kind"] == "timeout" and record["time_limit"] == 0.2
    assert not (tmp_path / point_name(0.5, 0.2, 0)).exists()
    assert read_diagram(tmp_path / "diagram.h5")["status"][0, 0, 0] == STATUS["timeout"]
    # the same cap does not retry it (no error raised: nothing ran); a larger cap does
    jamming_diagram([0.5], [0.2], [0], tmp_path, settings, workers=1, time_limit=0.2)
    jamming_diagram([0.5], [0.2], [0], tmp_path, settings, workers=1, time_limit=600)
    assert read_diagram(tmp_path / "diagram.h5")["status"][0, 0, 0] == STATUS["done"]
    assert read_failure(tmp_path / point_name(0.5, 0.2, 0)) is None  # no stale record
    with pytest.raises(ValueError, match="time_limit"):
        jamming_diagram([0.5], [0.2], [0], tmp_path, settings, time_limit=-1)
