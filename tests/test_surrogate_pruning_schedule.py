"""The iterative schedule on a tiny regression task: exact LT fractions, rewinding, resume, files."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn

from jamcommon.files import OutputExistsError
from surrogate.pruning import (
    alive_mask,
    load_history,
    masked_weight,
    plot_histories,
    pqi_trend,
    prunable_parameters,
    prune_iteratively,
    summarise_history,
)
from surrogate.pruning.pqi import robust_floor


def tiny_model(seed: int = 0) -> nn.Module:
    """125 inputs: every unit of every scope holds a multiple of 5^3 weights (15625 + 125)."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(125, 125), nn.Tanh(), nn.Linear(125, 1))


def tiny_data(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(192, 125, generator=g)
    w = torch.zeros(125, 1)
    w[:8] = torch.randn(8, 1, generator=g)
    y = torch.tanh(x @ w)
    return (x[:128], y[:128]), (x[128:], y[128:])


class Trainer:
    """Full-batch Adam; records the effective weights it was handed (to check rewinding)."""

    def __init__(self, steps: int = 25, fail_at: int | None = None):
        self.steps, self.fail_at, self.calls, self.seen = steps, fail_at, 0, []

    def __call__(self, model, train, val, *, seed, checkpoint):
        if self.fail_at is not None and self.calls == self.fail_at:
            raise KeyboardInterrupt
        self.calls += 1
        self.seen.append({qn: masked_weight(m, n).clone() for qn, m, n in prunable_parameters(model)})
        torch.manual_seed(seed)
        x, y = train
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
        for _ in range(self.steps):
            opt.zero_grad()
            loss = (model(x) - y).square().mean()
            loss.backward()
            opt.step()
        return {"final_loss": float(loss.detach()), "note": "ignored"}


def evaluate(model, val):
    x, y = val
    with torch.no_grad():
        return {"nrmse": float((model(x) - y).norm() / y.norm()), "curve": [1.0, 2.0]}


def run(tmp, method="lt", scope="global", iterations=3, trainer=None, plot=False, **kw):
    return prune_iteratively(tiny_model(), tiny_data(), method, scope, iterations, out=tmp,
                             train_fn=trainer or Trainer(), eval_fn=evaluate, plot=plot, **kw)


def _strip(history):
    history = json.loads(json.dumps(history))
    for e in history["entries"]:
        e.pop("seconds", None)
    return history


@pytest.mark.parametrize("scope", ["global", "layer", "neuron"])
def test_lottery_ticket_keeps_exactly_0_8_to_the_t(tmp_path, scope):
    history = run(tmp_path, "lt", scope, 3)
    total = history["total"]
    assert total == 15750
    for t, entry in enumerate(history["entries"]):
        assert entry["remaining_total"] * 5**t == total * 4**t
        assert entry["remaining_fraction"] == pytest.approx(0.8**t, rel=1e-15)
        if scope != "global":  # per-layer fractions are exact too when each layer is pruned alone
            for name, size in history["sizes"].items():
                assert entry["remaining"][name] * 5**t == size * 4**t
    assert history["complete"] and len(history["entries"]) == 4


def test_survivors_are_rewound_to_their_initial_values(tmp_path):
    trainer = Trainer()
    run(tmp_path, "sap", "layer", 2, trainer=trainer)
    initial = trainer.seen[0]
    for t in (1, 2):
        for name, w in trainer.seen[t].items():
            alive = w != 0
            assert torch.equal(w[alive], initial[name][alive])
            assert alive.sum() < initial[name].numel()


def test_sap_schedule_prunes_the_count_given_by_the_recorded_index(tmp_path):
    history = run(tmp_path, "sap", "global", 3)
    for entry in history["entries"][:-1]:
        d, index = entry["remaining_total"], entry["pqi"]["global"]
        expected = min(robust_floor(torch.tensor(d * index, dtype=torch.float64)).item(), math.floor(0.9 * d))
        assert entry["pruned_total"] == expected > 0
    fractions = [e["remaining_fraction"] for e in history["entries"]]
    assert fractions == sorted(fractions, reverse=True)
    assert "pruned" not in history["entries"][-1]
    assert history["entries"][0]["train"] == {"final_loss": pytest.approx(history["entries"][0]["train"]
                                                                          ["final_loss"])}
    assert history["entries"][0]["metrics"] == {"nrmse": history["entries"][0]["val_nrmse"]}


def test_one_shot_ranks_by_the_trained_dense_weights(tmp_path):
    history = run(tmp_path, "oneshot", "global", 2)
    dense = torch.load(tmp_path / "iter_00.pt", weights_only=True)["state_dict"]
    final = torch.load(tmp_path / "model.pt", weights_only=True)["state_dict"]
    scores = torch.cat([dense[k].reshape(-1).abs() for k in ("0.weight_orig", "2.weight_orig")])
    kept = torch.cat([final[k].reshape(-1) for k in ("0.weight_mask", "2.weight_mask")]) != 0
    assert int(kept.sum()) == history["entries"][-1]["remaining_total"]
    assert scores[kept].min() >= scores[~kept].max()


def test_resume_after_interruption_matches_an_uninterrupted_run(tmp_path):
    whole = run(tmp_path / "whole", "sap", "neuron", 3)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "cut", "sap", "neuron", 3, trainer=Trainer(fail_at=2))
    partial = load_history(tmp_path / "cut")
    assert len(partial["entries"]) == 2 and not partial["complete"]
    trainer = Trainer()
    resumed = run(tmp_path / "cut", "sap", "neuron", 3, trainer=trainer)
    assert trainer.calls == 2
    assert _strip(resumed) == _strip(whole)
    again = Trainer()
    assert _strip(run(tmp_path / "cut", "sap", "neuron", 3, trainer=again)) == _strip(whole)
    assert again.calls == 0


