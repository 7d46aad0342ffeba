"""Training: it learns, it is deterministic under a seed, it resumes, it stops early, it keeps masks."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from surrogate_wavefile import write_wave_file
from torch.nn.utils import prune

import surrogate
from surrogate.costs import count_parameters
from surrogate.evaluate import rollout, rollout_metrics
from surrogate.io import load, save
from surrogate.models import build_model
from surrogate.train import fit

SMALL = {"width": 6, "depth": 1, "kernel_size": 5}


@pytest.fixture(scope="module")
def splits(tmp_path_factory):
    root = tmp_path_factory.mktemp("splits")
    train = write_wave_file(root / "train.h5", samples=6, frames=10, n=16, seed=1)
    val = write_wave_file(root / "val.h5", samples=2, frames=10, n=16, seed=2)
    return train, val


def states_equal(a, b) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


class Leapfrog(torch.nn.Module):
    def forward(self, x):
        return 2 * x[:, 1:2] - x[:, 0:1]


def test_training_beats_the_leapfrog_extrapolation(splits):
    train, val = splits
    model = build_model("dense", width=8, depth=1, kernel_size=5, seed=0)
    history = fit(model, train, val, epochs=8, lr=3e-3, batch_size=8, seed=0)
    baseline = rollout_metrics(rollout(Leapfrog(), val))["nrmse"]
    assert history["best_val_nrmse"] < 0.7 * baseline
    assert history["train_loss"][-1] < history["train_loss"][0]
    # fit leaves the best epoch's weights in the model
    assert rollout_metrics(rollout(model, val))["nrmse"] == pytest.approx(history["best_val_nrmse"])
    assert model.normalisation is not None


def test_deterministic_under_a_seed(splits):
    train, val = splits
    runs = []
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    for seed in (3, 3, 4):
        model = build_model("cp", 2, seed=0, **SMALL)
        fit(model, train, val, epochs=2, batch_size=8, seed=seed, noise=0.01)
        runs.append(model)
    assert torch.equal(torch.rand(3), expected)  # the caller's generator is untouched
    assert states_equal(runs[0], runs[1])
    assert not states_equal(runs[0], runs[2])


def test_resume_from_checkpoint_matches_an_uninterrupted_run(splits, tmp_path):
    train, val = splits
    options = {"lr": 3e-3, "batch_size": 8, "seed": 0, "patience": 10}
    straight = build_model("cp", 2, seed=0, **SMALL)
    h_straight = fit(straight, train, val, epochs=4, **options)
    ckpt = tmp_path / "run.ckpt"
    first = build_model("cp", 2, seed=0, **SMALL)
    fit(first, train, val, epochs=2, checkpoint=ckpt, **options)
    assert ckpt.is_file()
    resumed = build_model("cp", 2, seed=99, **SMALL)  # other initial weights: the checkpoint wins
    h_resumed = fit(resumed, train, val, epochs=4, checkpoint=ckpt, **options)
    assert h_resumed["epoch"] == [0, 1, 2, 3]
    assert h_resumed["val_nrmse"] == h_straight["val_nrmse"]
    assert states_equal(straight, resumed)
    with pytest.raises(ValueError, match="another model"):
        fit(build_model("dense", **SMALL), train, val, epochs=5, checkpoint=ckpt)


def test_unrolled_and_noisy_training_is_deterministic_and_differs(splits):
    train, val = splits
    plain = build_model("dense", seed=0, **SMALL)
    fit(plain, train, val, epochs=1, batch_size=8, seed=0)
    runs = []
    for _ in range(2):
        model = build_model("dense", seed=0, **SMALL)
        history = fit(model, train, val, epochs=1, batch_size=8, seed=0, unroll=3, noise=0.05)
        runs.append(model)
    assert history["settings"]["unroll"] == 3 and history["settings"]["noise"] == 0.05
    assert states_equal(runs[0], runs[1])
    assert not states_equal(runs[0], plain)


def test_early_stopping_on_the_validation_rollout(splits):
    train, val = splits
    model = build_model("dense", seed=0, **SMALL)
    # A vanishing learning rate never improves the validation error after the first epoch.
    history = fit(model, train, val, epochs=10, lr=1e-30, batch_size=16, patience=2, seed=0)
    assert history["stopped_early"]
    assert len(history["epoch"]) == 3
    assert history["best_epoch"] == 0


def test_fit_on_a_pruned_model_keeps_pruned_weights_at_zero(splits):
    train, val = splits
    model = build_model("cp", 2, seed=0, **SMALL)
    layer = model.blocks[0].conv_a
    prune.l1_unstructured(layer, "channel", amount=0.5)
    prune.l1_unstructured(model.lift, "vertical", amount=0.4)
    mask = layer.channel_mask.clone()
    before = layer.channel_orig.detach().clone()
    alive = count_parameters(model)
    assert alive == count_parameters(model, alive_only=False) - int((mask == 0).sum()) - 2 * 6 * 2
    fit(model, train, val, epochs=2, batch_size=8, seed=0)
    assert torch.equal(layer.channel_mask, mask)
    assert torch.all(layer.channel[mask == 0] == 0)
    assert not torch.equal(layer.channel_orig[mask == 1], before[mask == 1])
    assert count_parameters(model) == alive


def test_save_and_load_round_trip(splits, tmp_path):
    train, val = splits
    model = build_model("cp-layer", 3, seed=0, **SMALL)
    fit(model, train, val, epochs=1, seed=0)
    prune.l1_unstructured(model.blocks[0].conv_b, "output", amount=0.3)
    path = save(model, tmp_path / "m.pt", extra={"note": "pruned"})
    with pytest.raises(FileExistsError, match="exists"):
        save(model, path)
    back = load(path)
    assert back.config == model.config and back.normalisation == model.normalisation
    assert back.history["val_nrmse"] == model.history["val_nrmse"]
    assert back.extra == {"note": "pruned"}
    assert hasattr(back.blocks[0].conv_b, "output_mask")
    x = torch.randn(2, 3, 16, 16)
    torch.testing.assert_close(back(x), model.eval()(x))
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(ValueError, match="not a readable"):
        load(tmp_path / "junk.pt")


def test_train_model_builds_fits_saves(splits, tmp_path):
    train, val = splits
    out = tmp_path / "dense.pt"
    model = surrogate.train_model(train, val, out, conv="dense", epochs=1, seed=0, **SMALL)
    assert out.is_file() and not (tmp_path / "dense.pt.ckpt").exists()
    assert math.isfinite(load(out).history["best_val_nrmse"])
    assert surrogate.fit is fit and surrogate.train.fit is fit  # surrogate.train is the module
    assert model.extra["train_data"] == str(train)


@pytest.mark.parametrize("kwargs,word", [({"epochs": 0}, "epochs"), ({"lr": -1.0}, "lr"),
                                         ({"batch_size": 2.5}, "batch_size"),
                                         ({"lr_factor": 1.0}, "lr_factor"),
                                         ({"unroll": 0}, "unroll"), ({"noise": -0.1}, "noise")])
def test_bad_fit_arguments(splits, kwargs, word):
    with pytest.raises(ValueError, match=word):
        fit(build_model(**SMALL), splits[0], splits[1], **kwargs)


@pytest.fixture
def opened_files(monkeypatch):
    """Names of the HDF5 files opened while the test runs."""
    import h5py

    names = []
    real = h5py.File

    def counting(name, *args, **kwargs):
        names.append(Path(name).name)
        return real(name, *args, **kwargs)

    monkeypatch.setattr(h5py, "File", counting)
    return names


def test_fit_and_evaluate_open_each_file_once(splits, opened_files):
    train, val = splits
    model = build_model(**SMALL)
    fit(model, train, val, epochs=2, seed=0, unroll=2)
    assert opened_files == ["train.h5", "val.h5"]
    opened_files.clear()
    surrogate.evaluate(model, val, with_costs=False)
    assert opened_files == ["val.h5"]


def test_a_pruning_run_opens_each_file_once(splits, opened_files, tmp_path):
    from surrogate.pruning import prune_iteratively

    train, val = splits
    history = prune_iteratively(build_model(**SMALL), (train, val), "lt", iterations=2, out=tmp_path,
                                epochs=1, plot=False)
    assert len(history["entries"]) == 3
    assert sorted(opened_files) == ["train.h5", "val.h5"]
