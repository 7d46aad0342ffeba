"""The frame forcing ``/fields/f``: the sources' share of each frame's second difference."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

import wavefe
import wavefe.dataset as dataset
from wavefe import assemble
from wavefe.samples import DatasetConfig
from wavefe.sources import RickerSource, ricker


@pytest.mark.parametrize("k", [1, 4, 16])
def test_forcing_is_the_second_difference_without_stiffness(k):
    # With a vanishing speed the scheme is u^{m+1} - 2u^m + u^{m-1} = a^m, so the frame-level second
    # difference must equal the forcing exactly, for any stride.
    m = wavefe.rectangle(12)
    src = [RickerSource(0.43, 0.57, frequency=5.0, amplitude=0.7), RickerSource(0.21, 0.3, 4.0)]
    sim = wavefe.ExplicitWave(m, np.full(m.n_nodes, 1e-9), dt=0.4 / k, boundary="absorbing", sources=src)
    forcing = sim.frame_forcing(10, k)
    u = sim.run(10, k, dtype=np.float64)
    d2 = u[2:] - 2 * u[1:-1] + u[:-2]
    assert np.abs(forcing).max() > 1e-3
    np.testing.assert_allclose(d2, forcing[1:-1], rtol=0, atol=1e-12 * np.abs(forcing).max())


def test_forcing_rejects_bad_arguments():
    m = wavefe.rectangle(4)
    sim = wavefe.ExplicitWave(m, np.ones(m.n_nodes), dt=0.01)
    with pytest.raises(ValueError, match="save_every"):
        sim.frame_forcing(3, 0)
    assert np.all(sim.frame_forcing(3, 2) == 0)  # no sources, no forcing


def _expected(f, s: int, k: int) -> np.ndarray:
    """The forcing of sample ``s`` rebuilt from the file's params and wavefe.sources alone."""
    mesh = wavefe.rectangle(len(f["x"]) - 1)
    dt = float(f.attrs["dt"])
    gamma = dt**2 / assemble.lumped_mass(mesh)  # sources sit inside: no damping at their nodes
    n = f["fields/u"].shape[1]
    j = np.arange(-(k - 1), k)
    times = dt * (k * np.arange(n)[:, None] + j)
    out = np.zeros((n, mesh.n_nodes))
    for q in range(f["params/source_x"].shape[1]):
        x, y = f["params/source_x"][s, q], f["params/source_y"][s, q]
        g = f["params/amplitude"][s, q] * ricker(times, f["params/frequency"][s, q]) @ (k - np.abs(j))
        e, lam = assemble.locate(mesh, x, y)
        out[:, mesh.cells[e]] += g[:, None] * (lam * gamma[mesh.cells[e]])[None, :]
    return out.reshape(n, *f["fields/u"].shape[2:])


def test_dataset_stores_forcing_for_ricker_only(tmp_path):
    cfg = DatasetConfig(speed="layered", source="ricker", grid=12, n_frames=8, save_every=5, n_sources=2)
    path = dataset.generate_dataset(tmp_path / "r.h5", 3, config=cfg, seed=3, workers=1, batch=2)
    with h5py.File(path, "r") as f:
        fd = f["fields/f"]
        assert fd.shape == f["fields/u"].shape and fd.dtype == np.float32
        assert "second difference" in fd.attrs["meaning"] or "u[s, n+1]" in fd.attrs["meaning"]
        for s in range(3):
            want = _expected(f, s, 5)
            assert np.abs(want).max() > 1e-4
            np.testing.assert_allclose(fd[s], want, rtol=1e-5, atol=1e-6 * np.abs(want).max())
    assert "f" in dataset.read_sample(path, 1)
    pulse = dataset.generate_dataset(tmp_path / "p.h5", 1, workers=1, grid=8, n_frames=4, save_every=2)
    with h5py.File(pulse, "r") as f:
        assert "fields/f" not in f
    assert "f" not in dataset.read_sample(pulse, 0)
