"""The end-to-end demo at its smoke-test size: every stage runs, the report's numbers are finite,
the files are well-formed, and a rerun resumes without recomputing."""

from __future__ import annotations

import json
import math
import re

import h5py
import pytest
from browser_check import check_page, chromium

from jamwave.cli import main
from jamwave.demo_sizes import SIZES


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    assert main(["demo", "--out", str(out), "--size", "tiny", "--workers", "2"]) == 0
    return out


def test_report_numbers_are_finite(demo_dir):
    text = (demo_dir / "report.md").read_text()
    for title in ("Summary", "Packings", "Granular media", "Wave datasets", "surrogates", "Pruning"):
        assert title in text
    assert (demo_dir / "report.html").read_text().startswith("<!DOCTYPE html>")
    # Every table cell of the stage tables that holds a number must be finite.
    cells = re.findall(r"\| ([^|\n]+) ", text)
    numbers = [c.strip() for c in cells if re.fullmatch(r"-?[0-9.]+(e[-+][0-9]+)?|nan|inf", c.strip())]
    assert numbers, "the report has no numeric cells"
    bad = [c for c in numbers if not math.isfinite(float(c))]
    # phi_J second and the modulus on it may legitimately be NaN when the second transition is not
    # reached (two cells per such point); nothing else.
    assert len(bad) <= 2 * 5, f"non-finite numbers in the report: {bad}"
    for figure in re.findall(r"!\[[^]]*\]\(([^)]+)\)", text):
        assert (demo_dir / figure).stat().st_size > 1000, figure


def test_stage_files_are_well_formed(demo_dir):
    packings = sorted((demo_dir / "packings").glob("*/point_*.h5"))
    assert len(packings) == 2 + 2 + 1  # media, asymmetric, reference
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
        history = json.loads((demo_dir / "pruning" / "cp" / method / "history.json").read_text())
        fractions = [e["remaining_fraction"] for e in history["entries"]]
        assert fractions[0] == 1.0 and fractions[-1] < 1.0


def test_rerun_resumes_without_recomputing(demo_dir):
    # The stage outputs (not the combined diagram table, which is rebuilt from the point files).
    def stamps():
        paths = [*demo_dir.glob("packings/*/point_*.h5"), *demo_dir.glob("waves/*.h5"),
                 *demo_dir.glob("models/*.pt"), *demo_dir.glob("pruning/*/*/history.json")]
        return {p: p.stat().st_mtime_ns for p in paths}

    before = stamps()
    assert len(before) == 5 + 3 + 2 + 2
    assert main(["demo", "--out", str(demo_dir), "--size", "tiny", "--workers", "1"]) == 0
    assert stamps() == before


def test_summary_sets_each_number_beside_its_reference(demo_dir):
    rows = json.loads((demo_dir / "summary.json").read_text())
    by_quantity = {row["quantity"]: row for row in rows}
    phi = next(r for q, r in by_quantity.items() if q.startswith("phi_J, 50:50"))
    assert 0.55 < phi["this run"] < 0.7 and phi["reference"] == 0.648
    assert phi["agreement"].startswith(("agrees", "differs by"))
    x_star = next(r for q, r in by_quantity.items() if q.startswith("X*_S"))
    assert x_star["reference"] == 0.21 and "Petit" in x_star["source"]
    cp = next(r for q, r in by_quantity.items() if q.startswith("CP compression"))
    dense = json.loads((demo_dir / "models" / "dense.json").read_text())
    cp_metrics = json.loads((demo_dir / "models" / "cp.json").read_text())
    assert cp["this run"] == pytest.approx(dense["parameters"] / cp_metrics["parameters"])
    assert cp["reference"] == dense["parameters"]
    sap = next(r for q, r in by_quantity.items() if "left by SAP" in q)
    lt = json.loads((demo_dir / "pruning" / "cp" / "lt" / "history.json").read_text())
    assert 0 < sap["this run"] <= 1 and sap["reference"] in [e["remaining_fraction"] for e in lt["entries"]]
    step = next(r for q, r in by_quantity.items() if "first step" in q)
    assert step["reference"] == pytest.approx(0.152787)
    # The report shows the summary first, with the numbers and the references.
    text = (demo_dir / "report.md").read_text()
    assert text.index("## Summary") < text.index("## Overview") < text.index("## 1.")
    summary = text[text.index("## Summary"):text.index("## Overview")]
    for needle in ("0.648", "0.21", "0.1528", f"{phi['this run']:.4g}"):
        assert needle in summary, needle


def test_pruning_continues_from_the_trained_model_and_draws_its_error(demo_dir):
    import torch

    import surrogate
    from surrogate.evaluate import evaluate

    summary = json.loads((demo_dir / "pruning" / "summary.json").read_text())["cp"]
    assert summary["reference_source"] == "models/cp.pt"
    trained = surrogate.load(demo_dir / "models" / "cp.pt")
    for method in ("sap", "lt"):
        history = json.loads((demo_dir / "pruning" / "cp" / method / "history.json").read_text())
        # Iteration 0 of each run is the trained model of section 4, not a second, retrained one.
        first = surrogate.load(demo_dir / "pruning" / "cp" / method / "iter_00.pt")
        for name, value in trained.state_dict().items():
            torch.testing.assert_close(first.state_dict().get(name, first.state_dict().get(f"{name}_orig")),
                                       value, rtol=0, atol=0)
        assert history["entries"][0]["val_nrmse"] == summary["reference_nrmse"]
    # The reference line is that model's validation error over the pruning horizon.
    tiny = SIZES["tiny"]
    metrics, _ = evaluate(trained, demo_dir / "waves" / "val.h5", tiny.horizon, with_costs=False,
                          start=tiny.start)
    assert metrics["nrmse"] == pytest.approx(summary["reference_nrmse"], rel=1e-6)
    assert "unpruned model" in (demo_dir / "report.md").read_text()


@pytest.mark.slow
@pytest.mark.skipif(chromium() is None, reason="chromium is not installed (Debian: apt-get install chromium)")
def test_report_renders_in_a_browser(demo_dir, tmp_path):
    shot = tmp_path / "report.png"
    result = check_page(demo_dir / "report.html", shot)
    figures = re.findall(r"!\[[^]]*\]\(([^)]+)\)", (demo_dir / "report.md").read_text())
    assert sorted(src for src, _, _ in result["images"]) == sorted(figures)
    assert all(loaded and width > 100 for _, loaded, width in result["images"]), result["images"]
    assert result["missing"] == [] and result["external"] == []
    import matplotlib.image

    pixels = matplotlib.image.imread(shot)
    assert pixels.shape[0] > 1000 and pixels.std() > 0.05  # a page with figures, not a blank one
