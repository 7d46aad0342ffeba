"""The explicit step on a structured mesh as a matrix-free 5-point stencil (Numba).

Derivation. On a triangle with legs hx (horizontal) and hy (vertical) meeting at a right angle,
the P1 stiffness couples two vertices by ``-(c2_e / 2) cot(theta)``, theta the angle opposite
their edge. The hypotenuse is opposite the right angle (cot = 0): no coupling along diagonals.
A horizontal leg is opposite the angle with cot = hy/hx, a vertical leg the one with cot = hx/hy.
Every cell side is a leg of exactly one triangle of each cell beside it (:mod:`wavefe.mesh`), so

    (K u)_p = sum_{q in N4(p)} w_pq (u_p - u_q),
    w_pq = (hy / 2hx) (c2_T + c2_T')  (horizontal edge),  (hx / 2hy) (c2_T + c2_T')  (vertical),

with T, T' the triangles on either side of the edge that have it as a leg (one on a boundary
edge). The row-sum lumped mass is ``hx hy`` at every interior node (six triangles of area
``hx hy / 2``, a third each), so the interior update of central differences is

    u^{n+1}_p = 2 u^n_p - u^{n-1}_p - (dt^2 / (hx hy)) (K u^n)_p + (dt^2 / M_p) f_p,

read from two weight arrays and two solution arrays and written over ``u^{n-1}`` in place.
Boundary nodes use their own lumped mass ``M_p`` and lumped absorbing damping ``C_p``::

    u^{n+1}_p = alpha_p u^n_p - beta_p u^{n-1}_p - gamma_p (K u^n)_p,
    alpha = 2M/(M + dt C/2),  beta = (M - dt C/2)/(M + dt C/2),  gamma = dt^2/(M + dt C/2),

and ``alpha = beta = gamma = 0`` on Dirichlet nodes. :func:`tests.test_wavefe_stencil` checks the
kernel against the assembled CSR operator to round-off.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from wavefe.mesh import TriMesh


def edge_weights(mesh: TriMesh, c2_elem: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Stencil weights from per-element ``c^2``.

    Parameters
    ----------
    mesh : TriMesh
        A structured mesh (:func:`wavefe.mesh.rectangle`).
    c2_elem : ndarray, shape (..., n_cells)
        ``c^2`` per element; leading axes are kept (several media at once).

    Returns
    -------
    wx : ndarray, shape (..., ny + 1, nx)
        Weight of the horizontal edge from node (j, i) to (j, i + 1).
    wy : ndarray, shape (..., ny, nx + 1)
        Weight of the vertical edge from node (j, i) to (j + 1, i).
    """
    if not mesh.structured:
        raise ValueError("edge_weights needs a structured mesh (wavefe.mesh.rectangle)")
    nx, ny = mesh.grid
    hx, hy = mesh.spacing
    c2 = np.asarray(c2_elem, np.float64)
    lead = c2.shape[:-1]
    tri = c2.reshape(*lead, ny, nx, 2)
    lower, upper = tri[..., 0], tri[..., 1]  # (a, b, c) holds bottom + right; (a, c, d) top + left
    wx = np.zeros((*lead, ny + 1, nx))
    wx[..., :-1, :] += lower
    wx[..., 1:, :] += upper
    wy = np.zeros((*lead, ny, nx + 1))
    wy[..., :, :-1] += upper
    wy[..., :, 1:] += lower
    return wx * (0.5 * hy / hx), wy * (0.5 * hx / hy)


def apply_stencil(u: np.ndarray, wx: np.ndarray, wy: np.ndarray) -> np.ndarray:
    """``K u`` on the node grid with numpy (reference), ``u`` of shape (ny + 1, nx + 1)."""
    out = np.zeros_like(u)
    dx = wx * (u[:, :-1] - u[:, 1:])
    dy = wy * (u[:-1, :] - u[1:, :])
    out[:, :-1] += dx
    out[:, 1:] -= dx
    out[:-1, :] += dy
    out[1:, :] -= dy
    return out


@njit(parallel=True, fastmath=True, cache=True, boundscheck=False)
def _interior(u, u_old, wx, wy, s):
    # Plain 3D indexing in the inner loop vectorises best (AVX2, measured against row views).
    nb, NY, NX = u.shape
    nbw = wx.shape[0]
    rows = NY - 2
    for r in prange(nb * rows):
        b = r // rows
        j = r - b * rows + 1
        bw = b if nbw > 1 else 0
        for i in range(1, NX - 1):
            up = u[b, j, i]
            lap = (wx[bw, j, i - 1] * (u[b, j, i - 1] - up) + wx[bw, j, i] * (u[b, j, i + 1] - up)
                   + wy[bw, j - 1, i] * (u[b, j - 1, i] - up) + wy[bw, j, i] * (u[b, j + 1, i] - up))
            u_old[b, j, i] = (up + up) - u_old[b, j, i] + s * lap


@njit(fastmath=True, cache=True, boundscheck=False)
def _interior_serial(u, u_old, wx, wy, s):
    # The same loop without the parallel region: ~10 % faster on one thread.
    nb, NY, NX = u.shape
    nbw = wx.shape[0]
    for b in range(nb):
        bw = b if nbw > 1 else 0
        for j in range(1, NY - 1):
            for i in range(1, NX - 1):
                up = u[b, j, i]
                lap = (wx[bw, j, i - 1] * (u[b, j, i - 1] - up) + wx[bw, j, i] * (u[b, j, i + 1] - up)
                       + wy[bw, j - 1, i] * (u[b, j - 1, i] - up) + wy[bw, j, i] * (u[b, j + 1, i] - up))
                u_old[b, j, i] = (up + up) - u_old[b, j, i] + s * lap


