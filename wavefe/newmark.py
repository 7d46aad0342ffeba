"""Implicit Newmark average acceleration (beta = 1/4, gamma = 1/2) with a reused factorisation.

Semi-discrete system ``M a + C v + K u = f(t)`` (consistent mass by default, consistent absorbing
boundary matrix C, Dirichlet nodes removed). Each step solves

    (M + gamma dt C + beta dt^2 K) a^{n+1}
        = f^{n+1} - C (v^n + (1 - gamma) dt a^n) - K (u^n + dt v^n + (1/2 - beta) dt^2 a^n)

with one sparse LU factorisation (``scipy.sparse.linalg.splu``) made once in the constructor.
Unconditionally stable and second order; without damping and sources it conserves
``1/2 v^T M v + 1/2 u^T K u`` exactly.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import splu

from wavefe import assemble
from wavefe.mesh import TriMesh

BETA, GAMMA = 0.25, 0.5


class NewmarkWave:
    """Newmark average-acceleration wave solver.

    Parameters
    ----------
    mesh : TriMesh
    c : array_like, shape (n_nodes,)
        Nodal wave speed, > 0.
    dt : float
        Time step (any size is stable; accuracy needs ~10+ steps per period).
    boundary : str or dict
        As in :func:`wavefe.assemble.side_kinds`.
    sources : sequence of RickerSource
    lumped : bool
        Use the lumped mass instead of the consistent one.
    """

    def __init__(self, mesh: TriMesh, c, *, dt, boundary="dirichlet", sources=(), lumped=False):
        if not (np.isfinite(dt) and dt > 0):
            raise ValueError(f"dt must be finite and > 0, got {dt}")
        c = np.asarray(c, np.float64).reshape(-1) if np.ndim(c) else np.full(mesh.n_nodes, float(c))
        self.mesh, self.dt, self.boundary = mesh, float(dt), boundary
        self.free = np.ones(mesh.n_nodes, bool)
        self.free[assemble.dirichlet_nodes(mesh, boundary)] = False
        f = self.free
        K = assemble.stiffness(mesh, assemble.element_c2(mesh, c))
        M = sp.diags(assemble.lumped_mass(mesh)).tocsr() if lumped else assemble.mass(mesh)
        C = assemble.boundary_damping(mesh, c, boundary)
        self.K, self.M, self.C = (A[f][:, f].tocsr() for A in (K, M, C))
        self._lu = splu((self.M + GAMMA * self.dt * self.C + BETA * self.dt**2 * self.K).tocsc())
        self._lu_mass = splu(self.M.tocsc())
        self.sources = list(sources)
        cols = [assemble.point_load(mesh, s.x, s.y) for s in self.sources]
        self._B = sp.hstack(cols).tocsr()[f] if cols else None
        self.set_state(np.zeros(mesh.n_nodes))

    def _load(self, t: float) -> np.ndarray:
        if self._B is None:
            return np.zeros(self.K.shape[0])
        return self._B @ np.array([float(s(t)) for s in self.sources])

    def set_state(self, u0, v0=None, t0: float = 0.0) -> None:
        """Start from nodal ``u0``, ``v0`` (n_nodes,) at ``t0``; Dirichlet values are dropped."""
        u0 = np.broadcast_to(np.asarray(u0, np.float64), (self.mesh.n_nodes,))
        v0 = np.zeros(self.mesh.n_nodes) if v0 is None else np.asarray(v0, np.float64)
        self.t = float(t0)
        self._u = u0[self.free].copy()
        self._v = v0[self.free].copy()
        self._a = self._lu_mass.solve(self._load(self.t) - self.C @ self._v - self.K @ self._u)
        self.step_count = 0

    def advance(self, n_steps: int) -> None:
        """Advance ``n_steps`` steps."""
        if n_steps < 0:
            raise ValueError(f"n_steps must be >= 0, got {n_steps}")
        dt, u, v, a = self.dt, self._u, self._v, self._a
        for _ in range(n_steps):
            t1 = self.t + dt
            pred_u = u + dt * v + (0.5 - BETA) * dt**2 * a
            pred_v = v + (1 - GAMMA) * dt * a
            a_new = self._lu.solve(self._load(t1) - self.C @ pred_v - self.K @ pred_u)
            u = pred_u + BETA * dt**2 * a_new
            v = pred_v + GAMMA * dt * a_new
            a = a_new
            self.t = t1
        self._u, self._v, self._a = u, v, a
        self.step_count += n_steps

    @property
    def u(self) -> np.ndarray:
        """Current nodal displacement, shape (n_nodes,)."""
        out = np.zeros(self.mesh.n_nodes)
        out[self.free] = self._u
        return out

    def run(self, n_frames: int, save_every: int = 1) -> np.ndarray:
        """Frames (n_frames, n_nodes) ``save_every`` steps apart, the current state first."""
        if n_frames < 1 or save_every < 1:
            raise ValueError(f"n_frames and save_every must be >= 1, got {n_frames}, {save_every}")
        frames = np.empty((n_frames, self.mesh.n_nodes))
        for k in range(n_frames):
            if k:
                self.advance(save_every)
            frames[k] = self.u
        return frames

    def energy(self) -> float:
        """``1/2 v^T M v + 1/2 u^T K u``."""
        return float(0.5 * self._v @ (self.M @ self._v) + 0.5 * self._u @ (self.K @ self._u))
