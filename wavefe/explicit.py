"""Explicit central differences with lumped mass: ``M (u^{n+1} - 2u^n + u^{n-1}) / dt^2 + K u^n
+ C (u^{n+1} - u^{n-1}) / (2 dt) = f^n`` (C: lumped absorbing-boundary damping).

Stable for ``dt <= 2 / sqrt(lambda_max(M^-1 K))``; :func:`stable_dt` bounds ``lambda_max`` by
Gershgorin's theorem, which on the structured mesh with uniform speed gives the familiar
``dt = 1 / (c sqrt(1/hx^2 + 1/hy^2))``. :class:`ExplicitWave` holds the state, sources and
energy; the update itself is one of two kernels with one job each: :class:`StencilKernel`, the
matrix-free stencil of :mod:`wavefe.stencil` on structured meshes (several media at once), and
:class:`CsrKernel`, a fused CSR loop on any mesh (one medium). The discrete energy
``E^{n+1/2} = 1/2 |(u^{n+1} - u^n)/dt|_M^2 + 1/2 (u^{n+1})^T K u^n`` is conserved exactly without
sources and damping.
"""

from __future__ import annotations

import numba
import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import eigsh

from wavefe import assemble, stencil
from wavefe.mesh import TriMesh


def stable_dt(mesh: TriMesh, c, boundary="dirichlet", exact: bool = False) -> float:
    """Largest stable central-difference step with lumped mass, in time units.

    Parameters
    ----------
    c : array_like, shape (n_nodes,) or (nb, n_nodes)
        Nodal speeds (the minimum over a batch is returned).
    boundary : str or dict
        Dirichlet nodes are excluded from the operator.
    exact : bool
        False: Gershgorin's bound on ``lambda_max(M^-1 K)`` (rigorous, cheap; exact on the
        structured mesh with Dirichlet sides, about 17 % below the limit with free sides, where
        corner nodes have little mass). True: ``lambda_max`` by Lanczos (``eigsh``).
    """
    c = np.atleast_2d(np.asarray(c, np.float64))
    M = assemble.lumped_mass(mesh)
    free = np.ones(mesh.n_nodes, bool)
    free[assemble.dirichlet_nodes(mesh, boundary)] = False
    worst = 0.0
    for row in c:
        K = assemble.stiffness(mesh, assemble.element_c2(mesh, row))[free][:, free]
        if exact:
            s = 1.0 / np.sqrt(M[free])
            A = sp.diags(s) @ K @ sp.diags(s)
            lam = float(eigsh(A, k=1, which="LA", tol=1e-8, return_eigenvectors=False)[0])
            worst = max(worst, lam * (1 + 1e-7))
        else:
            absrow = np.asarray(abs(K).sum(axis=1)).ravel()
            worst = max(worst, float(np.max(absrow / M[free])))
    return 2.0 / np.sqrt(worst)


def _checked_inputs(mesh: TriMesh, c, dt, boundary, method: str, dtype, check_cfl: bool):
    """Check the arguments of :class:`ExplicitWave`; return ``c`` as (nb, n_nodes), the resolved
    method and the dtype. Errors name the parameter and its allowed values."""
    c = np.atleast_2d(np.asarray(c, np.float64))
    if c.shape[1] != mesh.n_nodes:
        raise ValueError(f"c must have {mesh.n_nodes} nodal values per row, got {c.shape[1]}")
    if not np.all(np.isfinite(c)) or np.any(c <= 0):
        raise ValueError("c must be finite and > 0 at every node")
    if method == "auto":
        method = "stencil" if mesh.structured else "csr"
    if method not in ("stencil", "csr"):
        raise ValueError(f"method must be 'auto', 'stencil' or 'csr', got {method!r}")
    if method == "stencil" and not mesh.structured:
        raise ValueError("method='stencil' needs a structured mesh; use method='csr'")
    if method == "csr" and len(c) > 1:
        raise ValueError("method='csr' advances one medium; pass c of shape (n_nodes,)")
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise ValueError(f"dtype must be float32 or float64, got {dtype}")
    if not (np.isfinite(dt) and dt > 0):
        raise ValueError(f"dt must be finite and > 0, got {dt}")
    if check_cfl:
        dt_max = stable_dt(mesh, c, boundary)
        if dt > dt_max * (1 + 1e-12):
            dt_max = stable_dt(mesh, c, boundary, exact=True)
        if dt > dt_max * (1 + 1e-12):
            raise ValueError(f"dt = {dt:.6g} is above the CFL limit {dt_max:.6g} of this mesh and "
                             "speed; use wavefe.stable_dt(mesh, c) times a safety factor < 1")
    return c, method, dtype


