"""The benchmark harness times, tabulates and writes JSON."""

from __future__ import annotations

import json

from benchmarks.harness import Report, measure, print_table, write_results


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
