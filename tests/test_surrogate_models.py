"""The surrogate CNN: same architecture for every convolution type, exact parameter counts."""

from __future__ import annotations

import pytest
import torch

from surrogate.data import Normalisation
from surrogate.models import WaveSurrogate, build_model


def trainable(model) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


@pytest.mark.parametrize("conv,rank", [("dense", None), ("cp", 1), ("cp", 3), ("cp-layer", 6)])
def test_parameter_counts(conv, rank):
    w, d, k = 8, 2, 5
    model = build_model(conv, rank, width=w, depth=d, kernel_size=k)
    if conv == "dense":
        per = lambda c, f: f * c * k * k + f  # noqa: E731
    elif conv == "cp":
        per = lambda c, f: f * rank * (c + 2 * k) + f  # noqa: E731
    else:
        per = lambda c, f: rank * (f + c + 2 * k) + f  # noqa: E731
    expected = per(3, w) + 2 * d * per(w, w) + (w + 1)
    assert trainable(model) == expected


def test_same_resolution_and_physical_units():
    model = build_model("cp", 2, width=6, depth=1, seed=0)
    x = torch.randn(2, 3, 13, 17)
    assert model(x).shape == (2, 1, 13, 17)
    assert model.step(x[:, 0], x[:, 1], x[:, 2]).shape == (2, 13, 17)
    # With a zero output layer the model is the leapfrog extrapolation 2 u^n - u^{n-1}.
    with torch.no_grad():
        model.proj.weight.zero_()
        model.proj.bias.zero_()
    torch.testing.assert_close(model(x)[:, 0], 2 * x[:, 1] - x[:, 0])


def test_normalisation_buffers_scale_the_correction():
    model = build_model("dense", width=4, depth=1, seed=0)
    assert model.normalisation is None
    x = torch.randn(1, 3, 8, 8)
    base = (model(x) - (2 * x[:, 1:2] - x[:, 0:1])).detach()
    norm = Normalisation(u_scale=2.0, c_mean=0.0, c_scale=1.0, du_scale=10.0)
    model.set_normalisation(norm)
    assert model.normalisation == norm
    assert "du_scale" in model.state_dict()
    scaled = x.clone()
    scaled[:, :2] *= 2.0
    out = model(scaled) - (2 * scaled[:, 1:2] - scaled[:, 0:1])
    torch.testing.assert_close(out, 10.0 * base)


def test_seeded_build_is_reproducible_and_leaves_global_rng_alone():
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a = build_model("cp", 2, width=4, depth=1, seed=7)
    after = torch.rand(1)
    b = build_model("cp", 2, width=4, depth=1, seed=7)
    assert torch.equal(before, after)
    for pa, pb in zip(a.state_dict().values(), b.state_dict().values()):
        assert torch.equal(pa, pb)


@pytest.mark.parametrize("kwargs,word", [({"conv": "tucker"}, "conv"), ({"conv": "cp"}, "rank"),
                                         ({"width": 0}, "width"), ({"depth": -1}, "depth"),
                                         ({"kernel_size": 4}, "kernel_size")])
def test_bad_configuration(kwargs, word):
    with pytest.raises(ValueError, match=word):
        WaveSurrogate(**kwargs)
    with pytest.raises(ValueError, match="input"):
        build_model(width=4, depth=0)(torch.zeros(1, 2, 8, 8))
