"""Smoke test of the DEM throughput benchmark (slow: it relaxes two N = 4000 packings)."""

from __future__ import annotations

import json

import pytest


@pytest.mark.slow
def test_dem_throughput_runs_and_writes_json(tmp_path, monkeypatch):
    from benchmarks import dem_throughput, harness

    monkeypatch.setattr(harness, "RESULTS_DIR", tmp_path)
    assert dem_throughput.main(["--steps", "20", "--repeats", "1", "--threads", "1", "--no-large",
                                "--no-lammps", "--gpu-sizes", "4000"]) == 0
    rows = json.loads((tmp_path / "dem_throughput.json").read_text())["rows"]
    assert {r["case"] for r in rows} == {"d0.5_xs0.5", "d0.15_xs0.2"}
    assert all(r["rate_cpu"] > 0 and r["pressure"] > 0 for r in rows if r["code"] == "jamwave-cpu")