@njit(cache=True, boundscheck=False)
def _boundary(u, u_old, wx, wy, bj, bi, alpha, beta, gamma):
    # O(perimeter) work per step: serial.
    nb, NY, NX = u.shape
    shared = wx.shape[0] == 1
    for b in range(nb):
        bw = 0 if shared else b
        for k in range(bj.shape[0]):
            j = bj[k]
            i = bi[k]
            up = u[b, j, i]
            lap = 0.0
            if i > 0:
                lap += wx[bw, j, i - 1] * (u[b, j, i - 1] - up)
            if i < NX - 1:
                lap += wx[bw, j, i] * (u[b, j, i + 1] - up)
            if j > 0:
                lap += wy[bw, j - 1, i] * (u[b, j - 1, i] - up)
            if j < NY - 1:
                lap += wy[bw, j, i] * (u[b, j + 1, i] - up)
            u_old[b, j, i] = alpha[bw, k] * up - beta[bw, k] * u_old[b, j, i] + gamma[bw, k] * lap


@njit(cache=True)
def _sources(u_new, src_idx, src_w, amp_n):
    nb, NY, NX = u_new.shape
    for b in range(nb):
        for q in range(src_idx.shape[1]):
            p = src_idx[b, q]
            u_new[b, p // NX, p % NX] += src_w[b, q] * amp_n[b, q]


@njit(cache=True)
def advance_stencil(u, u_old, wx, wy, s, bj, bi, alpha, beta, gamma, src_idx, src_w, amp,
                    serial=False):
    """Advance ``amp.shape[0]`` steps in place; return 1 if the roles of u and u_old swapped.

    Parameters
    ----------
    u, u_old : ndarray, shape (nb, ny + 1, nx + 1)
        Current and previous solutions of ``nb`` simulations (float32 or float64, C order).
    wx, wy : ndarray, shapes (nbw, ny + 1, >= nx), (nbw, >= ny, nx + 1)
        Edge weights, ``nbw`` = 1 (shared medium) or ``nb``; same dtype as ``u``. Padding them to
        the node grid's shape (the extra row/column is never read) gives all arrays one stride.
    s : float
        ``dt^2 / (hx hy)``.
    bj, bi : ndarray, shape (n_b,), int64
        Row and column of each boundary node.
    alpha, beta, gamma : ndarray, shape (nbw, n_b)
        Boundary update coefficients (see the module docstring).
    src_idx : ndarray, shape (nb, k), int64
        Flat node index of each source term; ``src_w`` (nb, k) its weight ``phi_i(x_s) dt^2/M``.
    amp : ndarray, shape (n_steps, nb, k)
        Source amplitude at the time of each step (the step from t_n to t_{n+1} uses t_n).
    serial : bool
        Use the loop without a parallel region (pass ``numba.get_num_threads() == 1``).
    """
    s = u.dtype.type(s)
    for n in range(amp.shape[0]):
        if serial:
            _interior_serial(u, u_old, wx, wy, s)
        else:
            _interior(u, u_old, wx, wy, s)
        _boundary(u, u_old, wx, wy, bj, bi, alpha, beta, gamma)
        _sources(u_old, src_idx, src_w, amp[n])
        u, u_old = u_old, u
    return amp.shape[0] % 2


@njit(parallel=True, fastmath=True, cache=True, boundscheck=False)
def _csr_rows(indptr, indices, data, u, u_old, gamma):
    for p in prange(u.shape[0]):
        acc = 0.0
        for q in range(indptr[p], indptr[p + 1]):
            acc += data[q] * u[indices[q]]
        u_old[p] = 2 * u[p] - u_old[p] - gamma[p] * acc


# The same rows compiled without threads (prange runs as range): on one thread the parallel
# launch costs more than it saves.
_csr_rows_serial = njit(fastmath=True, cache=True, boundscheck=False)(_csr_rows.py_func)


@njit(cache=True)
def advance_csr(indptr, indices, data, u, u_old, gamma, fix_idx, fix_alpha, fix_beta, fix_gamma,
                src_idx, src_w, amp, serial=False):
    """Central-difference steps with a CSR stiffness (general meshes), in place.

    ``u``, ``u_old`` and ``gamma = dt^2 / M`` have shape (n_nodes,). Nodes in ``fix_idx``
    (Dirichlet and absorbing ones) are recomputed with their own ``alpha, beta, gamma``.
    ``src_idx``, ``src_w`` have shape (k,), ``amp`` (n_steps, k). Returns the parity as
    :func:`advance_stencil`; ``serial`` as there.
    """
    saved = np.empty(fix_idx.shape[0], u.dtype)
    for n in range(amp.shape[0]):
        for k in range(fix_idx.shape[0]):
            saved[k] = u_old[fix_idx[k]]
        if serial:
            _csr_rows_serial(indptr, indices, data, u, u_old, gamma)
        else:
            _csr_rows(indptr, indices, data, u, u_old, gamma)
        for k in range(fix_idx.shape[0]):
            p = fix_idx[k]
            acc = 0.0
            for q in range(indptr[p], indptr[p + 1]):
                acc += data[q] * u[indices[q]]
            u_old[p] = fix_alpha[k] * u[p] - fix_beta[k] * saved[k] - fix_gamma[k] * acc
        for q in range(src_idx.shape[0]):
            u_old[src_idx[q]] += src_w[q] * amp[n, q]
        u, u_old = u_old, u
    return amp.shape[0] % 2
