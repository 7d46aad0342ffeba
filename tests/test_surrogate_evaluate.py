"""Rollout scoring on predicted frames only, metric definitions, costs, and the CLI."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from surrogate_wavefile import write_wave_file

from jamwave.cli import main
from surrogate.costs import count_parameters, multiply_adds, train_activation_bytes
from surrogate.evaluate import Rollout, rollout, rollout_metrics
from surrogate.models import build_model


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval")
    return {
        "exact": write_wave_file(root / "exact.h5", samples=2, frames=9, n=14, save_every=1, seed=5),
        "train": write_wave_file(root / "train.h5", samples=4, frames=8, n=12, seed=1),
        "val": write_wave_file(root / "val.h5", samples=2, frames=8, n=12, seed=2),
        "root": root,
    }


class FiniteDifferenceStep(torch.nn.Module):
    """The fixture's own solver step (save_every = 1): an exact surrogate."""

    def __init__(self, dt, h):
        super().__init__()
        self.r2 = (dt / h) ** 2

    def forward(self, x):
        prev, u, c = x[:, 0:1].double(), x[:, 1:2].double(), x[:, 2:3].double()
        stencil = torch.tensor([[0, 1, 0], [1, -4, 1], [0, 1, 0]], dtype=torch.float64).reshape(1, 1, 3, 3)
        lap = F.pad(F.conv2d(u, stencil)[..., :, :], (1, 1, 1, 1))
        return (2 * u - prev + self.r2 * c**2 * lap).float()


def test_an_exact_model_scores_zero_on_predicted_frames(files):
    import h5py

    with h5py.File(files["exact"]) as f:
        dt, h, u = f.attrs["dt"], f.attrs["h"], f["fields/u"][:]
    result = rollout(FiniteDifferenceStep(dt, h), files["exact"])
    assert result.pred.shape == (2, 7, 14, 14) and result.context.shape == (2, 2, 14, 14)
    np.testing.assert_array_equal(result.true, u[:, 2:])
    m = rollout_metrics(result)
    assert m["horizon"] == 7 and len(m["rel_l2_per_step"]) == 7
    assert m["nrmse"] < 1e-5 and m["max_error_rel"] < 1e-5
    assert abs(m["energy_drift"] - m["energy_drift_true"]) < 1e-4
    # A model that copies u^n is scored on the frames it predicted: errors grow from the first one.
    class Copy(torch.nn.Module):
        def forward(self, x):
            return x[:, 1:2]

    lazy = rollout_metrics(rollout(Copy(), files["exact"], horizon=3))
    assert lazy["horizon"] == 3 and 0 < lazy["rel_l2_per_step"][0] < lazy["rel_l2_per_step"][-1]
    with pytest.raises(ValueError, match="horizon"):
        rollout(Copy(), files["exact"], horizon=8)


def test_metric_definitions_on_a_scaled_prediction():
    rng = np.random.default_rng(0)
    true = rng.standard_normal((3, 4, 10, 12)).astype(np.float32)
    eps = 0.05
    ones = np.ones((3, 10, 12), np.float32)
    result = Rollout(pred=true * (1 + eps), true=true, context=true[:, :2], c=ones)
    m = rollout_metrics(result)
    np.testing.assert_allclose(m["rel_l2_per_step"], eps, rtol=1e-5)
    assert m["nrmse"] == pytest.approx(eps, rel=1e-5)
    t64 = true.astype(np.float64)
    rms, std = np.sqrt(np.mean(t64**2, axis=(1, 2, 3))), t64.reshape(3, -1).std(axis=1)
    assert m["vrmse"] == pytest.approx(np.mean(eps * rms / std), rel=1e-5)
    assert m["max_error"] == pytest.approx(eps * np.abs(t64).max(), rel=1e-5)
    one = rollout_metrics(Rollout(result.pred[:1], true[:1], true[:1, :2], result.c[:1]))
    bands = np.array([one["band_low"], one["band_mid"], one["band_high"]])
    assert np.sqrt(np.sum(bands**2)) == pytest.approx(eps, rel=1e-4)  # Parseval, per sample
    assert math.isnan(m["energy_drift"])  # no h or frame interval given


