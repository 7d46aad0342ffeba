"""Export to The Well's layout: the files follow their data_format.md (checked with plain h5py) and
``the_well.data.WellDataset`` loads them, sample for sample equal to ours."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from jamwave.cli import main
from wavefe import dataset
from wavefe.samples import DatasetConfig
from wavefe.well import export_the_well

CONFIG = DatasetConfig(grid=8, n_frames=6, save_every=2, boundary="dirichlet")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("well")
    train = dataset.generate_dataset(root / "train.h5", 3, config=CONFIG, workers=1, seed=1)
    test = dataset.generate_dataset(root / "test.h5", 2, config=CONFIG, workers=1, seed=1, split="test")
    out = root / "export"
    paths = export_the_well({"train": train, "test": test}, out, name="waves")
    return {"train": train, "test": test, "out": out, "paths": paths}


def _text(v):
    return v.decode() if isinstance(v, bytes) else str(v)


def test_layout_follows_the_well_spec(exported):
    path = exported["paths"]["train"]
    assert path == exported["out"] / "data" / "train" / "waves.hdf5"
    with h5py.File(exported["train"]) as src, h5py.File(path) as f:
        assert _text(f.attrs["dataset_name"]) == "waves" and _text(f.attrs["grid_type"]) == "cartesian"
        assert f.attrs["n_spatial_dims"] == 2 and f.attrs["n_trajectories"] == 3
        assert [_text(d) for d in f["dimensions"].attrs["spatial_dims"]] == ["x", "y"]
        assert np.allclose(f["dimensions/time"][:], src["t"][:])
        assert f["dimensions/time"].attrs["sample_varying"] == np.False_
        for axis in ("x", "y"):
            assert np.allclose(f[f"dimensions/{axis}"][:], src[axis][:])
            assert not f[f"dimensions/{axis}"].attrs["time_varying"]
        assert [_text(n) for n in f["t0_fields"].attrs["field_names"]] == ["u", "c"]
        u, c = f["t0_fields/u"], f["t0_fields/c"]
        assert u.dtype == np.float32 and u.shape == (3, 6, 9, 9)
        assert list(u.attrs["dim_varying"]) == [True, True]
        assert u.attrs["sample_varying"] and u.attrs["time_varying"]
        assert c.shape == (3, 9, 9) and c.attrs["sample_varying"] and not c.attrs["time_varying"]
        # stored (x, y): t0_fields/u[b, t, i, j] is our /fields/u[b, t, j, i]
        assert np.array_equal(u[1, 4], src["fields/u"][1, 4].T)
        assert np.array_equal(c[2], src["fields/c"][2].T)
        for order in ("t1_fields", "t2_fields"):
            assert len(f[order].attrs["field_names"]) == 0
        for axis, n in (("x", 9), ("y", 9)):
            bc = f[f"boundary_conditions/{axis}_boundary"]
            assert _text(bc.attrs["bc_type"]) == "wall"  # Dirichlet sides reflect
            assert [_text(d) for d in bc.attrs["associated_dims"]] == [axis]
            mask = bc["mask"][:]
            assert mask.shape == (n,) and mask[0] and mask[-1] and mask[1:-1].sum() == 0
            assert np.array_equal(bc["values"][:], [0.0, 0.0])
        names = [_text(n) for n in f["scalars"].attrs["field_names"]]
        assert {"dt", "h", "save_every", "dt_frame"} <= set(names)
        assert f["scalars/dt"][()] == pytest.approx(src.attrs["dt"])
        assert f.attrs["dt"] == pytest.approx(src.attrs["dt"])
        for name in names:
            s = f[f"scalars/{name}"]
            assert s.shape == ((3,) if s.attrs["sample_varying"] else ())
        sampled = [n for n in names if f[f"scalars/{n}"].attrs["sample_varying"]]
        assert sampled, "per-sample inputs (/params) become sample-varying scalars"


def test_the_well_loader_returns_our_samples(exported):
    well = pytest.importorskip("the_well.data")
    ds = well.WellDataset(path=str(exported["out"]), well_split_name="train", n_steps_input=2,
                          n_steps_output=1, use_normalization=False)
    assert ds.metadata.dataset_name == "waves"
    assert ds.metadata.n_spatial_dims == 2 and tuple(ds.metadata.spatial_resolution) == (9, 9)
    assert ds.metadata.field_names[0] == ["u"] and ds.metadata.constant_field_names[0] == ["c"]
    windows = 6 - 3 + 1
    assert len(ds) == 3 * windows
    with h5py.File(exported["train"]) as src:
        u, c, x, y = src["fields/u"][:], src["fields/c"][:], src["x"][:], src["y"][:]
    for b, t0 in ((0, 0), (2, 3), (1, 1)):
        item = ds[b * windows + t0]
        ours_in = np.swapaxes(u[b, t0:t0 + 2], -1, -2)[..., None]
        ours_out = np.swapaxes(u[b, t0 + 2:t0 + 3], -1, -2)[..., None]
        assert np.array_equal(item["input_fields"].numpy(), ours_in)
        assert np.array_equal(item["output_fields"].numpy(), ours_out)
        assert np.array_equal(item["constant_fields"].numpy(), c[b].T[..., None])
        grid = item["space_grid"].numpy()
        assert np.allclose(grid[..., 0], x[:, None]) and np.allclose(grid[..., 1], y[None, :])
    assert item["boundary_conditions"].tolist() == [[0.0, 0.0], [0.0, 0.0]]  # WALL on both axes
    test = well.WellDataset(path=str(exported["out"] / "data" / "test"), n_steps_input=2, n_steps_output=1)
    assert len(test) == 2 * windows


def test_cli_export_and_refusals(exported, tmp_path, capsys):
    out = tmp_path / "w"
    argv = ["wavefe", "export", "--format", "the-well", "--train", str(exported["train"]), "--valid",
            str(exported["test"]), "--out", str(out)]
    assert main(argv) == 0
    assert (out / "data" / "valid" / "jamwave_wave2d.hdf5").exists()
    assert main(argv) == 2  # exists, no --force
    assert "--force" in capsys.readouterr().err
    assert main([*argv, "--force"]) == 0
    assert main(["wavefe", "export", "--format", "the-well", "--out", str(tmp_path / "e")]) == 2
    assert "nothing to export" in capsys.readouterr().err
