"""The demo summary's rows beside committed benchmark results, and its words on agreement (no demo
run needed: the rows are built from the committed files and from synthetic inputs)."""

from __future__ import annotations

import json
import math

import pytest

from jamwave import demo_references, demo_summary
from jamwave.demo_references import RESULTS


def test_committed_values_are_read_from_the_result_files():
    rows = json.loads((RESULTS / demo_references.JAMMING_FILE).read_text())["rows"]
    mix = [r["phi_J"] for r in rows if r["system"] == "mix14_N2000" and r["method"] == "bisection"
           and r["status"] == "finished"]
    bench = demo_references.jamming_benchmark()["mix14_N2000"]["bisection"]
    assert bench["mean"] == pytest.approx(sum(mix) / len(mix)) and bench["seeds"] == len(mix)
    report = json.loads((RESULTS / demo_references.DIAGRAM_FILE).read_text())
    assert demo_references.reduced_diagram()["x_star_lines"] == report["estimates"]["x_star_lines"]
    study = demo_references.pruning_study("global", "cp-aware")
    assert study["sap"]["scope"] == "global" and study["sap"]["magnitude"] == "cp-aware"
    assert 0 < study["sap"]["best_fraction_mean"] < 1 and study["tolerance"] == 1.1


def test_missing_files_leave_the_rows_out(tmp_path, monkeypatch):
    assert demo_references.jamming_benchmark(tmp_path) is None
    assert demo_references.reduced_diagram(tmp_path) is None
    assert demo_references.pruning_study(root=tmp_path) is None
    monkeypatch.setattr(demo_summary, "reduced_diagram", lambda: None)
    monkeypatch.setattr(demo_summary, "pruning_study", lambda: None)
    assert demo_summary._committed_diagram_rows() == [] and demo_summary._committed_pruning_rows() == []


def test_committed_rows_carry_the_file_numbers_and_a_computed_word(monkeypatch):
    x_row, k_row = demo_summary._committed_diagram_rows()
    diagram = demo_references.reduced_diagram()
    assert x_row["this run"] == diagram["x_star_lines"]["value"] and x_row["reference"] == 0.21
    wide = diagram["x_star_lines"]["half_width"] > demo_summary.X_STAR_RESOLVED
    assert ("not resolved" in x_row["agreement"]) == wide
    assert k_row["this run"] == diagram["k_jump"]["value"]
    narrow = dict(diagram, x_star_lines={"value": 0.2, "low": 0.19, "high": 0.22, "half_width": 0.015},
                  k_jump={"value": 5.0, "low": 3.0, "high": 8.0})
    monkeypatch.setattr(demo_summary, "reduced_diagram", lambda: narrow)
    x_row, k_row = demo_summary._committed_diagram_rows()
    assert x_row["agreement"].startswith("agrees") and k_row["agreement"].startswith("jump seen")
    narrow["x_star_lines"] = {"value": 0.3, "low": 0.28, "high": 0.32, "half_width": 0.02}
    assert demo_summary._committed_diagram_rows()[0]["agreement"].startswith("differs")


def _run(fraction: float, reached: bool, iterations: int = 5) -> dict:
    return {"best_fraction": fraction, "reached_limit": reached, "iterations_done": iterations}


@pytest.mark.parametrize(("sap", "lt", "start"), [
    (_run(0.2, True), _run(0.4, True), "SAP prunes further, as Diao"),
    (_run(0.2, False), _run(0.4, True), "SAP prunes further, as Diao"),  # SAP could only go further
    (_run(0.5, True), _run(0.4, True), "the lottery ticket prunes further, contrary"),
    (_run(0.5, False, 30), _run(0.4, True), "not resolved, so far the lottery ticket"),
    (_run(0.2, True), _run(0.4, False, 3), "not resolved, so far SAP"),
])
def test_claim_word_says_whether_the_runs_settle_it(sap, lt, start):
    word = demo_summary._claim_word(sap, lt)
    assert word.startswith(start), word


def test_phi_j_rows_set_the_committed_benchmark_beside_the_published_value():
    bench = demo_references.jamming_benchmark()
    text = demo_summary._benchmark_text(bench, "mix14_N2000")
    assert f"{bench['mix14_N2000']['lammps']['mean']:.4f}" in text and "LAMMPS" in text
    assert demo_summary._benchmark_text(None, "mix14_N2000") == ""
    packings = demo_summary.Packings({}, {})
    (mono,) = demo_summary._jamming_rows(packings)
    assert mono["this run"] == bench["mono_N1000"]["bisection"]["mean"]
    assert mono["reference"] == demo_summary.OHERN_PHI_J_MONO and "not run by the demo" in mono["quantity"]
    assert math.isfinite(mono["this run"]) and mono["agreement"].startswith(("agrees", "differs"))