def test_band_errors_separate_wavenumbers():
    y, x = np.mgrid[0:32, 0:32]
    true = np.cos(2 * np.pi * 2 * x / 32)[None, None].astype(np.float32)
    smooth = np.cos(2 * np.pi * 1 * y / 32)[None, None].astype(np.float32) * 0.1
    rough = np.cos(2 * np.pi * 14 * x / 32)[None, None].astype(np.float32) * 0.1
    ones = np.ones((1, 32, 32), np.float32)
    low = rollout_metrics(Rollout(true + smooth, true, true.repeat(2, 1), ones))
    high = rollout_metrics(Rollout(true + rough, true, true.repeat(2, 1), ones))
    assert low["band_low"] == pytest.approx(0.1, rel=1e-4) and low["band_high"] < 1e-6
    assert high["band_high"] == pytest.approx(0.1, rel=1e-4) and high["band_low"] < 1e-6


def test_costs_count_what_they_claim():
    w, k, ny, nx = 8, 5, 16, 12
    pixels = ny * nx
    dense = build_model("dense", width=w, depth=1, kernel_size=k, seed=0)
    assert multiply_adds(dense, ny, nx) == pixels * (3 * w * k * k + 2 * w * w * k * k + w)
    cp = build_model("cp", 2, width=w, depth=1, kernel_size=k, seed=0)
    per = lambda c: w * 2 * (c + 2 * k)  # noqa: E731 - 1x1 to F R channels, two depthwise one-way filters
    assert multiply_adds(cp, ny, nx) == pixels * (per(3) + 2 * per(w) + w)
    assert count_parameters(cp) < count_parameters(dense)
    small, big = train_activation_bytes(dense, 2, ny, nx), train_activation_bytes(dense, 4, ny, nx)
    assert small > 0 and big == 2 * small


def test_cli_train_and_evaluate(files, capsys):
    root = files["root"]
    model, metrics = root / "cp.pt", root / "metrics.json"
    args = ["surrogate", "train", "--data", files["train"], "--val", files["val"], "--out", str(model),
            "--conv", "cp", "--rank", "2", "--width", "6", "--depth", "1", "--epochs", "2", "--seed", "1"]
    assert main(args) == 0
    assert model.is_file()
    assert main(args) == 2  # exists, no --force
    assert "--force" in capsys.readouterr().err
    assert main(["surrogate", "evaluate", "--model", str(model), "--data", files["val"], "--horizon", "4",
                 "--out", str(metrics), "--repeats", "2"]) == 0
    data = json.loads(metrics.read_text())
    assert data["horizon"] == 4 and data["config"]["conv"] == "cp"
    for key in ("nrmse", "vrmse", "band_low", "max_error", "energy_drift", "parameters",
                "macs_per_frame", "train_activation_bytes", "seconds_per_frame"):
        assert math.isfinite(data[key]), key
    assert metrics.with_suffix(".png").stat().st_size > 1000
    # Bad input: a CP model without a rank, a file of another schema, a horizon out of range.
    other = write_wave_file(root / "other.h5", samples=1, frames=4, n=8, schema="x/1")
    assert main(["surrogate", "train", "--data", files["train"], "--val", files["val"], "--out",
                 str(root / "x.pt"), "--conv", "cp"]) == 2
    assert main(["surrogate", "evaluate", "--model", str(model), "--data", other, "--out",
                 str(root / "o.json")]) == 2
    assert main(["surrogate", "evaluate", "--model", str(model), "--data", files["val"], "--horizon", "50",
                 "--out", str(root / "h.json")]) == 2
    err = capsys.readouterr().err
    assert "rank" in err and "schema" in err and "horizon" in err
