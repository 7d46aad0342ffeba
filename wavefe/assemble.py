"""Vectorised P1 assembly into scipy CSR: mass, stiffness, absorbing-boundary matrix, point loads.

Weak form of ``u_tt = div(c^2 grad u) + f`` with test function v::

    (u_tt, v) + (c^2 grad u, grad v) + (c u_t, v)_{absorbing sides} = (f, v)

The boundary term comes from the first-order Engquist-Majda condition ``du/dn = -(1/c) u_t``
multiplied by the flux coefficient ``c^2``, so the damping weight of this (divergence) form of the
equation is ``c`` (it is ``1/c`` for the form ``u_tt / c^2 = lap u``). Coefficients: ``c^2`` enters
the stiffness as one value per element (the mean of its three nodal values of ``c^2``, which is
the exact integral of the P1 interpolant of ``c^2`` since the gradients are constant); ``c`` in the
boundary matrix is the P1 interpolant of the nodal speeds, integrated exactly.

All element loops are numpy array expressions over every element at once.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from wavefe.mesh import TriMesh


def gradients(mesh: TriMesh) -> tuple[np.ndarray, np.ndarray]:
    """Gradients of the three barycentric functions per element and the element areas.

    Returns
    -------
    grads : ndarray, shape (n_cells, 3, 2)
    areas : ndarray, shape (n_cells,)
    """
    p = mesh.points[mesh.cells]
    # grad(lambda_k) = rot90(edge opposite k) / (2 area), edges taken counter-clockwise.
    e0 = p[:, 2] - p[:, 1]
    e1 = p[:, 0] - p[:, 2]
    e2 = p[:, 1] - p[:, 0]
    area2 = e2[:, 0] * (-e1[:, 1]) - e2[:, 1] * (-e1[:, 0])
    edges = np.stack([e0, e1, e2], axis=1)
    grads = np.stack([-edges[..., 1], edges[..., 0]], axis=-1) / area2[:, None, None]
    return grads, 0.5 * area2


def element_c2(mesh: TriMesh, c) -> np.ndarray:
    """Per-element ``c^2`` (mean of the nodal ``c^2``) from nodal speeds ``c`` (n_nodes,)."""
    c = _nodal(mesh, c, "c")
    return (c**2)[mesh.cells].mean(axis=1)


def _nodal(mesh: TriMesh, values, name: str) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    if values.ndim == 0:
        values = np.full(mesh.n_nodes, float(values))
    values = values.reshape(-1)
    if values.shape != (mesh.n_nodes,):
        raise ValueError(f"{name} must be a scalar or have {mesh.n_nodes} nodal values, got {values.size}")
    if not np.all(np.isfinite(values)) or np.any(values <= 0):
        raise ValueError(f"{name} must be finite and > 0 at every node")
    return values


def _csr(mesh: TriMesh, local: np.ndarray) -> sp.csr_matrix:
    rows = np.repeat(mesh.cells, 3, axis=1).ravel()
    cols = np.tile(mesh.cells, (1, 3)).ravel()
    A = sp.coo_matrix((local.ravel(), (rows, cols)), shape=(mesh.n_nodes, mesh.n_nodes)).tocsr()
    A.sum_duplicates()
    return A


def stiffness(mesh: TriMesh, c2_elem=None) -> sp.csr_matrix:
    """Stiffness ``K_ij = sum_e c2_e |e| grad(phi_i) . grad(phi_j)``, CSR (n_nodes, n_nodes).

    Parameters
    ----------
    c2_elem : array_like, shape (n_cells,), optional
        ``c^2`` per element (default 1); see :func:`element_c2`.
    """
    grads, areas = gradients(mesh)
    w = areas if c2_elem is None else areas * np.asarray(c2_elem, np.float64).reshape(-1)
    if w.shape != areas.shape:
        raise ValueError(f"c2_elem must have {mesh.n_cells} values, got {w.size}")
    local = np.einsum("e,eid,ejd->eij", w, grads, grads)
    return _csr(mesh, local)


def mass(mesh: TriMesh) -> sp.csr_matrix:
    """Consistent P1 mass matrix ``M_ij = int phi_i phi_j``, CSR (n_nodes, n_nodes)."""
    _, areas = gradients(mesh)
    ref = (np.ones((3, 3)) + np.eye(3)) / 12.0
    return _csr(mesh, areas[:, None, None] * ref)


def lumped_mass(mesh: TriMesh) -> np.ndarray:
    """Row-sum lumped mass, shape (n_nodes,): a third of each adjacent element's area."""
    _, areas = gradients(mesh)
    return np.bincount(mesh.cells.ravel(), np.repeat(areas / 3.0, 3), minlength=mesh.n_nodes)


def absorbing_sides(mesh: TriMesh, boundary) -> np.ndarray:
    """Boolean mask over boundary edges that carry the absorbing condition."""
    kinds = side_kinds(boundary)
    return np.array([kinds[s] == "absorbing" for s in mesh.boundary_sides], dtype=bool)


