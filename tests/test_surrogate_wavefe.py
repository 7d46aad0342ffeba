"""End to end on a real wavefe dataset: generate splits, train dense and CP from the CLI, evaluate."""

from __future__ import annotations

import json
import math

import pytest

from jamwave.cli import main


@pytest.mark.slow
def test_train_and_evaluate_on_a_wavefe_dataset(tmp_path):
    wavefe = pytest.importorskip("wavefe.dataset")
    paths = wavefe.generate_splits(tmp_path, {"train": 6, "val": 2, "test": 2}, seed=0, grid=16,
                                   n_frames=12, save_every=2, speed="layered", source="pulse",
                                   boundary="dirichlet", width=(0.08, 0.12), workers=1)
    results = {}
    for conv, extra in (("dense", []), ("cp", ["--rank", "1"])):
        model = tmp_path / f"{conv}.pt"
        assert main(["surrogate", "train", "--data", str(paths["train"]), "--val", str(paths["val"]),
                     "--out", str(model), "--conv", conv, *extra, "--width", "8", "--depth", "1",
                     "--epochs", "3", "--seed", "0"]) == 0
        out = tmp_path / f"{conv}.json"
        assert main(["surrogate", "evaluate", "--model", str(model), "--data", str(paths["test"]),
                     "--out", str(out), "--repeats", "2"]) == 0
        results[conv] = json.loads(out.read_text())
    for metrics in results.values():
        assert metrics["horizon"] == 10
        assert all(math.isfinite(metrics[k]) for k in ("nrmse", "vrmse", "energy_drift", "energy_drift_true"))
    assert results["cp"]["parameters"] < results["dense"]["parameters"] / 5
