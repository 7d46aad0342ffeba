"""The end-to-end demo at its smoke-test size: every stage runs, the report's numbers are finite,
the files are well-formed, and a rerun resumes without recomputing."""

from __future__ import annotations

import json
import math
import re

import h5py
import pytest

from jamwave.cli import main


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    assert main(["demo", "--out", str(out), "--size", "tiny", "--workers", "2"]) == 0
    return out


def test_report_numbers_are_finite(demo_dir):
    text = (demo_dir / "report.md").read_text()
    for title in ("Packings", "Granular media", "Wave datasets", "surrogates", "Pruning"):
        assert title in text
    assert (demo_dir / "report.html").read_text().startswith("<!DOCTYPE html>")
    # Every table cell of the stage tables that holds a number must be finite.
    cells = re.findall(r"\| ([^|\n]+) ", text)
    numbers = [c.strip() for c in cells if re.fullmatch(r"-?[0-9.]+(e[-+][0-9]+)?|nan|inf", c.strip())]
    assert numbers, "the report has no numeric cells"
    bad = [c for c in numbers if not math.isfinite(float(c))]
    # phi_J second may legitimately be NaN when the second transition is not reached; nothing else.
    assert len(bad) <= 2, f"non-finite numbers in the report: {bad}"
    for figure in re.findall(r"!\[[^]]*\]\(([^)]+)\)", text):
        assert (demo_dir / figure).stat().st_size > 1000, figure


def test_stage_files_are_well_formed(demo_dir):
    packings = sorted((demo_dir / "packings").glob("point_*.h5"))
    assert len(packings) == 2
    for path in packings:
        with h5py.File(path, "r") as f:
            assert "h5md" in f and "particles/all/position" in f
            assert f["jamwave/modulus/K_star"][()] > 0
            assert 0.5 < f["jamwave/results/phi_J"][()] < 0.75
    for split in ("train", "val", "test"):
        with h5py.File(demo_dir / "waves" / f"{split}.h5", "r") as f:
            assert f.attrs["schema"] == "jamwave.wave2d/1"
            u = f["fields/u"]
            assert u.ndim == 4 and u.dtype == "float32"
    for name in ("dense", "cp"):
        metrics = json.loads((demo_dir / "models" / f"{name}.json").read_text())
        assert math.isfinite(metrics["nrmse"]) and metrics["parameters"] > 0
    for method in ("sap", "lt"):
        history = json.loads((demo_dir / "pruning" / method / "history.json").read_text())
        fractions = [e["remaining_fraction"] for e in history["entries"]]
        assert fractions[0] == 1.0 and fractions[-1] < 1.0


def test_rerun_resumes_without_recomputing(demo_dir):
    # The stage outputs (not the combined diagram table, which is rebuilt from the point files).
    def stamps():
        paths = [*demo_dir.glob("packings/point_*.h5"), *demo_dir.glob("waves/*.h5"),
                 *demo_dir.glob("models/*.pt"), *demo_dir.glob("pruning/*/history.json")]
        return {p: p.stat().st_mtime_ns for p in paths}

    before = stamps()
    assert len(before) == 2 + 3 + 2 + 2
    assert main(["demo", "--out", str(demo_dir), "--size", "tiny", "--workers", "1"]) == 0
    assert stamps() == before
