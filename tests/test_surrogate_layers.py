"""CP convolutions: exact parameter counts, equivalence with F.conv2d on the dense kernel, init variance."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import prune

from surrogate.layers import CPConv1d, CPConv2d, LayerCPConv2d, make_conv2d


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


@pytest.mark.parametrize("c,f,k,r", [(3, 8, 5, 1), (8, 8, 3, 2), (5, 7, (3, 5), 4), (16, 4, 1, 3)])
def test_cp_conv2d_parameter_count(c, f, k, r):
    kh, kw = (k, k) if isinstance(k, int) else k
    layer = CPConv2d(c, f, k, rank=r)
    assert n_params(layer) == f * r * (c + kh + kw) + f
    assert n_params(CPConv2d(c, f, k, rank=r, bias=False)) == f * r * (c + kh + kw)
    assert n_params(LayerCPConv2d(c, f, k, rank=r)) == r * (f + c + kh + kw) + f


@pytest.mark.filterwarnings("ignore:Using padding=.same. with even kernel")
@pytest.mark.parametrize("cls", [CPConv2d, LayerCPConv2d])
@pytest.mark.parametrize("k,padding", [(5, "same"), ((3, 5), "same"), (4, "same"), (3, "valid")])
def test_cp_conv2d_equals_dense_conv_with_its_kernel(cls, k, padding):
    torch.manual_seed(0)
    layer = cls(4, 6, k, rank=3, padding=padding).double()
    x = torch.randn(2, 4, 11, 9, dtype=torch.float64)
    weight = layer.dense_weight()
    kh, kw = (k, k) if isinstance(k, int) else k
    assert weight.shape == (6, 4, kh, kw)
    expected = F.conv2d(x, weight, layer.bias, padding=padding)
    torch.testing.assert_close(layer(x), expected, rtol=1e-10, atol=1e-10)



@pytest.mark.parametrize("pruned", [False, True])
def test_cp_conv2d_kernel_and_factored_paths_agree_in_value_and_gradient(pruned):
    torch.manual_seed(3)
    layer = CPConv2d(4, 6, (3, 5), rank=2).double()
    if pruned:
        prune.l1_unstructured(layer, "channel", amount=0.4)
    x = torch.randn(2, 4, 9, 10, dtype=torch.float64)
    target = torch.randn(2, 6, 9, 10, dtype=torch.float64)
    results = {}
    for compute, training in (("factored", True), ("kernel", False), ("auto", True), ("auto", False)):
        layer.compute = compute
        layer.train(training)
        layer.zero_grad()
        out = layer(x)
        ((out - target) ** 2).sum().backward()
        grads = [p.grad.clone() for p in layer.parameters()]
        results[compute, training] = out.detach(), grads
    reference_out, reference_grads = results["factored", True]
    for out, grads in results.values():
        torch.testing.assert_close(out, reference_out, rtol=1e-10, atol=1e-12)
        for grad, reference in zip(grads, reference_grads, strict=True):
            torch.testing.assert_close(grad, reference, rtol=1e-10, atol=1e-12)
    with pytest.raises(ValueError, match="compute"):
        CPConv2d(4, 6, 3, rank=2, compute="fast")

def test_cp_conv1d_count_and_equivalence():
    torch.manual_seed(1)
    layer = CPConv1d(5, 7, 3, rank=2).double()
    assert n_params(layer) == 7 * 2 * (5 + 3) + 7
    x = torch.randn(3, 5, 20, dtype=torch.float64)
    torch.testing.assert_close(layer(x), F.conv1d(x, layer.dense_weight(), layer.bias, padding="same"))


def test_rank_one_kernel_is_an_outer_product():
    layer = CPConv2d(3, 2, 5, rank=1)
    w = layer.dense_weight()[0].detach()
    # A rank-one 3-way tensor: every mode unfolding has matrix rank one.
    for unfolding in (w.reshape(3, -1), w.permute(1, 0, 2).reshape(5, -1), w.permute(2, 0, 1).reshape(5, -1)):
        assert torch.linalg.matrix_rank(unfolding.double(), rtol=1e-6) == 1


@pytest.mark.parametrize("cls,rank", [(CPConv2d, 1), (CPConv2d, 4), (LayerCPConv2d, 8)])
def test_initial_output_variance_matches_dense(cls, rank):
    # Interior outputs of a fresh layer on unit-variance input: dense gives fan_in * 1/(3 fan_in) = 1/3.
    torch.manual_seed(0)
    x = torch.randn(8, 16, 24, 24)
    ratios = []
    for seed in range(6):
        torch.manual_seed(seed)
        dense = nn.Conv2d(16, 64, 5, padding="same", bias=False)
        torch.manual_seed(seed)
        cp = cls(16, 64, 5, rank=rank, bias=False)
        with torch.no_grad():
            ratios.append(cp(x)[..., 4:-4, 4:-4].var() / dense(x)[..., 4:-4, 4:-4].var())
    ratio = float(torch.stack(ratios).mean())
    assert 0.8 < ratio < 1.25, ratio


def test_pruned_factors_stay_ordinary_modules():
    torch.manual_seed(2)
    layer = CPConv2d(4, 5, 3, rank=2).double()
    prune.l1_unstructured(layer, "channel", amount=0.5)
    prune.random_unstructured(layer, "vertical", amount=0.3)
    assert hasattr(layer, "channel_orig") and hasattr(layer, "channel_mask")
    x = torch.randn(1, 4, 8, 8, dtype=torch.float64)
    out = layer(x)
    torch.testing.assert_close(out, F.conv2d(x, layer.dense_weight(), layer.bias, padding="same"))
    out.sum().backward()
    assert torch.all(layer.channel_orig.grad[layer.channel_mask == 0] == 0)
    prune.remove(layer, "channel")
    assert int((layer.channel == 0).sum()) >= layer.channel.numel() // 2


@pytest.mark.parametrize("kwargs,word", [({"rank": 0}, "rank"), ({"rank": 1.5}, "rank"),
                                         ({"rank": 1, "padding": "full"}, "padding"),
                                         ({"rank": 1, "kernel_size": 0}, "kernel_size")])
def test_bad_arguments_name_the_parameter(kwargs, word):
    args = {"in_channels": 3, "out_channels": 4, "kernel_size": 3, **kwargs}
    with pytest.raises(ValueError, match=word):
        CPConv2d(**args)


def test_make_conv2d_types():
    assert isinstance(make_conv2d("dense", 3, 4, 5), nn.Conv2d)
    assert isinstance(make_conv2d("cp", 3, 4, 5, rank=2), CPConv2d)
    assert isinstance(make_conv2d("cp-layer", 3, 4, 5, rank=2), LayerCPConv2d)
    with pytest.raises(ValueError, match="rank"):
        make_conv2d("cp", 3, 4, 5)
    with pytest.raises(ValueError, match="conv"):
        make_conv2d("tucker", 3, 4, 5, rank=2)
