"""Pruning methods on hand-built torch models: exact counts, ranking, ties, torch.nn.utils.prune contract."""

from __future__ import annotations

from fractions import Fraction

import pytest
import torch
from torch import nn
from torch.nn.utils import prune

from surrogate.pruning import (
    LotteryTicketPruning,
    OneShotPruning,
    SAPPruning,
    alive_mask,
    global_prune,
    lottery_ticket_unstructured,
    make_permanent,
    masked_weight,
    one_shot_unstructured,
    pq_index_model,
    prunable_parameters,
    prune_model,
    remaining_weights,
    sap_prune_count,
    sap_unstructured,
)


class FactorConv(nn.Module):
    """A CP-like layer: factor parameters with custom names, a 1-d factor and a bias."""

    def __init__(self):
        super().__init__()
        self.channel = nn.Parameter(torch.randn(6, 3, 1, 1))
        self.vertical = nn.Parameter(torch.randn(6, 1, 3, 1))
        self.scale = nn.Parameter(torch.randn(6))
        self.bias = nn.Parameter(torch.randn(2))

    def forward(self, x):
        y = nn.functional.conv2d(x, self.channel)
        y = nn.functional.conv2d(y, self.vertical, padding="same", groups=6) * self.scale[:, None, None]
        return y[:, :2] + y[:, 2:4] + y[:, 4:] + self.bias[:, None, None]


def small_model(seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(2, 3, 3, padding=1), nn.BatchNorm2d(3), nn.GELU(), FactorConv(), nn.LayerNorm([2, 4, 4]),
        nn.Flatten(), nn.Linear(32, 5),
    )


def test_prunable_parameters_are_weights_with_more_than_one_dimension():
    names = [qn for qn, _, _ in prunable_parameters(small_model())]
    assert names == ["0.weight", "3.channel", "3.vertical", "6.weight"]


def test_prunable_names_survive_reparametrisation():
    model = small_model()
    prune_model(model, "lt", "layer")
    names = [qn for qn, _, _ in prunable_parameters(model)]
    assert names == ["0.weight", "3.channel", "3.vertical", "6.weight"]
    assert all(hasattr(m, n + "_orig") and hasattr(m, n + "_mask") for _, m, n in prunable_parameters(model))


def _pruned(before: dict, model) -> dict:
    return {qn: before[qn][0] - alive for qn, (alive, _) in remaining_weights(model).items()}


@pytest.mark.parametrize("scope", ["layer", "neuron", "global"])
def test_sap_prunes_exactly_the_computed_count(scope):
    model = small_model(1)
    prune_model(model, "lt", "layer")  # start from a partly pruned model
    params = prunable_parameters(model)
    weights = {qn: masked_weight(m, n).clone() for qn, m, n in params}
    masks = {qn: alive_mask(m, n).clone() for qn, m, n in params}
    before = remaining_weights(model)
    pruned = prune_model(model, "sap", scope)
    assert pruned == _pruned(before, model)
    if scope == "global":
        w = torch.cat([weights[qn].reshape(-1) for qn in weights])
        mask = torch.cat([masks[qn].reshape(-1) for qn in weights])
        assert sum(pruned.values()) == sap_prune_count(w, mask=mask) > 0
    elif scope == "layer":
        for qn in weights:
            assert pruned[qn] == sap_prune_count(weights[qn], mask=masks[qn])
    else:
        for qn in weights:
            rows = weights[qn].shape[0]
            w, mask = weights[qn].reshape(rows, -1), masks[qn].reshape(rows, -1)
            expected = sum(sap_prune_count(w[i], mask=mask[i]) for i in range(rows))
            assert pruned[qn] == expected


@pytest.mark.parametrize("method", ["sap", "lt"])
@pytest.mark.parametrize("scope", ["layer", "neuron", "global"])
def test_pruned_entries_are_the_smallest_alive_ones_and_masks_are_nested(method, scope):
    model = small_model(2)
    for _ in range(3):
        params = prunable_parameters(model)
        old = {qn: alive_mask(m, n).clone() for qn, m, n in params}
        weights = {qn: masked_weight(m, n).abs() for qn, m, n in params}
        prune_model(model, method, scope)
        units = []
        for qn, m, n in params:
            new = alive_mask(m, n)
            assert not (new & ~old[qn]).any(), "a pruned weight came back"
            rows = weights[qn].shape[0] if scope == "neuron" else 1
            w, was, now = (x.reshape(rows, -1) for x in (weights[qn], old[qn], new))
            units += [(w[i], was[i], now[i]) for i in range(rows)]
        if scope == "global":
            units = [tuple(torch.cat([u[k].reshape(-1) for u in units]) for k in range(3))]
        for w, was, now in units:
            dropped, kept = w[was & ~now], w[now]
            if len(dropped) and len(kept):
                assert dropped.max() <= kept.min()


