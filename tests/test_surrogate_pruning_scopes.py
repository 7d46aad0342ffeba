"""Per-scope counts, the untrained-Gaussian control, CP-aware magnitude and one-shot's fixed ranking."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from surrogate.layers import CPConv1d, CPConv2d, LayerCPConv2d
from surrogate.pruning import (
    GaussianControl,
    alive_mask,
    cp_aware_scores,
    importance_scores,
    masked_weight,
    pq_index,
    prunable_parameters,
    prune_iteratively,
    prune_model,
    sap_prune_count,
    scope_pqi,
    summarise_history,
)
from surrogate.pruning.pqi import pq_index_rows, sap_prune_counts

GAUSSIAN_PQI = 0.152787  # 1 - Gamma(3/4)^2 / sqrt(pi), (p, q) = (0.5, 1)


def mlp(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(40, 30), nn.Tanh(), nn.Linear(30, 20), nn.Tanh(), nn.Linear(20, 1))


def uneven(seed: int = 0) -> nn.Module:
    """A model whose rows already hold different alive counts and scales (pruned at random)."""
    model = mlp(seed)
    g = torch.Generator().manual_seed(seed + 1)
    for _, m, n in prunable_parameters(model):
        w = getattr(m, n)
        with torch.no_grad():
            w.mul_(torch.exp(torch.randn(w.shape[0], 1, generator=g)))  # rows of different scale
        keep = torch.rand(w.shape, generator=g) > torch.rand(w.shape[0], 1, generator=g) * 0.6
        keep[:, 0] = True
        torch.nn.utils.prune.custom_from_mask(m, n, keep)
    return model


def _alive_rows(model):
    return {qn: alive_mask(m, n).reshape(alive_mask(m, n).shape[0], -1).sum(dim=1)
            for qn, m, n in prunable_parameters(model)}


@pytest.mark.parametrize("method", ["sap", "lt"])
def test_layer_scope_prunes_exactly_c_t_per_layer(method):
    model = uneven()
    before = {qn: (masked_weight(m, n).clone(), alive_mask(m, n)) for qn, m, n in prunable_parameters(model)}
    pruned = prune_model(model, method, "layer")
    for qn, (w, alive) in before.items():
        d = int(alive.sum())
        expected = sap_prune_count(w, mask=alive) if method == "sap" else d // 5
        assert pruned[qn] == expected
    assert min(list(pruned.values())[:2]) > 0


@pytest.mark.parametrize("method", ["sap", "lt"])
def test_neuron_scope_prunes_exactly_c_t_per_row_and_the_smallest_of_each_row(method):
    model = uneven()
    params = prunable_parameters(model)
    before = {qn: (masked_weight(m, n).clone(), alive_mask(m, n)) for qn, m, n in params}
    prune_model(model, method, "neuron")
    after = _alive_rows(model)
    for qn, m, n in params:
        w, alive = before[qn]
        d = alive.sum(dim=1)
        if method == "sap":
            expected = sap_prune_counts(d, pq_index_rows(w, alive))
        else:
            expected = d // 5
        assert torch.equal(d - after[qn], expected)
        if w.shape[0] > 1:  # rows really differ, so one count per layer would fail
            assert len(set(expected.tolist())) > 1
        now = alive_mask(m, n)
        for row in range(w.shape[0]):
            dropped = alive[row] & ~now[row]
            if dropped.any():
                assert w[row][dropped].abs().max() <= w[row][now[row]].abs().min()


def test_global_scope_prunes_one_count_over_all_tensors():
    model = uneven()
    total = sum(int(alive_mask(m, n).sum()) for _, m, n in prunable_parameters(model))
    weights = torch.cat([masked_weight(m, n).reshape(-1) for _, m, n in prunable_parameters(model)])
    alive = torch.cat([alive_mask(m, n).reshape(-1) for _, m, n in prunable_parameters(model)])
    expected = sap_prune_count(weights, mask=alive)
    assert sum(prune_model(model, "sap", "global").values()) == expected
    assert total - sum(int(alive_mask(m, n).sum()) for _, m, n in prunable_parameters(model)) == expected


# --- the control -------------------------------------------------------------------------------------

def test_fresh_control_is_gaussian_and_matches_counts_per_unit():
    model = nn.Sequential(nn.Linear(200, 100), nn.Linear(100, 3))
    twin = GaussianControl.from_model(model, "neuron", seed=0)
    record = twin.record(model)
    assert record["remaining_total"] == 200 * 100 + 300
    assert record["layer"]["0.weight"] == pytest.approx(GAUSSIAN_PQI, abs=0.01)
    for scope in ("layer", "neuron"):
        twin = GaussianControl.from_model(model, scope, seed=0)
        for _ in range(3):
            prune_model(model, "lt", scope)
            twin.record(model)
        if scope == "layer":
            assert {k: int(a.sum()) for k, a in twin.alive.items()} == {
                qn: int(alive_mask(m, n).sum()) for qn, m, n in prunable_parameters(model)}
        else:
            assert all(torch.equal(twin.alive[k].sum(dim=1), v) for k, v in _alive_rows(model).items())
        # the control prunes its own smallest Gaussian entries, not the model's positions
        kept = twin.weights["0.weight"].abs()[twin.alive["0.weight"]]
        gone = twin.weights["0.weight"].abs()[~twin.alive["0.weight"]]
        assert kept.min() >= gone.max() if scope == "layer" else True


def test_control_trajectory_in_the_schedule(tmp_path):
    model = mlp()
    history = prune_iteratively(model, (None, None), "lt", "global", 4, out=tmp_path,
                                train_fn=lambda *a, **k: {"epoch": [0, 1, 2]},
                                eval_fn=lambda m, v: {"nrmse": 1.0}, plot=False)
    entries = history["entries"]
    assert all(e["control"]["remaining_total"] == e["remaining_total"] for e in entries)
    assert set(entries[0]["control"]) >= {"global", "layer", "neuron", "neuron_mean"}
    assert len(entries[0]["control"]["neuron"]["0.weight"]) == 30
    control = [scope_pqi(e["control"], "global") for e in entries]
    assert control == sorted(control, reverse=True) and control[-1] < control[0] - 0.02
    summary = summarise_history(history)
    assert summary["control_pqi"] == control and summary["control_trend"] == "-"
    assert summary["best_epochs"] == 3 * (summary["best_iteration"] + 1)
    # the control does not depend on the path: one cut to the final counts gives the same record
    once = GaussianControl.from_model(mlp(), "global", seed=0).record(model)
    assert once == {k: v for k, v in entries[-1]["control"].items()}


def test_control_state_round_trips_and_refuses_regrowth():
    model = mlp()
    twin = GaussianControl.from_model(model, "layer", seed=3)
    prune_model(model, "lt", "layer")
    first = twin.record(model)
    again = GaussianControl.from_state(copy.deepcopy(twin.state_dict()))
    assert again.record(model) == first
    with pytest.raises(ValueError, match="shrink"):
        again.record(mlp())
    with pytest.raises(ValueError, match="scope"):
        GaussianControl.from_model(model, "filter")


def test_scope_pqi_means():
    record = {"global": 0.2, "layer": {"a": 0.1, "b": None, "c": 0.3},
              "neuron": {"a": [0.1, None, 0.4], "c": [0.1]}}
    assert scope_pqi(record, "global") == 0.2
    assert scope_pqi(record, "layer") == pytest.approx(0.2)
    assert scope_pqi(record, "neuron") == pytest.approx(0.2)
    with pytest.raises(ValueError, match="scope"):
        scope_pqi(record, "filter")


# --- CP-aware magnitude ------------------------------------------------------------------------------

class CPNet(nn.Module):
    def __init__(self, seed=0):
        super().__init__()
        torch.manual_seed(seed)
        self.a = CPConv2d(2, 3, 3, rank=2)
        self.b = LayerCPConv2d(3, 4, 3, rank=2)
        self.c = CPConv1d(4, 2, 3, rank=2)
        self.head = nn.Linear(2, 1)

    def forward(self, x):
        y = self.b(torch.tanh(self.a(x)))
        return self.head(self.c(y.mean(dim=2)).mean(dim=2))


def _rescale(net, s):
    with torch.no_grad():
        net.a.channel[1:3].mul_(s)   # terms 1 and 2 of the per-filter CP
        net.a.vertical[1:3].div_(s)
        net.b.output[:, 0].mul_(s)   # term 0 of the layer-level CP
        net.b.horizontal[0].div_(s)
        net.c.taps.mul_(s)
        net.c.channel.div_(s)
    return net


def _masks(net):
    return {qn: alive_mask(m, n).clone() for qn, m, n in prunable_parameters(net)}


@pytest.mark.parametrize("s", [4.0, 0.37, 13.0])
def test_cp_aware_scores_are_invariant_to_rescaling_factors(s):
    net, scaled = CPNet(), _rescale(CPNet(), s)
    x = torch.randn(2, 2, 6, 6)
    assert torch.allclose(net(x), scaled(x), atol=1e-5)  # the same function
    ref, got = cp_aware_scores(net), cp_aware_scores(scaled)
    assert set(ref) == {qn for qn, _, _ in prunable_parameters(net)}
    for k in ref:  # float32 factors: rescaling rounds to about 1e-7
        assert torch.allclose(ref[k], got[k], rtol=1e-6, atol=0), k


@pytest.mark.parametrize("scope", ["global", "layer"])
@pytest.mark.parametrize("method", ["lt", "sap"])
def test_cp_aware_masks_are_invariant_and_plain_ones_are_not(scope, method):
    net, scaled = CPNet(), _rescale(CPNet(), 8.0)  # a power of two: exact in floating point
    for _ in range(2):
        prune_model(net, method, scope, importance_scores=cp_aware_scores(net))
        prune_model(scaled, method, scope, importance_scores=cp_aware_scores(scaled))
    assert all(torch.equal(a, b) for a, b in zip(_masks(net).values(), _masks(scaled).values()))
    if scope == "global":
        plain, plain_scaled = CPNet(), _rescale(CPNet(), 8.0)
        prune_model(plain, method, scope)
        prune_model(plain_scaled, method, scope)
        pairs = zip(_masks(plain).values(), _masks(plain_scaled).values())
        assert not all(torch.equal(a, b) for a, b in pairs)


def _refresh(layer):
    """Recompute the pruned attributes from ``X_orig * X_mask`` (torch does it before each forward)."""
    for hook in layer._forward_pre_hooks.values():
        hook(layer, None)


def test_cp_aware_score_is_the_kernel_change_of_pruning_one_entry():
    net = CPNet()
    prune_model(net, "lt", "layer")  # norms are taken over alive entries
    scores = cp_aware_scores(net)
    for layer, name in [(net.a, "channel"), (net.a, "horizontal"), (net.b, "output"), (net.b, "vertical"),
                        (net.c, "taps")]:
        qn = next(q for q, m, n in prunable_parameters(net) if m is layer and n == name)
        base = layer.dense_weight().detach().double()
        alive = alive_mask(layer, name).reshape(-1).nonzero()[:, 0]
        for i in alive[:4].tolist():
            with torch.no_grad():
                orig = getattr(layer, name + "_orig")
                keep = orig.reshape(-1)[i].clone()
                orig.reshape(-1)[i] = 0
                _refresh(layer)
                change = (layer.dense_weight().detach().double() - base).norm()
                orig.reshape(-1)[i] = keep
                _refresh(layer)
            assert scores[qn].reshape(-1)[i] == pytest.approx(float(change), rel=1e-5)
    head = next(q for q, m, n in prunable_parameters(net) if m is net.head)
    assert torch.equal(scores[head], masked_weight(net.head, "weight").double().abs())


def test_importance_scores_option():
    net = CPNet()
    plain = importance_scores(net, "plain")
    assert all(torch.equal(plain[qn], masked_weight(m, n)) for qn, m, n in prunable_parameters(net))
    with pytest.raises(ValueError, match="magnitude"):
        importance_scores(net, "l2")


# --- one-shot's fixed ranking with both magnitudes in the schedule -------------------------------------

class Fit:
    """A few Adam steps on random data, so the weights move between iterations."""

    def __call__(self, model, train, val, *, seed, checkpoint):
        torch.manual_seed(seed)
        x, y = train
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
        for _ in range(5):
            opt.zero_grad()
            (model(x) - y).square().mean().backward()
            opt.step()
        return {}


@pytest.mark.parametrize("magnitude", ["plain", "cp-aware"])
def test_one_shot_ranking_is_fixed_from_the_dense_model(tmp_path, magnitude):
    g = torch.Generator().manual_seed(0)
    data = (torch.randn(16, 2, 6, 6, generator=g), torch.randn(16, 1, generator=g))
    net = CPNet()
    history = prune_iteratively(net, (data, data), "oneshot", "global", 4, out=tmp_path, train_fn=Fit(),
                                eval_fn=lambda m, v: {"nrmse": 1.0}, plot=False, magnitude=magnitude)
    dense = CPNet()
    state = torch.load(tmp_path / "iter_00.pt", weights_only=True)["state_dict"]
    torch.nn.utils.prune.identity(dense.head, "weight")
    for _, m, n in prunable_parameters(dense):
        if not hasattr(m, n + "_mask"):
            torch.nn.utils.prune.identity(m, n)
    dense.load_state_dict(state)
    scores = importance_scores(dense, magnitude)
    flat = torch.cat([scores[qn].abs().reshape(-1) for qn, _, _ in prunable_parameters(dense)])
    kept = torch.cat([alive_mask(m, n).reshape(-1) for _, m, n in prunable_parameters(net)])
    assert int(kept.sum()) == history["entries"][-1]["remaining_total"] < kept.numel() // 2
    assert flat[kept].min() >= flat[~kept].max()


def test_pq_index_of_scores_used_by_sap_is_scale_free():
    net, scaled = CPNet(), _rescale(CPNet(), 8.0)
    a = torch.cat([v.reshape(-1) for v in cp_aware_scores(net).values()])
    b = torch.cat([v.reshape(-1) for v in cp_aware_scores(scaled).values()])
    assert pq_index(a) == pytest.approx(pq_index(b), rel=1e-12)


@pytest.mark.parametrize("scope, method", [("global", "lt"), ("layer", "sap"), ("neuron", "sap")])
def test_thirty_iterations_run_to_high_sparsity(tmp_path, scope, method):
    history = prune_iteratively(mlp(), (None, None), method, scope, 30, out=tmp_path,
                                train_fn=lambda *a, **k: {}, eval_fn=lambda m, v: {"nrmse": 1.0},
                                plot=False, gamma=3.0)
    entries = history["entries"]
    fractions = [e["remaining_fraction"] for e in entries]
    assert len(entries) == 31 and fractions == sorted(fractions, reverse=True)
    # untrained weights: SAP's steps shrink as the survivors' PQI falls (the control's effect)
    assert fractions[-1] < (0.003 if method == "lt" else 0.7) and fractions[-1] < fractions[3]
    assert all(e["control"]["remaining_total"] == e["remaining_total"] for e in entries)


def test_control_refuses_an_empty_model():
    with pytest.raises(ValueError, match="initial"):
        GaussianControl({}, "global")
