"""The benchmark harness times, tabulates and writes JSON."""

from __future__ import annotations

import json

from benchmarks.harness import REPOSITORY_ROOT, Report, measure, print_table, write_results


def test_measure_and_write(tmp_path, capsys):
    calls = []
    timing = measure(lambda: calls.append(1), warmup=2, repeats=3)
    assert len(calls) == 5
    assert len(timing.times) == 3 and timing.median >= 0
    report = Report("unit")
    report.add(case="a", rate=1.5e7)
    text = print_table(report.rows)
    assert "1.500e+07" in text
    path = write_results(report, tmp_path)
    data = json.loads(path.read_text())
    assert data["rows"][0]["case"] == "a"
    assert data["machine"]["cores"] >= 1


def test_results_carry_no_machine_path(tmp_path):
    """Paths inside the repository (a run's settings, say) are written relative to its root."""
    inside = REPOSITORY_ROOT / "benchmarks" / "results" / "scratch" / "x"
    outside = str(tmp_path / "elsewhere")
    report = Report("paths")
    report.notes["settings"] = {"data_dir": str(inside), "list": [str(inside)], "other": outside}
    data = json.loads(write_results(report, tmp_path).read_text())
    settings = data["notes"]["settings"]
    assert settings["data_dir"] == "benchmarks/results/scratch/x"
    assert settings["list"] == ["benchmarks/results/scratch/x"]
    assert settings["other"] == outside
    assert str(REPOSITORY_ROOT) not in json.dumps(data)
