"""The surrogate study's pure parts: rank choice on validation, intervals, preset handling."""

from __future__ import annotations

import math

import pytest

from benchmarks import surrogate_study as study
from benchmarks.surrogate_compression import choose_ranks, parse_args


def _run(conv, rank, params, val, forcing=True):
    return {"conv": conv, "rank": rank, "parameters": params, "val_nrmse": val, "forcing": forcing}


def test_ranks_are_chosen_on_validation():
    sel = [_run("dense", None, 1000, 0.10), _run("dense", None, 990, 0.05, forcing=False),
           _run("cp", 1, 100, 0.30), _run("cp", 2, 180, 0.20), _run("cp", 4, 350, 0.12)]
    # best with >= 5x fewer parameters: rank 2 (rank 1 is worse); best overall: rank 4
    assert choose_ranks(sel) == [2, 4]
    sel[3]["val_nrmse"] = 0.11
    assert choose_ranks(sel) == [2]


def test_student_interval():
    m, lo, hi = study.interval([1.0, 2.0, 3.0])
    assert m == 2.0 and hi - m == pytest.approx(4.302653 * 1.0 / math.sqrt(3), rel=1e-5) and lo < m
    assert math.isnan(study.interval([1.0])[1])
    assert math.isnan(study.welch_p([1.0], [2.0, 3.0]))


def test_presets_and_overrides():
    a = parse_args(["--preset", "quick", "--epochs", "3"])
    assert a["epochs"] == 3 and a["grid"] == 32 and a["name"] == "surrogate_compression_quick"
    full = parse_args([])
    assert full["preset"] == "full" and full["grid"] >= 64 and 2 * full["train"] >= 200
    assert len(full["seeds"]) >= 5 and full["horizon"] >= 20
    assert parse_args(["--device", "cuda"])["preset"] == "gpu"
    with pytest.raises(SystemExit):
        parse_args(["--frames", "10"])