def side_kinds(boundary) -> tuple[str, ...]:
    """Normalise a boundary spec to one kind per side tag (left, right, bottom, top, other).

    ``boundary`` is one of ``"dirichlet" | "neumann" | "absorbing"`` for every side, or a dict
    ``{side: kind}`` over ``left, right, bottom, top, other`` (missing sides are Dirichlet).
    """
    from wavefe.mesh import SIDES

    allowed = ("dirichlet", "neumann", "absorbing")
    if isinstance(boundary, str):
        spec = dict.fromkeys(SIDES, boundary)
    elif isinstance(boundary, dict):
        unknown = set(boundary) - set(SIDES)
        if unknown:
            raise ValueError(f"boundary sides must be among {SIDES}, got {sorted(unknown)}")
        spec = {s: boundary.get(s, "dirichlet") for s in SIDES}
    else:
        raise ValueError(f"boundary must be a string or a dict of sides, got {type(boundary).__name__}")
    for side, kind in spec.items():
        if kind not in allowed:
            raise ValueError(f"boundary for side {side!r} must be one of {allowed}, got {kind!r}")
    return tuple(spec[s] for s in SIDES)


def dirichlet_nodes(mesh: TriMesh, boundary) -> np.ndarray:
    """Indices of the nodes held at zero: those on any Dirichlet edge."""
    kinds = side_kinds(boundary)
    tags = [t for t, k in enumerate(kinds) if k == "dirichlet"]
    if not tags:
        return np.zeros(0, np.int64)
    return mesh.boundary_nodes(tags)


def boundary_damping(mesh: TriMesh, c, boundary) -> sp.csr_matrix:
    """Absorbing-boundary matrix ``C_ij = int_{absorbing sides} c phi_i phi_j ds``, CSR.

    ``c`` is nodal (n_nodes,) and interpolated linearly along each edge; the integral is exact:
    on an edge of length L with end speeds (ca, cb), ``C_aa = L (ca/4 + cb/12)``,
    ``C_ab = L (ca + cb)/12``.
    """
    c = _nodal(mesh, c, "c")
    edges = mesh.boundary_edges[absorbing_sides(mesh, boundary)]
    if len(edges) == 0:
        return sp.csr_matrix((mesh.n_nodes, mesh.n_nodes))
    L = np.linalg.norm(mesh.points[edges[:, 1]] - mesh.points[edges[:, 0]], axis=1)
    ca, cb = c[edges[:, 0]], c[edges[:, 1]]
    local = np.empty((len(edges), 2, 2))
    local[:, 0, 0] = L * (ca / 4 + cb / 12)
    local[:, 1, 1] = L * (ca / 12 + cb / 4)
    local[:, 0, 1] = local[:, 1, 0] = L * (ca + cb) / 12
    rows = np.repeat(edges, 2, axis=1).ravel()
    cols = np.tile(edges, (1, 2)).ravel()
    return sp.coo_matrix((local.ravel(), (rows, cols)), shape=(mesh.n_nodes,) * 2).tocsr()


def lumped_damping(mesh: TriMesh, c, boundary) -> np.ndarray:
    """Row sums of :func:`boundary_damping`, shape (n_nodes,)."""
    return np.asarray(boundary_damping(mesh, c, boundary).sum(axis=1)).ravel()


def locate(mesh: TriMesh, x: float, y: float) -> tuple[int, np.ndarray]:
    """The element containing ``(x, y)`` and the barycentric coordinates there.

    Raises ``ValueError`` when the point is outside the mesh.
    """
    if mesh.structured:
        nx, ny = mesh.grid
        hx, hy = mesh.spacing
        x0, y0 = mesh.points[0]
        fx, fy = (x - x0) / hx, (y - y0) / hy
        if not (-1e-12 <= fx <= nx + 1e-12 and -1e-12 <= fy <= ny + 1e-12):
            raise ValueError(f"source position ({x}, {y}) is outside the mesh {mesh.bounds}")
        i, j = min(max(int(fx), 0), nx - 1), min(max(int(fy), 0), ny - 1)
        k = 2 * (j * nx + i)
        candidates = np.array([k, k + 1])
    else:
        candidates = np.arange(mesh.n_cells)
    p = mesh.points[mesh.cells[candidates]]
    T = np.stack([p[:, 1] - p[:, 0], p[:, 2] - p[:, 0]], axis=-1)
    rhs = np.array([x, y]) - p[:, 0]
    lam12 = np.linalg.solve(T, rhs[..., None])[..., 0]
    lam = np.column_stack([1 - lam12.sum(axis=1), lam12])
    inside = np.all(lam >= -1e-12, axis=1)
    if not inside.any():
        raise ValueError(f"source position ({x}, {y}) is outside the mesh {mesh.bounds}")
    e = int(np.argmax(inside))
    return int(candidates[e]), np.clip(lam[e], 0.0, 1.0)


def point_load(mesh: TriMesh, x: float, y: float) -> sp.csr_matrix:
    """Load vector of a unit point source, ``b_i = phi_i(x, y)``, as a sparse (n_nodes, 1) column."""
    e, lam = locate(mesh, x, y)
    return sp.csr_matrix((lam, (mesh.cells[e], np.zeros(3, int))), shape=(mesh.n_nodes, 1))