class ExplicitWave:
    """Central-difference wave solver with lumped mass.

    Parameters
    ----------
    mesh : TriMesh
    c : array_like, shape (n_nodes,) or (nb, n_nodes)
        Nodal wave speed (length/time), > 0. Several rows need ``method="stencil"``.
    dt : float
        Time step; above :func:`stable_dt` raises ``ValueError`` unless ``check_cfl=False``.
    boundary : str or dict
        ``"dirichlet" | "neumann" | "absorbing"`` for all sides or per side
        (:func:`wavefe.assemble.side_kinds`).
    sources : sequence
        Point sources (:class:`wavefe.sources.RickerSource`); for a batch, a sequence of ``nb``
        sequences.
    method : ``"auto" | "stencil" | "csr"``
        ``auto`` takes the stencil on structured meshes.
    dtype : float32 or float64
        Precision of the state and the kernel.
    """

    def __init__(self, mesh, c, *, dt, boundary="dirichlet", sources=(), method="auto",
                 dtype=np.float64, check_cfl=True):
        self.mesh = mesh
        self.batched = np.ndim(c) == 2
        c, method, self.dtype = _checked_inputs(mesh, c, dt, boundary, method, dtype, check_cfl)
        self.dt, self.method, self.c, self.nb = float(dt), method, c, len(c)
        self.boundary = boundary
        self.M = assemble.lumped_mass(mesh)
        self.C = np.stack([assemble.lumped_damping(mesh, row, boundary) for row in c])
        fixed = assemble.dirichlet_nodes(mesh, boundary)
        self.free = np.ones(mesh.n_nodes, bool)
        self.free[fixed] = False
        self._c2e = np.stack([assemble.element_c2(mesh, row) for row in c])
        self._K = None
        den = self.M + 0.5 * self.dt * self.C  # (nb, n_nodes)
        self._alpha = np.where(self.free, 2 * self.M / den, 0.0)
        self._beta = np.where(self.free, (self.M - 0.5 * self.dt * self.C) / den, 0.0)
        self._gamma = np.where(self.free, self.dt**2 / den, 0.0)
        self._setup_sources(sources)
        if method == "stencil":
            self._kernel = StencilKernel(mesh, self._c2e, self.dt, self._alpha, self._beta, self._gamma,
                                         self.dtype)
        else:
            self._kernel = CsrKernel(self.stiffness(0), self.free, self.C[0], self._alpha[0],
                                     self._beta[0], self._gamma[0], self.dtype)
        self.t = 0.0
        self.set_state(np.zeros((self.nb, mesh.n_nodes)))

    # ---- set-up -------------------------------------------------------------------------------
    def _setup_sources(self, sources):
        per = [list(sources)] if not self.batched else [list(s) for s in sources]
        if self.batched and len(per) not in (0, self.nb):
            raise ValueError(f"sources must list one sequence per medium ({self.nb}), got {len(per)}")
        if not per:
            per = [[] for _ in range(self.nb)]
        k = 3 * max((len(s) for s in per), default=0)
        self._src = per
        self._src_idx = np.zeros((self.nb, k), np.int64)
        self._src_w = np.zeros((self.nb, k), self.dtype)
        self._src_lam = np.zeros((self.nb, k))
        for b, srcs in enumerate(per):
            for q, src in enumerate(srcs):
                e, lam = assemble.locate(self.mesh, src.x, src.y)
                nodes = self.mesh.cells[e]
                self._src_idx[b, 3 * q:3 * q + 3] = nodes
                self._src_w[b, 3 * q:3 * q + 3] = lam * self._gamma[b, nodes]
                self._src_lam[b, 3 * q:3 * q + 3] = lam

    def _amplitudes(self, n_steps: int) -> np.ndarray:
        times = self.t + self.dt * np.arange(n_steps)
        amp = np.zeros((n_steps, self.nb, self._src_idx.shape[1]), self.dtype)
        for b, srcs in enumerate(self._src):
            for q, src in enumerate(srcs):
                amp[:, b, 3 * q:3 * q + 3] = src(times)[:, None]
        return amp

    def stiffness(self, b: int = 0):
        """The assembled stiffness (CSR) of medium ``b``."""
        if self._K is None:
            self._K = [None] * self.nb
        if self._K[b] is None:
            self._K[b] = assemble.stiffness(self.mesh, self._c2e[b])
        return self._K[b]

    # ---- state --------------------------------------------------------------------------------
    def set_state(self, u0, v0=None, t0: float = 0.0):
        """Start from displacement ``u0`` and velocity ``v0`` (nodal, per medium) at time ``t0``.

        The previous level is the Taylor start ``u^{-1} = u0 - dt v0 + dt^2/2 M^-1 (f(t0) - K u0)``,
        which makes the first step second-order accurate.
        """
        u0 = np.broadcast_to(np.asarray(u0, np.float64), (self.nb, self.mesh.n_nodes))
        v0 = np.zeros_like(u0) if v0 is None else np.broadcast_to(np.asarray(v0, np.float64), u0.shape)
        self.t = float(t0)
        prev = np.empty_like(u0)
        amp0 = self._amplitudes(1)[0] if self._src_idx.shape[1] else None
        for b in range(self.nb):
            acc = -self._kernel.apply_K(b, u0[b])
            if amp0 is not None:
                np.add.at(acc, self._src_idx[b], amp0[b] * self._src_lam[b])
            prev[b] = u0[b] - self.dt * v0[b] + 0.5 * self.dt**2 * acc / self.M
        prev[:, ~self.free] = 0.0
        cur = np.where(self.free, u0, 0.0)
        shape = self._kernel.state_shape
        self._u = np.array(cur.reshape(shape), self.dtype, order="C")  # owned copies
        self._u_old = np.array(prev.reshape(shape), self.dtype, order="C")
        self.step_count = 0

    @property
    def u(self) -> np.ndarray:
        """Current solution ``u^n``, shape (nb, n_nodes) for a batch, else (n_nodes,) (a copy)."""
        out = self._u.reshape(self.nb, -1).astype(np.float64)
        return out if self.batched else out[0]

    @property
    def u_prev(self) -> np.ndarray:
        out = self._u_old.reshape(self.nb, -1).astype(np.float64)
        return out if self.batched else out[0]

    # ---- stepping -----------------------------------------------------------------------------
    def advance(self, n_steps: int) -> None:
        """Advance ``n_steps`` time steps in place."""
        if n_steps < 0:
            raise ValueError(f"n_steps must be >= 0, got {n_steps}")
        if n_steps == 0:
            return
        swapped = self._kernel.advance(self._u, self._u_old, self._src_idx, self._src_w,
                                       self._amplitudes(n_steps))
        if swapped:
            self._u, self._u_old = self._u_old, self._u
        self.t += n_steps * self.dt
        self.step_count += n_steps

    def frame_forcing(self, n_frames: int, save_every: int = 1, t0: float = 0.0) -> np.ndarray:
        """The sources' share of each frame's second difference, on the nodes.

        With ``k = save_every`` and frame ``n`` at step ``n k`` (time ``t0 + n k dt``), returns
        ``f^n = sum_{|j| < k} (k - |j|) a^{n k + j}``, where ``a^m = dt^2 (M + dt/2 C)^{-1} b(t_m)`` is
        the increment step ``m`` adds to ``u^{m+1} - 2 u^m + u^{m-1}`` (``b``: the P1 point loads at
        ``t_m = t0 + m dt``; zero on Dirichlet nodes). Without stiffness the scheme gives exactly
        ``u^{(n+1)k} - 2 u^{n k} + u^{(n-1)k} = f^n``: the displacement the forcing adds to the
        frame-level leapfrog extrapolation, in the units of ``u``. Frame 0 uses the same formula
        (with the source values at negative times, about zero for a delayed Ricker wavelet); the
        solver has no frame before it.

        Returns
        -------
        ndarray, float64, shape (nb, n_frames, n_nodes) for a batch, else (n_frames, n_nodes).
        """
        if int(n_frames) != n_frames or n_frames < 1 or int(save_every) != save_every or save_every < 1:
            raise ValueError(f"n_frames and save_every must be integers >= 1, got {n_frames}, {save_every}")
        k = int(save_every)
        out = np.zeros((self.nb, int(n_frames), self.mesh.n_nodes))
        j = np.arange(-(k - 1), k)
        weight = (k - np.abs(j)).astype(np.float64)
        times = t0 + self.dt * (k * np.arange(int(n_frames))[:, None] + j[None, :])  # (F, 2k - 1)
        for b, srcs in enumerate(self._src):
            for q, src in enumerate(srcs):
                g = src(times) @ weight  # (F,)
                nodes = self._src_idx[b, 3 * q:3 * q + 3]
                gain = self._src_lam[b, 3 * q:3 * q + 3] * self._gamma[b, nodes]
                np.add.at(out[b], (slice(None), nodes), g[:, None] * gain[None, :])
        return out if self.batched else out[0]

    def run(self, n_frames: int, save_every: int = 1, dtype=np.float32) -> np.ndarray:
        """Record ``n_frames`` frames (the current state first), ``save_every`` steps apart.

        Returns an array of shape (nb, n_frames, n_nodes) for a batch, else (n_frames, n_nodes).
        """
        if n_frames < 1 or save_every < 1:
            raise ValueError(f"n_frames and save_every must be >= 1, got {n_frames}, {save_every}")
        frames = np.empty((self.nb, n_frames, self.mesh.n_nodes), dtype)
        for k in range(n_frames):
            if k:
                self.advance(save_every)
            frames[:, k] = self._u.reshape(self.nb, -1)
        return frames if self.batched else frames[0]

    def energy(self) -> np.ndarray:
        """Discrete energy ``E^{n-1/2}`` between ``u^{n-1}`` and ``u^n``, per medium (nb,) or scalar."""
        u = self._u.reshape(self.nb, -1).astype(np.float64)
        uo = self._u_old.reshape(self.nb, -1).astype(np.float64)
        v = (u - uo) / self.dt
        e = np.array([0.5 * v[b] @ (self.M * v[b]) + 0.5 * u[b] @ (self.stiffness(b) @ uo[b])
                      for b in range(self.nb)])
        return e if self.batched else float(e[0])


