"""The matrix-free stencil kernel against the assembled CSR operator; the CFL check; batching."""

from __future__ import annotations

import numpy as np
import pytest

from wavefe import assemble, mesh, stencil
from wavefe.explicit import ExplicitWave, stable_dt
from wavefe.sources import GaussianPulse, RickerSource


def _medium(m, seed=0):
    return 1.0 + np.random.default_rng(seed).random(m.n_nodes)


def test_stencil_equals_csr_operator():
    m = mesh.rectangle(13, 9, 1.3, 0.8)  # hx != hy
    c = _medium(m)
    c2e = assemble.element_c2(m, c)
    K = assemble.stiffness(m, c2e)
    wx, wy = stencil.edge_weights(m, c2e)
    u = np.random.default_rng(3).standard_normal(m.n_nodes)
    ku = stencil.apply_stencil(u.reshape(m.node_shape), wx, wy).ravel()
    np.testing.assert_allclose(ku, K @ u, rtol=0, atol=1e-13 * abs(K @ u).max())
    # The mesh's diagonals carry no coupling: K has at most 5 non-zeros per row.
    K.eliminate_zeros()
    assert np.diff(K.indptr).max() == 5


@pytest.mark.parametrize("boundary", ["dirichlet", "neumann", "absorbing",
                                      {"left": "absorbing", "top": "neumann"}])
def test_stencil_kernel_equals_csr_kernel(boundary):
    m = mesh.rectangle(20, 14, 1.0, 0.7)
    c = _medium(m, 1)
    dt = 0.9 * stable_dt(m, c)
    src = [RickerSource(0.31, 0.42, frequency=4.0)]
    u0 = GaussianPulse(0.5, 0.35, 0.08)(m.points)
    runs = []
    for method in ("stencil", "csr"):
        sim = ExplicitWave(m, c, dt=dt, boundary=boundary, sources=src, method=method)
        sim.set_state(u0)
        runs.append(sim.run(6, save_every=25, dtype=np.float64))
    scale = np.abs(runs[1]).max()
    np.testing.assert_allclose(runs[0], runs[1], rtol=0, atol=1e-12 * scale)


def test_csr_path_on_general_mesh_matches_stencil_on_same_triangles():
    s = mesh.rectangle(10, 10)
    g = mesh.from_arrays(s.points, s.cells)
    c = _medium(s, 2)
    dt = 0.9 * stable_dt(s, c)
    u0 = GaussianPulse(0.5, 0.5, 0.1)(s.points)
    out = []
    for m in (s, g):
        sim = ExplicitWave(m, c, dt=dt, boundary="absorbing")
        sim.set_state(u0)
        sim.advance(101)
        out.append(sim.u)
    np.testing.assert_allclose(out[0], out[1], atol=1e-13)


def test_batch_equals_single_runs_and_float32_tracks_float64():
    m = mesh.rectangle(16)
    cs = np.stack([_medium(m, k) for k in range(3)])
    dt = 0.8 * stable_dt(m, cs)
    srcs = [[RickerSource(0.3 + 0.1 * k, 0.5, 5.0)] for k in range(3)]
    batch = ExplicitWave(m, cs, dt=dt, boundary="absorbing", sources=srcs)
    frames = batch.run(4, save_every=30, dtype=np.float64)
    assert frames.shape == (3, 4, m.n_nodes)
    for k in range(3):
        one = ExplicitWave(m, cs[k], dt=dt, boundary="absorbing", sources=srcs[k])
        np.testing.assert_allclose(frames[k], one.run(4, save_every=30, dtype=np.float64), atol=1e-14)
    single = ExplicitWave(m, cs, dt=dt, boundary="absorbing", sources=srcs, dtype=np.float32)
    f32 = single.run(4, save_every=30)
    assert f32.dtype == np.float32
    np.testing.assert_allclose(f32, frames, atol=1e-4 * np.abs(frames).max())


def test_cfl_limit_is_sharp_and_checked():
    m = mesh.rectangle(16, 16)
    c = np.full(m.n_nodes, 2.0)
    h = 1 / 16
    assert stable_dt(m, c) == pytest.approx(h / (2.0 * np.sqrt(2)), rel=1e-12)
    with pytest.raises(ValueError, match="CFL"):
        ExplicitWave(m, c, dt=1.01 * stable_dt(m, c))
    u0 = np.random.default_rng(0).standard_normal(m.n_nodes)
    for factor, grows in ((0.98, False), (1.05, True)):
        sim = ExplicitWave(m, c, dt=factor * stable_dt(m, c), check_cfl=False)
        sim.set_state(u0)
        sim.advance(400)
        assert (np.abs(sim.u).max() > 1e3 * np.abs(u0).max()) == grows


def test_reciprocity_of_point_sources():
    """Swapping source and receiver leaves the recorded trace unchanged (symmetric K and M)."""
    m = mesh.rectangle(24)
    c = _medium(m, 4)
    dt = 0.8 * stable_dt(m, c)
    a, b = (0.27, 0.33), (0.71, 0.62)
    traces = []
    for src, rec in ((a, b), (b, a)):
        sim = ExplicitWave(m, c, dt=dt, boundary="absorbing", sources=[RickerSource(*src, 6.0)])
        w = assemble.point_load(m, *rec).toarray().ravel()
        traces.append(sim.run(40, save_every=5, dtype=np.float64) @ w)
    assert np.abs(traces[0]).max() > 1e-4
    np.testing.assert_allclose(traces[0], traces[1], atol=1e-10 * np.abs(traces[0]).max())


def test_bad_input():
    m = mesh.rectangle(4)
    with pytest.raises(ValueError, match="c must"):
        ExplicitWave(m, -np.ones(m.n_nodes), dt=0.01)
    with pytest.raises(ValueError, match="method"):
        ExplicitWave(m, np.ones(m.n_nodes), dt=0.01, method="magic")
    with pytest.raises(ValueError, match="structured"):
        ExplicitWave(mesh.from_arrays(m.points, m.cells), np.ones(m.n_nodes), dt=0.01, method="stencil")
    with pytest.raises(ValueError, match="dt"):
        ExplicitWave(m, np.ones(m.n_nodes), dt=0.0)


def test_stable_dt_with_free_sides():
    m = mesh.rectangle(16)
    c = np.ones(m.n_nodes)
    bound = stable_dt(m, c, "neumann")
    exact = stable_dt(m, c, "neumann", exact=True)
    assert bound < exact < stable_dt(m, c, "dirichlet") * 1.0001
    sim = ExplicitWave(m, c, dt=0.99 * exact, boundary="neumann")  # above the bound: accepted
    sim.set_state(np.random.default_rng(1).standard_normal(m.n_nodes))
    sim.advance(500)
    assert np.abs(sim.u).max() < 100
    with pytest.raises(ValueError, match="CFL"):
        ExplicitWave(m, c, dt=1.01 * exact, boundary="neumann")
