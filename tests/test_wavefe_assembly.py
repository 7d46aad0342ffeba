"""wavefe meshes and vectorised assembly, checked against identities and against scikit-fem."""

from __future__ import annotations

import numpy as np
import pytest

from wavefe import assemble, mesh


def _jittered(n=6, seed=0):
    """A general (unstructured) mesh: the structured one with interior nodes moved."""
    m = mesh.rectangle(n)
    rng = np.random.default_rng(seed)
    pts = m.points.copy()
    inner = np.ones(m.n_nodes, bool)
    inner[m.boundary_nodes()] = False
    pts[inner] += rng.uniform(-0.25, 0.25, (inner.sum(), 2)) / n
    return mesh.from_arrays(pts, m.cells[:, [0, 2, 1]])  # clockwise input, re-oriented


def test_rectangle_layout():
    m = mesh.rectangle(4, 3, lx=2.0, ly=1.5)
    assert m.n_nodes == 5 * 4 and m.n_cells == 2 * 4 * 3
    assert m.node_shape == (4, 5)
    np.testing.assert_allclose(m.points[7], [2 * 0.5, 1 * 0.5])  # p = j (nx + 1) + i
    assert np.all(m.cell_areas() > 0)
    np.testing.assert_allclose(m.cell_areas().sum(), 3.0)
    assert len(m.boundary_edges) == 2 * (4 + 3)
    left = m.boundary_nodes([0])
    np.testing.assert_allclose(m.points[left, 0], 0.0)
    top = m.boundary_nodes([3])
    np.testing.assert_allclose(m.points[top, 1], 1.5)


def test_from_arrays_orients_and_finds_boundary():
    m = _jittered()
    assert np.all(m.cell_areas() > 0)
    np.testing.assert_allclose(m.cell_areas().sum(), 1.0)
    assert len(m.boundary_edges) == 4 * 6
    assert set(np.unique(m.boundary_sides)) == {0, 1, 2, 3}
    with pytest.raises(ValueError, match="degenerate"):
        mesh.from_arrays([[0, 0], [1, 0], [2, 0]], [[0, 1, 2]])
    with pytest.raises(ValueError, match="cells must index"):
        mesh.from_arrays([[0, 0], [1, 0], [0, 1]], [[0, 1, 3]])
    with pytest.raises(ValueError, match="nx"):
        mesh.rectangle(0)


@pytest.mark.parametrize("make", [lambda: mesh.rectangle(5, 4, 1.0, 0.7), _jittered])
def test_matrix_identities(make):
    m = make()
    rng = np.random.default_rng(1)
    c = 1 + rng.random(m.n_nodes)
    K = assemble.stiffness(m, assemble.element_c2(m, c))
    M = assemble.mass(m)
    assert abs(K - K.T).max() < 1e-13
    np.testing.assert_allclose(K @ np.ones(m.n_nodes), 0, atol=1e-12)  # constants in the kernel
    # Exact energy of a linear function: int c^2 |grad u|^2 with c^2 interpolated linearly.
    u = 2 * m.points[:, 0] - m.points[:, 1]
    c2e = assemble.element_c2(m, c)
    np.testing.assert_allclose(u @ K @ u, 5 * np.sum(c2e * m.cell_areas()), rtol=1e-12)
    np.testing.assert_allclose(M.sum(), m.cell_areas().sum(), rtol=1e-12)
    np.testing.assert_allclose(assemble.lumped_mass(m), np.asarray(M.sum(axis=1)).ravel(), rtol=1e-12)
    C = assemble.boundary_damping(m, np.ones(m.n_nodes), "absorbing")
    xmin, xmax, ymin, ymax = m.bounds
    np.testing.assert_allclose(C.sum(), 2 * (xmax - xmin + ymax - ymin), rtol=1e-12)  # perimeter
    C2 = assemble.boundary_damping(m, np.ones(m.n_nodes), {"left": "absorbing"})
    assert C2.sum() == pytest.approx(ymax - ymin)


def test_point_load_is_barycentric():
    m = _jittered()
    b = assemble.point_load(m, 0.37, 0.61).toarray().ravel()
    assert b.sum() == pytest.approx(1.0)
    assert np.count_nonzero(b) <= 3
    linear = 3 * m.points[:, 0] + 2 * m.points[:, 1] + 1
    assert b @ linear == pytest.approx(3 * 0.37 + 2 * 0.61 + 1)
    s = mesh.rectangle(8)
    np.testing.assert_allclose(assemble.point_load(s, 0.37, 0.61).toarray().ravel() @ (
        3 * s.points[:, 0] + 2 * s.points[:, 1] + 1), 3 * 0.37 + 2 * 0.61 + 1)
    with pytest.raises(ValueError, match="outside"):
        assemble.point_load(s, 1.5, 0.5)


def test_boundary_spec_errors():
    with pytest.raises(ValueError, match="boundary for side 'left'"):
        assemble.side_kinds({"left": "sticky"})
    with pytest.raises(ValueError, match="boundary sides"):
        assemble.side_kinds({"north": "absorbing"})
    assert assemble.side_kinds("neumann") == ("neumann",) * 5


@pytest.mark.parametrize("make", [lambda: mesh.rectangle(6, 5, 1.2, 1.0), _jittered])
def test_against_scikit_fem(make):
    skfem = pytest.importorskip("skfem")
    from skfem.helpers import dot, grad

    m = make()
    rng = np.random.default_rng(2)
    c = 0.5 + rng.random(m.n_nodes)
    sk_mesh = skfem.MeshTri(m.points.T.copy(), m.cells.T.copy())
    basis = skfem.Basis(sk_mesh, skfem.ElementTriP1())

    @skfem.BilinearForm
    def laplace(u, v, w):
        return w.c2 * dot(grad(u), grad(v))

    @skfem.BilinearForm
    def mass_form(u, v, w):
        return u * v

    @skfem.BilinearForm
    def damping(u, v, w):
        return w.c * u * v

    K_ref = laplace.assemble(basis, c2=basis.interpolate(c**2))
    M_ref = mass_form.assemble(basis)
    fbasis = skfem.FacetBasis(sk_mesh, skfem.ElementTriP1(), intorder=4)
    C_ref = damping.assemble(fbasis, c=fbasis.interpolate(c))
    K = assemble.stiffness(m, assemble.element_c2(m, c))
    M = assemble.mass(m)
    C = assemble.boundary_damping(m, c, "absorbing")
    for ours, ref in ((K, K_ref), (M, M_ref), (C, C_ref)):
        assert abs(ours - ref).max() < 1e-12 * abs(ref).max()


def test_read_mesh_with_meshio(tmp_path):
    meshio = pytest.importorskip("meshio")
    m = _jittered()
    path = tmp_path / "m.vtu"
    pts3 = np.column_stack([m.points, np.zeros(m.n_nodes)])
    meshio.write(path, meshio.Mesh(pts3, [("triangle", m.cells)]))
    back = mesh.read_mesh(path)
    np.testing.assert_allclose(back.points, m.points)
    np.testing.assert_array_equal(back.cells, m.cells)
    assert len(back.boundary_edges) == len(m.boundary_edges)