class StencilKernel:
    """The matrix-free update on a structured mesh, several media at once (:mod:`wavefe.stencil`).

    On this mesh the lumped P1 operator is a 5-point stencil with edge weights from the
    element-wise ``c^2``; the state is ``(nb, NY, NX)``.

    Parameters
    ----------
    mesh : TriMesh
        Structured mesh.
    c2e : ndarray, shape (nb, n_cells)
        Element-wise ``c^2`` per medium.
    dt : float
        Time step.
    alpha, beta, gamma : ndarray, shape (nb, n_nodes)
        Update coefficients ``u^{n+1} = alpha u^n - beta u^{n-1} - gamma (K u^n - f^n)`` (zero
        on Dirichlet nodes).
    dtype : float32 or float64
    """

    def __init__(self, mesh: TriMesh, c2e, dt: float, alpha, beta, gamma, dtype):
        self.mesh = mesh
        wx, wy = stencil.edge_weights(mesh, c2e)
        # Padded to the node grid's shape: all five streams share one row stride (~10 % faster).
        NY, NX = mesh.node_shape
        nb = len(c2e)
        self._wx = np.zeros((nb, NY, NX), dtype)
        self._wy = np.zeros((nb, NY, NX), dtype)
        self._wx[:, :, :-1] = wx
        self._wy[:, :-1, :] = wy
        self.state_shape = (nb, NY, NX)
        hx, hy = mesh.spacing
        self._s = dt**2 / (hx * hy)
        jj, ii = np.divmod(np.arange(mesh.n_nodes), NX)
        nodes = np.flatnonzero((jj == 0) | (jj == NY - 1) | (ii == 0) | (ii == NX - 1))
        self._bj, self._bi = jj[nodes].astype(np.int64), ii[nodes].astype(np.int64)
        self._bcoef = [np.ascontiguousarray(a[:, nodes], dtype) for a in (alpha, beta, gamma)]

    def apply_K(self, b: int, u: np.ndarray) -> np.ndarray:
        """``K u`` of medium ``b`` (n_nodes,), equal to the CSR product to round-off, not assembled."""
        wx = self._wx[b, :, :-1].astype(np.float64)
        wy = self._wy[b, :-1, :].astype(np.float64)
        return stencil.apply_stencil(u.reshape(self.mesh.node_shape), wx, wy).ravel()

    def advance(self, u, u_old, src_idx, src_w, amp) -> bool:
        """Advance ``len(amp)`` steps in place; True when the result sits in ``u_old``."""
        return stencil.advance_stencil(u, u_old, self._wx, self._wy, self._s, self._bj, self._bi,
                                       *self._bcoef, src_idx, src_w, amp, numba.get_num_threads() == 1)


