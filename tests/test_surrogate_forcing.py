"""Forcing channel, strides, U-Net / FNO peers, early stopping and per-frame rollout errors."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch

from surrogate import costs
from surrogate.data import WaveWindows, load_trajectories, read_info
from surrogate.evaluate import rollout, rollout_metrics
from surrogate.io import load, save
from surrogate.models import UNetSurrogate, build_model
from surrogate.stopping import EarlyStopping
from surrogate.train import fit
from tests.surrogate_wavefile import write_wave_file


@pytest.fixture(scope="module")
def ricker_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("ricker")
    train = write_wave_file(d / "train.h5", samples=6, frames=24, n=16, save_every=4, seed=1, source="ricker")
    val = write_wave_file(d / "val.h5", samples=3, frames=24, n=16, save_every=4, seed=2, source="ricker")
    return train, val


def test_windows_carry_the_forcing_of_each_step(ricker_files):
    train, _ = ricker_files
    assert read_info(train).has_forcing
    with h5py.File(train) as f:
        u, ff = f["fields/u"][:], f["fields/f"][:]
    for preload in (False, True):
        ds = WaveWindows(train, steps=3, forcing=True, preload=preload)
        x, y = ds[ds.windows_per_sample + 5]  # sample 1, window n = 6
        assert x.shape == (6, 16, 16) and y.shape == (3, 16, 16)
        np.testing.assert_array_equal(x[1].numpy(), u[1, 6])
        np.testing.assert_array_equal(x[3:].numpy(), ff[1, 6:9])  # f^n .. f^{n+steps-1}
    plain = WaveWindows(train)
    assert plain[0][0].shape[0] == 3
    u2, c2, f2 = load_trajectories(train, samples=[1], with_forcing=True)
    np.testing.assert_array_equal(f2[0], ff[1])


def test_forcing_requested_on_a_file_without_it(tmp_path):
    path = write_wave_file(tmp_path / "p.h5", samples=1, frames=5, n=8)
    assert not read_info(path).has_forcing
    with pytest.raises(ValueError, match="no forcing"):
        WaveWindows(path, forcing=True)
    assert load_trajectories(path, with_forcing=True)[2] is None
    with pytest.raises(ValueError, match="forcing"):
        rollout(build_model("dense", width=4, depth=0, forcing=True), path, 2)


def test_forcing_model_is_leapfrog_when_the_network_is_zero():
    # The forcing is an input only (wrapper 2); old files (wrapper 1) added it to the extrapolation.
    for wrapper, with_f in ((2, 0.0), (1, 1.0)):
        model = build_model("dense", width=4, depth=1, forcing=True, seed=0, wrapper=wrapper)
        with torch.no_grad():
            model.proj.weight.zero_()
            model.proj.bias.zero_()
        x = torch.randn(2, 4, 9, 11)
        torch.testing.assert_close(model(x)[:, 0], 2 * x[:, 1] - x[:, 0] + with_f * x[:, 3])
    assert model.lift.in_channels == 4
    with pytest.raises(ValueError, match=r"\(N, 4, ny, nx\)"):
        model(x[:, :3])


def test_forcing_channel_makes_ricker_data_learnable(ricker_files):
    train, val = ricker_files
    errors = {}
    for forcing in (False, True):
        model = build_model("dense", width=8, depth=1, kernel_size=3, seed=0, forcing=forcing)
        fit(model, train, val, epochs=4, lr=3e-3, batch_size=16, seed=0, val_horizon=14, val_start=8)
        metrics = rollout_metrics(rollout(model, val, 14, start=8))
        errors[forcing] = metrics["nrmse"]
    # Without the source term the model cannot know where and when the source fires.
    assert errors[True] < 0.5 * errors[False], errors


def test_per_frame_errors_over_22_frames(ricker_files):
    _, val = ricker_files
    model = build_model("cp", 2, width=4, depth=1, kernel_size=3, seed=0, forcing=True)
    result = rollout(model, val, 22)
    m = rollout_metrics(result)
    assert m["horizon"] == 22 and len(m["rel_l2_per_step"]) == 22 and len(m["vrmse_per_step"]) == 22
    err = result.pred.astype(np.float64) - result.true
    true = result.true.astype(np.float64)
    rel = np.linalg.norm(err.reshape(3, 22, -1), axis=2) / np.linalg.norm(true.reshape(3, 22, -1), axis=2)
    np.testing.assert_allclose(m["rel_l2_per_step"], rel.mean(axis=0), rtol=1e-9)
    std = true.reshape(3, -1).std(axis=1)
    vr = np.sqrt((err**2).mean(axis=(2, 3))) / std[:, None]
    np.testing.assert_allclose(m["vrmse_per_step"], vr.mean(axis=0), rtol=1e-9)
    assert m["rel_l2_final"] == m["rel_l2_per_step"][-1]
    later = rollout(model, val, 5, start=8)
    u = load_trajectories(val)[0]
    np.testing.assert_array_equal(later.context, u[:, 8:10])
    np.testing.assert_array_equal(later.true, u[:, 10:15])
    with pytest.raises(ValueError, match="horizon"):
        rollout(model, val, 15, start=8)


@pytest.mark.parametrize("k", [1, 8, 16])
def test_stride_windows_skip_k_solver_steps(tmp_path, k):
    fine = write_wave_file(tmp_path / "fine.h5", samples=1, frames=2 * 16 + 1, n=12, save_every=1, seed=4)
    strided = write_wave_file(tmp_path / f"k{k}.h5", samples=1, frames=3, n=12, save_every=k, seed=4)
    info_f, info_k = read_info(fine), read_info(strided)
    assert info_k.save_every == k and info_k.frame_dt == pytest.approx(k * info_f.dt)
    x, y = WaveWindows(strided)[0]
    u = load_trajectories(fine)[0][0]
    np.testing.assert_allclose(x[1].numpy(), u[k], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(y[0].numpy(), u[2 * k], rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("shape", [(13, 17), (16, 16), (33, 33)])
def test_unet_shape_gradient_and_leapfrog(shape):
    model = build_model("unet", width=4, depth=2, seed=0, forcing=True)
    assert isinstance(model, UNetSurrogate) and model.config["conv"] == "unet"
    x = torch.randn(3, 4, *shape, requires_grad=True)
    out = model(x)
    assert out.shape == (3, 1, *shape)
    out.square().mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
    with torch.no_grad():
        model.proj.weight.zero_()
        model.proj.bias.zero_()
    torch.testing.assert_close(model(x)[:, 0], 2 * x[:, 1] - x[:, 0])
    with pytest.raises(ValueError, match="depth"):
        build_model("unet", width=4, depth=0)


def test_peer_models_save_and_load(tmp_path):
    model = build_model("unet", width=4, depth=1, seed=3, forcing=True)
    path = save(model, tmp_path / "u.pt")
    again = load(path)
    x = torch.randn(1, 4, 10, 10)
    torch.testing.assert_close(again(x), model(x))
    assert again.config == model.config and again.forcing


def test_fno_peer():
    pytest.importorskip("neuralop")
    model = build_model("fno", width=8, depth=2, modes=4, seed=0, forcing=False)
    x = torch.randn(2, 3, 17, 17)
    assert model(x).shape == (2, 1, 17, 17)
    complex_params = [p for p in model.parameters() if p.is_complex()]
    assert complex_params
    real = sum(p.numel() * (2 if p.is_complex() else 1) for p in model.parameters())
    assert costs.count_parameters(model) == real
    assert costs.fft_multiply_adds(model, 17, 17) > 0


def test_early_stopping_logic():
    stop = EarlyStopping(patience=2, min_delta=0.1)
    assert stop.update(0, float("nan")) is False and stop.bad_epochs == 1  # non-finite never improves
    assert stop.update(1, 1.0) and stop.best_epoch == 1 and stop.bad_epochs == 0
    assert not stop.update(2, 0.95)  # less than 10 % better: no improvement
    assert not stop.stop
    assert stop.update(3, 0.85) and stop.best == 0.85
    assert not stop.update(4, 0.9) and not stop.update(5, 0.8)
    assert stop.stop and stop.best_epoch == 3
    assert EarlyStopping.from_state(stop.state()) == stop
    with pytest.raises(ValueError, match="patience"):
        EarlyStopping(patience=0)
    with pytest.raises(ValueError, match="min_delta"):
        EarlyStopping(patience=1, min_delta=1.0)
    late = EarlyStopping(patience=1, min_epochs=4)
    for epoch, metric in enumerate([1.0, 2.0, 3.0]):
        late.update(epoch, metric)
    assert late.bad_epochs == 2 and not late.stop  # three epochs seen, four required
    late.update(3, 4.0)
    assert late.stop and late.best_epoch == 0
    with pytest.raises(ValueError, match="min_epochs"):
        EarlyStopping(min_epochs=-1)


def test_fit_stops_at_patience_and_keeps_best(ricker_files):
    train, val = ricker_files
    model = build_model("dense", width=4, depth=0, kernel_size=3, seed=0, forcing=True)
    history = fit(model, train, val, epochs=30, lr=1e-9, patience=2, min_delta=0.5, seed=0,
                  val_horizon=4, windows_per_epoch=8)
    # lr 1e-9 cannot improve the metric by 50 %: epoch 0 is best, stop after 2 more.
    assert history["best_epoch"] == 0 and len(history["epoch"]) == 3 and history["stopped_early"]
    model = build_model("dense", width=4, depth=0, kernel_size=3, seed=0, forcing=True)
    history = fit(model, train, val, epochs=30, lr=1e-9, patience=2, min_delta=0.5, seed=0,
                  val_horizon=4, windows_per_epoch=8, min_epochs=5)
    assert len(history["epoch"]) == 5 and history["stopped_early"]


def test_fno_saves_tensors_only(tmp_path):
    pytest.importorskip("neuralop")
    model = build_model("fno", width=4, depth=1, modes=3, seed=1, forcing=True)
    assert "_metadata" not in model.state_dict()
    again = load(save(model, tmp_path / "fno.pt"))
    x = torch.randn(1, 4, 12, 12)
    torch.testing.assert_close(again(x), model(x))


def test_inference_activation_bytes_counts_live_intermediates():
    # Two 1 x 1 convolutions 3 -> 8 -> 8 on 10 x 10: at the second one both 8-channel maps are alive.
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 1), torch.nn.Conv2d(8, 8, 1))
    got = costs.inference_activation_bytes(model, 10, 10)
    assert got == 2 * 8 * 10 * 10 * 4


@pytest.mark.slow  # the CLI path end to end (imports, training, plot): 90 s on the loaded 2-core machine
def test_cli_trains_a_forcing_unet_and_reports_per_frame_errors(ricker_files, tmp_path, capsys):
    import json

    from jamwave.cli import main

    train, val = ricker_files
    out = tmp_path / "unet.pt"
    assert main(["surrogate", "train", "--data", train, "--val", val, "--out", str(out), "--conv", "unet",
                 "--width", "4", "--depth", "1", "--epochs", "1"]) == 0
    assert load(out).forcing  # auto: the training file has /fields/f
    metrics = tmp_path / "m.json"
    assert main(["surrogate", "evaluate", "--model", str(out), "--data", val, "--out", str(metrics),
                 "--horizon", "20", "--repeats", "1"]) == 0
    printed = capsys.readouterr().out
    assert "per predicted frame (1..20)" in printed
    assert len(json.loads(metrics.read_text())["rel_l2_per_step"]) == 20


def test_cli_trains_the_stable_configuration(ricker_files, tmp_path):
    """``jamwave surrogate train`` exposes the surrogate study's configuration (gated body, Dirichlet
    walls, reversible form, cosine schedule), as the demo's rerun commands use it."""
    from jamwave.cli import main

    train, val = ricker_files
    out = tmp_path / "gated.pt"
    assert main(["surrogate", "train", "--data", train, "--val", val, "--out", str(out), "--width", "4",
                 "--depth", "1", "--epochs", "2", "--body", "gated", "--boundary", "dirichlet",
                 "--reversible", "--schedule", "cosine", "--val-horizon", "4"]) == 0
    config = load(out).config
    assert (config["body"], config["boundary"], config["reversible"]) == ("gated", "dirichlet", True)
    with pytest.raises(SystemExit):
        main(["surrogate", "train", "--data", train, "--val", val, "--out", str(tmp_path / "x.pt"),
              "--body", "relu"])
