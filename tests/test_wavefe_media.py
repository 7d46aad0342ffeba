"""Wave-speed fields and the granular link c = sqrt(K / (phi rho_grain))."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from wavefe import media, mesh, sources


@pytest.fixture
def points():
    return mesh.rectangle(20).points


def _packing(path, phi, K=None, K_star=None, k_n=1.0, delta=0.5, x_small=0.3):
    """A small file with the packing layout written by `granular` (scalar datasets)."""
    with h5py.File(path, "w") as f:
        f["/jamwave/results/phi"] = phi
        f["/jamwave/results/delta"] = delta
        f["/jamwave/results/x_small"] = x_small
        f["/jamwave/results/k_n"] = k_n
        if K is not None:
            f["/jamwave/modulus/K"] = K
        if K_star is not None:
            f["/jamwave/modulus/K_star"] = K_star
    return path


def test_uniform_layered_random(points):
    assert np.all(media.uniform(points, 2.5) == 2.5)
    c = media.layered(points, [1.0, 2.0, 3.0], [0.3, 0.6])
    y = points[:, 1]
    assert np.all(c[y < 0.3] == 1.0) and np.all(c[(y >= 0.3) & (y < 0.6)] == 2.0) and np.all(c[y >= 0.6] == 3)
    r = media.random_smooth(points, np.random.default_rng(0), 1.0, 2.0, correlation_length=0.3)
    assert r.min() == pytest.approx(1.0) and r.max() == pytest.approx(2.0)
    # smooth: neighbouring nodes differ by far less than the range
    grid = r.reshape(21, 21)
    assert np.abs(np.diff(grid, axis=1)).max() < 0.35
    r2 = media.random_smooth(points, np.random.default_rng(0), 1.0, 2.0, correlation_length=0.3)
    np.testing.assert_array_equal(r, r2)
    with pytest.raises(ValueError, match="c_min"):
        media.random_smooth(points, np.random.default_rng(0), 2.0, 1.0)
    with pytest.raises(ValueError, match="speeds needs"):
        media.layered(points, [1.0], [0.5])
    with pytest.raises(ValueError, match="c must"):
        media.uniform(points, 0.0)


def test_granular_table_units(points):
    labels = media.layer_labels(points, [0.5])
    table = [{"K_star": 0.08, "phi": 0.64}, {"K": 200.0, "phi": 0.7, "k_n": 1000.0, "d_L": 1.0}]
    c = media.from_granular(labels, table, speed_scale=2.0)
    assert c[labels == 0][0] == pytest.approx(2.0 * np.sqrt(0.08 / 0.64))
    assert c[labels == 1][0] == pytest.approx(2.0 * np.sqrt(0.2 / 0.7))  # K* = K d_L / k_n = 0.2
    with pytest.raises(ValueError, match="labels"):
        media.from_granular(labels, table[:1])
    with pytest.raises(ValueError, match="phi"):
        media.from_granular(labels, [{"K_star": 0.1, "phi": 1.2}] * 2)
    with pytest.raises(ValueError, match="'K' or 'K_star'"):
        media.material({"phi": 0.6})
    with pytest.raises(ValueError, match="speed_scale"):
        media.from_granular(labels, table, speed_scale=-1)


def test_granular_packing_files(tmp_path, points):
    a = _packing(tmp_path / "a.h5", phi=0.66, K=30.0, k_n=100.0)
    b = _packing(tmp_path / "b.h5", phi=0.70, K_star=0.5, delta=0.15, x_small=0.2)
    mat = media.read_material(b)
    assert (mat.delta, mat.x_small) == (0.15, 0.2)
    labels = media.voronoi_labels(points, [[0.25, 0.25], [0.75, 0.75]])
    c = media.from_granular(labels, [a, str(b)])
    assert c[0] == pytest.approx(np.sqrt(0.3 / 0.66))
    assert c[-1] == pytest.approx(np.sqrt(0.5 / 0.70))
    with h5py.File(tmp_path / "bad.h5", "w") as f:
        f["/jamwave/results/phi"] = 0.6
    with pytest.raises(ValueError, match="lacks /jamwave/modulus"):
        media.read_material(tmp_path / "bad.h5")
    with h5py.File(tmp_path / "bad.h5", "a") as f:
        f["/jamwave/modulus/K"] = 0.6  # K without K_star or k_n: the unit is unknown
    with pytest.raises(ValueError, match="no contact stiffness"):
        media.read_material(tmp_path / "bad.h5")
    with h5py.File(tmp_path / "bad.h5", "a") as f:
        f["/jamwave/results/k_n"] = 2.0
    assert media.read_material(tmp_path / "bad.h5").K_star == pytest.approx(0.3)


def test_sources():
    assert sources.ricker(1.5 / 4.0, 4.0) == pytest.approx(1.0)
    assert abs(sources.ricker(0.0, 4.0)) < 2e-4
    # zero mean: the integral of a Ricker wavelet vanishes
    t = np.linspace(0, 2, 20001)
    assert abs(np.trapezoid(sources.ricker(t, 4.0), t)) < 1e-6
    rng = np.random.default_rng(0)
    s = sources.sample_ricker(rng, (0, 1, 0, 1), frequency=(3, 4))
    assert 0.1 <= s.x <= 0.9 and 3 <= s.frequency <= 4
    p = sources.sample_pulse(rng, (0, 1, 0, 1))
    assert p(np.array([[p.x, p.y]]))[0] == pytest.approx(p.amplitude)
    with pytest.raises(ValueError, match="frequency"):
        sources.RickerSource(0.5, 0.5, frequency=-1.0)
    with pytest.raises(ValueError, match="width"):
        sources.sample_pulse(rng, (0, 1, 0, 1), width=(0.0, 0.1))


def test_foreign_packing_file_uses_its_own_packing_fraction(tmp_path):
    """An H5MD packing from another tool, with only /jamwave/modulus added by `granular modulus`:
    phi comes from the stored particles, k_n from /parameters/jamwave/law."""
    from granular.h5md import read_packing
    from tests.test_granular_h5md_forms import write

    path = tmp_path / "foreign.h5"
    write(path, "fixed_properties")
    with h5py.File(path, "a") as f:
        f["/parameters/jamwave/law/k_n"] = 50.0
        f["/jamwave/modulus/K"] = 10.0
    mat = media.read_material(path)
    assert mat.phi == pytest.approx(read_packing(path).packing_fraction)
    assert mat.k_n == 50.0 and mat.K_star == pytest.approx(10.0 / 50.0)
    assert np.isnan(mat.delta)