class CsrKernel:
    """The fused CSR update on any mesh, one medium; the state is ``(n_nodes,)``.

    Parameters
    ----------
    K : scipy.sparse.csr_matrix, shape (n_nodes, n_nodes)
        Assembled stiffness of the medium.
    free : ndarray of bool, shape (n_nodes,)
        Nodes that are not Dirichlet.
    C : ndarray, shape (n_nodes,)
        Lumped boundary damping.
    alpha, beta, gamma : ndarray, shape (n_nodes,)
        Update coefficients (see :class:`StencilKernel`).
    dtype : float32 or float64
    """

    def __init__(self, K, free, C, alpha, beta, gamma, dtype):
        self.K = K
        self.state_shape = (K.shape[0],)
        compact = K.copy()
        compact.eliminate_zeros()  # exact zeros only: the structured mesh's diagonals couple nothing
        self._K32 = (compact.indptr.astype(np.int64), compact.indices.astype(np.int32),
                     compact.data.astype(dtype))
        fix = np.flatnonzero(~free | (C > 0))
        self._fix = (fix, alpha[fix].astype(dtype), beta[fix].astype(dtype), gamma[fix].astype(dtype))
        self._gamma = gamma.astype(dtype)

    def apply_K(self, b: int, u: np.ndarray) -> np.ndarray:
        """``K u`` (n_nodes,); ``b`` must be 0 (one medium)."""
        return self.K @ u

    def advance(self, u, u_old, src_idx, src_w, amp) -> bool:
        """Advance ``len(amp)`` steps in place; True when the result sits in ``u_old``."""
        indptr, indices, data = self._K32
        return stencil.advance_csr(indptr, indices, data, u, u_old, self._gamma, *self._fix, src_idx[0],
                                   src_w[0], amp[:, 0], numba.get_num_threads() == 1)
