"""The wrapper's options of issue 18: forcing as an input only, Dirichlet walls by odd extension,
the reversible form, the medium-gated body, old model files, and the cosine learning-rate schedule."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch

from surrogate.data import Normalisation
from surrogate.io import load, save
from surrogate.models import build_model, model_from_config, odd_extension
from surrogate.train import fit
from tests.surrogate_wavefile import write_wave_file


def _fields(n_batch: int, ny: int, nx: int, forcing: bool, seed: int = 0) -> torch.Tensor:
    """Random inputs with zero walls (Dirichlet data) and a positive speed."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n_batch, 4 if forcing else 3, ny, nx, generator=gen)
    x[:, 2] = 1.0 + x[:, 2].abs()
    for ch in [0, 1] + ([3] if forcing else []):
        x[:, ch, 0, :] = x[:, ch, -1, :] = x[:, ch, :, 0] = x[:, ch, :, -1] = 0.0
    return x


@pytest.mark.parametrize("k", [1, 4, 8])
def test_the_frame_forcing_is_no_baseline_at_a_stride(tmp_path, k):
    # f^n is the source's share of the frame's second difference only without stiffness. At one solver
    # step per frame it explains much of the second difference at the source node; at a stride of
    # several steps the load has spread before the frame ends, and adding f^n to the extrapolation
    # (the old wrapper) moves it away from u^{n+1} there (issue 18: wavefe data at stride 4: 3-15x).
    path = write_wave_file(tmp_path / "r.h5", samples=3, frames=24, n=16, save_every=k, seed=1,
                           source="ricker")
    with h5py.File(path) as fh:
        u, f = fh["fields/u"][:].astype(np.float64), fh["fields/f"][:].astype(np.float64)
    d2 = u[:, 2:] - 2 * u[:, 1:-1] + u[:, :-2]
    at_source = np.abs(f).max(axis=1, keepdims=True) > 0  # (S, 1, ny, nx)
    mask = np.broadcast_to(at_source, d2.shape)
    ratio = np.linalg.norm((d2 - f[:, 1:-1])[mask]) / np.linalg.norm(d2[mask])
    assert ratio < 0.7 if k == 1 else ratio > 1.2, ratio


def test_odd_extension_is_odd_about_the_edge_nodes():
    z = torch.randn(1, 2, 5, 7)
    z[..., 0, :] = z[..., -1, :] = z[..., :, 0] = z[..., :, -1] = 0.0
    e = odd_extension(z, 3)
    assert e.shape == (1, 2, 11, 13)
    torch.testing.assert_close(e[..., 3:-3, 3:-3], z)
    torch.testing.assert_close(e[..., 3:-3, 2], -z[..., :, 1])  # left of the wall
    torch.testing.assert_close(e[..., 1, 3:-3], -z[..., 2, :])  # below the wall
    torch.testing.assert_close(e[..., 2, 2], z[..., 1, 1])  # corners: odd twice, so even


@pytest.mark.parametrize("body", ["gelu", "gated"])
@pytest.mark.parametrize("forcing", [False, True])
def test_dirichlet_model_is_the_interior_of_the_odd_continued_field(body, forcing):
    # A Dirichlet solution continues oddly across the walls (the speed evenly): on the continued
    # field the frame map is the same everywhere. The dirichlet wrapper must give, on the small
    # domain, what the same network gives inside the continued field, far from its own padding.
    model = build_model("dense", width=4, depth=1, kernel_size=3, seed=0, forcing=forcing, body=body,
                        boundary="dirichlet", reversible=True)
    assert model.halo == 3  # the receptive radius of three 3 x 3 convolutions
    plain = build_model("dense", width=4, depth=1, kernel_size=3, seed=0, forcing=forcing, body=body,
                        boundary="zero", reversible=True)
    plain.load_state_dict(model.state_dict())
    x = _fields(2, 9, 11, forcing)
    big = torch.cat([odd_extension(x[:, :2], 8), torch.nn.functional.pad(x[:, 2:3], (8,) * 4, mode="reflect")]
                    + ([odd_extension(x[:, 3:], 8)] if forcing else []), dim=1)
    with torch.no_grad():
        inside = plain(big)[..., 8:-8, 8:-8]
        got = model(x)
    interior = (slice(None), slice(None), slice(1, -1), slice(1, -1))
    torch.testing.assert_close(got[interior], inside[interior])
    assert torch.all(got[..., 0, :] == 0) and torch.all(got[..., :, -1] == 0)  # walls held at zero


