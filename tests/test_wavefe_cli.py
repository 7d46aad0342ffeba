"""``jamwave wavefe dataset`` and ``jamwave wavefe solve``."""

from __future__ import annotations

import json

import h5py
import pytest

from jamwave.cli import main


def test_dataset_command(tmp_path, capsys):
    out = tmp_path / "d.h5"
    argv = ["wavefe", "dataset", "--samples", "3", "--grid", "12", "--frames", "4", "--save-every", "2",
            "--speed", "uniform", "--source", "ricker", "--boundary", "neumann", "--seed", "2",
            "--out", str(out), "--workers", "1"]
    assert main(argv) == 0
    with h5py.File(out) as f:
        assert f["fields/u"].shape == (3, 4, 13, 13)
        assert f.attrs["boundary"] == "neumann" and f.attrs["seed"] == 2
        assert f["params/c0"].shape == (3,)
    assert (tmp_path / "d.xdmf").exists()
    assert (tmp_path / "d.png").read_bytes()[:4] == b"\x89PNG"
    assert main(argv) == 2  # exists, no --force
    assert "--force" in capsys.readouterr().err
    assert main([*argv, "--force"]) == 0


def test_dataset_granular_table(tmp_path):
    table = tmp_path / "mix.json"
    table.write_text(json.dumps([{"K_star": 0.1, "phi": 0.66}, {"K": 50, "phi": 0.7, "k_n": 100}]))
    out = tmp_path / "g.h5"
    assert main(["wavefe", "dataset", "--samples", "2", "--grid", "10", "--frames", "3", "--speed",
                 "granular", "--granular", str(table), "--out", str(out), "--workers", "1"]) == 0
    with h5py.File(out) as f:
        assert list(f["granular/phi"][:]) == [0.66, 0.7]


def test_splits_command(tmp_path):
    assert main(["wavefe", "splits", "--train", "2", "--val", "1", "--test", "0", "--grid", "8",
                 "--frames", "3", "--out", str(tmp_path / "ds"), "--workers", "1", "--seed", "4"]) == 0
    with h5py.File(tmp_path / "ds" / "train.h5") as f, h5py.File(tmp_path / "ds" / "val.h5") as g:
        assert f["fields/u"].shape[0] == 2 and g["fields/u"].shape[0] == 1
        assert g.attrs["split"] == "val" and g.attrs["seed"] == 4
    assert not (tmp_path / "ds" / "test.h5").exists()


def test_solve_writes_png(tmp_path):
    png = tmp_path / "s.png"
    for integrator in ("explicit", "newmark"):
        assert main(["wavefe", "solve", "--grid", "24", "--frames", "4", "--save-every", "10",
                     "--integrator", integrator, "--out", str(png), "--force"]) == 0
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("args, fragment", [
    (["--grid", "1"], "--grid"),
    (["--cfl", "1.5"], "--cfl"),
    (["--speed", "foam"], "--speed"),
    (["--c-min", "3"], "--c-min"),
    (["--speed", "granular"], "granular"),
    (["--granular", "nope.h5", "--speed", "granular"], "does not exist"),
])
def test_bad_arguments_exit_2(tmp_path, capsys, args, fragment):
    status = None
    try:
        status = main(["wavefe", "dataset", "--samples", "1", "--out", str(tmp_path / "x.h5"), *args])
    except SystemExit as exc:
        status = exc.code
    assert status == 2
    err = capsys.readouterr().err
    assert fragment in err and err.strip().count("\n") == 0


def test_the_command_line_offers_the_library_choices():
    from jamwave.commands import wavefe as command
    from wavefe import samples

    assert (command.SPEEDS, command.SOURCES, command.BOUNDARIES) == (
        samples.SPEEDS, samples.SOURCES, samples.BOUNDARIES)
