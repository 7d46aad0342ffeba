"""Reading wave datasets by schema: windows, selections, lazy vs preloaded, normalisation, errors."""

from __future__ import annotations

import pickle

import h5py
import numpy as np
import pytest
import torch
from surrogate_wavefile import write_wave_file
from torch.utils.data import DataLoader

from surrogate.data import Normalisation, WaveWindows, load_trajectories, read_info


@pytest.fixture(scope="module")
def wave_file(tmp_path_factory):
    return write_wave_file(tmp_path_factory.mktemp("data") / "train.h5", samples=3, frames=7, n=12)


def test_info(wave_file):
    info = read_info(wave_file)
    assert (info.n_samples, info.n_frames, info.ny, info.nx) == (3, 7, 12, 12)
    assert info.save_every == 2
    assert info.frame_dt == pytest.approx(2 * info.dt)
    assert info.h == pytest.approx(1 / 11)


@pytest.mark.parametrize("preload", [False, True])
def test_windows_are_consecutive_frames(wave_file, preload):
    ds = WaveWindows(wave_file, preload=preload)
    assert len(ds) == 3 * 5
    with h5py.File(wave_file) as f:
        u, c = f["fields/u"][:], f["fields/c"][:]
    for index, (s, n) in {0: (0, 1), 4: (0, 5), 5: (1, 1), 14: (2, 5)}.items():
        x, y = ds[index]
        assert x.shape == (3, 12, 12) and y.shape == (1, 12, 12) and x.dtype == torch.float32
        np.testing.assert_array_equal(x[0].numpy(), u[s, n - 1])
        np.testing.assert_array_equal(x[1].numpy(), u[s, n])
        np.testing.assert_array_equal(x[2].numpy(), c[s])
        np.testing.assert_array_equal(y[0].numpy(), u[s, n + 1])
    with pytest.raises(IndexError):
        ds[15]


def test_selection_of_samples_and_frames(wave_file):
    ds = WaveWindows(wave_file, samples=[2, 0], frames=4)
    assert len(ds) == 2 * 2
    with h5py.File(wave_file) as f:
        np.testing.assert_array_equal(ds[2][1][0].numpy(), f["fields/u"][2, 2])
    u, c = load_trajectories(ds)
    assert u.shape == (2, 4, 12, 12) and c.shape == (2, 12, 12)
    u1, _ = load_trajectories(wave_file, samples=1, frames=5)
    assert u1.shape == (1, 5, 12, 12)
    with pytest.raises(ValueError, match="frames"):
        WaveWindows(wave_file, frames=2)
    with pytest.raises(ValueError, match="samples"):
        WaveWindows(wave_file, samples=[5])


def test_lazy_dataset_pickles_and_works_in_worker_processes(wave_file):
    ds = WaveWindows(wave_file)
    ds[0]  # opens a handle in this process
    clone = pickle.loads(pickle.dumps(ds))
    torch.testing.assert_close(clone[3][0], ds[3][0])
    batches = list(DataLoader(ds, batch_size=5, num_workers=1))
    torch.testing.assert_close(torch.cat([b[1] for b in batches]), torch.stack([ds[i][1] for i in range(15)]))


def test_other_schema_and_bad_shapes_are_clear_errors(tmp_path, wave_file):
    other = write_wave_file(tmp_path / "other.h5", samples=1, frames=4, n=8, schema="someone.else/2")
    with pytest.raises(ValueError, match="schema"):
        WaveWindows(other)
    bad = tmp_path / "bad.h5"
    with h5py.File(bad, "w") as f:
        f.attrs["schema"] = "jamwave.wave2d/1"
        f["fields/u"] = np.zeros((2, 5, 8, 8), np.float32)
        f["fields/c"] = np.ones((2, 8, 9), np.float32)
    with pytest.raises(ValueError, match="/fields/c"):
        read_info(bad)
    with pytest.raises(ValueError, match="does not exist"):
        read_info(tmp_path / "missing.h5")
    text = tmp_path / "text.h5"
    text.write_text("not hdf5")
    with pytest.raises(ValueError, match="HDF5"):
        read_info(text)


def test_normalisation_matches_numpy(wave_file):
    u, c = load_trajectories(wave_file)
    norm = Normalisation.from_dataset(wave_file)
    u64 = u.astype(np.float64)
    assert norm.u_scale == pytest.approx(np.sqrt(np.mean(u64**2)), rel=1e-12)
    d2 = u64[:, 2:] - 2 * u64[:, 1:-1] + u64[:, :-2]
    assert norm.du_scale == pytest.approx(np.sqrt(np.mean(d2**2)), rel=1e-12)
    assert norm.c_mean == pytest.approx(c.astype(np.float64).mean())
    assert Normalisation.from_dict(norm.to_dict()) == norm
    # A uniform medium: the spread falls back to the mean so the speed channel stays finite.
    uniform = Normalisation.from_arrays(u, np.full_like(c, 2.0))
    assert uniform.c_scale == pytest.approx(2.0)
    with pytest.raises(ValueError, match="all-zero"):
        Normalisation.from_arrays(np.zeros_like(u), c)


def test_multi_step_windows(wave_file):
    ds = WaveWindows(wave_file, steps=3, preload=True)
    assert len(ds) == 3 * (7 - 1 - 3)
    x, y = ds[4]  # sample 1, n = 2
    with h5py.File(wave_file) as f:
        u = f["fields/u"][1]
    np.testing.assert_array_equal(x[1].numpy(), u[2])
    np.testing.assert_array_equal(y.numpy(), u[3:6])
    with pytest.raises(ValueError, match="steps"):
        WaveWindows(wave_file, steps=6)


def test_surrogate_never_imports_wavefe_or_granular():
    import subprocess
    import sys

    code = ("import sys, surrogate, surrogate.costs, surrogate.plots, surrogate.io; "
            "bad = [m for m in ('wavefe', 'granular') if m in sys.modules]; "
            "assert not bad, bad")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