def test_lottery_ticket_counts_are_exact_fractions_of_the_alive_weights():
    layer = nn.Linear(125, 5)  # 625 weights, 125 per row
    for t, expected in enumerate([500, 400, 320, 256], start=1):
        lottery_ticket_unstructured(layer, "weight", amount=0.2)
        assert int(layer.weight_mask.sum()) == expected == 625 * Fraction(4, 5) ** t
    neuron = nn.Linear(125, 4)
    for _ in range(3):
        lottery_ticket_unstructured(neuron, "weight", amount=0.2, scope="neuron")
    assert neuron.weight_mask.sum(dim=1).tolist() == [64.0] * 4
    odd = nn.Linear(7, 1)
    lottery_ticket_unstructured(odd, "weight", amount=0.2)  # floor(7/5) = 1
    assert int(odd.weight_mask.sum()) == 6


def test_ties_are_broken_by_flat_index():
    layer = nn.Linear(10, 2, bias=False)
    with torch.no_grad():
        layer.weight.fill_(1.0)
        layer.weight[1, 0] = -1.0
        layer.weight[0, 9] = 0.5
    lottery_ticket_unstructured(layer, "weight", amount=0.2)  # 4 of 20: the 0.5, then the first three 1s
    assert torch.nonzero(layer.weight_mask.reshape(-1) == 0).reshape(-1).tolist() == [0, 1, 2, 9]
    other = nn.Linear(10, 2, bias=False)
    with torch.no_grad():
        other.weight.copy_(layer.weight_orig)
    lottery_ticket_unstructured(other, "weight", amount=0.2)
    assert torch.equal(other.weight_mask, layer.weight_mask)


def test_global_lottery_ticket_matches_torch_global_unstructured():
    ours, peer = small_model(3), small_model(3)
    for _ in range(3):
        pruned = prune_model(ours, "lt", "global")
        params = [(m, n) for _, m, n in prunable_parameters(peer)]
        prune.global_unstructured(params, pruning_method=prune.L1Unstructured, amount=sum(pruned.values()))
    for (_, m1, n1), (_, m2, n2) in zip(prunable_parameters(ours), prunable_parameters(peer)):
        assert torch.equal(getattr(m1, n1 + "_mask"), getattr(m2, n2 + "_mask"))


def test_layer_lottery_ticket_matches_torch_l1_unstructured():
    torch.manual_seed(4)
    ours, peer = nn.Conv2d(4, 6, 3), nn.Conv2d(4, 6, 3)
    peer.load_state_dict(ours.state_dict())
    for _ in range(4):
        d = int(alive_mask(ours, "weight").sum())
        lottery_ticket_unstructured(ours, "weight", amount=0.2)
        prune.l1_unstructured(peer, "weight", amount=d // 5)
    assert torch.equal(ours.weight_mask, peer.weight_mask)


@pytest.mark.parametrize("scope", ["layer", "neuron", "global"])
def test_one_shot_steps_equal_a_single_cut_of_the_dense_model(scope):
    dense = small_model(5)
    scores = {qn: masked_weight(m, n).clone() for qn, m, n in prunable_parameters(dense)}
    stepped = small_model(6)  # other weights: the ranking must come from the scores only
    for _ in range(3):
        prune_model(stepped, "oneshot", scope, importance_scores=scores)
    remaining = remaining_weights(stepped)
    once = small_model(6)
    if scope == "global":
        alive = sum(a for a, _ in remaining.values())
        total = sum(t for _, t in remaining.values())
        prune_model(once, "oneshot", "global", importance_scores=scores,
                    amount=Fraction(total - alive, total))
    else:
        for qn, m, n in prunable_parameters(once):
            alive, total = remaining[qn]
            units = scores[qn].shape[0] if scope == "neuron" else 1  # equal rows keep equal counts
            one_shot_unstructured(m, n, scores[qn], amount=Fraction(total - alive, total), scope=scope)
            assert int(alive_mask(m, n).sum()) == alive and alive % units == 0
    for (_, m1, n1), (_, m2, n2) in zip(prunable_parameters(stepped), prunable_parameters(once)):
        assert torch.equal(getattr(m1, n1 + "_mask"), getattr(m2, n2 + "_mask"))


def test_masks_are_buffers_and_remove_makes_pruning_permanent():
    model = small_model(7)
    prune_model(model, "sap", "layer")
    prune_model(model, "sap", "neuron")
    buffers = dict(model.named_buffers())
    assert {"0.weight_mask", "3.channel_mask", "3.vertical_mask", "6.weight_mask"} <= set(buffers)
    x = torch.randn(2, 2, 4, 4)
    y = model(x)
    model.zero_grad()
    y.square().sum().backward()
    assert (model[0].weight_orig.grad[model[0].weight_mask == 0] == 0).all()
    masks = {qn: alive_mask(m, n).clone() for qn, m, n in prunable_parameters(model)}
    make_permanent(model)
    assert not any(k.endswith("_mask") for k in dict(model.named_buffers()))
    assert not any(k.endswith("_orig") for k, _ in model.named_parameters())
    hooks = [h for m in model.modules() for h in m._forward_pre_hooks.values()]
    assert not any(isinstance(h, prune.BasePruningMethod) for h in hooks)
    for qn, m, n in prunable_parameters(model):
        assert (getattr(m, n)[~masks[qn]] == 0).all()
    assert torch.allclose(model(x), y)


def test_class_and_functional_forms_agree():
    torch.manual_seed(8)
    a, b = nn.Linear(30, 6), nn.Linear(30, 6)
    b.load_state_dict(a.state_dict())
    SAPPruning.apply(a, "weight", scope="neuron", beta=0.5)
    sap_unstructured(b, "weight", scope="neuron", beta=0.5)
    assert torch.equal(a.weight_mask, b.weight_mask)
    assert isinstance(a._forward_pre_hooks[next(iter(a._forward_pre_hooks))], SAPPruning)
    LotteryTicketPruning.apply(a, "weight", amount=0.5)
    one_shot_unstructured(b, "weight", importance_scores=b.weight_orig.detach() * b.weight_mask, amount=0.5)
    assert torch.equal(a.weight_mask, b.weight_mask)
    assert isinstance(a._forward_pre_hooks[next(iter(a._forward_pre_hooks))], prune.PruningContainer)
    prune.remove(a, "weight")
    assert "weight" in dict(a.named_parameters())


def test_importance_scores_drive_the_ranking_not_the_weights():
    layer = nn.Linear(4, 1, bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[1.0, 2.0, 3.0, 4.0]]))
    one_shot_unstructured(layer, "weight", importance_scores=torch.tensor([[9.0, 8.0, 7.0, 6.0]]), amount=0.5)
    assert layer.weight_mask.tolist() == [[1.0, 1.0, 0.0, 0.0]]


