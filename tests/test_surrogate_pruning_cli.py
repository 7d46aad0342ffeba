"""``jamwave surrogate prune`` / ``compare-pruning`` end to end on a tiny wave surrogate."""

from __future__ import annotations

import json

import pytest
import torch
from surrogate_wavefile import write_wave_file

from jamwave.cli import main
from surrogate.io import load
from surrogate.pruning import alive_mask, load_history, prunable_parameters


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("prune_cli")
    train = write_wave_file(root / "train.h5", samples=3, frames=8, n=12, seed=1)
    val = write_wave_file(root / "val.h5", samples=2, frames=8, n=12, seed=2)
    model = root / "model.pt"
    assert main(["surrogate", "train", "--data", str(train), "--val", str(val), "--out", str(model),
                 "--conv", "cp", "--rank", "2", "--width", "4", "--depth", "1", "--kernel-size", "3",
                 "--epochs", "1", "--batch-size", "8"]) == 0
    return root, str(train), str(val), str(model)


def prune_args(files, out, *extra):
    _, train, val, model = files
    return ["surrogate", "prune", "--model", model, "--data", train, "--val", val, "--out", str(out),
            "--epochs", "1", "--batch-size", "8", "--val-horizon", "4", *extra]


def test_prune_lt_then_sap_and_compare(files, tmp_path, capsys):
    lt, sap = tmp_path / "lt", tmp_path / "sap"
    assert main(prune_args(files, lt, "--method", "lt", "--scope", "layer", "--iterations", "2")) == 0
    assert main(prune_args(files, sap, "--method", "sap", "--scope", "neuron", "--iterations", "2",
                           "--magnitude", "cp-aware")) == 0
    assert load_history(sap)["magnitude"] == "cp-aware" and "magnitude" not in load_history(lt)
    assert all("control" in e for e in load_history(sap)["entries"])
    history = load_history(lt)
    for t, entry in enumerate(history["entries"]):
        for name, size in history["sizes"].items():
            expected = size
            for _ in range(t):
                expected -= expected // 5
            assert entry["remaining"][name] == expected
    model = load(lt / "model.pt")
    alive = sum(int(alive_mask(m, n).sum()) for _, m, n in prunable_parameters(model))
    assert alive == history["entries"][-1]["remaining_total"] < history["total"]
    assert model.extra["pruning"]["method"] == "lt"
    assert {"lift.channel", "lift.vertical", "lift.horizontal", "proj.weight"} <= set(history["sizes"])
    capsys.readouterr()
    out_png, out_json = tmp_path / "cmp.png", tmp_path / "cmp.json"
    assert main(["surrogate", "compare-pruning", str(lt), str(sap), "--out", str(out_png), "--json",
                 str(out_json), "--labels", "LT layer,SAP neuron"]) == 0
    printed = capsys.readouterr().out
    assert "dense nRMSE" in printed and str(sap)[-20:] in printed
    rows = json.loads(out_json.read_text())
    assert [r["method"] for r in rows] == ["lt", "sap"]
    assert out_png.read_bytes()[:4] == b"\x89PNG"
    assert main(["surrogate", "compare-pruning", str(lt), "--out", str(out_png)]) == 2  # exists, no --force
    assert main(["surrogate", "compare-pruning", str(lt), "--out", str(out_png), "--force",
                 "--labels", "a,b"]) == 2


def test_rerun_resumes_and_rewind_modes(files, tmp_path):
    out = tmp_path / "run"
    args = prune_args(files, out, "--method", "oneshot", "--iterations", "1")
    assert main(args) == 0
    first = load_history(out)
    assert main(args) == 0  # complete: nothing recomputed
    assert load_history(out) == first
    assert main(prune_args(files, out, "--method", "sap", "--iterations", "1")) == 2  # other settings
    # --rewind model: survivors go back to the weights of --model, so iteration 1 starts from them.
    out2 = tmp_path / "from_model"
    assert main(prune_args(files, out2, "--rewind", "model", "--iterations", "1", "--method", "lt")) == 0
    ckpt = torch.load(out2 / "checkpoint.pt", weights_only=True)
    saved = load(files[3])
    assert torch.equal(ckpt["initial"]["lift.channel"], saved.lift.channel.detach())


@pytest.mark.parametrize("extra", [["--beta", "1.5"], ["--method", "random"], ["--iterations", "-1"],
                                   ["--amount", "2"], ["--scope", "row"]])
def test_bad_arguments_exit_2(files, tmp_path, extra, capsys):
    with pytest.raises(SystemExit) as info:
        main(prune_args(files, tmp_path / "x", *extra))
    assert info.value.code == 2
    assert capsys.readouterr().err.strip().count("\n") == 0


def test_p_not_below_q_exits_2(files, tmp_path, capsys):
    assert main(prune_args(files, tmp_path / "x", "--p", "1", "--q", "0.5")) == 2
    assert "--q" in capsys.readouterr().err