def test_raising_iterations_continues_a_finished_run(tmp_path):
    whole = run(tmp_path / "whole", "lt", "layer", 3)
    run(tmp_path / "grow", "lt", "layer", 1)
    grown = run(tmp_path / "grow", "lt", "layer", 3)
    assert _strip(grown)["entries"] == _strip(whole)["entries"]


def test_output_files(tmp_path):
    history = run(tmp_path, "sap", "global", 1, plot=True)
    assert load_history(tmp_path) == json.loads(json.dumps(history))
    assert (tmp_path / "pruning.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for name in ("iter_00.pt", "iter_01.pt", "model.pt", "checkpoint.pt"):
        assert (tmp_path / name).is_file()
    assert not list(tmp_path.glob("fit_iter_*"))
    saved = torch.load(tmp_path / "model.pt", weights_only=True)
    assert {"0.weight_mask", "2.weight_mask", "0.weight_orig"} <= set(saved["state_dict"])
    saved_last = saved["extra"]["pruning"]["entries"][-1]
    assert saved_last["pqi"]["global"] == history["entries"][-1]["pqi"]["global"]
    entry = history["entries"][1]
    assert set(entry["pqi"]) == {"global", "layer", "neuron", "neuron_mean"}
    assert len(entry["pqi"]["neuron"]["0.weight"]) == 125 and len(entry["pqi"]["neuron"]["2.weight"]) == 1


def test_other_settings_in_the_same_folder_are_refused(tmp_path):
    run(tmp_path, "lt", "global", 1)
    with pytest.raises(ValueError, match="other settings"):
        run(tmp_path, "sap", "global", 1)
    fresh = run(tmp_path, "sap", "global", 1, overwrite=True)
    assert fresh["method"] == "sap"
    (tmp_path / "checkpoint.pt").unlink()
    with pytest.raises(OutputExistsError, match="force"):
        run(tmp_path, "sap", "global", 1)


@pytest.mark.parametrize("kwargs, word", [
    ({"method": "random"}, "method"), ({"scope": "filter"}, "scope"), ({"iterations": -1}, "iterations"),
    ({"iterations": 1.5}, "iterations"), ({"beta": 1.2}, "beta"), ({"amount": 2.0}, "amount"),
    ({"p": 2.0}, "q must"),
])
def test_bad_arguments(tmp_path, kwargs, word):
    args = {"method": "lt", "scope": "global", "iterations": 1, **kwargs}
    with pytest.raises(ValueError, match=word):
        prune_iteratively(tiny_model(), tiny_data(), out=tmp_path, train_fn=Trainer(), eval_fn=evaluate,
                          **args)
    with pytest.raises(ValueError, match="pair"):
        prune_iteratively(tiny_model(), tiny_data()[0][0], out=tmp_path, train_fn=Trainer(), eval_fn=evaluate)


def test_eval_fn_must_report_nrmse(tmp_path):
    with pytest.raises(ValueError, match="nrmse"):
        prune_iteratively(tiny_model(), tiny_data(), out=tmp_path, train_fn=Trainer(),
                          eval_fn=lambda m, v: {"rmse": 1.0})


def test_pqi_trend_and_summary(tmp_path):
    assert pqi_trend([0.30, 0.20, 0.25, 0.10]) == "-+-"
    assert pqi_trend([0.30, 0.2999, 0.20, 0.10]) == "-"
    assert pqi_trend([0.1, 0.2, 0.2]) == "+"
    assert pqi_trend([0.1]) == ""
    history = {"method": "sap", "scope": "global", "entries": [
        {"iteration": i, "remaining_fraction": f, "val_nrmse": e, "pqi": {"global": g}}
        for i, (f, e, g) in enumerate([(1.0, 0.10, 0.3), (0.7, 0.105, 0.2), (0.5, 0.12, 0.25),
                                       (0.3, 0.109, 0.1)])
    ]}
    summary = summarise_history(history, 1.1)
    assert (summary["best_fraction"], summary["best_iteration"], summary["pqi_trend"]) == (0.3, 3, "-+-")
    assert summarise_history(history, 1.01)["best_fraction"] == 1.0
    path = plot_histories([history, history], tmp_path / "two.png", labels=["a", "b"])
    assert path.read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(ValueError, match="labels"):
        plot_histories([history], tmp_path / "x.png", labels=["a", "b"])


def test_masks_survive_into_the_returned_model(tmp_path):
    model = tiny_model()
    history = prune_iteratively(model, tiny_data(), "lt", "neuron", 2, out=tmp_path, train_fn=Trainer(),
                                eval_fn=evaluate, plot=False)
    alive = sum(int(alive_mask(m, n).sum()) for _, m, n in prunable_parameters(model))
    assert alive == history["entries"][-1]["remaining_total"]


def test_plot_draws_the_given_reference_line(tmp_path, monkeypatch):
    import matplotlib.axes

    history = {"method": "sap", "scope": "global", "entries": [
        {"iteration": i, "remaining_fraction": f, "val_nrmse": e, "pqi": {"global": 0.2}}
        for i, (f, e) in enumerate([(1.0, 0.10), (0.7, 0.12)])]}
    lines = []
    original = matplotlib.axes.Axes.axhline

    def record(self, y=0, *args, **kwargs):
        lines.append((y, kwargs.get("label")))
        return original(self, y, *args, **kwargs)

    monkeypatch.setattr(matplotlib.axes.Axes, "axhline", record)
    plot_histories([history], tmp_path / "ref.png", tolerance=None, reference=(0.0937, "unpruned model"))
    assert lines == [(0.0937, "unpruned model")]
    lines.clear()
    plot_histories([history], tmp_path / "tol.png")
    assert lines == [(pytest.approx(0.11), "1.1 x dense")]
    with pytest.raises(ValueError, match="reference"):
        plot_histories([history], tmp_path / "bad.png", reference=(float("nan"), "x"), overwrite=True)