def test_pruned_state_round_trips_through_state_dict():
    model = small_model(9)
    prune_model(model, "sap", "global")
    state = model.state_dict()
    copy = small_model(10)
    for _, m, n in prunable_parameters(copy):
        prune.identity(m, n)
    copy.load_state_dict(state)
    assert pq_index_model(copy, "layer") == pq_index_model(model, "layer")
    x = torch.randn(3, 2, 4, 4)
    copy.eval(), model.eval()
    assert torch.equal(copy(x), model(x))


def test_pq_index_model_scopes():
    model = small_model(11)
    prune_model(model, "lt", "neuron")
    glob = pq_index_model(model, "global")
    layer = pq_index_model(model, "layer")
    neuron = pq_index_model(model, "neuron")
    assert isinstance(glob, float) and 0 < glob < 1
    assert set(layer) == set(neuron) == {"0.weight", "3.channel", "3.vertical", "6.weight"}
    assert neuron["6.weight"].shape == (5,) and neuron["6.weight"].dtype == torch.float64
    from surrogate.pruning import pq_index
    w, mask = masked_weight(model[6], "weight"), alive_mask(model[6], "weight")
    assert layer["6.weight"] == pq_index(w, mask=mask)
    assert neuron["6.weight"][2].item() == pq_index(w[2], mask=mask[2])


@pytest.mark.parametrize("call, word", [
    (lambda m: prune_model(m, "magnitude", "layer"), "method"),
    (lambda m: prune_model(m, "sap", "channel"), "scope"),
    (lambda m: prune_model(m, "lt", "layer", amount=1.5), "amount"),
    (lambda m: prune_model(m, "sap", "layer", beta=2.0), "beta"),
    (lambda m: prune_model(m, "sap", "layer", p=1.0, q=0.5), "q must"),
    (lambda m: prune_model(m, "oneshot", "layer"), "importance_scores"),
    (lambda m: pq_index_model(m, "row"), "scope"),
    (lambda m: pq_index_model(nn.Sequential(nn.ReLU()), "layer"), "prunable"),
    (lambda m: global_prune([(m[6], "weight")], SAPPruning, scope="neuron"), "scope"),
    (lambda m: LotteryTicketPruning.apply(nn.Linear(2, 2), "bias", scope="neuron"), "2 dimensions"),
    (lambda m: OneShotPruning(scope="global"), "global_prune"),
])
def test_bad_input_is_a_value_error_naming_the_parameter(call, word):
    with pytest.raises(ValueError, match=word):
        call(small_model())


def test_neuron_ties_are_broken_by_index_within_each_row():
    layer = nn.Linear(10, 3, bias=False)
    with torch.no_grad():
        layer.weight.fill_(2.0)
        layer.weight[2, 7] = 1.0
    lottery_ticket_unstructured(layer, "weight", amount=0.2, scope="neuron")
    dropped = [torch.nonzero(row == 0).reshape(-1).tolist() for row in layer.weight_mask]
    assert dropped == [[0, 1], [0, 1], [0, 7]]


def test_amount_is_read_as_its_decimal_value():
    # 0.29 * 100 is 28.999999999999996 in floating point; the count is exactly 29.
    layer = nn.Linear(100, 1, bias=False)
    lottery_ticket_unstructured(layer, "weight", amount=0.29)
    assert int(layer.weight_mask.sum()) == 71
