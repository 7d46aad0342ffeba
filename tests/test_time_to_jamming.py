"""benchmarks/time_to_jamming.py: counted force evaluations, the wall-time cap, the summary."""

from __future__ import annotations

import argparse
import math

import pytest

import benchmarks.time_to_jamming as ttj

pytestmark = pytest.mark.usefixtures("one_numba_thread")


@pytest.fixture
def tiny(monkeypatch):
    monkeypatch.setitem(ttj.SYSTEMS, "tiny", {"delta": 1.0, "x_small": 0.0, "n": 60})
    monkeypatch.setitem(ttj.SYSTEMS, "big", {"delta": 1.0, "x_small": 0.0, "n": 1000})
    return "tiny"


@pytest.mark.parametrize("method", ["ladder", "enthalpy-compress"])
def test_a_finished_run_counts_every_force_evaluation(tiny, method):
    row = ttj.run_one(tiny, method, 0, minimizer="fire", threads=1, cap=300)
    assert row["status"] == "finished"
    assert 0.55 < row["phi_J"] < 0.70
    assert row["phi_J_low"] <= row["phi_J"] <= row["phi_J_high"]
    # the counter wraps every FIRE call: it equals the steps of the protocol's history plus the
    # few steps of the measurements after it (none here)
    assert row["force_evaluations"] == row["history_steps"] > 0
    assert row["relaxations"] >= 3 and row["cpu_s"] > 0


def test_a_run_past_the_cap_is_recorded_unfinished(tiny):
    row = ttj.run_one("big", "bisection", 0, minimizer="fire", threads=1, cap=1.0)
    assert row["status"] == "not finished in 1 s"
    assert "phi_J" not in row and row["wall_s"] >= 1.0


def test_lammps_is_skipped_without_lmp(tiny, monkeypatch):
    monkeypatch.setattr(ttj.shutil, "which", lambda name: None)
    assert ttj.run_one(tiny, "lammps", 0, minimizer="fire", threads=1, cap=10)["status"].startswith("skipped")


def test_summary_means_and_standard_error():
    rows = [{"system": "s", "method": "m", "minimizer": "fire", "status": "finished", "phi_J": v,
             "wall_s": 1.0, "cpu_s": 1.0, "force_evaluations": 10, "relaxations": 2, "Z_backbone": 6.0}
            for v in (0.64, 0.65, 0.66)]
    rows.append({"system": "s", "method": "m", "minimizer": "fire", "status": "not finished in 5 s",
                 "force_evaluations": 99})
    (row,) = ttj.summarise(rows)
    assert row["finished"] == "3/4" and row["phi_J"] == pytest.approx(0.65)
    assert row["phi_J_sem"] == pytest.approx(0.01 / math.sqrt(3))
    assert "not finished in 5 s" in row["note"] and ">= 99" in row["note"]


def test_bad_names_and_minimizer_are_refused():
    with pytest.raises(argparse.ArgumentTypeError, match="--methods"):
        ttj._names("bisection,shake", ttj.METHODS, "--methods")
    with pytest.raises(argparse.ArgumentTypeError, match="seeds"):
        ttj._seeds("0,-1")
    with pytest.raises(ValueError, match="minimizer"):
        ttj.minimizer_kwargs("cg")
    assert ttj.minimizer_kwargs("lbfgs") == {"minimizer": "lbfgs"}