def test_reversible_model_sees_the_previous_frame_only_in_the_extrapolation():
    model = build_model("cp", 2, width=4, depth=1, seed=0, reversible=True, body="gated")
    assert model.net_channels == 2 and model.lift.in_channels == 1  # u^n only (c gates)
    x = _fields(2, 8, 8, False)
    y = x.clone()
    y[:, 0] += torch.randn(2, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(model(y) - model(x), -(y[:, 0:1] - x[:, 0:1]))


@pytest.mark.parametrize("conv,rank", [("dense", None), ("cp", 2)])
def test_gated_body_is_linear_in_the_fields(conv, rank):
    model = build_model(conv, rank, width=6, depth=2, seed=0, forcing=True, body="gated")
    with torch.no_grad():  # gates away from 1, so the medium matters
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    x = _fields(2, 10, 10, True)
    fields = [0, 1, 3]
    scaled = x.clone()
    scaled[:, fields] *= -2.5
    with torch.no_grad():
        torch.testing.assert_close(model.correction(scaled), -2.5 * model.correction(x), rtol=1e-4,
                                   atol=1e-5)
        zero = x.clone()
        zero[:, fields] = 0
        assert torch.all(model.correction(zero) == 0)
        other = x.clone()
        other[:, 2] = other[:, 2] * 1.5
        assert not torch.allclose(model.correction(other), model.correction(x))
    w, d, k = 6, 2, 5
    gate = (4 + 4) + (4 * w + w)
    expected = 3 * w * k * k + 2 * d * w * w * k * k + w + (1 + 2 * d) * gate
    if conv == "dense":
        assert sum(p.numel() for p in model.parameters()) == expected


def test_old_model_files_keep_their_form(tmp_path):
    old = {"conv": "dense", "rank": None, "width": 4, "depth": 1, "kernel_size": 3, "forcing": True}
    model = model_from_config(old)
    assert model.wrapper == 1 and model.config["wrapper"] == 1
    again = load(save(model, tmp_path / "old.pt"))
    assert again.wrapper == 1
    x = _fields(1, 8, 8, True)
    with torch.no_grad():
        torch.testing.assert_close(again(x), model(x))
    with pytest.raises(ValueError, match="wrapper=1"):
        build_model(wrapper=1, reversible=True)
    for kwargs, word in (({"boundary": "periodic"}, "boundary"), ({"halo": -1}, "halo"),
                         ({"body": "relu"}, "body"), ({"wrapper": 3}, "wrapper")):
        with pytest.raises(ValueError, match=word):
            build_model(width=4, depth=1, **kwargs)


def test_cosine_schedule_anneals_whatever_the_metric(tmp_path):
    train = write_wave_file(tmp_path / "t.h5", samples=2, frames=10, n=12, seed=3)
    val = write_wave_file(tmp_path / "v.h5", samples=1, frames=10, n=12, seed=4)
    model = build_model("dense", width=4, depth=0, kernel_size=3, seed=0)
    model.set_normalisation(Normalisation(1.0, 1.0, 1.0, 1.0))
    history = fit(model, train, val, epochs=4, lr=1e-2, min_lr=1e-4, patience=10, seed=0,
                  windows_per_epoch=8, schedule="cosine")
    expected = [1e-4 + (1e-2 - 1e-4) * 0.5 * (1 + np.cos(np.pi * (e + 1) / 4)) for e in range(4)]
    np.testing.assert_allclose(history["lr"], expected, rtol=1e-9)
    assert history["settings"]["schedule"] == "cosine"
    with pytest.raises(ValueError, match="schedule"):
        fit(model, train, val, epochs=1, schedule="step")
